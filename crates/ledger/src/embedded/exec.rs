//! The EVM glue: chain rules, transaction execution, calls and estimates.
//!
//! State lives in memory in a revm `InMemoryDB` and is rebuilt by replay at
//! start-up (see the crate README for the cost). Chain rules are fixed
//! here in one place: Cancun, EIP-170's 24 KiB code limit, no fee market
//! (gas is metered, never charged: `disable_fee_charge`, so accounts need
//! no balance to transact; value transfers still need a real balance,
//! which nobody has because the chain mints no currency).

use std::time::Instant;

use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_primitives::{hex, Address, Bytes, Keccak256, Log, TxKind, B256, U256};
use revm::context::result::{ExecutionResult, ResultAndState};
use revm::context::{BlockEnv, CfgEnv, Context, TxEnv};
use revm::database::{CacheDB, InMemoryDB};
use revm::primitives::hardfork::SpecId;
use revm::state::EvmState;
use revm::{Database, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};

use crate::embedded::block::BlockTx;

pub(crate) type StateDb = InMemoryDB;

/// The parts of a block the EVM sees.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockParams {
    pub number: u64,
    pub timestamp: u64,
    pub gas_limit: u64,
}

/// What an included transaction did.
#[derive(Debug, Clone)]
pub(crate) struct TxOutcome {
    pub success: bool,
    pub gas_used: u64,
    pub logs: Vec<Log>,
    /// Return data of a successful call (dropped for included transactions).
    pub output: Bytes,
    /// Revert data, or a halt reason rendered as text.
    pub revert: Option<Revert>,
    pub contract_address: Option<Address>,
}

#[derive(Debug, Clone)]
pub(crate) enum Revert {
    Data(Bytes),
    Halt(String),
}

impl Revert {
    /// The decoded `Error(string)`/`Panic(uint)` reason, or the custom
    /// error as hex.
    pub fn reason(&self) -> String {
        match self {
            Revert::Data(data) => revert_reason(data),
            Revert::Halt(reason) => format!("execution halted: {reason}"),
        }
    }
}

pub(crate) fn cfg_env(chain_id: u64) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec(SpecId::CANCUN);
    cfg.chain_id = chain_id;
    cfg.disable_fee_charge = true;
    cfg
}

fn block_env(block: BlockParams) -> BlockEnv {
    BlockEnv {
        number: U256::from(block.number),
        timestamp: U256::from(block.timestamp),
        gas_limit: block.gas_limit,
        basefee: 0,
        ..Default::default()
    }
}

pub(crate) fn tx_env(tx: &TxEnvelope, sender: Address) -> TxEnv {
    TxEnv {
        tx_type: tx.tx_type() as u8,
        caller: sender,
        gas_limit: tx.gas_limit(),
        gas_price: tx.max_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: tx.chain_id(),
        access_list: tx.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: tx.max_priority_fee_per_gas(),
        ..Default::default()
    }
}

/// Executes the transactions of one block against the state, committing
/// each, and folds their state changes into the block's state digest.
pub(crate) struct BlockExecutor<'a> {
    evm: revm::handler::MainnetEvm<revm::handler::MainnetContext<&'a mut StateDb>>,
    diff: Keccak256,
}

impl<'a> BlockExecutor<'a> {
    pub fn new(db: &'a mut StateDb, chain_id: u64, block: BlockParams) -> Self {
        let evm = Context::mainnet()
            .with_db(db)
            .with_cfg(cfg_env(chain_id))
            .with_block(block_env(block))
            .build_mainnet();
        Self {
            evm,
            diff: Keccak256::new(),
        }
    }

    pub fn nonce(&mut self, address: Address) -> u64 {
        let db: &mut StateDb = self.evm.ctx.journaled_state.database;
        match db.basic(address) {
            Ok(Some(info)) => info.nonce,
            _ => 0,
        }
    }

    /// `Err` means the transaction is invalid and must not be included.
    pub fn apply(&mut self, tx: &BlockTx) -> Result<TxOutcome, String> {
        let ResultAndState { result, state } = self
            .evm
            .transact(tx_env(&tx.envelope, tx.sender))
            .map_err(|e| e.to_string())?;
        digest_state(&mut self.diff, &state);
        self.evm.commit(state);
        let mut outcome = outcome(result);
        outcome.output = Bytes::new(); // history keeps receipts, not return data
        Ok(outcome)
    }

    /// The digest of every state change applied so far.
    pub fn finish(self) -> B256 {
        self.diff.finalize()
    }
}

fn outcome(result: ExecutionResult) -> TxOutcome {
    let gas_used = result.tx_gas_used();
    let contract_address = result.created_address();
    match result {
        ExecutionResult::Success { logs, output, .. } => TxOutcome {
            success: true,
            gas_used,
            logs,
            output: output.into_data(),
            revert: None,
            contract_address,
        },
        ExecutionResult::Revert { output, .. } => TxOutcome {
            success: false,
            gas_used,
            logs: Vec::new(),
            output: Bytes::new(),
            revert: Some(Revert::Data(output)),
            contract_address: None,
        },
        ExecutionResult::Halt { reason, .. } => TxOutcome {
            success: false,
            gas_used,
            logs: Vec::new(),
            output: Bytes::new(),
            revert: Some(Revert::Halt(format!("{reason:?}"))),
            contract_address: None,
        },
    }
}

/// Feeds one transaction's state changes, in a canonical order, to `hasher`.
fn digest_state(hasher: &mut Keccak256, state: &EvmState) {
    let mut touched: Vec<_> = state.iter().filter(|(_, a)| a.is_touched()).collect();
    touched.sort_unstable_by_key(|(address, _)| **address);
    for (address, account) in touched {
        hasher.update(address.as_slice());
        hasher.update(account.info.nonce.to_be_bytes());
        hasher.update(account.info.balance.to_be_bytes::<32>());
        hasher.update(account.info.code_hash.as_slice());
        hasher.update([account.is_selfdestructed() as u8]);
        let mut slots: Vec<_> = account
            .storage
            .iter()
            .filter(|(_, slot)| slot.is_changed())
            .collect();
        slots.sort_unstable_by_key(|(key, _)| **key);
        hasher.update((slots.len() as u64).to_be_bytes());
        for (key, slot) in slots {
            hasher.update(key.to_be_bytes::<32>());
            hasher.update(slot.present_value.to_be_bytes::<32>());
        }
    }
}

/// A read-only execution request (`eth_call`, `eth_estimateGas`).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallRequest {
    pub from: Option<Address>,
    pub to: Option<Address>,
    pub data: Bytes,
    pub value: U256,
    pub gas: Option<u64>,
}

/// Runs `req` on top of `db` without changing it.
pub(crate) fn call(
    db: &StateDb,
    chain_id: u64,
    block: BlockParams,
    req: &CallRequest,
    gas: u64,
) -> Result<TxOutcome, String> {
    let mut cfg = cfg_env(chain_id);
    cfg.disable_nonce_check = true;
    let mut evm = Context::mainnet()
        .with_db(CacheDB::new(db))
        .with_cfg(cfg)
        .with_block(block_env(block))
        .build_mainnet();
    let tx = TxEnv {
        tx_type: 2,
        caller: req.from.unwrap_or_default(),
        gas_limit: gas,
        gas_price: 0,
        gas_priority_fee: Some(0),
        kind: req.to.map_or(TxKind::Create, TxKind::Call),
        value: req.value,
        data: req.data.clone(),
        chain_id: Some(chain_id),
        ..Default::default()
    };
    evm.transact(tx)
        .map(|r| outcome(r.result))
        .map_err(|e| e.to_string())
}

/// Why an estimate stopped without an answer.
#[derive(Debug)]
pub(crate) enum EstimateError {
    /// The EVM refused the request (not a revert: e.g. a malformed call).
    Invalid(String),
    /// `deadline` passed between two trial runs.
    TimedOut,
}

/// The smallest gas limit (within ~2%) with which a request succeeds; a
/// failing request yields its failure at the cap. `run(gas)` executes the
/// request with that gas limit (each trial takes the state lock afresh, so
/// block production is not held up for the whole search); the search
/// stops once `deadline` has passed.
pub(crate) fn estimate_gas(
    cap: u64,
    deadline: Instant,
    mut run: impl FnMut(u64) -> Result<TxOutcome, String>,
) -> Result<Result<u64, TxOutcome>, EstimateError> {
    let at_cap = run(cap).map_err(EstimateError::Invalid)?;
    if !at_cap.success {
        return Ok(Err(at_cap));
    }
    let mut succeeds = |gas: u64| -> Result<bool, EstimateError> {
        if Instant::now() > deadline {
            return Err(EstimateError::TimedOut);
        }
        run(gas).map(|o| o.success).map_err(EstimateError::Invalid)
    };
    // Refunds and the 63/64 rule make the needed limit exceed gas used;
    // this guess is almost always enough and is checked before use.
    let guess = (at_cap.gas_used + at_cap.gas_used / 8 + 5_000).min(cap);
    if succeeds(guess)? {
        return Ok(Ok(guess));
    }
    let (mut lo, mut hi) = (guess, cap);
    while hi - lo > hi / 50 {
        let mid = lo + (hi - lo) / 2;
        if succeeds(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Ok(hi))
}

/// A hash of the whole state, independent of history: sorted accounts with
/// their nonce, balance, code hash and non-zero storage.
pub(crate) fn full_state_digest(db: &StateDb) -> B256 {
    let mut accounts: Vec<_> = db.cache.accounts.iter().collect();
    accounts.sort_unstable_by_key(|(address, _)| **address);
    let mut hasher = Keccak256::new();
    for (address, account) in accounts {
        let Some(info) = account.info() else { continue };
        hasher.update(address.as_slice());
        hasher.update(info.nonce.to_be_bytes());
        hasher.update(info.balance.to_be_bytes::<32>());
        hasher.update(info.code_hash.as_slice());
        let mut slots: Vec<_> = account
            .storage
            .iter()
            .filter(|(_, v)| !v.is_zero())
            .collect();
        slots.sort_unstable_by_key(|(key, _)| **key);
        for (key, value) in slots {
            hasher.update(key.to_be_bytes::<32>());
            hasher.update(value.to_be_bytes::<32>());
        }
    }
    hasher.finalize()
}

const ERROR_SELECTOR: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
const PANIC_SELECTOR: [u8; 4] = [0x4e, 0x48, 0x7b, 0x71];

/// `Error(string)` and `Panic(uint256)` decoded, anything else as hex.
pub(crate) fn revert_reason(data: &[u8]) -> String {
    if data.is_empty() {
        return "reverted without a reason".into();
    }
    use alloy_sol_types::SolError;
    if data.starts_with(&ERROR_SELECTOR) {
        if let Ok(revert) = alloy_sol_types::Revert::abi_decode(data) {
            return revert.reason;
        }
    }
    if data.starts_with(&PANIC_SELECTOR) {
        if let Ok(panic) = alloy_sol_types::Panic::abi_decode(data) {
            return panic.to_string();
        }
    }
    format!("custom error 0x{}", hex::encode(data))
}
