//! A bounds-checked cursor over one packet's bytes.
//!
//! Every read checks the length first and reports which field ran past the
//! end, so no input can make the decoder slice out of bounds. Binary fields
//! are returned as `Bytes` views of the received buffer (no copy).

use bytes::{Buf, Bytes};

use super::DecodeError;

/// The Malformed Packet messages for one named field.
#[derive(Clone, Copy)]
pub(super) struct Field {
    pub truncated: &'static str,
    pub invalid_utf8: &'static str,
    pub nul: &'static str,
}

/// `field!("PUBLISH topic name")` builds the messages for that field.
macro_rules! field {
    ($name:literal) => {
        $crate::decode::reader::Field {
            truncated: concat!($name, " runs past the end of the packet"),
            invalid_utf8: concat!($name, " is not valid UTF-8"),
            nul: concat!($name, " contains U+0000"),
        }
    };
}
pub(super) use field;

pub(super) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(super) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn u8(&mut self, f: Field) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(DecodeError::Malformed(f.truncated));
        }
        Ok(self.buf.get_u8())
    }

    pub(super) fn u16(&mut self, f: Field) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(DecodeError::Malformed(f.truncated));
        }
        Ok(self.buf.get_u16())
    }

    pub(super) fn u32(&mut self, f: Field) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(DecodeError::Malformed(f.truncated));
        }
        Ok(self.buf.get_u32())
    }

    /// A variable byte integer; non-minimal encodings and more than four
    /// bytes are malformed (spec §1.5.5).
    pub(super) fn varint(&mut self, f: Field) -> Result<u32, DecodeError> {
        match parse_varint(&self.buf) {
            VarInt::Value { value, len } => {
                self.buf.advance(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(DecodeError::Malformed(f.truncated)),
            VarInt::Invalid(msg) => Err(DecodeError::Malformed(msg)),
        }
    }

    pub(super) fn take(&mut self, n: usize, f: Field) -> Result<Bytes, DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Malformed(f.truncated));
        }
        Ok(self.buf.split_to(n))
    }

    /// A sub-reader over the next `n` bytes (e.g. a property block).
    pub(super) fn sub(&mut self, n: usize, f: Field) -> Result<Reader, DecodeError> {
        self.take(n, f).map(Reader::new)
    }

    /// Binary Data: a two-byte length then that many bytes (spec §1.5.6).
    pub(super) fn binary(&mut self, f: Field) -> Result<Bytes, DecodeError> {
        let len = self.u16(f)?;
        self.take(usize::from(len), f)
    }

    /// UTF-8 Encoded String (spec §1.5.4): valid UTF-8 without U+0000.
    /// Surrogates cannot occur because `str::from_utf8` refuses them.
    pub(super) fn string(&mut self, f: Field) -> Result<String, DecodeError> {
        let raw = self.binary(f)?;
        let s = std::str::from_utf8(&raw).map_err(|_| DecodeError::Malformed(f.invalid_utf8))?;
        if s.as_bytes().contains(&0) {
            return Err(DecodeError::Malformed(f.nul));
        }
        Ok(s.to_owned())
    }

    /// Everything left (the PUBLISH payload).
    pub(super) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }
}

pub(super) enum VarInt {
    Value { value: u32, len: usize },
    Incomplete,
    Invalid(&'static str),
}

/// Parses a variable byte integer at the front of `buf`.
pub(super) fn parse_varint(buf: &[u8]) -> VarInt {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return VarInt::Invalid("variable byte integer is not minimally encoded");
            }
            return VarInt::Value { value, len: i + 1 };
        }
    }
    if buf.len() >= 4 {
        VarInt::Invalid("variable byte integer longer than 4 bytes")
    } else {
        VarInt::Incomplete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(buf: &[u8]) -> Option<(u32, usize)> {
        match parse_varint(buf) {
            VarInt::Value { value, len } => Some((value, len)),
            _ => None,
        }
    }

    #[test]
    fn varint_boundaries_follow_spec_table_1_1() {
        assert_eq!(value(&[0x00]), Some((0, 1)));
        assert_eq!(value(&[0x7F]), Some((127, 1)));
        assert_eq!(value(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(value(&[0xFF, 0x7F]), Some((16_383, 2)));
        assert_eq!(value(&[0x80, 0x80, 0x01]), Some((16_384, 3)));
        assert_eq!(value(&[0xFF, 0xFF, 0xFF, 0x7F]), Some((268_435_455, 4)));
    }

    #[test]
    fn varint_with_fifth_byte_is_malformed() {
        assert!(matches!(
            parse_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            VarInt::Invalid(_)
        ));
    }

    #[test]
    fn varint_non_minimal_is_malformed() {
        assert!(matches!(parse_varint(&[0x80, 0x00]), VarInt::Invalid(_)));
    }

    #[test]
    fn varint_short_is_incomplete() {
        assert!(matches!(parse_varint(&[0x80, 0x80]), VarInt::Incomplete));
        assert!(matches!(parse_varint(&[]), VarInt::Incomplete));
    }

    #[test]
    fn string_with_nul_is_malformed() {
        let mut r = Reader::new(Bytes::from_static(&[0, 3, b'a', 0, b'b']));
        assert_eq!(
            r.string(field!("test string")),
            Err(DecodeError::Malformed("test string contains U+0000"))
        );
    }

    #[test]
    fn string_with_surrogate_is_malformed() {
        // U+D800 encoded as if it were a scalar value (CESU-style).
        let mut r = Reader::new(Bytes::from_static(&[0, 3, 0xED, 0xA0, 0x80]));
        assert_eq!(
            r.string(field!("test string")),
            Err(DecodeError::Malformed("test string is not valid UTF-8"))
        );
    }
}
