//! Who and what a record belongs to: portals, users, authenticators.

use std::sync::Arc;

/// A portal (one MFA policy), e.g. a customer portal shared by customers and vendors.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct PortalId(Arc<str>);

impl PortalId {
    /// A portal by its host-side identifier.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The kinds of portal user the product documents name. One portal policy covers every kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum UserKind {
    /// A customer of the portal's owner.
    Customer,
    /// A vendor (supplier) using the same portal.
    Vendor,
    /// A help-center contact.
    Contact,
    /// Any other kind of portal user.
    Member,
}

impl UserKind {
    /// A stable short name, for storage keys and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Vendor => "vendor",
            Self::Contact => "contact",
            Self::Member => "member",
        }
    }

    /// The kind named by [`UserKind::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Customer, Self::Vendor, Self::Contact, Self::Member]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// Kinds order by their names, as SQL stores sort the name column: one user
/// order on every store, so a listing's cursor means the same everywhere.
impl Ord for UserKind {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for UserKind {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A portal user: their kind and the host's identifier for them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UserId {
    kind: UserKind,
    id: Arc<str>,
}

impl UserId {
    /// The longest id, in bytes, any operation accepts: room for any email
    /// address (254) or opaque key, while a page cursor that names the id
    /// stays short enough for a link. Every [`Portal`](crate::Portal)
    /// operation refuses a longer one with [`Error::UserIdTooLong`](crate::Error::UserIdTooLong)
    /// before its store is asked, and a listing refuses one read back from a store.
    pub const MAX_LEN: usize = 512;

    /// A user of `kind` with the host's identifier `id`.
    ///
    /// ⚠️ Any length is held here; operations refuse ids over
    /// [`UserId::MAX_LEN`] bytes. Use [`UserId::checked`] to refuse them where
    /// the id enters the host.
    pub fn new(kind: UserKind, id: impl Into<Arc<str>>) -> Self {
        Self { kind, id: id.into() }
    }

    /// [`UserId::new`], refusing an id over [`UserId::MAX_LEN`] bytes.
    ///
    /// ```
    /// use portal_mfa::{Error, UserId, UserKind};
    /// assert!(UserId::checked(UserKind::Customer, "alice@example.com").is_ok());
    /// let long = "a".repeat(UserId::MAX_LEN + 1);
    /// assert!(matches!(UserId::checked(UserKind::Customer, long), Err(Error::UserIdTooLong { len: 513 })));
    /// ```
    pub fn checked(kind: UserKind, id: impl Into<Arc<str>>) -> crate::error::Result<Self> {
        let user = Self::new(kind, id);
        user.check_len()?;
        Ok(user)
    }

    /// Errors with [`Error::UserIdTooLong`](crate::Error::UserIdTooLong) past [`UserId::MAX_LEN`].
    pub(crate) fn check_len(&self) -> crate::error::Result<()> {
        match self.id.len() {
            len if len > Self::MAX_LEN => Err(crate::error::Error::UserIdTooLong { len }),
            _ => Ok(()),
        }
    }

    /// A customer.
    pub fn customer(id: impl Into<Arc<str>>) -> Self {
        Self::new(UserKind::Customer, id)
    }

    /// A vendor.
    pub fn vendor(id: impl Into<Arc<str>>) -> Self {
        Self::new(UserKind::Vendor, id)
    }

    /// A help-center contact.
    pub fn contact(id: impl Into<Arc<str>>) -> Self {
        Self::new(UserKind::Contact, id)
    }

    /// The user's kind.
    pub fn kind(&self) -> UserKind {
        self.kind
    }

    /// The host's identifier.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl core::fmt::Display for UserId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

/// One of a user's authenticators, numbered from 1 within the user's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct AuthenticatorId(pub u32);

impl core::fmt::Display for AuthenticatorId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One of a user's trusted browsers, numbered from 1 within the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct BrowserId(pub u32);

impl core::fmt::Display for BrowserId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// An administrator of a portal, as the host has authorised them.
///
/// Every admin operation (policy changes, **Reset MFA**, imports) takes one, so
/// the type says the check was made; the crate records the name in the audit
/// trail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Admin(Actor);

impl Admin {
    /// An administrator the host has authorised, named as the audit trail
    /// should show them (an email, a user id).
    ///
    /// ⚠️ Construct one only after the host's own check that this person
    /// administers this portal, in this request. For a reset, step the admin
    /// up first (a fresh second factor) and confirm the user's identity out of
    /// band: a reset is the path an attacker talks a help desk into.
    pub fn authorised(name: impl Into<Arc<str>>) -> Self {
        Self(Actor::Admin(name.into()))
    }

    /// An operator at the command line (the break-glass path, when the admins
    /// themselves cannot sign in), with the reason every change they make is
    /// audited under.
    ///
    /// ⚠️ Whoever can run the command line with the store and the keyring
    /// holds every admin power; the host's access control to that machine is
    /// the check.
    pub fn operator(name: impl Into<Arc<str>>, reason: impl Into<Arc<str>>) -> Self {
        Self(Actor::Operator {
            name: name.into(),
            reason: reason.into(),
        })
    }

    /// The name given.
    pub fn name(&self) -> &str {
        match &self.0 {
            Actor::Admin(name) | Actor::Operator { name, .. } => name,
            _ => "",
        }
    }

    pub(crate) fn actor(&self) -> &Actor {
        &self.0
    }
}

/// The user acting on their own record, for the driver to lend.
pub(crate) static USER: Actor = Actor::User;
/// The crate itself (a sweep), for the driver to lend.
pub(crate) static SYSTEM: Actor = Actor::System;

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", content = "name", rename_all = "snake_case"))]
pub enum Actor {
    /// The user the record belongs to.
    User,
    /// An administrator, by the host's identifier.
    Admin(Arc<str>),
    /// The library itself (e.g. a lock that expired).
    System,
    /// An operator at the command line, and the reason they gave.
    Operator {
        /// Who (as the command line was told).
        name: Arc<str>,
        /// Why, as they gave it.
        reason: Arc<str>,
    },
}
