//! `portal-mfa-admin`: the command line a host's operator runs against the
//! same SQLite file or PostgreSQL database and keyring as the host's portal.
//! Every change takes `--reason` and is audited under the operator's name
//! (the break-glass path when the admins themselves cannot sign in).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use portal_mfa::admin::{BulkReset, ResetMode, ResetReason, ResetSelection, StatusFilter, UserQuery};
use portal_mfa::audit::{AuditEvent, EventQuery};
use portal_mfa::store::{MfaStore, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore};
use portal_mfa::{Admin, Enforcement, Error, ErrorKind, Keyring, Portal, PortalId, UserId, UserKind};
use serde::{Deserialize, Serialize};

const EXIT_CODES: &str = "Exit codes: 0 done; 2 bad arguments; 3 not found (no such user record, no open request); \
4 refused (by the policy, or invalid input); 5 storage (busy, unreachable, damaged); \
6 configuration (a missing or wrong key file, a missing database). Nothing is half-done on a non-zero exit: \
each user's change is one commit.";

/// Administer portal-mfa from the command line.
#[derive(Parser)]
#[command(name = "portal-mfa-admin", version, about, after_help = EXIT_CODES, args_override_self = true)]
#[command(group(ArgGroup::new("store").required(true).args(["sqlite", "postgres"])))]
struct Cli {
    /// The SQLite file the portal uses (never created here).
    #[arg(long, value_name = "FILE", global = true)]
    sqlite: Option<PathBuf>,
    /// The PostgreSQL database the portal uses, as a URL or key=value string.
    #[arg(
        long,
        value_name = "URL",
        env = "PORTAL_MFA_POSTGRES",
        hide_env_values = true,
        global = true
    )]
    postgres: Option<String>,
    /// The PostgreSQL schema the portal's tables are in.
    #[arg(long, value_name = "NAME", global = true)]
    postgres_schema: Option<String>,
    /// The key file (`portal-mfa-key <id> <hex>`) the portal seals records with.
    #[arg(long, value_name = "FILE", global = true, default_value = "keyring.key")]
    keyring: PathBuf,
    /// An older key file still needed to open records (repeatable; see `reseal`).
    #[arg(long = "old-key", value_name = "FILE", global = true)]
    old_keys: Vec<PathBuf>,
    /// The portal's id, as the host names it (`acme`, `acme-admin`).
    #[arg(long, env = "PORTAL_MFA_PORTAL", global = true, default_value = "acme")]
    portal: String,
    /// Who is running this, for the audit trail.
    #[arg(long, env = "PORTAL_MFA_OPERATOR", global = true, default_value = "operator")]
    operator: String,
    /// Why: required by every command that changes something, and recorded with each change.
    #[arg(long, global = true)]
    reason: Option<String>,
    /// Machine-readable output: one JSON document (or JSON Lines for lists).
    #[arg(long, global = true)]
    json: bool,
    /// How long to wait for a busy database before giving up, in seconds.
    #[arg(long, value_name = "SECONDS", global = true, default_value_t = 5)]
    busy_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List users by MFA status.
    Users {
        /// any, mfa_off, enrolled, pending_enrolment, must_reenrol, locked_out, in_grace, reset_requested.
        #[arg(long, default_value = "any")]
        status: String,
        /// customer, vendor, contact or member.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One user's factors, state and latest audit events.
    Show {
        /// The user, as `kind:id` (`customer:alice@example.com`).
        user: String,
        /// How many of the newest events to show.
        #[arg(long, default_value_t = 20)]
        events: usize,
    },
    /// Reset one user's MFA (they set it up again at their next sign-in).
    Reset {
        /// The user, as `kind:id`.
        user: String,
        /// Remove the factors only: a self-configured user then signs in without MFA.
        #[arg(long)]
        remove_only: bool,
        /// Say what would be removed, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Approve a user's open reset request (a reset whose reason is their request).
    Approve {
        /// The user, as `kind:id`.
        user: String,
        /// Remove the factors only.
        #[arg(long)]
        remove_only: bool,
    },
    /// Decline a user's open reset request; they hear of it.
    Decline {
        /// The user, as `kind:id`.
        user: String,
        /// What to tell the user.
        #[arg(long, default_value = "")]
        message: String,
    },
    /// Reset every user a selection names, for an incident; resumable.
    BulkReset(BulkArgs),
    /// Export the audit trail, oldest first.
    ExportAudit {
        /// csv or jsonl.
        #[arg(long, value_enum)]
        format: Format,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Only this user's events (`kind:id`).
        #[arg(long)]
        user: Option<String>,
    },
    /// Re-seal every record under the keyring's current key (give the old keys with --old-key).
    Reseal {
        /// Records per batch.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Count the records still under an older key, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show or change the portal's policy.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
}

#[derive(clap::Args)]
struct BulkArgs {
    /// The incident's id, recorded on every reset.
    #[arg(long)]
    incident: String,
    /// When the incident began (Unix time; default: now). Factors added since are left alone.
    #[arg(long, value_name = "UNIX_TIME")]
    started_at: Option<u64>,
    /// Only users of this kind.
    #[arg(long)]
    kind: Option<String>,
    /// Only users in this status (as for `users`).
    #[arg(long, default_value = "any")]
    status: String,
    /// Only users holding a factor added before this Unix time.
    #[arg(long, value_name = "UNIX_TIME")]
    added_before: Option<u64>,
    /// Only users holding a factor last used before this Unix time.
    #[arg(long, value_name = "UNIX_TIME")]
    last_used_before: Option<u64>,
    /// Remove the factors only.
    #[arg(long)]
    remove_only: bool,
    /// Users per batch.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// A pause between batches, in milliseconds, so the portal's own sign-ins get the database's one
    /// writer between them (SQLite: a waiting connection backs off in growing sleeps).
    #[arg(long, value_name = "MS", default_value_t = 5)]
    pause_ms: u64,
    /// Count who would be reset, changing nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the sweep keeps its place, to resume after a crash (default: `bulk-reset-<incident>.json`).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Print the policy.
    Show,
    /// Change it.
    Set {
        /// Whether every user must use MFA.
        #[arg(long, value_enum)]
        enforcement: Option<OnOff>,
        /// How many days a trusted browser skips the code (0: none).
        #[arg(long)]
        trusted_browser_days: Option<u8>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// Why the command stopped, and its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: 3,
            message: message.into(),
        }
    }
    fn config(message: impl Into<String>) -> Self {
        Self {
            code: 6,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e.kind() {
            ErrorKind::NotFound => 3,
            ErrorKind::Storage | ErrorKind::Conflict => 5,
            ErrorKind::Misconfigured => 6,
            _ => 4,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

type Outcome<T = ()> = Result<T, Failure>;
type AdminPortal = Portal<Arc<dyn MfaStore>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("portal-mfa-admin: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: &Cli) -> Outcome {
    let changes = match &cli.command {
        Command::Users { .. } | Command::Show { .. } | Command::ExportAudit { .. } => false,
        Command::Policy {
            action: PolicyAction::Show,
        } => false,
        Command::Reset { dry_run, .. } | Command::Reseal { dry_run, .. } => !dry_run,
        Command::BulkReset(args) => !args.dry_run,
        _ => true,
    };
    let reason = cli.reason.as_deref().map(str::trim).unwrap_or_default();
    if changes && reason.is_empty() {
        return Err(Failure::usage("this command changes something: say why with --reason"));
    }
    let admin = Admin::operator(cli.operator.as_str(), reason);
    let portal = open(cli)?;
    let out = &mut std::io::stdout().lock();
    match &cli.command {
        Command::Users { status, kind, limit } => users(cli, &portal, status, kind.as_deref(), *limit, out),
        Command::Show { user, events } => show(cli, &portal, &user_id(user)?, *events, out),
        Command::Reset {
            user,
            remove_only,
            dry_run,
        } => {
            let user = user_id(user)?;
            let record = existing(&portal, &user)?;
            if *dry_run {
                let text = format!(
                    "would reset {user}: {} authenticator apps, {} passkeys, {} backup codes",
                    record.authenticators().len(),
                    record.passkeys().len(),
                    record.backup_codes().map_or(0, |c| c.remaining())
                );
                return say(
                    cli,
                    out,
                    &text,
                    &serde_json::json!({ "user": user.to_string(), "dry_run": true }),
                );
            }
            let summary = portal
                .admin_reset(&admin, &user, ResetReason::Other(reason.into()), mode(*remove_only))
                .run()?;
            reset_said(cli, out, &user, &summary)
        }
        Command::Approve { user, remove_only } => {
            let user = user_id(user)?;
            let summary = portal.approve_reset_request(&admin, &user, mode(*remove_only)).run()?;
            reset_said(cli, out, &user, &summary)
        }
        Command::Decline { user, message } => {
            let user = user_id(user)?;
            portal.decline_reset_request(&admin, &user, message).run()?;
            say(
                cli,
                out,
                &format!("declined {user}'s request"),
                &serde_json::json!({ "declined": user.to_string() }),
            )
        }
        Command::BulkReset(args) => bulk_reset(cli, &portal, &admin, args, out),
        Command::ExportAudit { format, output, user } => export(&portal, *format, output.as_deref(), user.as_deref()),
        Command::Reseal { batch, dry_run } => reseal(cli, &portal, *batch, *dry_run, out),
        Command::Policy { action } => policy(cli, &portal, &admin, action, out),
    }
}

/// The portal over the store the arguments name, with the keyring.
fn open(cli: &Cli) -> Outcome<AdminPortal> {
    let keyring = keyring(&cli.keyring, &cli.old_keys)?;
    let store: Arc<dyn MfaStore> = match (&cli.sqlite, &cli.postgres) {
        (Some(path), _) => {
            if !path.is_file() {
                return Err(Failure::config(format!("{}: no such database file", path.display())));
            }
            let options = SqliteOptions::new()
                .busy_timeout(Duration::from_secs(cli.busy_timeout))
                .secure_delete(true);
            Arc::new(SqliteStore::open_with(path, options).map_err(Error::from)?)
        }
        (None, Some(url)) => {
            let mut options = PostgresOptions::new();
            if let Some(schema) = &cli.postgres_schema {
                options = options.schema(schema);
            }
            Arc::new(PostgresStore::connect(url, options).map_err(Error::from)?)
        }
        (None, None) => return Err(Failure::usage("give --sqlite FILE or --postgres URL")),
    };
    Ok(Portal::new(PortalId::new(cli.portal.as_str()), &cli.portal, store)?.with_keyring(keyring))
}

/// A key file as the reference portal writes it: `portal-mfa-key <id> <hex>`.
fn key_file(path: &Path) -> Outcome<(String, zeroize::Zeroizing<Vec<u8>>)> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| Failure::config(format!("{}: {e}", path.display())))?,
    );
    let bad = || Failure::config(format!("{}: not a portal-mfa key file", path.display()));
    let fields: Vec<&str> = text.split_whitespace().collect();
    let ["portal-mfa-key", id, hex] = fields.as_slice() else {
        return Err(bad());
    };
    let key: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect();
    Ok(((*id).to_owned(), zeroize::Zeroizing::new(key.ok_or_else(bad)?)))
}

fn keyring(current: &Path, old: &[PathBuf]) -> Outcome<Keyring> {
    let (id, key) = key_file(current)?;
    let mut keyring = Keyring::new(&id, &key)?;
    for path in old {
        let (id, key) = key_file(path)?;
        keyring = keyring.with_old_key(&id, &key)?;
    }
    Ok(keyring)
}

fn user_id(text: &str) -> Outcome<UserId> {
    let (kind, id) = text
        .split_once(':')
        .ok_or_else(|| Failure::usage(format!("{text}: a user is kind:id, e.g. customer:alice@example.com")))?;
    Ok(UserId::new(kind_named(kind)?, id))
}

fn kind_named(name: &str) -> Outcome<UserKind> {
    UserKind::from_name(name)
        .ok_or_else(|| Failure::usage(format!("{name}: not a user kind (customer, vendor, contact, member)")))
}

fn status_named(name: &str) -> Outcome<StatusFilter> {
    StatusFilter::from_name(name).ok_or_else(|| Failure::usage(format!("{name}: not a status")))
}

fn mode(remove_only: bool) -> ResetMode {
    if remove_only {
        ResetMode::RemoveOnly
    } else {
        ResetMode::ForceReenrolment
    }
}

/// The user's record, refusing a user with no MFA state at all (most likely a typo).
fn existing(portal: &AdminPortal, user: &UserId) -> Outcome<portal_mfa::record::MfaRecord> {
    let record = portal.record(user).run()?;
    if record.factor_count() == 0 && record.pending().is_none() && !record.must_enrol() {
        return Err(Failure::not_found(format!("{user} has no MFA to reset")));
    }
    Ok(record)
}

fn write_failed(e: std::io::Error) -> Failure {
    Failure {
        code: 1,
        message: format!("writing the output: {e}"),
    }
}

fn say(cli: &Cli, out: &mut dyn Write, text: &str, json: &serde_json::Value) -> Outcome {
    if cli.json {
        writeln!(out, "{json}")
    } else {
        writeln!(out, "{text}")
    }
    .map_err(write_failed)
}

fn reset_said(cli: &Cli, out: &mut dyn Write, user: &UserId, s: &portal_mfa::admin::ResetSummary) -> Outcome {
    let text = format!(
        "reset {user}: {} authenticator apps, {} passkeys and {} backup codes removed",
        s.authenticators_removed, s.passkeys_removed, s.backup_codes_removed
    );
    let json = serde_json::json!({
        "user": user.to_string(),
        "authenticators_removed": s.authenticators_removed,
        "passkeys_removed": s.passkeys_removed,
        "backup_codes_removed": s.backup_codes_removed,
        "must_enrol": s.must_enrol,
    });
    say(cli, out, &text, &json)
}

fn users(
    cli: &Cli,
    portal: &AdminPortal,
    status: &str,
    kind: Option<&str>,
    limit: usize,
    out: &mut dyn Write,
) -> Outcome {
    let mut query = UserQuery::new()
        .status(status_named(status)?)
        .limit(limit.clamp(1, portal_mfa::MAX_PAGE));
    if let Some(kind) = kind {
        query = query.kind(kind_named(kind)?);
    }
    let page = portal.users(query).run()?;
    for s in &page.items {
        let line = if cli.json {
            serde_json::to_string(s).map_err(|e| Failure {
                code: 1,
                message: e.to_string(),
            })?
        } else {
            format!(
                "{:<40} apps {} passkeys {} backup {:>2} {}{}{}",
                s.user.to_string(),
                s.authenticators - s.passkeys,
                s.passkeys,
                s.backup_codes_left,
                if s.locked.is_some() { "locked " } else { "" },
                if s.must_reenrol { "must-reenrol " } else { "" },
                if s.reset_requested_at.is_some() {
                    "reset-requested"
                } else {
                    ""
                },
            )
        };
        writeln!(out, "{line}").map_err(write_failed)?;
    }
    Ok(())
}

fn show(cli: &Cli, portal: &AdminPortal, user: &UserId, events: usize, out: &mut dyn Write) -> Outcome {
    let record = portal.record(user).run()?;
    let query = EventQuery::portal(portal.id())
        .user(user)
        .newest_first()
        .limit(events.clamp(1, portal_mfa::MAX_PAGE));
    let trail = portal.audit_events(query).run()?.items;
    let apps: Vec<_> = record
        .authenticators()
        .iter()
        .map(|a| serde_json::json!({ "id": a.id().0, "label": a.label(), "added_at": a.added_at() }))
        .collect();
    let passkeys: Vec<_> = record
        .passkeys()
        .iter()
        .map(|p| {
            serde_json::json!({ "id": p.id().0, "label": p.label(), "added_at": p.added_at(), "last_used_at": p.last_used_at() })
        })
        .collect();
    let json = serde_json::json!({
        "user": user.to_string(),
        "authenticator_apps": apps,
        "passkeys": passkeys,
        "backup_codes_left": record.backup_codes().map_or(0, |c| c.remaining()),
        "must_reenrol": record.must_enrol(),
        "consecutive_failures": record.failures().consecutive(),
        "reset_request": record.reset_request().map(|r| serde_json::json!({ "at": r.at, "note": &*r.note })),
        "events": trail,
    });
    if cli.json {
        return writeln!(out, "{json}").map_err(write_failed);
    }
    let mut text = format!("{user}\n");
    for a in record.authenticators() {
        text.push_str(&format!(
            "  app #{} \"{}\", added {}\n",
            a.id().0,
            a.label(),
            a.added_at()
        ));
    }
    for p in record.passkeys() {
        text.push_str(&format!(
            "  passkey #{} \"{}\", added {}\n",
            p.id().0,
            p.label(),
            p.added_at()
        ));
    }
    text.push_str(&format!(
        "  backup codes left: {}; failures: {}{}\n",
        record.backup_codes().map_or(0, |c| c.remaining()),
        record.failures().consecutive(),
        if record.must_enrol() { "; must re-enrol" } else { "" }
    ));
    if let Some(request) = record.reset_request() {
        text.push_str(&format!("  reset requested at {}: {}\n", request.at, request.note));
    }
    text.push_str("  events, newest first:\n");
    for e in &trail {
        text.push_str(&format!("    {} {} by {:?}\n", e.at, e.kind.name(), e.actor));
    }
    write!(out, "{text}").map_err(write_failed)
}

/// Where a bulk reset keeps its place between batches.
#[derive(Serialize, Deserialize)]
struct SweepState {
    incident: String,
    started_at: u64,
    /// The last user of the last completed batch (`kind:id`); `None` before the first.
    after: Option<String>,
    examined: u64,
    reset: u64,
    complete: bool,
}

impl SweepState {
    fn load(path: &Path) -> Outcome<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Failure::config(format!("{}: not a bulk-reset state file: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::config(format!("{}: {e}", path.display()))),
        }
    }

    /// Written whole to a temporary file, then renamed over the old one: a crash leaves one or the other.
    fn save(&self, path: &Path) -> Outcome {
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(self).map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Failure::config(format!("{}: {e}", path.display())))
    }
}

fn bulk_reset(cli: &Cli, portal: &AdminPortal, admin: &Admin, args: &BulkArgs, out: &mut dyn Write) -> Outcome {
    let path = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("bulk-reset-{}.json", args.incident)));
    let saved = if args.dry_run { None } else { SweepState::load(&path)? };
    if let Some(saved) = &saved {
        if saved.incident != args.incident.trim() {
            return Err(Failure::usage(format!(
                "{} belongs to incident {}",
                path.display(),
                saved.incident
            )));
        }
        if args.started_at.is_some_and(|t| t != saved.started_at) {
            return Err(Failure::usage(format!(
                "the incident began at {}, as {} says",
                saved.started_at,
                path.display()
            )));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let started_at = saved.as_ref().map(|s| s.started_at).or(args.started_at).unwrap_or(now);
    let mut selection = ResetSelection::everyone().status(status_named(&args.status)?);
    if let Some(kind) = &args.kind {
        selection = selection.kind(kind_named(kind)?);
    }
    if let Some(t) = args.added_before {
        selection = selection.added_before(t);
    }
    if let Some(t) = args.last_used_before {
        selection = selection.last_used_before(t);
    }
    let reason = cli.reason.as_deref().unwrap_or_default();
    let plan = BulkReset::new(&args.incident, reason, started_at, selection)?.with_mode(mode(args.remove_only));
    let mut state = saved.unwrap_or(SweepState {
        incident: plan.incident.to_string(),
        started_at,
        after: None,
        examined: 0,
        reset: 0,
        complete: false,
    });
    if state.complete {
        let text = format!("incident {} is complete: {} users reset", state.incident, state.reset);
        return say(cli, out, &text, &serde_json::json!(state));
    }
    let bar = progress_bar(cli, records(portal, plan.selection.kind)?, state.examined);
    // A test may stop the sweep here (after this many batches, before their place is saved) and kill it.
    let pause_after: Option<u64> = std::env::var("PORTAL_MFA_ADMIN_PAUSE_AFTER_BATCHES")
        .ok()
        .and_then(|n| n.parse().ok());
    let mut failed = Vec::new();
    let mut batches = 0u64;
    loop {
        let after = state.after.as_deref().map(user_id).transpose()?;
        let progress = if args.dry_run {
            portal
                .bulk_reset_preview(admin, &plan, after.as_ref(), args.batch)
                .run()?
        } else {
            portal.bulk_reset(admin, &plan, after.as_ref(), args.batch).run()?
        };
        batches += 1;
        if pause_after == Some(batches) {
            eprintln!("paused after {batches} batches");
            std::thread::sleep(Duration::from_secs(3600));
        }
        state.examined += progress.examined as u64;
        state.reset += progress.reset as u64;
        failed.extend(progress.failed.iter().map(|(u, e)| format!("{u}: {e}")));
        state.after = progress.next.as_ref().map(ToString::to_string);
        state.complete = state.after.is_none();
        if !args.dry_run {
            state.save(&path)?;
        }
        bar.set_position(state.examined);
        bar.set_message(format!("{} reset", state.reset));
        if state.complete {
            break;
        }
        if !args.dry_run {
            std::thread::sleep(Duration::from_millis(args.pause_ms));
        }
    }
    bar.finish_and_clear();
    let verb = if args.dry_run { "would reset" } else { "reset" };
    let text = format!(
        "incident {}: {} users examined, {verb} {}{}",
        state.incident,
        state.examined,
        state.reset,
        if failed.is_empty() {
            String::new()
        } else {
            format!("; {} failed:\n  {}", failed.len(), failed.join("\n  "))
        }
    );
    let json = serde_json::json!({ "incident": state.incident, "examined": state.examined, "reset": state.reset,
        "dry_run": args.dry_run, "failed": failed });
    say(cli, out, &text, &json)?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            code: 5,
            message: format!("{} users could not be reset", failed.len()),
        })
    }
}

/// How many records the portal holds (of `kind`): the progress bar's length.
fn records(portal: &AdminPortal, kind: Option<UserKind>) -> Outcome<u64> {
    let mut query = UserQuery::new().limit(portal_mfa::MAX_PAGE);
    if let Some(kind) = kind {
        query = query.kind(kind);
    }
    let mut total = 0;
    loop {
        let page = portal.users(query.clone()).run()?;
        total += page.items.len() as u64;
        match page.next {
            Some(next) => query = query.after(next),
            None => return Ok(total),
        }
    }
}

fn progress_bar(cli: &Cli, total: u64, done: u64) -> ProgressBar {
    let bar = if cli.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records, {msg} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(done);
    bar
}

fn export(portal: &AdminPortal, format: Format, output: Option<&Path>, user: Option<&str>) -> Outcome {
    let mut query = EventQuery::portal(portal.id());
    if let Some(user) = user {
        query = query.user(&user_id(user)?);
    }
    let mut out: Box<dyn Write + Send> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| Failure::config(format!("{}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::stdout()),
    };
    match format {
        Format::Jsonl => {
            portal.export_events(query, &mut out).run()?;
        }
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            let failed = |e: csv::Error| Failure {
                code: 1,
                message: format!("writing the CSV: {e}"),
            };
            csv.write_record(["unix_time", "user", "actor", "event", "details"])
                .map_err(failed)?;
            let mut next = Some(query.limit(portal_mfa::MAX_PAGE));
            while let Some(query) = next.take() {
                let page = portal.audit_events(query.clone()).run()?;
                for e in &page.items {
                    csv.write_record(csv_row(e).iter().map(|cell| spreadsheet_safe(cell)))
                        .map_err(failed)?;
                }
                next = page.next.map(|cursor| query.after(cursor));
            }
            csv.flush().map_err(write_failed)?;
        }
    }
    Ok(())
}

fn csv_row(e: &AuditEvent) -> [String; 5] {
    let details = serde_json::to_value(&e.kind).map_or_else(|_| String::new(), |v| v.to_string());
    let actor = serde_json::to_value(&e.actor).map_or_else(|_| String::new(), |v| v.to_string());
    [
        e.at.to_string(),
        e.user.as_ref().map(ToString::to_string).unwrap_or_default(),
        actor,
        e.kind.name().to_owned(),
        details,
    ]
}

/// A cell a spreadsheet would read as a formula, made plain text (CSV injection).
fn spreadsheet_safe(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

fn reseal(cli: &Cli, portal: &AdminPortal, batch: usize, dry_run: bool, out: &mut dyn Write) -> Outcome {
    let bar = progress_bar(cli, records(portal, None)?, 0);
    let (mut after, mut examined, mut resealed, mut failed) = (None, 0u64, 0u64, Vec::new());
    loop {
        let progress = if dry_run {
            portal.reseal_preview(after.as_ref(), batch).run()?
        } else {
            portal.reseal(after.as_ref(), batch).run()?
        };
        examined += progress.examined as u64;
        resealed += progress.resealed as u64;
        failed.extend(progress.failed.iter().map(|(u, e)| format!("{u}: {e}")));
        bar.set_position(examined);
        after = progress.next;
        if after.is_none() {
            break;
        }
    }
    bar.finish_and_clear();
    let verb = if dry_run { "would re-seal" } else { "re-sealed" };
    let text = format!(
        "{examined} records examined, {verb} {resealed}; {} could not be opened",
        failed.len()
    );
    let json = serde_json::json!({ "examined": examined, "resealed": resealed, "dry_run": dry_run, "failed": failed });
    say(cli, out, &text, &json)?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::config(failed.join("; ")))
    }
}

fn policy(cli: &Cli, portal: &AdminPortal, admin: &Admin, action: &PolicyAction, out: &mut dyn Write) -> Outcome {
    let policy = match action {
        PolicyAction::Show => portal.policy().run()?,
        PolicyAction::Set {
            enforcement,
            trusted_browser_days,
        } => {
            if enforcement.is_none() && trusted_browser_days.is_none() {
                return Err(Failure::usage(
                    "say what to change: --enforcement on|off, --trusted-browser-days N",
                ));
            }
            let (enforcement, days) = (*enforcement, *trusted_browser_days);
            portal
                .update_policy(admin, move |mut p| {
                    if let Some(on) = enforcement {
                        p = p.with_enforcement(match on {
                            OnOff::On => Enforcement::Enforced { grace: None },
                            OnOff::Off => Enforcement::SelfConfigured,
                        })?;
                    }
                    if let Some(days) = days {
                        p = p.with_trusted_browser_days(days)?;
                    }
                    Ok(p)
                })
                .run()?
        }
    };
    let text = format!(
        "enforced: {}; sign-in: {:?}; trusted browsers: {} days",
        policy.is_enforced(),
        policy.sign_in_method(),
        policy.trusted_browser_lifetime_secs() / 86_400
    );
    say(cli, out, &text, &serde_json::to_value(policy).unwrap_or_default())
}
