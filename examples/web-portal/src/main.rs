//! `cargo run -p web-portal [-- --postgres URL] [--data DIR] [--listen ADDR] [--insecure-dev-cookies]`
//!
//! Serves the demo portal on http://127.0.0.1:8080 and prints the demo
//! accounts with their passwords (new ones at every start). Cookies are
//! `Secure` and `__Host-` prefixed (browsers accept them on `localhost`);
//! `--insecure-dev-cookies` drops both, for plain HTTP on another name.

use std::path::PathBuf;

use web_portal::accounts::Accounts;
use web_portal::store::{Database, load_or_create_keyring};
use web_portal::{Config, build, serve};

const USAGE: &str = "usage: web-portal [--postgres URL] [--data DIR] [--listen ADDR] [--insecure-dev-cookies]";

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
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--postgres" => postgres = Some(args.next().ok_or(USAGE)?),
            "--data" => data = PathBuf::from(args.next().ok_or(USAGE)?),
            "--listen" => listen = args.next().ok_or(USAGE)?,
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
    let mut config = Config::new(database.clone(), keyring);
    config.secure_cookies = secure_cookies;
    let (accounts, demo) = Accounts::seed();
    let (router, _) = build(config, accounts).await?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let where_ = match &database {
        Database::Sqlite(path) => format!("SQLite file {}", path.display()),
        Database::Postgres(_) => "PostgreSQL".to_owned(),
    };
    let address = listener.local_addr()?;
    // `localhost` is a secure context to browsers, so its `Secure` cookies work over plain HTTP.
    let url = if address.ip().is_loopback() && secure_cookies {
        format!("http://localhost:{}", address.port())
    } else {
        format!("http://{address}")
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
