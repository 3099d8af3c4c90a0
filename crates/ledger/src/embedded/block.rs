//! What a block commits to, and how one block is framed on disk.
//!
//! Headers are real Ethereum (Cancun) headers so that block hashes, the
//! transactions root and the receipts root mean what Ethereum tools expect:
//! the block hash is keccak256 of the RLP header, the roots are Ethereum's
//! ordered Merkle-Patricia trie roots. The one deliberate difference is
//! `state_root`: a full MPT state root would cost a trie rebuild per block,
//! so it holds a *state-diff chain* instead:
//! `keccak256(parent.state_root ‖ keccak256(sorted state changes of the block))`,
//! which replay recomputes exactly (see `exec::state_diff_digest`).
//!
//! One record = `len: u32 LE ‖ checksum: 8 bytes ‖ payload`, where the
//! checksum is the first 8 bytes of keccak256(payload) and the payload is
//! `version ‖ hash ‖ header RLP ‖ transactions (sender ‖ EIP-2718 bytes)`.
//! The sender is stored so start-up replay need not recover every
//! signature; `verify` recovers them all and compares.

use alloy_consensus::proofs::{calculate_receipt_root, calculate_transaction_root};
use alloy_consensus::{
    Header, ReceiptEnvelope, Transaction as _, TxEnvelope, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH,
};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{keccak256, Address, Bytes, B256, B64, U256};
use alloy_rlp::{Decodable, Encodable};

const RECORD_VERSION: u8 = 1;
/// `len` + checksum.
pub(crate) const FRAME_LEN: usize = 12;
/// Larger records are refused: a 1 G gas block of minimal transactions is
/// far below this.
pub(crate) const MAX_PAYLOAD_LEN: usize = 512 << 20;

/// One signed transaction as it sits in a block.
#[derive(Debug, Clone)]
pub(crate) struct BlockTx {
    pub sender: Address,
    pub hash: B256,
    pub envelope: TxEnvelope,
    pub raw: Bytes,
}

impl BlockTx {
    /// Decodes EIP-2718 bytes; `sender` is trusted here (see module docs).
    pub fn decode(raw: Bytes, sender: Address) -> Result<Self, String> {
        let envelope = TxEnvelope::decode_2718_exact(&raw)
            .map_err(|e| format!("undecodable transaction: {e}"))?;
        Ok(Self {
            sender,
            hash: keccak256(&raw),
            envelope,
            raw,
        })
    }

    pub fn nonce(&self) -> u64 {
        self.envelope.nonce()
    }

    pub fn gas_limit(&self) -> u64 {
        self.envelope.gas_limit()
    }
}

/// A sealed block: header, its hash, and its transactions in order.
#[derive(Debug, Clone)]
pub(crate) struct BlockRecord {
    pub header: Header,
    pub hash: B256,
    pub txs: Vec<BlockTx>,
}

impl BlockRecord {
    /// The first block of a chain; its extra data names the chain id so a
    /// data dir cannot be reopened under another chain id by mistake.
    pub fn genesis(chain_id: u64, gas_limit: u64, timestamp: u64) -> Self {
        let mut extra = b"ledgermq".to_vec();
        extra.extend_from_slice(&chain_id.to_be_bytes());
        let mut state_seed = b"ledgermq genesis state".to_vec();
        state_seed.extend_from_slice(&chain_id.to_be_bytes());
        let header = header_template(
            B256::ZERO,
            0,
            gas_limit,
            timestamp,
            keccak256(state_seed),
            Bytes::from(extra),
        );
        Self::seal(header, Vec::new())
    }

    pub fn seal(header: Header, txs: Vec<BlockTx>) -> Self {
        let hash = header.hash_slow();
        Self { header, hash, txs }
    }

    /// The chain id written into the genesis block, if this is one.
    pub fn genesis_chain_id(&self) -> Option<u64> {
        let extra = self.header.extra_data.as_ref();
        let id = extra.strip_prefix(b"ledgermq")?;
        Some(u64::from_be_bytes(id.try_into().ok()?))
    }

    /// The framed record: `len ‖ checksum ‖ payload`.
    pub fn encode_record(&self) -> Vec<u8> {
        let mut header_rlp = Vec::with_capacity(600);
        self.header.encode(&mut header_rlp);
        let tx_bytes: usize = self.txs.iter().map(|t| 24 + t.raw.len()).sum();
        let mut payload = Vec::with_capacity(1 + 32 + 4 + header_rlp.len() + 4 + tx_bytes);
        payload.push(RECORD_VERSION);
        payload.extend_from_slice(self.hash.as_slice());
        put_bytes(&mut payload, &header_rlp);
        payload.extend_from_slice(&(self.txs.len() as u32).to_le_bytes());
        for tx in &self.txs {
            payload.extend_from_slice(tx.sender.as_slice());
            put_bytes(&mut payload, &tx.raw);
        }
        let mut record = Vec::with_capacity(FRAME_LEN + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&checksum(&payload));
        record.extend_from_slice(&payload);
        record
    }

    /// Decodes a payload whose checksum was already checked, and checks
    /// what the block commits to by itself: its hash and transactions root.
    pub fn decode_payload(payload: &[u8]) -> Result<Self, String> {
        let mut cursor = Cursor(payload);
        let version = cursor.take(1)?[0];
        if version != RECORD_VERSION {
            return Err(format!("unknown record version {version}"));
        }
        let hash = B256::from_slice(cursor.take(32)?);
        let mut header_rlp = cursor.take_bytes()?;
        let header =
            Header::decode(&mut header_rlp).map_err(|e| format!("undecodable header: {e}"))?;
        let count = cursor.take_u32()? as usize;
        let mut txs = Vec::with_capacity(count.min(payload.len() / 24));
        for _ in 0..count {
            let sender = Address::from_slice(cursor.take(20)?);
            let raw = Bytes::copy_from_slice(cursor.take_bytes()?);
            txs.push(BlockTx::decode(raw, sender)?);
        }
        if !cursor.0.is_empty() {
            return Err("trailing bytes after the transactions".into());
        }
        let computed = header.hash_slow();
        if computed != hash {
            return Err(format!(
                "stored hash {hash} differs from the header's hash {computed}"
            ));
        }
        let root = transactions_root(&txs);
        if root != header.transactions_root {
            return Err(format!(
                "transactions root {root} differs from the header's {}",
                header.transactions_root
            ));
        }
        Ok(Self { header, hash, txs })
    }
}

/// A Cancun header with everything a single-node, fee-less chain fixes.
pub(crate) fn header_template(
    parent_hash: B256,
    number: u64,
    gas_limit: u64,
    timestamp: u64,
    state_root: B256,
    extra_data: Bytes,
) -> Header {
    Header {
        parent_hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: Address::ZERO,
        state_root,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        logs_bloom: Default::default(),
        difficulty: U256::ZERO,
        number,
        gas_limit,
        gas_used: 0,
        timestamp,
        extra_data,
        mix_hash: B256::ZERO,
        nonce: B64::ZERO,
        base_fee_per_gas: Some(0),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: None,
        ..Default::default()
    }
}

/// Ethereum's ordered-trie root of the EIP-2718 encoded transactions.
pub(crate) fn transactions_root(txs: &[BlockTx]) -> B256 {
    if txs.is_empty() {
        return EMPTY_ROOT_HASH;
    }
    let envelopes: Vec<&TxEnvelope> = txs.iter().map(|t| &t.envelope).collect();
    calculate_transaction_root(&envelopes)
}

pub(crate) fn receipts_root(receipts: &[ReceiptEnvelope]) -> B256 {
    if receipts.is_empty() {
        return EMPTY_ROOT_HASH;
    }
    calculate_receipt_root(receipts)
}

pub(crate) fn chained_state_root(parent: B256, block_diff: B256) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(parent.as_slice());
    buf[32..].copy_from_slice(block_diff.as_slice());
    keccak256(buf)
}

pub(crate) fn checksum(payload: &[u8]) -> [u8; 8] {
    let digest = keccak256(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// The encoding `encode_2718` gives a transaction (stored form).
pub(crate) fn encode_tx(envelope: &TxEnvelope) -> Bytes {
    Bytes::from(envelope.encoded_2718())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("record ends early".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn take_u32(&mut self) -> Result<u32, String> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn take_bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.take_u32()? as usize;
        self.take(len)
    }
}
