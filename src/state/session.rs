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

/// What a completed sign-in proved, for the host's session: the record's
/// session generation when it was issued, how the second factor was proven,
/// and when.
///
/// Small (`Copy`, 24 bytes), serialisable (`Display`/`FromStr` as
/// `s1.<generation>.<proof>.<at>`, and serde with that feature). Check it
/// with [`Portal::check_session`](crate::Portal::check_session) on each
/// request of the session.
///
/// ⚠️ Keep it where the user cannot edit it: the host's server-side session
/// (or a cookie the host signs). It names a generation of this user's record,
/// not the user: keep it beside the user id it was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(into = "String", try_from = "String"))]
pub struct SessionStamp {
    pub(crate) generation: u64,
    pub(crate) proof: SessionProof,
    pub(crate) at: u64,
}

/// How the session's second factor was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionProof {
    /// No second factor: the user has no MFA (or signed in under a grace period).
    NoSecondFactor,
    /// A TOTP code or a backup code (at sign-in, enrolment, or a change that asked for one).
    Code,
    /// A trusted browser's token.
    TrustedBrowser,
}

impl SessionStamp {
    /// How long after a code a session may still trust its browser (10 minutes):
    /// trusting is offered right after the code page, never later, and never from
    /// a session that a trusted browser itself signed in (that would let a token
    /// renew itself forever).
    pub const TRUST_AFTER_CODE_SECS: u64 = 600;

    /// How the second factor was proven.
    pub fn proof(&self) -> SessionProof {
        self.proof
    }

    /// When (Unix time).
    pub fn proven_at(&self) -> u64 {
        self.at
    }

    pub(crate) fn code_proven_within(&self, now: u64, secs: u64) -> bool {
        self.proof == SessionProof::Code && self.at <= now && now - self.at <= secs
    }
}

impl core::fmt::Display for SessionStamp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let proof = match self.proof {
            SessionProof::NoSecondFactor => 'n',
            SessionProof::Code => 'c',
            SessionProof::TrustedBrowser => 't',
        };
        write!(f, "s1.{}.{proof}.{}", self.generation, self.at)
    }
}

impl core::str::FromStr for SessionStamp {
    type Err = crate::error::Error;

    /// Reads what [`Display`](core::fmt::Display) wrote; anything else is
    /// [`Error::InvalidStamp`](crate::Error::InvalidStamp).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || crate::error::Error::InvalidStamp;
        // Longest form: "s1." + 20 digits + ".c." + 20 digits.
        if text.len() > 46 {
            return Err(invalid());
        }
        let mut parts = text.split('.');
        let number = |part: Option<&str>| {
            part.filter(|p| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0'))
            })
            .and_then(|p| p.parse::<u64>().ok())
        };
        if parts.next() != Some("s1") {
            return Err(invalid());
        }
        let generation = number(parts.next()).ok_or_else(invalid)?;
        let proof = match parts.next() {
            Some("n") => SessionProof::NoSecondFactor,
            Some("c") => SessionProof::Code,
            Some("t") => SessionProof::TrustedBrowser,
            _ => return Err(invalid()),
        };
        let at = number(parts.next()).ok_or_else(invalid)?;
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self { generation, proof, at })
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

    #[test]
    fn stamps_read_back_only_in_their_own_form() {
        for stamp in [
            SessionStamp {
                generation: 0,
                proof: SessionProof::Code,
                at: 0,
            },
            SessionStamp {
                generation: u64::MAX,
                proof: SessionProof::TrustedBrowser,
                at: u64::MAX,
            },
            SessionStamp {
                generation: 7,
                proof: SessionProof::NoSecondFactor,
                at: 1_700_000_000,
            },
        ] {
            assert_eq!(stamp.to_string().parse::<SessionStamp>().unwrap(), stamp);
        }
        for bad in [
            "",
            "s1",
            "s1.1.c",
            "s1.1.c.1.1",
            "s2.1.c.1",
            "s1.01.c.1",
            "s1.1.x.1",
            "s1.-1.c.1",
            "s1.1.c.18446744073709551616",
            "s1.+1.c.1",
        ] {
            assert!(bad.parse::<SessionStamp>().is_err(), "{bad}");
        }
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
