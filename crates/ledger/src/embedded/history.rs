//! The chain's history in memory: blocks with their execution results,
//! indexed by number, block hash and transaction hash.
//!
//! Receipts are not stored on disk; replay at start-up recomputes them,
//! and the header's receipts root proves they came out the same.

use std::collections::HashMap;
use std::sync::Arc;

use alloy_consensus::{Receipt, ReceiptEnvelope};
use alloy_primitives::{Address, Bloom, BloomInput, Log, B256};

use crate::embedded::block::{chained_state_root, receipts_root, transactions_root, BlockRecord};
use crate::embedded::block::{header_template, BlockTx};
use crate::embedded::exec::{BlockParams, TxOutcome};
use crate::ledger::{BlockSummary, LogEntry};

/// What one included transaction did, in block context.
#[derive(Debug, Clone)]
pub(crate) struct TxResult {
    pub outcome: TxOutcome,
    pub cumulative_gas_used: u64,
    /// Block-wide index of the transaction's first log.
    pub first_log_index: u64,
}

/// A block and what its transactions did.
#[derive(Debug)]
pub(crate) struct ChainBlock {
    pub record: BlockRecord,
    pub results: Vec<TxResult>,
}

impl ChainBlock {
    /// Builds the header that commits to `executed`, on top of `parent`.
    pub fn assemble(
        parent: &ChainBlock,
        params: BlockParams,
        executed: Vec<(BlockTx, TxOutcome)>,
        state_diff: B256,
    ) -> Self {
        let mut header = header_template(
            parent.record.hash,
            params.number,
            params.gas_limit,
            params.timestamp,
            chained_state_root(parent.record.header.state_root, state_diff),
            Default::default(),
        );
        let mut txs = Vec::with_capacity(executed.len());
        let mut results = Vec::with_capacity(executed.len());
        let (mut cumulative, mut log_index) = (0u64, 0u64);
        for (tx, outcome) in executed {
            cumulative += outcome.gas_used;
            let logs = outcome.logs.len() as u64;
            results.push(TxResult {
                outcome,
                cumulative_gas_used: cumulative,
                first_log_index: log_index,
            });
            log_index += logs;
            txs.push(tx);
        }
        let receipts: Vec<ReceiptEnvelope> = txs
            .iter()
            .zip(&results)
            .map(|(tx, r)| receipt_envelope(tx, r))
            .collect();
        let mut bloom = Bloom::default();
        for receipt in &receipts {
            bloom.accrue_bloom(receipt.logs_bloom());
        }
        header.transactions_root = transactions_root(&txs);
        header.receipts_root = receipts_root(&receipts);
        header.logs_bloom = bloom;
        header.gas_used = cumulative;
        Self {
            record: BlockRecord::seal(header, txs),
            results,
        }
    }

    pub fn number(&self) -> u64 {
        self.record.header.number
    }

    pub fn summary(&self) -> BlockSummary {
        BlockSummary {
            number: self.record.header.number,
            hash: self.record.hash,
            parent_hash: self.record.header.parent_hash,
            timestamp: self.record.header.timestamp,
            transactions_root: self.record.header.transactions_root,
            transactions: self.record.txs.iter().map(|t| t.hash).collect(),
        }
    }

    /// The logs of transaction `index` with their block-wide positions.
    pub fn log_entries(&self, index: usize) -> Vec<LogEntry> {
        let (tx, result) = (&self.record.txs[index], &self.results[index]);
        result
            .outcome
            .logs
            .iter()
            .enumerate()
            .map(|(i, log)| LogEntry {
                address: log.address,
                topics: log.data.topics().to_vec(),
                data: log.data.data.clone(),
                block_number: self.number(),
                tx_hash: tx.hash,
                log_index: result.first_log_index + i as u64,
            })
            .collect()
    }
}

pub(crate) fn receipt_envelope(tx: &BlockTx, result: &TxResult) -> ReceiptEnvelope {
    let receipt: Receipt<Log> = Receipt {
        status: result.outcome.success.into(),
        cumulative_gas_used: result.cumulative_gas_used,
        logs: result.outcome.logs.clone(),
    };
    ReceiptEnvelope::from_typed(tx.envelope.tx_type(), receipt.with_bloom())
}

/// Which logs a query wants: per position, any of the listed topics.
#[derive(Debug, Default)]
pub(crate) struct LogQuery {
    pub from_block: u64,
    pub to_block: u64,
    pub addresses: Vec<Address>,
    /// `topics[i]` empty means any topic at position `i`.
    pub topics: Vec<Vec<B256>>,
}

impl LogQuery {
    fn matches(&self, log: &Log) -> bool {
        (self.addresses.is_empty() || self.addresses.contains(&log.address))
            && self.topics.iter().enumerate().all(|(i, wanted)| {
                wanted.is_empty() || log.topics().get(i).is_some_and(|t| wanted.contains(t))
            })
    }

    /// A block whose bloom rules the query out can be skipped unread.
    fn may_match(&self, bloom: &Bloom) -> bool {
        let any = |items: &mut dyn Iterator<Item = &[u8]>| {
            let mut empty = true;
            for item in items {
                empty = false;
                if bloom.contains_input(BloomInput::Raw(item)) {
                    return true;
                }
            }
            empty
        };
        any(&mut self.addresses.iter().map(|a| a.as_slice()))
            && self
                .topics
                .iter()
                .all(|set| any(&mut set.iter().map(|t| t.as_slice())))
    }
}

/// Every block of the chain, from genesis.
#[derive(Default)]
pub(crate) struct History {
    blocks: Vec<Arc<ChainBlock>>,
    by_hash: HashMap<B256, u64>,
    txs: HashMap<B256, (u64, u32)>,
}

impl History {
    pub fn push(&mut self, block: Arc<ChainBlock>) {
        let number = block.number();
        debug_assert_eq!(number, self.blocks.len() as u64);
        self.by_hash.insert(block.record.hash, number);
        for (i, tx) in block.record.txs.iter().enumerate() {
            self.txs.insert(tx.hash, (number, i as u32));
        }
        self.blocks.push(block);
    }

    /// The newest block. History always holds at least genesis.
    pub fn head(&self) -> &Arc<ChainBlock> {
        self.blocks.last().expect("history starts at genesis")
    }

    pub fn len(&self) -> u64 {
        self.blocks.len() as u64
    }

    pub fn block(&self, number: u64) -> Option<&Arc<ChainBlock>> {
        self.blocks.get(usize::try_from(number).ok()?)
    }

    pub fn block_by_hash(&self, hash: &B256) -> Option<&Arc<ChainBlock>> {
        self.by_hash.get(hash).and_then(|n| self.block(*n))
    }

    pub fn contains_tx(&self, hash: &B256) -> bool {
        self.txs.contains_key(hash)
    }

    /// The block holding transaction `hash`, and its index there.
    pub fn tx(&self, hash: &B256) -> Option<(Arc<ChainBlock>, usize)> {
        let (number, index) = self.txs.get(hash)?;
        Some((self.block(*number)?.clone(), *index as usize))
    }

    /// Matching logs in block order; `Err(limit)` once more than `limit`
    /// would be returned.
    pub fn logs(&self, query: &LogQuery, limit: usize) -> Result<Vec<LogEntry>, usize> {
        let mut out = Vec::new();
        let to = query.to_block.min(self.len().saturating_sub(1));
        for number in query.from_block..=to {
            let Some(block) = self.block(number) else {
                break;
            };
            if !query.may_match(&block.record.header.logs_bloom) {
                continue;
            }
            for (i, result) in block.results.iter().enumerate() {
                if !result.outcome.logs.iter().any(|l| query.matches(l)) {
                    continue;
                }
                let entries = block.log_entries(i);
                for (entry, log) in entries.into_iter().zip(&result.outcome.logs) {
                    if query.matches(log) {
                        if out.len() >= limit {
                            return Err(limit);
                        }
                        out.push(entry);
                    }
                }
            }
        }
        Ok(out)
    }
}
