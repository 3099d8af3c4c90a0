//! Why an authentication was refused, and what the client is told.
//!
//! Every variant says precisely what went wrong, for the broker's logs and
//! the audit log; [`OtpError::reason_code`] collapses them to the MQTT 5
//! reason code the client sees. What a client can learn is only what its
//! own proof earned: `LMQ-OTP-1` answers every well-formed step 1 with a
//! challenge (a decoy for an unknown or revoked device,
//! [`crate::OtpServer::start`]), and at step 3 an unknown, revoked or
//! wrongly proved device all read 0x87 after the same work; only a device
//! whose proof verifies is told it is banned (0x8A) or that its packet
//! number is replayed. For TOTP the broker answers an unknown user name
//! as a wrong code (0x86, [`crate::TotpVerifier::refuse_unknown`]).
//! Descriptions never contain keys, challenges, proofs or codes.

/// MQTT 5 reason code 0x86, Bad user name or password.
pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
/// MQTT 5 reason code 0x87, Not authorized.
pub const NOT_AUTHORIZED: u8 = 0x87;
/// MQTT 5 reason code 0x8A, Server banned (blacklisted device).
pub const BANNED: u8 = 0x8A;

/// A refused `LMQ-OTP-1` or TOTP authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    /// Step-1 authentication data is shorter than its fixed header.
    #[error("authentication data is {len} bytes, shorter than the 9-byte header")]
    AuthDataTooShort { len: usize },
    /// Step-1 authentication data announces a version we do not speak.
    #[error("unsupported LMQ-OTP version {version}")]
    UnsupportedVersion { version: u8 },
    /// The device id is empty, longer than 128 bytes or not UTF-8.
    #[error("device id is not 1-128 bytes of UTF-8 ({len} bytes)")]
    InvalidDeviceId { len: usize },
    /// The directory does not know the device, or has no key for it.
    #[error("device {device_id:?} is not registered")]
    UnknownDevice { device_id: String },
    /// The device was registered but its registration is revoked.
    #[error("device {device_id:?} is revoked")]
    RevokedDevice { device_id: String },
    /// The device is on the blacklist until `until` (caller's clock).
    #[error("device {device_id:?} is blacklisted until {until}")]
    BlacklistedDevice { device_id: String, until: u64 },
    /// The packet number is not above the last accepted one.
    #[error("device {device_id:?} replayed packet number {packet_number} (last accepted {last_accepted})")]
    ReplayedPacketNumber {
        device_id: String,
        packet_number: u64,
        last_accepted: u64,
    },
    /// The proof arrived after the challenge's lifetime.
    #[error("challenge for device {device_id:?} expired at {expired_at}, proof arrived at {now}")]
    ChallengeExpired {
        device_id: String,
        expired_at: u64,
        now: u64,
    },
    /// Step-3 data is not exactly 32 bytes.
    #[error("proof from device {device_id:?} is {len} bytes, expected 32")]
    MalformedProof { device_id: String, len: usize },
    /// Step-3 proof does not match the one computed from the device key.
    #[error("wrong proof from device {device_id:?}")]
    WrongProof { device_id: String },
    /// The TOTP password is not exactly `digits` ASCII digits.
    #[error("TOTP password is not {digits} ASCII digits")]
    MalformedTotp { digits: u32 },
    /// No counter within the window produces the presented TOTP.
    #[error("TOTP does not match any counter in {first}..={last}")]
    WrongTotp { first: u64, last: u64 },
    /// The TOTP matches, but only a counter already accepted (or older).
    #[error("TOTP replayed: counter {counter} is not above the last accepted {last_accepted}")]
    ReplayedTotp { counter: u64, last_accepted: u64 },
}

impl OtpError {
    /// The MQTT 5 reason code for CONNACK (or DISCONNECT after a failed
    /// re-authentication).
    pub fn reason_code(&self) -> u8 {
        match self {
            OtpError::BlacklistedDevice { .. } => BANNED,
            OtpError::MalformedTotp { .. }
            | OtpError::WrongTotp { .. }
            | OtpError::ReplayedTotp { .. } => BAD_USER_NAME_OR_PASSWORD,
            OtpError::AuthDataTooShort { .. }
            | OtpError::UnsupportedVersion { .. }
            | OtpError::InvalidDeviceId { .. }
            | OtpError::UnknownDevice { .. }
            | OtpError::RevokedDevice { .. }
            | OtpError::ReplayedPacketNumber { .. }
            | OtpError::ChallengeExpired { .. }
            | OtpError::MalformedProof { .. }
            | OtpError::WrongProof { .. } => NOT_AUTHORIZED,
        }
    }

    /// The MQTT 3.1.1 CONNACK return code: 0x04 (bad user name or
    /// password) or 0x05 (not authorized; 3.1.1 has no "banned").
    pub fn connack_return_code_v311(&self) -> u8 {
        match self.reason_code() {
            BAD_USER_NAME_OR_PASSWORD => 0x04,
            _ => 0x05,
        }
    }
}
