//! Primitive data representations (spec §1.5) and the fixed header.

use bytes::{BufMut, BytesMut};

use super::EncodeError;

/// Largest remaining length (spec §2.1.4).
pub(crate) const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Bytes a variable byte integer takes; values above the maximum are
/// refused by the writer, so their length only needs to be plausible.
pub(crate) fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes a variable byte integer; `v` must be at most 268,435,455.
pub(crate) fn put_varint(buf: &mut BytesMut, v: usize) -> Result<(), EncodeError> {
    if v > MAX_REMAINING_LENGTH {
        return Err(EncodeError::InvalidValue(
            "variable byte integer above 268435455",
        ));
    }
    let mut v = v;
    loop {
        // Truncation to the low seven bits is the encoding itself.
        let mut byte = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if v == 0 {
            return Ok(());
        }
    }
}

/// Length of a UTF-8 string or binary field including its 2-byte prefix.
pub(crate) fn field_len(len: usize) -> usize {
    2 + len
}

pub(crate) fn put_binary(
    buf: &mut BytesMut,
    data: &[u8],
    field: &'static str,
) -> Result<(), EncodeError> {
    let len = u16::try_from(data.len()).map_err(|_| EncodeError::FieldTooLong {
        field,
        len: data.len(),
    })?;
    buf.put_u16(len);
    buf.put_slice(data);
    Ok(())
}

pub(crate) fn put_string(
    buf: &mut BytesMut,
    s: &str,
    field: &'static str,
) -> Result<(), EncodeError> {
    put_binary(buf, s.as_bytes(), field)
}

/// Reserves room for the whole packet once and writes the fixed header.
pub(crate) fn put_fixed_header(
    buf: &mut BytesMut,
    first: u8,
    remaining: usize,
) -> Result<(), EncodeError> {
    if remaining > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge(remaining));
    }
    buf.reserve(1 + varint_len(remaining) + remaining);
    buf.put_u8(first);
    put_varint(buf, remaining)
}

/// A property block: Property Length then the properties.
pub(crate) fn block_len(content: usize) -> usize {
    varint_len(content) + content
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_above_the_maximum_is_refused() {
        let mut buf = BytesMut::new();
        let err = put_fixed_header(&mut buf, 0x30, MAX_REMAINING_LENGTH + 1).unwrap_err();
        assert_eq!(err, EncodeError::PacketTooLarge(MAX_REMAINING_LENGTH + 1));
    }

    #[test]
    fn varint_lengths_match_the_written_bytes() {
        for v in [
            0,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_REMAINING_LENGTH,
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v).unwrap();
            assert_eq!(buf.len(), varint_len(v), "{v}");
        }
    }
}
