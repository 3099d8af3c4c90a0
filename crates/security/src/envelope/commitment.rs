//! What the ledger records about a key epoch, so that anyone holding the
//! ledger events and the retained wraps can recompute who was given the
//! key, and a member can check the key it unwrapped, while the ledger
//! never learns the key.
//!
//! ```text
//! key_check         = SHA-256("LMQ-GK-1 check"    ‖ g ‖ epoch ‖ key)
//! roster_digest     = SHA-256("LMQ-GK-1 roster"   ‖ u32 BE count ‖ for each member, sorted by id bytes:
//!                                                   u8 id_len ‖ id ‖ SHA-256(wrap))
//! epoch_commitment  = SHA-256("LMQ-GK-1 epoch"    ‖ g ‖ epoch ‖ key_check ‖ roster_digest)
//! member_commitment = SHA-256("LMQ-GK-1 exchange" ‖ g ‖ epoch ‖ u8 id_len ‖ id ‖ SHA-256(wrap))
//! g = u8 group_len ‖ group, epoch = u64 BE
//! ```
//!
//! No domain tag is a prefix of another. The roster digest is separate so
//! that a member, who holds only its own wrap, can check a key against the
//! epoch commitment with the digest its key bundle carries; an auditor
//! holding every wrap recomputes the digest itself. A removed member is
//! provably absent: its id is not in the committed roster. What no
//! commitment can show is a key leaked outside the published wraps.

use sha2::{Digest as _, Sha256};

use super::codec::check_id;
use super::group_key::check_group_epoch;
use super::{EnvelopeError, MAX_MEMBER_LEN, WRAP_LEN};

const ROSTER_TAG: &[u8] = b"LMQ-GK-1 roster";
const EPOCH_TAG: &[u8] = b"LMQ-GK-1 epoch";
const EXCHANGE_TAG: &[u8] = b"LMQ-GK-1 exchange";

fn hash_group_epoch(h: &mut Sha256, group: &str, epoch: u64) {
    h.update([group.len() as u8]);
    h.update(group.as_bytes());
    h.update(epoch.to_be_bytes());
}

/// The digest of an epoch's member list: each member's id and the SHA-256
/// of its wrap, sorted by id. Refuses a repeated id.
pub fn roster_digest(members: &[(&str, &[u8; WRAP_LEN])]) -> Result<[u8; 32], EnvelopeError> {
    let mut sorted: Vec<&(&str, &[u8; WRAP_LEN])> = members.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(EnvelopeError::DuplicateMember {
            member: pair[0].0.to_owned(),
        });
    }
    let count = u32::try_from(sorted.len()).map_err(|_| EnvelopeError::InvalidField {
        field: "member list",
        len: sorted.len(),
        min: 0,
        max: u32::MAX as usize,
    })?;
    let mut h = Sha256::new();
    h.update(ROSTER_TAG);
    h.update(count.to_be_bytes());
    for (member, wrap) in sorted {
        check_id("member", member, 1, MAX_MEMBER_LEN)?;
        h.update([member.len() as u8]);
        h.update(member.as_bytes());
        h.update(Sha256::digest(wrap.as_slice()));
    }
    Ok(h.finalize().into())
}

/// The commitment the key service records on the ledger for `epoch` of
/// `group`: the key check and the roster digest of `members`.
pub fn epoch_commitment(
    group: &str,
    epoch: u64,
    key_check: &[u8; 32],
    members: &[(&str, &[u8; WRAP_LEN])],
) -> Result<[u8; 32], EnvelopeError> {
    epoch_commitment_from_digest(group, epoch, key_check, &roster_digest(members)?)
}

/// [`epoch_commitment`] from an already computed [`roster_digest`] (what a
/// member checks with the digest in its key bundle).
pub fn epoch_commitment_from_digest(
    group: &str,
    epoch: u64,
    key_check: &[u8; 32],
    roster_digest: &[u8; 32],
) -> Result<[u8; 32], EnvelopeError> {
    check_group_epoch(group, epoch)?;
    let mut h = Sha256::new();
    h.update(EPOCH_TAG);
    hash_group_epoch(&mut h, group, epoch);
    h.update(key_check);
    h.update(roster_digest);
    Ok(h.finalize().into())
}

/// The commitment of one key-exchange event: `member` was given `wrap` for
/// `epoch` of `group`.
pub fn member_commitment(
    group: &str,
    epoch: u64,
    member: &str,
    wrap: &[u8; WRAP_LEN],
) -> Result<[u8; 32], EnvelopeError> {
    check_group_epoch(group, epoch)?;
    check_id("member", member, 1, MAX_MEMBER_LEN)?;
    let mut h = Sha256::new();
    h.update(EXCHANGE_TAG);
    hash_group_epoch(&mut h, group, epoch);
    h.update([member.len() as u8]);
    h.update(member.as_bytes());
    h.update(Sha256::digest(wrap.as_slice()));
    Ok(h.finalize().into())
}
