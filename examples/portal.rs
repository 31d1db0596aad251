//! A walk through one customer portal, start to finish, with no typing needed:
//!
//! admin enforces MFA → Alice signs in and must enrol (QR code below) → she
//! confirms with her app's first code → gets backup codes → signs in with TOTP
//! → the same code replayed is refused → she signs in with a backup code →
//! she loses her phone → the admin resets her MFA with a reason → at her next
//! sign-in she enrols again. The audit trail is printed at the end.
//!
//! ```sh
//! cargo run --example portal                      # in memory
//! cargo run --example portal -- --db portal.db    # on a SQLite file; run it twice
//! ```
//!
//! With `--db`, a second run finds Alice already enrolled and signs her in.

use std::sync::Arc;

use portal_mfa::{
    AuditEvent, Clock, Enforcement, EnrolmentOptions, Error, EventQuery, ManualClock, MemoryStore, MfaStore,
    OtpAuthUri, Portal, PortalId, ResetMode, ResetReason, SignInStep, SystemClock, Totp, UserId,
};

type DemoPortal = Portal<Arc<dyn MfaStore>, ManualClock>;

const ADMIN: &str = "admin@acme.example";

/// Stand-in for an authenticator app: it only ever sees the enrolment URI.
struct AuthenticatorApp {
    totp: Totp,
    name: String,
}

impl AuthenticatorApp {
    fn scan(uri: &OtpAuthUri) -> Result<Self, Error> {
        // Parse the text, as a phone would after reading the QR code.
        let scanned = OtpAuthUri::parse(&uri.to_uri())?;
        let name = format!("{} ({})", scanned.issuer().unwrap_or("?"), scanned.account());
        Ok(Self {
            totp: Totp::new(scanned.secret(), *scanned.params()),
            name,
        })
    }

    fn code_at(&self, now: u64) -> Result<String, Error> {
        Ok(self.totp.generate(now)?.expose().to_string())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let db = match args.as_slice() {
        [] => None,
        [flag, path] if flag == "--db" => Some(path.clone()),
        _ => {
            eprintln!("usage: portal [--db PATH]");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(db.as_deref()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn open_store(db: Option<&str>) -> Result<Arc<dyn MfaStore>, Error> {
    match db {
        None => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        Some(path) => Ok(Arc::new(portal_mfa::SqliteStore::open(path)?)),
        #[cfg(not(feature = "sqlite"))]
        Some(_) => {
            eprintln!("--db needs the `sqlite` feature (on by default)");
            std::process::exit(2);
        }
    }
}

fn run(db: Option<&str>) -> Result<(), Error> {
    let store = open_store(db)?;
    let portal_id = PortalId::new("acme-customers");
    // The walk-through moves its own clock forward; start after anything already stored.
    let last = store
        .events(&EventQuery::portal(&portal_id))?
        .last()
        .map_or(0, |e| e.at);
    let clock = ManualClock::at(SystemClock.now().max(last + 60));
    let portal: DemoPortal = Portal::new(portal_id, "Acme Customer Portal", store)
        .with_clock(clock.clone())
        .with_notifier(|e: &AuditEvent| println!("    📧 notify {}: {:?}", user_of(e), e.kind));
    let alice = UserId::customer("alice@example.com");

    if portal.record(&alice)?.mfa_enabled() {
        returning_visit(&portal, &clock, &alice)?;
    } else {
        first_visit(&portal, &clock, &alice)?;
    }

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

fn first_visit(portal: &DemoPortal, clock: &ManualClock, alice: &UserId) -> Result<(), Error> {
    step("The admin enforces MFA for every portal user");
    portal.set_enforcement(ADMIN, Enforcement::Enforced { grace: None })?;
    println!("    enforced: {}", portal.policy()?.is_enforced());

    step("Alice enters her email and password; what next?");
    println!("    {:?}", portal.begin_sign_in(alice)?);

    step("She must enrol: the portal shows a QR code and the key for typing");
    let enrolment = portal.start_enrolment(alice, "alice@example.com", "Alice's phone", EnrolmentOptions::default())?;
    println!("{}", enrolment.uri.qr_terminal()?.as_str());
    println!("    or type: {}", enrolment.uri.secret().to_grouped_base32().as_str());
    let phone = AuthenticatorApp::scan(&enrolment.uri)?;
    println!("    her app now shows an entry for {}", phone.name);

    step("She proves the app works by entering its code");
    let confirmed = portal.confirm_enrolment(alice, &phone.code_at(clock.now())?)?;
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
    println!("    {:?}", portal.begin_sign_in(alice)?);
    let code = phone.code_at(clock.now())?;
    let verified = portal.verify_sign_in(alice, &code)?;
    println!("    signed in with {:?}", verified.factor);

    step("Someone replays the same code");
    match portal.verify_sign_in(alice, &code) {
        Err(e @ Error::ReplayedCode) => println!("    refused: {e}"),
        other => println!("    unexpected: {other:?}"),
    }

    clock.advance(30);
    step("Her phone is in another room: she uses a backup code");
    let verified = portal.verify_sign_in(alice, &backup[0].to_lowercase())?;
    println!(
        "    signed in with {:?}; {} backup codes left",
        verified.factor, verified.backup_codes_remaining
    );

    clock.advance(86_400);
    step("She loses her phone (and her backup codes). The admin resets her MFA");
    let summary = portal.admin_reset(ADMIN, alice, ResetReason::LostDevice, ResetMode::default())?;
    println!("    {summary:?}");

    step("At her next sign-in she enrols a new phone; her account was never deleted");
    let next = portal.begin_sign_in(alice)?;
    println!("    {next:?}");
    assert!(matches!(next, SignInStep::MustEnrol { .. }));
    let enrolment = portal.start_enrolment(alice, "alice@example.com", "New phone", EnrolmentOptions::default())?;
    let new_phone = AuthenticatorApp::scan(&enrolment.uri)?;
    let confirmed = portal.confirm_enrolment(alice, &new_phone.code_at(clock.now())?)?;
    println!(
        "    authenticator {} active, {} new backup codes",
        confirmed.authenticator,
        confirmed.backup_codes.map_or(0, |c| c.len())
    );
    let old = portal.verify_sign_in(alice, &phone.code_at(clock.now() + 30)?);
    println!("    the old phone's codes no longer work: {:?}", old.err());
    Ok(())
}

fn returning_visit(portal: &DemoPortal, clock: &ManualClock, alice: &UserId) -> Result<(), Error> {
    let record = portal.record(alice)?;
    step("Welcome back: the database already knows Alice");
    for a in record.authenticators() {
        println!(
            "    authenticator {} \"{}\", added at {}",
            a.id(),
            a.label(),
            a.added_at()
        );
    }
    println!(
        "    backup codes left: {}",
        record.backup_codes().map_or(0, |b| b.remaining())
    );
    println!("    policy enforced: {}", portal.policy()?.is_enforced());

    step("She signs in with the code her phone shows");
    println!("    {:?}", portal.begin_sign_in(alice)?);
    // The demo plays her phone, which holds the same secret the store keeps.
    let authenticator = &record.authenticators()[0];
    let phone = Totp::new(authenticator.secret(), *authenticator.params());
    let code = phone.generate(clock.now())?.expose().to_string();
    let verified = portal.verify_sign_in(alice, &code)?;
    println!("    signed in with {:?}", verified.factor);
    Ok(())
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
