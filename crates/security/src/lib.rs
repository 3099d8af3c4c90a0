//! Sans-IO protocol logic of ledgermq's device authentication:
//! the `LMQ-OTP-1` MQTT 5 enhanced-authentication method and TOTP
//! passwords for MQTT 3.1.1 clients.
//!
//! This crate owns the byte layouts, the cryptography and the order of
//! checks. It does not know about sockets, clocks, the MQTT codec or the
//! ledger: bytes and timestamps come in, bytes and typed outcomes go out,
//! and device state is read through [`OtpDirectory`]. See `README.md` for
//! the wire format and published test vectors.
#![forbid(unsafe_code)]

mod client;
pub mod envelope;
mod error;
pub mod hpke;
mod key;
pub mod scac;
mod server;
pub mod totp;
pub mod wire;

pub use client::OtpClient;
pub use envelope::{Envelope, EnvelopeError, GroupKey, KeyBundle, Publisher};
pub use error::{OtpError, BAD_USER_NAME_OR_PASSWORD, BANNED, NOT_AUTHORIZED};
pub use key::{OtpKey, OTP_KEY_LEN};
pub use server::{
    Authenticated, AwaitingProof, DeviceStatus, OtpDirectory, OtpServer,
    DEFAULT_CHALLENGE_LIFETIME_MS,
};
pub use totp::{audience_key, totp, TotpVerifier};
pub use wire::AUTH_METHOD;
