//! What a sign-in grants past the code check: the [`SessionStamp`] a host
//! keeps in its session, and the browsers a user chose to trust.
//!
//! A record counts its session generations. Every stamp carries the
//! generation it was issued under; anything that takes away a factor that
//! could have granted a session (a reset, a removed or replaced authenticator,
//! MFA turned off, regenerated backup codes, the host's own
//! [`Portal::end_sessions`](crate::Portal::end_sessions)) moves the record to
//! the next generation and forgets every trusted browser, so every older stamp
//! and every token stops working in the same commit.

use std::sync::Arc;

use hmac::{KeyInit, Mac};
use rand::CryptoRng;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::ids::{BrowserId, PortalId, UserId};
use crate::keyring::{Keyring, STAMP_TAG_LEN};

/// What a completed sign-in proved, for the host's session: the user's
/// session generation when it was issued, how the second factor was proven
/// (and by which trusted browser), and when; MAC'd under the portal's
/// [`Keyring`](crate::Keyring) over all of that and the portal and user it
/// was issued for.
///
/// Its text form ([`Display`](core::fmt::Display)/[`FromStr`](core::str::FromStr),
/// and serde with that feature) is
/// `s2.<generation>.<proof>.<at>.<tag>`: `proof` is `n`, `c`, `e` or
/// `t<browser>`, `tag` 26 characters of base32 (HMAC-SHA-256, 128 bits). It
/// is 44 characters for a typical stamp and at most 83
/// ([`SessionStamp::MAX_TEXT_LEN`]), so it fits a cookie.
/// Reading text checks only its form: [`Portal::check_session`](crate::Portal::check_session)
/// and every operation that takes a stamp check its tag, and a stamp
/// edited, forged, truncated, or issued for another user or portal answers
/// [`Error::InvalidStamp`](crate::Error::InvalidStamp). A stamp stays good
/// across a key rotation while the key that signed it is in the keyring.
///
/// ⚠️ A stamp proves what the second factor proved, to the host that keeps
/// it; it is not a session id. Keep it in the host's server-side session,
/// or in a cookie only beside a session id the host checks: a copied stamp
/// is as good as its session until that session ends.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(into = "String", try_from = "String"))]
pub struct SessionStamp {
    pub(crate) generation: u64,
    pub(crate) proof: SessionProof,
    pub(crate) at: u64,
    pub(crate) tag: [u8; STAMP_TAG_LEN],
}

/// How the session's second factor was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionProof {
    /// No second factor: the user has no MFA (or signed in under a grace period).
    NoSecondFactor,
    /// A TOTP code or a backup code (at sign-in, enrolment, or a change that asked for one).
    Code,
    /// A passkey or security key (at sign-in, registration, or a change that asked for one).
    Passkey,
    /// A trusted browser's token: the session ends when that browser is forgotten.
    TrustedBrowser(BrowserId),
    /// Only the password, of a user who must enrol first
    /// ([`SignInStep::MustEnrol`](crate::SignInStep::MustEnrol)): good for
    /// starting and confirming that enrolment, never a signed-in session.
    EnrolmentOnly,
}

impl SessionStamp {
    /// How long after a code a session may still trust its browser (10 minutes):
    /// trusting is offered right after the code page, never later, and never from
    /// a session that a trusted browser itself signed in (that would let a token
    /// renew itself forever).
    pub const TRUST_AFTER_CODE_SECS: u64 = 600;

    /// The longest text form, in characters.
    pub const MAX_TEXT_LEN: usize = 83;

    /// A stamp of `generation` for `proof` at `at`, tagged under `keys` for `user` of `portal`.
    pub(crate) fn issue(
        keys: &Keyring,
        portal: &PortalId,
        user: &UserId,
        generation: u64,
        proof: SessionProof,
        at: u64,
    ) -> Self {
        let mut stamp = Self {
            generation,
            proof,
            at,
            tag: [0; STAMP_TAG_LEN],
        };
        stamp.tag = keys.stamp_tag(|mac| stamp.message(mac, portal, user));
        stamp
    }

    /// Whether this stamp is good in `state`: genuine (tagged under `keys` for
    /// `user` of `portal`, else [`Error::InvalidStamp`](crate::Error::InvalidStamp))
    /// and current (else [`Error::SessionEnded`](crate::Error::SessionEnded)).
    pub(crate) fn check(
        &self,
        keys: &Keyring,
        portal: &PortalId,
        user: &UserId,
        state: &SessionState,
    ) -> crate::error::Result<()> {
        if !self.is_genuine(keys, portal, user) {
            return Err(crate::error::Error::InvalidStamp);
        }
        if !state.admits(self) {
            return Err(crate::error::Error::SessionEnded);
        }
        Ok(())
    }

    /// Whether `keys` tagged this stamp for `user` of `portal` (any key of the ring).
    pub(crate) fn is_genuine(&self, keys: &Keyring, portal: &PortalId, user: &UserId) -> bool {
        keys.stamp_tag_matches(|mac| self.message(mac, portal, user), &self.tag)
    }

    /// Feeds `mac` what the tag covers: every field, and whose stamp it is,
    /// each part length-prefixed or fixed-size so no two stamps encode alike.
    fn message(&self, mac: &mut crate::keyring::StampMac, portal: &PortalId, user: &UserId) {
        mac.update(b"portal-mfa session stamp 2");
        for part in [portal.as_str(), user.kind().as_str(), user.id()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let (kind, browser) = self.proof.code();
        let mut fields = [0u8; 21];
        fields[..8].copy_from_slice(&self.generation.to_be_bytes());
        fields[8] = kind;
        fields[9..13].copy_from_slice(&browser.to_be_bytes());
        fields[13..].copy_from_slice(&self.at.to_be_bytes());
        mac.update(&fields);
    }

    /// How the second factor was proven.
    pub fn proof(&self) -> SessionProof {
        self.proof
    }

    /// When (Unix time).
    pub fn proven_at(&self) -> u64 {
        self.at
    }

    /// The trusted browser that signed this session in, if one did.
    pub fn browser(&self) -> Option<BrowserId> {
        match self.proof {
            SessionProof::TrustedBrowser(browser) => Some(browser),
            _ => None,
        }
    }

    pub(crate) fn code_proven_within(&self, now: u64, secs: u64) -> bool {
        matches!(self.proof, SessionProof::Code | SessionProof::Passkey) && self.at <= now && now - self.at <= secs
    }
}

impl SessionProof {
    /// Its letter in the text form and the browser id it names (0: none).
    fn code(self) -> (u8, u32) {
        match self {
            Self::NoSecondFactor => (b'n', 0),
            Self::Code => (b'c', 0),
            Self::Passkey => (b'p', 0),
            Self::TrustedBrowser(browser) => (b't', browser.0),
            Self::EnrolmentOnly => (b'e', 0),
        }
    }
}

impl core::fmt::Debug for SessionStamp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionStamp")
            .field("generation", &self.generation)
            .field("proof", &self.proof)
            .field("at", &self.at)
            .field("tag", &"<redacted>")
            .finish()
    }
}

impl core::fmt::Display for SessionStamp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let tag = base32::encode(base32::Alphabet::Rfc4648Lower { padding: false }, &self.tag);
        write!(f, "s2.{}.", self.generation)?;
        match self.proof {
            SessionProof::NoSecondFactor => f.write_str("n")?,
            SessionProof::Code => f.write_str("c")?,
            SessionProof::Passkey => f.write_str("p")?,
            SessionProof::TrustedBrowser(browser) => write!(f, "t{}", browser.0)?,
            SessionProof::EnrolmentOnly => f.write_str("e")?,
        }
        write!(f, ".{}.{tag}", self.at)
    }
}

impl core::str::FromStr for SessionStamp {
    type Err = crate::error::Error;

    /// Reads what [`Display`](core::fmt::Display) wrote; anything else is
    /// [`Error::InvalidStamp`](crate::Error::InvalidStamp). Only the form is
    /// checked here: the tag is checked against the portal's keys, for the
    /// user, wherever the stamp is used.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || crate::error::Error::InvalidStamp;
        if text.len() > Self::MAX_TEXT_LEN {
            return Err(invalid());
        }
        let number = |part: &str| {
            (!part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())
                && (part.len() == 1 || !part.starts_with('0')))
            .then(|| part.parse::<u64>().ok())
            .flatten()
        };
        let mut parts = text.split('.');
        if parts.next() != Some("s2") {
            return Err(invalid());
        }
        let generation = parts.next().and_then(number).ok_or_else(invalid)?;
        let proof = match parts.next().ok_or_else(invalid)? {
            "n" => SessionProof::NoSecondFactor,
            "c" => SessionProof::Code,
            "p" => SessionProof::Passkey,
            "e" => SessionProof::EnrolmentOnly,
            other => {
                let id = other.strip_prefix('t').and_then(number).ok_or_else(invalid)?;
                SessionProof::TrustedBrowser(BrowserId(u32::try_from(id).map_err(|_| invalid())?))
            }
        };
        let at = parts.next().and_then(number).ok_or_else(invalid)?;
        let tag_text = parts.next().ok_or_else(invalid)?;
        if parts.next().is_some() || tag_text.len() != 26 {
            return Err(invalid());
        }
        let tag: [u8; STAMP_TAG_LEN] = base32::decode(base32::Alphabet::Rfc4648Lower { padding: false }, tag_text)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(invalid)?;
        // One spelling per stamp: base32's last character has slack bits.
        if base32::encode(base32::Alphabet::Rfc4648Lower { padding: false }, &tag) != tag_text {
            return Err(invalid());
        }
        Ok(Self {
            generation,
            proof,
            at,
            tag,
        })
    }
}

impl From<SessionStamp> for String {
    fn from(stamp: SessionStamp) -> Self {
        stamp.to_string()
    }
}

impl TryFrom<String> for SessionStamp {
    type Error = crate::error::Error;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// What a session check needs of a record, read without opening a secret:
/// its generation and the browsers it trusts now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionState {
    pub(crate) generation: u64,
    pub(crate) browsers: Vec<BrowserId>,
}

impl SessionState {
    /// Whether a genuine `stamp` is still good here: nothing that could have
    /// granted it was taken away since (the generation has not moved on, and
    /// the browser that signed it in, if one did, is still trusted).
    pub(crate) fn admits(&self, stamp: &SessionStamp) -> bool {
        stamp.generation == self.generation && stamp.browser().is_none_or(|b| self.browsers.contains(&b))
    }
}

/// A hash of a browser's token, keyed by the record's salt.
pub(crate) type TokenHash = [u8; 32];

/// A browser the user trusted: it may skip the second factor until it
/// expires. The record keeps a keyed hash of its token, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedBrowser {
    pub(crate) id: BrowserId,
    pub(crate) label: Arc<str>,
    pub(crate) created_at: u64,
    pub(crate) last_used_at: Option<u64>,
    pub(crate) expires_at: u64,
    pub(crate) hash: TokenHash,
}

impl TrustedBrowser {
    /// Its id within the user's record.
    pub fn id(&self) -> BrowserId {
        self.id
    }

    /// What the host called it (the user agent, shortened to 64 characters).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// When it was trusted (Unix time).
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// When it last skipped the second factor, to the hour: a use within an
    /// hour of the last one recorded is not written down.
    pub fn last_used_at(&self) -> Option<u64> {
        self.last_used_at
    }

    /// When it stops being trusted, fixed when it was trusted: use never
    /// extends it. A policy whose lifetime is now shorter ends it sooner;
    /// [`TrustedBrowser::expires_under`] says when.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// When it stops being trusted under a policy allowing `lifetime_secs`
    /// (0: trusted browsers are off, it has already stopped).
    pub fn expires_under(&self, lifetime_secs: u64) -> u64 {
        if lifetime_secs == 0 {
            return self.created_at;
        }
        self.expires_at.min(self.created_at.saturating_add(lifetime_secs))
    }
}

impl core::fmt::Debug for TrustedBrowser {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TrustedBrowser")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("expires_at", &self.expires_at)
            .field("hash", &"<redacted>")
            .finish()
    }
}

/// A user's trusted browsers and the salt their token hashes are keyed with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TrustedBrowsers {
    pub(crate) salt: [u8; 16],
    pub(crate) browsers: Vec<TrustedBrowser>,
}

impl core::fmt::Debug for TrustedBrowsers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(&self.browsers).finish()
    }
}

/// Random bytes in a token (256 bits).
const TOKEN_BYTES: usize = 32;

/// A trusted browser's token, as issued: shown once, for the host to set as a cookie.
///
/// `Debug` is redacted; the token is zeroized on drop.
pub struct BrowserToken(Zeroizing<String>);

impl BrowserToken {
    /// The token, 52 characters of lower-case base32.
    ///
    /// ⚠️ Put it only in the browser's cookie (`__Host-` prefixed, `HttpOnly`,
    /// `Secure`, `SameSite=Strict`); never log or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Debug for BrowserToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BrowserToken(<redacted>)")
    }
}

/// A browser newly trusted.
#[derive(Debug)]
#[non_exhaustive]
pub struct TrustedBrowserIssued {
    /// Its id, for listing and forgetting.
    pub browser: BrowserId,
    /// The token: give it to the browser once.
    pub token: BrowserToken,
    /// When it stops being trusted (Unix time), however often it is used.
    pub expires_at: u64,
}

impl TrustedBrowsers {
    /// Most trusted browsers one user keeps: a person's phone, laptop, work
    /// machine and tablet, with one to spare. A sign-in reads the whole record,
    /// so the bound keeps it small; the oldest makes room for a new one.
    pub(crate) const MAX: usize = 5;

    pub(crate) fn new<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        Self {
            salt,
            browsers: Vec::new(),
        }
    }

    /// A fresh token and its hash for this user.
    pub(crate) fn issue<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        portal: &PortalId,
        user: &UserId,
    ) -> (BrowserToken, TokenHash) {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        rng.fill_bytes(&mut *bytes);
        let text = Zeroizing::new(base32::encode(
            base32::Alphabet::Rfc4648Lower { padding: false },
            &*bytes,
        ));
        let hash = self.hash(portal, user, &bytes);
        (BrowserToken(text), hash)
    }

    /// The browser whose token `presented` is, compared with every entry in
    /// constant time; `None` for anything else, malformed input included.
    pub(crate) fn find(&self, portal: &PortalId, user: &UserId, presented: &str) -> Option<usize> {
        // Cookies are written by machines: no trimming, no case folding.
        if presented.len() != 52 {
            return None;
        }
        let bytes = base32::decode(base32::Alphabet::Rfc4648Lower { padding: false }, presented).map(Zeroizing::new)?;
        let bytes: Zeroizing<[u8; TOKEN_BYTES]> = Zeroizing::new((*bytes).as_slice().try_into().ok()?);
        // Only the canonical spelling is a token (base32 has slack bits in its last character).
        // That spelling is the token itself: zeroized like it.
        let canonical = Zeroizing::new(base32::encode(
            base32::Alphabet::Rfc4648Lower { padding: false },
            &*bytes,
        ));
        if *canonical != presented {
            return None;
        }
        let hash = self.hash(portal, user, &bytes);
        // Every entry is compared, and the match is selected without a branch:
        // neither the time nor the path says which entry, if any, matched.
        let mut found = 0u32;
        for (index, browser) in self.browsers.iter().enumerate() {
            let first = browser.hash.ct_eq(&hash) & found.ct_eq(&0);
            found.conditional_assign(&(index as u32 + 1), first);
        }
        found.checked_sub(1).map(|index| index as usize)
    }

    /// HMAC-SHA-256 under the record's salt, over the owner and the token: a
    /// token never matches in another user's or portal's record.
    fn hash(&self, portal: &PortalId, user: &UserId, token: &[u8; TOKEN_BYTES]) -> TokenHash {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.salt)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        for part in [
            b"portal-mfa trusted browser".as_slice(),
            portal.as_str().as_bytes(),
            user.kind().as_str().as_bytes(),
            user.id().as_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(token);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> Keyring {
        Keyring::new("k", &[byte; 32]).unwrap()
    }

    #[test]
    fn stamps_read_back_only_in_their_own_form() {
        let (keys, portal, user) = (keys(1), PortalId::new("p"), UserId::customer("u"));
        for (generation, proof, at) in [
            (0, SessionProof::Code, 0),
            (u64::MAX, SessionProof::TrustedBrowser(BrowserId(u32::MAX)), u64::MAX),
            (7, SessionProof::NoSecondFactor, 1_700_000_000),
            (7, SessionProof::EnrolmentOnly, 1_700_000_000),
            (7, SessionProof::Passkey, 1_700_000_000),
        ] {
            let stamp = SessionStamp::issue(&keys, &portal, &user, generation, proof, at);
            let text = stamp.to_string();
            assert!(text.len() <= SessionStamp::MAX_TEXT_LEN, "{text}");
            assert_eq!(text.parse::<SessionStamp>().unwrap(), stamp);
        }
        let longest = SessionStamp::issue(
            &keys,
            &portal,
            &user,
            u64::MAX,
            SessionProof::TrustedBrowser(BrowserId(u32::MAX)),
            u64::MAX,
        );
        assert_eq!(longest.to_string().len(), SessionStamp::MAX_TEXT_LEN);
        let typical = SessionStamp::issue(&keys, &portal, &user, 3, SessionProof::Code, 1_764_700_000);
        assert_eq!(typical.to_string().len(), 44);
        let tag = "a".repeat(26);
        for bad in [
            String::new(),
            "s2".into(),
            "s1.1.c.1".into(),
            format!("s1.1.c.1.{tag}"),
            format!("s2.1.c.1.{tag}.1"),
            format!("s2.01.c.1.{tag}"),
            format!("s2.1.x.1.{tag}"),
            format!("s2.1.t.1.{tag}"),
            format!("s2.1.t01.1.{tag}"),
            format!("s2.1.t4294967296.1.{tag}"),
            format!("s2.-1.c.1.{tag}"),
            format!("s2.1.c.18446744073709551616.{tag}"),
            format!("s2.+1.c.1.{tag}"),
            format!("s2.1.c.1.{}", &tag[1..]),
            format!("s2.1.c.1.{}", tag.to_uppercase()),
            // 'b' in the last place sets a slack bit: a second spelling of the same tag.
            format!("s2.1.c.1.{}b", &tag[1..]),
            format!("s2.1.c.1.{}", "a".repeat(SessionStamp::MAX_TEXT_LEN)),
        ] {
            assert!(bad.parse::<SessionStamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stamp_is_genuine_only_for_its_own_user_portal_and_fields() {
        let (ring, portal, user) = (keys(1), PortalId::new("p"), UserId::customer("u"));
        let stamp = SessionStamp::issue(&ring, &portal, &user, 3, SessionProof::Code, 100);
        assert!(stamp.is_genuine(&ring, &portal, &user));
        assert!(!stamp.is_genuine(&keys(2), &portal, &user));
        assert!(!stamp.is_genuine(&ring, &PortalId::new("q"), &user));
        assert!(!stamp.is_genuine(&ring, &portal, &UserId::customer("v")));
        assert!(!stamp.is_genuine(&ring, &portal, &UserId::vendor("u")));
        for edited in [
            SessionStamp { generation: 4, ..stamp },
            SessionStamp { at: 101, ..stamp },
            SessionStamp {
                proof: SessionProof::NoSecondFactor,
                ..stamp
            },
            SessionStamp {
                proof: SessionProof::TrustedBrowser(BrowserId(0)),
                ..stamp
            },
        ] {
            assert!(!edited.is_genuine(&ring, &portal, &user), "{edited:?}");
        }
        let mut flipped = stamp;
        flipped.tag[STAMP_TAG_LEN - 1] ^= 1;
        assert!(!flipped.is_genuine(&ring, &portal, &user));
        assert!(!format!("{stamp:?}").contains(&stamp.to_string()[20..]));
    }

    #[test]
    fn a_stamp_stays_genuine_while_its_key_is_in_the_ring() {
        let (portal, user) = (PortalId::new("p"), UserId::customer("u"));
        let old = keys(1);
        let stamp = SessionStamp::issue(&old, &portal, &user, 0, SessionProof::Code, 1);
        let rotated = Keyring::new("new", &[2; 32])
            .unwrap()
            .with_old_key("k", &[1; 32])
            .unwrap();
        assert!(stamp.is_genuine(&rotated, &portal, &user));
        let renewed = SessionStamp::issue(&rotated, &portal, &user, 0, SessionProof::Code, 1);
        assert_ne!(renewed, stamp, "new stamps are tagged under the new current key");
        assert!(!renewed.is_genuine(&old, &portal, &user));
        assert!(
            !stamp.is_genuine(&keys(2), &portal, &user),
            "once the old key is gone, so are its stamps"
        );
    }

    #[test]
    fn a_token_matches_only_its_owner_and_only_in_canonical_form() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut trusted = TrustedBrowsers::new(&mut rng);
        let (portal, user) = (PortalId::new("p"), UserId::customer("u"));
        let (token, hash) = trusted.issue(&mut rng, &portal, &user);
        trusted.browsers.push(TrustedBrowser {
            id: BrowserId(1),
            label: "x".into(),
            created_at: 0,
            last_used_at: None,
            expires_at: 1,
            hash,
        });
        assert_eq!(trusted.find(&portal, &user, token.expose()), Some(0));
        let (second, hash) = trusted.issue(&mut rng, &portal, &user);
        trusted.browsers.push(TrustedBrowser {
            id: BrowserId(2),
            label: "y".into(),
            created_at: 0,
            last_used_at: None,
            expires_at: 1,
            hash,
        });
        assert_eq!(trusted.find(&portal, &user, second.expose()), Some(1));
        assert_eq!(trusted.find(&portal, &user, token.expose()), Some(0));
        assert_eq!(trusted.find(&portal, &UserId::vendor("u"), token.expose()), None);
        assert_eq!(trusted.find(&PortalId::new("q"), &user, token.expose()), None);
        assert_eq!(trusted.find(&portal, &user, &token.expose().to_uppercase()), None);
        assert_eq!(trusted.find(&portal, &user, &token.expose()[1..]), None);
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    use rand::SeedableRng;
}
