//! A walk-through of the OTP engine: enrol an authenticator and verify its codes.
//!
//! Run with `cargo run --example portal`.

use portal_mfa::{OtpAuthUri, Secret, Totp, TotpParams, Window};

fn main() -> Result<(), portal_mfa::Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    let secret = Secret::generate(&mut rand::rng());
    let enrolment = OtpAuthUri::new(
        "Acme Customer Portal",
        "alice@example.com",
        secret.clone(),
        TotpParams::standard(),
    )?;
    println!(
        "Scan this with an authenticator app:\n{}",
        enrolment.qr_terminal()?.as_str()
    );
    println!(
        "…or type this key: {}\n",
        enrolment.secret().to_grouped_base32().as_str()
    );

    let totp = Totp::new(&secret, TotpParams::standard());
    // Stand-in for the user's phone: the code an app shows right now.
    let shown = totp.generate(now)?;
    println!("The app shows {}", shown.expose().as_str());
    match totp.verify(&shown, now, Window::default())? {
        Some(step) => println!("accepted (time step {step}); record it so the code cannot be replayed"),
        None => println!("rejected"),
    }
    let typo = if shown.expose().starts_with('0') {
        "111111"
    } else {
        "000000"
    };
    println!(
        "A mistyped code is {:?}",
        totp.verify_str(typo, now, Window::default())?
            .map(|_| "accepted")
            .unwrap_or("rejected")
    );
    Ok(())
}
