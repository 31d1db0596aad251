//! `cargo run -p web-portal [-- --postgres URL] [--data DIR] [--listen ADDR] [--origin URL] [--insecure-dev-cookies]`
//!
//! Serves the demo portal on http://localhost:8080 and prints the demo
//! accounts with their passwords (new ones at every start). Cookies are
//! `Secure` and `__Host-` prefixed (browsers accept them on `localhost`);
//! `--insecure-dev-cookies` drops both, for plain HTTP on another name.
//! Passkeys are offered for the origin the browser shows: `http://localhost:PORT`
//! on loopback, else `--origin https://portal.example.com` (its host is the
//! relying-party id); browsers allow them only over HTTPS or on localhost.

use std::path::PathBuf;

use portal_mfa::passkey::RelyingParty;
use web_portal::accounts::Accounts;
use web_portal::store::{Database, load_or_create_keyring};
use web_portal::{Config, build, serve};

const USAGE: &str =
    "usage: web-portal [--postgres URL] [--data DIR] [--listen ADDR] [--origin URL] [--insecure-dev-cookies]";

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("web-portal: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), web_portal::store::StartError> {
    let mut data = PathBuf::from("portal-data");
    let mut postgres = None;
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut secure_cookies = true;
    let mut origin = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--postgres" => postgres = Some(args.next().ok_or(USAGE)?),
            "--data" => data = PathBuf::from(args.next().ok_or(USAGE)?),
            "--listen" => listen = args.next().ok_or(USAGE)?,
            "--origin" => origin = Some(args.next().ok_or(USAGE)?),
            "--insecure-dev-cookies" => secure_cookies = false,
            _ => return Err(USAGE.into()),
        }
    }
    std::fs::create_dir_all(&data)?;
    let keyring = load_or_create_keyring(&data.join("keyring.key"))?;
    let database = match postgres {
        Some(url) => Database::Postgres(url),
        None => Database::Sqlite(data.join("mfa.sqlite3")),
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let address = listener.local_addr()?;
    // `localhost` is a secure context to browsers, so its `Secure` cookies and passkeys work over plain HTTP.
    let url = if address.ip().is_loopback() {
        format!("http://localhost:{}", address.port())
    } else {
        format!("http://{address}")
    };
    let mut config = Config::new(database.clone(), keyring);
    config.secure_cookies = secure_cookies;
    config.passkeys = match origin.as_deref() {
        Some(origin) => Some(relying_party(origin)?),
        None if address.ip().is_loopback() => Some(relying_party(&url)?),
        None => None,
    };
    let (accounts, demo) = Accounts::seed();
    let (router, _) = build(config, accounts).await?;
    let where_ = match &database {
        Database::Sqlite(path) => format!("SQLite file {}", path.display()),
        Database::Postgres(_) => "PostgreSQL".to_owned(),
    };
    println!("Acme demo portal on {url} (MFA records in {where_})");
    println!("Demo accounts (new passwords at every start):");
    for account in &demo {
        println!(
            "  {:<14} {:<24} {}",
            account.area.title(),
            account.email,
            account.password.as_str()
        );
    }
    serve(listener, router).await?;
    Ok(())
}

/// Passkeys for the pages at `origin`, its host the relying-party id.
fn relying_party(origin: &str) -> Result<RelyingParty, web_portal::store::StartError> {
    let host = origin
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or_default())
        .unwrap_or_default();
    Ok(RelyingParty::new(host, &[origin], web_portal::PORTAL_NAME)?)
}
