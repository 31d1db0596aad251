//! A software authenticator behind a WebAuthn client: 1Password's
//! passkey-rs, an independent implementation, given the options JSON exactly
//! as a browser would be. Shared by the passkey scenarios and the benchmarks.

use passkey::authenticator::{Authenticator, MemoryStore, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::Passkey as StoredPasskey;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use portal_mfa::passkey::PasskeyOptions;
use url::Url;

/// The origin the portal's pages are served from.
pub const ORIGIN: &str = "https://portal.example.com";

/// The person at the authenticator: always present; verified (PIN,
/// fingerprint) when `verifies`.
pub struct Person {
    verifies: bool,
}

#[async_trait::async_trait]
impl UserValidationMethod for Person {
    type PasskeyItem = StoredPasskey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, StoredPasskey>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence,
            verification: verification && self.verifies,
        })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(self.verifies)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

pub type SoftClient = Client<MemoryStore, Person, RustCryptoBackend, public_suffix::PublicSuffixList, ()>;

/// A software authenticator behind a WebAuthn client at an origin.
pub struct SoftKey {
    pub client: SoftClient,
    pub origin: Url,
}

impl SoftKey {
    /// A synced-passkey-like authenticator: verifies the user, keeps no counter (always 0).
    pub fn passkey() -> Self {
        Self::new(true, false, ORIGIN)
    }

    /// A security key: keeps a signature counter.
    pub fn security_key() -> Self {
        Self::new(true, true, ORIGIN)
    }

    /// An authenticator that cannot verify the user (a key with no PIN set).
    pub fn without_verification() -> Self {
        Self::new(false, true, ORIGIN)
    }

    pub fn new(verifies: bool, counter: bool, origin: &str) -> Self {
        Self::holding(MemoryStore::new(), verifies, counter, origin)
    }

    pub fn holding(store: MemoryStore, verifies: bool, counter: bool, origin: &str) -> Self {
        let mut authenticator = Authenticator::new(Aaguid::new_empty(), store, Person { verifies }, RustCryptoBackend);
        authenticator.set_make_credentials_with_signature_counter(counter);
        Self {
            client: Client::new(authenticator),
            origin: Url::parse(origin).unwrap(),
        }
    }

    /// The same credentials (private keys and counters) at another origin:
    /// a phishing site's page relaying the portal's challenge.
    pub fn at(&self, origin: &str) -> Self {
        Self::holding(self.client.authenticator().store().clone(), true, true, origin)
    }

    /// A copy of this key as it is now: a cloned authenticator, whose counter falls behind.
    pub fn clone_key(&self) -> Self {
        Self::holding(
            self.client.authenticator().store().clone(),
            true,
            true,
            self.origin.as_str(),
        )
    }

    /// Forgets every credential (deleted on the authenticator).
    pub fn wipe(&mut self) {
        self.client.authenticator_mut().store_mut().clear();
    }

    /// What `navigator.credentials.create(options)` answers, as JSON.
    pub fn register(&mut self, options: &PasskeyOptions) -> Result<String, String> {
        let request: CredentialCreationOptions = serde_json::from_str(options.as_json()).unwrap();
        let created = pollster::block_on(self.client.register(&self.origin, request, DefaultClientData))
            .map_err(|e| format!("{e:?}"))?;
        Ok(serde_json::to_string(&created).unwrap())
    }

    /// What `navigator.credentials.get(options)` answers, as JSON.
    pub fn sign(&mut self, options: &PasskeyOptions) -> Result<String, String> {
        self.sign_json(options.as_json())
    }

    /// [`SoftKey::sign`] for options as text (edited by a test).
    pub fn sign_json(&mut self, options: &str) -> Result<String, String> {
        let request: CredentialRequestOptions = serde_json::from_str(options).unwrap();
        let asserted = pollster::block_on(self.client.authenticate(&self.origin, request, DefaultClientData))
            .map_err(|e| format!("{e:?}"))?;
        Ok(serde_json::to_string(&asserted).unwrap())
    }

    /// The counter its one credential holds now.
    pub fn counter(&self) -> Option<u32> {
        self.client
            .authenticator()
            .store()
            .values()
            .next()
            .and_then(|p| p.counter)
    }

    /// The private scalar of its one credential (a P-256 key's `d`), for
    /// the residue scan to look for.
    pub fn private_key(&self) -> Option<[u8; 32]> {
        use passkey::crypto::coset::{Label, cbor::Value};
        let passkey = self.client.authenticator().store().values().next()?;
        passkey
            .key
            .params
            .iter()
            .find_map(|(label, value)| match (label, value) {
                (Label::Int(-4), Value::Bytes(d)) => d.as_slice().try_into().ok(),
                _ => None,
            })
    }
}
