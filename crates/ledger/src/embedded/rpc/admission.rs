//! Who may send transactions through the JSON-RPC endpoint.
//!
//! The chain charges no gas, so a transaction costs its sender nothing and
//! costs every node a block, an fsync and replay time forever: an open
//! `eth_sendRawTransaction` would let anyone who can reach the port fill
//! the ledger. So a transaction is accepted only from
//!
//! - an account of `ledger_rpc_tx_allow` (e.g. the deployer, before any
//!   consortium exists), or
//! - an admin of an organisation or a broker node of a Consortium contract
//!   on this chain, as the contract says now (`orgOfAdmin`, `isBroker`):
//!   removing an admin on the ledger also takes away its right to send;
//! - an organisation's key service registered in a Groups contract on this
//!   chain (`isKeyService`), which commits its groups' key epochs.
//!
//! "A Consortium (Groups) contract on this chain" is any successful
//! top-level creation whose code is ledgermq's Consortium (Groups)
//! creation code. Only
//! admitted senders (and in-process callers, who hold the data dir) can
//! create anything, so every such contract was deployed by someone
//! already trusted. That trust is transitive on purpose: an admitted
//! account that deploys a second consortium vouches for its admins.
//!
//! Calls and queries stay open: they change nothing.

use alloy_primitives::{Address, Bytes, TxKind};
use alloy_sol_types::SolCall;
use parking_lot::Mutex;

use super::methods::RpcError;
use crate::contracts::bindings::{Consortium, Groups};
use crate::contracts::{creation_code, ContractName};
use crate::embedded::exec::CallRequest;
use crate::embedded::EmbeddedChain;

/// Who may send transactions through the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderPolicy {
    /// Admins and broker nodes of the consortium on this chain, plus
    /// `allow`. What `ledgermq serve` always uses.
    Consortium { allow: Vec<Address> },
    /// Anyone. Only for throwaway test chains whose tests are about
    /// something else (the contract suite through JSON-RPC): on a real
    /// node it lets anyone fill the ledger for free.
    Anyone,
}

impl Default for SenderPolicy {
    fn default() -> Self {
        SenderPolicy::Consortium { allow: Vec::new() }
    }
}

/// Gas for one membership view: a few thousand are needed.
const VIEW_GAS: u64 = 1_000_000;

pub(super) struct Admission {
    policy: SenderPolicy,
    known: Mutex<KnownConsortia>,
}

#[derive(Default)]
struct KnownConsortia {
    /// The next block to look at.
    next_block: u64,
    addresses: Vec<Address>,
    groups: Vec<Address>,
}

impl Admission {
    pub fn new(policy: SenderPolicy) -> Self {
        Self {
            policy,
            known: Mutex::new(KnownConsortia::default()),
        }
    }

    /// `Ok` if `sender` may send a transaction; `zero_fee` only shapes the
    /// refusal's message.
    pub fn check(
        &self,
        chain: &EmbeddedChain,
        sender: Address,
        zero_fee: bool,
    ) -> Result<(), RpcError> {
        let allow = match &self.policy {
            SenderPolicy::Anyone => return Ok(()),
            SenderPolicy::Consortium { allow } => allow,
        };
        if allow.contains(&sender) {
            return Ok(());
        }
        let (consortia, groups) = self.contracts(chain);
        if consortia.iter().any(|c| is_member(chain, *c, sender))
            || groups.iter().any(|g| is_key_service(chain, *g, sender))
        {
            return Ok(());
        }
        let who = "it is not an admin, broker node or key service of the consortium on \
                   this chain, nor in ledger_rpc_tx_allow";
        Err(RpcError::rejected(if zero_fee {
            format!(
                "zero-fee transaction from {sender} refused: {who} (gas is not charged \
                 here, so it would cost a stranger nothing)"
            )
        } else {
            format!("{sender} may not send transactions to this node: {who}")
        }))
    }

    /// Consortium and Groups contracts created up to the head, scanning
    /// only blocks not seen before.
    fn contracts(&self, chain: &EmbeddedChain) -> (Vec<Address>, Vec<Address>) {
        let (Ok(consortium), Ok(groups)) = (
            creation_code(ContractName::Consortium),
            creation_code(ContractName::Groups),
        ) else {
            return (Vec::new(), Vec::new());
        };
        let mut known = self.known.lock();
        let history = chain.shared.history.read();
        let head = history.head().number();
        while known.next_block <= head {
            if let Some(block) = history.block(known.next_block) {
                for (tx, result) in block.record.txs.iter().zip(&block.results) {
                    use alloy_consensus::Transaction as _;
                    let created = match (tx.envelope.kind(), result.outcome.contract_address) {
                        (TxKind::Create, Some(address)) if result.outcome.success => address,
                        _ => continue,
                    };
                    let input = tx.envelope.input();
                    if input.starts_with(&consortium) {
                        known.addresses.push(created);
                    } else if input.starts_with(&groups) {
                        known.groups.push(created);
                    }
                }
            }
            known.next_block += 1;
        }
        (known.addresses.clone(), known.groups.clone())
    }
}

fn view(chain: &EmbeddedChain, to: Address, data: Vec<u8>) -> Option<Bytes> {
    let req = CallRequest {
        to: Some(to),
        data: Bytes::from(data),
        ..CallRequest::default()
    };
    chain
        .run_call(&req, VIEW_GAS)
        .ok()
        .filter(|o| o.success)
        .map(|o| o.output)
}

fn is_key_service(chain: &EmbeddedChain, groups: Address, account: Address) -> bool {
    view(
        chain,
        groups,
        Groups::isKeyServiceCall { account }.abi_encode(),
    )
    .and_then(|out| Groups::isKeyServiceCall::abi_decode_returns(&out).ok())
    .unwrap_or(false)
}

fn is_member(chain: &EmbeddedChain, consortium: Address, account: Address) -> bool {
    let view = |data: Vec<u8>| view(chain, consortium, data);
    let admin = view(Consortium::orgOfAdminCall { account }.abi_encode())
        .and_then(|out| Consortium::orgOfAdminCall::abi_decode_returns(&out).ok())
        .is_some_and(|org| !org.is_empty());
    admin
        || view(Consortium::isBrokerCall { account }.abi_encode())
            .and_then(|out| Consortium::isBrokerCall::abi_decode_returns(&out).ok())
            .unwrap_or(false)
}
