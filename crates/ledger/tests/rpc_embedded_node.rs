//! The JSON-RPC backend against the embedded chain's own JSON-RPC server
//! (what `--rpc` reaches when a broker is running): the whole registry
//! suite goes through `RpcLedger` → HTTP → `EmbeddedChain`.

mod contracts_suite;

use std::sync::Arc;

use ledgermq_ledger::{ChainConfig, EmbeddedChain, Ledger, LocalAccount, RpcLedger, Signer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_suite_through_the_embedded_nodes_json_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let chain = EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap();
    let server = chain
        .serve_rpc("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ledger: Arc<dyn Ledger> = Arc::new(RpcLedger::connect(&server.url()).await.unwrap());
    assert_eq!(
        ledger.chain_id().await.unwrap(),
        chain.chain_id().await.unwrap()
    );
    let keys: Vec<LocalAccount> = (0..6).map(|_| LocalAccount::random()).collect();
    let signers: Vec<&dyn Signer> = keys[..5].iter().map(|k| k as &dyn Signer).collect();
    contracts_suite::registry_suite(ledger, &signers, &keys[5]).await;
}
