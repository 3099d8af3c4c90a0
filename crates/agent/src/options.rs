//! What a client connects to, as whom, and how it proves it.

use std::time::Duration;

use ledgermq_proto::Protocol;
use ledgermq_security::scac::{LocalKey, PeerKey, Suite};
use ledgermq_security::totp::{DEFAULT_DIGITS, DEFAULT_STEP_SECS};
use ledgermq_security::wire::MAX_DEVICE_ID_LEN;
use ledgermq_security::OtpKey;

use crate::{ClientError, DeviceCredentials, PacketCounter};

/// How the device authenticates. `Debug` never shows a secret key (SCAC
/// key handles show their public half).
#[derive(Debug)]
pub enum Auth {
    /// No credentials (plain brokers that allow anonymous clients).
    None,
    /// `LMQ-OTP-1` MQTT 5 enhanced authentication; needs [`Protocol::V5`].
    Otp { key: OtpKey, counter: PacketCounter },
    /// User name = device id, password = TOTP (RFC 6238, HMAC-SHA256)
    /// over the device's audience key for the broker node `audience` (its
    /// 20-byte ledger account, [`DeviceCredentials::totp_audience`]): a
    /// code for one node is refused by every other. For MQTT 3.1.1, also
    /// accepted with 5.0.
    Totp {
        key: OtpKey,
        audience: [u8; 20],
        step_secs: u64,
        digits: u32,
    },
    /// `SCACAuth-*` mutual authentication (docs/scac.md); needs
    /// [`Protocol::V5`], and the device id is the SCAC UID. Afterwards
    /// every QoS 2 payload is encrypted under rolling keys, both ways;
    /// QoS 0/1 payloads are not protected. No re-authentication: a new
    /// connection is a new handshake with fresh keys.
    Scac {
        suite: Suite,
        /// Ed25519 (default suite) or RSA-2048 (compatibility suite),
        /// e.g. from [`crate::scac::open_device_key`].
        device_key: LocalKey,
        /// The broker node's public key, of the same kind.
        broker_key: PeerKey,
    },
}

impl Auth {
    /// `LMQ-OTP-1` with the device's key and packet counter.
    pub fn otp(credentials: &DeviceCredentials, counter: PacketCounter) -> Self {
        Auth::Otp {
            key: credentials.otp_key.clone(),
            counter,
        }
    }

    /// TOTP for broker node `audience`, with the defaults the broker
    /// expects: 30 s steps, 8 digits.
    pub fn totp(credentials: &DeviceCredentials, audience: [u8; 20]) -> Self {
        Auth::Totp {
            key: credentials.otp_key.clone(),
            audience,
            step_secs: DEFAULT_STEP_SECS,
            digits: DEFAULT_DIGITS,
        }
    }
}

/// Everything [`crate::Client::connect`] needs.
#[derive(Debug)]
pub struct ClientOptions {
    /// `host:port` of the broker's MQTT listener.
    pub addr: String,
    /// Also the MQTT client id (and the TOTP user name).
    pub device_id: String,
    pub auth: Auth,
    pub protocol: Protocol,
    /// Seconds; 0 disables keep-alive (no PINGREQ).
    pub keep_alive: u16,
    /// MQTT 5 clean start / MQTT 3.1.1 clean session.
    pub clean_start: bool,
    /// MQTT 5 Session Expiry Interval in seconds (3.1.1 has none: a session
    /// without clean session lasts until the broker drops it).
    pub session_expiry: Option<u32>,
    /// How long to wait for each answer of the broker: the TCP connection,
    /// CONNACK, each AUTH step, PUBACK/PUBREC/PUBCOMP, SUBACK.
    pub response_timeout: Duration,
    /// Largest packet accepted from the broker (announced to MQTT 5 brokers).
    pub max_packet_size: u32,
}

impl ClientOptions {
    /// MQTT 5, no authentication, keep-alive 60 s, clean start, 10 s
    /// response timeout, 1 MiB packets.
    pub fn new(addr: impl Into<String>, device_id: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            device_id: device_id.into(),
            auth: Auth::None,
            protocol: Protocol::V5,
            keep_alive: 60,
            clean_start: true,
            session_expiry: None,
            response_timeout: Duration::from_secs(10),
            max_packet_size: 1024 * 1024,
        }
    }

    /// Refuses combinations that cannot work before anything is sent.
    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: String| Err(ClientError::Options(m));
        if self.device_id.is_empty() {
            return bad("the device id is empty".into());
        }
        if let Auth::Scac {
            suite,
            device_key,
            broker_key,
        } = &self.auth
        {
            self.validate_scac(*suite, device_key, broker_key)?;
        }
        match &self.auth {
            Auth::Otp { .. } if self.protocol == Protocol::V311 => bad(
                "LMQ-OTP-1 needs MQTT 5 enhanced authentication; use TOTP for MQTT 3.1.1".into(),
            ),
            Auth::Otp { .. } if self.device_id.len() > MAX_DEVICE_ID_LEN => bad(format!(
                "LMQ-OTP-1 device ids are at most {MAX_DEVICE_ID_LEN} bytes"
            )),
            Auth::Totp { step_secs: 0, .. } => bad("the TOTP step must be at least 1 s".into()),
            Auth::Totp { digits, .. } if !(6..=9).contains(digits) => {
                bad(format!("TOTP digits must be 6-9, not {digits}"))
            }
            _ if self.response_timeout.is_zero()
                || self.response_timeout > Duration::from_secs(86_400) =>
            {
                bad("the response timeout must be between 1 ms and 24 h".into())
            }
            _ if self.max_packet_size < 64 => {
                bad("max_packet_size must be at least 64 bytes".into())
            }
            _ => Ok(()),
        }
    }

    fn validate_scac(
        &self,
        suite: Suite,
        device_key: &LocalKey,
        broker_key: &PeerKey,
    ) -> Result<(), ClientError> {
        if self.protocol == Protocol::V311 {
            return Err(ClientError::Options(
                "SCAC needs MQTT 5 enhanced authentication".into(),
            ));
        }
        if let Err(e) = suite.check_uid(self.device_id.as_bytes()) {
            return Err(ClientError::Options(format!(
                "{suite} cannot authenticate device {:?}: {e}",
                self.device_id
            )));
        }
        let kinds_fit = matches!(
            (suite, device_key, broker_key),
            (Suite::Default, LocalKey::Ed25519(_), PeerKey::Ed25519(_))
                | (Suite::RsaCompat, LocalKey::Rsa(_), PeerKey::Rsa { .. })
        );
        if !kinds_fit {
            let expected = match suite {
                Suite::Default => "Ed25519",
                Suite::RsaCompat => "RSA-2048",
            };
            return Err(ClientError::Options(format!(
                "{suite} needs {expected} device and broker keys"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> OtpKey {
        OtpKey::from_bytes([0x5A; 32])
    }

    #[test]
    fn otp_over_mqtt_311_is_refused_before_connecting() {
        let mut opts = ClientOptions::new("127.0.0.1:1", "dev");
        opts.protocol = Protocol::V311;
        opts.auth = Auth::Otp {
            key: key(),
            counter: PacketCounter::in_memory(),
        };
        assert!(matches!(opts.validate(), Err(ClientError::Options(_))));
    }

    #[test]
    fn totp_digits_outside_6_to_9_are_refused() {
        let mut opts = ClientOptions::new("127.0.0.1:1", "dev");
        opts.auth = Auth::Totp {
            key: key(),
            audience: [0; 20],
            step_secs: 30,
            digits: 10,
        };
        assert!(matches!(opts.validate(), Err(ClientError::Options(_))));
    }

    fn scac(suite: Suite, device_key: LocalKey, broker_key: PeerKey) -> Auth {
        Auth::Scac {
            suite,
            device_key,
            broker_key,
        }
    }

    fn ed25519() -> LocalKey {
        use ledgermq_security::scac::keys::InMemoryEd25519;
        LocalKey::Ed25519(std::sync::Arc::new(InMemoryEd25519::from_seed(&[1; 32])))
    }

    #[test]
    fn scac_over_mqtt_311_is_refused_before_connecting() {
        let mut opts = ClientOptions::new("127.0.0.1:1", "dev");
        opts.protocol = Protocol::V311;
        opts.auth = scac(Suite::Default, ed25519(), PeerKey::Ed25519([2; 32]));
        let err = opts.validate().unwrap_err().to_string();
        assert!(err.contains("SCAC needs MQTT 5"), "{err}");
    }

    #[test]
    fn scac_keys_must_be_of_the_suite_kind() {
        let mut opts = ClientOptions::new("127.0.0.1:1", "dev");
        opts.auth = scac(Suite::Default, ed25519(), PeerKey::Ed25519([2; 32]));
        opts.validate().unwrap();
        let rsa_broker = PeerKey::Rsa {
            n: vec![1; 256],
            e: vec![1, 0, 1],
        };
        opts.auth = scac(Suite::Default, ed25519(), rsa_broker);
        let err = opts.validate().unwrap_err().to_string();
        assert!(
            err.contains("needs Ed25519 device and broker keys"),
            "{err}"
        );
    }

    #[test]
    fn the_compatibility_suite_needs_an_8_byte_uid() {
        let mut opts = ClientOptions::new("127.0.0.1:1", "sensor-42");
        opts.auth = scac(Suite::RsaCompat, ed25519(), PeerKey::Ed25519([2; 32]));
        let err = opts.validate().unwrap_err().to_string();
        assert!(err.contains("exactly 8 ASCII bytes"), "{err}");
    }

    #[test]
    fn debug_output_never_contains_the_key() {
        let mut opts = ClientOptions::new("127.0.0.1:1", "dev");
        opts.auth = Auth::Totp {
            key: key(),
            audience: [0; 20],
            step_secs: 30,
            digits: 8,
        };
        let shown = format!("{opts:?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.contains("5a") && !shown.contains("90"), "{shown}");
    }
}
