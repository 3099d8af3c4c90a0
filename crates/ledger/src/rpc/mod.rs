//! The JSON-RPC backend: any EVM chain reachable over HTTP(S) — anvil in
//! tests, a consortium chain such as Besu QBFT in production, or a running
//! broker's embedded node.
//!
//! Transactions are signed here with the caller's [`Signer`]; the node only
//! ever sees raw signed transactions, so no key leaves the process. Nonces
//! are handed out per account under a per-account lock, so tasks of one
//! process may send concurrently from the same account; the lock covers
//! signing and submission only, never the wait for the receipt.

mod errors;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, Bytes, Signature, TxKind, B256, U256};
use alloy_provider::{Provider, RootProvider};
use alloy_rpc_types_eth::{Filter, Log, TransactionInput, TransactionReceipt, TransactionRequest};
use async_trait::async_trait;

use crate::{
    BlockSummary, Ledger, LedgerError, LedgerResult, LogEntry, LogFilter, Signer, TxReceipt,
    TxRequest,
};
use errors::{is_method_missing, is_nonce_error, map_rpc_error};

/// Gas used when the node cannot estimate (no `eth_estimateGas`).
const FALLBACK_GAS: u64 = 8_000_000;

/// Knobs of an [`RpcLedger`].
#[derive(Debug, Clone)]
pub struct RpcOptions {
    /// How often to ask for a receipt while waiting for inclusion.
    pub receipt_poll: Duration,
    /// How long to wait for inclusion before giving up.
    pub receipt_timeout: Duration,
    /// Per-request HTTP timeout.
    pub request_timeout: Duration,
    /// Accept `http://` to a host that is not loopback. Off: such an
    /// endpoint is refused, because anyone on the path could answer in the
    /// ledger's name (forged registry, forged broker keys). On: it is used,
    /// with a warning at every connect.
    pub allow_insecure_http: bool,
}

impl Default for RpcOptions {
    fn default() -> Self {
        Self {
            receipt_poll: Duration::from_millis(50),
            receipt_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            allow_insecure_http: false,
        }
    }
}

/// Whether `url` names this machine: `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A chain reached over Ethereum JSON-RPC.
pub struct RpcLedger {
    url: String,
    provider: RootProvider,
    chain_id: u64,
    options: RpcOptions,
    /// Next nonce per local account; `None` = ask the node.
    nonces: parking_lot::Mutex<HashMap<Address, Arc<tokio::sync::Mutex<Option<u64>>>>>,
}

impl RpcLedger {
    /// Connects to `url` and reads the chain id (so an unreachable endpoint
    /// fails here, with [`LedgerError::Unreachable`]).
    pub async fn connect(url: &str) -> LedgerResult<Self> {
        Self::connect_with(url, RpcOptions::default()).await
    }

    pub async fn connect_with(url: &str, options: RpcOptions) -> LedgerResult<Self> {
        let parsed: url::Url = url.parse().map_err(|e| LedgerError::Unreachable {
            url: url.to_string(),
            message: format!("not a valid URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LedgerError::Unreachable {
                url: url.to_string(),
                message: "only http:// and https:// endpoints are supported".into(),
            });
        }
        if parsed.scheme() == "http" && !is_loopback(&parsed) {
            if !options.allow_insecure_http {
                return Err(LedgerError::Unreachable {
                    url: url.to_string(),
                    message: "plain http:// to a host that is not loopback: anyone on the path \
                              could answer in the ledger's name; use https://, or accept the risk \
                              with the insecure option (--ledger-rpc-insecure / --rpc-insecure)"
                        .into(),
                });
            }
            tracing::warn!(
                url,
                "INSECURE: reading the ledger over plain http from a host that is not loopback; \
                 anyone on the path can forge the registry this node trusts"
            );
        }
        // reqwest is built without a bundled crypto provider; use ring like the broker.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(options.request_timeout)
            .build()
            .map_err(|e| LedgerError::Other(format!("cannot build the HTTP client: {e}")))?;
        let client = alloy_rpc_client::RpcClient::new_http_with_client(http, parsed);
        let provider = RootProvider::new(client);
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| map_rpc_error(url, e))?;
        Ok(Self {
            url: url.to_string(),
            provider,
            chain_id,
            options,
            nonces: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, e: alloy_json_rpc::RpcError<alloy_transport::TransportErrorKind>) -> LedgerError {
        map_rpc_error(&self.url, e)
    }

    fn nonce_slot(&self, account: Address) -> Arc<tokio::sync::Mutex<Option<u64>>> {
        self.nonces.lock().entry(account).or_default().clone()
    }

    /// Builds, signs and submits `tx` with the next nonce of `from`;
    /// returns the transaction hash.
    async fn submit(&self, from: &dyn Signer, tx: &TxRequest) -> LedgerResult<B256> {
        let account = from.address();
        let slot = self.nonce_slot(account);
        let mut next = slot.lock().await;
        let gas = match tx.gas {
            Some(g) => g,
            None => self.estimate(account, tx).await?,
        };
        let mut attempts = 0;
        loop {
            let nonce = match *next {
                Some(n) => n,
                None => self
                    .provider
                    .get_transaction_count(account)
                    .pending()
                    .await
                    .map_err(|e| self.err(e))?,
            };
            let raw = self.sign(from, tx, nonce, gas).await?;
            match self.provider.send_raw_transaction(&raw).await {
                Ok(pending) => {
                    *next = Some(nonce + 1);
                    return Ok(*pending.tx_hash());
                }
                Err(e) => {
                    let e = self.err(e);
                    *next = None;
                    attempts += 1;
                    if attempts >= 3 || !is_nonce_error(&e) {
                        return Err(e);
                    }
                    tracing::debug!(%account, error = %e, "nonce out of sync; retrying");
                }
            }
        }
    }

    async fn estimate(&self, from: Address, tx: &TxRequest) -> LedgerResult<u64> {
        let request = call_request(Some(from), tx.to, tx.data.clone(), tx.value);
        match self
            .provider
            .estimate_gas(request)
            .block(BlockId::latest())
            .await
        {
            // Headroom for state that changes between estimate and inclusion.
            Ok(g) => Ok(g.saturating_add(g / 4).max(21_000)),
            Err(e) => {
                let e = self.err(e);
                if is_method_missing(&e) {
                    Ok(FALLBACK_GAS)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn sign(
        &self,
        from: &dyn Signer,
        tx: &TxRequest,
        nonce: u64,
        gas: u64,
    ) -> LedgerResult<Vec<u8>> {
        let to = match tx.to {
            Some(a) => TxKind::Call(a),
            None => TxKind::Create,
        };
        let latest = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| self.err(e))?;
        let base_fee = latest.and_then(|b| b.header.inner.base_fee_per_gas);
        let envelope: TxEnvelope = match base_fee {
            Some(base) => {
                let priority = self
                    .provider
                    .get_max_priority_fee_per_gas()
                    .await
                    .unwrap_or(0);
                let unsigned = TxEip1559 {
                    chain_id: self.chain_id,
                    nonce,
                    gas_limit: gas,
                    max_fee_per_gas: u128::from(base).saturating_mul(2).saturating_add(priority),
                    max_priority_fee_per_gas: priority,
                    to,
                    value: tx.value,
                    access_list: Default::default(),
                    input: tx.data.clone(),
                };
                let sig = signature(from, &unsigned.signature_hash())?;
                unsigned.into_signed(sig).into()
            }
            None => {
                let gas_price = self
                    .provider
                    .get_gas_price()
                    .await
                    .map_err(|e| self.err(e))?;
                let unsigned = TxLegacy {
                    chain_id: Some(self.chain_id),
                    nonce,
                    gas_price,
                    gas_limit: gas,
                    to,
                    value: tx.value,
                    input: tx.data.clone(),
                };
                let sig = signature(from, &unsigned.signature_hash())?;
                unsigned.into_signed(sig).into()
            }
        };
        Ok(envelope.encoded_2718())
    }

    async fn wait_for_receipt(&self, hash: B256) -> LedgerResult<TransactionReceipt> {
        let deadline = tokio::time::Instant::now() + self.options.receipt_timeout;
        loop {
            if let Some(r) = self
                .provider
                .get_transaction_receipt(hash)
                .await
                .map_err(|e| self.err(e))?
            {
                return Ok(r);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LedgerError::Other(format!(
                    "transaction {hash} was not included within {:?}",
                    self.options.receipt_timeout
                )));
            }
            tokio::time::sleep(self.options.receipt_poll).await;
        }
    }

    /// The reason a mined transaction reverted, by replaying it on the state
    /// before its block.
    async fn replay_reason(&self, from: Address, tx: &TxRequest, block: u64) -> String {
        let request = call_request(Some(from), tx.to, tx.data.clone(), tx.value);
        let at = BlockId::number(block.saturating_sub(1));
        match self.provider.call(request).block(at).await {
            Err(e) => match self.err(e) {
                LedgerError::Reverted(reason) => reason,
                other => format!("reverted (reason unavailable: {other})"),
            },
            Ok(_) => "reverted without a reason (out of gas?)".to_string(),
        }
    }
}

fn signature(from: &dyn Signer, hash: &B256) -> LedgerResult<Signature> {
    let raw = from.sign_hash(hash)?;
    let v = raw[64];
    let parity = if v >= 27 { v - 27 } else { v };
    if parity > 1 {
        return Err(LedgerError::Other(format!(
            "signer returned an invalid recovery id {v}"
        )));
    }
    Ok(Signature::from_bytes_and_parity(&raw[..64], parity == 1))
}

fn call_request(
    from: Option<Address>,
    to: Option<Address>,
    data: Bytes,
    value: U256,
) -> TransactionRequest {
    TransactionRequest {
        from,
        to: Some(to.map_or(TxKind::Create, TxKind::Call)),
        input: TransactionInput::new(data),
        value: Some(value),
        ..Default::default()
    }
}

fn log_entry(log: &Log) -> LogEntry {
    LogEntry {
        address: log.inner.address,
        topics: log.inner.data.topics().to_vec(),
        data: log.inner.data.data.clone(),
        block_number: log.block_number.unwrap_or_default(),
        tx_hash: log.transaction_hash.unwrap_or_default(),
        log_index: log.log_index.unwrap_or_default(),
    }
}

#[async_trait]
impl Ledger for RpcLedger {
    async fn chain_id(&self) -> LedgerResult<u64> {
        Ok(self.chain_id)
    }

    async fn block_number(&self) -> LedgerResult<u64> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| self.err(e))
    }

    async fn send_transaction(&self, from: &dyn Signer, tx: TxRequest) -> LedgerResult<TxReceipt> {
        let hash = self.submit(from, &tx).await?;
        let receipt = self.wait_for_receipt(hash).await?;
        let block_number = receipt.block_number.unwrap_or_default();
        if !receipt.status() {
            return Err(LedgerError::Reverted(
                self.replay_reason(from.address(), &tx, block_number).await,
            ));
        }
        Ok(TxReceipt {
            tx_hash: receipt.transaction_hash,
            block_number,
            gas_used: receipt.gas_used,
            contract_address: receipt.contract_address,
            logs: receipt.inner.logs().iter().map(log_entry).collect(),
        })
    }

    async fn call(&self, from: Option<Address>, to: Address, data: Bytes) -> LedgerResult<Bytes> {
        let request = call_request(from, Some(to), data, U256::ZERO);
        self.provider
            .call(request)
            .block(BlockId::latest())
            .await
            .map_err(|e| self.err(e))
    }

    async fn logs(&self, filter: &LogFilter) -> LedgerResult<Vec<LogEntry>> {
        let mut f = Filter::new().from_block(filter.from_block);
        f = match filter.to_block {
            Some(n) => f.to_block(n),
            None => f.to_block(BlockNumberOrTag::Latest),
        };
        if !filter.addresses.is_empty() {
            f = f.address(filter.addresses.clone());
        }
        if !filter.event_signatures.is_empty() {
            f = f.event_signature(filter.event_signatures.clone());
        }
        let logs = self.provider.get_logs(&f).await.map_err(|e| self.err(e))?;
        Ok(logs.iter().map(log_entry).collect())
    }

    async fn block(&self, number: u64) -> LedgerResult<Option<BlockSummary>> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(|e| self.err(e))?;
        Ok(block.map(|b| BlockSummary {
            number: b.header.inner.number,
            hash: b.header.hash,
            parent_hash: b.header.inner.parent_hash,
            timestamp: b.header.inner.timestamp,
            transactions_root: b.header.inner.transactions_root,
            transactions: b.transactions.hashes().collect(),
        }))
    }
}
