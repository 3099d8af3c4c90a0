//! The block producer: one thread that turns the pool into blocks.
//!
//! Blocks are produced as soon as transactions wait — no slot time — and
//! each takes everything waiting (up to the gas and count limits), so under
//! load blocks grow and fsyncs per transaction shrink. Nothing waits means
//! no block. A transaction whose nonce is ahead of its account's is parked
//! until the gap fills (concurrent in-process senders of one account sign
//! in parallel and may reach the pool out of order), and dropped after
//! [`PARK_TIMEOUT`].
//!
//! Ordering of effects per block: execute under the state write lock,
//! release it, append + fsync the block, then publish it to the history
//! and answer the waiting senders. A view call may therefore see the state
//! of a block whose fsync is still in flight; no receipt is ever released
//! before its block is durable.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use tokio::sync::oneshot;

use crate::embedded::block::BlockTx;
use crate::embedded::exec::{BlockExecutor, BlockParams, TxOutcome};
use crate::embedded::history::ChainBlock;
use crate::embedded::store::BlockFile;
use crate::embedded::{unix_now, Shared};
use crate::ledger::{LedgerError, LedgerResult};

/// How long a transaction may wait for the nonces before it.
pub(crate) const PARK_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many parked transactions in all.
const MAX_PARKED: usize = 16_384;

/// Where an included transaction ended up.
pub(crate) type Inclusion = LedgerResult<(Arc<ChainBlock>, usize)>;

/// A signed transaction waiting for a block, and who waits for it.
pub(crate) struct PoolTx {
    pub tx: BlockTx,
    pub reply: Option<oneshot::Sender<Inclusion>>,
    pub received: Instant,
}

impl PoolTx {
    fn answer(self, result: Inclusion) {
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }
}

pub(crate) struct Producer {
    shared: Arc<Shared>,
    file: BlockFile,
    pool: Receiver<PoolTx>,
    ready: VecDeque<PoolTx>,
    parked: HashMap<Address, BTreeMap<u64, PoolTx>>,
    parked_count: usize,
}

impl Producer {
    pub fn new(shared: Arc<Shared>, file: BlockFile, pool: Receiver<PoolTx>) -> Self {
        Self {
            shared,
            file,
            pool,
            ready: VecDeque::new(),
            parked: HashMap::new(),
            parked_count: 0,
        }
    }

    pub fn run(mut self) {
        loop {
            if self.ready.is_empty() {
                // Wake up now and then so parked transactions can expire.
                let wait = if self.parked_count > 0 {
                    Duration::from_secs(1)
                } else {
                    Duration::from_secs(3600)
                };
                match self.pool.recv_timeout(wait) {
                    Ok(tx) => self.ready.push_back(tx),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        self.expire_parked();
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            let max = self.shared.config.max_block_txs.max(1);
            while self.ready.len() < max {
                match self.pool.try_recv() {
                    Ok(tx) => self.ready.push_back(tx),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if let Err(e) = self.produce_block() {
                tracing::error!(error = %e, "block producer stopped");
                *self.shared.failed.lock() = Some(e.to_string());
                self.fail_everything(e);
                return;
            }
            self.expire_parked();
        }
        self.fail_everything(LedgerError::Other("the ledger was closed".into()));
    }

    fn produce_block(&mut self) -> LedgerResult<()> {
        let shared = self.shared.clone();
        let config = &shared.config;
        let parent = shared.history.read().head().clone();
        let params = BlockParams {
            number: parent.number() + 1,
            // Non-decreasing, not strictly increasing: see the README.
            timestamp: unix_now().max(parent.record.header.timestamp),
            gas_limit: config.block_gas_limit,
        };
        let mut included: Vec<(PoolTx, TxOutcome)> = Vec::new();
        let mut rejected: Vec<(PoolTx, String)> = Vec::new();
        let mut deferred = VecDeque::new();
        let mut queue = std::mem::take(&mut self.ready);
        let state_diff = {
            let mut state = shared.state.write();
            let mut executor = BlockExecutor::new(&mut state, config.chain_id, params);
            let mut gas_used = 0u64;
            while let Some(ptx) = queue.pop_front() {
                let fits = gas_used.saturating_add(ptx.tx.gas_limit()) <= params.gas_limit;
                if included.len() >= config.max_block_txs || !fits {
                    deferred.push_back(ptx);
                    continue;
                }
                let (sender, nonce) = (ptx.tx.sender, ptx.tx.nonce());
                let expected = executor.nonce(sender);
                if nonce < expected {
                    rejected.push((ptx, format!("nonce too low: next nonce is {expected}")));
                    continue;
                }
                if nonce > expected {
                    self.park(ptx, &mut rejected);
                    continue;
                }
                match executor.apply(&ptx.tx) {
                    Ok(outcome) => {
                        gas_used += outcome.gas_used;
                        included.push((ptx, outcome));
                        if let Some(next) = self.unpark(sender, nonce + 1) {
                            queue.push_front(next);
                        }
                    }
                    Err(e) => rejected.push((ptx, e)),
                }
            }
            executor.finish()
        };
        self.ready = deferred;
        for (ptx, why) in rejected {
            // The pool's idea of this account's next nonce may be wrong now.
            self.shared.next_nonces.lock().remove(&ptx.tx.sender);
            tracing::debug!(tx = %ptx.tx.hash, %why, "transaction rejected");
            ptx.answer(Err(LedgerError::Rejected(why)));
        }
        if included.is_empty() {
            return Ok(());
        }
        let (waiting, executed): (Vec<_>, Vec<_>) = included
            .into_iter()
            .map(|(ptx, outcome)| {
                let PoolTx { tx, reply, .. } = ptx;
                (reply, (tx, outcome))
            })
            .unzip();
        let block = Arc::new(ChainBlock::assemble(&parent, params, executed, state_diff));
        self.file.append(&block.record.encode_record())?;
        self.shared.history.write().push(block.clone());
        for (index, reply) in waiting.into_iter().enumerate() {
            if let Some(reply) = reply {
                let _ = reply.send(Ok((block.clone(), index)));
            }
        }
        Ok(())
    }

    fn park(&mut self, ptx: PoolTx, rejected: &mut Vec<(PoolTx, String)>) {
        if self.parked_count >= MAX_PARKED {
            rejected.push((ptx, "too many transactions wait for earlier nonces".into()));
            return;
        }
        let slot = self.parked.entry(ptx.tx.sender).or_default();
        match slot.entry(ptx.tx.nonce()) {
            std::collections::btree_map::Entry::Occupied(_) => rejected.push((
                ptx,
                "a transaction with this nonce is already waiting".into(),
            )),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(ptx);
                self.parked_count += 1;
            }
        }
    }

    fn unpark(&mut self, sender: Address, nonce: u64) -> Option<PoolTx> {
        let slot = self.parked.get_mut(&sender)?;
        let ptx = slot.remove(&nonce)?;
        if slot.is_empty() {
            self.parked.remove(&sender);
        }
        self.parked_count -= 1;
        Some(ptx)
    }

    fn expire_parked(&mut self) {
        if self.parked_count == 0 {
            return;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        for slot in self.parked.values_mut() {
            let old: Vec<u64> = slot
                .iter()
                .filter(|(_, p)| now.duration_since(p.received) > PARK_TIMEOUT)
                .map(|(n, _)| *n)
                .collect();
            for nonce in old {
                if let Some(ptx) = slot.remove(&nonce) {
                    expired.push(ptx);
                }
            }
        }
        self.parked.retain(|_, slot| !slot.is_empty());
        self.parked_count -= expired.len();
        for ptx in expired {
            self.shared.next_nonces.lock().remove(&ptx.tx.sender);
            let why = format!(
                "nonce {} waited {} s for earlier nonces",
                ptx.tx.nonce(),
                PARK_TIMEOUT.as_secs()
            );
            ptx.answer(Err(LedgerError::Rejected(why)));
        }
    }

    fn fail_everything(&mut self, error: LedgerError) {
        let parked = std::mem::take(&mut self.parked);
        let waiting = self
            .ready
            .drain(..)
            .chain(parked.into_values().flat_map(|slot| slot.into_values()))
            .chain(std::iter::from_fn(|| self.pool.try_recv().ok()))
            .collect::<Vec<_>>();
        for ptx in waiting {
            ptx.answer(Err(error.clone()));
        }
    }
}
