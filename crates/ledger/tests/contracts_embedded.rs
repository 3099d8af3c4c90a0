//! The contract suite, unchanged, against the embedded chain.

mod contracts_suite;

use std::sync::Arc;

use ledgermq_ledger::{ChainConfig, EmbeddedChain, Ledger, LocalAccount, Signer};

fn chain() -> (tempfile::TempDir, Arc<dyn Ledger>) {
    let dir = tempfile::tempdir().unwrap();
    let chain =
        EmbeddedChain::open(dir.path(), ChainConfig::default()).expect("open embedded chain");
    (dir, chain)
}

fn accounts(n: usize) -> Vec<LocalAccount> {
    (0..n).map(|_| LocalAccount::random()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consortium_functions_reverts_and_events_on_the_embedded_chain() {
    let (_dir, ledger) = chain();
    let keys = accounts(5);
    let signers: Vec<&dyn Signer> = keys.iter().map(|k| k as &dyn Signer).collect();
    contracts_suite::consortium_suite(ledger, &signers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_functions_reverts_and_events_on_the_embedded_chain() {
    let (_dir, ledger) = chain();
    let keys = accounts(6);
    let signers: Vec<&dyn Signer> = keys[..5].iter().map(|k| k as &dyn Signer).collect();
    contracts_suite::registry_suite(ledger, &signers, &keys[5]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_functions_reverts_and_events_on_the_embedded_chain() {
    let (_dir, ledger) = chain();
    let keys = accounts(6);
    let signers: Vec<&dyn Signer> = keys[..5].iter().map(|k| k as &dyn Signer).collect();
    contracts_suite::audit_suite(ledger, &signers, &keys[5]).await;
}
