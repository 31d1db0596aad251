//! The crate's one error type.
//!
//! Every variant is a case a host handles differently. No variant carries a
//! secret, a code or a backup code: messages are safe to log and to show.
//! A leaf: this module depends on no other module of the crate.

/// Which kind of code a user typed, as the crate read it: messages speak of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodeKind {
    /// A code from the authenticator app (digits; spaces or dashes between groups).
    Totp,
    /// A backup code (16 letters and digits; spaces or dashes anywhere).
    BackupCode,
}

/// Why a submitted one-time code or backup code could not be read. Such
/// input is never counted as a wrong code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeFormatError {
    /// Nothing was typed (or only white space).
    Empty,
    /// Far longer than any code; not looked at further.
    TooLong,
    /// A character that never appears in this kind of code.
    InvalidCharacter {
        /// The kind of code the input was read as.
        kind: CodeKind,
    },
    /// The right characters, but not as many as this kind of code has.
    WrongLength {
        /// The kind of code the input was read as.
        kind: CodeKind,
        /// Digits (or, for a backup code, letters and digits) it has.
        expected: u8,
        /// As many as were typed.
        found: usize,
    },
}

impl core::fmt::Display for CodeFormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let were = |n: &usize| if *n == 1 { "was" } else { "were" };
        match self {
            Self::Empty => f.write_str("no code was entered"),
            Self::TooLong => f.write_str("the input is far longer than a code"),
            Self::InvalidCharacter { kind: CodeKind::Totp } => {
                f.write_str("a code from the authenticator app has only digits")
            }
            Self::InvalidCharacter {
                kind: CodeKind::BackupCode,
            } => f.write_str("a backup code has only digits and letters (never U)"),
            Self::WrongLength {
                kind: CodeKind::Totp,
                expected,
                found,
            } => write!(
                f,
                "a code from the authenticator app has {expected} digits; {found} {} entered",
                were(found)
            ),
            Self::WrongLength {
                kind: CodeKind::BackupCode,
                expected,
                found,
            } => write!(
                f,
                "a backup code has {expected} letters and digits; {found} {} entered",
                were(found)
            ),
        }
    }
}

/// Why a shared secret was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretError {
    /// The text is not base32 (RFC 4648 alphabet, any case, spaces and padding allowed).
    InvalidBase32,
    /// Shorter than the minimum the caller asked for.
    TooShort {
        /// Bits in the secret offered.
        bits: usize,
        /// Bits required.
        minimum: usize,
    },
    /// Longer than any authenticator uses; refused so input size stays bounded.
    TooLong,
}

impl core::fmt::Display for SecretError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::InvalidBase32 => f.write_str("the secret is not valid base32"),
            Self::TooShort { bits, minimum } => {
                write!(f, "the secret has {bits} bits, at least {minimum} are required")
            }
            Self::TooLong => f.write_str("the secret is longer than allowed"),
        }
    }
}

/// Why an `otpauth://` URI could not be parsed or built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriError {
    /// Longer than any enrolment URI; not looked at further.
    TooLong,
    /// Does not start with `otpauth://`.
    NotOtpauth,
    /// An OTP type other than `totp` (e.g. `hotp`): not usable for enrolment here.
    UnsupportedType,
    /// The label (`issuer:account`) is missing or empty.
    MissingLabel,
    /// Percent-encoding that does not decode to UTF-8.
    BadEncoding,
    /// No `secret=` parameter.
    MissingSecret,
    /// The `secret=` parameter is not acceptable.
    BadSecret(SecretError),
    /// The issuer prefix of the label differs from the `issuer=` parameter.
    IssuerMismatch,
    /// `algorithm=` names something other than SHA1, SHA256 or SHA512.
    UnsupportedAlgorithm,
    /// `digits=` is not 6, 7 or 8.
    DigitsOutOfRange,
    /// `period=` is zero.
    ZeroPeriod,
    /// `period=` (or another number) is not a number.
    BadNumber,
    /// A parameter appears twice.
    DuplicateParameter,
    /// Issuer or account contains a colon, which the label format cannot carry.
    ColonInName,
    /// Issuer or account contains a control or format character (a zero-width
    /// space, a bidirectional override) or a line or paragraph separator.
    UnprintableName,
    /// `period=` is longer than [`TotpParams::MAX_PERIOD`](crate::otp::TotpParams::MAX_PERIOD) (one day).
    PeriodTooLong,
}

impl core::fmt::Display for UriError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = match self {
            Self::TooLong => "the URI is longer than allowed",
            Self::NotOtpauth => "not an otpauth:// URI",
            Self::UnsupportedType => "only otpauth://totp/ URIs are supported",
            Self::MissingLabel => "the URI has no issuer:account label",
            Self::BadEncoding => "the URI's percent-encoding is not valid UTF-8",
            Self::MissingSecret => "the URI has no secret parameter",
            Self::BadSecret(e) => return write!(f, "the URI's secret is unusable: {e}"),
            Self::IssuerMismatch => "the label's issuer differs from the issuer parameter",
            Self::UnsupportedAlgorithm => "algorithm must be SHA1, SHA256 or SHA512",
            Self::DigitsOutOfRange => "digits must be 6, 7 or 8",
            Self::ZeroPeriod => "period must be at least one second",
            Self::BadNumber => "a numeric parameter is not a number",
            Self::DuplicateParameter => "a parameter appears more than once",
            Self::ColonInName => "issuer and account name must not contain ':'",
            Self::UnprintableName => "issuer and account name must be printable text",
            Self::PeriodTooLong => "period must be at most one day",
        };
        f.write_str(text)
    }
}

/// What the policy does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyRefusal {
    /// MFA cannot be enforced on a portal that signs users in through SAML/SSO
    /// (nor can an enforced portal switch to SAML): the identity provider owns MFA there.
    EnforcementWithSaml,
    /// The last authenticator cannot be deleted while the portal enforces MFA.
    LastAuthenticatorWhileEnforced,
    /// Only an admin may do this.
    AdminOnly,
    /// No grace sign-in applies any more (the grace ended, or the last one was spent).
    NoGraceLeft,
    /// The portal's policy trusts no browser (its lifetime is 0 days).
    TrustedBrowsersOff,
}

impl core::fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::EnforcementWithSaml => "MFA cannot be enforced on a portal that signs in through SAML",
            Self::LastAuthenticatorWhileEnforced => {
                "the last authenticator cannot be deleted while the portal enforces MFA"
            }
            Self::AdminOnly => "only an admin may do this",
            Self::NoGraceLeft => "no grace sign-in is left; MFA must be set up first",
            Self::TrustedBrowsersOff => "this portal does not trust browsers",
        })
    }
}

/// Everything that can go wrong in portal-mfa.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The submitted code could not be read; ask the user to type it again.
    #[error("malformed code: {0}")]
    MalformedCode(CodeFormatError),
    /// A shared secret was refused.
    #[error("invalid secret: {0}")]
    InvalidSecret(SecretError),
    /// An `otpauth://` URI could not be parsed or built.
    #[error("invalid otpauth URI: {0}")]
    InvalidUri(UriError),
    /// OTP parameters out of range (digits, period, window).
    #[error("invalid OTP parameters: {0}")]
    InvalidParameters(&'static str),
    /// The time is before the TOTP epoch T0; the host clock is wrong.
    #[error("the time is before the TOTP epoch")]
    TimeBeforeEpoch,
    /// The clock reads past `i64::MAX` seconds (the year 292 billion): no
    /// database orders such times, so the driver refuses them. The host's
    /// clock is wrong.
    #[error("the clock reads past the last time a store can keep")]
    ClockOutOfRange,
    /// The time step or counter does not fit in 64 bits.
    #[error("the time step overflows 64 bits")]
    TimeOverflow,
    /// The enrolment URI does not fit in a QR code.
    #[error("the enrolment URI is too long for a QR code")]
    QrTooLong,
    /// The code is wrong. `attempts_left`: wrong codes still allowed before MFA
    /// locks (at sign-in) or the pending enrolment is cancelled (at confirmation).
    #[error("the code is not valid")]
    WrongCode {
        /// Wrong codes still allowed before MFA locks.
        attempts_left: Option<u32>,
    },
    /// The code was right but its time step was already used (or is older than
    /// one that was): a replay. Ask for the next code.
    ///
    /// A person can meet this without any attack: about once in a million
    /// steps an app shows the same digits two steps running. The newest step
    /// that matches is the one recorded, so typing those digits again in the
    /// next step matches nothing newer and is refused: the portal cannot tell
    /// a second typing from a replay of the first. Tell the user to wait until
    /// the app shows a new code and type that one.
    #[error("this code was already used; wait for the next one")]
    ReplayedCode,
    /// Too many wrong codes: MFA is locked for this user.
    #[error("too many wrong codes; locked{}", match .until { Some(t) => format!(" until {t}"), None => " until an admin resets MFA".to_owned() })]
    LockedOut {
        /// Unix time the lock ends; `None`: until an admin reset.
        until: Option<u64>,
    },
    /// The user has no confirmed authenticator to check a code against.
    #[error("the user has not enrolled an authenticator")]
    NotEnrolled,
    /// There is no enrolment waiting for confirmation.
    #[error("no enrolment is waiting for confirmation")]
    NoPendingEnrolment,
    /// The pending enrolment expired; start again.
    #[error("the enrolment expired; start again")]
    EnrolmentExpired,
    /// Too many wrong codes: the pending enrolment was cancelled (its secret
    /// will never work); start again with a new one.
    #[error("too many wrong codes; the enrolment was cancelled, start again")]
    EnrolmentCancelled,
    /// This change needs a fresh TOTP or backup code from the user.
    #[error("a fresh code is required for this change")]
    ProofRequired,
    /// No authenticator with that id.
    #[error("no such authenticator")]
    UnknownAuthenticator,
    /// No trusted browser with that id.
    #[error("no such trusted browser")]
    UnknownBrowser,
    /// The session's stamp is no longer good: a factor that could have granted
    /// it was taken away (a reset, a removed authenticator, MFA turned off,
    /// regenerated backup codes) or the host ended the user's sessions. End
    /// the session and send the user to sign in.
    #[error("the session has ended; sign in again")]
    SessionEnded,
    /// Not a session stamp this portal issued to this user: not in the text
    /// form, or its tag does not match (edited, forged, truncated, another
    /// user's or portal's, or tagged under a key no longer in the keyring).
    /// Like [`Error::SessionEnded`]: end the session and send the user to sign in.
    #[error("not a session stamp of this user's; sign in again")]
    InvalidStamp,
    /// The browser's token is not one this user trusts now (another user's,
    /// expired, forgotten, or not a token at all): counted toward lockout like
    /// a wrong code. Forget the token (clear the cookie) and ask for a code.
    #[error("this browser is not trusted; enter a code")]
    UntrustedBrowser {
        /// Failures still allowed before MFA locks.
        attempts_left: Option<u32>,
    },
    /// The user has as many authenticators as allowed.
    #[error("too many authenticators")]
    TooManyAuthenticators,
    /// An authenticator label must have 1 to 64 printable characters: after
    /// trimming, not empty, and no control or format character (zero-width
    /// spaces, bidirectional overrides) or line or paragraph separator.
    #[error("an authenticator label must have 1 to 64 printable characters")]
    InvalidLabel,
    /// The policy does not allow this.
    #[error("not allowed: {0}")]
    NotAllowed(PolicyRefusal),
    /// A reset request cannot be made, approved or declined now.
    #[error("reset request: {0}")]
    ResetRequest(RequestRefusal),
    /// A policy setting is out of range.
    #[error("invalid policy setting {field}: {reason}")]
    InvalidPolicy {
        /// The setting at fault, as a stable dotted name (`lockout.max_failures`,
        /// `backup_codes.count`, `enforcement.grace`, …) a host can map to its form field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A page cursor was refused: not one this crate wrote, or one from
    /// another listing or query (another user, filter or order). Start the
    /// listing again from its first page.
    #[error("invalid page cursor: {0}")]
    InvalidCursor(&'static str),
    /// A user id longer than [`UserId::MAX_LEN`](crate::UserId::MAX_LEN)
    /// bytes: refused before the store is asked. Ids keep page cursors short
    /// enough for a link, so the limit holds on every path.
    #[error("a user id is at most {max} bytes; this one has {len}", max = crate::UserId::MAX_LEN)]
    UserIdTooLong {
        /// The length of the id given, in bytes.
        len: usize,
    },
    /// A page size of 0 was asked for. (A size above the maximum is capped, not refused.)
    #[error("a page must hold at least one item")]
    InvalidPageSize,
    /// A stored record, policy or event does not decode (damaged, truncated,
    /// tampered, or a sealed value copied from another user or field); it was
    /// not used and nothing was written.
    #[error("stored MFA record is corrupt: {0}")]
    CorruptRecord(&'static str),
    /// A stored value was written by a newer version of this crate.
    #[error("stored format version {found} is newer than this build reads (up to {supported})")]
    IncompatibleFormat {
        /// The version found.
        found: u8,
        /// The newest version this build reads.
        supported: u8,
    },
    /// A secret was sealed under a key the keyring does not hold. Add the key
    /// (as an older key) to the keyring; nothing falls back to plaintext.
    #[error("the keyring has no key with id {key_id:?}")]
    KeyUnavailable {
        /// The id stored with the sealed value.
        key_id: String,
    },
    /// The keyring has a key with this id, but not the one that sealed the
    /// value: the host loaded other bytes under the id. Nothing was written.
    #[error("the keyring's key {key_id:?} is not the key that sealed this value")]
    WrongKey {
        /// The id stored with the sealed value.
        key_id: String,
    },
    /// The store keeps records as bytes and the portal has no keyring to seal
    /// and open secrets with: give it one with `Portal::with_keyring`.
    #[error("this store needs a keyring (Portal::with_keyring)")]
    NoKeyring,
    /// A key or key id given to a keyring is unusable.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Writing an export failed (the writer's own error: a closed pipe, a full disk).
    #[error("the export could not be written")]
    Export(#[source] std::io::Error),
    /// Other writers kept changing the record; gave up after this many attempts.
    #[error("the record kept changing under concurrent writers ({attempts} attempts)")]
    Conflict {
        /// Attempts made.
        attempts: u32,
    },
    /// A passkey or security key response was refused. At sign-in (or as the
    /// proof for a change) it counted toward lockout like a wrong code:
    /// `attempts_left` says how many tries remain; a registration counts it
    /// against the registration's own budget instead.
    #[error("passkey refused: {reason}")]
    PasskeyRefused {
        /// Why.
        reason: PasskeyRefusal,
        /// Wrong answers still allowed before MFA (or the registration) ends, when counted.
        attempts_left: Option<u32>,
    },
    /// The passkey configuration (relying-party id, origins) was refused.
    #[error("invalid passkey configuration: {0}")]
    InvalidPasskeyConfig(&'static str),
    /// This portal verifies no passkeys: it has no
    /// [`RelyingParty`](crate::passkey::RelyingParty) (`Portal::with_passkeys`, the `webauthn` feature).
    #[error("this portal is not configured for passkeys")]
    PasskeysNotConfigured,
}

/// Why a passkey or security key response was refused. Nothing here says more
/// than the browser already knows: a host may show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PasskeyRefusal {
    /// No challenge is waiting for this response: none was issued, it was
    /// already answered (a replay), or a newer one replaced it.
    #[error("no challenge is waiting for this response")]
    NoChallenge,
    /// The challenge expired before the response came.
    #[error("the challenge expired")]
    ChallengeExpired,
    /// The response is not WebAuthn JSON this crate reads (bad JSON, base64,
    /// CBOR, attestation or key), or is longer than
    /// [`MAX_RESPONSE_LEN`](crate::passkey::MAX_RESPONSE_LEN).
    #[error("the response is malformed")]
    Malformed,
    /// The response answers another challenge.
    #[error("the response answers another challenge")]
    WrongChallenge,
    /// The response was made for another site (origin or relying-party id).
    #[error("the response was made for another site")]
    WrongSite,
    /// The authenticator did not verify the user (PIN, biometrics) as the policy requires.
    #[error("the authenticator did not verify the user")]
    UserNotVerified,
    /// The credential is not one of this user's.
    #[error("the credential is not one of this user's")]
    UnknownCredential,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The signature counter did not advance: the key may have been cloned.
    /// The credential stays; the event is in the audit trail.
    #[error("the signature counter went backwards (a possible cloned key)")]
    CounterRegressed,
    /// This credential is already registered for the user.
    #[error("this credential is already registered")]
    AlreadyRegistered,
    /// Refused for another reason the verifier gave (an unsupported algorithm, an insecure key).
    #[error("the response was refused by the verifier")]
    Refused,
}

/// Why a reset request was refused ([`Error::ResetRequest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RequestRefusal {
    /// The user has no second factor to lose: they need no reset.
    #[error("there is no second factor to reset")]
    NothingToReset,
    /// A request is already open (one at a time).
    #[error("a request is already open, since {since}")]
    AlreadyOpen {
        /// When it was made (Unix time).
        since: u64,
    },
    /// An admin declined the last request; the user may ask again from `until` on.
    #[error("the last request was declined; ask again from {until}")]
    CoolingDown {
        /// From this Unix time on.
        until: u64,
    },
    /// The note is longer than
    /// [`ResetRequest::MAX_NOTE_CHARS`](crate::record::ResetRequest::MAX_NOTE_CHARS)
    /// or holds a control character other than a line feed.
    #[error("the note must have at most 280 printable characters")]
    InvalidNote,
    /// No request is open to approve or decline (withdrawn, already decided, or never made).
    #[error("no request is open")]
    NoneOpen,
    /// A bulk reset's incident id must have 1 to 64 printable characters.
    #[error("an incident id must have 1 to 64 printable characters")]
    InvalidIncident,
}

/// What kind of failure an [`Error`] is: the few cases a web host answers
/// differently (an HTTP status, a message for the user). `guide::hosts` maps each
/// to a status and to what to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input cannot be used (a malformed code, URI, secret, label or
    /// setting): ask for it again.
    InvalidInput,
    /// A wrong or replayed code: counted toward lockout.
    WrongCode,
    /// Too many wrong codes: no code is accepted until the lock ends.
    Locked,
    /// The policy does not allow this, or it needs a fresh code first.
    RefusedByPolicy,
    /// What the request refers to is not there (no enrolment, no pending or an
    /// expired one, no such authenticator).
    NotFound,
    /// Other writers kept winning: try again.
    Conflict,
    /// The store failed or holds something that cannot be read.
    Storage,
    /// The host is set up wrong (a missing or wrong key, a broken clock).
    Misconfigured,
    /// The session is no longer good: end it and send the user to sign in.
    SessionEnded,
}

impl Error {
    /// The kind of failure, for mapping to a response.
    ///
    /// ```
    /// use portal_mfa::{Error, ErrorKind};
    /// assert_eq!(Error::ReplayedCode.kind(), ErrorKind::WrongCode);
    /// assert_eq!(Error::LockedOut { until: None }.kind(), ErrorKind::Locked);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::MalformedCode(_)
            | Self::InvalidSecret(_)
            | Self::InvalidUri(_)
            | Self::InvalidParameters(_)
            | Self::TimeOverflow
            | Self::QrTooLong
            | Self::InvalidLabel
            | Self::InvalidPolicy { .. }
            | Self::InvalidCursor(_)
            | Self::UserIdTooLong { .. }
            | Self::InvalidPageSize => ErrorKind::InvalidInput,
            Self::WrongCode { .. }
            | Self::ReplayedCode
            | Self::UntrustedBrowser { .. }
            | Self::PasskeyRefused { .. } => ErrorKind::WrongCode,
            Self::SessionEnded | Self::InvalidStamp => ErrorKind::SessionEnded,
            Self::LockedOut { .. } => ErrorKind::Locked,
            Self::ResetRequest(RequestRefusal::InvalidNote | RequestRefusal::InvalidIncident) => {
                ErrorKind::InvalidInput
            }
            Self::ResetRequest(RequestRefusal::NoneOpen) => ErrorKind::NotFound,
            Self::NotAllowed(_) | Self::ProofRequired | Self::TooManyAuthenticators | Self::ResetRequest(_) => {
                ErrorKind::RefusedByPolicy
            }
            Self::NotEnrolled
            | Self::NoPendingEnrolment
            | Self::EnrolmentExpired
            | Self::EnrolmentCancelled
            | Self::UnknownAuthenticator
            | Self::UnknownBrowser => ErrorKind::NotFound,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Storage(_) | Self::CorruptRecord(_) | Self::IncompatibleFormat { .. } | Self::Export(_) => {
                ErrorKind::Storage
            }
            Self::TimeBeforeEpoch
            | Self::ClockOutOfRange
            | Self::KeyUnavailable { .. }
            | Self::WrongKey { .. }
            | Self::NoKeyring
            | Self::InvalidKey(_)
            | Self::InvalidPasskeyConfig(_)
            | Self::PasskeysNotConfigured => ErrorKind::Misconfigured,
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// What kind of storage failure happened, so the host can react.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The database cannot be reached or opened, or the connection to it was
    /// lost mid-call ([`StorageError::is_connection_lost`] tells which).
    Unavailable,
    /// Locked by another writer for longer than the store waits; retry later.
    Busy,
    /// The database is read-only.
    ReadOnly,
    /// The database itself is damaged or not ours (a file that is not a
    /// database, damaged pages, our tables without a schema version). A
    /// record whose stored bytes do not decode is [`Error::CorruptRecord`].
    Corrupt,
    /// Written by a newer version of this crate.
    IncompatibleSchema,
    /// Anything else.
    Other,
    /// A statement or a connection attempt took longer than the store allows
    /// (PostgreSQL's `statement_timeout`, a connect timeout). Nothing was written
    /// by the statement that timed out.
    Timeout,
    /// The server refused the credentials (wrong user or password) or the
    /// privilege the call needed.
    AccessDenied,
    /// The server is there, but the database named does not exist.
    MissingDatabase,
    /// The store's configuration is unusable: a malformed connection URL, an
    /// invalid schema name. Fix the configuration; retrying will not help.
    InvalidConfig,
}

impl core::fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "the MFA store is unavailable",
            Self::Busy => "the MFA store is busy",
            Self::ReadOnly => "the MFA store is read-only",
            Self::Corrupt => "the MFA store holds damaged or foreign data",
            Self::IncompatibleSchema => "the MFA store was written by a newer version",
            Self::Other => "the MFA store failed",
            Self::Timeout => "the MFA store did not answer in time",
            Self::AccessDenied => "the MFA store refused the credentials or the privilege",
            Self::MissingDatabase => "the MFA store's database does not exist",
            Self::InvalidConfig => "the MFA store's configuration is invalid",
        })
    }
}

/// A storage failure: its kind and the backend's own error.
///
/// Backend errors never contain secrets from this crate: stores only ever see
/// sealed bytes.
#[derive(Debug, thiserror::Error)]
#[error("{kind}{}", detail.map(|d| format!(": {d}")).unwrap_or_default())]
pub struct StorageError {
    kind: StorageErrorKind,
    detail: Option<&'static str>,
    connection_lost: bool,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    /// A failure of `kind` caused by the backend's `source`.
    pub fn new(kind: StorageErrorKind, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::of_kind(kind)
        }
    }

    /// A failure of `kind` with no underlying error.
    pub fn of_kind(kind: StorageErrorKind) -> Self {
        Self {
            kind,
            detail: None,
            connection_lost: false,
            source: None,
        }
    }

    /// The same failure, saying in a few words which case of its kind it is
    /// (shown after the kind: "the MFA store is unavailable: the server could
    /// not be reached"). Never a secret, a credential or a code.
    pub fn because(mut self, detail: &'static str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The same failure, marked as a connection lost mid-call
    /// ([`StorageError::is_connection_lost`]).
    pub fn lost_connection(mut self) -> Self {
        self.connection_lost = true;
        self
    }

    /// The kind.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// The few words that say which case of its kind this is, if the store gave them.
    pub fn detail(&self) -> Option<&'static str> {
        self.detail
    }

    /// Whether the same call may simply be made again: it failed before anything
    /// it sent could have been written (the server could not be reached or
    /// connected to within the connect timeout, every pooled connection stayed
    /// busy, a lock or a statement timed out and wrote nothing). This is the
    /// failure a busy or restarting machine gives; retry it after a short
    /// pause. False for a connection lost mid-call (a write may have
    /// committed: [`StorageError::is_connection_lost`]) and for every failure
    /// a retry cannot mend (credentials, configuration, schema, a read-only
    /// server, damaged data).
    pub fn is_retryable(&self) -> bool {
        use StorageErrorKind as K;
        matches!(self.kind, K::Unavailable | K::Busy | K::Timeout) && !self.connection_lost
    }

    /// Whether an established connection was lost while the call was under
    /// way (a server restart, a terminated backend, a network cut), as opposed
    /// to a server that could not be reached at all. ⚠️ A write in flight may
    /// or may not have been committed: read the record again before telling
    /// the user anything about it. A store never half-applies a write.
    pub fn is_connection_lost(&self) -> bool {
        self.connection_lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_case_a_host_handles_differently_has_its_kind() {
        let cases = [
            (Error::MalformedCode(CodeFormatError::Empty), ErrorKind::InvalidInput),
            (
                Error::InvalidPolicy {
                    field: "backup_codes.count",
                    reason: "",
                },
                ErrorKind::InvalidInput,
            ),
            (Error::WrongCode { attempts_left: Some(2) }, ErrorKind::WrongCode),
            (Error::ReplayedCode, ErrorKind::WrongCode),
            (Error::LockedOut { until: Some(9) }, ErrorKind::Locked),
            (
                Error::NotAllowed(PolicyRefusal::EnforcementWithSaml),
                ErrorKind::RefusedByPolicy,
            ),
            (Error::ProofRequired, ErrorKind::RefusedByPolicy),
            (Error::EnrolmentExpired, ErrorKind::NotFound),
            (Error::EnrolmentCancelled, ErrorKind::NotFound),
            (Error::Conflict { attempts: 3 }, ErrorKind::Conflict),
            (Error::CorruptRecord("x"), ErrorKind::Storage),
            (
                Error::Storage(StorageError::of_kind(StorageErrorKind::Busy)),
                ErrorKind::Storage,
            ),
            (Error::KeyUnavailable { key_id: "k".into() }, ErrorKind::Misconfigured),
            (Error::ClockOutOfRange, ErrorKind::Misconfigured),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error:?}");
        }
        let named = Error::InvalidPolicy {
            field: "lockout.max_failures",
            reason: "lockout must allow between 1 and 100 failures",
        };
        assert!(named.to_string().contains("lockout.max_failures"));
    }
}
