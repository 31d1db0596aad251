//! Passkeys and security keys (WebAuthn) as a second factor: the relying
//! party a portal is for, and the two ceremonies' verification, which
//! `webauthn-rs` does (with the `webauthn` feature). No state lives here: the
//! ceremonies' state is kept, sealed, in the user's record, and consumed in
//! the step that accepts the response (see `state::passkeys`).
//!
//! Without the `webauthn` feature a [`RelyingParty`] cannot be made: records
//! holding passkeys still decode, list and reset, and their users still sign
//! in with authenticator apps and backup codes.

#[cfg(feature = "webauthn")]
mod verify;

use std::sync::Arc;

use crate::error::Result;

/// The longest browser response (JSON) this crate reads: a registration with
/// an attestation certificate chain is a few kilobytes; anything longer is
/// [`PasskeyRefusal::Malformed`](crate::PasskeyRefusal::Malformed) before it is parsed.
pub const MAX_RESPONSE_LEN: usize = 16 * 1024;

/// Whether the authenticator must verify the user (PIN, fingerprint) as well
/// as their presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UserVerification {
    /// Asked for, not required: a passkey verifies anyway, and a security key
    /// without a PIN still works. The default, since this is a second factor
    /// after the password: possession of the key is the factor (AAL2).
    #[default]
    Preferred,
    /// Required: a response whose authenticator did not verify the user is
    /// refused ([`PasskeyRefusal::UserNotVerified`](crate::PasskeyRefusal::UserNotVerified)).
    Required,
}

/// The site passkeys are for: the relying-party id (the registrable domain,
/// `portal.example.com` or `example.com`) and the origins the browser may
/// report (`https://portal.example.com`).
///
/// ⚠️ The host must serve the portal over HTTPS (browsers allow WebAuthn on
/// `http://localhost` only) at one of these origins, and must not add an
/// origin it does not control: origin binding is what makes passkeys
/// phishing-resistant.
#[derive(Clone)]
pub struct RelyingParty {
    #[cfg(feature = "webauthn")]
    pub(crate) webauthn: Arc<webauthn_rs::Webauthn>,
    #[cfg(not(feature = "webauthn"))]
    never: core::convert::Infallible,
    id: Arc<str>,
    user_verification: UserVerification,
}

impl core::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("id", &self.id)
            .field("user_verification", &self.user_verification)
            .finish_non_exhaustive()
    }
}

impl RelyingParty {
    /// Seconds a registration or sign-in challenge stays good: the time a
    /// browser gives the user to touch the key, as `webauthn-rs` sets it.
    pub const CHALLENGE_LIFETIME_SECS: u64 = 300;

    /// A relying party `id` (a domain, no scheme or port) served at `origins`
    /// (each `https://host[:port]`, or `http://localhost[:port]` for
    /// development), named `name` in the browser's prompt.
    ///
    /// Errors ([`Error::InvalidPasskeyConfig`](crate::Error::InvalidPasskeyConfig)): no origin, an origin that is
    /// not a URL, not HTTPS (but for localhost), or whose host is neither `id`
    /// nor a subdomain of it, or an id that is not a domain.
    ///
    /// ```
    /// # #[cfg(feature = "webauthn")] {
    /// use portal_mfa::passkey::RelyingParty;
    /// let rp = RelyingParty::new("example.com", &["https://portal.example.com"], "Acme Portal")?;
    /// assert!(RelyingParty::new("example.com", &["https://evil.example"], "Acme").is_err());
    /// assert!(RelyingParty::new("example.com", &["http://portal.example.com"], "Acme").is_err());
    /// # }
    /// # Ok::<(), portal_mfa::Error>(())
    /// ```
    #[cfg(feature = "webauthn")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
    pub fn new(id: &str, origins: &[&str], name: &str) -> Result<Self> {
        let webauthn = verify::build(id, origins, name)?;
        Ok(Self {
            webauthn: Arc::new(webauthn),
            id: id.into(),
            user_verification: UserVerification::default(),
        })
    }

    /// Requires or prefers user verification ([`UserVerification::Preferred`] unless set).
    #[must_use]
    pub fn with_user_verification(mut self, user_verification: UserVerification) -> Self {
        self.user_verification = user_verification;
        self
    }

    /// The relying-party id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether user verification is required.
    pub fn user_verification(&self) -> UserVerification {
        self.user_verification
    }
}

/// Options for the browser: give them to `navigator.credentials.create` (a
/// registration) or `.get` (a sign-in), e.g. through
/// `PublicKeyCredential.parseCreationOptionsFromJSON(json.publicKey)`. They
/// hold a challenge, never a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PasskeyOptions(Arc<str>);

impl PasskeyOptions {
    /// The options as WebAuthn JSON (`{"publicKey": {…}}`).
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Debug for PasskeyOptions {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PasskeyOptions(..)")
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for PasskeyOptions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> core::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for PasskeyOptions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> core::result::Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Self(s.into()))
    }
}

/// A credential the browser registered, verified.
pub(crate) struct Registered {
    pub(crate) credential_id: Box<[u8]>,
    /// The verifier's whole credential (its public key among it), as it serialises it.
    pub(crate) credential: Box<[u8]>,
    pub(crate) sign_count: u32,
}

/// A verified assertion.
pub(crate) struct Asserted {
    pub(crate) credential_id: Box<[u8]>,
    pub(crate) sign_count: u32,
}

/// A refused assertion, with the credential id it claimed when that could be read.
pub(crate) type RefusedAssertion = (crate::PasskeyRefusal, Option<Box<[u8]>>);

/// One of the user's credentials, as a ceremony needs it.
#[cfg_attr(not(feature = "webauthn"), allow(dead_code))]
pub(crate) struct KnownCredential<'a> {
    pub(crate) credential: &'a [u8],
    pub(crate) sign_count: u32,
}

/// Whether `input` is meant as a passkey response (WebAuthn JSON), not a code.
pub(crate) fn looks_like_response(input: &str) -> bool {
    input.trim_start().starts_with('{')
}

#[cfg(not(feature = "webauthn"))]
impl RelyingParty {
    pub(crate) fn start_registration(
        &self,
        _: &[u8; 16],
        _: &str,
        _: Vec<Box<[u8]>>,
    ) -> Result<(PasskeyOptions, Box<[u8]>)> {
        match self.never {}
    }

    pub(crate) fn finish_registration(&self, _: &[u8], _: &str) -> Result<Registered, crate::PasskeyRefusal> {
        match self.never {}
    }

    pub(crate) fn start_authentication(&self, _: &[KnownCredential<'_>]) -> Result<(PasskeyOptions, Box<[u8]>)> {
        match self.never {}
    }

    pub(crate) fn finish_authentication(&self, _: &[u8], _: &str) -> Result<Asserted, RefusedAssertion> {
        match self.never {}
    }
}

impl From<String> for PasskeyOptions {
    fn from(json: String) -> Self {
        Self(json.into())
    }
}
