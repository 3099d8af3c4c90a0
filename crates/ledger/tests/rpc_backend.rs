//! The JSON-RPC backend against a real anvil: the `Ledger` conformance
//! suite on one shared anvil, and what is specific to talking to a node.

mod backends;
#[macro_use]
mod conformance;
mod rpc_support;

use std::sync::Arc;

use alloy_primitives::{Address, Bytes, U256};
use ledgermq_ledger::contracts::{deploy_consortium, FoundingOrg, RegistryClient};
use ledgermq_ledger::{LedgerError, LogFilter, RpcLedger, Signer, TxRequest};
use rpc_support::{anvil_ledger, free_port, funded_keys};

conformance_tests!(crate::backends::anvil);

#[tokio::test]
async fn unreachable_endpoint_is_reported_with_its_url() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let err = RpcLedger::connect(&url).await.err().expect("must fail");
    match err {
        LedgerError::Unreachable { url: u, message } => {
            assert_eq!(u, url);
            assert!(message.contains("connection refused"), "{message}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let bad = RpcLedger::connect("ftp://example")
        .await
        .err()
        .expect("must fail");
    assert!(matches!(bad, LedgerError::Unreachable { .. }), "{bad:?}");
}

#[tokio::test]
async fn chain_basics_blocks_and_transfers() {
    let (_anvil, ledger) = anvil_ledger().await;
    assert_eq!(ledger.chain_id().await.unwrap(), 31337);
    let keys = funded_keys(ledger.as_ref(), 2).await;
    let before = ledger.block_number().await.unwrap();
    let receipt = ledger
        .send_transaction(
            &keys[0],
            TxRequest {
                to: Some(keys[1].address()),
                value: U256::from(1u64),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(receipt.block_number, before + 1);
    let block = ledger
        .block(receipt.block_number)
        .await
        .unwrap()
        .expect("block exists");
    assert_eq!(block.number, receipt.block_number);
    assert!(block.transactions.contains(&receipt.tx_hash));
    let parent = ledger.block(block.number - 1).await.unwrap().unwrap();
    assert_eq!(block.parent_hash, parent.hash);
    assert!(ledger.block(before + 1000).await.unwrap().is_none());
}

#[tokio::test]
async fn reverts_carry_the_contract_reason_from_estimate_call_and_mined_tx() {
    let (_anvil, ledger) = anvil_ledger().await;
    let keys = funded_keys(ledger.as_ref(), 2).await;
    let founders = vec![FoundingOrg {
        id: "org-a".into(),
        name: "A".into(),
        admins: vec![keys[0].address()],
    }];
    let d = deploy_consortium(ledger.as_ref(), &keys[0], &founders)
        .await
        .unwrap();
    let registry = RegistryClient::new(ledger.clone(), d.registry);
    let key = alloy_primitives::B256::repeat_byte(1);
    // estimate path
    let err = registry
        .register_device(&keys[1], "org-a", "dev-1", key, key)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LedgerError::Reverted("caller is not an admin of organisation org-a".into())
    );
    // view path
    let err = registry.get_device("nope").await.unwrap_err();
    assert_eq!(err, LedgerError::Reverted("unknown device nope".into()));
    // mined-and-reverted path (explicit gas skips estimation)
    let data = ledgermq_ledger::contracts::bindings::Registry::revokeDeviceCall {
        deviceId: "nope".into(),
    };
    let tx = TxRequest {
        to: Some(d.registry),
        data: Bytes::from(alloy_sol_types::SolCall::abi_encode(&data)),
        gas: Some(200_000),
        ..Default::default()
    };
    let err = ledger.send_transaction(&keys[0], tx).await.unwrap_err();
    assert_eq!(err, LedgerError::Reverted("unknown device nope".into()));
}

#[tokio::test]
async fn concurrent_sends_from_one_account_get_distinct_nonces() {
    let (_anvil, ledger) = anvil_ledger().await;
    let keys = funded_keys(ledger.as_ref(), 1).await;
    let key = Arc::new(keys.into_iter().next().unwrap());
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let ledger = ledger.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let to = Address::repeat_byte(0x40 + i as u8);
            let tx = TxRequest {
                to: Some(to),
                value: U256::from(1u64),
                ..Default::default()
            };
            ledger.send_transaction(key.as_ref(), tx).await
        }));
    }
    let mut hashes = std::collections::HashSet::new();
    for t in tasks {
        hashes.insert(t.await.unwrap().expect("send").tx_hash);
    }
    assert_eq!(hashes.len(), 20);
}

#[tokio::test]
async fn logs_are_filtered_by_address_signature_and_range() {
    let (_anvil, ledger) = anvil_ledger().await;
    let keys = funded_keys(ledger.as_ref(), 1).await;
    let founders = vec![FoundingOrg {
        id: "org-a".into(),
        name: "A".into(),
        admins: vec![keys[0].address()],
    }];
    let d = deploy_consortium(ledger.as_ref(), &keys[0], &founders)
        .await
        .unwrap();
    let all = ledger
        .logs(&LogFilter {
            addresses: vec![d.consortium],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "OrganisationAdded");
    assert_eq!(all[0].block_number, d.deployed_at_block);
    let none = ledger
        .logs(&LogFilter {
            from_block: d.deployed_at_block + 1,
            addresses: vec![d.consortium],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let sig = <ledgermq_ledger::contracts::bindings::Consortium::OrganisationAdded as alloy_sol_types::SolEvent>::SIGNATURE_HASH;
    let by_sig = ledger
        .logs(&LogFilter {
            event_signatures: vec![sig],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_sig.len(), 1);
}
