//! Why an envelope, a group-key wrap or a key bundle was refused, and what
//! the broker answers.
//!
//! The variants are for logs and the audit log. [`EnvelopeError::reason_code`]
//! collapses them to the MQTT 5 reason code of the PUBACK / PUBREC (or of
//! the DISCONNECT that refuses a QoS 0 publish): a payload that is not a
//! well-formed version-1 envelope is 0x99 Payload format invalid; a
//! well-formed one the broker will not accept from this publisher (bad
//! signature, wrong sender, replayed sequence) is 0x87 Not authorized.
//! Errors only a receiver or the key service can meet (decryption, unwrap,
//! commitment) also map, so one mapping serves every caller, but a broker
//! never decrypts and never sees them. Messages never contain keys,
//! plaintext or nonces.

use ledgermq_keystore::KeyStoreError;

/// MQTT 5 reason code 0x99, Payload format invalid.
pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
/// MQTT 5 reason code 0x87, Not authorized.
pub const NOT_AUTHORIZED: u8 = 0x87;
/// MQTT 5 reason code 0x80, Unspecified error.
pub const UNSPECIFIED_ERROR: u8 = 0x80;

/// A refused envelope, group-key wrap or key bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The bytes do not start with the structure's magic (`LMQE`, `LMQK`):
    /// e.g. a plaintext publish on a protected topic.
    #[error("not a {what}: the magic bytes are missing")]
    NotAnEnvelope { what: &'static str },
    /// A layout version this implementation does not speak.
    #[error("{what} version {version} is not supported (only 1)")]
    UnsupportedVersion { what: &'static str, version: u8 },
    /// An envelope kind other than sealed (0x01) or signed-only (0x02).
    #[error("envelope kind 0x{kind:02x} is not defined")]
    UnknownKind { kind: u8 },
    /// The bytes have the magic and version but not the layout.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        what: &'static str,
        reason: &'static str,
    },
    /// A caller-supplied identifier, topic or plaintext of a length the
    /// layout cannot carry.
    #[error("{field} is {len} bytes; it must be {min}..={max}")]
    InvalidField {
        field: &'static str,
        len: usize,
        min: usize,
        max: usize,
    },
    /// Epoch 0 is reserved: group-key epochs start at 1 (as on the ledger),
    /// and a signed-only envelope carries 0.
    #[error("epoch 0 is reserved: group-key epochs start at 1")]
    ZeroEpoch,
    /// Sequence 0 is reserved: a sender's sequence numbers start at 1.
    #[error("sequence 0 is reserved: sequence numbers start at 1")]
    ZeroSequence,
    /// A member's X25519 public key is of low order: no wrap can be made.
    #[error("member {member:?} has a low-order X25519 public key")]
    LowOrderMemberKey { member: String },
    /// A sealed operation on a signed-only envelope or the reverse.
    #[error("expected a {expected} envelope, got a {got} one")]
    WrongKind {
        expected: &'static str,
        got: &'static str,
    },
    /// The signature does not verify under the given public key
    /// (`verify_strict`: also a weak key or a small-order R).
    #[error("{what} signature does not verify")]
    BadSignature { what: &'static str },
    /// The public key given to verify with is not a usable Ed25519 key.
    #[error("{what} signer public key is not a valid Ed25519 key")]
    BadPublicKey { what: &'static str },
    /// The envelope names another sender than the authenticated client.
    #[error("envelope is from {envelope:?}, but the publisher is {publisher:?}")]
    SenderMismatch { envelope: String, publisher: String },
    /// The sequence number is not above the last one accepted from the sender.
    #[error("sender {sender:?} replayed sequence {sequence} (last accepted {last_accepted})")]
    Replayed {
        sender: String,
        sequence: u64,
        last_accepted: u64,
    },
    /// The group key given is for another group or epoch than the envelope names.
    #[error("envelope is for group {envelope_group:?} epoch {envelope_epoch}, the key for {key_group:?} epoch {key_epoch}")]
    WrongGroupKey {
        envelope_group: String,
        envelope_epoch: u64,
        key_group: String,
        key_epoch: u64,
    },
    /// Authenticated decryption failed: tampering, wrong topic or wrong key.
    #[error("envelope for group {group:?} epoch {epoch} does not decrypt")]
    Decrypt { group: String, epoch: u64 },
    /// The HPKE wrap does not open with this member's key (not addressed to
    /// it, or tampered), or the sender's ephemeral key is of low order.
    #[error("group-key wrap for {member:?} does not open")]
    Unwrap { member: String },
    /// The unwrapped key, or the bundle's member digest, does not match the
    /// epoch commitment on the ledger.
    #[error("group key for {group:?} epoch {epoch} does not match the ledger commitment")]
    CommitmentMismatch { group: String, epoch: u64 },
    /// A member id appears twice in an epoch's member list.
    #[error("member {member:?} appears twice in the member list")]
    DuplicateMember { member: String },
    /// A private-key operation failed in the key store (signing, agreement).
    #[error("{operation} failed in the key store: {detail}")]
    Key {
        operation: &'static str,
        detail: String,
    },
}

impl EnvelopeError {
    /// The MQTT 5 reason code a broker answers with (see the module doc).
    pub fn reason_code(&self) -> u8 {
        match self {
            EnvelopeError::NotAnEnvelope { .. }
            | EnvelopeError::UnsupportedVersion { .. }
            | EnvelopeError::UnknownKind { .. }
            | EnvelopeError::Malformed { .. }
            | EnvelopeError::InvalidField { .. }
            | EnvelopeError::ZeroEpoch
            | EnvelopeError::ZeroSequence
            | EnvelopeError::WrongKind { .. }
            | EnvelopeError::Decrypt { .. }
            | EnvelopeError::WrongGroupKey { .. }
            | EnvelopeError::Unwrap { .. }
            | EnvelopeError::DuplicateMember { .. } => PAYLOAD_FORMAT_INVALID,
            EnvelopeError::BadSignature { .. }
            | EnvelopeError::BadPublicKey { .. }
            | EnvelopeError::SenderMismatch { .. }
            | EnvelopeError::Replayed { .. }
            | EnvelopeError::CommitmentMismatch { .. } => NOT_AUTHORIZED,
            EnvelopeError::Key { .. } | EnvelopeError::LowOrderMemberKey { .. } => {
                UNSPECIFIED_ERROR
            }
        }
    }

    pub(super) fn key(operation: &'static str, e: KeyStoreError) -> Self {
        EnvelopeError::Key {
            operation,
            detail: e.to_string(),
        }
    }
}
