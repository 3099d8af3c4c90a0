//! TOTP (RFC 6238, HMAC-SHA256) for MQTT 3.1.1 clients, which have no
//! AUTH packet: user name = device id, password = TOTP over the device's
//! key *for the broker node it logs in to* ([`audience_key`]), so a code
//! accepted by one node is worthless at every other. The caller keeps the
//! last accepted counter per device and passes it in, so a code is good
//! for one login only.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{OtpError, OtpKey};

pub const DEFAULT_STEP_SECS: u64 = 30;
/// Domain separation of the audience key derivation.
pub const AUDIENCE_LABEL: &[u8] = b"LMQ-TOTP-1 audience";
pub const DEFAULT_DIGITS: u32 = 8;
pub const DEFAULT_WINDOW: u64 = 1;

/// The TOTP key of a device for one broker node (the code's audience):
/// `K_aud = HMAC-SHA256(otp_key, "LMQ-TOTP-1 audience" ‖ node account)`,
/// the account being the node's 20-byte ledger address. Both the device
/// and the node compute it; the password is [`totp`] over it.
pub fn audience_key(key: &OtpKey, node_account: &[u8; 20]) -> OtpKey {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose()).expect("HMAC takes any key length");
    mac.update(AUDIENCE_LABEL);
    mac.update(node_account);
    let mut out: [u8; 32] = mac.finalize().into_bytes().into();
    let derived = OtpKey::from_bytes(out);
    zeroize::Zeroize::zeroize(&mut out);
    derived
}

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

    /// The refusal of `code` for a user name the broker has no key for,
    /// after the same work as [`verify`](Self::verify) with an audience
    /// key: the answer (and its timing) is that of a wrong code, so the
    /// user name's existence is not told.
    pub fn refuse_unknown(&self, code: &str, unix_time: u64, node_account: &[u8; 20]) -> OtpError {
        let dummy = audience_key(&OtpKey::from_bytes([0; 32]), node_account);
        match self.verify(&dummy, code, unix_time, None) {
            Err(e) => e,
            Ok(_) => {
                let counter = unix_time / self.step_secs;
                OtpError::WrongTotp {
                    first: counter.saturating_sub(self.window),
                    last: counter.saturating_add(self.window),
                }
            }
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

    /// docs/device-auth.md "TOTP audience": the key and codes of a device
    /// for broker node 0x000102…13.
    #[test]
    fn audience_key_vector() {
        let node: [u8; 20] = std::array::from_fn(|i| i as u8);
        let k_aud = audience_key(&rfc_key(), &node);
        let hex: String = k_aud.expose().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, AUDIENCE_VECTOR_KEY);
        for (time, code) in AUDIENCE_VECTOR_CODES {
            assert_eq!(totp(&k_aud, time, 30, 8), code, "T = {time}");
        }
    }

    const AUDIENCE_VECTOR_KEY: &str =
        "4aa81eb83512550125f7a1b77df2207ab0763d7aa805e59600f5ccdaad71a527";
    const AUDIENCE_VECTOR_CODES: [(u64, &str); 2] = [(59, "33036460"), (1_111_111_109, "89053638")];

    #[test]
    fn a_code_for_one_node_is_not_a_code_for_another() {
        let verifier = TotpVerifier::default();
        let a = audience_key(&rfc_key(), &[0xaa; 20]);
        let b = audience_key(&rfc_key(), &[0xbb; 20]);
        let code = totp(&a, 1_000_000, 30, 8);
        assert!(verifier.verify(&a, &code, 1_000_000, None).is_ok());
        let err = verifier.verify(&b, &code, 1_000_000, None).unwrap_err();
        assert!(matches!(err, OtpError::WrongTotp { .. }), "{err}");
    }

    #[test]
    fn an_unknown_user_name_is_refused_like_a_wrong_code() {
        let verifier = TotpVerifier::default();
        let key = audience_key(&rfc_key(), &[0xaa; 20]);
        let wrong = verifier
            .verify(&key, "12345678", 1_000_000, None)
            .unwrap_err();
        let unknown = verifier.refuse_unknown("12345678", 1_000_000, &[0xaa; 20]);
        assert_eq!(unknown, wrong);
        assert_eq!(
            verifier.refuse_unknown("1234", 1_000_000, &[0xaa; 20]),
            OtpError::MalformedTotp { digits: 8 }
        );
    }

    #[test]
    fn six_digit_codes_are_zero_padded_suffixes_of_the_truncated_value() {
        let eight = totp(&rfc_key(), 59, 30, 8);
        assert_eq!(totp(&rfc_key(), 59, 30, 6), eight[2..]);
    }
}
