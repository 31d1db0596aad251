//! With the `tracing` feature, every operation leaves one `portal_mfa` span,
//! and nothing a user typed or was issued ever appears in it. The whole
//! scenario suite runs (both executors, memory and SQLite) under a subscriber
//! that keeps every line of output; then the output is searched for every
//! secret, code and backup code the scenarios issued.

#![cfg(all(feature = "tracing", feature = "sqlite"))]

mod flows;

use std::sync::Arc;

use flows::{Captured, TestStore};

fn memory_store() -> Arc<dyn TestStore> {
    flows::memory()
}

fn sqlite_store() -> Arc<dyn TestStore> {
    let dir = flows::TempDir::new("traced");
    let store = portal_mfa::store::SqliteStore::open(dir.file("mfa.db")).unwrap();
    flows::bytes_in(store, dir)
}

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn spans_carry_what_happened_and_never_a_secret_or_code() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .without_time()
        .with_writer(move || writer.clone())
        .finish()
        // webauthn-rs-core logs whole requests and credentials at debug and trace (a
        // host must filter it so: see the README); its warnings and errors are scanned.
        .with(
            Targets::new()
                .with_default(tracing::Level::TRACE)
                .with_target("webauthn_rs_core", tracing::Level::WARN),
        );
    tracing::subscriber::with_default(subscriber, || {
        for executor in [flows::Executor::Blocking, flows::Executor::Async] {
            seed_flow_tests!(@run_all memory_store, executor);
            seed_flow_tests!(@run_all sqlite_store, executor);
        }
    });
    let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines = output.lines().count();
    // The spans are there, with their fields.
    for expected in [
        "portal_mfa{portal=\"acme-portal\" op=\"verify_sign_in\" user_kind=\"customer\"",
        "op=\"admin_reset\"",
        "op=\"set_enforcement\" user_kind=\"\"",
        "outcome=\"ok\"",
        "outcome=\"wrong_code\"",
        "outcome=\"locked\"",
        "outcome=\"refused_by_policy\"",
        "retries=0",
        "duration_us=",
    ] {
        assert!(output.contains(expected), "no {expected:?} in {lines} lines of output");
    }
    let issued = flows::ISSUED.lock().unwrap().clone();
    assert!(
        issued.len() > 500,
        "the scenarios issued {} secrets and codes",
        issued.len()
    );
    // Whole tokens only: a 6-digit code must not match inside a longer number.
    let tokens: std::collections::HashSet<&str> = output
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
        .filter(|t| !t.is_empty())
        .collect();
    for secret in &issued {
        assert!(
            !tokens.contains(secret.as_str()),
            "{secret:?} appears in the tracing output: {}",
            output.lines().find(|l| l.contains(secret.as_str())).unwrap_or_default()
        );
        if secret.len() > 8 {
            assert!(
                !output.contains(secret.as_str()),
                "{secret:?} appears in the tracing output: {}",
                output.lines().find(|l| l.contains(secret.as_str())).unwrap_or_default()
            );
        }
    }
    println!(
        "{lines} lines of tracing output searched for {} secrets and codes",
        issued.len()
    );
}
