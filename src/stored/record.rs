//! A user's [`MfaRecord`] in its stored form (form 4), secrets sealed.
//!
//! Form 4 (and form 3 before it, which lacked passkeys) is the format byte, the length of what follows (so a record cut
//! short, even between fields, is refused), then fields: each a tag, the
//! length of its value and the value, in ascending tag order (a list's tag
//! repeats). A value
//! that is itself several fields (an authenticator, the trusted browsers)
//! is fields in the same way. A reader finds one field without decoding the
//! rest, and a new field is a new tag: here, in the struct, and in the guide's
//! `stored_form` chapter. Forms 1 and 2 are read by `record_v2.rs`.

use rand::CryptoRng;

use std::sync::Arc;

use super::parts::{Decoded, Owner, open, open_bytes, params, read_params, read_reason, reason, seal, seal_bytes};
use super::{Fields, RECORD_FORMAT, Reader, Writer, corrupt, format_version, record_v2};
use crate::backup::{BackupCodeHash, BackupCodes};
use crate::error::{Error, Result};
use crate::ids::{AuthenticatorId, BrowserId, PortalId, UserId};
use crate::keyring::{Field, Keyring};
use crate::otp::TotpParams;
use crate::state::{
    Authenticator, Key, MfaRecord, Passkey, PasskeyChallenge, Passkeys, PendingEnrolment, PendingPasskey, ResetRecord,
    ResetRequest, SealedBytes, SessionState, TokenHash, TrustedBrowser, TrustedBrowsers,
};

/// The record's fields, by tag. A number field is left out when it is 0, a
/// flag or an optional value when it is unset, so each record has one form.
mod tag {
    /// The session generation: first, so a session check finds it at once.
    pub(super) const SESSIONS: u64 = 1;
    /// Present (empty) when the user must enrol before signing in.
    pub(super) const MUST_ENROL: u64 = 2;
    pub(super) const NEXT_AUTHENTICATOR_ID: u64 = 3;
    pub(super) const CONSECUTIVE_FAILURES: u64 = 4;
    pub(super) const LOCKS: u64 = 5;
    pub(super) const LOCKED_UNTIL: u64 = 6;
    pub(super) const GRACE_SIGN_INS_USED: u64 = 7;
    pub(super) const LAST_VERIFIED_AT: u64 = 8;
    pub(super) const NEXT_BROWSER_ID: u64 = 9;
    /// One per authenticator, in order (fields: [`item`]).
    pub(super) const AUTHENTICATOR: u64 = 10;
    /// The pending enrolment (fields: [`item`]).
    pub(super) const PENDING: u64 = 11;
    /// Fields: [`backup`].
    pub(super) const BACKUP_CODES: u64 = 12;
    /// Fields: [`reset`].
    pub(super) const LAST_RESET: u64 = 13;
    /// Fields: [`trusted`].
    pub(super) const TRUSTED_BROWSERS: u64 = 14;
    /// Fields: [`passkeys`] (form 4 on).
    pub(super) const PASSKEYS: u64 = 15;
    /// Fields: [`requests`] (form 4 on).
    pub(super) const RESET_REQUESTS: u64 = 16;

    /// The user's open reset request and the last decline.
    pub(super) mod requests {
        /// When the open request was made (absent: none is open).
        pub(crate) const AT: u64 = 1;
        /// Its note (with `AT`).
        pub(crate) const NOTE: u64 = 2;
        pub(crate) const DECLINED_AT: u64 = 3;
    }

    /// An authenticator's or a pending enrolment's fields.
    pub(super) mod item {
        pub(crate) const ID: u64 = 1;
        pub(crate) const LABEL: u64 = 2;
        /// Algorithm, digits, period, T0.
        pub(crate) const PARAMS: u64 = 3;
        /// When it was added (an authenticator) or started (an enrolment).
        pub(crate) const SINCE: u64 = 4;
        pub(crate) const LAST_USED_STEP: u64 = 5;
        pub(crate) const EXPIRES_AT: u64 = 6;
        pub(crate) const REPLACES: u64 = 7;
        pub(crate) const WRONG_CODES: u64 = 8;
        /// Key id, key check, nonce, ciphertext.
        pub(crate) const SECRET: u64 = 9;
        /// A passkey's newest signature counter.
        pub(crate) const SIGN_COUNT: u64 = 10;
        /// What a passkey item keeps sealed, as [`SECRET`] is.
        pub(crate) const SEALED: u64 = SECRET;
        /// When a passkey was last used (an authenticator keeps a time step instead).
        pub(crate) const LAST_USED_AT: u64 = LAST_USED_STEP;
        /// Refused responses to a registration.
        pub(crate) const FAILURES: u64 = WRONG_CODES;
    }

    /// A user's passkeys and ceremonies in progress.
    pub(super) mod passkeys {
        /// The WebAuthn user handle (16 bytes).
        pub(crate) const USER_HANDLE: u64 = 1;
        /// One per passkey, in order (fields: [`super::item`], with
        /// `SEALED` the credential id and credential, and `SIGN_COUNT`).
        pub(crate) const CREDENTIAL: u64 = 2;
        /// The registration in progress (fields: [`super::item`], `SEALED` its state).
        pub(crate) const REGISTRATION: u64 = 3;
        /// The outstanding challenge (fields: [`super::item`]: `SINCE`,
        /// `EXPIRES_AT`, `SEALED` its state).
        pub(crate) const CHALLENGE: u64 = 4;
    }

    pub(super) mod backup {
        pub(crate) const SALT: u64 = 1;
        /// The hashes, one after another.
        pub(crate) const HASHES: u64 = 2;
        pub(crate) const USED: u64 = 3;
    }

    pub(super) mod reset {
        pub(crate) const BY: u64 = 1;
        pub(crate) const REASON: u64 = 2;
        pub(crate) const AT: u64 = 3;
    }

    pub(super) mod trusted {
        pub(crate) const SALT: u64 = 1;
        /// One per browser (fields: [`browser`]).
        pub(crate) const BROWSER: u64 = 2;

        pub(crate) mod browser {
            pub(crate) const ID: u64 = 1;
            pub(crate) const LABEL: u64 = 2;
            pub(crate) const CREATED_AT: u64 = 3;
            pub(crate) const LAST_USED_AT: u64 = 4;
            pub(crate) const EXPIRES_AT: u64 = 5;
            pub(crate) const HASH: u64 = 6;
        }
    }
}

/// Encodes `record` for `user` of `portal`, sealing every secret under the
/// keyring's current key with a fresh nonce from `rng`.
pub(crate) fn encode_record<R: CryptoRng + ?Sized>(
    record: &MfaRecord,
    portal: &PortalId,
    user: &UserId,
    keyring: &Keyring,
    rng: &mut R,
) -> Result<Vec<u8>> {
    let owner = Owner { portal, user };
    let mut w = Writer::new(RECORD_FORMAT);
    let start = w.0.len();
    w.uint_field(tag::SESSIONS, record.sessions);
    if record.must_enrol {
        w.field(tag::MUST_ENROL, |_| Ok(()))?;
    }
    w.uint_field(tag::NEXT_AUTHENTICATOR_ID, record.next_authenticator_id.into());
    w.uint_field(tag::CONSECUTIVE_FAILURES, record.failures.consecutive.into());
    w.uint_field(tag::LOCKS, record.failures.locks.into());
    w.opt_uint_field(tag::LOCKED_UNTIL, record.failures.locked_until);
    w.uint_field(tag::GRACE_SIGN_INS_USED, record.grace_sign_ins_used.into());
    w.opt_uint_field(tag::LAST_VERIFIED_AT, record.last_verified_at());
    w.uint_field(tag::NEXT_BROWSER_ID, record.next_browser_id.into());
    for a in &record.authenticators {
        w.field(tag::AUTHENTICATOR, |w| {
            use tag::item::*;
            w.uint_field_always(ID, a.id.0.into());
            w.str_field(LABEL, &a.label);
            w.written_field(PARAMS, |w| params(w, a.params()));
            w.uint_field_always(SINCE, a.added_at);
            w.opt_uint_field(LAST_USED_STEP, a.last_used_step);
            w.field(SECRET, |w| seal(w, owner, a.id.0, Field::Secret, &a.key, keyring, rng))
        })?;
    }
    if let Some(p) = &record.pending {
        w.field(tag::PENDING, |w| {
            use tag::item::*;
            w.uint_field_always(ID, p.id.0.into());
            w.str_field(LABEL, &p.label);
            w.written_field(PARAMS, |w| params(w, p.params()));
            w.uint_field_always(SINCE, p.started_at);
            w.uint_field_always(EXPIRES_AT, p.expires_at);
            w.opt_uint_field(REPLACES, p.replaces.map(|r| r.0.into()));
            w.uint_field(WRONG_CODES, p.wrong_codes.into());
            w.field(SECRET, |w| {
                seal(w, owner, p.id.0, Field::PendingSecret, &p.key, keyring, rng)
            })
        })?;
    }
    if let Some(codes) = &record.backup_codes {
        w.field(tag::BACKUP_CODES, |w| {
            use tag::backup::*;
            w.raw_field(SALT, codes.salt());
            w.raw_field(HASHES, &codes.hashes().concat());
            w.uint_field(USED, codes.used_mask().into());
            Ok(())
        })?;
    }
    if let Some(reset) = record.resets.as_ref().and_then(|r| r.last.as_ref()) {
        w.field(tag::LAST_RESET, |w| {
            use tag::reset::*;
            w.str_field(BY, &reset.by);
            w.written_field(REASON, |w| reason(w, &reset.reason));
            w.uint_field_always(AT, reset.at);
            Ok(())
        })?;
    }
    if let Some(trusted) = record.trusted.as_ref().filter(|t| !t.browsers.is_empty()) {
        w.field(tag::TRUSTED_BROWSERS, |w| {
            use tag::trusted::*;
            w.raw_field(SALT, &trusted.salt);
            for b in &trusted.browsers {
                w.field(BROWSER, |w| {
                    use browser::*;
                    w.uint_field_always(ID, b.id.0.into());
                    w.str_field(LABEL, &b.label);
                    w.uint_field_always(CREATED_AT, b.created_at);
                    w.opt_uint_field(LAST_USED_AT, b.last_used_at);
                    w.uint_field_always(EXPIRES_AT, b.expires_at);
                    w.raw_field(HASH, &b.hash);
                    Ok(())
                })?;
            }
            Ok(())
        })?;
    }
    if let Some(passkeys) = &record.passkeys {
        w.field(tag::PASSKEYS, |w| write_passkeys(w, passkeys, owner, keyring, rng))?;
    }
    if let Some(requests) = record.resets.as_deref().filter(|r| r.has_requests()) {
        w.field(tag::RESET_REQUESTS, |w| {
            use tag::requests::*;
            if let Some(open) = &requests.open {
                w.uint_field_always(AT, open.at);
                w.str_field(NOTE, &open.note);
            }
            w.opt_uint_field(DECLINED_AT, requests.declined_at);
            Ok(())
        })?;
    }
    w.length_before(start);
    Ok(w.0)
}

fn write_passkeys<R: CryptoRng + ?Sized>(
    w: &mut Writer,
    passkeys: &Passkeys,
    owner: Owner<'_>,
    keyring: &Keyring,
    rng: &mut R,
) -> Result<()> {
    use tag::item::*;
    use tag::passkeys::*;
    w.raw_field(USER_HANDLE, &passkeys.user_handle);
    for p in &passkeys.credentials {
        w.field(CREDENTIAL, |w| {
            w.uint_field_always(ID, p.id.0.into());
            w.str_field(LABEL, &p.label);
            w.uint_field_always(SINCE, p.added_at);
            w.opt_uint_field(LAST_USED_AT, p.last_used_at);
            w.field(SEALED, |w| {
                // The credential id is sealed with the credential: it identifies the user to any site that sees it.
                let mut plain = Writer(Vec::with_capacity(p.credential_id.len() + p.credential.plain.len() + 2));
                plain.bytes(&p.credential_id);
                plain.0.extend_from_slice(&p.credential.plain);
                let kept = p.credential.sealed.as_deref();
                seal_bytes(w, owner, p.id.0, Field::Passkey, &plain.0, kept, keyring, rng)
            })?;
            w.uint_field(SIGN_COUNT, p.sign_count.into());
            Ok(())
        })?;
    }
    if let Some(r) = &passkeys.registration {
        w.field(REGISTRATION, |w| {
            w.uint_field_always(ID, r.id.0.into());
            w.str_field(LABEL, &r.label);
            w.uint_field_always(SINCE, r.started_at);
            w.uint_field_always(EXPIRES_AT, r.expires_at);
            w.opt_uint_field(REPLACES, r.replaces.map(|r| r.0.into()));
            w.uint_field(FAILURES, r.failures.into());
            w.field(SEALED, |w| {
                let (plain, kept) = (&r.state.plain, r.state.sealed.as_deref());
                seal_bytes(w, owner, r.id.0, Field::PasskeyRegistration, plain, kept, keyring, rng)
            })
        })?;
    }
    if let Some(c) = &passkeys.challenge {
        w.field(CHALLENGE, |w| {
            w.uint_field_always(SINCE, c.issued_at);
            w.uint_field_always(EXPIRES_AT, c.expires_at);
            w.field(SEALED, |w| {
                let (plain, kept) = (&c.state.plain, c.state.sealed.as_deref());
                seal_bytes(w, owner, 0, Field::PasskeyChallenge, plain, kept, keyring, rng)
            })
        })?;
    }
    Ok(())
}

/// The reader over a form 3 or 4 record's fields, once its length is checked.
fn fields_of(bytes: &[u8]) -> Result<Fields<'_, 'static>> {
    let mut outer = Reader::after_format(bytes);
    let body = outer.bytes()?;
    outer.finish()?;
    Ok(Fields::of(Reader { rest: body }, &[tag::AUTHENTICATOR]))
}

/// Decodes a stored record of `user` of `portal` (any form this crate wrote), opening its secrets.
pub(crate) fn decode_record(bytes: &[u8], portal: &PortalId, user: &UserId, keyring: &Keyring) -> Result<Decoded> {
    let format = format_version(bytes, RECORD_FORMAT)?;
    let owner = Owner { portal, user };
    let decoded = if format < 3 {
        record_v2::decode(bytes, format, owner, keyring)?
    } else {
        decode_fields(bytes, format, owner, keyring)?
    };
    decoded.record.check_consistent()?;
    Ok(decoded)
}

/// What a session check needs of a stored record, read without opening any
/// secret: its session generation and, `with_browsers`, the ids of the
/// browsers it trusts; every other field is passed over by its length.
pub(crate) fn record_sessions(bytes: &[u8], with_browsers: bool) -> Result<SessionState> {
    let format = format_version(bytes, RECORD_FORMAT)?;
    if format < 3 {
        return record_v2::sessions(bytes, format, with_browsers);
    }
    let mut state = SessionState::default();
    let mut fields = fields_of(bytes)?;
    while let Some((t, mut value)) = fields.next()? {
        match t {
            tag::SESSIONS => state.generation = value.nonzero_uint()?,
            tag::TRUSTED_BROWSERS if with_browsers => {
                let mut browsers = Fields::of(value, &[tag::trusted::BROWSER]);
                while let Some((t, value)) = browsers.next()? {
                    if t == tag::trusted::BROWSER {
                        let mut browser = Fields::of(value, &[]);
                        while let Some((t, mut value)) = browser.next()? {
                            if t == tag::trusted::browser::ID {
                                state.browsers.push(BrowserId(value.uint_as()?));
                            }
                        }
                    }
                }
            }
            // Past the generation and with no browsers wanted, nothing else is read.
            _ if !with_browsers => break,
            _ => {}
        }
    }
    Ok(state)
}

/// Forms 3 and 4: the fields, each checked as it is read; a field this build does
/// not know, one out of order or given twice, or one holding its default is refused.
fn decode_fields(bytes: &[u8], format: u8, owner: Owner<'_>, keyring: &Keyring) -> Result<Decoded> {
    let sealed = Sealed { format, owner, keyring };
    let mut stale_key = false;
    let mut record = MfaRecord::default();
    let mut authenticators = Vec::new();
    let mut fields = fields_of(bytes)?;
    while let Some((t, mut value)) = fields.next()? {
        match t {
            tag::SESSIONS => record.sessions = value.nonzero_uint()?,
            tag::MUST_ENROL => record.must_enrol = true,
            tag::NEXT_AUTHENTICATOR_ID => record.next_authenticator_id = value.nonzero_uint_as()?,
            tag::CONSECUTIVE_FAILURES => record.failures.consecutive = value.nonzero_uint_as()?,
            tag::LOCKS => record.failures.locks = value.nonzero_uint_as()?,
            tag::LOCKED_UNTIL => record.failures.locked_until = Some(value.uint()?),
            tag::GRACE_SIGN_INS_USED => record.grace_sign_ins_used = value.nonzero_uint_as()?,
            tag::LAST_VERIFIED_AT => record.set_last_verified_at(Some(value.uint()?)),
            tag::NEXT_BROWSER_ID => record.next_browser_id = value.nonzero_uint_as()?,
            tag::AUTHENTICATOR => {
                if authenticators.len() == MfaRecord::MAX_AUTHENTICATORS {
                    return corrupt("more authenticators than allowed");
                }
                authenticators.push(read_authenticator(value, sealed, &mut stale_key)?);
                continue;
            }
            tag::PENDING => {
                record.pending = Some(Box::new(read_pending(value, sealed, &mut stale_key)?));
                continue;
            }
            tag::BACKUP_CODES => {
                record.backup_codes = Some(read_backup_codes(value)?);
                continue;
            }
            tag::LAST_RESET => {
                record.resets.get_or_insert_with(Default::default).last = Some(read_reset(value)?);
                continue;
            }
            tag::TRUSTED_BROWSERS => {
                record.trusted = Some(Box::new(read_trusted(value)?));
                continue;
            }
            tag::PASSKEYS if format >= 4 => {
                record.passkeys = Some(Box::new(read_passkeys(value, sealed, &mut stale_key)?));
                continue;
            }
            tag::RESET_REQUESTS if format >= 4 => {
                let (open, declined_at) = read_requests(value)?;
                let resets = record.resets.get_or_insert_with(Default::default);
                (resets.open, resets.declined_at) = (open, declined_at);
                continue;
            }
            _ => return corrupt("a record field this build does not know"),
        }
        value.finish()?;
    }
    record.authenticators = authenticators.into();
    Ok(Decoded { record, stale_key })
}

/// How a record's sealed values are opened: its format, its owner, the keys.
#[derive(Clone, Copy)]
struct Sealed<'a> {
    format: u8,
    owner: Owner<'a>,
    keyring: &'a Keyring,
}

impl Sealed<'_> {
    fn key(&self, r: &mut Reader<'_>, id: u32, field: Field, params: TotpParams, stale: &mut bool) -> Result<Key> {
        open(r, self.format, self.owner, id, field, params, self.keyring, stale)
    }

    fn bytes(&self, r: &mut Reader<'_>, id: u32, field: Field, stale: &mut bool) -> Result<(Vec<u8>, SealedBytes)> {
        let (plain, kept) = open_bytes(r, self.format, self.owner, id, field, self.keyring, stale)?;
        let bytes = SealedBytes {
            plain: plain.as_slice().into(),
            sealed: kept,
        };
        Ok((plain.to_vec(), bytes))
    }
}

/// An item's fields, gathered (each at most once) for the reader that builds it.
struct Item<'a> {
    values: [Option<Reader<'a>>; 11],
}

impl<'a> Item<'a> {
    /// Reads `value`'s fields, refusing a tag above `max`.
    fn read(value: Reader<'a>, max: u64) -> Result<Self> {
        let mut item = Item {
            values: Default::default(),
        };
        let mut fields = Fields::of(value, &[]);
        while let Some((t, value)) = fields.next()? {
            if t == 0 || t > max {
                return corrupt("a field this build does not know");
            }
            item.values[t as usize] = Some(value);
        }
        Ok(item)
    }

    fn take(&mut self, t: u64) -> Option<Reader<'a>> {
        self.values[t as usize].take()
    }

    /// A field that must be there.
    fn required(&mut self, t: u64) -> Result<Reader<'a>> {
        self.take(t).ok_or(Error::CorruptRecord("a required field is missing"))
    }

    fn uint(&mut self, t: u64) -> Result<u64> {
        self.required(t)?.whole(|r| r.uint())
    }

    fn uint_as<T: TryFrom<u64>>(&mut self, t: u64) -> Result<T> {
        self.required(t)?.whole(|r| r.uint_as())
    }

    fn opt_uint(&mut self, t: u64) -> Result<Option<u64>> {
        self.take(t).map(|v| v.whole(|r| r.uint())).transpose()
    }

    /// A count left out at 0 (so, when there, not 0).
    fn count<T: TryFrom<u64> + Default>(&mut self, t: u64) -> Result<T> {
        Ok(self
            .take(t)
            .map(|v| v.whole(|r| r.nonzero_uint_as()))
            .transpose()?
            .unwrap_or_default())
    }

    /// The factor an enrolment replaces, if any.
    fn replaces(&mut self, t: u64) -> Result<Option<AuthenticatorId>> {
        self.take(t)
            .map(|v| v.whole(|r| r.uint_as().map(AuthenticatorId)))
            .transpose()
    }

    fn str(&mut self, t: u64) -> Result<&'a str> {
        let value = self.required(t)?;
        core::str::from_utf8(value.rest()).map_err(|_| Error::CorruptRecord("text is not UTF-8"))
    }

    fn array<const N: usize>(&mut self, t: u64) -> Result<[u8; N]> {
        self.required(t)?.whole(|r| r.array())
    }
}

fn read_authenticator(value: Reader<'_>, sealed: Sealed<'_>, stale_key: &mut bool) -> Result<Authenticator> {
    use tag::item::*;
    let mut item = Item::read(value, SECRET)?;
    let id = item.uint_as(ID)?;
    let params = item.required(PARAMS)?.whole(read_params)?;
    let authenticator = Authenticator {
        id: AuthenticatorId(id),
        label: item.str(LABEL)?.into(),
        added_at: item.uint(SINCE)?,
        last_used_step: item.opt_uint(LAST_USED_STEP)?,
        key: item
            .required(SECRET)?
            .whole(|r| sealed.key(r, id, Field::Secret, params, stale_key))?,
    };
    item.no_more()?;
    Ok(authenticator)
}

fn read_pending(value: Reader<'_>, sealed: Sealed<'_>, stale_key: &mut bool) -> Result<PendingEnrolment> {
    use tag::item::*;
    let mut item = Item::read(value, SECRET)?;
    let id = item.uint_as(ID)?;
    let params = item.required(PARAMS)?.whole(read_params)?;
    let wrong_codes = item.count(WRONG_CODES)?;
    if wrong_codes >= PendingEnrolment::MAX_WRONG_CODES {
        return corrupt("a pending enrolment past its wrong-code budget");
    }
    let pending = PendingEnrolment {
        id: AuthenticatorId(id),
        label: item.str(LABEL)?.into(),
        started_at: item.uint(SINCE)?,
        expires_at: item.uint(EXPIRES_AT)?,
        replaces: item.replaces(REPLACES)?,
        wrong_codes,
        key: item
            .required(SECRET)?
            .whole(|r| sealed.key(r, id, Field::PendingSecret, params, stale_key))?,
    };
    item.no_more()?;
    Ok(pending)
}

fn read_passkeys(value: Reader<'_>, sealed: Sealed<'_>, stale_key: &mut bool) -> Result<Passkeys> {
    use tag::item::*;
    use tag::passkeys::*;
    let mut user_handle = None;
    let mut passkeys = Passkeys {
        user_handle: [0; 16],
        credentials: Vec::new(),
        registration: None,
        challenge: None,
    };
    let mut fields = Fields::of(value, &[CREDENTIAL]);
    while let Some((t, value)) = fields.next()? {
        match t {
            USER_HANDLE => user_handle = Some(value.whole(|r| r.array())?),
            CREDENTIAL => {
                if passkeys.credentials.len() == MfaRecord::MAX_AUTHENTICATORS {
                    return corrupt("more passkeys than allowed");
                }
                let mut item = Item::read(value, SIGN_COUNT)?;
                let id = item.uint_as(ID)?;
                let (plain, mut credential) = item
                    .required(SEALED)?
                    .whole(|r| sealed.bytes(r, id, Field::Passkey, stale_key))?;
                let mut inside = Reader { rest: &plain };
                let credential_id: Arc<[u8]> = inside.bytes()?.into();
                if credential_id.is_empty() {
                    return corrupt("a passkey without a credential id");
                }
                credential.plain = inside.rest().into();
                passkeys.credentials.push(Passkey {
                    id: AuthenticatorId(id),
                    label: item.str(LABEL)?.into(),
                    added_at: item.uint(SINCE)?,
                    last_used_at: item.opt_uint(LAST_USED_AT)?,
                    sign_count: item.count(SIGN_COUNT)?,
                    credential_id,
                    credential,
                });
                item.no_more()?;
            }
            REGISTRATION => {
                let mut item = Item::read(value, SEALED)?;
                let id = item.uint_as(ID)?;
                let failures = item.count(FAILURES)?;
                if failures >= PendingPasskey::MAX_FAILURES {
                    return corrupt("a passkey registration past its failure budget");
                }
                passkeys.registration = Some(PendingPasskey {
                    id: AuthenticatorId(id),
                    label: item.str(LABEL)?.into(),
                    started_at: item.uint(SINCE)?,
                    expires_at: item.uint(EXPIRES_AT)?,
                    replaces: item.replaces(REPLACES)?,
                    failures,
                    state: item
                        .required(SEALED)?
                        .whole(|r| sealed.bytes(r, id, Field::PasskeyRegistration, stale_key))?
                        .1,
                });
                item.no_more()?;
            }
            CHALLENGE => {
                let mut item = Item::read(value, SEALED)?;
                passkeys.challenge = Some(PasskeyChallenge {
                    issued_at: item.uint(SINCE)?,
                    expires_at: item.uint(EXPIRES_AT)?,
                    state: item
                        .required(SEALED)?
                        .whole(|r| sealed.bytes(r, 0, Field::PasskeyChallenge, stale_key))?
                        .1,
                });
                item.no_more()?;
            }
            _ => return corrupt("a field this build does not know"),
        }
    }
    passkeys.user_handle = user_handle.ok_or(Error::CorruptRecord("a required field is missing"))?;
    Ok(passkeys)
}

fn read_backup_codes(value: Reader<'_>) -> Result<BackupCodes> {
    use tag::backup::*;
    let mut item = Item::read(value, USED)?;
    let salt = item.array(SALT)?;
    let hashes = item.required(HASHES)?.rest();
    const SIZE: usize = core::mem::size_of::<BackupCodeHash>();
    if hashes.len() % SIZE != 0 || hashes.len() / SIZE > usize::from(crate::policy::PortalPolicy::MAX_BACKUP_CODES) {
        return corrupt("backup code hashes of the wrong size or too many");
    }
    let hashes = hashes
        .chunks_exact(SIZE)
        .map(|h| h.try_into().map_err(|_| Error::CorruptRecord("a backup code hash")))
        .collect::<Result<Vec<BackupCodeHash>>>()?;
    let used = item.count(USED)?;
    item.no_more()?;
    BackupCodes::from_parts(salt, hashes, used)
}

fn read_reset(value: Reader<'_>) -> Result<ResetRecord> {
    use tag::reset::*;
    let mut item = Item::read(value, AT)?;
    let reset = ResetRecord {
        by: item.str(BY)?.into(),
        reason: item.required(REASON)?.whole(read_reason)?,
        at: item.uint(AT)?,
    };
    item.no_more()?;
    Ok(reset)
}

fn read_requests(value: Reader<'_>) -> Result<(Option<ResetRequest>, Option<u64>)> {
    use tag::requests::*;
    let mut item = Item::read(value, DECLINED_AT)?;
    let open = match item.opt_uint(AT)? {
        Some(at) => Some(ResetRequest {
            at,
            note: item.str(NOTE)?.into(),
        }),
        None => None,
    };
    let declined_at = item.opt_uint(DECLINED_AT)?;
    item.no_more()?;
    if open.is_none() && declined_at.is_none() {
        return corrupt("an empty reset-request field");
    }
    Ok((open, declined_at))
}

fn read_trusted(value: Reader<'_>) -> Result<TrustedBrowsers> {
    use tag::trusted::*;
    let mut salt = None;
    let mut browsers = Vec::new();
    let mut fields = Fields::of(value, &[BROWSER]);
    while let Some((t, value)) = fields.next()? {
        match t {
            SALT => salt = Some(value.whole(|r| r.array())?),
            BROWSER => {
                if browsers.len() == TrustedBrowsers::MAX {
                    return corrupt("a trusted-browser count out of range");
                }
                use browser::*;
                let mut item = Item::read(value, HASH)?;
                browsers.push(TrustedBrowser {
                    id: BrowserId(item.uint_as(ID)?),
                    label: item.str(LABEL)?.into(),
                    created_at: item.uint(CREATED_AT)?,
                    last_used_at: item.opt_uint(LAST_USED_AT)?,
                    expires_at: item.uint(EXPIRES_AT)?,
                    hash: item.array::<32>(HASH)? as TokenHash,
                });
                item.no_more()?;
            }
            _ => return corrupt("a field this build does not know"),
        }
    }
    let salt = salt.ok_or(Error::CorruptRecord("a required field is missing"))?;
    if browsers.is_empty() {
        return corrupt("a trusted-browser count out of range");
    }
    Ok(TrustedBrowsers { salt, browsers })
}

impl Item<'_> {
    /// Every field gathered was used.
    fn no_more(&self) -> Result<()> {
        if self.values.iter().any(Option::is_some) {
            return corrupt("a field this item does not have");
        }
        Ok(())
    }
}

impl MfaRecord {
    /// The record's stored form: a versioned byte string with every secret
    /// sealed under `keyring`'s current key, bound to `user` of `portal`.
    /// Stores keep exactly these bytes; the driver calls this for them.
    pub fn encode<R: CryptoRng + ?Sized>(
        &self,
        portal: &PortalId,
        user: &UserId,
        keyring: &Keyring,
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        encode_record(self, portal, user, keyring, rng)
    }

    /// Reads a stored form written by [`MfaRecord::encode`] (any format
    /// version this crate ever wrote) for `user` of `portal`.
    ///
    /// Any byte string gives a consistent record or an error:
    /// [`Error::CorruptRecord`] (damaged, or sealed for another user or field),
    /// [`Error::IncompatibleFormat`] (newer), [`Error::KeyUnavailable`] (no key with its id),
    /// [`Error::WrongKey`] (another key under its id).
    pub fn decode(bytes: &[u8], portal: &PortalId, user: &UserId, keyring: &Keyring) -> Result<Self> {
        decode_record(bytes, portal, user, keyring).map(|d| d.record)
    }
}
