//! `verify`: re-check a whole chain from its block file alone.
//!
//! Open already checks checksums, the hash chain, hashes and transaction
//! roots, and replays every block against its header. `verify` adds what
//! open trusts for speed: it recovers every signature and compares it with
//! the stored sender, checks each transaction's chain id, and digests the
//! final state. It only reads, takes no lock and changes nothing, so it
//! may run beside a live node (a block being written shows as a torn tail).

use std::path::Path;

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::Transaction as _;
use alloy_primitives::B256;

use crate::embedded::exec::full_state_digest;
use crate::embedded::{replay, store};
use crate::ledger::{LedgerError, LedgerResult};

/// What a successful `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub chain_id: u64,
    /// Blocks including genesis.
    pub blocks: u64,
    pub transactions: u64,
    pub head_number: u64,
    pub head_hash: B256,
    /// The head header's state root (the state-diff chain, see README).
    pub head_state_root: B256,
    /// keccak256 over every account and non-zero storage slot, sorted.
    pub state_digest: B256,
    /// Bytes of an incomplete final record (never acknowledged).
    pub torn_tail_bytes: u64,
}

/// Re-checks the chain in `dir`: framing, hash chain, roots, signatures,
/// and a full replay. The first problem found is the error.
pub fn verify(dir: &Path) -> LedgerResult<VerifyReport> {
    let scanned = store::read_blocks(dir)?;
    let chain_id = scanned
        .blocks
        .first()
        .and_then(|g| g.genesis_chain_id())
        .ok_or_else(|| {
            LedgerError::Storage(format!("{}: no ledgermq genesis block", dir.display()))
        })?;
    let mut transactions = 0u64;
    for block in &scanned.blocks {
        for tx in &block.txs {
            let bad = |what: String| {
                LedgerError::Storage(format!(
                    "ledger at {}: block {}: transaction {}: {what}",
                    dir.display(),
                    block.header.number,
                    tx.hash
                ))
            };
            let signer = tx
                .envelope
                .recover_signer()
                .map_err(|e| bad(format!("bad signature: {e}")))?;
            if signer != tx.sender {
                return Err(bad(format!(
                    "signed by {signer}, but recorded as sent by {}",
                    tx.sender
                )));
            }
            if tx.envelope.chain_id() != Some(chain_id) {
                return Err(bad(format!("chain id {:?}", tx.envelope.chain_id())));
            }
            transactions += 1;
        }
    }
    let blocks = scanned.blocks.len() as u64;
    let (state, history) = replay(scanned.blocks, chain_id, dir)?;
    let head = history.head();
    Ok(VerifyReport {
        chain_id,
        blocks,
        transactions,
        head_number: head.number(),
        head_hash: head.record.hash,
        head_state_root: head.record.header.state_root,
        state_digest: full_state_digest(&state),
        torn_tail_bytes: scanned.torn_bytes,
    })
}
