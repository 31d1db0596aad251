//! The page frame and the small pieces every page uses. HTML comes from
//! maud's compile-time templates, which escape every value they print.

use maud::{DOCTYPE, Markup, html};
use portal_mfa::passkey::PasskeyOptions;

use crate::accounts::Area;
use crate::session::SignedIn;

/// What the frame around a page needs: who is signed in (for the menu), the
/// CSRF token (for the sign-out form), and a one-time message.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The signed-in user, if any.
    pub who: Option<&'a SignedIn>,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// A message left by the last action.
    pub flash: Option<&'a str>,
}

/// A whole page.
pub fn page(title: &str, frame: Option<&Frame<'_>>, body: Markup) -> Markup {
    let who = frame.and_then(|f| f.who);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Acme" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    a.brand href="/" { "Acme" }
                    @if let Some(who) = who {
                        nav aria-label="Main" {
                            span.area { (who.area.title()) }
                            a href=(format!("/{}/account", who.area.segment())) { "My account" }
                            @if who.area == Area::Admin {
                                a href="/admin/settings" { "Portal settings" }
                                a href="/admin/users" { "Users" }
                                a href="/admin/audit" { "Audit trail" }
                                a href="/admin/outbox" { "Outbox" }
                            }
                            @if let Some(frame) = frame {
                                form.inline method="post" action="/sign-out" {
                                    (csrf_field(frame.csrf))
                                    button.link type="submit" { "Sign out " (who.email) }
                                }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(message) = frame.and_then(|f| f.flash) {
                        p.flash role="status" { (message) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A field for a TOTP code: what phones fill in from an SMS or an app's
/// suggestion, with the digit keyboard. The server checks the code; no
/// `pattern`, so a code typed with a space is not refused by the browser.
pub fn code_field(id: &str, label: &str) -> Markup {
    html! {
        label for=(id) { (label) }
        input #(id) type="text" name="code" autocomplete="one-time-code" inputmode="numeric" maxlength="10" required;
    }
}

/// A field for a fresh code that may also be a backup code (letters too).
pub fn proof_field(id: &str, label: &str) -> Markup {
    html! {
        label for=(id) { (label) }
        input #(id) type="text" name="code" autocomplete="one-time-code" autocapitalize="none" spellcheck="false"
            maxlength="20" required;
    }
}

/// A button that runs a passkey ceremony (`"create"` or `"get"`) with
/// `options` and sends its form with the browser's answer as the field `field`
/// (in place of any typed field of that name). Hidden until the script finds
/// WebAuthn: without JavaScript the form's other way (a code) stays.
pub fn passkey_button(ceremony: &str, options: &PasskeyOptions, field: &str, text: &str) -> Markup {
    html! {
        button.secondary type="button" data-passkey=(ceremony) data-options=(options.as_json()) data-field=(field) hidden { (text) }
    }
}

/// Where the script says why a passkey ceremony did not finish, and the note
/// for browsers without JavaScript.
pub fn passkey_notes(without_script: &str) -> Markup {
    html! {
        p.error #passkey-error role="alert" hidden {}
        noscript { p.warning { (without_script) } }
        script src="/static/app.js" {}
    }
}

/// One choice of a radio group, with its label.
pub fn radio(id: &str, name: &str, value: &str, checked: bool, text: &str) -> Markup {
    html! {
        label.choice for=(id) {
            input id=(id) type="radio" name=(name) value=(value) checked[checked];
            " " (text)
        }
    }
}

/// A Unix time as people read it, in UTC.
pub fn when(unix: u64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "a time out of range".to_owned())
}

/// A Unix time's date, in UTC.
pub fn day(unix: u64) -> String {
    when(unix).get(..10).unwrap_or_default().to_owned()
}

/// A number of seconds as people say it.
pub fn duration(seconds: u64) -> String {
    match seconds {
        0..=1 => "a second".to_owned(),
        2..=119 => format!("{seconds} seconds"),
        120..=7199 => format!("{} minutes", seconds.div_ceil(60)),
        _ => format!("{} hours", seconds.div_ceil(3600)),
    }
}

/// The style sheet: plain CSS, no framework, and a print style that keeps
/// only the backup codes.
pub const STYLE: &str = r#"
:root { font-family: system-ui, sans-serif; color: #1d2430; background: #f5f7fa; }
body { margin: 0; }
header { display: flex; gap: 1.5rem; align-items: center; padding: .75rem 1.5rem; background: #1f3a5f; color: #fff; flex-wrap: wrap; }
header a, header button.link { color: #fff; }
.brand { font-weight: 700; font-size: 1.2rem; text-decoration: none; }
nav { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
nav .area { opacity: .8; }
main { max-width: 52rem; margin: 1.5rem auto; padding: 1.5rem 2rem; background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
h1 { font-size: 1.5rem; margin-top: 0; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #dde3ea; padding-bottom: .25rem; }
label { display: block; font-weight: 600; margin: .75rem 0 .25rem; }
label.choice { font-weight: 400; margin: .3rem 0; }
input[type=text], input[type=email], input[type=password], input[type=number], input[type=date], select, textarea { font: inherit; padding: .45rem .6rem; border: 1px solid #9aa7b5; border-radius: 4px; min-width: 16rem; }
button, .button { font: inherit; padding: .5rem 1rem; border: 0; border-radius: 4px; background: #2563eb; color: #fff; cursor: pointer; margin-top: .75rem; text-decoration: none; display: inline-block; }
button.secondary, .button.secondary { background: #e5e9f0; color: #1d2430; }
button.danger { background: #b42318; }
button.link { background: none; padding: 0; margin: 0; text-decoration: underline; }
form.inline { display: inline; }
.flash { background: #e7f6ec; border-left: 4px solid #1a7f37; padding: .6rem .9rem; }
.warning { background: #fff4e5; border-left: 4px solid #b54708; padding: .6rem .9rem; }
.error { background: #fdecea; border-left: 4px solid #b42318; padding: .6rem .9rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid #e5e9f0; vertical-align: top; }
.qr svg { width: 220px; height: 220px; }
.key { font-family: ui-monospace, monospace; font-size: 1.2rem; letter-spacing: .05em; background: #f0f3f7; padding: .4rem .6rem; display: inline-block; }
.codes { font-family: ui-monospace, monospace; font-size: 1.1rem; columns: 2; list-style: none; padding: 0; }
textarea.codes-copy { font-family: ui-monospace, monospace; width: 100%; min-height: 7rem; }
.card { border: 1px solid #dde3ea; border-radius: 6px; padding: .75rem 1rem; margin: .75rem 0; }
pre.mail { white-space: pre-wrap; background: #f0f3f7; padding: .6rem; }
.pager { display: flex; gap: 1rem; margin-top: 1rem; }
@media print {
  header, form, .no-print, nav { display: none !important; }
  main { box-shadow: none; }
}
"#;

/// Copies the backup codes when JavaScript is on (without it the codes stay
/// selectable in their box, and download and print work as forms), and runs
/// the passkey ceremonies: the options come from the page (a `data-options`
/// attribute, so no inline script is needed under the CSP), the answer goes
/// back in the button's own form, as the browser's standard JSON.
pub const SCRIPT: &str = r#"
document.querySelectorAll('[data-passkey]').forEach(function (button) {
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseRequestOptionsFromJSON) { return; }
  button.hidden = false;
  button.addEventListener('click', function () {
    var error = document.getElementById('passkey-error');
    var name = button.getAttribute('data-field');
    button.disabled = true;
    Promise.resolve().then(function () {
      var options = JSON.parse(button.getAttribute('data-options')).publicKey;
      return button.getAttribute('data-passkey') === 'create'
        ? navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
        : navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
    }).then(function (credential) {
      var form = button.form;
      form.querySelectorAll('[name="' + name + '"]').forEach(function (typed) { typed.disabled = true; });
      var answer = document.createElement('input');
      answer.type = 'hidden';
      answer.name = name;
      answer.value = JSON.stringify(credential.toJSON());
      form.appendChild(answer);
      form.submit();
    }).catch(function (e) {
      button.disabled = false;
      error.textContent = e && e.name === 'NotAllowedError'
        ? 'The passkey was not used: it was cancelled, timed out, or could not verify you. Try again, or use another way.'
        : 'This browser could not use a passkey here (' + (e && e.name) + '). Use another way.';
      error.hidden = false;
    });
  });
});
document.querySelectorAll('[data-copy]').forEach(function (button) {
  button.hidden = false;
  button.addEventListener('click', function () {
    var box = document.getElementById(button.getAttribute('data-copy'));
    navigator.clipboard.writeText(box.value).then(function () { button.textContent = 'Copied'; });
  });
});
document.querySelectorAll('[data-print]').forEach(function (button) {
  button.hidden = false;
  button.addEventListener('click', function () { window.print(); });
});
"#;
