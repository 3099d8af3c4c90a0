//! TOTP (RFC 6238, HMAC-SHA256) for MQTT 3.1.1 clients, which have no
//! AUTH packet: user name = device id, password = TOTP over the device OTP
//! key. The caller keeps the last accepted counter per device and passes
//! it in, so a code is good for one login only.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{OtpError, OtpKey};

pub const DEFAULT_STEP_SECS: u64 = 30;
pub const DEFAULT_DIGITS: u32 = 8;
pub const DEFAULT_WINDOW: u64 = 1;

/// The RFC 6238 code for `counter` (RFC 4226 dynamic truncation).
fn code_for_counter(key: &OtpKey, counter: u64, digits: u32) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose()).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let binary =
        u32::from_be_bytes(hash[offset..offset + 4].try_into().expect("4 bytes")) & 0x7fff_ffff;
    let value = binary % 10u32.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

fn check_params(step_secs: u64, digits: u32) {
    assert!(step_secs > 0, "TOTP step must be at least one second");
    assert!((6..=9).contains(&digits), "TOTP digits must be 6-9");
}

/// The TOTP for `unix_time` (seconds).
///
/// # Panics
/// If `step_secs` is 0 or `digits` is outside 6–9 (configuration errors).
pub fn totp(key: &OtpKey, unix_time: u64, step_secs: u64, digits: u32) -> String {
    check_params(step_secs, digits);
    code_for_counter(key, unix_time / step_secs, digits)
}

/// Broker-side TOTP check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpVerifier {
    step_secs: u64,
    digits: u32,
    window: u64,
}

impl Default for TotpVerifier {
    /// 30 s steps, 8 digits, ±1 step of clock skew.
    fn default() -> Self {
        Self::new(DEFAULT_STEP_SECS, DEFAULT_DIGITS, DEFAULT_WINDOW)
    }
}

impl TotpVerifier {
    /// # Panics
    /// If `step_secs` is 0 or `digits` is outside 6–9.
    pub fn new(step_secs: u64, digits: u32, window: u64) -> Self {
        check_params(step_secs, digits);
        Self {
            step_secs,
            digits,
            window,
        }
    }

    /// Checks `code` against every counter within ±`window` steps of
    /// `unix_time`, without stopping at the first match, and returns the
    /// matched counter, which the caller stores as the device's last
    /// accepted one. `last_accepted` is the counter stored before, if any.
    pub fn verify(
        &self,
        key: &OtpKey,
        code: &str,
        unix_time: u64,
        last_accepted: Option<u64>,
    ) -> Result<u64, OtpError> {
        let digits = self.digits;
        if code.len() != digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OtpError::MalformedTotp { digits });
        }
        let now_counter = unix_time / self.step_secs;
        let first = now_counter.saturating_sub(self.window);
        let last = now_counter.saturating_add(self.window);
        let mut fresh_match = None;
        let mut replayed_match = None;
        for counter in first..=last {
            let expected = code_for_counter(key, counter, digits);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
                match last_accepted {
                    Some(seen) if counter <= seen => replayed_match = Some(counter),
                    _ => fresh_match = Some(counter),
                }
            }
        }
        match (fresh_match, replayed_match, last_accepted) {
            (Some(counter), _, _) => Ok(counter),
            (None, Some(counter), Some(last_accepted)) => Err(OtpError::ReplayedTotp {
                counter,
                last_accepted,
            }),
            _ => Err(OtpError::WrongTotp { first, last }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_key() -> OtpKey {
        OtpKey::from_slice(b"12345678901234567890123456789012").unwrap()
    }

    /// RFC 6238 Appendix B, SHA-256 column.
    const RFC6238_SHA256: [(u64, &str); 6] = [
        (59, "46119246"),
        (1_111_111_109, "68084774"),
        (1_111_111_111, "67062674"),
        (1_234_567_890, "91819424"),
        (2_000_000_000, "90698825"),
        (20_000_000_000, "77737706"),
    ];

    #[test]
    fn rfc6238_appendix_b_sha256_vectors() {
        for (time, code) in RFC6238_SHA256 {
            assert_eq!(totp(&rfc_key(), time, 30, 8), code, "T = {time}");
        }
    }

    #[test]
    fn rfc6238_vectors_verify_and_return_their_counter() {
        let verifier = TotpVerifier::default();
        for (time, code) in RFC6238_SHA256 {
            assert_eq!(verifier.verify(&rfc_key(), code, time, None), Ok(time / 30));
        }
    }

    #[test]
    fn code_from_previous_and_next_step_is_accepted_within_window() {
        let verifier = TotpVerifier::default();
        let code = totp(&rfc_key(), 1_000_000, 30, 8);
        assert!(verifier
            .verify(&rfc_key(), &code, 1_000_000 + 30, None)
            .is_ok());
        assert!(verifier
            .verify(&rfc_key(), &code, 1_000_000 - 30, None)
            .is_ok());
    }

    #[test]
    fn code_two_steps_old_is_refused_with_0x86() {
        let verifier = TotpVerifier::default();
        let code = totp(&rfc_key(), 1_000_000, 30, 8);
        let err = verifier
            .verify(&rfc_key(), &code, 1_000_000 + 60, None)
            .unwrap_err();
        assert!(matches!(err, OtpError::WrongTotp { .. }));
        assert_eq!(err.reason_code(), 0x86);
        assert_eq!(err.connack_return_code_v311(), 0x04);
    }

    #[test]
    fn replayed_totp_is_refused_with_0x86() {
        let verifier = TotpVerifier::default();
        let code = totp(&rfc_key(), 1_000_000, 30, 8);
        let counter = verifier.verify(&rfc_key(), &code, 1_000_000, None).unwrap();
        let err = verifier
            .verify(&rfc_key(), &code, 1_000_005, Some(counter))
            .unwrap_err();
        assert_eq!(
            err,
            OtpError::ReplayedTotp {
                counter,
                last_accepted: counter
            }
        );
        assert_eq!(err.reason_code(), 0x86);
    }

    #[test]
    fn next_code_after_an_accepted_one_is_accepted() {
        let verifier = TotpVerifier::default();
        let counter = verifier
            .verify(
                &rfc_key(),
                &totp(&rfc_key(), 1_000_000, 30, 8),
                1_000_000,
                None,
            )
            .unwrap();
        let next = totp(&rfc_key(), 1_000_030, 30, 8);
        assert_eq!(
            verifier.verify(&rfc_key(), &next, 1_000_030, Some(counter)),
            Ok(counter + 1)
        );
    }

    #[test]
    fn malformed_totp_is_refused_with_0x86() {
        let verifier = TotpVerifier::default();
        for bad in ["", "1234567", "123456789", "1234567a", "１２３４５６７８"] {
            let err = verifier.verify(&rfc_key(), bad, 59, None).unwrap_err();
            assert_eq!(err, OtpError::MalformedTotp { digits: 8 }, "{bad:?}");
            assert_eq!(err.reason_code(), 0x86);
        }
    }

    #[test]
    fn six_digit_codes_are_zero_padded_suffixes_of_the_truncated_value() {
        let eight = totp(&rfc_key(), 59, 30, 8);
        assert_eq!(totp(&rfc_key(), 59, 30, 6), eight[2..]);
    }
}
