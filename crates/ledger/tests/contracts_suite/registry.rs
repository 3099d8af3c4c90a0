//! Registry: devices, topics, rights and the cross-organisation rule, OTP
//! envelopes, blacklist.

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolConstructor;
use ledgermq_ledger::contracts::bindings::Registry as R;
use ledgermq_ledger::contracts::{creation_code, ContractName, DeviceStatus, RegistryEvents};
use ledgermq_ledger::Signer;

use super::{address, k, key_of, reverted, Network};

/// Registers a fresh device of `ORGS[org]` with keys `k(1)`, `k(2)`.
async fn device(net: &Network, org: usize) -> String {
    let id = net.unique("dev");
    net.registry
        .register_device(net.admin(org), super::ORGS[org], &id, k(1), k(2))
        .await
        .unwrap();
    id
}

/// Creates a fresh topic of `ORGS[org]` with the given flags.
async fn topic(net: &Network, org: usize, publish_open: bool, subscribe_open: bool) -> String {
    let t = format!("{}/data", net.unique("t"));
    net.registry
        .create_topic(
            net.admin(org),
            super::ORGS[org],
            &t,
            false,
            publish_open,
            subscribe_open,
        )
        .await
        .unwrap();
    t
}

// ------------------------------------------------------------- constructor

pub async fn constructor_refuses_a_consortium_address_without_code(net: &Network) {
    let code = creation_code(ContractName::Registry).unwrap();
    let args = R::constructorCall {
        consortium_: address(),
    };
    reverted(
        net.deploy_raw(code, args.abi_encode()).await,
        "consortium address has no code",
    );
}

pub async fn public_constants_and_consortium_address(net: &Network) {
    let at = net.deployment.registry;
    assert_eq!(net.view(at, R::MAX_DEVICE_IDCall {}).await, U256::from(128));
    assert_eq!(net.view(at, R::MAX_TOPICCall {}).await, U256::from(256));
    assert_eq!(net.view(at, R::MAX_ENVELOPECall {}).await, U256::from(1024));
    assert_eq!(
        net.registry.consortium().await.unwrap(),
        net.deployment.consortium
    );
}

// ----------------------------------------------------------------- devices

pub async fn register_device_emits_and_stores_the_device(net: &Network) {
    let r = &net.registry;
    let id = net.unique("dev");
    let (sk, ak) = (net.unique_b256(), net.unique_b256());
    let rc = r
        .register_device(net.admin(1), "manufacturer", &id, sk, ak)
        .await
        .unwrap();
    let at = net
        .ledger
        .block(rc.block_number)
        .await
        .unwrap()
        .unwrap()
        .timestamp;
    let ev = net.registry_events(&rc);
    let [RegistryEvents::DeviceRegistered(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.deviceKey, key_of(&id));
    assert_eq!(
        (e.deviceId.as_str(), e.org.as_str()),
        (id.as_str(), "manufacturer")
    );
    assert_eq!((e.signingKey, e.agreementKey, e.registeredAt), (sk, ak, at));
    let d = r.get_device(&id).await.unwrap();
    assert_eq!(
        (d.org.as_str(), d.signing_key, d.agreement_key),
        ("manufacturer", sk, ak)
    );
    assert_eq!((d.registered_at, d.status), (at, DeviceStatus::Active));
    // Limits: 128 printable bytes, '!' and '~' included.
    let longest = format!("!{}", net.unique("d"));
    let longest = format!("{longest:~<128}");
    assert_eq!(longest.len(), 128);
    r.register_device(net.admin(1), "manufacturer", &longest, sk, ak)
        .await
        .unwrap();
    assert_eq!(r.get_device(&longest).await.unwrap().org, "manufacturer");
}

pub async fn register_device_validates_caller_id_and_keys(net: &Network) {
    let r = &net.registry;
    let a0 = net.admin(0);
    let id = net.unique("dev");
    reverted(
        r.register_device(net.admin(1), "supplier", &id, k(1), k(2))
            .await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        r.register_device(a0, "nowhere", &id, k(1), k(2)).await,
        "caller is not an admin of organisation nowhere",
    );
    for bad_len in [String::new(), "x".repeat(129)] {
        reverted(
            r.register_device(a0, "supplier", &bad_len, k(1), k(2))
                .await,
            "device id must be 1-128 bytes",
        );
    }
    for bad in ["has space", "tab\there", "del\u{7f}", "caf\u{e9}"] {
        reverted(
            r.register_device(a0, "supplier", bad, k(1), k(2)).await,
            "device id must be printable ASCII without spaces",
        );
    }
    for (sk, ak) in [(k(0), k(2)), (k(1), k(0))] {
        reverted(
            r.register_device(a0, "supplier", &id, sk, ak).await,
            "device keys must not be zero",
        );
    }
    r.register_device(a0, "supplier", &id, k(1), k(2))
        .await
        .unwrap();
    // Unique network-wide: another organisation cannot take the id either.
    reverted(
        r.register_device(net.admin(1), "manufacturer", &id, k(1), k(2))
            .await,
        &format!("device {id} is already registered"),
    );
}

pub async fn device_views_list_devices_and_refuse_unknown_ones(net: &Network) {
    let r = &net.registry;
    let id = device(net, 2).await;
    let count = r.device_count().await.unwrap();
    let mut found = false;
    for i in 0..count {
        found |= r.device_id_at(i).await.unwrap() == id;
    }
    assert!(found, "deviceIdAt lists {id}");
    assert!(r
        .list_devices()
        .await
        .unwrap()
        .iter()
        .any(|d| d.id == id && d.org == "distributor"));
    reverted(r.device_id_at(u64::MAX).await, "index out of range");
    reverted(
        r.get_device("never-registered").await,
        "unknown device never-registered",
    );
}

pub async fn update_device_keys_emits_and_replaces_the_keys(net: &Network) {
    let r = &net.registry;
    let id = device(net, 0).await;
    let rc = r
        .update_device_keys(net.admin(0), &id, k(3), k(4))
        .await
        .unwrap();
    let ev = net.registry_events(&rc);
    let [RegistryEvents::DeviceKeysUpdated(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.deviceKey, key_of(&id));
    assert_eq!(
        (e.deviceId.as_str(), e.org.as_str()),
        (id.as_str(), "supplier")
    );
    assert_eq!((e.signingKey, e.agreementKey), (k(3), k(4)));
    let d = r.get_device(&id).await.unwrap();
    assert_eq!(
        (d.signing_key, d.agreement_key, d.status),
        (k(3), k(4), DeviceStatus::Active)
    );
}

pub async fn update_device_keys_refuses_strangers_unknown_devices_and_zero_keys(net: &Network) {
    let r = &net.registry;
    let id = device(net, 0).await;
    reverted(
        r.update_device_keys(net.admin(1), &id, k(3), k(4)).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        r.update_device_keys(net.admin(0), "ghost", k(3), k(4))
            .await,
        "unknown device ghost",
    );
    reverted(
        r.update_device_keys(net.admin(0), &id, k(0), k(4)).await,
        "device keys must not be zero",
    );
    reverted(
        r.update_device_keys(net.admin(0), &id, k(3), k(0)).await,
        "device keys must not be zero",
    );
    assert_eq!(r.get_device(&id).await.unwrap().signing_key, k(1));
}

pub async fn revoke_device_is_final_and_voids_later_changes(net: &Network) {
    let r = &net.registry;
    let a0 = net.admin(0);
    let id = device(net, 0).await;
    let t = format!("{}/x", net.unique("t"));
    r.grant_right(a0, &id, &t, true, true).await.unwrap();
    r.set_otp_envelope(a0, &id, net.broker.address(), b"sealed")
        .await
        .unwrap();
    reverted(
        r.revoke_device(net.admin(1), &id).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(r.revoke_device(a0, "ghost").await, "unknown device ghost");
    let rc = r.revoke_device(a0, &id).await.unwrap();
    let ev = net.registry_events(&rc);
    let [RegistryEvents::DeviceRevoked(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.deviceKey, key_of(&id));
    assert_eq!(
        (e.deviceId.as_str(), e.org.as_str(), e.by),
        (id.as_str(), "supplier", a0.address())
    );
    assert_eq!(
        r.get_device(&id).await.unwrap().status,
        DeviceStatus::Revoked
    );
    let revoked = format!("device {id} is revoked");
    reverted(r.revoke_device(a0, &id).await, &revoked);
    reverted(r.update_device_keys(a0, &id, k(3), k(4)).await, &revoked);
    reverted(r.grant_right(a0, &id, &t, true, false).await, &revoked);
    reverted(
        r.set_otp_envelope(a0, &id, net.broker.address(), b"x")
            .await,
        &revoked,
    );
    reverted(
        r.register_device(a0, "supplier", &id, k(1), k(2)).await,
        &format!("device {id} is already registered"),
    );
    // Rights and envelopes stay readable (the broker treats them as void).
    assert_eq!(r.get_right(&id, &t).await.unwrap(), (true, true));
    assert_eq!(
        r.otp_envelope(&id, net.broker.address())
            .await
            .unwrap()
            .as_ref(),
        b"sealed"
    );
    // Revoking the right itself is still possible.
    r.revoke_right(a0, &id, &t).await.unwrap();
}

// ------------------------------------------------------------------ topics

pub async fn create_topic_emits_and_stores_the_flags(net: &Network) {
    let r = &net.registry;
    for (sensitive, publish_open, subscribe_open) in [(true, false, false), (false, true, true)] {
        let t = format!("{}/+/#", net.unique("t"));
        let rc = r
            .create_topic(
                net.admin(3),
                "retailer",
                &t,
                sensitive,
                publish_open,
                subscribe_open,
            )
            .await
            .unwrap();
        let at = net
            .ledger
            .block(rc.block_number)
            .await
            .unwrap()
            .unwrap()
            .timestamp;
        let ev = net.registry_events(&rc);
        let [RegistryEvents::TopicCreated(e)] = &ev[..] else {
            panic!("{ev:?}");
        };
        assert_eq!(e.topicKey, key_of(&t));
        assert_eq!((e.topic.as_str(), e.org.as_str()), (t.as_str(), "retailer"));
        assert_eq!(
            (e.sensitive, e.publishOpen, e.subscribeOpen),
            (sensitive, publish_open, subscribe_open)
        );
        let info = r.get_topic(&t).await.unwrap();
        assert_eq!(info.org, "retailer");
        assert_eq!(
            (info.sensitive, info.publish_open, info.subscribe_open),
            (sensitive, publish_open, subscribe_open)
        );
        assert_eq!(info.created_at, at);
        assert!(r.is_topic(&t).await.unwrap());
    }
}

pub async fn create_topic_validates_the_mqtt_topic_syntax(net: &Network) {
    let r = &net.registry;
    let a0 = net.admin(0);
    let cases = [
        (String::new(), "topic must be 1-256 bytes"),
        ("t".repeat(257), "topic must be 1-256 bytes"),
        ("$SYS/x".into(), "topics starting with '$' are reserved"),
        ("a\0b".into(), "topic must not contain NUL"),
        ("a/b+".into(), "wildcard must occupy a whole topic level"),
        ("a/+b".into(), "wildcard must occupy a whole topic level"),
        ("a#".into(), "wildcard must occupy a whole topic level"),
        ("a/#/b".into(), "'#' must be the last topic level"),
        ("#/b".into(), "'#' must be the last topic level"),
    ];
    for (t, reason) in cases {
        reverted(
            r.create_topic(a0, "supplier", &t, false, false, true).await,
            reason,
        );
    }
    // Valid edge cases: whole-level wildcards, a lone '#', '$' after the
    // start, 256 bytes, empty levels.
    let u = net.unique("t");
    let longest = format!("{u}/{}", "l".repeat(255 - u.len()));
    for t in [
        format!("+/{u}/+"),
        format!("{u}/#"),
        format!("{u}/$x"),
        format!("/{u}//"),
        longest,
    ] {
        r.create_topic(a0, "supplier", &t, false, false, true)
            .await
            .unwrap();
        assert!(r.is_topic(&t).await.unwrap(), "{t}");
    }
}

pub async fn create_topic_refuses_non_admins_and_existing_topics(net: &Network) {
    let r = &net.registry;
    let t = format!("{}/x", net.unique("t"));
    reverted(
        r.create_topic(net.admin(1), "supplier", &t, false, false, true)
            .await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        r.create_topic(&net.outsider, "supplier", &t, false, false, true)
            .await,
        "caller is not an admin of organisation supplier",
    );
    r.create_topic(net.admin(0), "supplier", &t, false, false, true)
        .await
        .unwrap();
    // Exact topic strings are unique across organisations.
    reverted(
        r.create_topic(net.admin(1), "manufacturer", &t, false, false, true)
            .await,
        &format!("topic {t} already exists"),
    );
    assert_eq!(r.get_topic(&t).await.unwrap().org, "supplier");
}

pub async fn topic_views_list_topics_and_refuse_unknown_ones(net: &Network) {
    let r = &net.registry;
    let t = topic(net, 1, false, true).await;
    let count = r.topic_count().await.unwrap();
    let mut found = false;
    for i in 0..count {
        found |= r.topic_at(i).await.unwrap() == t;
    }
    assert!(found, "topicAt lists {t}");
    assert!(r
        .list_topics()
        .await
        .unwrap()
        .iter()
        .any(|x| x.topic == t && x.org == "manufacturer"));
    reverted(r.topic_at(u64::MAX).await, "index out of range");
    assert!(!r.is_topic("no/such/topic").await.unwrap());
    reverted(
        r.get_topic("no/such/topic").await,
        "unknown topic no/such/topic",
    );
}

pub async fn set_topic_flags_emits_and_changes_the_flags(net: &Network) {
    let r = &net.registry;
    let t = topic(net, 2, false, false).await;
    let rc = r
        .set_topic_flags(net.admin(2), &t, true, true, false)
        .await
        .unwrap();
    let ev = net.registry_events(&rc);
    let [RegistryEvents::TopicUpdated(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.topicKey, key_of(&t));
    assert_eq!(
        (e.topic.as_str(), e.org.as_str()),
        (t.as_str(), "distributor")
    );
    assert_eq!(
        (e.sensitive, e.publishOpen, e.subscribeOpen),
        (true, true, false)
    );
    let info = r.get_topic(&t).await.unwrap();
    assert_eq!(
        (info.sensitive, info.publish_open, info.subscribe_open),
        (true, true, false)
    );
}

pub async fn set_topic_flags_refuses_unknown_topics_and_other_orgs(net: &Network) {
    let r = &net.registry;
    let t = topic(net, 2, false, false).await;
    reverted(
        r.set_topic_flags(net.admin(0), &t, false, true, true).await,
        "caller is not an admin of organisation distributor",
    );
    reverted(
        r.set_topic_flags(net.admin(0), "t/none", false, true, true)
            .await,
        "unknown topic t/none",
    );
    assert!(!r.get_topic(&t).await.unwrap().publish_open);
}

// ------------------------------------------------------------------ rights

pub async fn grant_right_on_a_missing_topic_creates_it_for_the_devices_org(net: &Network) {
    let r = &net.registry;
    let id = device(net, 1).await;
    let t = format!("{}/+", net.unique("t"));
    let rc = r
        .grant_right(net.admin(1), &id, &t, true, false)
        .await
        .unwrap();
    let ev = net.registry_events(&rc);
    let [RegistryEvents::TopicCreated(created), RegistryEvents::RightGranted(g)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(
        (created.topicKey, created.org.as_str()),
        (key_of(&t), "manufacturer")
    );
    assert_eq!(
        (
            created.sensitive,
            created.publishOpen,
            created.subscribeOpen
        ),
        (false, false, true)
    );
    assert_eq!((g.deviceKey, g.topicKey), (key_of(&id), key_of(&t)));
    assert_eq!(
        (g.deviceId.as_str(), g.topic.as_str()),
        (id.as_str(), t.as_str())
    );
    assert_eq!((g.publish, g.subscribe), (true, false));
    let info = r.get_topic(&t).await.unwrap();
    assert_eq!(
        (info.org.as_str(), info.subscribe_open, info.publish_open),
        ("manufacturer", true, false)
    );
    assert_eq!(r.get_right(&id, &t).await.unwrap(), (true, false));
    // The implicit topic is checked like a created one.
    reverted(
        r.grant_right(net.admin(1), &id, "bad+/x", true, false)
            .await,
        "wildcard must occupy a whole topic level",
    );
    reverted(
        r.grant_right(net.admin(1), &id, "$SYS/x", false, true)
            .await,
        "topics starting with '$' are reserved",
    );
}

pub async fn grant_right_sets_exactly_the_bits_given(net: &Network) {
    let r = &net.registry;
    let a2 = net.admin(2);
    let id = device(net, 2).await;
    let (t1, t2) = (
        topic(net, 2, false, false).await,
        topic(net, 2, false, false).await,
    );
    r.grant_right(a2, &id, &t1, true, true).await.unwrap();
    let rc = r.grant_right(a2, &id, &t1, false, true).await.unwrap();
    let ev = net.registry_events(&rc);
    assert!(matches!(&ev[..], [RegistryEvents::RightGranted(g)] if !g.publish && g.subscribe));
    assert_eq!(r.get_right(&id, &t1).await.unwrap(), (false, true));
    r.grant_right(a2, &id, &t2, true, false).await.unwrap();
    assert_eq!(
        r.right_count(&id).await.unwrap(),
        2,
        "re-granting does not add a row"
    );
    let first = r.right_at(&id, 0).await.unwrap();
    assert_eq!(
        (first.topic.as_str(), first.publish, first.subscribe),
        (t1.as_str(), false, true)
    );
    let second = r.right_at(&id, 1).await.unwrap();
    assert_eq!(
        (second.topic.as_str(), second.publish, second.subscribe),
        (t2.as_str(), true, false)
    );
    reverted(r.right_at(&id, 2).await, "index out of range");
    assert_eq!(r.list_rights(&id).await.unwrap(), vec![first, second]);
    assert_eq!(
        r.get_right(&id, "not/granted").await.unwrap(),
        (false, false)
    );
}

pub async fn grant_right_refuses_no_bits_strangers_and_revoked_devices(net: &Network) {
    let r = &net.registry;
    let id = device(net, 0).await;
    let t = topic(net, 0, false, true).await;
    reverted(
        r.grant_right(net.admin(0), &id, &t, false, false).await,
        "grant at least one of publish and subscribe (use revokeRight)",
    );
    reverted(
        r.grant_right(net.admin(1), &id, &t, true, false).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        r.grant_right(net.admin(0), "ghost", &t, true, false).await,
        "unknown device ghost",
    );
    assert_eq!(r.right_count(&id).await.unwrap(), 0);
}

pub async fn cross_org_publish_needs_publish_open_and_subscribe_needs_subscribe_open(
    net: &Network,
) {
    let r = &net.registry;
    let a1 = net.admin(1);
    let m = device(net, 1).await;
    let closed = topic(net, 0, false, false).await;
    let not_published =
        format!("topic {closed} is owned by organisation supplier and not open for publish");
    let not_subscribed =
        format!("topic {closed} is owned by organisation supplier and not open for subscribe");
    reverted(
        r.grant_right(a1, &m, &closed, true, false).await,
        &not_published,
    );
    reverted(
        r.grant_right(a1, &m, &closed, false, true).await,
        &not_subscribed,
    );
    // Implicitly created topics are open for subscribe, closed for publish.
    let s = device(net, 0).await;
    let implicit = format!("{}/y", net.unique("t"));
    r.grant_right(net.admin(0), &s, &implicit, true, false)
        .await
        .unwrap();
    r.grant_right(a1, &m, &implicit, false, true).await.unwrap();
    reverted(
        r.grant_right(a1, &m, &implicit, true, true).await,
        &format!("topic {implicit} is owned by organisation supplier and not open for publish"),
    );
    // The owner opens publish; closing again stops new grants but keeps old ones.
    r.set_topic_flags(net.admin(0), &closed, false, true, false)
        .await
        .unwrap();
    r.grant_right(a1, &m, &closed, true, false).await.unwrap();
    reverted(
        r.grant_right(a1, &m, &closed, true, true).await,
        &not_subscribed,
    );
    r.set_topic_flags(net.admin(0), &closed, false, false, false)
        .await
        .unwrap();
    assert_eq!(r.get_right(&m, &closed).await.unwrap(), (true, false));
    reverted(
        r.grant_right(a1, &m, &closed, true, false).await,
        &not_published,
    );
    // The owner's own devices are never restricted by the flags.
    r.grant_right(net.admin(0), &s, &closed, true, true)
        .await
        .unwrap();
}

pub async fn revoke_right_by_device_or_topic_owner_emits_and_removes(net: &Network) {
    let r = &net.registry;
    let (a0, a1) = (net.admin(0), net.admin(1));
    let m = device(net, 1).await;
    let (t1, t2) = (
        topic(net, 0, true, true).await,
        topic(net, 0, true, true).await,
    );
    r.grant_right(a1, &m, &t1, true, true).await.unwrap();
    r.grant_right(a1, &m, &t2, false, true).await.unwrap();
    // The topic's owner revokes another organisation's device's right.
    let rc = r.revoke_right(a0, &m, &t1).await.unwrap();
    let ev = net.registry_events(&rc);
    let [RegistryEvents::RightRevoked(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!((e.deviceKey, e.topicKey), (key_of(&m), key_of(&t1)));
    assert_eq!(
        (e.deviceId.as_str(), e.topic.as_str(), e.by),
        (m.as_str(), t1.as_str(), a0.address())
    );
    assert_eq!(r.get_right(&m, &t1).await.unwrap(), (false, false));
    assert_eq!(r.right_count(&m).await.unwrap(), 1);
    assert_eq!(
        r.right_at(&m, 0).await.unwrap().topic,
        t2,
        "the last row moved into the gap"
    );
    // The device's own admin revokes too.
    let rc = r.revoke_right(a1, &m, &t2).await.unwrap();
    assert!(
        matches!(&net.registry_events(&rc)[..], [RegistryEvents::RightRevoked(e)] if e.by == a1.address())
    );
    assert!(r.list_rights(&m).await.unwrap().is_empty());
    // A revoked right can be granted again.
    r.grant_right(a1, &m, &t1, true, false).await.unwrap();
    assert_eq!(r.list_rights(&m).await.unwrap().len(), 1);
}

pub async fn revoke_right_refuses_strangers_missing_rights_unknown_ids(net: &Network) {
    let r = &net.registry;
    let m = device(net, 1).await;
    let t = topic(net, 0, false, true).await;
    r.grant_right(net.admin(1), &m, &t, false, true)
        .await
        .unwrap();
    reverted(
        r.revoke_right(net.admin(2), &m, &t).await,
        "caller is not an admin of organisation manufacturer or supplier",
    );
    let other = topic(net, 1, false, true).await;
    reverted(
        r.revoke_right(net.admin(1), &m, &other).await,
        &format!("device {m} has no right on topic {other}"),
    );
    reverted(
        r.revoke_right(net.admin(1), "ghost", &t).await,
        "unknown device ghost",
    );
    reverted(
        r.revoke_right(net.admin(1), &m, "t/none").await,
        "unknown topic t/none",
    );
    assert_eq!(r.get_right(&m, &t).await.unwrap(), (false, true));
}

// --------------------------------------------------------------- envelopes

pub async fn set_otp_envelope_emits_stores_and_replaces(net: &Network) {
    let r = &net.registry;
    let a0 = net.admin(0);
    let id = device(net, 0).await;
    let second = address();
    net.consortium
        .add_broker(a0, "supplier", second, k(1), k(2))
        .await
        .unwrap();
    let rc = r
        .set_otp_envelope(a0, &id, net.broker.address(), b"sealed-1")
        .await
        .unwrap();
    let ev = net.registry_events(&rc);
    let [RegistryEvents::OtpEnvelopeSet(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!((e.deviceKey, e.broker), (key_of(&id), net.broker.address()));
    assert_eq!(
        (e.deviceId.as_str(), e.envelope.as_ref()),
        (id.as_str(), &b"sealed-1"[..])
    );
    // Envelopes per broker node of the device's organisation; 1024 bytes accepted.
    r.set_otp_envelope(a0, &id, second, &[9u8; 1024])
        .await
        .unwrap();
    r.set_otp_envelope(a0, &id, net.broker.address(), b"sealed-2")
        .await
        .unwrap();
    assert_eq!(
        r.otp_envelope_brokers(&id).await.unwrap(),
        vec![net.broker.address(), second]
    );
    assert_eq!(
        r.otp_envelope(&id, net.broker.address())
            .await
            .unwrap()
            .as_ref(),
        b"sealed-2"
    );
    assert_eq!(
        r.otp_envelope(&id, second).await.unwrap().as_ref(),
        &[9u8; 1024][..]
    );
    assert!(r.otp_envelope(&id, address()).await.unwrap().is_empty());
    assert!(r.otp_envelope_brokers("ghost").await.unwrap().is_empty());

    // Cleared by the device's admin: gone from the list and the store, with an event.
    reverted(
        r.clear_otp_envelope(net.admin(1), &id, second).await,
        "caller is not an admin of organisation supplier",
    );
    let rc = r.clear_otp_envelope(a0, &id, second).await.unwrap();
    let ev = net.registry_events(&rc);
    let [RegistryEvents::OtpEnvelopeCleared(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!((e.broker, e.by), (second, a0.address()));
    assert_eq!(
        r.otp_envelope_brokers(&id).await.unwrap(),
        vec![net.broker.address()]
    );
    assert!(r.otp_envelope(&id, second).await.unwrap().is_empty());
    reverted(
        r.clear_otp_envelope(a0, &id, second).await,
        "no OTP envelope for this broker",
    );
    net.consortium.remove_broker(a0, second).await.unwrap();
}

pub async fn set_otp_envelope_refuses_non_brokers_bad_sizes_and_strangers(net: &Network) {
    let r = &net.registry;
    let a0 = net.admin(0);
    let id = device(net, 0).await;
    let node = net.broker.address();
    reverted(
        r.set_otp_envelope(a0, &id, address(), b"env").await,
        "account is not a registered broker",
    );
    reverted(
        r.set_otp_envelope(a0, &id, node, b"").await,
        "envelope must be 1-1024 bytes",
    );
    reverted(
        r.set_otp_envelope(a0, &id, node, &[7u8; 1025]).await,
        "envelope must be 1-1024 bytes",
    );
    reverted(
        r.set_otp_envelope(net.admin(1), &id, node, b"env").await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        r.set_otp_envelope(a0, "ghost", node, b"env").await,
        "unknown device ghost",
    );
    // A node of another organisation never gets the device's symmetric key,
    // not even from the device's own admin.
    let foreign = address();
    net.consortium
        .add_broker(net.admin(2), "distributor", foreign, k(3), k(4))
        .await
        .unwrap();
    reverted(
        r.set_otp_envelope(a0, &id, foreign, b"env").await,
        "broker node belongs to another organisation",
    );
    net.consortium
        .remove_broker(net.admin(2), foreign)
        .await
        .unwrap();
    assert!(r.otp_envelope_brokers(&id).await.unwrap().is_empty());
}

// --------------------------------------------------------------- blacklist

pub async fn blacklist_by_a_broker_of_any_org_emits_and_bans(net: &Network) {
    let r = &net.registry;
    // The shared broker node belongs to supplier; the device to retailer.
    let id = device(net, 3).await;
    assert!(!r.is_blacklisted(&id).await.unwrap());
    let rc = r
        .blacklist_device(&net.broker, &id, u64::MAX, 2, k(7))
        .await
        .unwrap();
    let since = net
        .ledger
        .block(rc.block_number)
        .await
        .unwrap()
        .unwrap()
        .timestamp;
    let ev = net.registry_events(&rc);
    let [RegistryEvents::Blacklisted(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(
        (e.deviceKey, e.deviceId.as_str()),
        (key_of(&id), id.as_str())
    );
    assert_eq!(
        (e.until, e.reason, e.evidence, e.by),
        (u64::MAX, 2, k(7), net.broker.address())
    );
    assert!(r.is_blacklisted(&id).await.unwrap());
    let b = r.get_blacklist(&id).await.unwrap();
    assert_eq!(
        (b.until, b.reason, b.by, b.since, b.active, b.evidence),
        (u64::MAX, 2, net.broker.address(), since, true, k(7))
    );
    // A broker may lengthen (or repeat) a ban, with new evidence.
    r.blacklist_device(&net.broker, &id, u64::MAX, 3, k(8))
        .await
        .unwrap();
    let b = r.get_blacklist(&id).await.unwrap();
    assert_eq!((b.reason, b.evidence), (3, k(8)));
    // Blacklisting is allowed for revoked devices too; an admin needs no
    // evidence digest.
    r.revoke_device(net.admin(3), &id).await.unwrap();
    r.blacklist_device(net.admin(3), &id, u64::MAX, 5, B256::ZERO)
        .await
        .unwrap();
    assert_eq!(r.get_blacklist(&id).await.unwrap().evidence, B256::ZERO);
}

pub async fn blacklist_refuses_strangers_past_ends_missing_evidence_and_broker_shortening(
    net: &Network,
) {
    let r = &net.registry;
    let id = device(net, 0).await;
    reverted(
        r.blacklist_device(net.admin(1), &id, u64::MAX, 1, k(1))
            .await,
        "caller is neither a broker node nor an admin of organisation supplier",
    );
    reverted(
        r.blacklist_device(&net.outsider, &id, u64::MAX, 1, k(1))
            .await,
        "caller is neither a broker node nor an admin of organisation supplier",
    );
    reverted(
        r.blacklist_device(&net.broker, "ghost", u64::MAX, 1, k(1))
            .await,
        "unknown device ghost",
    );
    let now = net.chain_time().await;
    for past in [0, 1, now] {
        reverted(
            r.blacklist_device(&net.broker, &id, past, 1, k(1)).await,
            "blacklist end must be in the future",
        );
    }
    // A broker's ban must commit to its evidence.
    reverted(
        r.blacklist_device(&net.broker, &id, u64::MAX, 2, B256::ZERO)
            .await,
        "a broker node must give the digest of its evidence",
    );
    assert!(!r.is_blacklisted(&id).await.unwrap());
    let until = now + 3600;
    r.blacklist_device(&net.broker, &id, until, 1, k(1))
        .await
        .unwrap();
    reverted(
        r.blacklist_device(&net.broker, &id, until - 1, 1, k(1))
            .await,
        "a broker may not shorten an active blacklist entry",
    );
    assert_eq!(r.get_blacklist(&id).await.unwrap().until, until);
}

pub async fn admin_may_shorten_a_ban_and_lift_it(net: &Network) {
    let r = &net.registry;
    let a0 = net.admin(0);
    let id = device(net, 0).await;
    r.blacklist_device(&net.broker, &id, u64::MAX, 1, k(1))
        .await
        .unwrap();
    let until = net.chain_time().await + 600;
    let rc = r.blacklist_device(a0, &id, until, 5, k(2)).await.unwrap();
    assert!(
        matches!(&net.registry_events(&rc)[..], [RegistryEvents::Blacklisted(e)]
        if e.until == until && e.reason == 5 && e.evidence == k(2) && e.by == a0.address())
    );
    let b = r.get_blacklist(&id).await.unwrap();
    assert_eq!(
        (b.until, b.reason, b.by, b.active),
        (until, 5, a0.address(), true)
    );
    let rc = r.lift_blacklist(a0, &id).await.unwrap();
    let ev = net.registry_events(&rc);
    let [RegistryEvents::BlacklistLifted(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(
        (e.deviceKey, e.deviceId.as_str(), e.by),
        (key_of(&id), id.as_str(), a0.address())
    );
    assert!(!r.is_blacklisted(&id).await.unwrap());
    let b = r.get_blacklist(&id).await.unwrap();
    assert_eq!(
        (b.until, b.reason, b.by, b.since, b.active, b.evidence),
        (0, 0, Address::ZERO, 0, false, B256::ZERO)
    );
    // After a lift, a broker may ban again for any future time.
    r.blacklist_device(&net.broker, &id, until, 1, k(1))
        .await
        .unwrap();
    assert!(r.is_blacklisted(&id).await.unwrap());
}

pub async fn lift_blacklist_refuses_strangers_and_unbanned_devices(net: &Network) {
    let r = &net.registry;
    let id = device(net, 0).await;
    reverted(
        r.lift_blacklist(net.admin(0), &id).await,
        "device is not blacklisted",
    );
    r.blacklist_device(&net.broker, &id, u64::MAX, 1, k(1))
        .await
        .unwrap();
    reverted(
        r.lift_blacklist(net.admin(1), &id).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        r.lift_blacklist(&net.broker, &id).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        r.lift_blacklist(net.admin(0), "ghost").await,
        "unknown device ghost",
    );
    assert!(r.is_blacklisted(&id).await.unwrap());
}
