//! The contract suite through the JSON-RPC backend against a real anvil.

mod contracts_suite;
mod rpc_support;

use ledgermq_ledger::Signer;
use rpc_support::{anvil_ledger, funded_keys};

#[tokio::test]
async fn consortium_functions_reverts_and_events_on_anvil() {
    let (_anvil, ledger) = anvil_ledger().await;
    let keys = funded_keys(ledger.as_ref(), 5).await;
    let signers: Vec<&dyn Signer> = keys.iter().map(|k| k as &dyn Signer).collect();
    contracts_suite::consortium_suite(ledger, &signers).await;
}

#[tokio::test]
async fn registry_functions_reverts_and_events_on_anvil() {
    let (_anvil, ledger) = anvil_ledger().await;
    let keys = funded_keys(ledger.as_ref(), 6).await;
    let signers: Vec<&dyn Signer> = keys[..5].iter().map(|k| k as &dyn Signer).collect();
    contracts_suite::registry_suite(ledger, &signers, &keys[5]).await;
}

#[tokio::test]
async fn audit_functions_reverts_and_events_on_anvil() {
    let (_anvil, ledger) = anvil_ledger().await;
    let keys = funded_keys(ledger.as_ref(), 6).await;
    let signers: Vec<&dyn Signer> = keys[..5].iter().map(|k| k as &dyn Signer).collect();
    contracts_suite::audit_suite(ledger, &signers, &keys[5]).await;
}
