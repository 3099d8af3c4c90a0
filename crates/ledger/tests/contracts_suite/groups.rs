//! Groups: end-to-end encryption groups, their filters, policy and members,
//! each organisation's key service, key epochs and key exchanges.
//!
//! Key services are per organisation and the shared network has only four:
//! checks on the shared network only ever *set* one (an admin may commit once
//! any is set, and a signing key can never return to zero), while the checks
//! that depend on who the key service is run on a private network.

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::{SolCall, SolConstructor};
use ledgermq_ledger::contracts::bindings::Groups as G;
use ledgermq_ledger::contracts::{
    creation_code, ContractName, GroupsEvents, Protection, VerifyPolicy,
};
use ledgermq_ledger::{LedgerResult, Signer, TxReceipt, TxRequest};

use super::{address, k, key_of, reverted, Network, ORGS};

/// Registers a fresh device of `ORGS[org]`.
async fn device(net: &Network, org: usize) -> String {
    let id = net.unique("dev");
    net.registry
        .register_device(net.admin(org), ORGS[org], &id, k(1), k(2))
        .await
        .unwrap();
    id
}

/// A fresh topic filter.
fn filter(net: &Network) -> String {
    format!("{}/+/#", net.unique("t"))
}

/// Creates a fresh sealed group of `ORGS[org]` protecting one fresh filter.
async fn group(net: &Network, org: usize) -> String {
    let name = net.unique("g");
    net.groups
        .create_group(
            net.admin(org),
            ORGS[org],
            &name,
            &[filter(net)],
            Protection::Sealed,
            VerifyPolicy::Every,
            60,
        )
        .await
        .unwrap();
    name
}

/// Creates a fresh group of `ORGS[org]` with `members` fresh devices of
/// `ORGS[device_orgs[i]]`.
async fn group_with(net: &Network, org: usize, device_orgs: &[usize]) -> (String, Vec<String>) {
    let name = group(net, org).await;
    let mut members = Vec::new();
    for &o in device_orgs {
        let id = device(net, o).await;
        net.groups
            .add_member(net.admin(org), &name, &id)
            .await
            .unwrap();
        members.push(id);
    }
    (name, members)
}

/// Gives `ORGS[org]` some key service, so that its admin may commit epochs.
async fn some_key_service(net: &Network, org: usize) {
    net.groups
        .set_key_service(net.admin(org), ORGS[org], address(), k(0x5e))
        .await
        .unwrap();
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn exchanges(pairs: &[(&str, B256)]) -> Vec<(String, B256)> {
    pairs.iter().map(|(d, c)| (d.to_string(), *c)).collect()
}

/// Creates group `name` of `org` (sealed, every signature verified) from `by`.
async fn create(
    net: &Network,
    by: &dyn Signer,
    org: &str,
    name: &str,
    filters: &[String],
    grace: u32,
) -> LedgerResult<TxReceipt> {
    net.groups
        .create_group(
            by,
            org,
            name,
            filters,
            Protection::Sealed,
            VerifyPolicy::Every,
            grace,
        )
        .await
}

/// Updates group `name` (to optional, subscribers verify) from its owner, the supplier.
async fn update(
    net: &Network,
    name: &str,
    filters: &[String],
    grace: u32,
) -> LedgerResult<TxReceipt> {
    net.groups
        .update_group(
            net.admin(0),
            name,
            filters,
            Protection::Optional,
            VerifyPolicy::Subscribers,
            grace,
        )
        .await
}

/// Sends a raw Groups call (codes and lists the typed client cannot express).
async fn send<C: SolCall>(net: &Network, from: &dyn Signer, call: C) -> LedgerResult<TxReceipt> {
    let tx = TxRequest {
        to: Some(net.deployment.groups),
        data: call.abi_encode().into(),
        ..TxRequest::default()
    };
    net.ledger.send_transaction(from, tx).await
}

async fn block_time(net: &Network, rc: &TxReceipt) -> u64 {
    net.ledger
        .block(rc.block_number)
        .await
        .unwrap()
        .unwrap()
        .timestamp
}

// ------------------------------------------------------------- constructor

pub async fn constructor_refuses_addresses_without_code(net: &Network) {
    let code = creation_code(ContractName::Groups).unwrap();
    let args = G::constructorCall {
        consortium_: address(),
        registry_: net.deployment.registry,
    };
    reverted(
        net.deploy_raw(code.clone(), args.abi_encode()).await,
        "consortium address has no code",
    );
    let args = G::constructorCall {
        consortium_: net.deployment.consortium,
        registry_: address(),
    };
    reverted(
        net.deploy_raw(code, args.abi_encode()).await,
        "registry address has no code",
    );
}

pub async fn public_constants_and_contract_addresses(net: &Network) {
    let at = net.deployment.groups;
    assert_eq!(net.groups.address(), at);
    assert_eq!(net.view(at, G::OPTIONALCall {}).await, 0);
    assert_eq!(net.view(at, G::SIGNEDCall {}).await, 1);
    assert_eq!(net.view(at, G::SEALEDCall {}).await, 2);
    assert_eq!(net.view(at, G::VERIFY_SUBSCRIBERSCall {}).await, 0);
    assert_eq!(net.view(at, G::VERIFY_SAMPLECall {}).await, 1);
    assert_eq!(net.view(at, G::VERIFY_EVERYCall {}).await, 2);
    assert_eq!(net.view(at, G::MAX_NAMECall {}).await, U256::from(64));
    assert_eq!(net.view(at, G::MAX_FILTERSCall {}).await, U256::from(16));
    assert_eq!(net.view(at, G::MAX_GRACECall {}).await, 86_400);
    assert_eq!(
        net.view(at, G::consortiumCall {}).await,
        net.deployment.consortium
    );
    assert_eq!(
        net.view(at, G::registryCall {}).await,
        net.deployment.registry
    );
    // The client's codes are the contract's.
    for (p, code) in [
        (Protection::Optional, 0),
        (Protection::Signed, 1),
        (Protection::Sealed, 2),
    ] {
        assert_eq!(p.code(), code);
        assert_eq!(Protection::from_code(code).unwrap(), p);
        assert_eq!(Protection::parse(p.as_str()), Some(p));
    }
    for (v, code) in [
        (VerifyPolicy::Subscribers, 0),
        (VerifyPolicy::Sample, 1),
        (VerifyPolicy::Every, 2),
    ] {
        assert_eq!(v.code(), code);
        assert_eq!(VerifyPolicy::from_code(code).unwrap(), v);
        assert_eq!(VerifyPolicy::parse(v.as_str()), Some(v));
    }
}

// ------------------------------------------------------------------ groups

pub async fn create_group_emits_and_stores_the_group(net: &Network) {
    let g = &net.groups;
    let name = net.unique("g");
    let filters = vec![filter(net), format!("{}/x", net.unique("t"))];
    let rc = g
        .create_group(
            net.admin(1),
            "manufacturer",
            &name,
            &filters,
            Protection::Signed,
            VerifyPolicy::Sample,
            300,
        )
        .await
        .unwrap();
    let at = block_time(net, &rc).await;
    let ev = net.groups_events(&rc);
    let [GroupsEvents::GroupCreated(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.groupKey, key_of(&name));
    assert_eq!(
        (e.group.as_str(), e.org.as_str(), &e.filters),
        (name.as_str(), "manufacturer", &filters)
    );
    assert_eq!((e.protection, e.verify, e.graceSeconds), (1, 1, 300));
    let info = g.get_group(&name).await.unwrap();
    assert_eq!(
        (info.name.as_str(), info.org.as_str(), &info.filters),
        (name.as_str(), "manufacturer", &filters)
    );
    assert_eq!(
        (info.protection, info.verify, info.grace_seconds),
        (Protection::Signed, VerifyPolicy::Sample, 300)
    );
    assert_eq!(info.created_at, at);
    assert!(at <= net.chain_time().await);
    // A new group has no members and no key epoch.
    assert!(g.members(&name).await.unwrap().is_empty());
    assert_eq!(g.epoch_count(&name).await.unwrap(), 0);
    assert_eq!(g.latest_epoch(&name).await.unwrap(), None);

    // Limits: a 64-byte name of every allowed character class, 16
    // filters, the longest grace, and every protection and verify policy.
    let longest = format!("{:x<64}", net.unique("Az09._/"));
    assert_eq!(longest.len(), 64);
    let u = net.unique("t");
    let sixteen: Vec<String> = (0..16).map(|i| format!("{u}/{i}/#")).collect();
    for (name, filters, protection, verify, grace) in [
        (
            longest,
            sixteen,
            Protection::Optional,
            VerifyPolicy::Subscribers,
            86_400,
        ),
        (
            net.unique("g"),
            vec![format!("+/{}/#", net.unique("t"))],
            Protection::Sealed,
            VerifyPolicy::Every,
            0,
        ),
    ] {
        let rc = g
            .create_group(
                net.admin(2),
                "distributor",
                &name,
                &filters,
                protection,
                verify,
                grace,
            )
            .await
            .unwrap();
        assert!(
            matches!(&net.groups_events(&rc)[..], [GroupsEvents::GroupCreated(e)]
            if e.groupKey == key_of(&name) && e.filters == filters
                && e.protection == protection.code() && e.verify == verify.code()
                && e.graceSeconds == grace)
        );
        let info = g.get_group(&name).await.unwrap();
        assert_eq!(
            (
                info.org.as_str(),
                info.filters,
                info.protection,
                info.verify
            ),
            ("distributor", filters, protection, verify)
        );
        assert_eq!(info.grace_seconds, grace);
    }
}

pub async fn create_group_refuses_non_admins_and_existing_names(net: &Network) {
    let g = &net.groups;
    let name = net.unique("g");
    let filters = [filter(net)];
    for caller in [net.admin(1), &net.outsider, &net.broker] {
        reverted(
            create(net, caller, "supplier", &name, &filters, 0).await,
            "caller is not an admin of organisation supplier",
        );
    }
    reverted(
        create(net, net.admin(0), "nowhere", &name, &filters, 0).await,
        "caller is not an admin of organisation nowhere",
    );
    create(net, net.admin(0), "supplier", &name, &filters, 0)
        .await
        .unwrap();
    // Names are unique network-wide.
    let exists = format!("group {name} already exists");
    reverted(
        create(net, net.admin(0), "supplier", &name, &filters, 0).await,
        &exists,
    );
    reverted(
        create(net, net.admin(1), "manufacturer", &name, &filters, 0).await,
        &exists,
    );
    assert_eq!(g.get_group(&name).await.unwrap().org, "supplier");
}

pub async fn create_group_validates_the_name(net: &Network) {
    let g = &net.groups;
    let filters = [filter(net)];
    let too_long = format!("{:x<65}", net.unique("g"));
    for bad in [String::new(), too_long] {
        reverted(
            g.create_group(
                net.admin(0),
                "supplier",
                &bad,
                &filters,
                Protection::Sealed,
                VerifyPolicy::Every,
                0,
            )
            .await,
            "group name must be 1-64 bytes",
        );
    }
    for bad in [
        "has space",
        "plus+",
        "hash#",
        "dollar$",
        "colon:x",
        "back\\slash",
        "caf\u{e9}",
        "nul\0",
        "tab\t",
    ] {
        reverted(
            g.create_group(
                net.admin(0),
                "supplier",
                bad,
                &filters,
                Protection::Sealed,
                VerifyPolicy::Every,
                0,
            )
            .await,
            "group name may only contain letters, digits, '.', '_', '-' and '/'",
        );
    }
}

pub async fn create_group_validates_filters_and_policy(net: &Network) {
    let g = &net.groups;
    let a0 = net.admin(0);
    let name = net.unique("g");
    let f = filter(net);
    let u = net.unique("t");
    let seventeen: Vec<String> = (0..17).map(|i| format!("{u}/{i}")).collect();
    for filters in [vec![], seventeen] {
        reverted(
            create(net, a0, "supplier", &name, &filters, 0).await,
            "a group has 1-16 topic filters",
        );
    }
    for filters in [
        vec![f.clone(), f.clone()],
        vec![f.clone(), "a/b".into(), f.clone()],
    ] {
        reverted(
            create(net, a0, "supplier", &name, &filters, 0).await,
            "duplicate topic filter",
        );
    }
    // Each filter is an MQTT topic filter (TopicFilter), wherever it stands.
    let cases = [
        (String::new(), "topic must be 1-256 bytes"),
        ("t".repeat(257), "topic must be 1-256 bytes"),
        ("$SYS/#".into(), "topics starting with '$' are reserved"),
        ("a\0b".into(), "topic must not contain NUL"),
        ("a/b+".into(), "wildcard must occupy a whole topic level"),
        ("a/+b".into(), "wildcard must occupy a whole topic level"),
        ("a#".into(), "wildcard must occupy a whole topic level"),
        ("a/#/b".into(), "'#' must be the last topic level"),
    ];
    for (bad, reason) in cases {
        reverted(
            create(net, a0, "supplier", &name, &[f.clone(), bad], 0).await,
            reason,
        );
    }
    reverted(
        create(net, a0, "supplier", &name, std::slice::from_ref(&f), 86_401).await,
        "grace must be at most 86400 seconds",
    );
    reverted(
        create(
            net,
            a0,
            "supplier",
            &name,
            std::slice::from_ref(&f),
            u32::MAX,
        )
        .await,
        "grace must be at most 86400 seconds",
    );
    // Codes the typed client cannot express.
    let raw = |protection: u8, verify: u8| G::createGroupCall {
        orgId: "supplier".into(),
        name: name.clone(),
        filters: vec![f.clone()],
        protection,
        verify,
        graceSeconds: 0,
    };
    for p in [3, u8::MAX] {
        reverted(
            send(net, a0, raw(p, 0)).await,
            "protection must be 0 (optional), 1 (signed) or 2 (sealed)",
        );
    }
    for v in [3, u8::MAX] {
        reverted(
            send(net, a0, raw(0, v)).await,
            "verify must be 0 (subscribers), 1 (sample) or 2 (every)",
        );
    }
    reverted(g.get_group(&name).await, &format!("unknown group {name}"));
    // The raw call with valid codes succeeds, so only the codes were wrong.
    send(net, a0, raw(2, 2)).await.unwrap();
    assert_eq!(
        g.get_group(&name).await.unwrap().protection,
        Protection::Sealed
    );
}

pub async fn group_views_list_groups_and_refuse_unknown_ones(net: &Network) {
    let g = &net.groups;
    let name = group(net, 3).await;
    let count = g.group_count().await.unwrap();
    let mut found = false;
    for i in 0..count {
        found |= g.group_at(i).await.unwrap() == name;
    }
    assert!(found, "groupAt lists {name}");
    assert!(g
        .list_groups()
        .await
        .unwrap()
        .iter()
        .any(|x| x.name == name && x.org == "retailer"));
    reverted(g.group_at(u64::MAX).await, "index out of range");
    reverted(g.get_group("nope").await, "unknown group nope");
    reverted(g.members("nope").await, "unknown group nope");
    // The per-name views of isMember and epochs read as empty.
    assert!(!g.is_member("nope", "ghost").await.unwrap());
    assert_eq!(g.epoch_count("nope").await.unwrap(), 0);
    reverted(g.epoch_at("nope", 0).await, "index out of range");
    reverted(g.epoch_at(&name, 0).await, "index out of range");
}

pub async fn update_group_emits_and_replaces_filters_and_policy(net: &Network) {
    let g = &net.groups;
    let name = net.unique("g");
    let three = vec![filter(net), filter(net), filter(net)];
    let rc = g
        .create_group(
            net.admin(0),
            "supplier",
            &name,
            &three,
            Protection::Optional,
            VerifyPolicy::Subscribers,
            10,
        )
        .await
        .unwrap();
    let created_at = block_time(net, &rc).await;
    let m = device(net, 1).await;
    g.add_member(net.admin(0), &name, &m).await.unwrap();
    // Fewer filters than before: the old list is replaced, not overlaid.
    let one = vec![three[2].clone()];
    let rc = g
        .update_group(
            net.admin(0),
            &name,
            &one,
            Protection::Sealed,
            VerifyPolicy::Every,
            86_400,
        )
        .await
        .unwrap();
    let ev = net.groups_events(&rc);
    let [GroupsEvents::GroupUpdated(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.groupKey, key_of(&name));
    assert_eq!((e.group.as_str(), &e.filters), (name.as_str(), &one));
    assert_eq!(
        (e.protection, e.verify, e.graceSeconds, e.by),
        (2, 2, 86_400, net.admin(0).address())
    );
    let info = g.get_group(&name).await.unwrap();
    assert_eq!(
        (
            info.filters,
            info.protection,
            info.verify,
            info.grace_seconds
        ),
        (one, Protection::Sealed, VerifyPolicy::Every, 86_400)
    );
    // Owner, creation time and members are untouched.
    assert_eq!(
        (info.org.as_str(), info.created_at),
        ("supplier", created_at)
    );
    assert_eq!(g.members(&name).await.unwrap(), vec![m]);
    // More filters again, 16 at most.
    let u = net.unique("t");
    let sixteen: Vec<String> = (0..16).map(|i| format!("{u}/{i}")).collect();
    g.update_group(
        net.admin(0),
        &name,
        &sixteen,
        Protection::Signed,
        VerifyPolicy::Sample,
        0,
    )
    .await
    .unwrap();
    let info = g.get_group(&name).await.unwrap();
    assert_eq!(
        (
            info.filters,
            info.protection,
            info.verify,
            info.grace_seconds
        ),
        (sixteen, Protection::Signed, VerifyPolicy::Sample, 0)
    );
}

pub async fn update_group_refuses_other_orgs_unknown_groups_and_bad_policy(net: &Network) {
    let g = &net.groups;
    let a0 = net.admin(0);
    let name = group(net, 0).await;
    let before = g.get_group(&name).await.unwrap();
    let f = vec![filter(net)];
    for caller in [net.admin(1), &net.outsider, &net.broker] {
        reverted(
            g.update_group(
                caller,
                &name,
                &f,
                Protection::Optional,
                VerifyPolicy::Subscribers,
                0,
            )
            .await,
            "caller is not an admin of organisation supplier",
        );
    }
    reverted(
        g.update_group(
            a0,
            "nope",
            &f,
            Protection::Optional,
            VerifyPolicy::Subscribers,
            0,
        )
        .await,
        "unknown group nope",
    );
    reverted(
        update(net, &name, &[], 0).await,
        "a group has 1-16 topic filters",
    );
    let u = net.unique("t");
    let seventeen: Vec<String> = (0..17).map(|i| format!("{u}/{i}")).collect();
    reverted(
        update(net, &name, &seventeen, 0).await,
        "a group has 1-16 topic filters",
    );
    reverted(
        update(net, &name, &[f[0].clone(), f[0].clone()], 0).await,
        "duplicate topic filter",
    );
    reverted(
        update(net, &name, &strings(&["a/b+"]), 0).await,
        "wildcard must occupy a whole topic level",
    );
    reverted(
        update(net, &name, &strings(&["#/x"]), 0).await,
        "'#' must be the last topic level",
    );
    reverted(
        update(net, &name, &f, 86_401).await,
        "grace must be at most 86400 seconds",
    );
    let raw = |protection: u8, verify: u8| G::updateGroupCall {
        name: name.clone(),
        filters: f.clone(),
        protection,
        verify,
        graceSeconds: 0,
    };
    reverted(
        send(net, a0, raw(3, 0)).await,
        "protection must be 0 (optional), 1 (signed) or 2 (sealed)",
    );
    reverted(
        send(net, a0, raw(0, 3)).await,
        "verify must be 0 (subscribers), 1 (sample) or 2 (every)",
    );
    assert_eq!(g.get_group(&name).await.unwrap(), before);
}

// ----------------------------------------------------------------- members

pub async fn add_member_emits_and_accepts_devices_of_any_org(net: &Network) {
    let g = &net.groups;
    let name = group(net, 0).await;
    // A supplier group may be read by devices of other organisations.
    let ids = [
        device(net, 0).await,
        device(net, 1).await,
        device(net, 2).await,
        device(net, 3).await,
    ];
    for (i, id) in ids.iter().enumerate() {
        assert!(!g.is_member(&name, id).await.unwrap());
        let rc = g.add_member(net.admin(0), &name, id).await.unwrap();
        let ev = net.groups_events(&rc);
        let [GroupsEvents::MemberAdded(e)] = &ev[..] else {
            panic!("{ev:?}");
        };
        assert_eq!((e.groupKey, e.deviceKey), (key_of(&name), key_of(id)));
        assert_eq!(
            (e.group.as_str(), e.deviceId.as_str(), e.by),
            (name.as_str(), id.as_str(), net.admin(0).address())
        );
        assert!(g.is_member(&name, id).await.unwrap());
        assert_eq!(g.members(&name).await.unwrap(), ids[..=i].to_vec());
    }
    // A device may belong to several groups, also of other organisations.
    let other = group(net, 2).await;
    g.add_member(net.admin(2), &other, &ids[1]).await.unwrap();
    assert!(g.is_member(&other, &ids[1]).await.unwrap());
    assert!(!g.is_member(&other, &ids[0]).await.unwrap());
    assert!(g.is_member(&name, &ids[1]).await.unwrap());
}

pub async fn add_member_refuses_strangers_duplicates_unknown_and_revoked_devices(net: &Network) {
    let g = &net.groups;
    let a0 = net.admin(0);
    let name = group(net, 0).await;
    let m = device(net, 1).await;
    // Not even the admin of the device's own organisation.
    for caller in [net.admin(1), &net.outsider, &net.broker] {
        reverted(
            g.add_member(caller, &name, &m).await,
            "caller is not an admin of organisation supplier",
        );
    }
    reverted(g.add_member(a0, "nope", &m).await, "unknown group nope");
    reverted(
        g.add_member(a0, &name, "ghost").await,
        "unknown device ghost",
    );
    g.add_member(a0, &name, &m).await.unwrap();
    reverted(
        g.add_member(a0, &name, &m).await,
        &format!("{m} is already a member of {name}"),
    );
    let revoked = device(net, 1).await;
    net.registry
        .revoke_device(net.admin(1), &revoked)
        .await
        .unwrap();
    reverted(
        g.add_member(a0, &name, &revoked).await,
        &format!("device {revoked} is revoked"),
    );
    assert_eq!(g.members(&name).await.unwrap(), vec![m]);
    assert!(!g.is_member(&name, &revoked).await.unwrap());
}

pub async fn remove_member_swap_pops_and_emits(net: &Network) {
    let g = &net.groups;
    let a0 = net.admin(0);
    let (name, ids) = group_with(net, 0, &[0, 1, 2, 3]).await;
    let [a, b, c, d] = &ids[..] else {
        unreachable!()
    };
    // Removing the first moves the last into its place.
    let rc = g.remove_member(a0, &name, a).await.unwrap();
    let ev = net.groups_events(&rc);
    let [GroupsEvents::MemberRemoved(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!((e.groupKey, e.deviceKey), (key_of(&name), key_of(a)));
    assert_eq!(
        (e.group.as_str(), e.deviceId.as_str(), e.by),
        (name.as_str(), a.as_str(), a0.address())
    );
    assert!(!g.is_member(&name, a).await.unwrap());
    assert_eq!(
        g.members(&name).await.unwrap(),
        vec![d.clone(), b.clone(), c.clone()]
    );
    // Removing the last pops it.
    g.remove_member(a0, &name, c).await.unwrap();
    assert_eq!(g.members(&name).await.unwrap(), vec![d.clone(), b.clone()]);
    // The moved member's position was updated: it can be removed correctly.
    g.remove_member(a0, &name, d).await.unwrap();
    assert_eq!(g.members(&name).await.unwrap(), vec![b.clone()]);
    assert!(g.is_member(&name, b).await.unwrap());
    for gone in [a, c, d] {
        assert!(!g.is_member(&name, gone).await.unwrap());
    }
    // A removed device may be added again, at the end.
    g.add_member(a0, &name, a).await.unwrap();
    assert_eq!(g.members(&name).await.unwrap(), vec![b.clone(), a.clone()]);
    // A member whose device was revoked stays a member until removed.
    net.registry.revoke_device(net.admin(1), b).await.unwrap();
    assert!(g.is_member(&name, b).await.unwrap());
    g.remove_member(a0, &name, b).await.unwrap();
    g.remove_member(a0, &name, a).await.unwrap();
    assert!(g.members(&name).await.unwrap().is_empty());
}

pub async fn remove_member_refuses_strangers_and_non_members(net: &Network) {
    let g = &net.groups;
    let a0 = net.admin(0);
    let (name, ids) = group_with(net, 0, &[1]).await;
    let m = &ids[0];
    for caller in [net.admin(1), &net.outsider, &net.broker] {
        reverted(
            g.remove_member(caller, &name, m).await,
            "caller is not an admin of organisation supplier",
        );
    }
    reverted(g.remove_member(a0, "nope", m).await, "unknown group nope");
    reverted(
        g.remove_member(a0, &name, "ghost").await,
        &format!("ghost is not a member of {name}"),
    );
    let outside = device(net, 0).await;
    reverted(
        g.remove_member(a0, &name, &outside).await,
        &format!("{outside} is not a member of {name}"),
    );
    g.remove_member(a0, &name, m).await.unwrap();
    reverted(
        g.remove_member(a0, &name, m).await,
        &format!("{m} is not a member of {name}"),
    );
    assert!(g.members(&name).await.unwrap().is_empty());
}

// ------------------------------------------------------------- key service

pub async fn key_service_is_set_by_an_admin_and_commits_with_the_admins(net: &Network) {
    // Who the key service is matters here: a network of our own.
    let net = net.private().await;
    let g = &net.groups;
    let (name, ids) = group_with(&net, 0, &[1]).await;
    let m = &ids[0];
    let none = g.key_service("supplier").await.unwrap();
    assert_eq!(
        (none.account, none.signing_key),
        (Address::ZERO, B256::ZERO)
    );
    // Without a key service nobody commits, not even an admin.
    for caller in [net.admin(0), &net.outsider] {
        reverted(
            g.commit_epoch(caller, &name, 1, k(1), 0, &[]).await,
            "organisation supplier has no key service",
        );
        reverted(
            g.record_exchanges(caller, &name, 1, &[]).await,
            "organisation supplier has no key service",
        );
    }
    let service = net.account().await;
    let rc = g
        .set_key_service(net.admin(0), "supplier", service.address(), k(0x51))
        .await
        .unwrap();
    let ev = net.groups_events(&rc);
    let [GroupsEvents::KeyServiceSet(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.orgKey, key_of("supplier"));
    assert_eq!(
        (e.org.as_str(), e.account, e.signingKey, e.by),
        (
            "supplier",
            service.address(),
            k(0x51),
            net.admin(0).address()
        )
    );
    let ks = g.key_service("supplier").await.unwrap();
    assert_eq!((ks.account, ks.signing_key), (service.address(), k(0x51)));
    assert!(g.is_key_service(service.address()).await.unwrap());
    assert!(!g.is_key_service(net.admin(0).address()).await.unwrap());
    assert_eq!(
        g.key_service("manufacturer").await.unwrap().signing_key,
        B256::ZERO
    );

    // The key service account commits and records.
    let rc = g
        .commit_epoch(&service, &name, 1, k(0xe1), 1, &[])
        .await
        .unwrap();
    assert!(
        matches!(&net.groups_events(&rc)[..], [GroupsEvents::KeyEpochCommitted(e)]
        if e.by == service.address() && e.epoch == 1)
    );
    g.record_exchanges(&service, &name, 1, &exchanges(&[(m, k(0xa1))]))
        .await
        .unwrap();
    // So does an admin of the group's organisation.
    let rc = g
        .commit_epoch(net.admin(0), &name, 2, k(0xe2), 0, &[])
        .await
        .unwrap();
    assert!(
        matches!(&net.groups_events(&rc)[..], [GroupsEvents::KeyEpochCommitted(e)]
        if e.by == net.admin(0).address() && e.epoch == 2)
    );
    // Nobody else: outsiders, other organisations' admins and key services,
    // and never a broker node.
    reverted(
        g.commit_epoch(&net.broker, &name, 3, k(0xe3), 0, &[]).await,
        "a broker node cannot be a key service",
    );
    reverted(
        g.record_exchanges(&net.broker, &name, 2, &[]).await,
        "a broker node cannot be a key service",
    );
    let other_service = net.account().await;
    g.set_key_service(
        net.admin(1),
        "manufacturer",
        other_service.address(),
        k(0x52),
    )
    .await
    .unwrap();
    for caller in [&net.outsider, net.admin(1), &other_service] {
        reverted(
            g.commit_epoch(caller, &name, 3, k(0xe3), 0, &[]).await,
            "caller is not the key service of organisation supplier",
        );
        reverted(
            g.record_exchanges(caller, &name, 2, &[]).await,
            "caller is not the key service of organisation supplier",
        );
    }
    // A replaced key service loses the right at once.
    let next = net.account().await;
    g.set_key_service(net.admin(0), "supplier", next.address(), k(0x53))
        .await
        .unwrap();
    assert_eq!(
        g.key_service("supplier").await.unwrap().account,
        next.address()
    );
    assert!(
        !g.is_key_service(service.address()).await.unwrap(),
        "the replaced account is no key service any more"
    );
    assert!(g.is_key_service(next.address()).await.unwrap());
    // One account serves one organisation.
    reverted(
        g.set_key_service(net.admin(1), "manufacturer", next.address(), k(0x54))
            .await,
        "account is the key service of another organisation",
    );
    reverted(
        g.commit_epoch(&service, &name, 3, k(0xe3), 0, &[]).await,
        "caller is not the key service of organisation supplier",
    );
    g.commit_epoch(&next, &name, 3, k(0xe3), 0, &[])
        .await
        .unwrap();
    assert_eq!(g.epoch_count(&name).await.unwrap(), 3);
    // A key service account that later becomes a broker node loses the right.
    net.consortium
        .add_broker(net.admin(0), "supplier", next.address(), k(0xb4), k(0xb5))
        .await
        .unwrap();
    reverted(
        g.commit_epoch(&next, &name, 4, k(0xe4), 0, &[]).await,
        "a broker node cannot be a key service",
    );
}

pub async fn set_key_service_refuses_non_admins_zero_keys_and_broker_nodes(net: &Network) {
    let g = &net.groups;
    let a0 = net.admin(0);
    let account = address();
    for caller in [net.admin(1), &net.outsider, &net.broker] {
        reverted(
            g.set_key_service(caller, "supplier", account, k(1)).await,
            "caller is not an admin of organisation supplier",
        );
    }
    reverted(
        g.set_key_service(a0, "nowhere", account, k(1)).await,
        "caller is not an admin of organisation nowhere",
    );
    reverted(
        g.set_key_service(a0, "supplier", account, B256::ZERO).await,
        "key service signing key must not be zero",
    );
    reverted(
        g.set_key_service(a0, "supplier", Address::ZERO, k(1)).await,
        "key service account must not be zero",
    );
    // A broker node, of this organisation or another, is never a key service.
    reverted(
        g.set_key_service(a0, "supplier", net.broker.address(), k(1))
            .await,
        "a broker node cannot be a key service",
    );
    let foreign = address();
    net.consortium
        .add_broker(net.admin(2), "distributor", foreign, k(3), k(4))
        .await
        .unwrap();
    reverted(
        g.set_key_service(a0, "supplier", foreign, k(1)).await,
        "a broker node cannot be a key service",
    );
    net.consortium
        .remove_broker(net.admin(2), foreign)
        .await
        .unwrap();
}

// -------------------------------------------------------------- key epochs

pub async fn commit_epoch_emits_stores_and_records_exchanges(net: &Network) {
    let g = &net.groups;
    let a0 = net.admin(0);
    some_key_service(net, 0).await;
    let (name, ids) = group_with(net, 0, &[0, 1, 2]).await;
    let commitment = net.unique_b256();
    let (x0, x1, x2) = (net.unique_b256(), net.unique_b256(), net.unique_b256());
    let first = exchanges(&[(&ids[0], x0), (&ids[1], x1)]);
    let rc = g
        .commit_epoch(a0, &name, 1, commitment, 3, &first)
        .await
        .unwrap();
    let at = block_time(net, &rc).await;
    let ev = net.groups_events(&rc);
    let [GroupsEvents::KeyEpochCommitted(e), exchanged @ ..] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.groupKey, key_of(&name));
    assert_eq!(
        (e.group.as_str(), e.epoch, e.commitment),
        (name.as_str(), 1, commitment)
    );
    assert_eq!((e.memberCount, e.committedAt, e.by), (3, at, a0.address()));
    assert_eq!(exchanged.len(), 2);
    for (ev, (id, x)) in exchanged.iter().zip(&first) {
        let GroupsEvents::KeyExchanged(e) = ev else {
            panic!("{ev:?}");
        };
        assert_eq!((e.groupKey, e.deviceKey), (key_of(&name), key_of(id)));
        assert_eq!(
            (e.group.as_str(), e.deviceId.as_str(), e.epoch, e.exchange),
            (name.as_str(), id.as_str(), 1, *x)
        );
    }
    assert_eq!(g.epoch_count(&name).await.unwrap(), 1);
    let got = g.epoch_at(&name, 0).await.unwrap();
    assert_eq!(
        (got.epoch, got.commitment, got.committed_at),
        (1, commitment, at)
    );
    assert_eq!((got.member_count, got.recorded), (3, 2));
    assert_eq!(g.latest_epoch(&name).await.unwrap(), Some(got));

    // The rest follow with recordExchanges.
    let rc = g
        .record_exchanges(a0, &name, 1, &exchanges(&[(&ids[2], x2)]))
        .await
        .unwrap();
    let ev = net.groups_events(&rc);
    let [GroupsEvents::KeyExchanged(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!((e.deviceKey, e.epoch, e.exchange), (key_of(&ids[2]), 1, x2));
    assert_eq!(e.deviceId, ids[2]);
    assert_eq!(g.epoch_at(&name, 0).await.unwrap().recorded, 3);
    // An empty record changes nothing and emits nothing.
    let rc = g.record_exchanges(a0, &name, 1, &[]).await.unwrap();
    assert!(net.groups_events(&rc).is_empty());

    // Epochs may skip numbers; an epoch may cover fewer than all members.
    let c2 = net.unique_b256();
    let rc = g.commit_epoch(a0, &name, 7, c2, 0, &[]).await.unwrap();
    let at2 = block_time(net, &rc).await;
    assert!(at2 >= at);
    assert_eq!(net.groups_events(&rc).len(), 1);
    let got = g.epoch_at(&name, 1).await.unwrap();
    assert_eq!(
        (
            got.epoch,
            got.commitment,
            got.committed_at,
            got.member_count,
            got.recorded
        ),
        (7, c2, at2, 0, 0)
    );
    assert_eq!(g.latest_epoch(&name).await.unwrap(), Some(got));
    // The earlier epoch is kept as it was.
    assert_eq!(g.epoch_at(&name, 0).await.unwrap().recorded, 3);
    reverted(g.epoch_at(&name, 2).await, "index out of range");
}

pub async fn commit_epoch_refuses_stale_epochs_zero_values_and_excess_counts(net: &Network) {
    let g = &net.groups;
    let a0 = net.admin(0);
    some_key_service(net, 0).await;
    let (name, ids) = group_with(net, 0, &[1, 2]).await;
    let (m1, m2) = (&ids[0], &ids[1]);
    reverted(
        g.commit_epoch(a0, "nope", 1, k(1), 0, &[]).await,
        "unknown group nope",
    );
    // Epochs start at 1.
    reverted(
        g.commit_epoch(a0, &name, 0, k(1), 0, &[]).await,
        "key epoch must be greater than the latest one",
    );
    reverted(
        g.commit_epoch(a0, &name, 1, B256::ZERO, 0, &[]).await,
        "commitment must not be zero",
    );
    reverted(
        g.commit_epoch(a0, &name, 1, k(1), 3, &[]).await,
        "member count exceeds the group's members",
    );
    reverted(
        g.commit_epoch(a0, &name, 1, k(1), 1, &exchanges(&[(m1, k(2)), (m2, k(3))]))
            .await,
        "more exchanges than the epoch's member count",
    );
    reverted(
        g.commit_epoch(a0, &name, 1, k(1), 2, &exchanges(&[(m1, B256::ZERO)]))
            .await,
        "exchange commitment must not be zero",
    );
    let stranger = device(net, 1).await;
    reverted(
        g.commit_epoch(
            a0,
            &name,
            1,
            k(1),
            2,
            &exchanges(&[(m1, k(2)), (&stranger, k(3))]),
        )
        .await,
        &format!("{stranger} is not a member of {name}"),
    );
    reverted(
        g.commit_epoch(a0, &name, 1, k(1), 2, &exchanges(&[("ghost", k(2))]))
            .await,
        "unknown device ghost",
    );
    // One commitment per device (a mismatch the typed client cannot send).
    let raw = G::commitEpochCall {
        name: name.clone(),
        epoch: 1,
        commitment: k(1),
        memberCount: 2,
        deviceIds: vec![m1.clone(), m2.clone()],
        exchanges: vec![k(2)],
    };
    reverted(
        send(net, a0, raw).await,
        "one exchange commitment per device",
    );
    // Nothing of the failed commits was kept.
    assert_eq!(g.epoch_count(&name).await.unwrap(), 0);

    // The full count is accepted; then only greater epochs.
    g.commit_epoch(a0, &name, 2, k(1), 2, &exchanges(&[(m1, k(2)), (m2, k(3))]))
        .await
        .unwrap();
    for stale in [0, 1, 2] {
        reverted(
            g.commit_epoch(a0, &name, stale, k(4), 0, &[]).await,
            "key epoch must be greater than the latest one",
        );
    }
    g.commit_epoch(a0, &name, 3, k(4), 0, &[]).await.unwrap();
    g.commit_epoch(a0, &name, u64::MAX, k(5), 0, &[])
        .await
        .unwrap();
    reverted(
        g.commit_epoch(a0, &name, u64::MAX, k(6), 0, &[]).await,
        "key epoch must be greater than the latest one",
    );
    assert_eq!(g.epoch_count(&name).await.unwrap(), 3);
    for (i, want) in [2, 3, u64::MAX].into_iter().enumerate() {
        assert_eq!(g.epoch_at(&name, i as u64).await.unwrap().epoch, want);
    }
}

pub async fn record_exchanges_only_for_the_latest_epoch_and_its_member_count(net: &Network) {
    let g = &net.groups;
    let a0 = net.admin(0);
    some_key_service(net, 0).await;
    let (name, ids) = group_with(net, 0, &[1, 2, 3]).await;
    let (m1, m2, m3) = (&ids[0], &ids[1], &ids[2]);
    reverted(
        g.record_exchanges(a0, "nope", 1, &[]).await,
        "unknown group nope",
    );
    // No epoch yet.
    reverted(
        g.record_exchanges(a0, &name, 0, &[]).await,
        "exchanges only for the latest epoch",
    );
    reverted(
        g.record_exchanges(a0, &name, 1, &exchanges(&[(m1, k(1))]))
            .await,
        "exchanges only for the latest epoch",
    );
    g.commit_epoch(a0, &name, 1, k(1), 3, &[]).await.unwrap();
    g.commit_epoch(a0, &name, 2, k(2), 2, &[]).await.unwrap();
    for wrong in [1, 3] {
        reverted(
            g.record_exchanges(a0, &name, wrong, &exchanges(&[(m1, k(1))]))
                .await,
            "exchanges only for the latest epoch",
        );
    }
    for caller in [&net.outsider, net.admin(1)] {
        reverted(
            g.record_exchanges(caller, &name, 2, &exchanges(&[(m1, k(1))]))
                .await,
            "caller is not the key service of organisation supplier",
        );
    }
    reverted(
        g.record_exchanges(
            a0,
            &name,
            2,
            &exchanges(&[(m1, k(1)), (m2, k(2)), (m3, k(3))]),
        )
        .await,
        "more exchanges than the epoch's member count",
    );
    reverted(
        g.record_exchanges(a0, &name, 2, &exchanges(&[(m1, B256::ZERO)]))
            .await,
        "exchange commitment must not be zero",
    );
    let raw = G::recordExchangesCall {
        name: name.clone(),
        epoch: 2,
        deviceIds: vec![m1.clone()],
        exchanges: vec![k(1), k(2)],
    };
    reverted(
        send(net, a0, raw).await,
        "one exchange commitment per device",
    );
    // Up to the member count, over several calls.
    g.record_exchanges(a0, &name, 2, &exchanges(&[(m1, k(1))]))
        .await
        .unwrap();
    g.record_exchanges(a0, &name, 2, &exchanges(&[(m2, k(2))]))
        .await
        .unwrap();
    reverted(
        g.record_exchanges(a0, &name, 2, &exchanges(&[(m3, k(3))]))
            .await,
        "more exchanges than the epoch's member count",
    );
    let e = g.epoch_at(&name, 1).await.unwrap();
    assert_eq!((e.epoch, e.member_count, e.recorded), (2, 2, 2));
    assert_eq!(g.epoch_at(&name, 0).await.unwrap().recorded, 0);
}

pub async fn exchanges_go_only_to_current_active_members(net: &Network) {
    let g = &net.groups;
    let a0 = net.admin(0);
    some_key_service(net, 0).await;
    let (name, ids) = group_with(net, 0, &[0, 1, 2]).await;
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    g.commit_epoch(
        a0,
        &name,
        1,
        k(1),
        3,
        &exchanges(&[(a, k(1)), (b, k(2)), (c, k(3))]),
    )
    .await
    .unwrap();
    // b leaves: the next epoch has no wrap for it, neither at commit nor later.
    g.remove_member(a0, &name, b).await.unwrap();
    let not_member = format!("{b} is not a member of {name}");
    reverted(
        g.commit_epoch(a0, &name, 2, k(2), 2, &exchanges(&[(a, k(4)), (b, k(5))]))
            .await,
        &not_member,
    );
    reverted(
        g.commit_epoch(a0, &name, 2, k(2), 3, &[]).await,
        "member count exceeds the group's members",
    );
    g.commit_epoch(a0, &name, 2, k(2), 2, &exchanges(&[(a, k(4))]))
        .await
        .unwrap();
    reverted(
        g.record_exchanges(a0, &name, 2, &exchanges(&[(b, k(5))]))
            .await,
        &not_member,
    );
    // c's device is revoked: still a member, but it gets no wrap either.
    net.registry.revoke_device(net.admin(2), c).await.unwrap();
    assert!(g.is_member(&name, c).await.unwrap());
    reverted(
        g.record_exchanges(a0, &name, 2, &exchanges(&[(c, k(6))]))
            .await,
        &format!("device {c} is revoked"),
    );
    reverted(
        g.record_exchanges(a0, &name, 2, &exchanges(&[("ghost", k(6))]))
            .await,
        "unknown device ghost",
    );
    let e = g.epoch_at(&name, 1).await.unwrap();
    assert_eq!((e.epoch, e.member_count, e.recorded), (2, 2, 1));
    // Added again, b may be given the current epoch.
    g.add_member(a0, &name, b).await.unwrap();
    let rc = g
        .record_exchanges(a0, &name, 2, &exchanges(&[(b, k(7))]))
        .await
        .unwrap();
    assert!(
        matches!(&net.groups_events(&rc)[..], [GroupsEvents::KeyExchanged(e)]
        if e.deviceKey == key_of(b) && e.epoch == 2 && e.exchange == k(7))
    );
}
