//! Chain objects in the JSON shapes alloy and `cast` parse, built from
//! alloy's own RPC types so the field names and encodings cannot drift.

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction as _};
use alloy_primitives::{U256, U64};
use alloy_rlp::Encodable;
use alloy_rpc_types_eth::{Block, BlockTransactions, Header, Log, Transaction, TransactionReceipt};
use serde_json::Value;

use crate::embedded::history::{receipt_envelope, ChainBlock};

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub(super) fn quantity(n: u64) -> Value {
    to_json(&U64::from(n))
}

pub(super) fn big_quantity(n: U256) -> Value {
    to_json(&n)
}

pub(super) fn transaction(block: &ChainBlock, index: usize) -> Transaction {
    let tx = &block.record.txs[index];
    Transaction {
        inner: Recovered::new_unchecked(tx.envelope.clone(), tx.sender),
        block_hash: Some(block.record.hash),
        block_number: Some(block.number()),
        transaction_index: Some(index as u64),
        effective_gas_price: Some(tx.envelope.effective_gas_price(Some(0))),
        block_timestamp: Some(block.record.header.timestamp),
    }
}

pub(super) fn transaction_json(block: &ChainBlock, index: usize) -> Value {
    to_json(&transaction(block, index))
}

/// The logs of transaction `index`, positioned in the block.
pub(super) fn logs(block: &ChainBlock, index: usize) -> Vec<Log> {
    let (tx, result) = (&block.record.txs[index], &block.results[index]);
    result
        .outcome
        .logs
        .iter()
        .enumerate()
        .map(|(i, log)| Log {
            inner: log.clone(),
            block_hash: Some(block.record.hash),
            block_number: Some(block.number()),
            block_timestamp: Some(block.record.header.timestamp),
            transaction_hash: Some(tx.hash),
            transaction_index: Some(index as u64),
            log_index: Some(result.first_log_index + i as u64),
            removed: false,
        })
        .collect()
}

pub(super) fn receipt_json(block: &ChainBlock, index: usize) -> Value {
    let (tx, result) = (&block.record.txs[index], &block.results[index]);
    let logs_bloom = *receipt_envelope(tx, result).logs_bloom();
    let inner = ReceiptEnvelope::from_typed(
        tx.envelope.tx_type(),
        ReceiptWithBloom {
            receipt: Receipt {
                status: result.outcome.success.into(),
                cumulative_gas_used: result.cumulative_gas_used,
                logs: logs(block, index),
            },
            logs_bloom,
        },
    );
    to_json(&TransactionReceipt {
        inner,
        transaction_hash: tx.hash,
        transaction_index: Some(index as u64),
        block_hash: Some(block.record.hash),
        block_number: Some(block.number()),
        gas_used: result.outcome.gas_used,
        effective_gas_price: tx.envelope.effective_gas_price(Some(0)),
        blob_gas_used: None,
        blob_gas_price: None,
        from: tx.sender,
        to: tx.envelope.to(),
        contract_address: result.outcome.contract_address,
    })
}

pub(super) fn block_json(block: &ChainBlock, full: bool) -> Value {
    let transactions = if full {
        BlockTransactions::Full(
            (0..block.record.txs.len())
                .map(|i| transaction(block, i))
                .collect(),
        )
    } else {
        BlockTransactions::Hashes(block.record.txs.iter().map(|t| t.hash).collect())
    };
    let tx_bytes: usize = block.record.txs.iter().map(|t| t.raw.len()).sum();
    let header = Header {
        hash: block.record.hash,
        inner: block.record.header.clone(),
        total_difficulty: Some(U256::ZERO),
        size: Some(U256::from(block.record.header.length() + tx_bytes)),
    };
    to_json(&Block {
        header,
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Default::default()),
    })
}
