//! The one interface to a chain.

use alloy_primitives::{Address, Bytes, B256, U256};
use async_trait::async_trait;

/// A transaction to send from a local account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxRequest {
    /// `None` deploys `data` as creation code.
    pub to: Option<Address>,
    pub data: Bytes,
    pub value: U256,
    /// Gas limit; `None` lets the backend estimate it.
    pub gas: Option<u64>,
}

/// The outcome of an included transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxReceipt {
    pub tx_hash: B256,
    pub block_number: u64,
    pub gas_used: u64,
    /// Address of the deployed contract for a creation.
    pub contract_address: Option<Address>,
    pub logs: Vec<LogEntry>,
}

/// One event log, with where it was emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub address: Address,
    pub topics: Vec<B256>,
    pub data: Bytes,
    pub block_number: u64,
    pub tx_hash: B256,
    pub log_index: u64,
}

/// Which logs to read: a block range, emitting contracts, and the first
/// topic (event signature), each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub from_block: u64,
    /// Inclusive; `None` means the latest block.
    pub to_block: Option<u64>,
    /// Empty means any contract.
    pub addresses: Vec<Address>,
    /// Empty means any event.
    pub event_signatures: Vec<B256>,
}

/// What a block commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSummary {
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
    /// Unix seconds.
    pub timestamp: u64,
    /// Merkle root of the block's transactions.
    pub transactions_root: B256,
    pub transactions: Vec<B256>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The contract reverted; the decoded reason string when there is one.
    #[error("transaction reverted: {0}")]
    Reverted(String),
    #[error("ledger unreachable at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("transaction rejected: {0}")]
    Rejected(String),
    #[error("ledger storage error: {0}")]
    Storage(String),
    #[error("{0}")]
    Other(String),
}

pub type LedgerResult<T> = Result<T, LedgerError>;

/// A secp256k1 account whose key this process holds.
pub trait Signer: Send + Sync {
    fn address(&self) -> Address;
    /// Signs a 32-byte prehash; returns (r ‖ s ‖ v) with v = 0 or 1.
    fn sign_hash(&self, hash: &B256) -> LedgerResult<[u8; 65]>;
}

#[async_trait]
pub trait Ledger: Send + Sync {
    async fn chain_id(&self) -> LedgerResult<u64>;
    async fn block_number(&self) -> LedgerResult<u64>;
    /// Signs `tx` with `from`, submits it and waits until it is included.
    /// A revert is `Err(LedgerError::Reverted(reason))`.
    async fn send_transaction(&self, from: &dyn Signer, tx: TxRequest) -> LedgerResult<TxReceipt>;
    /// Executes a view call against the latest state.
    async fn call(&self, from: Option<Address>, to: Address, data: Bytes) -> LedgerResult<Bytes>;
    async fn logs(&self, filter: &LogFilter) -> LedgerResult<Vec<LogEntry>>;
    async fn block(&self, number: u64) -> LedgerResult<Option<BlockSummary>>;
}
