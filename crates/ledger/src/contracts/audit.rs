//! Client of the Audit contract: audit records and Merkle anchors.

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolEvent;

use super::bindings::Audit as A;
use super::{to_u64, ContractHandle};
use crate::{Ledger, LedgerError, LedgerResult, Signer, TxReceipt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecordInfo {
    pub kind: u8,
    pub subject: String,
    pub topic: String,
    pub time: u64,
    pub digest: B256,
    pub broker: Address,
    pub recorded_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorInfo {
    pub root: B256,
    pub leaf_count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub broker: Address,
    pub anchored_at: u64,
}

/// Typed access to a deployed Audit contract.
#[derive(Clone)]
pub struct AuditClient {
    c: ContractHandle,
}

/// One record for [`AuditClient::record_batch`].
pub type AuditRecordInput = A::AuditRecord;

impl AuditClient {
    pub fn new(ledger: Arc<dyn Ledger>, address: Address) -> Self {
        Self {
            c: ContractHandle { ledger, address },
        }
    }

    pub fn address(&self) -> Address {
        self.c.address
    }

    /// Records one audit event; returns its index (from the event) and the receipt.
    pub async fn record(
        &self,
        broker: &dyn Signer,
        kind: u8,
        subject: &str,
        topic: &str,
        time: u64,
        digest: B256,
    ) -> LedgerResult<(u64, TxReceipt)> {
        let call = A::recordCall {
            kind,
            subject: subject.into(),
            topic: topic.into(),
            time,
            digest,
        };
        let receipt = self.c.send(broker, call).await?;
        let index = self.first_index::<A::AuditRecorded>(&receipt, |e| e.index)?;
        Ok((index, receipt))
    }

    /// Records 1–64 events in one transaction; returns the first index.
    pub async fn record_batch(
        &self,
        broker: &dyn Signer,
        batch: Vec<AuditRecordInput>,
    ) -> LedgerResult<(u64, TxReceipt)> {
        let receipt = self.c.send(broker, A::recordBatchCall { batch }).await?;
        let index = self.first_index::<A::AuditRecorded>(&receipt, |e| e.index)?;
        Ok((index, receipt))
    }

    /// Anchors a Merkle root; returns the anchor index and the receipt.
    pub async fn anchor(
        &self,
        broker: &dyn Signer,
        root: B256,
        leaf_count: u64,
        first_seq: u64,
        last_seq: u64,
    ) -> LedgerResult<(u64, TxReceipt)> {
        let call = A::anchorCall {
            root,
            leafCount: leaf_count,
            firstSeq: first_seq,
            lastSeq: last_seq,
        };
        let receipt = self.c.send(broker, call).await?;
        let index = self.first_index::<A::Anchored>(&receipt, |e| e.index)?;
        Ok((index, receipt))
    }

    fn first_index<E: SolEvent>(
        &self,
        receipt: &TxReceipt,
        index: impl Fn(&E) -> U256,
    ) -> LedgerResult<u64> {
        let event = receipt
            .logs
            .iter()
            .filter(|l| l.address == self.c.address)
            .find_map(|l| E::decode_raw_log(&l.topics, &l.data).ok())
            .ok_or_else(|| {
                LedgerError::Other(format!("transaction emitted no {} event", E::SIGNATURE))
            })?;
        to_u64(index(&event), "audit index")
    }

    pub async fn record_count(&self) -> LedgerResult<u64> {
        to_u64(self.c.view(A::recordCountCall {}).await?, "recordCount")
    }

    pub async fn get_record(&self, index: u64) -> LedgerResult<AuditRecordInfo> {
        let r = self
            .c
            .view(A::getRecordCall {
                index: U256::from(index),
            })
            .await?;
        Ok(AuditRecordInfo {
            kind: r.kind,
            subject: r.subject,
            topic: r.topic,
            time: r.time,
            digest: r.digest,
            broker: r.broker,
            recorded_at: r.recordedAt,
        })
    }

    pub async fn anchor_count(&self) -> LedgerResult<u64> {
        to_u64(self.c.view(A::anchorCountCall {}).await?, "anchorCount")
    }

    pub async fn get_anchor(&self, index: u64) -> LedgerResult<AnchorInfo> {
        let r = self
            .c
            .view(A::getAnchorCall {
                index: U256::from(index),
            })
            .await?;
        Ok(AnchorInfo {
            root: r.root,
            leaf_count: r.leafCount,
            first_seq: r.firstSeq,
            last_seq: r.lastSeq,
            broker: r.broker,
            anchored_at: r.anchoredAt,
        })
    }

    /// The index of the anchor with `root`, if it was anchored.
    pub async fn find_anchor(&self, root: B256) -> LedgerResult<Option<u64>> {
        let r = self.c.view(A::findAnchorCall { root }).await?;
        if r.found {
            Ok(Some(to_u64(r.index, "anchor index")?))
        } else {
            Ok(None)
        }
    }

    pub async fn anchor_count_of(&self, broker: Address) -> LedgerResult<u64> {
        to_u64(
            self.c.view(A::anchorCountOfCall { broker }).await?,
            "anchorCountOf",
        )
    }

    pub async fn anchor_index_of(&self, broker: Address, i: u64) -> LedgerResult<u64> {
        let r = self
            .c
            .view(A::anchorIndexOfCall {
                broker,
                i: U256::from(i),
            })
            .await?;
        to_u64(r, "anchorIndexOf")
    }
}
