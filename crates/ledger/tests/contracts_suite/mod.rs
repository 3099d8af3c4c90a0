//! Backend-independent contract tests: every function, revert reason and
//! event of Consortium, Registry and Audit through the typed clients. Each
//! suite takes a ledger and five usable accounts, so the same code runs
//! against anvil and the embedded chain.
#![allow(dead_code)]

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use ledgermq_ledger::contracts::{
    deploy_consortium, receipt_events, AuditClient, AuditRecordInput, ConsortiumClient,
    ConsortiumEvents, ContractEvent, Deployment, DeviceStatus, FoundingOrg, ProposalStatus,
    RegistryClient, RegistryEvents,
};
use ledgermq_ledger::{Ledger, LedgerError, LedgerResult, Signer, TxReceipt};

pub const ORGS: [&str; 4] = ["supplier", "manufacturer", "distributor", "retailer"];

pub fn reverted<T: std::fmt::Debug>(r: LedgerResult<T>, reason: &str) {
    match r {
        Err(LedgerError::Reverted(got)) => assert_eq!(got, reason),
        other => panic!("expected revert {reason:?}, got {other:?}"),
    }
}

fn events(d: &Deployment, r: &TxReceipt) -> Vec<ContractEvent> {
    receipt_events(d, r)
}

fn k(b: u8) -> B256 {
    B256::repeat_byte(b)
}

/// Deploys with the four founders administered by keys[0..4].
pub async fn deploy(ledger: &Arc<dyn Ledger>, keys: &[&dyn Signer]) -> Deployment {
    let founders: Vec<FoundingOrg> = ORGS
        .iter()
        .enumerate()
        .map(|(i, id)| FoundingOrg {
            id: id.to_string(),
            name: format!("The {id}"),
            admins: vec![keys[i].address()],
        })
        .collect();
    deploy_consortium(ledger.as_ref(), keys[0], &founders)
        .await
        .expect("deploy")
}

pub async fn consortium_suite(ledger: Arc<dyn Ledger>, keys: &[&dyn Signer]) {
    let (a0, a1, a2, a3, outsider) = (keys[0], keys[1], keys[2], keys[3], keys[4]);
    let bad_founders = [FoundingOrg {
        id: "Bad Id".into(),
        name: "x".into(),
        admins: vec![a0.address()],
    }];
    reverted(
        deploy_consortium(ledger.as_ref(), a0, &bad_founders).await,
        "organisation id may only contain a-z, 0-9, '.', '_' and '-'",
    );
    reverted(
        deploy_consortium(ledger.as_ref(), a0, &[]).await,
        "at least one founding organisation is required",
    );
    let d = deploy(&ledger, keys).await;
    let c = ConsortiumClient::new(ledger.clone(), d.consortium);
    let founded = ledger
        .logs(&ledgermq_ledger::LogFilter {
            addresses: vec![d.consortium],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(founded.len(), 4);
    match ledgermq_ledger::contracts::decode_event(&d, &founded[0]) {
        Some(ContractEvent::Consortium(ConsortiumEvents::OrganisationAdded(e))) => {
            assert_eq!(
                (e.orgId.as_str(), e.name.as_str(), e.admins.clone()),
                ("supplier", "The supplier", vec![a0.address()])
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(c.org_count().await.unwrap(), 4);
    assert_eq!(c.org_id_at(1).await.unwrap(), "manufacturer");
    reverted(c.org_id_at(9).await, "index out of range");
    assert!(c.is_org("retailer").await.unwrap());
    assert!(!c.is_org("customer").await.unwrap());
    assert!(c.is_admin("supplier", a0.address()).await.unwrap());
    assert_eq!(c.org_of_admin(a1.address()).await.unwrap(), "manufacturer");
    assert_eq!(c.org_of_admin(outsider.address()).await.unwrap(), "");
    reverted(c.get_org("customer").await, "unknown organisation customer");
    assert_eq!(c.approvals_needed().await.unwrap(), 3);

    // Proposals: 3 of 4 add the customer.
    reverted(
        c.propose(outsider, "customer", "C", &[outsider.address()], 0)
            .await,
        "caller is not an admin of any organisation",
    );
    reverted(
        c.propose(a0, "supplier", "S", &[outsider.address()], 0)
            .await,
        "organisation supplier already exists",
    );
    reverted(
        c.propose(a0, "customer", "C", &[a1.address()], 0).await,
        "account is already an admin of an organisation",
    );
    reverted(
        c.propose(a0, "customer", "C", &[], 0).await,
        "an organisation needs at least one admin",
    );
    reverted(
        c.propose(a0, "customer", "", &[outsider.address()], 0)
            .await,
        "organisation name must be 1-64 bytes",
    );
    reverted(
        c.propose(a0, "customer", "C", &[Address::ZERO], 0).await,
        "admin account is the zero address",
    );
    reverted(
        c.propose(
            a0,
            "customer",
            "C",
            &[outsider.address(), outsider.address()],
            0,
        )
        .await,
        "duplicate admin account",
    );
    reverted(
        c.propose(a0, "customer", "C", &[outsider.address()], 91 * 86400)
            .await,
        "proposal ttl exceeds MAX_PROPOSAL_TTL",
    );
    let (pid, r) = c
        .propose(a0, "customer", "Customer", &[outsider.address()], 0)
        .await
        .unwrap();
    let ev = events(&d, &r);
    assert!(
        matches!(&ev[0], ContractEvent::Consortium(ConsortiumEvents::OrganisationProposed(e))
        if e.orgId == "customer" && e.proposer == a0.address() && e.proposerOrg == "supplier" && e.admins == vec![outsider.address()])
    );
    assert!(
        matches!(&ev[1], ContractEvent::Consortium(ConsortiumEvents::ProposalApproved(e))
        if e.approvals == 1 && e.needed == 3 && e.approverOrg == "supplier")
    );
    reverted(
        c.approve(a0, pid).await,
        "organisation supplier has already approved this proposal",
    );
    reverted(
        c.approve(outsider, pid).await,
        "caller is not an admin of any organisation",
    );
    reverted(c.approve(a1, pid + U256::from(7)).await, "unknown proposal");
    reverted(
        c.cancel(a1, pid).await,
        "only the proposer may cancel a proposal",
    );
    c.approve(a1, pid).await.unwrap();
    assert!(c.has_approved(pid, "manufacturer").await.unwrap());
    assert!(!c.has_approved(pid, "retailer").await.unwrap());
    let r = c.approve(a2, pid).await.unwrap();
    let ev = events(&d, &r);
    assert!(ev.iter().any(|e| matches!(e, ContractEvent::Consortium(ConsortiumEvents::ProposalExecuted(x)) if x.orgId == "customer")));
    assert!(ev.iter().any(|e| matches!(e, ContractEvent::Consortium(ConsortiumEvents::OrganisationAdded(x)) if x.orgId == "customer")));
    reverted(c.approve(a3, pid).await, "proposal is not pending");
    let p = c.get_proposal(pid).await.unwrap();
    assert_eq!(
        (p.status, p.approvals, p.org_id.as_str()),
        (ProposalStatus::Executed, 3, "customer")
    );
    assert_eq!(c.org_count().await.unwrap(), 5);
    reverted(c.get_proposal(U256::from(99)).await, "unknown proposal");

    // Cancel.
    let newcomer = Address::repeat_byte(0x77);
    let (pid2, _) = c
        .propose(a1, "auditor", "Auditor", &[newcomer], 3600)
        .await
        .unwrap();
    let r = c.cancel(a1, pid2).await.unwrap();
    assert!(
        matches!(&events(&d, &r)[0], ContractEvent::Consortium(ConsortiumEvents::ProposalCancelled(e)) if e.by == a1.address())
    );
    assert_eq!(
        c.get_proposal(pid2).await.unwrap().status,
        ProposalStatus::Cancelled
    );
    reverted(c.cancel(a1, pid2).await, "proposal is not pending");
    assert_eq!(c.list_proposals().await.unwrap().len(), 2);

    // Admins.
    let extra = Address::repeat_byte(0x55);
    reverted(
        c.add_admin(a1, "supplier", extra).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        c.add_admin(a0, "nowhere", extra).await,
        "unknown organisation nowhere",
    );
    reverted(
        c.add_admin(a0, "supplier", a1.address()).await,
        "account is already an admin of an organisation",
    );
    reverted(
        c.add_admin(a0, "supplier", Address::ZERO).await,
        "admin account is the zero address",
    );
    let r = c.add_admin(a0, "supplier", extra).await.unwrap();
    assert!(
        matches!(&events(&d, &r)[0], ContractEvent::Consortium(ConsortiumEvents::AdminAdded(e)) if e.account == extra && e.orgId == "supplier")
    );
    reverted(
        c.remove_admin(a0, "supplier", a1.address()).await,
        "account is not an admin of this organisation",
    );
    let r = c.remove_admin(a0, "supplier", extra).await.unwrap();
    assert!(
        matches!(&events(&d, &r)[0], ContractEvent::Consortium(ConsortiumEvents::AdminRemoved(e)) if e.account == extra && e.by == a0.address())
    );
    reverted(
        c.remove_admin(a0, "supplier", a0.address()).await,
        "cannot remove the last admin of an organisation",
    );

    // Brokers.
    let b1 = Address::repeat_byte(0xb1);
    let b2 = Address::repeat_byte(0xb2);
    reverted(
        c.add_broker(a0, "supplier", b1, B256::ZERO, k(2)).await,
        "broker keys must not be zero",
    );
    reverted(
        c.add_broker(a0, "supplier", Address::ZERO, k(1), k(2))
            .await,
        "broker account is the zero address",
    );
    reverted(
        c.add_broker(a1, "supplier", b1, k(1), k(2)).await,
        "caller is not an admin of organisation supplier",
    );
    let r = c.add_broker(a0, "supplier", b1, k(1), k(2)).await.unwrap();
    assert!(
        matches!(&events(&d, &r)[0], ContractEvent::Consortium(ConsortiumEvents::BrokerAdded(e))
        if e.account == b1 && e.signingKey == k(1) && e.agreementKey == k(2))
    );
    reverted(
        c.add_broker(a1, "manufacturer", b1, k(1), k(2)).await,
        "account is already a registered broker",
    );
    assert!(c.is_broker(b1).await.unwrap());
    assert_eq!(c.broker_count().await.unwrap(), 1);
    assert_eq!(c.broker_at(0).await.unwrap(), b1);
    let info = c.get_broker(b1).await.unwrap();
    assert_eq!((info.org.as_str(), info.signing_key), ("supplier", k(1)));
    assert_eq!(c.get_org("supplier").await.unwrap().brokers, vec![b1]);
    reverted(
        c.replace_broker(a1, b1, b2, k(3), k(4)).await,
        "caller is not an admin of organisation supplier",
    );
    let r = c.replace_broker(a0, b1, b2, k(3), k(4)).await.unwrap();
    let ev = events(&d, &r);
    assert!(
        matches!(&ev[0], ContractEvent::Consortium(ConsortiumEvents::BrokerRemoved(e)) if e.account == b1)
    );
    assert!(
        matches!(&ev[1], ContractEvent::Consortium(ConsortiumEvents::BrokerAdded(e)) if e.account == b2)
    );
    reverted(
        c.remove_broker(a0, b1).await,
        "account is not a registered broker",
    );
    let r = c.remove_broker(a0, b2).await.unwrap();
    assert!(
        matches!(&events(&d, &r)[0], ContractEvent::Consortium(ConsortiumEvents::BrokerRemoved(e)) if e.by == a0.address())
    );
    assert!(c.list_brokers().await.unwrap().is_empty());
    assert_eq!(c.list_orgs().await.unwrap().len(), 5);
}

pub async fn registry_suite(ledger: Arc<dyn Ledger>, keys: &[&dyn Signer], broker: &dyn Signer) {
    let (a0, a1) = (keys[0], keys[1]);
    let d = deploy(&ledger, keys).await;
    let c = ConsortiumClient::new(ledger.clone(), d.consortium);
    let r = RegistryClient::new(ledger.clone(), d.registry);
    assert_eq!(r.consortium().await.unwrap(), d.consortium);

    // Devices.
    reverted(
        r.register_device(a1, "supplier", "s1", k(1), k(2)).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        r.register_device(a0, "supplier", "", k(1), k(2)).await,
        "device id must be 1-128 bytes",
    );
    reverted(
        r.register_device(a0, "supplier", "has space", k(1), k(2))
            .await,
        "device id must be printable ASCII without spaces",
    );
    reverted(
        r.register_device(a0, "supplier", "s1", k(0), k(2)).await,
        "device keys must not be zero",
    );
    let rc = r
        .register_device(a0, "supplier", "s1", k(1), k(2))
        .await
        .unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::DeviceRegistered(e))
        if e.deviceId == "s1" && e.org == "supplier" && e.signingKey == k(1) && e.agreementKey == k(2) && e.registeredAt > 0)
    );
    reverted(
        r.register_device(a0, "supplier", "s1", k(1), k(2)).await,
        "device s1 is already registered",
    );
    let dev = r.get_device("s1").await.unwrap();
    assert_eq!(
        (dev.org.as_str(), dev.status),
        ("supplier", DeviceStatus::Active)
    );
    reverted(
        r.update_device_keys(a1, "s1", k(3), k(4)).await,
        "caller is not an admin of organisation supplier",
    );
    let rc = r.update_device_keys(a0, "s1", k(3), k(4)).await.unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::DeviceKeysUpdated(e)) if e.signingKey == k(3))
    );
    reverted(
        r.update_device_keys(a0, "nope", k(3), k(4)).await,
        "unknown device nope",
    );
    r.register_device(a1, "manufacturer", "m1", k(5), k(6))
        .await
        .unwrap();
    assert_eq!(r.device_count().await.unwrap(), 2);
    assert_eq!(r.device_id_at(1).await.unwrap(), "m1");
    reverted(r.device_id_at(2).await, "index out of range");

    // Topics and the cross-organisation rule.
    reverted(
        r.create_topic(a0, "supplier", "$SYS/x", false, false, true)
            .await,
        "topics starting with '$' are reserved",
    );
    reverted(
        r.create_topic(a0, "supplier", "a/b+", false, false, true)
            .await,
        "wildcard must occupy a whole topic level",
    );
    reverted(
        r.create_topic(a0, "supplier", "a/#/b", false, false, true)
            .await,
        "'#' must be the last topic level",
    );
    reverted(
        r.create_topic(a0, "supplier", "", false, false, true).await,
        "topic must be 1-256 bytes",
    );
    reverted(
        r.create_topic(a0, "supplier", "a\0b", false, false, true)
            .await,
        "topic must not contain NUL",
    );
    reverted(
        r.create_topic(a1, "supplier", "t/raw", false, false, true)
            .await,
        "caller is not an admin of organisation supplier",
    );
    let rc = r
        .create_topic(a0, "supplier", "t/raw", true, false, false)
        .await
        .unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::TopicCreated(e))
        if e.topic == "t/raw" && e.org == "supplier" && e.sensitive && !e.publishOpen && !e.subscribeOpen)
    );
    reverted(
        r.create_topic(a0, "supplier", "t/raw", false, false, true)
            .await,
        "topic t/raw already exists",
    );
    reverted(
        r.grant_right(a1, "m1", "t/raw", false, true).await,
        "topic t/raw is owned by organisation supplier and not open for subscribe",
    );
    reverted(
        r.grant_right(a1, "m1", "t/raw", true, false).await,
        "topic t/raw is owned by organisation supplier and not open for publish",
    );
    reverted(
        r.set_topic_flags(a1, "t/raw", false, false, true).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        r.set_topic_flags(a0, "t/none", false, false, true).await,
        "unknown topic t/none",
    );
    let rc = r
        .set_topic_flags(a0, "t/raw", true, false, true)
        .await
        .unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::TopicUpdated(e)) if e.subscribeOpen)
    );
    let rc = r.grant_right(a1, "m1", "t/raw", false, true).await.unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::RightGranted(e))
        if e.deviceId == "m1" && e.topic == "t/raw" && !e.publish && e.subscribe)
    );
    reverted(
        r.grant_right(a0, "s1", "t/raw", false, false).await,
        "grant at least one of publish and subscribe (use revokeRight)",
    );
    reverted(
        r.grant_right(a1, "s1", "t/raw", true, false).await,
        "caller is not an admin of organisation supplier",
    );
    // Implicit topic creation.
    let rc = r.grant_right(a0, "s1", "t/s1", true, false).await.unwrap();
    let ev = events(&d, &rc);
    assert!(
        matches!(&ev[0], ContractEvent::Registry(RegistryEvents::TopicCreated(e)) if e.org == "supplier" && e.subscribeOpen && !e.publishOpen)
    );
    assert!(
        matches!(&ev[1], ContractEvent::Registry(RegistryEvents::RightGranted(e)) if e.publish)
    );
    assert_eq!(r.get_right("s1", "t/s1").await.unwrap(), (true, false));
    assert_eq!(r.get_right("s1", "t/other").await.unwrap(), (false, false));
    assert_eq!(r.right_count("s1").await.unwrap(), 1);
    assert_eq!(r.right_at("s1", 0).await.unwrap().topic, "t/s1");
    assert!(r.is_topic("t/s1").await.unwrap());
    let t = r.get_topic("t/raw").await.unwrap();
    assert!(t.sensitive && t.subscribe_open && !t.publish_open);
    assert_eq!(r.topic_count().await.unwrap(), 2);
    assert_eq!(r.topic_at(0).await.unwrap(), "t/raw");
    assert_eq!(r.list_topics().await.unwrap().len(), 2);
    // Owner of the topic may revoke another org's device right.
    reverted(
        r.revoke_right(keys[2], "m1", "t/raw").await,
        "caller is not an admin of organisation manufacturer or supplier",
    );
    let rc = r.revoke_right(a0, "m1", "t/raw").await.unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::RightRevoked(e)) if e.by == a0.address() && e.topic == "t/raw")
    );
    reverted(
        r.revoke_right(a0, "m1", "t/raw").await,
        "device m1 has no right on topic t/raw",
    );

    // OTP envelopes.
    c.add_broker(a0, "supplier", broker.address(), k(8), k(9))
        .await
        .unwrap();
    reverted(
        r.set_otp_envelope(a0, "s1", Address::repeat_byte(3), b"env")
            .await,
        "account is not a registered broker",
    );
    reverted(
        r.set_otp_envelope(a0, "s1", broker.address(), b"").await,
        "envelope must be 1-1024 bytes",
    );
    reverted(
        r.set_otp_envelope(a0, "s1", broker.address(), &[7u8; 1025])
            .await,
        "envelope must be 1-1024 bytes",
    );
    reverted(
        r.set_otp_envelope(a1, "s1", broker.address(), b"env").await,
        "caller is not an admin of organisation supplier",
    );
    let rc = r
        .set_otp_envelope(a0, "s1", broker.address(), b"sealed")
        .await
        .unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::OtpEnvelopeSet(e))
        if e.broker == broker.address() && e.envelope.as_ref() == b"sealed")
    );
    assert_eq!(
        r.otp_envelope_brokers("s1").await.unwrap(),
        vec![broker.address()]
    );
    assert_eq!(
        r.otp_envelope("s1", broker.address())
            .await
            .unwrap()
            .as_ref(),
        b"sealed"
    );

    // Key epochs.
    reverted(
        r.commit_key_epoch(a1, "t/s1", 1, k(1)).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        r.commit_key_epoch(a0, "t/s1", 0, k(1)).await,
        "key epoch must be greater than the latest one",
    );
    reverted(
        r.commit_key_epoch(a0, "t/s1", 1, B256::ZERO).await,
        "commitment must not be zero",
    );
    let rc = r.commit_key_epoch(a0, "t/s1", 1, k(1)).await.unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::KeyEpochCommitted(e)) if e.epoch == 1 && e.commitment == k(1))
    );
    r.commit_key_epoch(a0, "t/s1", 5, k(5)).await.unwrap();
    reverted(
        r.commit_key_epoch(a0, "t/s1", 5, k(6)).await,
        "key epoch must be greater than the latest one",
    );
    assert_eq!(r.key_epoch_count("t/s1").await.unwrap(), 2);
    assert_eq!(r.key_epoch_at("t/s1", 0).await.unwrap().epoch, 1);
    assert_eq!(r.latest_key_epoch("t/s1").await.unwrap(), (5, k(5)));

    // Blacklist: a broker of any org, or an admin of the device's org.
    let far = u64::MAX;
    reverted(
        r.blacklist_device(keys[2], "s1", far, 1).await,
        "caller is neither a broker node nor an admin of organisation supplier",
    );
    reverted(
        r.blacklist_device(broker, "s1", 1, 1).await,
        "blacklist end must be in the future",
    );
    reverted(
        r.lift_blacklist(a0, "s1").await,
        "device is not blacklisted",
    );
    let rc = r.blacklist_device(broker, "s1", far, 1).await.unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::Blacklisted(e))
        if e.until == far && e.reason == 1 && e.by == broker.address())
    );
    reverted(
        r.blacklist_device(broker, "s1", far - 1, 1).await,
        "a broker may not shorten an active blacklist entry",
    );
    assert!(r.is_blacklisted("s1").await.unwrap());
    let b = r.get_blacklist("s1").await.unwrap();
    assert!(b.active && b.reason == 1 && b.by == broker.address());
    reverted(
        r.lift_blacklist(a1, "s1").await,
        "caller is not an admin of organisation supplier",
    );
    let rc = r.lift_blacklist(a0, "s1").await.unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::BlacklistLifted(e)) if e.deviceId == "s1")
    );
    assert!(!r.is_blacklisted("s1").await.unwrap());

    // Revocation is final.
    reverted(
        r.revoke_device(a1, "s1").await,
        "caller is not an admin of organisation supplier",
    );
    let rc = r.revoke_device(a0, "s1").await.unwrap();
    assert!(
        matches!(&events(&d, &rc)[0], ContractEvent::Registry(RegistryEvents::DeviceRevoked(e)) if e.org == "supplier")
    );
    reverted(r.revoke_device(a0, "s1").await, "device s1 is revoked");
    reverted(
        r.grant_right(a0, "s1", "t/s1", true, true).await,
        "device s1 is revoked",
    );
    reverted(
        r.set_otp_envelope(a0, "s1", broker.address(), b"x").await,
        "device s1 is revoked",
    );
    reverted(
        r.register_device(a0, "supplier", "s1", k(1), k(2)).await,
        "device s1 is already registered",
    );
    assert_eq!(
        r.get_device("s1").await.unwrap().status,
        DeviceStatus::Revoked
    );
    assert_eq!(r.list_devices().await.unwrap().len(), 2);
    assert_eq!(r.list_rights("s1").await.unwrap().len(), 1);
}

pub async fn audit_suite(ledger: Arc<dyn Ledger>, keys: &[&dyn Signer], broker: &dyn Signer) {
    let a0 = keys[0];
    let d = deploy(&ledger, keys).await;
    ConsortiumClient::new(ledger.clone(), d.consortium)
        .add_broker(a0, "supplier", broker.address(), k(1), k(2))
        .await
        .unwrap();
    let a = AuditClient::new(ledger.clone(), d.audit);
    reverted(
        a.record(a0, 1, "dev", "t", 5, k(9)).await,
        "caller is not a registered broker node",
    );
    reverted(
        a.record(broker, 1, &"x".repeat(257), "t", 5, k(9)).await,
        "record subject exceeds 256 bytes",
    );
    reverted(
        a.record(broker, 1, "dev", &"x".repeat(257), 5, k(9)).await,
        "record topic exceeds 256 bytes",
    );
    let (i, rc) = a.record(broker, 3, "dev", "t/a", 5, k(9)).await.unwrap();
    assert_eq!(i, 0);
    match &events(&d, &rc)[0] {
        ContractEvent::Audit(ledgermq_ledger::contracts::AuditEvents::AuditRecorded(e)) => {
            assert_eq!(
                (
                    e.kind,
                    e.subject.as_str(),
                    e.topic.as_str(),
                    e.time,
                    e.digest,
                    e.broker
                ),
                (3, "dev", "t/a", 5, k(9), broker.address())
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let rec = AuditRecordInput {
        kind: 1,
        subject: "d2".into(),
        topic: "t/b".into(),
        time: 6,
        digest: k(7),
    };
    reverted(
        a.record_batch(broker, vec![]).await,
        "batch must hold 1-64 records",
    );
    reverted(
        a.record_batch(broker, vec![rec.clone(); 65]).await,
        "batch must hold 1-64 records",
    );
    let (first, rc) = a
        .record_batch(broker, vec![rec.clone(), rec])
        .await
        .unwrap();
    assert_eq!(first, 1);
    assert_eq!(events(&d, &rc).len(), 2);
    assert_eq!(a.record_count().await.unwrap(), 3);
    let got = a.get_record(2).await.unwrap();
    assert_eq!((got.subject.as_str(), got.broker), ("d2", broker.address()));
    reverted(
        a.anchor(a0, k(1), 1, 0, 0).await,
        "caller is not a registered broker node",
    );
    reverted(
        a.anchor(broker, B256::ZERO, 1, 0, 0).await,
        "root must not be zero",
    );
    reverted(
        a.anchor(broker, k(1), 0, 0, 0).await,
        "leaf count must be positive",
    );
    reverted(
        a.anchor(broker, k(1), 1, 5, 4).await,
        "last sequence number is below the first",
    );
    let (ai, rc) = a.anchor(broker, k(1), 10, 1, 10).await.unwrap();
    assert_eq!(ai, 0);
    match &events(&d, &rc)[0] {
        ContractEvent::Audit(ledgermq_ledger::contracts::AuditEvents::Anchored(e)) => {
            assert_eq!(
                (e.root, e.leafCount, e.firstSeq, e.lastSeq, e.broker),
                (k(1), 10, 1, 10, broker.address())
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    reverted(
        a.anchor(broker, k(1), 10, 1, 10).await,
        "root already anchored",
    );
    assert_eq!(a.find_anchor(k(1)).await.unwrap(), Some(0));
    assert_eq!(a.find_anchor(k(2)).await.unwrap(), None);
    assert_eq!(a.anchor_count().await.unwrap(), 1);
    assert_eq!(a.get_anchor(0).await.unwrap().leaf_count, 10);
    assert_eq!(a.anchor_count_of(broker.address()).await.unwrap(), 1);
    assert_eq!(a.anchor_index_of(broker.address(), 0).await.unwrap(), 0);
    reverted(a.get_anchor(5).await, "index out of range");
}
