//! Passkey responses, malformed every way: a valid registration and valid
//! assertions are built here (a P-256 key, `none` attestation) and then edited
//! byte by byte, or replaced by arbitrary text, before the portal sees them.
//! Never a panic; a response is accepted at most once, and only with a
//! counter that advanced (or 0); a refusal is always a typed error.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use portal_mfa::passkey::RelyingParty;
use portal_mfa::store::MemoryStore;
use portal_mfa::{EnrolmentOptions, Error, ManualClock, Portal, PortalId, SignInStep, UserId};
use sha2::{Digest, Sha256};

const RP_ID: &str = "example.com";
const ORIGIN: &str = "https://portal.example.com";

#[derive(Arbitrary, Debug)]
enum Part {
    AuthenticatorData,
    ClientData,
    Signature,
    CredentialId,
    Json,
}

#[derive(Arbitrary, Debug)]
enum Answer {
    /// A valid response, its counter moved by `counter` (may go back), then edited.
    Edited {
        counter: i8,
        flags: Option<u8>,
        part: Part,
        edits: Vec<(u16, u8)>,
    },
    /// Whatever text.
    Raw(String),
    /// The last response sent, again.
    Replay,
}

#[derive(Arbitrary, Debug)]
struct Input {
    registration: Answer,
    answers: Vec<Answer>,
}

fn challenge_of(options: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(options).expect("the portal's options are JSON");
    json["publicKey"]["challenge"].as_str().expect("a challenge").to_owned()
}

fn client_data(kind: &str, challenge: &str) -> Vec<u8> {
    format!(r#"{{"type":"{kind}","challenge":"{challenge}","origin":"{ORIGIN}","crossOrigin":false}}"#).into_bytes()
}

fn edit(bytes: &mut Vec<u8>, edits: &[(u16, u8)]) {
    for &(at, value) in edits.iter().take(16) {
        match bytes.len() {
            0 => bytes.push(value),
            n => match at % 4 {
                // Overwrite, insert, delete or cut: the shapes a mangled response takes.
                0 | 1 => bytes[at as usize % n] = value,
                2 => bytes.insert(at as usize % (n + 1), value),
                _ if value % 2 == 0 => {
                    bytes.remove(at as usize % n);
                }
                _ => bytes.truncate(at as usize % n),
            },
        }
    }
}

/// `0xa5` and the EC2 P-256 fields, then a `none` attestation object around the authenticator data.
fn attestation(
    key: &SigningKey,
    credential_id: &[u8],
    flags: u8,
    edits: &[(u16, u8)],
    part: &Part,
) -> (Vec<u8>, Vec<u8>) {
    let point = key.verifying_key().to_sec1_point(false);
    let (x, y) = (&point.as_bytes()[1..33], &point.as_bytes()[33..65]);
    let mut auth = Sha256::digest(RP_ID).to_vec();
    auth.push(flags);
    auth.extend_from_slice(&0u32.to_be_bytes());
    auth.extend_from_slice(&[0; 16]);
    auth.extend_from_slice(&(credential_id.len() as u16).to_be_bytes());
    auth.extend_from_slice(credential_id);
    auth.extend_from_slice(&[0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]);
    auth.extend_from_slice(x);
    auth.extend_from_slice(&[0x22, 0x58, 0x20]);
    auth.extend_from_slice(y);
    if matches!(part, Part::AuthenticatorData) {
        edit(&mut auth, edits);
    }
    let mut object = vec![0xa3, 0x63];
    object.extend_from_slice(b"fmt");
    object.push(0x64);
    object.extend_from_slice(b"none");
    object.push(0x67);
    object.extend_from_slice(b"attStmt");
    object.push(0xa0);
    object.push(0x68);
    object.extend_from_slice(b"authData");
    object.push(0x59);
    object.extend_from_slice(&(auth.len() as u16).to_be_bytes());
    object.extend_from_slice(&auth);
    if matches!(part, Part::Signature) {
        // A registration has no signature: edit the attestation object itself.
        edit(&mut object, edits);
    }
    (object, auth)
}

fn registration(key: &SigningKey, credential_id: &[u8], challenge: &str, answer: &Answer) -> Option<String> {
    let (flags, part, edits) = match answer {
        Answer::Edited { flags, part, edits, .. } => (flags.unwrap_or(0x45), part, edits.as_slice()),
        Answer::Raw(text) => return Some(text.clone()),
        Answer::Replay => return None,
    };
    let (object, _) = attestation(key, credential_id, flags, edits, part);
    let mut data = client_data("webauthn.create", challenge);
    let mut id = credential_id.to_vec();
    match part {
        Part::ClientData => edit(&mut data, edits),
        Part::CredentialId => edit(&mut id, edits),
        _ => {}
    }
    let mut json = format!(
        r#"{{"id":"{id}","rawId":"{id}","type":"public-key","response":{{"attestationObject":"{}","clientDataJSON":"{}"}},"clientExtensionResults":{{}}}}"#,
        B64.encode(&object),
        B64.encode(&data),
        id = B64.encode(&id),
    )
    .into_bytes();
    if matches!(part, Part::Json) {
        edit(&mut json, edits);
    }
    Some(String::from_utf8_lossy(&json).into_owned())
}

fn assertion(
    key: &SigningKey,
    credential_id: &[u8],
    challenge: &str,
    counter: u32,
    flags: u8,
    part: &Part,
    edits: &[(u16, u8)],
) -> String {
    let mut auth = Sha256::digest(RP_ID).to_vec();
    auth.push(flags);
    auth.extend_from_slice(&counter.to_be_bytes());
    let mut data = client_data("webauthn.get", challenge);
    let mut signed = auth.clone();
    signed.extend_from_slice(&Sha256::digest(&data));
    let signature: Signature = key.sign(&signed);
    let mut signature = signature.to_der().as_bytes().to_vec();
    let mut id = credential_id.to_vec();
    match part {
        Part::AuthenticatorData => edit(&mut auth, edits),
        Part::ClientData => edit(&mut data, edits),
        Part::Signature => edit(&mut signature, edits),
        Part::CredentialId => edit(&mut id, edits),
        Part::Json => {}
    }
    let mut json = format!(
        r#"{{"id":"{id}","rawId":"{id}","type":"public-key","response":{{"authenticatorData":"{}","clientDataJSON":"{}","signature":"{}"}},"clientExtensionResults":{{}}}}"#,
        B64.encode(&auth),
        B64.encode(&data),
        B64.encode(&signature),
        id = B64.encode(&id),
    )
    .into_bytes();
    if matches!(part, Part::Json) {
        edit(&mut json, edits);
    }
    String::from_utf8_lossy(&json).into_owned()
}

fuzz_target!(|input: Input| {
    let clock = ManualClock::at(1_763_800_000);
    let rp = RelyingParty::new(RP_ID, &[ORIGIN], "Fuzz").unwrap();
    let portal = Portal::new(PortalId::new("p"), "Fuzz", MemoryStore::new())
        .unwrap()
        .with_keyring(std::sync::Arc::new(portal_mfa::Keyring::new("fuzz", &[3; 32]).unwrap()))
        .with_clock(clock.clone())
        .with_passkeys(rp);
    let user = UserId::customer("u");
    let key = SigningKey::from_slice(&[7; 32]).unwrap();
    let credential_id = [9u8; 16];
    let session = match portal.begin_sign_in(&user).run().unwrap() {
        SignInStep::NoMfaNeeded { session } => session,
        other => panic!("{other:?}"),
    };
    let started = portal
        .start_passkey_registration(&user, &session, "u", "key", EnrolmentOptions::default())
        .run()
        .unwrap();
    let challenge = challenge_of(started.options.as_json());
    if let Some(response) = registration(&key, &credential_id, &challenge, &input.registration) {
        let _ = portal.finish_passkey_registration(&user, &session, &response).run();
    }
    // Whether the credential is the one built here (a mangled registration may have been accepted).
    let clean = portal.record(&user).run().unwrap().passkeys().is_empty();
    if clean {
        // The valid one, when the mangled one was refused (the registration is still open).
        let valid = Answer::Edited {
            counter: 0,
            flags: None,
            part: Part::Json,
            edits: Vec::new(),
        };
        let response = registration(&key, &credential_id, &challenge, &valid).unwrap();
        let finished = portal.finish_passkey_registration(&user, &session, &response).run();
        // Untouched (nothing sent before it), the valid registration is accepted.
        assert!(
            finished.is_ok() || !matches!(input.registration, Answer::Replay),
            "the valid registration was refused: {finished:?}"
        );
        if finished.is_err() {
            // The mangled response spent the registration's budget or replaced its credential id.
            return;
        }
    }
    let mut counter: u32 = 0;
    let mut last: Option<String> = None;
    let mut accepted: Vec<String> = Vec::new();
    for answer in input.answers.iter().take(16) {
        let options = match portal.begin_sign_in(&user).run() {
            Ok(SignInStep::EnterCode {
                passkey: Some(options), ..
            }) => options,
            Ok(_) | Err(Error::LockedOut { .. }) => {
                clock.advance(3600);
                continue;
            }
            Err(e) => panic!("{e:?}"),
        };
        let challenge = challenge_of(options.as_json());
        let (response, sent_counter) = match answer {
            Answer::Edited {
                counter: delta,
                flags,
                part,
                edits,
            } => {
                let sent = counter.saturating_add_signed(i32::from(*delta));
                (
                    assertion(
                        &key,
                        &credential_id,
                        &challenge,
                        sent,
                        flags.unwrap_or(0x05),
                        part,
                        edits,
                    ),
                    Some(sent),
                )
            }
            Answer::Raw(text) => (text.clone(), None),
            Answer::Replay => match &last {
                Some(last) => (last.clone(), None),
                None => continue,
            },
        };
        let before = portal.record(&user).run().unwrap().passkeys()[0].sign_count();
        match portal.verify_sign_in(&user, &response).run() {
            Ok(_) => {
                assert!(!accepted.contains(&response), "a response accepted twice");
                let after = portal.record(&user).run().unwrap().passkeys()[0].sign_count();
                assert!(
                    after == 0 && before == 0 || after > before,
                    "counter {before} -> {after}"
                );
                if let Some(sent) = sent_counter {
                    counter = counter.max(sent);
                }
                accepted.push(response.clone());
            }
            Err(e)
                if clean
                    && matches!(answer, Answer::Edited { counter: 1.., flags: None, edits, .. } if edits.is_empty()) =>
            {
                panic!("an untouched response with its counter advanced was refused: {e:?}")
            }
            Err(
                Error::PasskeyRefused { .. }
                | Error::LockedOut { .. }
                | Error::WrongCode { .. }
                | Error::MalformedCode(_)
                | Error::ReplayedCode,
            ) => {}
            Err(e) => panic!("an unexpected error: {e:?}"),
        }
        last = Some(response);
    }
});
