//! Key bundles: one member's wrap of an epoch key, as the key service
//! publishes it on the member's retained key topic, signed so that a broker
//! relaying it cannot substitute another wrap or roster.
//!
//! A member receiving a bundle checks, in order: the layout
//! ([`KeyBundle::parse`]), the key service's signature, the HPKE unwrap
//! with its own X25519 key, and the unwrapped key against the ledger's
//! epoch commitment ([`KeyBundle::open`] does all four). The last check is
//! what makes the ledger, not the key service's word, the authority on
//! which key is current.

use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use ledgermq_keystore::{Ed25519Signer, X25519Agreement};
use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq as _;

use super::codec::{check_id, put_short, Reader};
use super::commitment::{epoch_commitment_from_digest, member_commitment, roster_digest};
use super::group_key::{check_group_epoch, put_group_epoch};
use super::{EnvelopeError, GroupKey, MAX_GROUP_LEN, MAX_MEMBER_LEN, SIGNATURE_LEN, WRAP_LEN};

/// First four bytes of every key bundle.
pub const BUNDLE_MAGIC: &[u8; 4] = b"LMQK";
/// The key-bundle layout version defined here.
pub const BUNDLE_VERSION: u8 = 0x01;

const WHAT: &str = "key bundle";
const SIGNATURE_TAG: &[u8] = b"LMQ-GK-1 bundle";

/// A parsed key bundle, borrowing its bytes.
#[derive(Debug, Clone, Copy)]
pub struct KeyBundle<'a> {
    bytes: &'a [u8],
    group: &'a str,
    epoch: u64,
    member: &'a str,
    roster_digest: &'a [u8; 32],
    wrap: &'a [u8; WRAP_LEN],
    signature: &'a [u8; SIGNATURE_LEN],
}

impl<'a> KeyBundle<'a> {
    /// Parses a bundle: layout and limits only.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        if bytes.get(..BUNDLE_MAGIC.len()) != Some(BUNDLE_MAGIC.as_slice()) {
            return Err(EnvelopeError::NotAnEnvelope { what: WHAT });
        }
        let mut r = Reader::new(&bytes[BUNDLE_MAGIC.len()..], WHAT);
        let version = r.u8("version")?;
        if version != BUNDLE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion {
                what: WHAT,
                version,
            });
        }
        let group = r.short_str(1, MAX_GROUP_LEN, "group: not 1-64 bytes of UTF-8")?;
        let epoch = r.u64("epoch")?;
        if epoch == 0 {
            return Err(r.malformed("epoch 0"));
        }
        let member = r.short_str(1, MAX_MEMBER_LEN, "member: not 1-128 bytes of UTF-8")?;
        let roster_digest = r.array::<32>("roster digest")?;
        let wrap = r.array::<WRAP_LEN>("wrap")?;
        let signature = r.array::<SIGNATURE_LEN>("signature")?;
        r.finish()?;
        Ok(KeyBundle {
            bytes,
            group,
            epoch,
            member,
            roster_digest,
            wrap,
            signature,
        })
    }

    /// Builds and signs the bundle of `member`'s `wrap` with the key
    /// service's Ed25519 key.
    pub fn build(
        service: &dyn Ed25519Signer,
        group: &str,
        epoch: u64,
        member: &str,
        roster_digest: &[u8; 32],
        wrap: &[u8; WRAP_LEN],
    ) -> Result<Vec<u8>, EnvelopeError> {
        check_group_epoch(group, epoch)?;
        check_id("member", member, 1, MAX_MEMBER_LEN)?;
        let mut msg = Vec::with_capacity(
            SIGNATURE_TAG.len() + 6 + 1 + group.len() + 8 + 1 + member.len() + 32 + WRAP_LEN + 64,
        );
        msg.extend_from_slice(SIGNATURE_TAG);
        msg.extend_from_slice(BUNDLE_MAGIC);
        msg.push(BUNDLE_VERSION);
        put_group_epoch(&mut msg, group, epoch);
        put_short(&mut msg, member);
        msg.extend_from_slice(roster_digest);
        msg.extend_from_slice(wrap);
        let signature = service
            .sign(&msg)
            .map_err(|e| EnvelopeError::key("Ed25519 signature", e))?;
        msg.drain(..SIGNATURE_TAG.len());
        msg.extend_from_slice(&signature);
        Ok(msg)
    }

    pub fn group(&self) -> &'a str {
        self.group
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn member(&self) -> &'a str {
        self.member
    }

    /// The digest of the epoch's whole member list (see `commitment`).
    pub fn roster_digest(&self) -> &'a [u8; 32] {
        self.roster_digest
    }

    pub fn wrap(&self) -> &'a [u8; WRAP_LEN] {
        self.wrap
    }

    pub fn signature(&self) -> &'a [u8; SIGNATURE_LEN] {
        self.signature
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Checks the key service's signature:
    /// Ed25519 (`verify_strict`) over `"LMQ-GK-1 bundle" ‖ every byte before the signature`.
    pub fn verify(&self, service_public: &[u8; 32]) -> Result<(), EnvelopeError> {
        let key = VerifyingKey::from_bytes(service_public)
            .map_err(|_| EnvelopeError::BadPublicKey { what: WHAT })?;
        let signed = &self.bytes[..self.bytes.len() - SIGNATURE_LEN];
        let mut msg = Vec::with_capacity(SIGNATURE_TAG.len() + signed.len());
        msg.extend_from_slice(SIGNATURE_TAG);
        msg.extend_from_slice(signed);
        key.verify_strict(&msg, &Signature::from_bytes(self.signature))
            .map_err(|_| EnvelopeError::BadSignature { what: WHAT })
    }

    /// Verifies the signature, unwraps with the member's X25519 key and
    /// checks the key against `ledger_commitment`, the epoch commitment the
    /// ledger holds for this group and epoch. The caller picks the epoch
    /// from the ledger (the latest one) and refuses a bundle for another:
    /// a replayed old bundle would otherwise hand back an old key.
    pub fn open(
        &self,
        service_public: &[u8; 32],
        recipient: &dyn X25519Agreement,
        ledger_commitment: &[u8; 32],
    ) -> Result<GroupKey, EnvelopeError> {
        self.verify(service_public)?;
        let key = GroupKey::unwrap(self.group, self.epoch, self.member, self.wrap, recipient)?;
        let commitment =
            epoch_commitment_from_digest(self.group, self.epoch, &key.check(), self.roster_digest)?;
        if bool::from(commitment.ct_eq(ledger_commitment)) {
            Ok(key)
        } else {
            Err(EnvelopeError::CommitmentMismatch {
                group: self.group.to_owned(),
                epoch: self.epoch,
            })
        }
    }
}

/// Everything the key service produces for one epoch: the commitment for
/// the ledger and, per member, the wrap, the key-exchange commitment and
/// the signed bundle for the member's retained key topic.
pub struct EpochDistribution {
    pub key_check: [u8; 32],
    pub roster_digest: [u8; 32],
    pub epoch_commitment: [u8; 32],
    /// In the order of the members given.
    pub members: Vec<MemberDelivery>,
}

/// One member's share of an [`EpochDistribution`].
#[derive(Clone, PartialEq, Eq)]
pub struct MemberDelivery {
    pub member: String,
    pub wrap: [u8; WRAP_LEN],
    pub member_commitment: [u8; 32],
    pub bundle: Vec<u8>,
}

impl fmt::Debug for MemberDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberDelivery")
            .field("member", &self.member)
            .field("bundle_len", &self.bundle.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for EpochDistribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochDistribution")
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl EpochDistribution {
    /// Wraps `key` for each `(member id, member X25519 public key)` with a
    /// fresh ephemeral each, and signs the bundles with `service`.
    pub fn new<R: RngCore + CryptoRng>(
        key: &GroupKey,
        members: &[(&str, [u8; 32])],
        service: &dyn Ed25519Signer,
        rng: &mut R,
    ) -> Result<Self, EnvelopeError> {
        let wraps = members
            .iter()
            .map(|(member, public)| key.wrap_for(member, public, rng))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_wraps(key, members, &wraps, service)
    }

    /// [`new`](Self::new) with the wraps already made (test vectors use
    /// [`GroupKey::wrap_for_with_ephemeral`]).
    #[doc(hidden)]
    pub fn from_wraps(
        key: &GroupKey,
        members: &[(&str, [u8; 32])],
        wraps: &[[u8; WRAP_LEN]],
        service: &dyn Ed25519Signer,
    ) -> Result<Self, EnvelopeError> {
        if members.len() != wraps.len() {
            return Err(EnvelopeError::InvalidField {
                field: "wrap list",
                len: wraps.len(),
                min: members.len(),
                max: members.len(),
            });
        }
        let roster: Vec<(&str, &[u8; WRAP_LEN])> =
            members.iter().map(|(m, _)| *m).zip(wraps.iter()).collect();
        let roster_digest = roster_digest(&roster)?;
        let key_check = key.check();
        let epoch_commitment =
            epoch_commitment_from_digest(key.group(), key.epoch(), &key_check, &roster_digest)?;
        let members = roster
            .into_iter()
            .map(|(member, wrap)| {
                Ok(MemberDelivery {
                    member: member.to_owned(),
                    wrap: *wrap,
                    member_commitment: member_commitment(key.group(), key.epoch(), member, wrap)?,
                    bundle: KeyBundle::build(
                        service,
                        key.group(),
                        key.epoch(),
                        member,
                        &roster_digest,
                        wrap,
                    )?,
                })
            })
            .collect::<Result<Vec<_>, EnvelopeError>>()?;
        Ok(EpochDistribution {
            key_check,
            roster_digest,
            epoch_commitment,
            members,
        })
    }
}
