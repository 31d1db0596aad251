//! A walk through one customer portal, start to finish, with no typing needed:
//!
//! admin enforces MFA → Alice signs in and must enrol (QR code below) → she
//! confirms with her app's first code → gets backup codes → signs in with TOTP
//! → the same code replayed is refused → she signs in with a backup code →
//! she loses her phone → the admin resets her MFA with a reason → at her next
//! sign-in she enrols again. The audit trail is printed at the end.
//!
//! Run with `cargo run --example portal`.

use std::sync::Arc;

use portal_mfa::{
    AuditEvent, Enforcement, EnrolmentOptions, Error, EventQuery, ManualClock, MemoryStore, OtpAuthUri, Portal,
    PortalId, ResetMode, ResetReason, SignInStep, Totp, UserId,
};

mod phone {
    use super::*;

    /// Stand-in for an authenticator app: it only ever sees the enrolment URI.
    pub(crate) struct AuthenticatorApp {
        totp: Totp,
        pub(crate) name: String,
    }

    impl AuthenticatorApp {
        pub(crate) fn scan(uri: &OtpAuthUri) -> Result<Self, Error> {
            // Parse the text, as a phone would after reading the QR code.
            let scanned = OtpAuthUri::parse(&uri.to_uri())?;
            let name = format!("{} ({})", scanned.issuer().unwrap_or("?"), scanned.account());
            Ok(Self {
                totp: Totp::new(scanned.secret(), *scanned.params()),
                name,
            })
        }

        pub(crate) fn code_at(&self, now: u64) -> Result<String, Error> {
            Ok(self.totp.generate(now)?.expose().to_string())
        }
    }
}

fn main() -> Result<(), Error> {
    let clock = ManualClock::at(1_763_800_000);
    let store = Arc::new(MemoryStore::new());
    let portal = Portal::new(PortalId::new("acme-customers"), "Acme Customer Portal", store.clone())
        .with_clock(clock.clone())
        .with_notifier(|e: &AuditEvent| println!("    📧 notify {}: {:?}", user_of(e), e.kind));
    let alice = UserId::customer("alice@example.com");

    step("The admin enforces MFA for every portal user");
    portal.set_enforcement("admin@acme.example", Enforcement::Enforced { grace: None })?;
    println!("    enforced: {}", portal.policy()?.is_enforced());

    step("Alice enters her email and password; what next?");
    let next = portal.begin_sign_in(&alice)?;
    println!("    {next:?}");

    step("She must enrol: the portal shows a QR code and the key for typing");
    let enrolment = portal.start_enrolment(
        &alice,
        "alice@example.com",
        "Alice's phone",
        EnrolmentOptions::default(),
    )?;
    println!("{}", enrolment.uri.qr_terminal()?.as_str());
    println!("    or type: {}", enrolment.uri.secret().to_grouped_base32().as_str());
    let phone = phone::AuthenticatorApp::scan(&enrolment.uri)?;
    println!("    her app now shows an entry for {}", phone.name);

    step("She proves the app works by entering its code");
    let confirmed = portal.confirm_enrolment(&alice, &phone.code_at(clock_now(&clock))?)?;
    println!("    authenticator {} active", confirmed.authenticator);
    let backup: Vec<String> = confirmed
        .backup_codes
        .iter()
        .flat_map(|c| c.expose())
        .map(str::to_owned)
        .collect();
    println!(
        "    backup codes (shown once, download or copy them): {}",
        backup.join("  ")
    );

    clock.advance(30);
    step("Half a minute later she signs in with a code from the app");
    println!("    {:?}", portal.begin_sign_in(&alice)?);
    let code = phone.code_at(clock_now(&clock))?;
    let verified = portal.verify_sign_in(&alice, &code)?;
    println!("    signed in with {:?}", verified.factor);

    step("Someone replays the same code");
    match portal.verify_sign_in(&alice, &code) {
        Err(e @ Error::ReplayedCode) => println!("    refused: {e}"),
        other => println!("    unexpected: {other:?}"),
    }

    clock.advance(30);
    step("Her phone is in another room: she uses a backup code");
    let verified = portal.verify_sign_in(&alice, &backup[0].to_lowercase())?;
    println!(
        "    signed in with {:?}; {} backup codes left",
        verified.factor, verified.backup_codes_remaining
    );

    clock.advance(86_400);
    step("She loses her phone (and her backup codes). The admin resets her MFA");
    let summary = portal.admin_reset(
        "admin@acme.example",
        &alice,
        ResetReason::LostDevice,
        ResetMode::default(),
    )?;
    println!("    {summary:?}");

    step("At her next sign-in she enrols a new phone; her account was never deleted");
    let next = portal.begin_sign_in(&alice)?;
    println!("    {next:?}");
    assert!(matches!(next, SignInStep::MustEnrol { .. }));
    let enrolment = portal.start_enrolment(&alice, "alice@example.com", "New phone", EnrolmentOptions::default())?;
    let new_phone = phone::AuthenticatorApp::scan(&enrolment.uri)?;
    let confirmed = portal.confirm_enrolment(&alice, &new_phone.code_at(clock_now(&clock))?)?;
    println!(
        "    authenticator {} active, {} new backup codes",
        confirmed.authenticator,
        confirmed.backup_codes.map_or(0, |c| c.len())
    );
    println!(
        "    the old phone's codes no longer work: {:?}",
        portal
            .verify_sign_in(&alice, &phone.code_at(clock_now(&clock) + 30)?)
            .err()
    );

    step("The audit trail");
    for event in portal.audit_events(EventQuery::portal(portal.id()))? {
        println!(
            "    {:>10}  {:<28} {:<32} {:?}",
            event.at,
            user_of(&event),
            format!("{:?}", event.actor),
            event.kind
        );
    }
    Ok(())
}

fn clock_now(clock: &ManualClock) -> u64 {
    portal_mfa::Clock::now(clock)
}

fn user_of(event: &AuditEvent) -> String {
    event
        .user
        .as_ref()
        .map_or_else(|| "(portal)".to_owned(), ToString::to_string)
}

fn step(title: &str) {
    println!("\n▶ {title}");
}
