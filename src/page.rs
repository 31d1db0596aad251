//! Pages of a listing (users, audit events) and the cursors that continue them.
//!
//! A cursor is plain text a host can put in a link: the listing it belongs to,
//! a fingerprint of the query that made it, and where the page ended. A cursor
//! used with another query (another user, another filter, another order) is
//! refused with [`Error::InvalidCursor`], never answered with rows of the
//! wrong listing. Cursors are not secret and not signed: one edited by hand
//! can only move within the listing it names.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The most items one page holds; a larger limit is capped to this.
pub const MAX_PAGE: usize = 1000;

/// Where the next page of a listing starts: give it back with the same query.
#[derive(Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
pub struct Cursor(Box<str>);

/// The longest cursor text accepted: a user id of up to [`UserId::MAX_LEN`](crate::UserId::MAX_LEN)
/// bytes in hex, a kind, a fingerprint and a listing name. A test checks a
/// cursor after the longest id with the longest kind parses.
const MAX_CURSOR: usize = 2 * crate::ids::UserId::MAX_LEN + 64;

impl Cursor {
    /// Reads a cursor from text (a query parameter, say). Errors:
    /// [`Error::InvalidCursor`] when it is not one this crate wrote.
    ///
    /// ```
    /// use portal_mfa::{Cursor, Error};
    /// assert!(matches!(Cursor::parse("not a cursor"), Err(Error::InvalidCursor(_))));
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() > MAX_CURSOR {
            return Err(Error::InvalidCursor("too long"));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        {
            return Err(Error::InvalidCursor("not a cursor"));
        }
        let cursor = Self(text.into());
        cursor.split()?;
        Ok(cursor)
    }

    /// The cursor as text, for a link or a form field.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn new(listing: &str, fingerprint: &Fingerprint, position: &str) -> Self {
        Self(format!("{listing}.{}.{position}", fingerprint.hex()).into())
    }

    /// `(listing, fingerprint, position)`.
    fn split(&self) -> Result<(&str, &str, &str)> {
        let mut parts = self.0.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(listing), Some(fingerprint), Some(position))
                if !listing.is_empty() && fingerprint.len() == 16 && !position.is_empty() =>
            {
                Ok((listing, fingerprint, position))
            }
            _ => Err(Error::InvalidCursor("not a cursor")),
        }
    }

    /// Where the page this cursor continues ended, if it belongs to `listing`
    /// with the query whose fingerprint is `fingerprint`.
    pub(crate) fn position_in(&self, listing: &str, fingerprint: &Fingerprint) -> Result<&str> {
        let (l, f, position) = self.split()?;
        if l != listing {
            return Err(Error::InvalidCursor("a cursor of another listing"));
        }
        if f != fingerprint.hex() {
            return Err(Error::InvalidCursor("a cursor of another query"));
        }
        Ok(position)
    }
}

impl core::str::FromStr for Cursor {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

impl core::fmt::Display for Cursor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Cursor({})", self.0)
    }
}

/// What a query asks for, hashed: each part length-prefixed, so no two
/// different queries write the same bytes.
#[derive(Default)]
pub(crate) struct Fingerprint(Sha256);

impl Fingerprint {
    pub(crate) fn part(mut self, bytes: &[u8]) -> Self {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    pub(crate) fn opt_number(self, value: Option<u64>) -> Self {
        match value {
            None => self.part(b"-"),
            Some(v) => self.part(&v.to_be_bytes()),
        }
    }

    fn hex(&self) -> String {
        let digest = self.0.clone().finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(feature = "serde")]
impl TryFrom<String> for Cursor {
    type Error = Error;
    fn try_from(text: String) -> Result<Self, Error> {
        Cursor::parse(&text)
    }
}

#[cfg(feature = "serde")]
impl From<Cursor> for String {
    fn from(cursor: Cursor) -> Self {
        cursor.as_str().to_owned()
    }
}

/// The page size to ask a store for: `limit` capped at [`MAX_PAGE`]; 0 is refused.
pub(crate) fn page_size(limit: usize) -> Result<usize> {
    match limit {
        0 => Err(Error::InvalidPageSize),
        n => Ok(n.min(MAX_PAGE)),
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `size + 1` fetched items: the extra one only
    /// tells that there is a next page, whose cursor `cursor_of` makes from
    /// the page's last item.
    pub(crate) fn of(mut fetched: Vec<T>, size: usize, cursor_of: impl FnOnce(&T) -> Cursor) -> Self {
        let more = fetched.len() > size;
        fetched.truncate(size);
        let next = if more { fetched.last().map(cursor_of) } else { None };
        Self { items: fetched, next }
    }

    /// Maps the items, keeping the cursor.
    pub(crate) fn try_map<U>(self, f: impl FnMut(T) -> Result<U>) -> Result<Page<U>> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_>>()?,
            next: self.next,
        })
    }
}

/// The two builder methods every paged query (a struct with `limit` and
/// `cursor` fields) has, written once.
macro_rules! paged_query_builders {
    ($items:literal) => {
        #[doc = concat!("At most `limit` ", $items, " per page.")]
        #[must_use]
        pub fn limit(mut self, limit: usize) -> Self {
            self.limit = limit;
            self
        }

        /// The page after the one whose [`Page::next`](crate::Page::next) this
        /// is. The rest of the query must be the one that made the cursor, or
        /// the read answers [`Error::InvalidCursor`](crate::Error::InvalidCursor).
        #[must_use]
        pub fn after(mut self, cursor: crate::page::Cursor) -> Self {
            self.cursor = Some(cursor);
            self
        }
    };
}
pub(crate) use paged_query_builders;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_answers_only_its_own_listing_and_query() {
        let query = || Fingerprint::default().part(b"acme").opt_number(Some(3));
        let cursor = Cursor::new("ev1", &query(), "42");
        assert_eq!(cursor.position_in("ev1", &query()).unwrap(), "42");
        let other = Fingerprint::default().part(b"acme").opt_number(None);
        assert!(matches!(
            cursor.position_in("ev1", &other),
            Err(Error::InvalidCursor(_))
        ));
        assert!(matches!(
            cursor.position_in("us1", &query()),
            Err(Error::InvalidCursor(_))
        ));
        let reparsed = Cursor::parse(cursor.as_str()).unwrap();
        assert_eq!(reparsed, cursor);
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for text in [
            "",
            "ev1",
            "ev1.abc.1",
            "ev1..1",
            "ev1.0123456789abcdef.",
            "é",
            "a b",
            &"a".repeat(2000),
        ] {
            assert!(matches!(Cursor::parse(text), Err(Error::InvalidCursor(_))), "{text:?}");
        }
        // Fingerprints of length-prefixed parts: moving a byte between parts changes them.
        let ab = Fingerprint::default().part(b"a").part(b"bc").hex();
        let abc = Fingerprint::default().part(b"ab").part(b"c").hex();
        assert_ne!(ab, abc);
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_was_fetched() {
        let at = |n: &u32| Cursor::new("t", &Fingerprint::default(), &n.to_string());
        let page = Page::of(vec![1, 2, 3], 2, at);
        assert_eq!(page.items, [1, 2]);
        assert_eq!(page.next.unwrap().split().unwrap().2, "2");
        let last = Page::of(vec![1, 2], 2, at);
        assert!(last.next.is_none());
        assert!(matches!(page_size(0), Err(Error::InvalidPageSize)));
        assert_eq!(page_size(usize::MAX).unwrap(), MAX_PAGE);
    }
}
