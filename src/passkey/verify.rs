//! The ceremonies, by `webauthn-rs`: options out, responses verified. Its
//! state (the challenge, the allowed credentials) is serialised for the
//! record, prefixed with one byte saying which of its two APIs made it:
//! `P` (passkey: user verification required) or `S` (security key: preferred).

use std::time::Duration;

use webauthn_rs::prelude::{
    Credential, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    SecurityKeyAuthentication, SecurityKeyRegistration, Url, Uuid, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use super::{
    Asserted, KnownCredential, MAX_RESPONSE_LEN, PasskeyOptions, RefusedAssertion, Registered, RelyingParty,
    UserVerification,
};
use crate::error::{Error, PasskeyRefusal, Result};

pub(super) fn build(id: &str, origins: &[&str], name: &str) -> Result<Webauthn> {
    let invalid = |why| Err(Error::InvalidPasskeyConfig(why));
    if id.is_empty() || id.contains(['/', ':']) || id.starts_with('.') || id.ends_with('.') {
        return invalid("the relying-party id must be a domain, with no scheme or port");
    }
    if name.trim().is_empty() {
        return invalid("the relying-party name must not be empty");
    }
    let mut urls = Vec::with_capacity(origins.len());
    for origin in origins {
        let Ok(url) = Url::parse(origin) else {
            return invalid("an origin is not a URL");
        };
        let localhost = url.host_str() == Some("localhost");
        if url.scheme() != "https" && !(localhost && url.scheme() == "http") {
            return invalid("an origin must be https (or http://localhost)");
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return invalid("an origin is a scheme, a host and a port only");
        }
        let Some(host) = url.domain() else {
            return invalid("an origin's host must be a domain");
        };
        if host != id && !host.ends_with(&format!(".{id}")) {
            return invalid("an origin's host must be the relying-party id or a subdomain of it");
        }
        urls.push(url);
    }
    let Some((first, rest)) = urls.split_first() else {
        return invalid("at least one origin is needed");
    };
    let mut builder = WebauthnBuilder::new(id, first)
        .map_err(|_| Error::InvalidPasskeyConfig("webauthn-rs refused the relying-party id"))?
        .rp_name(name)
        .timeout(Duration::from_secs(RelyingParty::CHALLENGE_LIFETIME_SECS));
    for url in rest {
        builder = builder.append_allowed_origin(url);
    }
    builder
        .build()
        .map_err(|_| Error::InvalidPasskeyConfig("webauthn-rs refused the configuration"))
}

const PASSKEY: u8 = b'P';
const SECURITY_KEY: u8 = b'S';

fn state_bytes(kind: u8, state: &impl serde::Serialize) -> Result<Box<[u8]>> {
    let mut bytes = vec![kind];
    serde_json::to_writer(&mut bytes, state).map_err(|_| Error::InvalidParameters("a ceremony state"))?;
    Ok(bytes.into())
}

fn options_json(options: &impl serde::Serialize) -> Result<PasskeyOptions> {
    serde_json::to_string(options)
        .map(PasskeyOptions::from)
        .map_err(|_| Error::InvalidParameters("ceremony options"))
}

fn parse<'a, T: serde::Deserialize<'a>>(response: &'a str) -> Result<T, PasskeyRefusal> {
    if response.len() > MAX_RESPONSE_LEN {
        return Err(PasskeyRefusal::Malformed);
    }
    serde_json::from_str(response).map_err(|_| PasskeyRefusal::Malformed)
}

/// A stored state this build wrote: anything else is a corrupt record's.
fn stored_state<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, PasskeyRefusal> {
    serde_json::from_slice(bytes).map_err(|_| PasskeyRefusal::Refused)
}

fn credential(bytes: &[u8], sign_count: u32) -> Result<Credential> {
    let mut credential: Credential =
        serde_json::from_slice(bytes).map_err(|_| Error::CorruptRecord("a passkey credential does not parse"))?;
    // The record's count is the one kept current; the credential's copy is as registered.
    credential.counter = sign_count;
    Ok(credential)
}

/// What `webauthn-rs` refused, as this crate tells it.
fn refusal(error: &WebauthnError) -> PasskeyRefusal {
    use WebauthnError as W;
    match error {
        W::MismatchedChallenge | W::ChallengeNotFound => PasskeyRefusal::WrongChallenge,
        W::InvalidRPOrigin | W::InvalidRPIDHash | W::CredentialCrossOrigin => PasskeyRefusal::WrongSite,
        W::UserNotVerified | W::UserNotPresent | W::InconsistentUserVerificationPolicy => {
            PasskeyRefusal::UserNotVerified
        }
        W::CredentialNotFound => PasskeyRefusal::UnknownCredential,
        W::CredentialPossibleCompromise => PasskeyRefusal::CounterRegressed,
        W::CredentialAlreadyExists | W::CredentialExcludedFromRequest => PasskeyRefusal::AlreadyRegistered,
        W::AuthenticationFailure | W::SignatureInvalid => PasskeyRefusal::BadSignature,
        W::ParseBase64Failure(_)
        | W::ParseCBORFailure(_)
        | W::ParseJSONFailure(_)
        | W::ParseNOMFailure
        | W::ParseInsufficientBytesAvailable
        | W::InvalidClientDataType
        | W::MissingAttestationCredentialData
        | W::AttestationStatementMapInvalid
        | W::AttestationStatementResponseMissing
        | W::AttestationStatementResponseInvalid
        | W::AttestationStatementSigMissing
        | W::AttestationStatementSigInvalid
        | W::AttestationStatementX5CMissing
        | W::AttestationStatementX5CInvalid
        | W::AttestationStatementAlgMissing
        | W::COSEKeyInvalidCBORValue
        | W::COSEKeyInvalidType
        | W::COSEKeyECDSAXYInvalid
        | W::COSEKeyRSANEInvalid
        | W::COSEKeyECDSAInvalidCurve
        | W::COSEKeyEDDSAXInvalid
        | W::COSEKeyEDDSAInvalidCurve
        | W::COSEKeyInvalidAlgorithm
        | W::EcdsaPointInvalid
        | W::X509DerInvalid => PasskeyRefusal::Malformed,
        _ => PasskeyRefusal::Refused,
    }
}

impl RelyingParty {
    /// Options and state for registering a credential for the user with
    /// handle `user` (named `name` in the browser's prompt), excluding the
    /// credentials it already has.
    pub(crate) fn start_registration(
        &self,
        user: &[u8; 16],
        name: &str,
        exclude: Vec<Box<[u8]>>,
    ) -> Result<(PasskeyOptions, Box<[u8]>)> {
        let handle = Uuid::from_bytes(*user);
        let exclude = Some(exclude.into_iter().map(|id| id.to_vec()).collect());
        let failed = |_| Error::InvalidParameters("webauthn-rs refused the registration options");
        match self.user_verification {
            UserVerification::Required => {
                let (options, state) = self
                    .webauthn
                    .start_passkey_registration(handle, name, name, exclude)
                    .map_err(failed)?;
                Ok((options_json(&options)?, state_bytes(PASSKEY, &state)?))
            }
            UserVerification::Preferred => {
                let (options, state) = self
                    .webauthn
                    .start_securitykey_registration(handle, name, name, exclude, None, None)
                    .map_err(failed)?;
                Ok((options_json(&options)?, state_bytes(SECURITY_KEY, &state)?))
            }
        }
    }

    pub(crate) fn finish_registration(&self, state: &[u8], response: &str) -> Result<Registered, PasskeyRefusal> {
        let response: RegisterPublicKeyCredential = parse(response)?;
        let credential: Credential = match state.split_first() {
            Some((&PASSKEY, state)) => {
                let state: PasskeyRegistration = stored_state(state)?;
                self.webauthn
                    .finish_passkey_registration(&response, &state)
                    .map_err(|e| refusal(&e))?
                    .into()
            }
            Some((&SECURITY_KEY, state)) => {
                let state: SecurityKeyRegistration = stored_state(state)?;
                self.webauthn
                    .finish_securitykey_registration(&response, &state)
                    .map_err(|e| refusal(&e))?
                    .into()
            }
            _ => return Err(PasskeyRefusal::Refused),
        };
        if self.user_verification == UserVerification::Required && !credential.user_verified {
            return Err(PasskeyRefusal::UserNotVerified);
        }
        let bytes = serde_json::to_vec(&credential).map_err(|_| PasskeyRefusal::Refused)?;
        Ok(Registered {
            credential_id: credential.cred_id.to_vec().into(),
            credential: bytes.into(),
            sign_count: credential.counter,
        })
    }

    pub(crate) fn start_authentication(&self, known: &[KnownCredential<'_>]) -> Result<(PasskeyOptions, Box<[u8]>)> {
        let credentials = known
            .iter()
            .map(|k| credential(k.credential, k.sign_count))
            .collect::<Result<Vec<_>>>()?;
        let failed = |_| Error::InvalidParameters("webauthn-rs refused the sign-in options");
        match self.user_verification {
            UserVerification::Required => {
                let keys: Vec<webauthn_rs::prelude::Passkey> = credentials.into_iter().map(Into::into).collect();
                let (options, state) = self.webauthn.start_passkey_authentication(&keys).map_err(failed)?;
                Ok((options_json(&options)?, state_bytes(PASSKEY, &state)?))
            }
            UserVerification::Preferred => {
                let keys: Vec<webauthn_rs::prelude::SecurityKey> = credentials.into_iter().map(Into::into).collect();
                let (options, state) = self.webauthn.start_securitykey_authentication(&keys).map_err(failed)?;
                Ok((options_json(&options)?, state_bytes(SECURITY_KEY, &state)?))
            }
        }
    }

    /// Verifies an assertion against the state; a refusal names the
    /// credential the response claims, when it could be read.
    pub(crate) fn finish_authentication(&self, state: &[u8], response: &str) -> Result<Asserted, RefusedAssertion> {
        let response: PublicKeyCredential = parse(response).map_err(|r| (r, None))?;
        let claimed = || Some(response.raw_id.to_vec().into_boxed_slice());
        let result = match state.split_first() {
            Some((&PASSKEY, state)) => {
                let state: PasskeyAuthentication = stored_state(state).map_err(|r| (r, None))?;
                self.webauthn.finish_passkey_authentication(&response, &state)
            }
            Some((&SECURITY_KEY, state)) => {
                let state: SecurityKeyAuthentication = stored_state(state).map_err(|r| (r, None))?;
                self.webauthn.finish_securitykey_authentication(&response, &state)
            }
            _ => return Err((PasskeyRefusal::Refused, None)),
        }
        .map_err(|e| (refusal(&e), claimed()))?;
        if self.user_verification == UserVerification::Required && !result.user_verified() {
            return Err((PasskeyRefusal::UserNotVerified, claimed()));
        }
        Ok(Asserted {
            credential_id: result.cred_id().to_vec().into(),
            sign_count: result.counter(),
        })
    }
}
