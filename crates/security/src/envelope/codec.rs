//! Bounds-checked reading and length-prefixed writing shared by the
//! envelope and key-bundle layouts.
//!
//! Every read checks the remaining slice before it looks at a byte, and a
//! declared length is compared with what is actually left before anything
//! is sliced or allocated, so a hostile length costs nothing.

use super::EnvelopeError;

/// A cursor over untrusted bytes. Reads never panic: each returns
/// [`EnvelopeError::Malformed`] naming the structure and the field.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn malformed(&self, reason: &'static str) -> EnvelopeError {
        EnvelopeError::Malformed {
            what: self.what,
            reason,
        }
    }

    pub(super) fn take(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<&'a [u8], EnvelopeError> {
        if len > self.bytes.len() {
            return Err(self.malformed(field));
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    pub(super) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<&'a [u8; N], EnvelopeError> {
        let bytes = self.take(N, field)?;
        bytes.try_into().map_err(|_| self.malformed(field))
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, EnvelopeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, EnvelopeError> {
        Ok(u32::from_be_bytes(*self.array::<4>(field)?))
    }

    pub(super) fn u64(&mut self, field: &'static str) -> Result<u64, EnvelopeError> {
        Ok(u64::from_be_bytes(*self.array::<8>(field)?))
    }

    /// A `u8`-length-prefixed UTF-8 identifier whose length must lie in
    /// `min..=max`.
    pub(super) fn short_str(
        &mut self,
        min: usize,
        max: usize,
        field: &'static str,
    ) -> Result<&'a str, EnvelopeError> {
        let len = usize::from(self.u8(field)?);
        if len < min || len > max {
            return Err(self.malformed(field));
        }
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|_| self.malformed(field))
    }

    /// Refuses anything left over: every layout is exact.
    pub(super) fn finish(self) -> Result<(), EnvelopeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("trailing bytes after the signature"))
        }
    }
}

/// Checks a caller-supplied identifier before it is written with a `u8`
/// length prefix.
pub(super) fn check_id(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), EnvelopeError> {
    if value.len() < min || value.len() > max {
        return Err(EnvelopeError::InvalidField {
            field,
            len: value.len(),
            min,
            max,
        });
    }
    Ok(())
}

/// Appends `u8 length ‖ bytes`; the caller has checked the length with
/// [`check_id`] (at most 255).
pub(super) fn put_short(out: &mut Vec<u8>, value: &str) {
    debug_assert!(value.len() <= usize::from(u8::MAX));
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

/// `u16 BE length ‖ topic`, the topic binding of the envelope's AAD and
/// signature.
pub(super) fn put_topic(out: &mut Vec<u8>, topic: &str) -> Result<(), EnvelopeError> {
    let len = u16::try_from(topic.len())
        .ok()
        .filter(|&len| len > 0)
        .ok_or(EnvelopeError::InvalidField {
            field: "topic",
            len: topic.len(),
            min: 1,
            max: usize::from(u16::MAX),
        })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    Ok(())
}
