//! What every `Ledger` backend must do, written against `&dyn Ledger` so the
//! same checks run on the embedded chain in-process (`embedded_ledger.rs`),
//! on `RpcLedger` → anvil (`rpc_backend.rs`) and on `RpcLedger` → the
//! embedded chain's own JSON-RPC server (`rpc_embedded_node.rs`), each
//! through [`conformance_tests!`]. A check may only rely on what every EVM
//! node does: no fixed block numbers, no free gas, no other test's silence.
//!
//! The contract is `Counter` below, compiled once with solc 0.8.37
//! (tools/node_modules/solc), evmVersion cancun, optimizer on (200 runs):
//!
//! ```solidity
//! // SPDX-License-Identifier: Apache-2.0
//! pragma solidity ^0.8.20;
//! contract Counter {
//!     event Incremented(address indexed by, uint256 value);
//!     error TooLarge(uint256 value);
//!     uint256 public count;
//!     function increment() external {
//!         count += 1;
//!         emit Incremented(msg.sender, count);
//!     }
//!     function add(uint256 n) external {
//!         require(n > 0, "n must be positive");
//!         if (n > 1000) revert TooLarge(n);
//!         count += n;
//!         emit Incremented(msg.sender, count);
//!     }
//! }
//! ```
#![allow(dead_code)]

use alloy_primitives::{hex, keccak256, Address, Bytes, B256, U256};
use ledgermq_ledger::{Ledger, LedgerError, LogFilter, Signer, TxRequest};

pub const COUNTER_CREATION: &str = "6080604052348015600e575f5ffd5b506101f98061001c5f395ff3fe608060405234801561000f575f5ffd5b506004361061003f575f3560e01c806306661abd146100435780631003e2d21461005d578063d09de08a14610072575b5f5ffd5b61004b5f5481565b60405190815260200160405180910390f35b61007061006b366004610187565b61007a565b005b610070610138565b5f81116100c35760405162461bcd60e51b81526020600482015260126024820152716e206d75737420626520706f73697469766560701b60448201526064015b60405180910390fd5b6103e88111156100e957604051630fa6ad5f60e11b8152600481018290526024016100ba565b805f5f8282546100f9919061019e565b90915550505f5460405190815233907f38ac789ed44572701765277c4d0970f2db1c1a571ed39e84358095ae4eaa54209060200160405180910390a250565b60015f5f828254610149919061019e565b90915550505f5460405190815233907f38ac789ed44572701765277c4d0970f2db1c1a571ed39e84358095ae4eaa54209060200160405180910390a2565b5f60208284031215610197575f5ffd5b5035919050565b808201808211156101bd57634e487b7160e01b5f52601160045260245ffd5b9291505056fea264697066735822122063f74c7233539690b618b560613db4214511062cefd12a3f657c1866ec4c40ea64736f6c63430008250033";

pub const COUNT: [u8; 4] = hex!("06661abd");
pub const ADD: [u8; 4] = hex!("1003e2d2");
pub const INCREMENT: [u8; 4] = hex!("d09de08a");
/// `TooLarge(uint256)`.
pub const TOO_LARGE: [u8; 4] = hex!("1f4d5abe");

pub fn incremented_topic() -> B256 {
    keccak256("Incremented(address,uint256)")
}

pub fn add_call(n: u64) -> Bytes {
    let mut data = ADD.to_vec();
    data.extend_from_slice(&U256::from(n).to_be_bytes::<32>());
    data.into()
}

pub async fn deploy_counter(ledger: &dyn Ledger, from: &dyn Signer) -> Address {
    let receipt = ledger
        .send_transaction(
            from,
            TxRequest {
                data: hex::decode(COUNTER_CREATION).unwrap().into(),
                ..Default::default()
            },
        )
        .await
        .expect("deploy");
    receipt.contract_address.expect("a creation has an address")
}

pub async fn count(ledger: &dyn Ledger, counter: Address) -> u64 {
    let out = ledger
        .call(None, counter, COUNT.to_vec().into())
        .await
        .expect("count()");
    U256::from_be_slice(&out).to::<u64>()
}

fn call(to: Address, data: Bytes) -> TxRequest {
    TxRequest {
        to: Some(to),
        data,
        ..Default::default()
    }
}

/// Deploy, view call, state-changing send with an event in its receipt.
pub async fn deploys_calls_and_sends(ledger: &dyn Ledger, from: &dyn Signer) {
    let counter = deploy_counter(ledger, from).await;
    assert_eq!(count(ledger, counter).await, 0);
    let receipt = ledger
        .send_transaction(from, call(counter, INCREMENT.to_vec().into()))
        .await
        .expect("increment");
    assert!(receipt.gas_used > 21_000);
    assert_eq!(receipt.logs.len(), 1);
    let log = &receipt.logs[0];
    assert_eq!(log.address, counter);
    assert_eq!(log.topics[0], incremented_topic());
    assert_eq!(log.topics[1], from.address().into_word());
    assert_eq!(U256::from_be_slice(&log.data), U256::from(1));
    assert_eq!(log.tx_hash, receipt.tx_hash);
    assert_eq!(log.block_number, receipt.block_number);
    assert_eq!(count(ledger, counter).await, 1);
    assert!(ledger.block_number().await.unwrap() >= receipt.block_number);
}

/// `require(…, "reason")` comes back as the reason; a custom error as hex.
pub async fn reverts_carry_their_reason(ledger: &dyn Ledger, from: &dyn Signer) {
    let counter = deploy_counter(ledger, from).await;
    let err = ledger
        .send_transaction(from, call(counter, add_call(0)))
        .await
        .expect_err("add(0) reverts");
    assert_eq!(err, LedgerError::Reverted("n must be positive".into()));
    let err = ledger
        .send_transaction(from, call(counter, add_call(5000)))
        .await
        .expect_err("add(5000) reverts");
    match err {
        LedgerError::Reverted(reason) => assert!(
            reason.contains(&hex::encode(TOO_LARGE)),
            "custom error as hex, got {reason}"
        ),
        other => panic!("expected Reverted, got {other:?}"),
    }
    let err = ledger
        .call(None, counter, add_call(0))
        .await
        .expect_err("a view call reverts too");
    assert_eq!(err, LedgerError::Reverted("n must be positive".into()));
    // The account still works after reverts (nonces stay in step).
    let ok = ledger
        .send_transaction(from, call(counter, add_call(7)))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(count(ledger, counter).await, 7);
}

/// Logs by block range, emitting contract and event signature.
pub async fn logs_are_found_by_filter(ledger: &dyn Ledger, from: &dyn Signer) {
    let a = deploy_counter(ledger, from).await;
    let b = deploy_counter(ledger, from).await;
    let start = ledger.block_number().await.unwrap() + 1;
    for target in [a, b, a] {
        ledger
            .send_transaction(from, call(target, INCREMENT.to_vec().into()))
            .await
            .unwrap();
    }
    let of_a = ledger
        .logs(&LogFilter {
            from_block: start,
            to_block: None,
            addresses: vec![a],
            event_signatures: vec![incremented_topic()],
        })
        .await
        .unwrap();
    assert_eq!(of_a.len(), 2);
    assert!(of_a.iter().all(|l| l.address == a));
    assert!(of_a[0].block_number <= of_a[1].block_number);
    let of_both = ledger
        .logs(&LogFilter {
            from_block: start,
            addresses: vec![a, b],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_both.len(), 3);
    let other_event = ledger
        .logs(&LogFilter {
            from_block: start,
            event_signatures: vec![keccak256("Other()")],
            addresses: vec![a],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(other_event.is_empty());
    let before = ledger
        .logs(&LogFilter {
            from_block: 0,
            to_block: Some(start - 1),
            addresses: vec![a],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(before.is_empty());
}

/// Blocks are hash-chained and list their transactions.
pub async fn blocks_are_hash_chained(ledger: &dyn Ledger, from: &dyn Signer) {
    let counter = deploy_counter(ledger, from).await;
    let receipt = ledger
        .send_transaction(from, call(counter, INCREMENT.to_vec().into()))
        .await
        .unwrap();
    let block = ledger
        .block(receipt.block_number)
        .await
        .unwrap()
        .expect("the receipt's block exists");
    assert_eq!(block.number, receipt.block_number);
    assert!(block.transactions.contains(&receipt.tx_hash));
    assert_ne!(block.transactions_root, B256::ZERO);
    let parent = ledger
        .block(receipt.block_number - 1)
        .await
        .unwrap()
        .expect("parent exists");
    assert_eq!(block.parent_hash, parent.hash);
    assert!(block.timestamp >= parent.timestamp);
    let head = ledger.block_number().await.unwrap();
    assert!(ledger.block(head + 1000).await.unwrap().is_none());
}

/// Many concurrent sends from one account all land, none lost.
pub async fn concurrent_senders_of_one_account_all_land(ledger: &dyn Ledger, from: &dyn Signer) {
    let counter = deploy_counter(ledger, from).await;
    let sends =
        (0..64).map(|_| ledger.send_transaction(from, call(counter, INCREMENT.to_vec().into())));
    let receipts = futures_util::future::join_all(sends).await;
    let mut hashes = std::collections::HashSet::new();
    for receipt in receipts {
        hashes.insert(receipt.expect("every send lands").tx_hash);
    }
    assert_eq!(hashes.len(), 64);
    assert_eq!(count(ledger, counter).await, 64);
}

/// Receipts describe the transaction that produced them.
pub async fn receipts_describe_their_transactions(ledger: &dyn Ledger, from: &dyn Signer) {
    let counter = deploy_counter(ledger, from).await;
    let first = ledger
        .send_transaction(from, call(counter, add_call(3)))
        .await
        .unwrap();
    let second = ledger
        .send_transaction(from, call(counter, add_call(4)))
        .await
        .unwrap();
    assert_ne!(first.tx_hash, second.tx_hash);
    assert!(second.block_number >= first.block_number);
    assert_eq!(first.contract_address, None);
    assert_eq!(U256::from_be_slice(&second.logs[0].data), U256::from(7));
}

/// One `#[test]` per conformance check, on the shared backend returned by
/// `$backend()` (see `tests/backends`), each from a fresh funded account.
#[allow(unused_macros)]
macro_rules! conformance_tests {
    ($backend:path) => {
        conformance_tests!(@each $backend;
            deploys_calls_and_sends,
            reverts_carry_their_reason,
            logs_are_found_by_filter,
            blocks_are_hash_chained,
            concurrent_senders_of_one_account_all_land,
            receipts_describe_their_transactions,
        );
    };
    (@each $backend:path; $($check:ident),* $(,)?) => {
        mod conformance_checks {
            $(
                #[test]
                fn $check() {
                    let backend = $backend();
                    backend.block_on(async {
                        let from = backend.account().await;
                        crate::conformance::$check(backend.ledger.as_ref(), &from).await
                    });
                }
            )*
        }
    };
}
