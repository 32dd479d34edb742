//! Pieces of key layouts: strings that end at 0x00, big-endian numbers, time keys.

use super::codec::{time_from_key, time_key};

/// Appends `text` and the 0x00 that ends it.
pub(super) fn push_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

/// Appends `n` big-endian, so keys sort in numeric order.
pub(super) fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_be_bytes());
}

/// Appends the [`time_key`] of `ms`.
pub(super) fn push_time(out: &mut Vec<u8>, ms: i64) {
    out.extend_from_slice(&time_key(ms));
}

/// Reads layouts written with the `push_*` functions, front to back.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// A string up to its 0x00.
    pub(super) fn str(&mut self) -> Option<String> {
        let end = self.rest.iter().position(|&byte| byte == 0)?;
        let text = std::str::from_utf8(&self.rest[..end]).ok()?.to_owned();
        self.rest = &self.rest[end + 1..];
        Some(text)
    }

    /// A big-endian u64.
    pub(super) fn u64(&mut self) -> Option<u64> {
        let (bytes, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(u64::from_be_bytes(*bytes))
    }

    /// A time key.
    pub(super) fn time(&mut self) -> Option<i64> {
        let (bytes, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(time_from_key(*bytes))
    }

    /// Everything left, as a string.
    pub(super) fn rest_str(self) -> Option<String> {
        String::from_utf8(self.rest.to_vec()).ok()
    }

    /// Everything left but the last 8 bytes, and those as a big-endian u64.
    pub(super) fn rest_then_u64(self) -> Option<(&'a [u8], u64)> {
        let (rest, last) = self.rest.split_last_chunk::<8>()?;
        Some((rest, u64::from_be_bytes(*last)))
    }

    /// The key when nothing is left over, else `None`.
    pub(super) fn end<T>(self, value: T) -> Option<T> {
        self.rest.is_empty().then_some(value)
    }
}

/// A key that is one big-endian u64 (a sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

impl super::table::Key for Seq {
    fn write(&self, out: &mut Vec<u8>) {
        push_u64(out, self.0);
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let seq = reader.u64()?;
        reader.end(Self(seq))
    }
}

/// A key that is one string (a number, an event id).
impl super::table::Key for String {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// A key of two strings: `<a> 0x00 <b>` (`b` runs to the end of the key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pair(pub String, pub String);

impl super::table::Key for Pair {
    fn write(&self, out: &mut Vec<u8>) {
        push_str(out, &self.0);
        out.extend_from_slice(self.1.as_bytes());
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let first = reader.str()?;
        Some(Self(first, reader.rest_str()?))
    }
}

/// A key of a number's rows in seq order: `<number> 0x00 <seq>` (the consent ledger's index).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct NumberSeq(pub(super) String, pub(super) u64);

impl super::table::Key for NumberSeq {
    fn write(&self, out: &mut Vec<u8>) {
        push_str(out, &self.0);
        push_u64(out, self.1);
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let number = reader.str()?;
        let seq = reader.u64()?;
        reader.end(Self(number, seq))
    }
}

/// A key of a contact's rows in time order: the number, the time, a seq that makes it unique
/// (the send log, the funnel's touches).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ContactTimeKey {
    pub(super) contact: String,
    pub(super) at_ms: i64,
    pub(super) seq: u64,
}

impl super::table::Key for ContactTimeKey {
    fn write(&self, out: &mut Vec<u8>) {
        push_str(out, &self.contact);
        push_time(out, self.at_ms);
        push_u64(out, self.seq);
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let key = Self {
            contact: reader.str()?,
            at_ms: reader.time()?,
            seq: reader.u64()?,
        };
        reader.end(key)
    }
}

/// The layout of `contact`'s [`ContactTimeKey`]s from `at_ms` on.
pub(super) fn contact_from(contact: &str, at_ms: i64) -> Vec<u8> {
    let mut out = Vec::new();
    push_str(&mut out, contact);
    push_time(&mut out, at_ms);
    out
}
