//! Audit: records and Merkle anchors, appended by broker nodes only.

use alloy_primitives::{B256, U256};
use alloy_sol_types::SolConstructor;
use ledgermq_ledger::contracts::bindings::Audit as A;
use ledgermq_ledger::contracts::{creation_code, AuditEvents, AuditRecordInput, ContractName};
use ledgermq_ledger::{LocalAccount, Signer};

use super::{address, k, reverted, Network};

fn input(kind: u8, subject: &str, topic: &str, time: u64, digest: B256) -> AuditRecordInput {
    AuditRecordInput {
        kind,
        subject: subject.into(),
        topic: topic.into(),
        time,
        digest,
    }
}

/// A broker node of its own (of `manufacturer`), so per-broker views are exact.
async fn own_broker(net: &Network) -> LocalAccount {
    let node = net.account().await;
    net.consortium
        .add_broker(net.admin(1), "manufacturer", node.address(), k(1), k(2))
        .await
        .unwrap();
    node
}

// ------------------------------------------------------------- constructor

pub async fn constructor_refuses_a_consortium_address_without_code(net: &Network) {
    let code = creation_code(ContractName::Audit).unwrap();
    let args = A::constructorCall {
        consortium_: address(),
    };
    reverted(
        net.deploy_raw(code, args.abi_encode()).await,
        "consortium address has no code",
    );
}

pub async fn public_constants_and_consortium_address(net: &Network) {
    let at = net.deployment.audit;
    assert_eq!(net.view(at, A::MAX_FIELDCall {}).await, U256::from(256));
    assert_eq!(net.view(at, A::MAX_BATCHCall {}).await, U256::from(64));
    assert_eq!(
        net.view(at, A::consortiumCall {}).await,
        net.deployment.consortium
    );
}

// ----------------------------------------------------------------- records

pub async fn record_by_a_broker_emits_and_stores_the_record(net: &Network) {
    let a = &net.audit;
    let subject = net.unique("dev");
    let digest = net.unique_b256();
    let (index, rc) = a
        .record(&net.broker, 3, &subject, "t/a", 1_700_000_000, digest)
        .await
        .unwrap();
    let at = net
        .ledger
        .block(rc.block_number)
        .await
        .unwrap()
        .unwrap()
        .timestamp;
    let ev = net.audit_events(&rc);
    let [AuditEvents::AuditRecorded(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(
        (e.index, e.broker, e.kind),
        (U256::from(index), net.broker.address(), 3)
    );
    assert_eq!(
        (e.subject.as_str(), e.topic.as_str()),
        (subject.as_str(), "t/a")
    );
    assert_eq!((e.time, e.digest), (1_700_000_000, digest));
    let got = a.get_record(index).await.unwrap();
    assert_eq!(
        (got.kind, got.subject.as_str(), got.topic.as_str()),
        (3, subject.as_str(), "t/a")
    );
    assert_eq!(
        (got.time, got.digest, got.broker, got.recorded_at),
        (1_700_000_000, digest, net.broker.address(), at)
    );
    assert!(a.record_count().await.unwrap() > index);
    // Empty and 256-byte fields are accepted.
    let (i, _) = a
        .record(&net.broker, 0, "", &"t".repeat(256), 0, B256::ZERO)
        .await
        .unwrap();
    let got = a.get_record(i).await.unwrap();
    assert_eq!((got.subject.len(), got.topic.len()), (0, 256));
    let (i, _) = a
        .record(&net.broker, 255, &"s".repeat(256), "", u64::MAX, digest)
        .await
        .unwrap();
    assert_eq!(a.get_record(i).await.unwrap().time, u64::MAX);
}

pub async fn record_refuses_non_brokers_and_overlong_fields(net: &Network) {
    let a = &net.audit;
    for caller in [net.admin(0), &net.outsider] {
        reverted(
            a.record(caller, 1, "dev", "t", 5, k(9)).await,
            "caller is not a registered broker node",
        );
    }
    reverted(
        a.record(&net.broker, 1, &"x".repeat(257), "t", 5, k(9))
            .await,
        "record subject exceeds 256 bytes",
    );
    reverted(
        a.record(&net.broker, 1, "dev", &"x".repeat(257), 5, k(9))
            .await,
        "record topic exceeds 256 bytes",
    );
    // A removed broker node may no longer append.
    let node = own_broker(net).await;
    a.record(&node, 1, "dev", "t", 5, k(9)).await.unwrap();
    net.consortium
        .remove_broker(net.admin(1), node.address())
        .await
        .unwrap();
    reverted(
        a.record(&node, 1, "dev", "t", 5, k(9)).await,
        "caller is not a registered broker node",
    );
}

pub async fn record_batch_appends_in_order_with_consecutive_indexes(net: &Network) {
    let a = &net.audit;
    let subject = net.unique("dev");
    let batch: Vec<AuditRecordInput> = (0..3u8)
        .map(|i| {
            input(
                i + 1,
                &subject,
                &format!("t/{i}"),
                100 + u64::from(i),
                k(i + 1),
            )
        })
        .collect();
    let (first, rc) = a.record_batch(&net.broker, batch.clone()).await.unwrap();
    let ev = net.audit_events(&rc);
    assert_eq!(ev.len(), 3);
    for (i, (e, want)) in ev.iter().zip(&batch).enumerate() {
        let AuditEvents::AuditRecorded(e) = e else {
            panic!("{e:?}");
        };
        assert_eq!(e.index, U256::from(first + i as u64));
        assert_eq!(
            (e.broker, e.kind, e.time, e.digest),
            (net.broker.address(), want.kind, want.time, want.digest)
        );
        assert_eq!((&e.subject, &e.topic), (&want.subject, &want.topic));
        let got = a.get_record(first + i as u64).await.unwrap();
        assert_eq!(
            (got.kind, &got.subject, &got.topic, got.time),
            (want.kind, &want.subject, &want.topic, want.time)
        );
    }
    // The limit itself is accepted.
    let full = vec![input(1, &subject, "", 1, k(1)); 64];
    let (first, rc) = a.record_batch(&net.broker, full).await.unwrap();
    assert_eq!(net.audit_events(&rc).len(), 64);
    assert_eq!(a.get_record(first + 63).await.unwrap().subject, subject);
}

pub async fn record_batch_refuses_empty_and_oversized_batches(net: &Network) {
    let a = &net.audit;
    let one = input(1, "d", "t", 6, k(7));
    reverted(
        a.record_batch(&net.broker, vec![]).await,
        "batch must hold 1-64 records",
    );
    reverted(
        a.record_batch(&net.broker, vec![one.clone(); 65]).await,
        "batch must hold 1-64 records",
    );
    reverted(
        a.record_batch(net.admin(0), vec![one.clone()]).await,
        "caller is not a registered broker node",
    );
    // One bad record fails the whole batch.
    let long = input(1, &"x".repeat(257), "t", 6, k(7));
    reverted(
        a.record_batch(&net.broker, vec![one.clone(), long]).await,
        "record subject exceeds 256 bytes",
    );
    let long = input(1, "d", &"x".repeat(257), 6, k(7));
    reverted(
        a.record_batch(&net.broker, vec![one, long]).await,
        "record topic exceeds 256 bytes",
    );
}

// ----------------------------------------------------------------- anchors

pub async fn anchor_by_a_broker_emits_and_is_found_by_root(net: &Network) {
    let a = &net.audit;
    let root = net.unique_b256();
    assert_eq!(a.find_anchor(root).await.unwrap(), None);
    let (index, rc) = a.anchor(&net.broker, root, 10, 1, 10).await.unwrap();
    let at = net
        .ledger
        .block(rc.block_number)
        .await
        .unwrap()
        .unwrap()
        .timestamp;
    let ev = net.audit_events(&rc);
    let [AuditEvents::Anchored(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(
        (e.index, e.broker, e.root),
        (U256::from(index), net.broker.address(), root)
    );
    assert_eq!(
        (e.leafCount, e.firstSeq, e.lastSeq, e.anchoredAt),
        (10, 1, 10, at)
    );
    assert_eq!(a.find_anchor(root).await.unwrap(), Some(index));
    let got = a.get_anchor(index).await.unwrap();
    assert_eq!(
        (got.root, got.leaf_count, got.first_seq, got.last_seq),
        (root, 10, 1, 10)
    );
    assert_eq!((got.broker, got.anchored_at), (net.broker.address(), at));
    assert!(a.anchor_count().await.unwrap() > index);
    // A single leaf (firstSeq == lastSeq) is a valid batch.
    let (i, _) = a
        .anchor(&net.broker, net.unique_b256(), 1, 7, 7)
        .await
        .unwrap();
    assert_eq!(a.get_anchor(i).await.unwrap().first_seq, 7);
}

pub async fn anchor_refuses_non_brokers_zero_roots_empty_and_inverted_ranges(net: &Network) {
    let a = &net.audit;
    let root = net.unique_b256();
    reverted(
        a.anchor(net.admin(0), root, 1, 0, 0).await,
        "caller is not a registered broker node",
    );
    reverted(
        a.anchor(&net.broker, B256::ZERO, 1, 0, 0).await,
        "root must not be zero",
    );
    reverted(
        a.anchor(&net.broker, root, 0, 0, 0).await,
        "leaf count must be positive",
    );
    reverted(
        a.anchor(&net.broker, root, 1, 5, 4).await,
        "last sequence number is below the first",
    );
    assert_eq!(a.find_anchor(root).await.unwrap(), None);
}

pub async fn anchor_refuses_a_root_anchored_before(net: &Network) {
    let a = &net.audit;
    let root = net.unique_b256();
    let (index, _) = a.anchor(&net.broker, root, 4, 20, 23).await.unwrap();
    reverted(
        a.anchor(&net.broker, root, 4, 20, 23).await,
        "root already anchored",
    );
    // Also by another broker node and with other bounds.
    let other = own_broker(net).await;
    reverted(
        a.anchor(&other, root, 1, 99, 99).await,
        "root already anchored",
    );
    assert_eq!(a.find_anchor(root).await.unwrap(), Some(index));
}

pub async fn anchor_views_index_anchors_per_broker(net: &Network) {
    let a = &net.audit;
    let node = own_broker(net).await;
    assert_eq!(a.anchor_count_of(node.address()).await.unwrap(), 0);
    let (i0, _) = a.anchor(&node, net.unique_b256(), 2, 0, 1).await.unwrap();
    let (i1, _) = a.anchor(&node, net.unique_b256(), 2, 2, 3).await.unwrap();
    assert_eq!(a.anchor_count_of(node.address()).await.unwrap(), 2);
    assert_eq!(a.anchor_index_of(node.address(), 0).await.unwrap(), i0);
    assert_eq!(a.anchor_index_of(node.address(), 1).await.unwrap(), i1);
    reverted(
        a.anchor_index_of(node.address(), 2).await,
        "index out of range",
    );
    assert_eq!(a.get_anchor(i1).await.unwrap().broker, node.address());
}

pub async fn views_refuse_indexes_out_of_range(net: &Network) {
    let a = &net.audit;
    reverted(a.get_record(u64::MAX).await, "index out of range");
    reverted(a.get_anchor(u64::MAX).await, "index out of range");
    reverted(a.anchor_index_of(address(), 0).await, "index out of range");
    assert_eq!(a.anchor_count_of(address()).await.unwrap(), 0);
}
