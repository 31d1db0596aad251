//! `otpauth://` enrolment URIs (the Google Authenticator Key Uri Format).
//!
//! Built as `otpauth://totp/Issuer:account?secret=…&issuer=Issuer&algorithm=SHA1&digits=6&period=30`:
//! issuer both as label prefix and parameter (old apps read one, new apps the
//! other), spaces as `%20` (apps show a literal `+`), secret unpadded.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use zeroize::Zeroizing;

use super::params::{Algorithm, Digits, TotpParams};
use super::secret::Secret;
use crate::error::{Error, Result, UriError};

/// Everything but RFC 3986 unreserved characters is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A TOTP enrolment: who it is for, the secret and the parameters.
///
/// `Debug` redacts the secret. There is no `Display` because the URI contains
/// the secret: [`OtpAuthUri::to_uri`] returns it in a zeroizing string.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpAuthUri {
    issuer: Option<String>,
    account: String,
    secret: Secret,
    params: TotpParams,
}

impl OtpAuthUri {
    /// Longest URI accepted by [`OtpAuthUri::parse`].
    pub const MAX_LEN: usize = 4096;
    /// Longest issuer or account name, in bytes: with the secret, the URI built
    /// back from any accepted one stays under [`OtpAuthUri::MAX_LEN`].
    pub const MAX_NAME_LEN: usize = 256;

    /// An enrolment for `account` at `issuer` (the portal's name).
    ///
    /// Neither may contain `:` (the label's separator) and the account may not be empty.
    pub fn new(issuer: &str, account: &str, secret: Secret, params: TotpParams) -> Result<Self> {
        let issuer = issuer.trim();
        let account = account.trim();
        if account.is_empty() {
            return Err(Error::InvalidUri(UriError::MissingLabel));
        }
        check_name(issuer)?;
        check_name(account)?;
        let issuer = (!issuer.is_empty()).then(|| issuer.to_owned());
        Ok(Self {
            issuer,
            account: account.to_owned(),
            secret,
            params,
        })
    }

    /// Parses a URI, requiring a secret of at least 128 bits.
    pub fn parse(uri: &str) -> Result<Self> {
        Self::parse_with_min_secret_bits(uri, Secret::DEFAULT_MIN_IMPORT_BITS)
    }

    /// Parses a URI, requiring a secret of at least `min_bits`.
    ///
    /// ⚠️ Lowering the minimum accepts weak keys; do it only for migrations.
    pub fn parse_with_min_secret_bits(uri: &str, min_bits: usize) -> Result<Self> {
        let bad = |e| Error::InvalidUri(e);
        if uri.len() > Self::MAX_LEN {
            return Err(bad(UriError::TooLong));
        }
        let rest = strip_prefix_ignore_case(uri.trim(), "otpauth://").ok_or(bad(UriError::NotOtpauth))?;
        let (kind, rest) = rest.split_once('/').ok_or(bad(UriError::MissingLabel))?;
        if !kind.eq_ignore_ascii_case("totp") {
            return Err(bad(UriError::UnsupportedType));
        }
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));

        // The separator is a literal colon; failing that, an encoded one (both are allowed).
        // Splitting before decoding keeps an encoded colon inside an issuer (as pyotp writes it).
        let (raw_issuer, raw_account) = match label.split_once(':') {
            Some((issuer, account)) => (Some(issuer), account),
            None => match find_ignore_case(label, "%3A") {
                Some(at) => (Some(&label[..at]), &label[at + 3..]),
                None => (None, label),
            },
        };
        let label_issuer = raw_issuer
            .map(|i| decode(i, false))
            .transpose()?
            .map(|i| i.trim().to_owned());
        let account = decode(raw_account, false)?.trim().to_owned();
        if account.is_empty() {
            return Err(bad(UriError::MissingLabel));
        }

        let mut fields = QueryFields::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            fields.set(key, value)?;
        }

        let secret_text = fields.secret.ok_or(bad(UriError::MissingSecret))?;
        let secret_text = Zeroizing::new(decode(secret_text, false)?);
        let secret = Secret::from_base32_with_min(&secret_text, min_bits).map_err(|e| match e {
            Error::InvalidSecret(reason) => bad(UriError::BadSecret(reason)),
            other => other,
        })?;

        let param_issuer = fields
            .issuer
            .map(|v| decode(v, true))
            .transpose()?
            .map(|s| s.trim().to_owned());
        let issuer = match (label_issuer, param_issuer) {
            (Some(a), Some(b)) if a != b => return Err(bad(UriError::IssuerMismatch)),
            (a, b) => b.or(a).filter(|s| !s.is_empty()),
        };

        let algorithm = match fields.algorithm {
            Some(name) => Algorithm::from_uri_name(&decode(name, true)?).ok_or(bad(UriError::UnsupportedAlgorithm))?,
            None => Algorithm::Sha1,
        };
        let digits = match fields.digits {
            Some(text) => text
                .parse::<u8>()
                .ok()
                .and_then(Digits::new)
                .ok_or(bad(UriError::DigitsOutOfRange))?,
            None => Digits::SIX,
        };
        let period = match fields.period {
            Some(text) => text.parse::<u64>().map_err(|_| bad(UriError::BadNumber))?,
            None => 30,
        };
        if period == 0 {
            return Err(bad(UriError::ZeroPeriod));
        }
        if period > TotpParams::MAX_PERIOD {
            return Err(bad(UriError::PeriodTooLong));
        }
        if issuer.as_ref().map_or(0, String::len) > Self::MAX_NAME_LEN || account.len() > Self::MAX_NAME_LEN {
            return Err(bad(UriError::TooLong));
        }
        let printable = |name: &str| name.chars().all(super::text::printable);
        if !issuer.as_deref().is_none_or(printable) || !printable(&account) {
            return Err(bad(UriError::UnprintableName));
        }
        let params = TotpParams::new(algorithm, digits, period)?;
        Ok(Self {
            issuer,
            account,
            secret,
            params,
        })
    }

    /// The URI text.
    ///
    /// ⚠️ Contains the secret: hand it only to the QR encoder or the user's screen.
    pub fn to_uri(&self) -> Zeroizing<String> {
        let account = utf8_percent_encode(&self.account, COMPONENT);
        let (label, issuer) = match &self.issuer {
            Some(issuer) => {
                let issuer = utf8_percent_encode(issuer, COMPONENT).to_string();
                (format!("{issuer}:{account}"), format!("&issuer={issuer}"))
            }
            // Without an issuer, an encoded colon in the account would read back as the
            // separator; an empty issuer prefix keeps the account whole.
            None if self.account.contains(':') => (format!(":{account}"), String::new()),
            None => (account.to_string(), String::new()),
        };
        let after = format!(
            "{issuer}&algorithm={}&digits={}&period={}",
            self.params.algorithm().uri_name(),
            self.params.digits().get(),
            self.params.period()
        );
        let before = format!("otpauth://totp/{label}?secret=");
        let secret = self.secret.to_base32();
        // Sized before the key goes in: growing it afterwards would leave a copy in freed memory.
        let mut uri = Zeroizing::new(String::with_capacity(before.len() + secret.len() + after.len()));
        uri.push_str(&before);
        uri.push_str(&secret);
        uri.push_str(&after);
        uri
    }

    /// The issuer (the portal), if the URI named one.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The account (the user's sign-in name).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The shared secret.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Algorithm, digits and period. A URI carries no T0, so it is always 0.
    pub fn params(&self) -> &TotpParams {
        &self.params
    }
}

impl core::fmt::Debug for OtpAuthUri {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OtpAuthUri")
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .field("secret", &self.secret)
            .field("params", &self.params)
            .finish()
    }
}

#[derive(Default)]
struct QueryFields<'a> {
    secret: Option<&'a str>,
    issuer: Option<&'a str>,
    algorithm: Option<&'a str>,
    digits: Option<&'a str>,
    period: Option<&'a str>,
}

impl<'a> QueryFields<'a> {
    fn set(&mut self, key: &str, value: &'a str) -> Result<()> {
        let slot = match key.to_ascii_lowercase().as_str() {
            "secret" => &mut self.secret,
            "issuer" => &mut self.issuer,
            "algorithm" => &mut self.algorithm,
            "digits" => &mut self.digits,
            "period" => &mut self.period,
            // Apps ignore what they do not know (image=, color=, ...); so do we.
            _ => return Ok(()),
        };
        if slot.replace(value).is_some() {
            return Err(Error::InvalidUri(UriError::DuplicateParameter));
        }
        Ok(())
    }
}

/// Percent-decodes to UTF-8. In the query, `+` is a space (form encoding, as
/// Python's and Go's URI parsers read it); in the label path it is literal.
fn decode(text: &str, plus_is_space: bool) -> Result<String> {
    let replaced;
    let text = if plus_is_space && text.contains('+') {
        replaced = text.replace('+', " ");
        replaced.as_str()
    } else {
        text
    };
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::InvalidUri(UriError::BadEncoding))
}

fn find_ignore_case(text: &str, needle: &str) -> Option<usize> {
    text.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The rule for an issuer or account name: no `:` (the label's separator),
/// printable text, at most [`OtpAuthUri::MAX_NAME_LEN`] bytes.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.contains(':') {
        return Err(Error::InvalidUri(UriError::ColonInName));
    }
    if !name.chars().all(super::text::printable) {
        return Err(Error::InvalidUri(UriError::UnprintableName));
    }
    if name.len() > OtpAuthUri::MAX_NAME_LEN {
        return Err(Error::InvalidUri(UriError::TooLong));
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}
