//! `cargo run -p axum-tutorial`, then open http://127.0.0.1:3000 (alice@example.com / alice,
//! admin@example.com / admin).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ⚠️ A new key each run (so records from an earlier run no longer open): keep yours outside the database.
    let key = portal_mfa::Keyring::generate_key(&mut rand::rng());
    let users = [("alice@example.com", "alice"), ("admin@example.com", "admin")];
    let _ = std::fs::remove_file("tutorial.sqlite3");
    let app = axum_tutorial::app("tutorial.sqlite3".as_ref(), &key, &users)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
