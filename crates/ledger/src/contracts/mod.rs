//! Typed bindings for the Consortium, Registry, Audit and Groups contracts.
//!
//! The Rust types come from the committed artifacts (`contracts/artifacts`)
//! through `sol!`, so a recompiled contract changes the bindings at the next
//! build instead of drifting silently. Clients talk to any backend through
//! `Arc<dyn Ledger>`: the same code drives the embedded chain, anvil and a
//! production chain.

mod audit;
mod consortium;
mod deploy;
mod groups;
mod registry;

use std::sync::Arc;

use alloy_primitives::{Address, Bytes};
use alloy_sol_types::{SolCall, SolEventInterface};

use crate::Ledger;
use crate::{LedgerError, LedgerResult, LogEntry, Signer, TxReceipt, TxRequest};

pub use audit::{AnchorInfo, AuditClient, AuditRecordInfo, AuditRecordInput};
pub use consortium::{BrokerInfo, ConsortiumClient, OrgInfo, ProposalInfo, ProposalStatus};
pub use deploy::{
    creation_code, deploy_consortium, deploy_groups, ContractName, Deployment, FoundingOrg,
};
pub use groups::{
    GroupInfo, GroupKeyEpochInfo, GroupsClient, KeyServiceInfo, Protection, VerifyPolicy,
};
pub use registry::{BlacklistInfo, DeviceInfo, DeviceStatus, RegistryClient, RightInfo, TopicInfo};

/// Generated bindings (calls, return structs, events) for the four contracts.
pub mod bindings {
    alloy_sol_types::sol!(
        #[sol(all_derives)]
        Consortium,
        "../../contracts/artifacts/Consortium.json"
    );
    alloy_sol_types::sol!(
        #[sol(all_derives)]
        Registry,
        "../../contracts/artifacts/Registry.json"
    );
    alloy_sol_types::sol!(
        #[sol(all_derives)]
        Audit,
        "../../contracts/artifacts/Audit.json"
    );
    alloy_sol_types::sol!(
        #[sol(all_derives)]
        Groups,
        "../../contracts/artifacts/Groups.json"
    );
}

pub use bindings::Audit::AuditEvents;
pub use bindings::Consortium::ConsortiumEvents;
pub use bindings::Groups::GroupsEvents;
pub use bindings::Registry::RegistryEvents;

/// A decoded event of one of the four contracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractEvent {
    Consortium(ConsortiumEvents),
    Registry(RegistryEvents),
    Audit(AuditEvents),
    Groups(GroupsEvents),
}

/// Decodes `log` as an event of the contract at its address according to
/// `deployment`; `None` for logs of other contracts or unknown events.
pub fn decode_event(deployment: &Deployment, log: &LogEntry) -> Option<ContractEvent> {
    if log.address == deployment.consortium {
        ConsortiumEvents::decode_raw_log(&log.topics, &log.data)
            .ok()
            .map(ContractEvent::Consortium)
    } else if log.address == deployment.registry {
        RegistryEvents::decode_raw_log(&log.topics, &log.data)
            .ok()
            .map(ContractEvent::Registry)
    } else if log.address == deployment.audit {
        AuditEvents::decode_raw_log(&log.topics, &log.data)
            .ok()
            .map(ContractEvent::Audit)
    } else if log.address == deployment.groups && !deployment.groups.is_zero() {
        GroupsEvents::decode_raw_log(&log.topics, &log.data)
            .ok()
            .map(ContractEvent::Groups)
    } else {
        None
    }
}

/// The decoded events of a receipt, in log order.
pub fn receipt_events(deployment: &Deployment, receipt: &TxReceipt) -> Vec<ContractEvent> {
    receipt
        .logs
        .iter()
        .filter_map(|l| decode_event(deployment, l))
        .collect()
}

/// The revert reason carried by ABI-encoded revert data (`Error(string)`,
/// `Panic(uint256)` or a custom error's selector).
pub fn decode_revert(data: &[u8]) -> Option<String> {
    use alloy_sol_types::{Panic, Revert, SolError};
    if let Ok(revert) = Revert::abi_decode(data) {
        return Some(revert.reason);
    }
    if let Ok(panic) = Panic::abi_decode(data) {
        return Some(format!("panic: {}", panic.code));
    }
    alloy_sol_types::decode_revert_reason(data)
}

/// A contract at an address on a ledger: shared plumbing of the clients.
#[derive(Clone)]
pub(crate) struct ContractHandle {
    pub(crate) ledger: Arc<dyn Ledger>,
    pub(crate) address: Address,
}

impl ContractHandle {
    /// Sends `call` as a transaction from `from` and waits for its receipt.
    pub(crate) async fn send<C: SolCall>(
        &self,
        from: &dyn Signer,
        call: C,
    ) -> LedgerResult<TxReceipt> {
        let tx = TxRequest {
            to: Some(self.address),
            data: Bytes::from(call.abi_encode()),
            ..TxRequest::default()
        };
        self.ledger.send_transaction(from, tx).await
    }

    /// Runs the view `call` against the latest state and decodes its result.
    pub(crate) async fn view<C: SolCall>(&self, call: C) -> LedgerResult<C::Return> {
        let out = self
            .ledger
            .call(None, self.address, Bytes::from(call.abi_encode()))
            .await?;
        C::abi_decode_returns(&out).map_err(|e| {
            LedgerError::Other(format!(
                "cannot decode the result of {} at {}: {e} (is this the right contract address?)",
                C::SIGNATURE,
                self.address
            ))
        })
    }
}

/// Converts a contract `uint256` index or count to `u64`, refusing absurd values.
pub(crate) fn to_u64(v: alloy_primitives::U256, what: &str) -> LedgerResult<u64> {
    u64::try_from(v).map_err(|_| LedgerError::Other(format!("{what} does not fit in 64 bits")))
}
