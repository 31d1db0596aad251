//! The stored form: one self-describing byte string per record, policy and
//! audit event, shared by every store.
//!
//! Stores keep these bytes (and, beside a record, its plain
//! [`RecordSummary`](crate::store::RecordSummary)); they never map fields. Each
//! form starts with its format version, so a decoder reads every version this
//! crate has written and refuses a newer one with
//! [`Error::IncompatibleFormat`]. The layout is documented in
//! [`crate::guide::stored_form`].
//!
//! Any byte string decodes to a consistent value or to
//! [`Error::CorruptRecord`], never a panic: every length is checked before it
//! is used, numbers are canonical LEB128, and the whole input must be used.

mod event;
mod parts;
mod policy;
mod record;
mod record_v2;

pub(crate) use event::{decode_event, encode_event};
pub(crate) use policy::{decode_policy, encode_policy};
pub(crate) use record::{decode_record, encode_record, record_sessions};

use crate::error::{Error, Result};

/// The format version this build writes, for each kind of stored value.
pub(crate) const RECORD_FORMAT: u8 = 4;
pub(crate) const POLICY_FORMAT: u8 = 2;
pub(crate) const EVENT_FORMAT: u8 = 2;

/// The first byte of a stored value: its format version, checked against what this build reads.
pub(crate) fn format_version(bytes: &[u8], supported: u8) -> Result<u8> {
    match bytes.first() {
        None => Err(Error::CorruptRecord("empty stored value")),
        Some(0) => Err(Error::CorruptRecord("format version 0 was never written")),
        Some(&found) if found > supported => Err(Error::IncompatibleFormat { found, supported }),
        Some(&found) => Ok(found),
    }
}

/// Appends stored-form primitives.
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn new(format: u8) -> Self {
        let mut bytes = Vec::with_capacity(256);
        bytes.push(format);
        Self(bytes)
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    /// Unsigned LEB128.
    pub(crate) fn uint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    /// `0`, or `1` then the value.
    pub(crate) fn opt_uint(&mut self, value: Option<u64>) {
        match value {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.uint(v);
            }
        }
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.uint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    /// A field: its tag, then the length and bytes of the value `value` writes.
    pub(crate) fn field(&mut self, tag: u64, value: impl FnOnce(&mut Writer) -> Result<()>) -> Result<()> {
        self.uint(tag);
        let start = self.0.len();
        value(self)?;
        self.length_before(start);
        Ok(())
    }

    /// A field whose value `value` writes, and cannot fail to.
    pub(crate) fn written_field(&mut self, tag: u64, value: impl FnOnce(&mut Writer)) {
        self.uint(tag);
        let start = self.0.len();
        value(self);
        self.length_before(start);
    }

    /// Puts the length of what was written since `start` before it (in
    /// place: the value is written once, then moved up by a few bytes).
    pub(crate) fn length_before(&mut self, start: usize) {
        let mut len = Writer(Vec::with_capacity(10));
        len.uint((self.0.len() - start) as u64);
        self.0.splice(start..start, len.0);
    }

    /// A field whose value is `bytes` as they are.
    pub(crate) fn raw_field(&mut self, tag: u64, bytes: &[u8]) {
        self.uint(tag);
        self.bytes(bytes);
    }

    /// A field of text (its value is the UTF-8 bytes).
    pub(crate) fn str_field(&mut self, tag: u64, text: &str) {
        self.raw_field(tag, text.as_bytes());
    }

    /// A number field, always written.
    pub(crate) fn uint_field_always(&mut self, tag: u64, value: u64) {
        let mut inner = Writer(Vec::with_capacity(10));
        inner.uint(value);
        self.raw_field(tag, &inner.0);
    }

    /// A number field, left out when it is 0 (its default).
    pub(crate) fn uint_field(&mut self, tag: u64, value: u64) {
        if value != 0 {
            self.uint_field_always(tag, value);
        }
    }

    /// An optional number field, left out when unset.
    pub(crate) fn opt_uint_field(&mut self, tag: u64, value: Option<u64>) {
        if let Some(value) = value {
            self.uint_field_always(tag, value);
        }
    }
}

/// The fields of a value, in order: each a tag, then its value's length and
/// bytes. Tags ascend; only the tags of lists may repeat (one after another).
pub(crate) struct Fields<'a, 'l> {
    reader: Reader<'a>,
    lists: &'l [u64],
    last: u64,
}

impl<'a, 'l> Fields<'a, 'l> {
    /// The fields `reader` holds; `lists` are the tags that may repeat.
    pub(crate) fn of(reader: Reader<'a>, lists: &'l [u64]) -> Self {
        Self { reader, lists, last: 0 }
    }

    /// The next field's tag and a reader over its value; `None` at the end.
    pub(crate) fn next(&mut self) -> Result<Option<(u64, Reader<'a>)>> {
        if self.reader.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.reader.uint()?;
        if tag == 0 || tag < self.last || (tag == self.last && !self.lists.contains(&tag)) {
            return corrupt("fields out of order or given twice");
        }
        self.last = tag;
        let value = self.reader.bytes()?;
        Ok(Some((tag, Reader { rest: value })))
    }
}

/// Reads stored-form primitives; every failure is [`Error::CorruptRecord`].
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

pub(crate) fn corrupt<T>(why: &'static str) -> Result<T> {
    Err(Error::CorruptRecord(why))
}

impl<'a> Reader<'a> {
    /// A reader past the format byte (already checked by [`format_version`]).
    pub(crate) fn after_format(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes.get(1..).unwrap_or_default(),
        }
    }

    /// `f` must read the whole value.
    pub(crate) fn whole<T>(mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let value = f(&mut self)?;
        self.finish()?;
        Ok(value)
    }

    /// What is left, taken whole.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.rest
    }

    /// A number that is not 0 (a field is left out when it holds 0).
    pub(crate) fn nonzero_uint(&mut self) -> Result<u64> {
        match self.uint()? {
            0 => corrupt("a field holds its default"),
            value => Ok(value),
        }
    }

    pub(crate) fn nonzero_uint_as<T: TryFrom<u64>>(&mut self) -> Result<T> {
        T::try_from(self.nonzero_uint()?).map_err(|_| Error::CorruptRecord("a number is out of range"))
    }

    /// Where the reader is, for [`Reader::since`].
    pub(crate) fn position(&self) -> &'a [u8] {
        self.rest
    }

    /// The bytes read since `before` (a [`Reader::position`]).
    pub(crate) fn since(&self, before: &'a [u8]) -> &'a [u8] {
        &before[..before.len() - self.rest.len()]
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let (&first, rest) = self.rest.split_first().ok_or(Error::CorruptRecord("truncated"))?;
        self.rest = rest;
        Ok(first)
    }

    pub(crate) fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => corrupt("a flag is neither 0 nor 1"),
        }
    }

    /// Canonical unsigned LEB128 of at most 64 bits.
    pub(crate) fn uint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return corrupt("a number overflows 64 bits");
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return corrupt("a number is not in its shortest form");
                }
                return Ok(value);
            }
        }
        corrupt("a number overflows 64 bits")
    }

    pub(crate) fn uint_as<T: TryFrom<u64>>(&mut self) -> Result<T> {
        T::try_from(self.uint()?).map_err(|_| Error::CorruptRecord("a number is out of range"))
    }

    pub(crate) fn opt_uint(&mut self) -> Result<Option<u64>> {
        Ok(if self.bool()? { Some(self.uint()?) } else { None })
    }

    pub(crate) fn opt_uint_as<T: TryFrom<u64>>(&mut self) -> Result<Option<T>> {
        Ok(if self.bool()? { Some(self.uint_as()?) } else { None })
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if self.rest.len() < len {
            return corrupt("truncated");
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.uint_as::<usize>()?;
        self.take(len)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str> {
        core::str::from_utf8(self.bytes()?).map_err(|_| Error::CorruptRecord("text is not UTF-8"))
    }

    /// The value must end exactly here.
    pub(crate) fn finish(self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            corrupt("trailing bytes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_only_canonical_forms_read() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut w = Writer::new(1);
            w.uint(v);
            let mut r = Reader::after_format(&w.0);
            assert_eq!(r.uint().unwrap(), v);
            r.finish().unwrap();
        }
        // 0 written in two bytes, and 2^64.
        for bad in [
            &[1u8, 0x80, 0x00][..],
            &[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        ] {
            assert!(Reader::after_format(bad).uint().is_err());
        }
        assert!(matches!(
            format_version(&[9], 1),
            Err(Error::IncompatibleFormat { found: 9, supported: 1 })
        ));
    }
}
