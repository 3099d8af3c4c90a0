//! JSON-RPC 2.0 framing and the `eth_*` methods the embedded node serves.
//!
//! Only the latest state is kept, so state queries (`eth_call`,
//! `eth_getBalance`, …) accept `latest`/`pending`/`safe`/`finalized` or the
//! head's number and refuse older blocks. Accounts send only signed
//! transactions (`eth_sendRawTransaction`); there is no
//! `eth_sendTransaction` because the node holds no one's keys.

use std::sync::Arc;

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use alloy_rpc_types_eth::{BlockNumberOrTag, Filter, FilterBlockOption, TransactionRequest};
use revm::DatabaseRef;
use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use serde_json::{json, Value};

use super::render::{big_quantity, block_json, quantity, receipt_json, transaction_json};
use super::Server;
use crate::embedded::block::BlockTx;
use crate::embedded::exec::{self, CallRequest, EstimateError, Revert};
use crate::embedded::history::{ChainBlock, LogQuery};
use crate::embedded::EmbeddedChain;
use crate::ledger::LedgerError;

/// The widest block range one `eth_getLogs` may scan.
const MAX_LOG_RANGE: u64 = 1_000_000;

pub(super) struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(-32602, message)
    }

    pub(super) fn server(message: impl Into<String>) -> Self {
        Self::new(-32000, message)
    }

    /// EIP-1474's "transaction rejected".
    pub(super) fn rejected(message: impl Into<String>) -> Self {
        Self::new(-32003, message)
    }

    /// geth/anvil's shape: code 3, the reason in the message, the raw
    /// revert data in `data`, so alloy and cast can decode it.
    fn reverted(revert: &Revert) -> Self {
        match revert {
            Revert::Data(data) => Self {
                code: 3,
                message: match exec::revert_reason(data) {
                    r if data.is_empty() => r.replace("reverted", "execution reverted"),
                    r => format!("execution reverted: {r}"),
                },
                data: Some(json!(data)),
            },
            Revert::Halt(_) => Self::server(revert.reason()),
        }
    }
}

impl From<LedgerError> for RpcError {
    fn from(e: LedgerError) -> Self {
        Self::server(e.to_string())
    }
}

type RpcResult = Result<Value, RpcError>;

/// Answers one HTTP body: a request, or a batch of them.
pub(super) async fn handle_body(server: &Arc<Server>, body: &[u8]) -> Vec<u8> {
    let max_batch = server.config.max_batch;
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return reply(
                Value::Null,
                Err(RpcError::new(-32700, format!("parse error: {e}"))),
            )
        }
    };
    match parsed {
        Value::Array(requests) if requests.is_empty() => {
            reply(Value::Null, Err(RpcError::new(-32600, "empty batch")))
        }
        Value::Array(requests) if requests.len() > max_batch => reply(
            Value::Null,
            Err(RpcError::new(
                -32600,
                format!("batch of {} requests: at most {max_batch}", requests.len()),
            )),
        ),
        Value::Array(requests) => {
            let mut answers = Vec::with_capacity(requests.len());
            for request in requests {
                if let Some(answer) = handle_request(server, request).await {
                    answers.push(answer);
                }
            }
            serde_json::to_vec(&answers).unwrap_or_default()
        }
        single => match handle_request(server, single).await {
            Some(answer) => serde_json::to_vec(&answer).unwrap_or_default(),
            None => Vec::new(),
        },
    }
}

fn reply(id: Value, result: RpcResult) -> Vec<u8> {
    serde_json::to_vec(&envelope(id, result)).unwrap_or_default()
}

fn envelope(id: Value, result: RpcResult) -> Value {
    match result {
        Ok(value) => json!({"jsonrpc": "2.0", "id": id, "result": value}),
        Err(e) => {
            let mut error = json!({"code": e.code, "message": e.message});
            if let Some(data) = e.data {
                error["data"] = data;
            }
            json!({"jsonrpc": "2.0", "id": id, "error": error})
        }
    }
}

/// `None` for a notification (a request without an id).
async fn handle_request(server: &Arc<Server>, request: Value) -> Option<Value> {
    let Value::Object(mut request) = request else {
        return Some(envelope(
            Value::Null,
            Err(RpcError::new(-32600, "invalid request")),
        ));
    };
    let id = request.remove("id");
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let params = match request.remove("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params,
        Some(_) => {
            let error = RpcError::invalid_params("params must be an array");
            return id.map(|id| envelope(id, Err(error)));
        }
    };
    let result = match method {
        Some(method) => dispatch(server, &method, &params).await,
        None => Err(RpcError::new(-32600, "invalid request: no method")),
    };
    id.map(|id| envelope(id, result))
}

async fn dispatch(server: &Arc<Server>, method: &str, params: &[Value]) -> RpcResult {
    let chain = &server.chain;
    let shared = &chain.shared;
    let config = &shared.config;
    match method {
        "eth_chainId" => Ok(quantity(config.chain_id)),
        "net_version" => Ok(json!(config.chain_id.to_string())),
        "net_listening" => Ok(json!(true)),
        "web3_clientVersion" => Ok(json!(concat!("ledgermq/v", env!("CARGO_PKG_VERSION")))),
        "eth_syncing" => Ok(json!(false)),
        "eth_accounts" => Ok(json!([])),
        "eth_blockNumber" => Ok(quantity(shared.history.read().head().number())),
        "eth_gasPrice" | "eth_maxPriorityFeePerGas" | "eth_blobBaseFee" => Ok(quantity(0)),
        "eth_feeHistory" => fee_history(chain, params),
        "eth_getTransactionCount" => {
            let address: Address = param(params, 0)?;
            let tag = block_tag(chain, params, 1)?;
            Ok(quantity(if tag == BlockNumberOrTag::Pending {
                shared.pending_nonce(address)
            } else {
                shared.state_nonce(address)
            }))
        }
        "eth_getBalance" => {
            let address: Address = param(params, 0)?;
            block_tag(chain, params, 1)?;
            let info = shared.state.read().basic_ref(address).ok().flatten();
            Ok(big_quantity(info.map(|i| i.balance).unwrap_or_default()))
        }
        "eth_getCode" => {
            let address: Address = param(params, 0)?;
            block_tag(chain, params, 1)?;
            let state = shared.state.read();
            let code = match state.basic_ref(address).ok().flatten() {
                Some(info) => match info.code {
                    Some(code) => code.original_bytes(),
                    None => state
                        .code_by_hash_ref(info.code_hash)
                        .map(|c| c.original_bytes())
                        .unwrap_or_default(),
                },
                None => Bytes::new(),
            };
            Ok(json!(code))
        }
        "eth_getStorageAt" => {
            let address: Address = param(params, 0)?;
            let slot: U256 = param(params, 1)?;
            block_tag(chain, params, 2)?;
            let value = shared
                .state
                .read()
                .storage_ref(address, slot)
                .unwrap_or_default();
            Ok(json!(B256::from(value)))
        }
        "eth_call" => {
            let req = call_request(params)?;
            block_tag(chain, params, 1)?;
            let gas = server.config.call_gas(req.gas);
            let chain = chain.clone();
            let outcome = server
                .calls
                .run(move |_deadline| chain.run_call(&req, gas))
                .await??;
            match &outcome.revert {
                Some(revert) => Err(RpcError::reverted(revert)),
                None => Ok(json!(outcome.output)),
            }
        }
        "eth_estimateGas" => {
            let req = call_request(params)?;
            block_tag(chain, params, 1)?;
            let cap = server.config.call_gas(req.gas).min(config.block_gas_limit);
            let chain = chain.clone();
            let estimate = server
                .calls
                .run(move |deadline| {
                    let shared = &chain.shared;
                    exec::estimate_gas(cap, deadline, |gas| {
                        let head = shared.head_params();
                        let state = shared.state.read();
                        exec::call(&state, shared.config.chain_id, head, &req, gas)
                    })
                })
                .await?;
            match estimate {
                Ok(Ok(gas)) => Ok(quantity(gas)),
                Ok(Err(failed)) => match &failed.revert {
                    Some(revert) => Err(RpcError::reverted(revert)),
                    None => Err(RpcError::server("execution failed")),
                },
                Err(EstimateError::Invalid(e)) => Err(RpcError::server(e)),
                Err(EstimateError::TimedOut) => Err(server.calls.timed_out("estimating gas")),
            }
        }
        "eth_sendRawTransaction" => send_raw_transaction(server, params).await,
        "eth_sendTransaction" => Err(RpcError::new(
            -32601,
            "eth_sendTransaction is not served: sign locally and use eth_sendRawTransaction",
        )),
        "eth_getTransactionByHash" => {
            let hash: B256 = param(params, 0)?;
            let found = shared.history.read().tx(&hash);
            Ok(found.map_or(Value::Null, |(block, i)| transaction_json(&block, i)))
        }
        "eth_getTransactionReceipt" => {
            let hash: B256 = param(params, 0)?;
            let found = shared.history.read().tx(&hash);
            Ok(found.map_or(Value::Null, |(block, i)| receipt_json(&block, i)))
        }
        "eth_getBlockByNumber" => {
            let tag = block_number_or_tag(params, 0)?;
            let full = optional_param::<bool>(params, 1)?.unwrap_or(false);
            let block = block_by_tag(chain, tag);
            Ok(block.map_or(Value::Null, |b| block_json(&b, full)))
        }
        "eth_getBlockByHash" => {
            let hash: B256 = param(params, 0)?;
            let full = optional_param::<bool>(params, 1)?.unwrap_or(false);
            let block = shared.history.read().block_by_hash(&hash).cloned();
            Ok(block.map_or(Value::Null, |b| block_json(&b, full)))
        }
        "eth_getLogs" => get_logs(chain, params),
        _ => Err(RpcError::new(
            -32601,
            format!("method {method} is not served"),
        )),
    }
}

fn param<T: DeserializeOwned>(params: &[Value], index: usize) -> Result<T, RpcError> {
    optional_param(params, index)?
        .ok_or_else(|| RpcError::invalid_params(format!("missing parameter {index}")))
}

fn optional_param<T: DeserializeOwned>(
    params: &[Value],
    index: usize,
) -> Result<Option<T>, RpcError> {
    match params.get(index) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => T::deserialize(value)
            .map(Some)
            .map_err(|e| RpcError::invalid_params(format!("parameter {index}: {e}"))),
    }
}

fn block_number_or_tag(params: &[Value], index: usize) -> Result<BlockNumberOrTag, RpcError> {
    Ok(optional_param(params, index)?.unwrap_or(BlockNumberOrTag::Latest))
}

fn resolve(chain: &EmbeddedChain, tag: BlockNumberOrTag) -> u64 {
    match tag {
        BlockNumberOrTag::Earliest => 0,
        BlockNumberOrTag::Number(n) => n,
        _ => chain.shared.history.read().head().number(),
    }
}

fn block_by_tag(chain: &EmbeddedChain, tag: BlockNumberOrTag) -> Option<Arc<ChainBlock>> {
    let number = resolve(chain, tag);
    chain.shared.history.read().block(number).cloned()
}

/// Accepts a block parameter for state queries; only the head's state
/// exists. Accepts `{"blockHash": …}`/`{"blockNumber": …}` objects too.
fn block_tag(
    chain: &EmbeddedChain,
    params: &[Value],
    index: usize,
) -> Result<BlockNumberOrTag, RpcError> {
    let tag = match params.get(index) {
        Some(Value::Object(object)) => {
            let head = chain.shared.history.read().head().record.hash;
            match object.get("blockHash").map(B256::deserialize) {
                Some(Ok(hash)) if hash == head => return Ok(BlockNumberOrTag::Latest),
                Some(_) => return Err(RpcError::server("historical state is not kept")),
                None => block_number_or_tag(
                    &[object.get("blockNumber").cloned().unwrap_or(Value::Null)],
                    0,
                )?,
            }
        }
        _ => block_number_or_tag(params, index)?,
    };
    match tag {
        BlockNumberOrTag::Number(n) if n != chain.shared.history.read().head().number() => Err(
            RpcError::server(format!("historical state is not kept (block {n})")),
        ),
        BlockNumberOrTag::Earliest => Err(RpcError::server("historical state is not kept")),
        tag => Ok(tag),
    }
}

fn call_request(params: &[Value]) -> Result<CallRequest, RpcError> {
    let req: TransactionRequest = param(params, 0)?;
    Ok(CallRequest {
        from: req.from,
        to: match req.to {
            Some(TxKind::Call(to)) => Some(to),
            _ => None,
        },
        data: req.input.input().cloned().unwrap_or_default(),
        value: req.value.unwrap_or_default(),
        gas: req.gas,
    })
}

fn fee_history(chain: &EmbeddedChain, params: &[Value]) -> RpcResult {
    let count: U256 = param(params, 0)?;
    let newest = resolve(chain, block_number_or_tag(params, 1)?);
    let percentiles: Vec<f64> = optional_param(params, 2)?.unwrap_or_default();
    if percentiles.len() > 100 {
        return Err(RpcError::invalid_params("too many reward percentiles"));
    }
    let history = chain.shared.history.read();
    let newest = newest.min(history.head().number());
    let count = count.saturating_to::<u64>().clamp(1, 1024).min(newest + 1);
    let oldest = newest + 1 - count;
    let ratios: Vec<f64> = (oldest..=newest)
        .filter_map(|n| history.block(n))
        .map(|b| b.record.header.gas_used as f64 / b.record.header.gas_limit.max(1) as f64)
        .collect();
    let zeros = |n: usize| vec![quantity(0); n];
    let mut out = json!({
        "oldestBlock": quantity(oldest),
        "baseFeePerGas": zeros(ratios.len() + 1),
        "gasUsedRatio": ratios,
        "baseFeePerBlobGas": zeros(ratios.len() + 1),
        "blobGasUsedRatio": vec![0.0; ratios.len()],
    });
    if !percentiles.is_empty() {
        out["reward"] = json!(vec![zeros(percentiles.len()); ratios.len()]);
    }
    Ok(out)
}

async fn send_raw_transaction(server: &Arc<Server>, params: &[Value]) -> RpcResult {
    let chain = &server.chain;
    let raw: Bytes = param(params, 0)?;
    let config = &chain.shared.config;
    let envelope = {
        use alloy_eips::eip2718::Decodable2718;
        TxEnvelope::decode_2718_exact(&raw)
            .map_err(|e| RpcError::invalid_params(format!("undecodable transaction: {e}")))?
    };
    if !matches!(
        envelope,
        TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) | TxEnvelope::Eip1559(_)
    ) {
        return Err(RpcError::server(
            "transaction type not supported (legacy, EIP-2930 and EIP-1559 are)",
        ));
    }
    match envelope.chain_id() {
        Some(id) if id == config.chain_id => {}
        Some(id) => return Err(RpcError::server(format!("wrong chain id {id}"))),
        None => {
            return Err(RpcError::server(
                "only replay-protected (EIP-155) transactions allowed",
            ))
        }
    }
    if envelope.gas_limit() > config.block_gas_limit {
        return Err(RpcError::server("exceeds block gas limit"));
    }
    let sender = envelope
        .recover_signer()
        .map_err(|e| RpcError::server(format!("invalid signature: {e}")))?;
    let zero_fee = envelope.max_fee_per_gas() == 0;
    server.admission.check(chain, sender, zero_fee)?;
    let tx = BlockTx::decode(raw, sender).map_err(RpcError::invalid_params)?;
    if chain.shared.history.read().contains_tx(&tx.hash) {
        return Err(RpcError::server("already known"));
    }
    let state_nonce = chain.shared.state_nonce(sender);
    if tx.nonce() < state_nonce {
        return Err(RpcError::server(format!(
            "nonce too low: next nonce {state_nonce}, tx nonce {}",
            tx.nonce()
        )));
    }
    let (hash, nonce) = (tx.hash, tx.nonce());
    chain.submit(tx, false).await?;
    chain.note_nonce(sender, nonce, state_nonce);
    Ok(json!(hash))
}

fn get_logs(chain: &EmbeddedChain, params: &[Value]) -> RpcResult {
    let filter: Filter = param(params, 0)?;
    let history = chain.shared.history.read();
    let head = history.head().number();
    let resolve_opt = |tag: Option<BlockNumberOrTag>| match tag {
        None => head,
        Some(BlockNumberOrTag::Earliest) => 0,
        Some(BlockNumberOrTag::Number(n)) => n,
        Some(_) => head,
    };
    let (from_block, to_block) = match filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => match history.block_by_hash(&hash) {
            Some(block) => (block.number(), block.number()),
            None => return Err(RpcError::server("unknown block")),
        },
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => (resolve_opt(from_block), resolve_opt(to_block)),
    };
    if from_block > to_block {
        return Ok(json!([]));
    }
    if to_block.min(head) - from_block.min(head) > MAX_LOG_RANGE {
        return Err(RpcError::server(format!(
            "block range wider than {MAX_LOG_RANGE}"
        )));
    }
    let query = LogQuery {
        from_block,
        to_block,
        addresses: filter.address.iter().copied().collect(),
        topics: filter
            .topics
            .iter()
            .map(|set| set.iter().copied().collect())
            .collect(),
    };
    let limit = chain.shared.config.max_logs;
    let entries = history
        .logs(&query, limit)
        .map_err(|limit| RpcError::server(format!("query returned more than {limit} results")))?;
    let logs: Vec<Value> = entries
        .iter()
        .filter_map(|entry| {
            let (block, index) = history.tx(&entry.tx_hash)?;
            super::render::logs(&block, index)
                .into_iter()
                .find(|log| log.log_index == Some(entry.log_index))
                .map(|log| serde_json::to_value(log).unwrap_or(Value::Null))
        })
        .collect();
    Ok(json!(logs))
}
