//! Why a SCAC handshake or a protected payload was refused.
//!
//! [`ScacError`] is a refused authentication: the broker answers CONNACK
//! 0x87 and closes, the client sends DISCONNECT 0x80 with the reason string
//! [`AUTH_ERROR`](super::AUTH_ERROR). [`CryptError`] is a refused payload or
//! key update: DISCONNECT 0x80 with [`CRYPT_ERROR`](super::CRYPT_ERROR).
//! The variants are for logs and the audit log; the peer only ever sees
//! the reason code and string. Messages never contain keys or nonces.

use std::fmt;

use super::keys::KeyError;

/// Which side of the handshake a key or signature belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Device,
    Broker,
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Party::Device => "device",
            Party::Broker => "broker",
        })
    }
}

/// A refused SCAC handshake step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScacError {
    /// The step's bytes do not have the suite's layout.
    #[error("step {step} is malformed: {reason}")]
    Malformed { step: u8, reason: &'static str },
    /// The UID is not acceptable for the suite.
    #[error("invalid UID: {0}")]
    InvalidUid(&'static str),
    /// A key of the wrong algorithm for the suite.
    #[error("the {suite} suite needs {expected} keys, got a {party} key of another kind")]
    WrongKeyKind {
        suite: &'static str,
        expected: &'static str,
        party: Party,
    },
    /// A public key that cannot be used (not a curve point, not RSA-2048…).
    #[error("{party} public key is unusable: {reason}")]
    BadPublicKey { party: Party, reason: &'static str },
    /// A signature (or RSA private-key proof) that does not verify.
    #[error("step {step}: the {signer}'s proof does not verify")]
    BadProof { step: u8, signer: Party },
    /// A field that must repeat a known value does not (UID, nonce, keys).
    #[error("step {step}: {what} does not match")]
    Mismatch { step: u8, what: &'static str },
    /// RSA decryption of a step failed (padding, length or key).
    #[error("step {step}: RSA decryption failed")]
    Decryption { step: u8 },
    /// The peer's ephemeral X25519 key is of low order.
    #[error("step {step}: the peer's ephemeral X25519 key is of low order")]
    NonContributory { step: u8 },
    /// A private-key operation failed in the key store.
    #[error("private-key operation failed: {0}")]
    Key(#[from] KeyError),
    /// The broker knows no key for the UID (the step 2 it answered was a
    /// decoy, [`BrokerHandshake::start_or_decoy`](super::BrokerHandshake::start_or_decoy)).
    #[error("no key is registered for the UID")]
    UnknownDevice,
}

impl ScacError {
    /// The MQTT 5 reason code the broker sends in CONNACK: always 0x87.
    pub fn reason_code(&self) -> u8 {
        super::NOT_AUTHORIZED
    }
}

/// A refused protected payload or key update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    /// The bytes do not have the suite's layout.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        what: &'static str,
        reason: &'static str,
    },
    /// The key-update property is not hexadecimal.
    #[error("key update is not hexadecimal")]
    NotHex,
    /// The message was sealed under another key epoch.
    #[error("{what} is for key epoch {got}, the current epoch is {expected}")]
    EpochMismatch {
        what: &'static str,
        expected: u32,
        got: u32,
    },
    /// The sequence number was already used: a replay.
    #[error("{what} replays sequence number {got} (next acceptable is {next})")]
    Replayed {
        what: &'static str,
        got: u32,
        next: u32,
    },
    /// Authenticated decryption failed (wrong key, tampering, wrong context).
    #[error("{what} does not decrypt under key epoch {epoch}")]
    Decryption { what: &'static str, epoch: u32 },
    /// The decrypted UID is not the session's UID.
    #[error("{what} carries another UID")]
    UidMismatch { what: &'static str },
    /// A compatibility-suite key update that does not name the current key.
    #[error("key update does not name the current key")]
    StaleKeyUpdate,
    /// The payload is larger than the suite can carry.
    #[error("payload of {len} bytes exceeds the suite's limit of {max}")]
    TooLarge { len: usize, max: usize },
    /// The direction's sequence numbers are exhausted: reconnect.
    #[error("sequence numbers exhausted: a new handshake is needed")]
    Exhausted,
}

impl CryptError {
    /// The MQTT 5 reason code of the DISCONNECT: 0x80, Unspecified error.
    pub fn reason_code(&self) -> u8 {
        super::UNSPECIFIED_ERROR
    }
}

impl From<super::keys::KeyStoreError> for ScacError {
    fn from(e: super::keys::KeyStoreError) -> Self {
        ScacError::Key(e.into())
    }
}
