//! The stored form: records, policies and events round-trip; any byte string
//! decodes to a consistent value or a typed error; sealed values open only for
//! their own user and field, under a key the keyring holds.

mod flows;

use flows::{ADMIN, T0, enrol, keyring, portal_on};
use portal_mfa::{
    EnrolmentOptions, Error, Keyring, ManualClock, PortalId, PortalPolicy, UserId,
    admin::{ResetMode, ResetReason},
    audit::{AuditEvent, EventQuery},
    record::MfaRecord,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn portal_id() -> PortalId {
    PortalId::new("acme-portal")
}

/// Records in every state a user can be in, with the events that made them.
#[cfg(feature = "webauthn")]
fn passkey_records(portal: &flows::TestPortal) -> Vec<(UserId, MfaRecord)> {
    use flows::passkeys::{SoftKey, passkey_user, sign_in_options};
    let ex = flows::Executor::Blocking;
    let mut out = Vec::new();
    // A passkey in use (its counter moved), with a sign-in challenge open.
    let user = UserId::customer("passkey");
    let (mut key, _, _) = passkey_user(ex, portal, &user, SoftKey::security_key());
    let response = key.sign(&sign_in_options(ex, portal, &user, 0, 1)).unwrap();
    portal.verify_sign_in(&user, &response).run().unwrap();
    sign_in_options(ex, portal, &user, 0, 1);
    out.push((user.clone(), portal.record(&user).run().unwrap()));
    // A second credential's registration under way (another user: a record's sealed values are its owner's).
    let user = UserId::vendor("passkey-registering");
    let (mut key, _, _) = passkey_user(ex, portal, &user, SoftKey::passkey());
    let session = flows::passkeys::passkey_sign_in(ex, portal, &user, &mut key);
    let proof = key
        .sign(&portal.request_passkey_proof(&user, &session).run().unwrap())
        .unwrap();
    portal
        .start_passkey_registration(
            &user,
            &session,
            "a",
            "Laptop",
            EnrolmentOptions::default().with_proof(&proof),
        )
        .run()
        .unwrap();
    let record = portal.record(&user).run().unwrap();
    assert!(record.pending_passkey().is_some());
    out.push((user, record));
    out
}

fn records() -> (Vec<(UserId, MfaRecord)>, Vec<AuditEvent>) {
    let clock = ManualClock::at(T0);
    let portal = portal_on(flows::memory(), &clock);
    let mut out = vec![(UserId::customer("nobody"), MfaRecord::default())];
    let enrolled = UserId::customer("enrolled");
    let (phone, codes) = enrol(flows::Executor::Blocking, &portal, &clock, &enrolled);
    portal.verify_sign_in(&enrolled, &codes[0]).run().unwrap();
    out.push((enrolled.clone(), portal.record(&enrolled).run().unwrap()));
    let swapping = UserId::vendor("swapping");
    let (swap_phone, _, swap_session) = flows::enrol_signed_in(flows::Executor::Blocking, &portal, &clock, &swapping);
    let swap_code = swap_phone.code(&clock);
    let options = EnrolmentOptions::default()
        .replacing(portal.record(&swapping).run().unwrap().authenticators()[0].id())
        .with_proof(&swap_code);
    portal
        .start_enrolment(&swapping, &swap_session, "s", "new phone", options)
        .run()
        .unwrap();
    out.push((swapping.clone(), portal.record(&swapping).run().unwrap()));
    let locked = UserId::contact("locked");
    enrol(flows::Executor::Blocking, &portal, &clock, &locked);
    for _ in 0..5 {
        let _ = portal.verify_sign_in(&locked, "000000").run();
    }
    out.push((locked.clone(), portal.record(&locked).run().unwrap()));
    let reset = UserId::customer("reset");
    enrol(flows::Executor::Blocking, &portal, &clock, &reset);
    portal
        .admin_reset(
            &ADMIN,
            &reset,
            ResetReason::Other("ticket 42".into()),
            ResetMode::ForceReenrolment,
        )
        .run()
        .unwrap();
    out.push((reset.clone(), portal.record(&reset).run().unwrap()));
    // Two trusted browsers, one used, after the sessions ended once.
    portal
        .update_policy(&ADMIN, |p| p.with_trusted_browser_days(30))
        .run()
        .unwrap();
    let trusting = UserId::new(portal_mfa::UserKind::Member, "trusting");
    let (trust_phone, _) = enrol(flows::Executor::Blocking, &portal, &clock, &trusting);
    let stamp = portal
        .verify_sign_in(&trusting, &trust_phone.code(&clock))
        .run()
        .unwrap()
        .session;
    let stamp = portal.end_sessions(&trusting, Some(&stamp)).run().unwrap().unwrap();
    let first = portal.trust_browser(&trusting, &stamp, "Firefox").run().unwrap();
    // One code trusts one browser: the second is trusted after a code of its own.
    clock.advance(30);
    let stamp = portal
        .verify_sign_in(&trusting, &trust_phone.code(&clock))
        .run()
        .unwrap()
        .session;
    portal
        .trust_browser(&trusting, &stamp, "Safari on iPhone")
        .run()
        .unwrap();
    portal
        .begin_sign_in_with_browser(&trusting, first.token.expose())
        .run()
        .unwrap();
    let record = portal.record(&trusting).run().unwrap();
    assert_eq!((record.session_generation(), record.trusted_browsers().len()), (1, 2));
    out.push((trusting, record));
    #[cfg(feature = "webauthn")]
    out.extend(passkey_records(&portal));
    let _ = phone;
    let events = portal
        .audit_events(EventQuery::portal(&portal_id()).limit(portal_mfa::MAX_PAGE))
        .run()
        .unwrap()
        .items;
    (out, events)
}

fn encode(record: &MfaRecord, user: &UserId, ring: &Keyring, seed: u64) -> Vec<u8> {
    record
        .encode(&portal_id(), user, ring, &mut StdRng::seed_from_u64(seed))
        .unwrap()
}

#[test]
fn every_record_round_trips_byte_for_byte() {
    let ring = keyring();
    for (user, record) in records().0 {
        let bytes = encode(&record, &user, &ring, 1);
        assert_eq!(bytes[0], 4, "starts with its format version");
        let back = MfaRecord::decode(&bytes, &portal_id(), &user, &ring).unwrap();
        assert_eq!(encode(&back, &user, &ring, 1), bytes, "{user}");
        assert_eq!(
            portal_mfa::store::RecordSummary::of(&back),
            portal_mfa::store::RecordSummary::of(&record)
        );
        assert_eq!(format!("{back:?}"), format!("{record:?}"));
    }
}

#[test]
fn policies_and_events_round_trip() {
    let policy = PortalPolicy::new()
        .with_backup_codes(5, 1)
        .unwrap()
        .with_enforcement(portal_mfa::Enforcement::Enforced {
            grace: Some(portal_mfa::Grace::new(Some(u64::MAX), Some(3))),
        })
        .unwrap();
    assert_eq!(PortalPolicy::decode(&policy.encode()).unwrap(), policy);
    let (_, events) = records();
    assert!(events.len() > 20);
    for event in events {
        assert_eq!(AuditEvent::decode(&event.encode()).unwrap(), event);
    }
}

#[test]
fn a_sealed_record_opens_only_for_its_own_user_and_portal() {
    let ring = keyring();
    let (records, _) = records();
    let (alice, record) = &records[1];
    let bytes = encode(record, alice, &ring, 2);
    let bob = UserId::customer("bob");
    assert!(matches!(
        MfaRecord::decode(&bytes, &portal_id(), &bob, &ring),
        Err(Error::CorruptRecord(_))
    ));
    // The same id as another kind of user is another user.
    assert!(matches!(
        MfaRecord::decode(&bytes, &portal_id(), &UserId::vendor(alice.id()), &ring),
        Err(Error::CorruptRecord(_))
    ));
    assert!(matches!(
        MfaRecord::decode(&bytes, &PortalId::new("other"), alice, &ring),
        Err(Error::CorruptRecord(_))
    ));
}

#[test]
fn sealed_blobs_swapped_between_two_users_do_not_open() {
    let ring = keyring();
    let (records, _) = records();
    let (a, record_a) = &records[1];
    let (b, record_b) = &records[3];
    let bytes_a = encode(record_a, a, &ring, 3);
    let bytes_b = encode(record_b, b, &ring, 4);
    // Both are enrolled with one authenticator (id 1): their sealed secrets sit at the same
    // offsets after the labels. Splice b's sealed blob into a's bytes.
    let blob = |bytes: &[u8]| {
        let at = bytes.windows(b"test-1".len()).position(|w| w == b"test-1").unwrap() - 1;
        (at, at + 1 + 6 + 8 + 24 + 1 + 36)
    };
    let (sa, ea) = blob(&bytes_a);
    let (sb, eb) = blob(&bytes_b);
    let mut spliced = bytes_a[..sa].to_vec();
    spliced.extend_from_slice(&bytes_b[sb..eb]);
    spliced.extend_from_slice(&bytes_a[ea..]);
    assert_ne!(spliced, bytes_a);
    assert!(matches!(
        MfaRecord::decode(&spliced, &portal_id(), a, &ring),
        Err(Error::CorruptRecord(_))
    ));
}

#[test]
fn a_keyring_without_the_key_answers_key_unavailable_and_never_plaintext() {
    let old = Keyring::new("2025-01", &[1; 32]).unwrap();
    let (records, _) = records();
    let (user, record) = &records[1];
    let bytes = encode(record, user, &old, 5);
    let new_only = Keyring::new("2026-11", &[2; 32]).unwrap();
    match MfaRecord::decode(&bytes, &portal_id(), user, &new_only) {
        Err(Error::KeyUnavailable { key_id }) => assert_eq!(key_id, "2025-01"),
        other => panic!("{other:?}"),
    }
    // Rotation: the old key, kept as an older key, still opens; the next encode seals under the new one.
    let rotated = Keyring::new("2026-11", &[2; 32])
        .unwrap()
        .with_old_key("2025-01", &[1; 32])
        .unwrap();
    let back = MfaRecord::decode(&bytes, &portal_id(), user, &rotated).unwrap();
    let resealed = encode(&back, user, &rotated, 6);
    MfaRecord::decode(&resealed, &portal_id(), user, &new_only).unwrap();
    // A key with the right id but other bytes is not the key, and says so.
    let impostor = Keyring::new("2025-01", &[3; 32]).unwrap();
    assert!(matches!(
        MfaRecord::decode(&bytes, &portal_id(), user, &impostor),
        Err(Error::WrongKey { key_id }) if key_id == "2025-01"
    ));
}

#[test]
fn truncated_tampered_and_newer_bytes_each_have_their_error() {
    let ring = keyring();
    let (records, _) = records();
    for (user, record) in &records {
        let bytes = encode(record, user, &ring, 7);
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    MfaRecord::decode(&bytes[..len], &portal_id(), user, &ring),
                    Err(Error::CorruptRecord(_))
                ),
                "{user} cut at {len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            MfaRecord::decode(&longer, &portal_id(), user, &ring),
            Err(Error::CorruptRecord(_))
        ));
        let mut newer = bytes.clone();
        newer[0] = 5;
        assert!(matches!(
            MfaRecord::decode(&newer, &portal_id(), user, &ring),
            Err(Error::IncompatibleFormat { found: 5, supported: 4 })
        ));
    }
    // Every byte of a sealed value is covered: its key check, its nonce, its ciphertext and tag.
    let (user, record) = &records[1];
    let bytes = encode(record, user, &ring, 8);
    let sealed_at = bytes.windows(6).position(|w| w == b"test-1").unwrap() + 6;
    for i in sealed_at..sealed_at + 8 + 24 + 1 + 36 {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        assert!(
            matches!(
                MfaRecord::decode(&tampered, &portal_id(), user, &ring),
                Err(Error::CorruptRecord(_))
            ),
            "byte {i}"
        );
    }
}

/// The answer any byte string may get.
fn typed(result: &Result<MfaRecord, Error>) -> bool {
    matches!(
        result,
        Ok(_)
            | Err(Error::CorruptRecord(_)
                | Error::IncompatibleFormat { .. }
                | Error::KeyUnavailable { .. }
                | Error::WrongKey { .. })
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn any_bytes_are_a_record_or_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let ring = keyring();
        let user = UserId::customer("c");
        let result = MfaRecord::decode(&bytes, &portal_id(), &user, &ring);
        prop_assert!(typed(&result), "{result:?}");
        let _ = PortalPolicy::decode(&bytes);
        let _ = AuditEvent::decode(&bytes);
    }

    #[test]
    fn mutated_records_decode_consistently_or_not_at_all(
        which in 0usize..5,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let ring = keyring();
        let (records, _) = records();
        let (user, record) = &records[which];
        let mut bytes = encode(record, user, &ring, 9);
        for (at, byte, how) in edits {
            let i = at.index(bytes.len() + 1);
            match how {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        let result = MfaRecord::decode(&bytes, &portal_id(), user, &ring);
        prop_assert!(typed(&result), "{result:?}");
        if let Ok(decoded) = result {
            // Whatever decodes is a record whose own stored form is stable.
            let again = encode(&decoded, user, &ring, 10);
            let back = MfaRecord::decode(&again, &portal_id(), user, &ring).unwrap();
            prop_assert_eq!(encode(&back, user, &ring, 10), again);
        }
    }
}

#[test]
fn form_3_refuses_unknown_misordered_repeated_and_default_fields() {
    let ring = keyring();
    let user = UserId::customer("u");
    let decode = |bytes: &[u8]| MfaRecord::decode(bytes, &portal_id(), &user, &ring);
    // No field at all is the empty record; after the format byte, the length of the fields,
    // then each field's tag, length and value.
    assert_eq!(
        format!("{:?}", decode(&[3, 0]).unwrap()),
        format!("{:?}", MfaRecord::default())
    );
    let generation_7 = [3u8, 3, 1, 1, 7];
    assert_eq!(decode(&generation_7).unwrap().session_generation(), 7);
    for (bad, why) in [
        (&[3u8][..], "no length"),
        (&[3, 3, 1, 1], "cut short"),
        (&[3, 3, 1, 1, 7, 0], "longer than its length"),
        (&[3, 2, 99, 0], "a tag this build does not know"),
        (&[3, 3, 1, 1, 0], "a number field holding its default (it is left out)"),
        (&[3, 6, 3, 1, 5, 1, 1, 2], "tags out of order"),
        (&[3, 6, 1, 1, 2, 1, 1, 3], "a field given twice"),
        (&[3, 3, 1, 2, 7], "a length past the end"),
        (&[3, 4, 1, 2, 7, 0], "a value with bytes left over"),
        (&[3, 3, 2, 1, 0], "a flag with a value"),
        (&[3, 2, 0, 0], "tag 0"),
        (&[3, 2, 15, 0], "passkeys, which form 3 never had"),
    ] {
        assert!(
            matches!(decode(bad), Err(Error::CorruptRecord(_))),
            "{why}: {:?}",
            decode(bad)
        );
    }
}

/// Records stored by earlier releases, in form 2 (`tests/data/form2_records.txt`)
/// and form 3 (`tests/data/form3_records.txt`, the 0.3 encoder on this file's
/// `records()`), written under `flows::keyring()`: each still reads, and is
/// written again as form 4 with the same content.
#[test]
fn records_of_forms_2_and_3_still_read_and_are_written_as_form_4() {
    let ring = keyring();
    let mut read = [0; 2];
    for (form, file) in [
        (2u8, "tests/data/form2_records.txt"),
        (3, "tests/data/form3_records.txt"),
    ] {
        let fixture = std::fs::read_to_string(file).unwrap();
        for line in fixture.lines() {
            let mut parts = line.split(' ');
            let (kind, id, hex) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            let user = UserId::new(portal_mfa::UserKind::from_name(kind).unwrap(), id);
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            assert_eq!(bytes[0], form, "{user}: a form {form} record");
            let record = MfaRecord::decode(&bytes, &portal_id(), &user, &ring).unwrap();
            let again = encode(&record, &user, &ring, 5);
            assert_eq!(again[0], 4);
            let back = MfaRecord::decode(&again, &portal_id(), &user, &ring).unwrap();
            assert_eq!(format!("{back:?}"), format!("{record:?}"), "{user}");
            assert_eq!(
                portal_mfa::store::RecordSummary::of(&back),
                portal_mfa::store::RecordSummary::of(&record)
            );
            read[usize::from(form - 2)] += 1;
        }
    }
    assert!(
        read.iter().all(|&n| n >= 6),
        "each fixture has a record in every state: {read:?}"
    );
}
