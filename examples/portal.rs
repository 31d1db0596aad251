//! A walk through one customer portal, start to finish, with no typing needed:
//!
//! admin enforces MFA → Alice signs in and must enrol (QR code below) → she
//! confirms with her app's first code → gets backup codes → signs in with TOTP
//! → the same code replayed is refused → she signs in with a backup code →
//! she loses her phone and her codes → past her password she asks for a reset
//! → the admin approves it (a Reset MFA) → at her next sign-in she enrols
//! again. The audit trail and the emails she is sent are printed at the end.
//!
//! ```sh
//! cargo run --example portal                      # in memory
//! cargo run --example portal -- --db portal.db    # on a SQLite file; run it twice
//! cargo run --example portal --features postgres -- --db postgres://user:password@localhost/portal
//! ```
//!
//! With `--db`, a second run finds Alice already enrolled and signs her in.
//! The TOTP secrets in the database are sealed under a key kept in a key file
//! beside it (`PATH.key`, mode 0600, created on the first run; for PostgreSQL,
//! `portal-mfa-postgres.key` in the current directory); a real host loads its
//! keys from its own secret store instead (see `guide::keys`). Alice's phone is
//! played by `PATH.phone` (the enrolment URI her app scanned).

use std::sync::Arc;

use portal_mfa::store::BlockingStore;
use portal_mfa::{
    Admin, Clock, Enforcement, EnrolmentOptions, Error, Keyring, ManualClock, Portal, PortalId, SignInStep,
    SystemClock, UserId,
    admin::{ResetMode, StatusFilter, UserQuery},
    audit::{AuditEvent, EventQuery},
    otp::{OtpAuthUri, Totp},
    store::MemoryStore,
};

type DemoPortal = Portal<Arc<dyn BlockingStore>, ManualClock>;
type BoxError = Box<dyn std::error::Error>;

/// The demo's admin; a real host authorises the signed-in admin first.
fn admin() -> Admin {
    Admin::authorised("admin@acme.example")
}

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
            eprintln!("usage: portal [--db PATH | --db postgres://URL]");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(db.as_deref()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The example's key file: one line, `portal-mfa-key <id> <64 hex digits>`.
/// A stand-in for a secret store; created with mode 0600 on the first run.
fn load_or_create_keyring(path: &str) -> Result<Keyring, BoxError> {
    let key_file = format!("{path}.key");
    if let Ok(text) = std::fs::read_to_string(&key_file) {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [tag, id, hex] = fields.as_slice() else {
            return Err(format!("{key_file}: not a portal-mfa key file").into());
        };
        let key: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect::<Option<_>>()
            .filter(|_| *tag == "portal-mfa-key")
            .ok_or_else(|| format!("{key_file}: not a portal-mfa key file"))?;
        return Ok(Keyring::new(id, &zeroize::Zeroizing::new(key))?);
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        // A new key would not open what the old one sealed: refuse rather than start over.
        return Err(format!("{key_file} is missing: the secrets in {path} cannot be opened without it").into());
    }
    let key = Keyring::generate_key(&mut rand::rng());
    let id = "example-1";
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    std::io::Write::write_all(
        &mut file.open(&key_file)?,
        format!("portal-mfa-key {id} {hex}\n").as_bytes(),
    )?;
    Ok(Keyring::new(id, key.as_slice())?)
}

/// Whether `db` names a PostgreSQL database rather than a SQLite file.
fn is_postgres(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://") || db.contains("host=")
}

/// Where the demo keeps its key file and Alice's phone: beside a SQLite file,
/// or in the current directory for a server (never a name with the password in it).
fn local_files(db: &str) -> String {
    if is_postgres(db) {
        "portal-mfa-postgres".to_owned()
    } else {
        db.to_owned()
    }
}

fn open_store(db: Option<&str>) -> Result<(Arc<dyn BlockingStore>, Option<Keyring>), BoxError> {
    match db {
        None => Ok((Arc::new(MemoryStore::new()), None)),
        #[cfg(feature = "postgres")]
        Some(url) if is_postgres(url) => {
            let keyring = load_or_create_keyring(&local_files(url))?;
            let store = portal_mfa::store::PostgresStore::connect(url, portal_mfa::store::PostgresOptions::new())?;
            Ok((Arc::new(store), Some(keyring)))
        }
        #[cfg(not(feature = "postgres"))]
        Some(url) if is_postgres(url) => {
            eprintln!(
                "a postgres:// database needs the `postgres` feature: cargo run --example portal --features postgres -- --db URL"
            );
            std::process::exit(2);
        }
        #[cfg(feature = "sqlite")]
        Some(path) => {
            let keyring = Arc::new(load_or_create_keyring(path)?);
            // `upgrade_with` seals the plaintext secrets of a file an older version wrote.
            let options = portal_mfa::store::SqliteOptions::new().upgrade_with(keyring.clone());
            let store = portal_mfa::store::SqliteStore::open_with(path, options)?;
            Ok((
                Arc::new(store),
                Some(Arc::try_unwrap(keyring).map_err(|_| "keyring still shared")?),
            ))
        }
        #[cfg(not(feature = "sqlite"))]
        Some(_) => {
            eprintln!("--db needs the `sqlite` feature (on by default)");
            std::process::exit(2);
        }
    }
}

fn run(db: Option<&str>) -> Result<(), BoxError> {
    let (store, keyring) = open_store(db)?;
    let clock = ManualClock::at(SystemClock.now());
    let mut portal: DemoPortal = Portal::new(PortalId::new("acme-customers"), "Acme Customer Portal", store)?
        .with_clock(clock.clone())
        .with_notifier(|e: &AuditEvent| print_email(e));
    if let Some(keyring) = keyring {
        portal = portal.with_keyring(keyring);
    }
    // The walk-through moves its own clock forward; start after anything already stored.
    let last = portal
        .audit_events(EventQuery::portal(portal.id()).newest_first().limit(1))
        .run()?
        .items
        .first()
        .map_or(0, |e| e.at);
    clock.set(clock.now().max(last + 60));
    let alice = UserId::customer("alice@example.com");
    let phone_file = db.map(|db| format!("{}.phone", local_files(db)));

    match &phone_file {
        Some(file) if portal.record(&alice).run()?.mfa_enabled() => returning_visit(&portal, &clock, &alice, file)?,
        _ => first_visit(&portal, &clock, &alice, phone_file.as_deref())?,
    }

    step("The audit trail");
    for event in portal.audit_events(EventQuery::portal(portal.id())).run()?.items {
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

fn first_visit(
    portal: &DemoPortal,
    clock: &ManualClock,
    alice: &UserId,
    phone_file: Option<&str>,
) -> Result<(), BoxError> {
    step("The admin enforces MFA for every portal user");
    portal
        .set_enforcement(&admin(), Enforcement::Enforced { grace: None })
        .run()?;
    println!("    enforced: {}", portal.policy().run()?.is_enforced());

    step("Alice enters her email and password; what next?");
    let next = portal.begin_sign_in(alice).run()?;
    println!("    {next:?}");
    // The password step's stamp lets her enrol, and only that.
    let SignInStep::MustEnrol { session, .. } = next else {
        return Err("an enforced policy makes a new user enrol".into());
    };

    step("She must enrol: the portal shows a QR code and the key for typing");
    let enrolment = portal
        .start_enrolment(
            alice,
            &session,
            "alice@example.com",
            "Alice's phone",
            EnrolmentOptions::default(),
        )
        .run()?;
    println!("{}", enrolment.uri.qr_terminal()?.as_str());
    println!("    or type: {}", enrolment.uri.secret().to_grouped_base32().as_str());
    let phone = AuthenticatorApp::scan(&enrolment.uri)?;
    println!("    her app now shows an entry for {}", phone.name);

    step("She proves the app works by entering its code");
    let confirmed = portal
        .confirm_enrolment(alice, &session, &phone.code_at(clock.now())?)
        .run()?;
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
    println!("    {:?}", portal.begin_sign_in(alice).run()?);
    let code = phone.code_at(clock.now())?;
    let verified = portal.verify_sign_in(alice, &code).run()?;
    println!("    signed in with {:?}", verified.factor);

    step("Someone replays the same code");
    match portal.verify_sign_in(alice, &code).run() {
        Err(e @ Error::ReplayedCode) => println!("    refused: {e}"),
        other => println!("    unexpected: {other:?}"),
    }

    clock.advance(30);
    step("Her phone is in another room: she uses a backup code");
    let verified = portal.verify_sign_in(alice, &backup[0].to_lowercase()).run()?;
    println!(
        "    signed in with {:?}; {} backup codes left",
        verified.factor, verified.backup_codes_remaining
    );

    clock.advance(86_400);
    step("She loses her phone (and her backup codes). Past her password, she asks for a reset");
    let request = portal
        .request_reset(alice, "Phone stolen on the train; my backup codes were on it.")
        .run()?;
    println!("    request at {}: {:?}", request.at, &*request.note);
    let waiting = portal
        .users(UserQuery::new().status(StatusFilter::ResetRequested))
        .run()?;
    println!(
        "    the admin's list of requests: {:?}",
        waiting.items.iter().map(|s| s.user.to_string()).collect::<Vec<_>>()
    );

    step("The admin calls her back, confirms it is her, and approves: a Reset MFA");
    let summary = portal
        .approve_reset_request(&admin(), alice, ResetMode::default())
        .run()?;
    println!("    {summary:?}");

    step("At her next sign-in she enrols a new phone; her account was never deleted");
    let next = portal.begin_sign_in(alice).run()?;
    println!("    {next:?}");
    let SignInStep::MustEnrol { session, .. } = next else {
        return Err("a reset user must enrol again".into());
    };
    let enrolment = portal
        .start_enrolment(
            alice,
            &session,
            "alice@example.com",
            "New phone",
            EnrolmentOptions::default(),
        )
        .run()?;
    println!(
        "    she types the key into her new phone: {}",
        enrolment.uri.secret().to_grouped_base32().as_str()
    );
    let new_phone = AuthenticatorApp::scan(&enrolment.uri)?;
    if let Some(file) = phone_file {
        // Her new phone keeps what it scanned; the database keeps only the sealed secret.
        std::fs::write(file, enrolment.uri.to_uri().as_bytes())?;
    }
    let confirmed = portal
        .confirm_enrolment(alice, &session, &new_phone.code_at(clock.now())?)
        .run()?;
    println!(
        "    authenticator {} active, {} new backup codes",
        confirmed.authenticator,
        confirmed.backup_codes.map_or(0, |c| c.len())
    );
    let old = portal.verify_sign_in(alice, &phone.code_at(clock.now() + 30)?).run();
    println!("    the old phone's codes no longer work: {:?}", old.err());
    Ok(())
}

fn returning_visit(portal: &DemoPortal, clock: &ManualClock, alice: &UserId, phone_file: &str) -> Result<(), BoxError> {
    let record = portal.record(alice).run()?;
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
    println!("    policy enforced: {}", portal.policy().run()?.is_enforced());

    step("She signs in with the code her phone shows");
    println!("    {:?}", portal.begin_sign_in(alice).run()?);
    // The demo plays her phone, which kept the URI it scanned.
    let phone = AuthenticatorApp::scan(&OtpAuthUri::parse(&std::fs::read_to_string(phone_file)?)?)?;
    let code = phone.code_at(clock.now())?;
    let verified = portal.verify_sign_in(alice, &code).run()?;
    println!("    signed in with {:?}", verified.factor);
    Ok(())
}

/// The email the host would send for an event the user must hear about
/// (here printed; a real host looks up the address and sends it).
fn print_email(event: &AuditEvent) {
    let Some(notice) = event.notice("Acme Customer Portal") else {
        return;
    };
    println!("    📧 To: {}\n       Subject: {}", notice.to, notice.subject);
    for line in notice.body.lines() {
        println!("       {line}");
    }
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
