//! End-to-end payload envelopes and group-key distribution (DESIGN.md §3,
//! byte layouts and vectors in `docs/e2e-format.md`).
//!
//! A publisher seals each payload of a protected topic under the current
//! key of the topic's group (XChaCha20-Poly1305) and signs the whole
//! envelope (Ed25519). A broker checks the signature, the sender and the
//! sequence without any key; only members holding the epoch's
//! [`GroupKey`] can decrypt. Keys are wrapped per member with HPKE
//! (RFC 9180) and published as signed [`KeyBundle`]s on retained key
//! topics; the ledger records an epoch commitment from which anyone can
//! recompute who received a wrap, and against which a member checks the
//! key it unwrapped.
//!
//! Sans-IO like the rest of the crate: bytes in, bytes or typed refusals
//! out. Private keys are reached only through `ledgermq-keystore`'s
//! [`Ed25519Signer`](ledgermq_keystore::Ed25519Signer) and
//! [`X25519Agreement`](ledgermq_keystore::X25519Agreement), so a device's
//! signing key and a member's unwrap key may live in a PKCS#11 token. This
//! module does not know about MQTT packets, the ledger or where sequence
//! counters and keys are stored.

mod batch;
mod bundle;
mod codec;
mod commitment;
mod error;
mod group_key;
mod message;

pub use batch::verify_batch;
pub use bundle::{EpochDistribution, KeyBundle, MemberDelivery, BUNDLE_MAGIC, BUNDLE_VERSION};
pub use commitment::{
    epoch_commitment, epoch_commitment_from_digest, member_commitment, roster_digest,
};
pub use error::{EnvelopeError, NOT_AUTHORIZED, PAYLOAD_FORMAT_INVALID, UNSPECIFIED_ERROR};
pub use group_key::{GroupKey, GROUP_KEY_LEN, WRAP_LEN};
pub use message::{
    Envelope, EnvelopeKind, Publisher, ENVELOPE_MAGIC, ENVELOPE_VERSION, NONCE_LEN, SIGNATURE_LEN,
    TAG_LEN,
};

/// Longest group name, in bytes.
pub const MAX_GROUP_LEN: usize = 64;
/// Longest sender device id, in bytes.
pub const MAX_SENDER_LEN: usize = 128;
/// Longest member id, in bytes (member ids are device ids).
pub const MAX_MEMBER_LEN: usize = 128;
/// Longest envelope body (ciphertext ‖ tag, or signed plaintext): 256 MiB.
pub const MAX_BODY_LEN: usize = 256 << 20;
