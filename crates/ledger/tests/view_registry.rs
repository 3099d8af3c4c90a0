//! RegistryView built from events on a real anvil: initial load, following
//! new blocks, wildcard rights and notifications.

mod contracts_suite;
mod rpc_support;

use std::time::Duration;

use alloy_primitives::B256;
use ledgermq_ledger::contracts::{
    ConsortiumClient, GroupsClient, Protection, RegistryClient, VerifyPolicy,
};
use ledgermq_ledger::{RegistryEvent, RegistryView, Signer};
use rpc_support::{anvil_ledger, funded_keys};

fn k(b: u8) -> B256 {
    B256::repeat_byte(b)
}

#[tokio::test]
async fn view_is_built_from_events_follows_blocks_and_notifies_revocations() {
    let (_anvil, ledger) = anvil_ledger().await;
    let keys = funded_keys(ledger.as_ref(), 6).await;
    let signers: Vec<&dyn Signer> = keys[..5].iter().map(|k| k as &dyn Signer).collect();
    let (a0, a1, broker) = (&keys[0], &keys[1], &keys[5]);
    let d = contracts_suite::deploy(&ledger, &signers).await;
    let c = ConsortiumClient::new(ledger.clone(), d.consortium);
    let r = RegistryClient::new(ledger.clone(), d.registry);
    c.add_broker(a0, "supplier", broker.address(), k(1), k(2))
        .await
        .unwrap();
    r.register_device(a0, "supplier", "temp-1", k(3), k(4))
        .await
        .unwrap();
    r.grant_right(a0, "temp-1", "raw/temperature", true, false)
        .await
        .unwrap();
    r.grant_right(a0, "temp-1", "config/+", false, true)
        .await
        .unwrap();
    r.set_otp_envelope(a0, "temp-1", broker.address(), b"sealed")
        .await
        .unwrap();
    let g = GroupsClient::new(ledger.clone(), d.groups).unwrap();
    let filters = ["raw/#".to_string()];
    g.create_group(
        a0,
        "supplier",
        "raw",
        &filters,
        Protection::Sealed,
        VerifyPolicy::Every,
        30,
    )
    .await
    .unwrap();
    g.add_member(a0, "raw", "temp-1").await.unwrap();
    g.set_key_service(a0, "supplier", a0.address(), k(7))
        .await
        .unwrap();
    g.commit_epoch(a0, "raw", 1, k(9), 1, &[("temp-1".into(), k(8))])
        .await
        .unwrap();

    let view = RegistryView::builder(ledger.clone(), d)
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    assert_eq!(view.last_block(), ledger.block_number().await.unwrap());
    let snap = view.snapshot();
    assert_eq!(snap.orgs.len(), 4);
    assert_eq!(
        view.org("supplier").unwrap().brokers,
        vec![broker.address()]
    );
    assert_eq!(view.broker(&broker.address()).unwrap().agreement_key, k(2));
    assert_eq!(view.device("temp-1").unwrap().signing_key, k(3));
    assert_eq!(
        view.otp_envelope("temp-1", &broker.address())
            .unwrap()
            .as_ref(),
        b"sealed"
    );
    let raw = view.group("raw").unwrap();
    assert_eq!(raw.latest_epoch().unwrap().epoch, 1);
    assert_eq!(raw.latest_epoch().unwrap().commitment, k(9));
    assert!(raw.members.contains("temp-1"));
    assert_eq!(
        (raw.protection, raw.verify),
        (Protection::Sealed, VerifyPolicy::Every)
    );
    assert_eq!(view.groups_protecting("raw/temperature").len(), 1);
    assert!(view.groups_protecting("config/x").is_empty());
    assert_eq!(view.key_service("supplier").unwrap().signing_key, k(7));
    assert!(!view.topic("config/+").unwrap().publish_open);
    assert!(view.can_publish("temp-1", "raw/temperature"));
    assert!(!view.can_subscribe("temp-1", "raw/temperature"));
    assert!(view.can_subscribe("temp-1", "config/+"));
    assert!(view.can_subscribe("temp-1", "config/supplier"));
    assert!(!view.can_subscribe("temp-1", "config/#"));
    assert!(!view.can_publish("temp-1", "config/supplier"));
    assert!(!view.can_publish("ghost", "raw/temperature"));

    let mut notes = view.subscribe();
    let follower = view.follow();
    // A new device and right appear without any call on the view.
    r.register_device(a1, "manufacturer", "m-end", k(5), k(6))
        .await
        .unwrap();
    r.grant_right(a1, "m-end", "raw/temperature", false, true)
        .await
        .unwrap();
    wait_until(|| view.can_subscribe("m-end", "raw/temperature")).await;
    assert_eq!(
        notes.recv().await.unwrap(),
        RegistryEvent::DeviceRegistered("m-end".into())
    );

    // Revocations are noticed and notified.
    r.revoke_right(a0, "m-end", "raw/temperature")
        .await
        .unwrap();
    assert_eq!(
        next(&mut notes).await,
        RegistryEvent::RightRevoked {
            id: "m-end".into(),
            topic: "raw/temperature".into()
        }
    );
    assert!(!view.can_subscribe("m-end", "raw/temperature"));
    let evidence = B256::repeat_byte(0xe7);
    r.blacklist_device(broker, "temp-1", u64::MAX, 2, evidence)
        .await
        .unwrap();
    assert_eq!(
        next(&mut notes).await,
        RegistryEvent::Blacklisted {
            id: "temp-1".into(),
            until: u64::MAX,
            reason: 2,
            evidence
        }
    );
    assert_eq!(
        view.blacklist_entry("temp-1").map(|b| b.evidence),
        Some(evidence)
    );
    assert!(view.is_blacklisted("temp-1"));
    assert!(!view.can_publish("temp-1", "raw/temperature"));
    r.lift_blacklist(a0, "temp-1").await.unwrap();
    assert_eq!(
        next(&mut notes).await,
        RegistryEvent::BlacklistLifted("temp-1".into())
    );
    assert!(view.can_publish("temp-1", "raw/temperature"));
    r.revoke_device(a0, "temp-1").await.unwrap();
    assert_eq!(
        next(&mut notes).await,
        RegistryEvent::DeviceRevoked("temp-1".into())
    );
    assert!(!view.can_publish("temp-1", "raw/temperature"));
    assert!(!view.is_active("temp-1"));
    follower.abort();
}

#[tokio::test]
async fn view_built_from_a_later_block_sees_only_later_events() {
    let (_anvil, ledger) = anvil_ledger().await;
    let keys = funded_keys(ledger.as_ref(), 5).await;
    let signers: Vec<&dyn Signer> = keys.iter().map(|k| k as &dyn Signer).collect();
    let d = contracts_suite::deploy(&ledger, &signers).await;
    let r = RegistryClient::new(ledger.clone(), d.registry);
    r.register_device(&keys[0], "supplier", "early", k(1), k(2))
        .await
        .unwrap();
    let start = ledger.block_number().await.unwrap() + 1;
    r.register_device(&keys[0], "supplier", "late", k(1), k(2))
        .await
        .unwrap();
    let view = RegistryView::builder(ledger.clone(), d)
        .from_block(start)
        .build()
        .await
        .unwrap();
    assert!(view.device("early").is_none());
    assert!(view.device("late").is_some());
    assert!(
        view.snapshot().orgs.is_empty(),
        "founders were added before the start block"
    );
}

async fn next(rx: &mut tokio::sync::broadcast::Receiver<RegistryEvent>) -> RegistryEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("notification in time")
        .unwrap()
}

async fn wait_until(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
