//! The embedded chain: a single-node EVM chain inside the broker process.
//!
//! Why it exists: a broker must run with zero set-up, yet keep its security
//! state on a real EVM ledger that other nodes and auditors' tools can
//! read. So this is a genuine chain — signed Ethereum transactions, revm
//! execution, hash-chained blocks with Ethereum roots — that also answers
//! JSON-RPC ([`EmbeddedChain::serve_rpc`]).
//!
//! Shape: callers (the in-process [`Ledger`](crate::Ledger) API and
//! `eth_sendRawTransaction`) put signed transactions into one bounded
//! pool; a single producer thread drains everything waiting into the next
//! block, executes it, appends it durably (one fsync per block) and only
//! then releases the receipts. State and history are kept in memory and
//! rebuilt by replaying the block file at open.

mod api;
mod block;
mod exec;
mod history;
mod producer;
mod rpc;
mod store;
mod verify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use alloy_primitives::Address;
use parking_lot::{Mutex, RwLock};

pub use rpc::{RpcServerConfig, RpcServerHandle, SenderPolicy, DEFAULT_CALL_GAS_CAP};
pub use verify::{verify, VerifyReport};

use crate::ledger::{BlockSummary, LedgerError, LedgerResult};
use block::BlockRecord;
use exec::{BlockExecutor, BlockParams, StateDb};
use history::{ChainBlock, History};
use producer::{PoolTx, Producer};
use store::BlockFile;

/// The default chain id: "LMQ" in ASCII.
pub const DEFAULT_CHAIN_ID: u64 = 0x4c4d51;

/// Chain rules and limits of an embedded chain. See the crate README.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// EIP-155 chain id; fixed in the genesis block at creation.
    pub chain_id: u64,
    /// Gas limit of every block.
    pub block_gas_limit: u64,
    /// Gas limit of in-process transactions that do not set one. Gas is
    /// never charged, so a generous limit costs nothing.
    pub default_tx_gas: u64,
    /// Gas limit of the in-process [`Ledger::call`](crate::Ledger::call)
    /// (the broker's own views). JSON-RPC calls have their own, lower cap:
    /// [`RpcServerConfig::call_gas_cap`].
    pub call_gas_cap: u64,
    /// At most this many transactions per block.
    pub max_block_txs: usize,
    /// At most this many transactions waiting for a block.
    pub pool_capacity: usize,
    /// `eth_getLogs` / [`Ledger::logs`](crate::Ledger::logs) return at most this many logs.
    pub max_logs: usize,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            chain_id: DEFAULT_CHAIN_ID,
            block_gas_limit: 100_000_000,
            default_tx_gas: 16_777_216,
            call_gas_cap: 50_000_000,
            max_block_txs: 10_000,
            pool_capacity: 65_536,
            max_logs: 100_000,
        }
    }
}

/// State shared by the API, the RPC server and the producer thread.
pub(crate) struct Shared {
    pub config: ChainConfig,
    pub state: RwLock<StateDb>,
    pub history: RwLock<History>,
    /// Next nonce to hand out per account, ahead of the state while that
    /// account's transactions wait in the pool.
    pub next_nonces: Mutex<HashMap<Address, u64>>,
    /// Set when a block could not be written: the chain stops accepting.
    pub failed: Mutex<Option<String>>,
}

impl Shared {
    pub fn head_params(&self) -> BlockParams {
        let history = self.history.read();
        let header = &history.head().record.header;
        BlockParams {
            number: header.number,
            timestamp: header.timestamp,
            gas_limit: header.gas_limit,
        }
    }

    pub fn state_nonce(&self, address: Address) -> u64 {
        use revm::DatabaseRef;
        match self.state.read().basic_ref(address) {
            Ok(Some(info)) => info.nonce,
            _ => 0,
        }
    }

    /// The nonce the account's next transaction should carry.
    pub fn pending_nonce(&self, address: Address) -> u64 {
        let state = self.state_nonce(address);
        let pending = self.next_nonces.lock().get(&address).copied();
        pending.map_or(state, |p| p.max(state))
    }

    pub fn check_healthy(&self) -> LedgerResult<()> {
        match &*self.failed.lock() {
            None => Ok(()),
            Some(why) => Err(LedgerError::Storage(why.clone())),
        }
    }
}

/// An open embedded chain. Dropping the last handle stops the producer
/// after the block it is writing; the data dir stays locked until then.
pub struct EmbeddedChain {
    pub(crate) shared: Arc<Shared>,
    pub(crate) pool: Option<SyncSender<PoolTx>>,
    producer: Mutex<Option<JoinHandle<()>>>,
    dir: PathBuf,
}

impl std::fmt::Debug for EmbeddedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedChain")
            .field("dir", &self.dir)
            .field("chain_id", &self.shared.config.chain_id)
            .finish_non_exhaustive()
    }
}

impl EmbeddedChain {
    /// Opens (or creates) the chain in `dir`: locks it, reads and checks the
    /// block file, drops a torn final record, replays every block.
    ///
    /// Blocking (replay takes time proportional to history); from async
    /// code call it inside `tokio::task::spawn_blocking` for large chains.
    pub fn open(dir: &Path, config: ChainConfig) -> LedgerResult<Arc<Self>> {
        let (mut file, scanned) = BlockFile::open(dir)?;
        let mut blocks = scanned.blocks;
        if blocks.is_empty() {
            let genesis = BlockRecord::genesis(config.chain_id, config.block_gas_limit, unix_now());
            file.append(&genesis.encode_record())?;
            blocks.push(genesis);
        }
        let (state, history) = replay(blocks, config.chain_id, dir)?;
        let shared = Arc::new(Shared {
            config: config.clone(),
            state: RwLock::new(state),
            history: RwLock::new(history),
            next_nonces: Mutex::new(HashMap::new()),
            failed: Mutex::new(None),
        });
        let (sender, receiver) = sync_channel(config.pool_capacity.max(1));
        let producer = Producer::new(shared.clone(), file, receiver);
        let handle = std::thread::Builder::new()
            .name("ledger-producer".into())
            .spawn(move || producer.run())
            .map_err(|e| LedgerError::Other(format!("cannot start the block producer: {e}")))?;
        Ok(Arc::new(Self {
            shared,
            pool: Some(sender),
            producer: Mutex::new(Some(handle)),
            dir: dir.to_path_buf(),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &ChainConfig {
        &self.shared.config
    }

    /// The newest block.
    pub fn head(&self) -> BlockSummary {
        self.shared.history.read().head().summary()
    }

    /// The nonce the account's next transaction should carry, counting
    /// transactions still in the pool.
    pub fn pending_nonce(&self, address: Address) -> u64 {
        self.shared.pending_nonce(address)
    }
}

impl Drop for EmbeddedChain {
    fn drop(&mut self) {
        drop(self.pool.take());
        if let Some(handle) = self.producer.lock().take() {
            let _ = handle.join();
        }
    }
}

/// Re-executes `blocks` from an empty state, checking that every header
/// commits to what its transactions do.
pub(crate) fn replay(
    blocks: Vec<BlockRecord>,
    chain_id: u64,
    dir: &Path,
) -> LedgerResult<(StateDb, History)> {
    let mut blocks = blocks.into_iter();
    let genesis = blocks
        .next()
        .ok_or_else(|| LedgerError::Storage(format!("{}: no genesis block", dir.display())))?;
    match genesis.genesis_chain_id() {
        Some(id) if id == chain_id => {}
        Some(id) => {
            return Err(LedgerError::Storage(format!(
                "ledger at {} belongs to chain id {id}, not {chain_id}",
                dir.display()
            )))
        }
        None => {
            return Err(LedgerError::Storage(format!(
                "{}: block 0 is not a ledgermq genesis block",
                dir.display()
            )))
        }
    }
    let mut state = StateDb::default();
    let mut history = History::default();
    history.push(Arc::new(ChainBlock {
        record: genesis,
        results: Vec::new(),
    }));
    for record in blocks {
        let number = record.header.number;
        let params = BlockParams {
            number,
            timestamp: record.header.timestamp,
            gas_limit: record.header.gas_limit,
        };
        let bad = |what: String| {
            LedgerError::Storage(format!(
                "ledger at {}: block {number} does not replay: {what}",
                dir.display()
            ))
        };
        let mut executor = BlockExecutor::new(&mut state, chain_id, params);
        let mut executed = Vec::with_capacity(record.txs.len());
        for tx in &record.txs {
            let outcome = executor
                .apply(tx)
                .map_err(|e| bad(format!("transaction {} is invalid: {e}", tx.hash)))?;
            executed.push((tx.clone(), outcome));
        }
        let diff = executor.finish();
        let block = ChainBlock::assemble(history.head(), params, executed, diff);
        if block.record.hash != record.hash {
            return Err(bad(header_difference(&record.header, &block.record.header)));
        }
        history.push(Arc::new(block));
    }
    Ok((state, history))
}

fn header_difference(
    stored: &alloy_consensus::Header,
    replayed: &alloy_consensus::Header,
) -> String {
    if stored.state_root != replayed.state_root {
        format!(
            "state root {} but the header says {}",
            replayed.state_root, stored.state_root
        )
    } else if stored.receipts_root != replayed.receipts_root {
        format!(
            "receipts root {} but the header says {}",
            replayed.receipts_root, stored.receipts_root
        )
    } else if stored.gas_used != replayed.gas_used {
        format!(
            "gas used {} but the header says {}",
            replayed.gas_used, stored.gas_used
        )
    } else {
        "the replayed header differs from the stored one".into()
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
