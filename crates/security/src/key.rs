//! The device OTP key.
//!
//! Brokers receive it sealed (HPKE) and hand it to this crate only for the
//! duration of one computation; the wrapper makes sure it is wiped from
//! memory when dropped and never ends up in a log line.

use std::fmt;

use zeroize::Zeroize;

/// Length in bytes of a device OTP key.
pub const OTP_KEY_LEN: usize = 32;

/// A 32-byte device OTP key, zeroized on drop. `Debug` never prints it.
#[derive(Clone)]
pub struct OtpKey([u8; OTP_KEY_LEN]);

impl OtpKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; OTP_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Wraps a slice, refusing anything that is not exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; OTP_KEY_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// The raw key, for the HMAC computations of this crate.
    pub(crate) fn expose(&self) -> &[u8; OTP_KEY_LEN] {
        &self.0
    }
}

impl Drop for OtpKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for OtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_key() {
        let key = OtpKey::from_bytes([0xAB; OTP_KEY_LEN]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "OtpKey(<redacted>)");
        assert!(!shown.to_lowercase().contains("ab"));
    }

    #[test]
    fn key_must_be_exactly_32_bytes() {
        assert!(OtpKey::from_slice(&[0; 31]).is_none());
        assert!(OtpKey::from_slice(&[0; 33]).is_none());
        assert!(OtpKey::from_slice(&[0; 32]).is_some());
    }
}
