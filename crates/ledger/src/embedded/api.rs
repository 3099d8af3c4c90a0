//! The in-process [`Ledger`] API and the one way into the pool.
//!
//! In-process senders get their nonce from the chain (`Shared::next_nonces`)
//! under a short lock, then sign and submit outside it: concurrent senders
//! of one account never serialise on signing, and the producer's parking
//! puts their transactions back in nonce order.

use std::sync::mpsc::TrySendError;
use std::time::{Duration, Instant};

use alloy_consensus::crypto::RecoveryError;
use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_primitives::{Address, Bytes, Signature, TxKind};
use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::embedded::block::{encode_tx, BlockTx};
use crate::embedded::exec::{self, CallRequest, TxOutcome};
use crate::embedded::history::LogQuery;
use crate::embedded::producer::{Inclusion, PoolTx};
use crate::embedded::EmbeddedChain;
use crate::ledger::{
    BlockSummary, Ledger, LedgerError, LedgerResult, LogEntry, LogFilter, Signer, TxReceipt,
    TxRequest,
};

/// How long a full pool may hold up an in-process sender.
const POOL_FULL_TIMEOUT: Duration = Duration::from_secs(30);

impl EmbeddedChain {
    /// Puts a signed transaction into the pool. With `wait`, the returned
    /// receiver answers once the transaction is in a durable block.
    pub(crate) async fn submit(
        &self,
        tx: BlockTx,
        wait: bool,
    ) -> LedgerResult<Option<oneshot::Receiver<Inclusion>>> {
        self.shared.check_healthy()?;
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| LedgerError::Other("the ledger is closed".into()))?;
        let (reply, receiver) = if wait {
            let (s, r) = oneshot::channel();
            (Some(s), Some(r))
        } else {
            (None, None)
        };
        let mut ptx = PoolTx {
            tx,
            reply,
            received: Instant::now(),
        };
        let deadline = Instant::now() + POOL_FULL_TIMEOUT;
        loop {
            match pool.try_send(ptx) {
                Ok(()) => return Ok(receiver),
                Err(TrySendError::Disconnected(_)) => {
                    return Err(LedgerError::Other("the ledger is closed".into()))
                }
                Err(TrySendError::Full(back)) => {
                    if !wait || Instant::now() > deadline {
                        return Err(LedgerError::Rejected("transaction pool is full".into()));
                    }
                    ptx = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }

    /// Hands out the next nonce of `address` for an in-process sender.
    fn take_nonce(&self, address: Address) -> u64 {
        let mut nonces = self.shared.next_nonces.lock();
        if let Some(next) = nonces.get_mut(&address) {
            let nonce = *next;
            *next += 1;
            return nonce;
        }
        drop(nonces);
        let from_state = self.shared.state_nonce(address);
        let mut nonces = self.shared.next_nonces.lock();
        let next = nonces.entry(address).or_insert(from_state);
        let nonce = *next;
        *next += 1;
        nonce
    }

    /// Records that a signed transaction with `nonce` entered the pool.
    pub(crate) fn note_nonce(&self, address: Address, nonce: u64, state_nonce: u64) {
        let mut nonces = self.shared.next_nonces.lock();
        let next = nonces.entry(address).or_insert(state_nonce);
        *next = (*next).max(nonce + 1);
    }

    fn sign(&self, from: &dyn Signer, tx: TxRequest, nonce: u64) -> LedgerResult<BlockTx> {
        let config = &self.shared.config;
        let unsigned = TxEip1559 {
            chain_id: config.chain_id,
            nonce,
            gas_limit: tx.gas.unwrap_or(config.default_tx_gas),
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: 0,
            to: tx.to.map_or(TxKind::Create, TxKind::Call),
            value: tx.value,
            access_list: Default::default(),
            input: tx.data,
        };
        let raw_signature = from.sign_hash(&unsigned.signature_hash())?;
        let signature =
            Signature::from_bytes_and_parity(&raw_signature[..64], raw_signature[64] != 0);
        let envelope = TxEnvelope::from(unsigned.into_signed(signature));
        let signer = envelope
            .recover_signer()
            .map_err(|e: RecoveryError| LedgerError::Rejected(format!("bad signature: {e}")))?;
        if signer != from.address() {
            return Err(LedgerError::Rejected(format!(
                "the signer for {} produced a signature of {signer}",
                from.address()
            )));
        }
        BlockTx::decode(encode_tx(&envelope), signer).map_err(LedgerError::Other)
    }

    /// Runs a view call with gas limit `gas` against the latest state.
    /// Blocking for as long as `gas` allows: the RPC server runs untrusted
    /// requests on its call pool, never on an async worker.
    pub(crate) fn run_call(&self, req: &CallRequest, gas: u64) -> LedgerResult<TxOutcome> {
        let params = self.shared.head_params();
        let state = self.shared.state.read();
        exec::call(&state, self.shared.config.chain_id, params, req, gas)
            .map_err(LedgerError::Rejected)
    }
}

fn receipt(block: &crate::embedded::history::ChainBlock, index: usize) -> TxReceipt {
    let (tx, result) = (&block.record.txs[index], &block.results[index]);
    TxReceipt {
        tx_hash: tx.hash,
        block_number: block.number(),
        gas_used: result.outcome.gas_used,
        contract_address: result.outcome.contract_address,
        logs: block.log_entries(index),
    }
}

#[async_trait]
impl Ledger for EmbeddedChain {
    async fn chain_id(&self) -> LedgerResult<u64> {
        Ok(self.shared.config.chain_id)
    }

    async fn block_number(&self) -> LedgerResult<u64> {
        Ok(self.shared.history.read().head().number())
    }

    async fn send_transaction(&self, from: &dyn Signer, tx: TxRequest) -> LedgerResult<TxReceipt> {
        self.shared.check_healthy()?;
        let gas = tx.gas.unwrap_or(self.shared.config.default_tx_gas);
        if gas > self.shared.config.block_gas_limit {
            return Err(LedgerError::Rejected(format!(
                "gas limit {gas} exceeds the block gas limit {}",
                self.shared.config.block_gas_limit
            )));
        }
        let address = from.address();
        let nonce = self.take_nonce(address);
        let signed = match self.sign(from, tx, nonce) {
            Ok(signed) => signed,
            Err(e) => {
                // Re-read the nonce from state next time; see `take_nonce`.
                self.shared.next_nonces.lock().remove(&address);
                return Err(e);
            }
        };
        let receiver = match self.submit(signed, true).await {
            Ok(Some(receiver)) => receiver,
            Ok(None) => return Err(LedgerError::Other("no receipt channel".into())),
            Err(e) => {
                self.shared.next_nonces.lock().remove(&address);
                return Err(e);
            }
        };
        let (block, index) = receiver
            .await
            .map_err(|_| LedgerError::Other("the ledger closed before inclusion".into()))??;
        let outcome = &block.results[index].outcome;
        match &outcome.revert {
            Some(revert) if !outcome.success => Err(LedgerError::Reverted(revert.reason())),
            _ => Ok(receipt(&block, index)),
        }
    }

    async fn call(&self, from: Option<Address>, to: Address, data: Bytes) -> LedgerResult<Bytes> {
        let req = CallRequest {
            from,
            to: Some(to),
            data,
            ..Default::default()
        };
        let outcome = self.run_call(&req, self.shared.config.call_gas_cap)?;
        match outcome.revert {
            Some(revert) => Err(LedgerError::Reverted(revert.reason())),
            None => Ok(outcome.output),
        }
    }

    async fn logs(&self, filter: &LogFilter) -> LedgerResult<Vec<LogEntry>> {
        let query = LogQuery {
            from_block: filter.from_block,
            to_block: filter.to_block.unwrap_or(u64::MAX),
            addresses: filter.addresses.clone(),
            topics: vec![filter.event_signatures.clone()],
        };
        let limit = self.shared.config.max_logs;
        self.shared
            .history
            .read()
            .logs(&query, limit)
            .map_err(|limit| LedgerError::Other(format!("more than {limit} logs match")))
    }

    async fn block(&self, number: u64) -> LedgerResult<Option<BlockSummary>> {
        Ok(self
            .shared
            .history
            .read()
            .block(number)
            .map(|b| b.summary()))
    }
}
