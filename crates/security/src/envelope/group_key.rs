//! Epoch group keys: generation, the key check a member compares with the
//! ledger, the per-envelope AEAD key, and the HPKE wrap to each member.
//!
//! A [`GroupKey`] is bound to its group and epoch, so sealing with last
//! epoch's key or opening another group's envelope is refused by type and
//! by check rather than by an AEAD failure deep inside.

use std::fmt;

use hkdf::Hkdf;
use ledgermq_keystore::X25519Agreement;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::codec::{check_id, put_short};
use super::{EnvelopeError, MAX_GROUP_LEN, MAX_MEMBER_LEN};
use crate::hpke::{self, HpkeError, ENC_LEN};

/// Length of a group key.
pub const GROUP_KEY_LEN: usize = 32;
/// Length of a wrapped group key: HPKE `enc` (32) ‖ ciphertext (32) ‖ tag (16).
pub const WRAP_LEN: usize = ENC_LEN + GROUP_KEY_LEN + hpke::TAG_LEN;

const CHECK_TAG: &[u8] = b"LMQ-GK-1 check";
const WRAP_TAG: &[u8] = b"LMQ-GK-1 wrap";
const ENVELOPE_KEY_TAG: &[u8] = b"LMQ-ENV-1 key";

/// The symmetric key of one epoch of one group. Zeroised on drop; `Debug`
/// shows the group and epoch only.
#[derive(Clone)]
pub struct GroupKey {
    group: String,
    epoch: u64,
    secret: Zeroizing<[u8; GROUP_KEY_LEN]>,
    /// HKDF-SHA256(secret, info = "LMQ-ENV-1 key" ‖ group ‖ epoch), derived once.
    envelope_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupKey")
            .field("group", &self.group)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl GroupKey {
    /// A fresh random key for `epoch` (at least 1) of `group` (1–64 bytes).
    pub fn generate<R: RngCore + CryptoRng>(
        group: &str,
        epoch: u64,
        rng: &mut R,
    ) -> Result<Self, EnvelopeError> {
        let mut secret = Zeroizing::new([0u8; GROUP_KEY_LEN]);
        rng.fill_bytes(secret.as_mut());
        Self::new(group, epoch, secret)
    }

    /// The key with these bytes (the key service's own storage, test vectors).
    pub fn from_bytes(
        group: &str,
        epoch: u64,
        secret: &[u8; GROUP_KEY_LEN],
    ) -> Result<Self, EnvelopeError> {
        Self::new(group, epoch, Zeroizing::new(*secret))
    }

    fn new(
        group: &str,
        epoch: u64,
        secret: Zeroizing<[u8; GROUP_KEY_LEN]>,
    ) -> Result<Self, EnvelopeError> {
        check_group_epoch(group, epoch)?;
        let mut info = Vec::with_capacity(ENVELOPE_KEY_TAG.len() + 1 + group.len() + 8);
        info.extend_from_slice(ENVELOPE_KEY_TAG);
        put_group_epoch(&mut info, group, epoch);
        let mut envelope_key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, secret.as_ref())
            .expand(&info, envelope_key.as_mut())
            .map_err(|_| EnvelopeError::Malformed {
                what: "group key",
                reason: "HKDF refused the output length",
            })?;
        Ok(GroupKey {
            group: group.to_owned(),
            epoch,
            secret,
            envelope_key,
        })
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The raw key, for the key service to store it (through
    /// `ledgermq_keystore::secret_file`). Never log or publish it.
    pub fn secret_bytes(&self) -> &[u8; GROUP_KEY_LEN] {
        &self.secret
    }

    /// `key_check = SHA-256("LMQ-GK-1 check" ‖ u8 group_len ‖ group ‖ u64 BE epoch ‖ key)`:
    /// what the epoch commitment on the ledger contains instead of the key.
    pub fn check(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(CHECK_TAG);
        h.update([self.group.len() as u8]);
        h.update(self.group.as_bytes());
        h.update(self.epoch.to_be_bytes());
        h.update(self.secret.as_ref());
        h.finalize().into()
    }

    /// Whether this key's [`check`](Self::check) equals `expected`, in constant time.
    pub fn matches_check(&self, expected: &[u8; 32]) -> bool {
        bool::from(self.check().ct_eq(expected))
    }

    pub(super) fn envelope_key(&self) -> &[u8; 32] {
        &self.envelope_key
    }

    /// Wraps this key for `member` (1–128 bytes) under its X25519 public key
    /// with HPKE base mode and a fresh ephemeral key.
    pub fn wrap_for<R: RngCore + CryptoRng>(
        &self,
        member: &str,
        member_public: &[u8; 32],
        rng: &mut R,
    ) -> Result<[u8; WRAP_LEN], EnvelopeError> {
        let mut ephemeral = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ephemeral.as_mut());
        self.wrap_for_with_ephemeral(member, member_public, &ephemeral)
    }

    /// [`wrap_for`](Self::wrap_for) with a chosen ephemeral secret: for
    /// published test vectors only. Reusing an ephemeral is catastrophic.
    #[doc(hidden)]
    pub fn wrap_for_with_ephemeral(
        &self,
        member: &str,
        member_public: &[u8; 32],
        ephemeral_secret: &[u8; 32],
    ) -> Result<[u8; WRAP_LEN], EnvelopeError> {
        let info = wrap_info(&self.group, self.epoch, member)?;
        let (enc, ciphertext) = hpke::seal_base(
            member_public,
            &info,
            b"",
            self.secret.as_ref(),
            ephemeral_secret,
        )
        .map_err(|e| match e {
            HpkeError::LowOrder => EnvelopeError::LowOrderMemberKey {
                member: member.to_owned(),
            },
            HpkeError::Agreement(_) | HpkeError::Aead | HpkeError::Kdf => {
                EnvelopeError::Malformed {
                    what: "group-key wrap",
                    reason: "HPKE seal failed",
                }
            }
        })?;
        let mut wrap = [0u8; WRAP_LEN];
        wrap[..ENC_LEN].copy_from_slice(&enc);
        if ciphertext.len() != WRAP_LEN - ENC_LEN {
            return Err(EnvelopeError::Malformed {
                what: "group-key wrap",
                reason: "HPKE ciphertext of an unexpected length",
            });
        }
        wrap[ENC_LEN..].copy_from_slice(&ciphertext);
        Ok(wrap)
    }

    /// Opens `member`'s wrap of the `epoch` key of `group` with the member's
    /// X25519 key, which may live in a token ([`X25519Agreement`]).
    ///
    /// An opened key is only as good as the wrap's origin: check it against
    /// the ledger's epoch commitment ([`super::KeyBundle::open`] does).
    pub fn unwrap(
        group: &str,
        epoch: u64,
        member: &str,
        wrap: &[u8; WRAP_LEN],
        recipient: &dyn X25519Agreement,
    ) -> Result<GroupKey, EnvelopeError> {
        let info = wrap_info(group, epoch, member)?;
        let (enc, ciphertext) = wrap.split_at(ENC_LEN);
        let enc: &[u8; ENC_LEN] = enc.try_into().map_err(|_| EnvelopeError::Malformed {
            what: "group-key wrap",
            reason: "enc",
        })?;
        let unwrap_failed = || EnvelopeError::Unwrap {
            member: member.to_owned(),
        };
        let plain =
            hpke::open_base(recipient, enc, &info, b"", ciphertext).map_err(|e| match e {
                HpkeError::Agreement(e) => EnvelopeError::key("X25519 agreement", e),
                HpkeError::LowOrder | HpkeError::Aead | HpkeError::Kdf => unwrap_failed(),
            })?;
        let secret: &[u8; GROUP_KEY_LEN] =
            plain.as_slice().try_into().map_err(|_| unwrap_failed())?;
        GroupKey::from_bytes(group, epoch, secret)
    }
}

/// HPKE `info` of a wrap: `"LMQ-GK-1 wrap" ‖ u8 group_len ‖ group ‖ u64 BE
/// epoch ‖ u8 member_len ‖ member`.
fn wrap_info(group: &str, epoch: u64, member: &str) -> Result<Vec<u8>, EnvelopeError> {
    check_group_epoch(group, epoch)?;
    check_id("member", member, 1, MAX_MEMBER_LEN)?;
    let mut info = Vec::with_capacity(WRAP_TAG.len() + 1 + group.len() + 8 + 1 + member.len());
    info.extend_from_slice(WRAP_TAG);
    put_group_epoch(&mut info, group, epoch);
    put_short(&mut info, member);
    Ok(info)
}

pub(super) fn check_group_epoch(group: &str, epoch: u64) -> Result<(), EnvelopeError> {
    check_id("group", group, 1, MAX_GROUP_LEN)?;
    if epoch == 0 {
        return Err(EnvelopeError::ZeroEpoch);
    }
    Ok(())
}

/// `u8 group_len ‖ group ‖ u64 BE epoch`, the group-and-epoch binding used
/// by every derivation; the caller has checked the group.
pub(super) fn put_group_epoch(out: &mut Vec<u8>, group: &str, epoch: u64) {
    put_short(out, group);
    out.extend_from_slice(&epoch.to_be_bytes());
}
