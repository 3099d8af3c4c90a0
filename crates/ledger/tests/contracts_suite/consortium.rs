//! Consortium: organisations, admins, broker nodes, proposals and the
//! majority rule.

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolConstructor;
use ledgermq_ledger::contracts::bindings::Consortium as C;
use ledgermq_ledger::contracts::{
    creation_code, decode_event, deploy_consortium, ConsortiumEvents, ContractEvent, ContractName,
    FoundingOrg, ProposalStatus,
};
use ledgermq_ledger::{LogFilter, Signer};

use super::{address, k, key_of, reverted, Network, ORGS};

const DAY: u64 = 86_400;

// ------------------------------------------------------------- constructor

pub async fn founders_are_bootstrapped_by_the_constructor(net: &Network) {
    let d = &net.deployment;
    let logs = net
        .ledger
        .logs(&LogFilter {
            from_block: d.deployed_at_block,
            to_block: Some(d.deployed_at_block),
            addresses: vec![d.consortium],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.len(), ORGS.len());
    for (i, log) in logs.iter().enumerate() {
        let Some(ContractEvent::Consortium(ConsortiumEvents::OrganisationAdded(e))) =
            decode_event(d, log)
        else {
            panic!("expected OrganisationAdded, got {log:?}");
        };
        assert_eq!(e.orgKey, key_of(ORGS[i]));
        assert_eq!(e.orgId, ORGS[i]);
        assert_eq!(e.name, format!("The {}", ORGS[i]));
        assert_eq!(e.admins, vec![net.admin(i).address()]);
    }
    let c = &net.consortium;
    for (i, id) in ORGS.iter().enumerate() {
        assert_eq!(c.org_id_at(i as u64).await.unwrap(), *id);
        let org = c.get_org(id).await.unwrap();
        assert_eq!(org.name, format!("The {id}"));
        assert_eq!(org.admins, vec![net.admin(i).address()]);
        assert!(org.added_at > 0);
        assert_eq!(c.org_of_admin(net.admin(i).address()).await.unwrap(), *id);
    }
}

pub async fn constructor_rejects_no_founders_mismatched_lists_and_bad_ids(net: &Network) {
    let deployer = net.admin(0);
    reverted(
        deploy_consortium(net.ledger.as_ref(), deployer, &[]).await,
        "at least one founding organisation is required",
    );
    let mismatched = C::constructorCall {
        orgIds: vec!["a".into(), "b".into()],
        names: vec!["A".into()],
        admins: vec![vec![address()], vec![address()]],
    };
    let code = creation_code(ContractName::Consortium).unwrap();
    reverted(
        net.deploy_raw(code.clone(), mismatched.abi_encode()).await,
        "orgIds, names and admins must have the same length",
    );
    let mismatched_admins = C::constructorCall {
        orgIds: vec!["a".into()],
        names: vec!["A".into()],
        admins: vec![],
    };
    reverted(
        net.deploy_raw(code, mismatched_admins.abi_encode()).await,
        "orgIds, names and admins must have the same length",
    );
    let founder = |id: &str, admins: Vec<Address>| FoundingOrg {
        id: id.into(),
        name: "X".into(),
        admins,
    };
    reverted(
        deploy_consortium(
            net.ledger.as_ref(),
            deployer,
            &[founder("Bad Id", vec![address()])],
        )
        .await,
        "organisation id may only contain a-z, 0-9, '.', '_' and '-'",
    );
    let shared = address();
    reverted(
        deploy_consortium(
            net.ledger.as_ref(),
            deployer,
            &[founder("a", vec![shared]), founder("a", vec![address()])],
        )
        .await,
        "organisation a already exists",
    );
    reverted(
        deploy_consortium(
            net.ledger.as_ref(),
            deployer,
            &[founder("a", vec![shared]), founder("b", vec![shared])],
        )
        .await,
        "account is already an admin of an organisation",
    );
}

pub async fn public_constants_have_their_documented_values(net: &Network) {
    let at = net.deployment.consortium;
    assert_eq!(net.view(at, C::DEFAULT_PROPOSAL_TTLCall {}).await, 7 * DAY);
    assert_eq!(net.view(at, C::MAX_PROPOSAL_TTLCall {}).await, 90 * DAY);
    assert_eq!(net.view(at, C::MAX_ADMINSCall {}).await, U256::from(16));
}

// ----------------------------------------------------------- organisations

pub async fn org_views_list_organisations_and_refuse_unknown_ones(net: &Network) {
    let c = &net.consortium;
    assert!(c.org_count().await.unwrap() >= 4);
    assert!(c.is_org("retailer").await.unwrap());
    assert!(!c.is_org("nowhere").await.unwrap());
    assert!(c
        .is_admin("supplier", net.admin(0).address())
        .await
        .unwrap());
    assert!(!c
        .is_admin("supplier", net.admin(1).address())
        .await
        .unwrap());
    assert!(!c.is_admin("nowhere", net.admin(0).address()).await.unwrap());
    assert_eq!(c.org_of_admin(net.outsider.address()).await.unwrap(), "");
    reverted(c.get_org("nowhere").await, "unknown organisation nowhere");
    reverted(c.org_id_at(u64::MAX).await, "index out of range");
    let listed = c.list_orgs().await.unwrap();
    assert_eq!(listed[3].id, "retailer");
    assert_eq!(listed[3].admins, vec![net.admin(3).address()]);
}

// --------------------------------------------------------------- proposals

pub async fn propose_validates_the_new_organisation(net: &Network) {
    let (c, a0) = (&net.consortium, net.admin(0));
    let ok = [address()];
    let cases: Vec<(String, String, Vec<Address>, &str)> = vec![
        (
            "".into(),
            "N".into(),
            ok.to_vec(),
            "organisation id must be 1-32 bytes",
        ),
        (
            "a".repeat(33),
            "N".into(),
            ok.to_vec(),
            "organisation id must be 1-32 bytes",
        ),
        (
            "Upper".into(),
            "N".into(),
            ok.to_vec(),
            "organisation id may only contain a-z, 0-9, '.', '_' and '-'",
        ),
        (
            "sp ace".into(),
            "N".into(),
            ok.to_vec(),
            "organisation id may only contain a-z, 0-9, '.', '_' and '-'",
        ),
        (
            "supplier".into(),
            "N".into(),
            ok.to_vec(),
            "organisation supplier already exists",
        ),
        (
            "fresh".into(),
            "".into(),
            ok.to_vec(),
            "organisation name must be 1-64 bytes",
        ),
        (
            "fresh".into(),
            "n".repeat(65),
            ok.to_vec(),
            "organisation name must be 1-64 bytes",
        ),
        (
            "fresh".into(),
            "N".into(),
            vec![],
            "an organisation needs at least one admin",
        ),
        (
            "fresh".into(),
            "N".into(),
            (0..17).map(|_| address()).collect(),
            "too many admins",
        ),
        (
            "fresh".into(),
            "N".into(),
            vec![Address::ZERO],
            "admin account is the zero address",
        ),
        (
            "fresh".into(),
            "N".into(),
            vec![net.admin(1).address()],
            "account is already an admin of an organisation",
        ),
        (
            "fresh".into(),
            "N".into(),
            vec![ok[0], ok[0]],
            "duplicate admin account",
        ),
    ];
    for (id, name, admins, reason) in cases {
        reverted(c.propose(a0, &id, &name, &admins, 0).await, reason);
    }
    // The limits themselves are accepted.
    let longest = "a.b_c-0".repeat(4) + "wxyz";
    assert_eq!(longest.len(), 32);
    let sixteen: Vec<Address> = (0..16).map(|_| address()).collect();
    let (pid, _) = c
        .propose(a0, &longest, &"n".repeat(64), &sixteen, 0)
        .await
        .unwrap();
    let p = c.get_proposal(pid).await.unwrap();
    assert_eq!((p.org_id, p.admins), (longest, sixteen));
}

pub async fn propose_refuses_non_admins_and_overlong_ttls(net: &Network) {
    let c = &net.consortium;
    let id = net.unique("org");
    reverted(
        c.propose(&net.outsider, &id, "N", &[address()], 0).await,
        "caller is not an admin of any organisation",
    );
    reverted(
        c.propose(net.admin(0), &id, "N", &[address()], 90 * DAY + 1)
            .await,
        "proposal ttl exceeds MAX_PROPOSAL_TTL",
    );
    let (pid, _) = c
        .propose(net.admin(0), &id, "N", &[address()], 90 * DAY)
        .await
        .unwrap();
    let p = c.get_proposal(pid).await.unwrap();
    assert_eq!(p.expires_at - p.created_at, 90 * DAY);
}

pub async fn propose_counts_as_the_proposers_approval_and_three_of_four_execute(net: &Network) {
    let net = net.private().await;
    let c = &net.consortium;
    let (a0, a1, a2) = (net.admin(0), net.admin(1), net.admin(2));
    let newcomer = net.account().await;
    assert_eq!(c.approvals_needed().await.unwrap(), 3);
    assert_eq!(c.proposal_count().await.unwrap(), 0);

    let (pid, r) = c
        .propose(a0, "customer", "The customer", &[newcomer.address()], 0)
        .await
        .unwrap();
    assert_eq!(pid, U256::ZERO);
    let created = net
        .ledger
        .block(r.block_number)
        .await
        .unwrap()
        .unwrap()
        .timestamp;
    let ev = net.consortium_events(&r);
    let [ConsortiumEvents::OrganisationProposed(p), ConsortiumEvents::ProposalApproved(a)] =
        &ev[..]
    else {
        panic!("{ev:?}");
    };
    assert_eq!(p.proposalId, pid);
    assert_eq!(
        (p.orgId.as_str(), p.name.as_str()),
        ("customer", "The customer")
    );
    assert_eq!(p.admins, vec![newcomer.address()]);
    assert_eq!(
        (p.proposer, p.proposerOrg.as_str()),
        (a0.address(), "supplier")
    );
    assert_eq!(p.expiresAt, created + 7 * DAY);
    assert_eq!(a.proposalId, pid);
    assert_eq!(
        (a.orgId.as_str(), a.approverOrg.as_str()),
        ("customer", "supplier")
    );
    assert_eq!((a.by, a.approvals, a.needed), (a0.address(), 1, 3));

    let info = c.get_proposal(pid).await.unwrap();
    assert_eq!(info.status, ProposalStatus::Pending);
    assert_eq!((info.approvals, info.proposer), (1, a0.address()));
    assert_eq!(
        (info.proposer_org.as_str(), info.name.as_str()),
        ("supplier", "The customer")
    );
    assert_eq!(
        (info.created_at, info.expires_at),
        (created, created + 7 * DAY)
    );
    assert!(c.has_approved(pid, "supplier").await.unwrap());
    assert!(!c.has_approved(pid, "manufacturer").await.unwrap());

    let r = c.approve(a1, pid).await.unwrap();
    let ev = net.consortium_events(&r);
    let [ConsortiumEvents::ProposalApproved(a)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(
        (a.approverOrg.as_str(), a.by),
        ("manufacturer", a1.address())
    );
    assert_eq!((a.approvals, a.needed), (2, 3));
    assert!(!c.is_org("customer").await.unwrap());
    assert!(c.has_approved(pid, "manufacturer").await.unwrap());

    let r = c.approve(a2, pid).await.unwrap();
    let ev = net.consortium_events(&r);
    let [ConsortiumEvents::ProposalApproved(a), ConsortiumEvents::OrganisationAdded(added), ConsortiumEvents::ProposalExecuted(x)] =
        &ev[..]
    else {
        panic!("{ev:?}");
    };
    assert_eq!((a.approvals, a.needed), (3, 3));
    assert_eq!(added.orgKey, key_of("customer"));
    assert_eq!(
        (added.orgId.as_str(), added.name.as_str()),
        ("customer", "The customer")
    );
    assert_eq!(added.admins, vec![newcomer.address()]);
    assert_eq!((x.proposalId, x.orgId.as_str()), (pid, "customer"));

    let info = c.get_proposal(pid).await.unwrap();
    assert_eq!((info.status, info.approvals), (ProposalStatus::Executed, 3));
    assert_eq!(c.org_count().await.unwrap(), 5);
    assert_eq!(c.org_id_at(4).await.unwrap(), "customer");
    assert_eq!(c.approvals_needed().await.unwrap(), 3, "3 of 5");
    let org = c.get_org("customer").await.unwrap();
    assert_eq!(
        (org.name.as_str(), org.admins.clone()),
        ("The customer", vec![newcomer.address()])
    );
    assert!(org.brokers.is_empty() && org.added_at >= created);
    assert_eq!(
        c.org_of_admin(newcomer.address()).await.unwrap(),
        "customer"
    );
    // The new organisation's admin acts at once.
    c.add_broker(&newcomer, "customer", address(), k(1), k(2))
        .await
        .unwrap();
    assert_eq!(c.list_proposals().await.unwrap().len(), 1);
}

pub async fn propose_executes_at_once_in_a_one_organisation_consortium(net: &Network) {
    let founder = net.account().await;
    let d = deploy_consortium(
        net.ledger.as_ref(),
        &founder,
        &[FoundingOrg {
            id: "solo".into(),
            name: "Solo".into(),
            admins: vec![founder.address()],
        }],
    )
    .await
    .unwrap();
    let c = ledgermq_ledger::contracts::ConsortiumClient::new(net.ledger.clone(), d.consortium);
    assert_eq!(c.approvals_needed().await.unwrap(), 1);
    let joiner = address();
    let (pid, r) = c
        .propose(&founder, "duo", "Duo", &[joiner], 0)
        .await
        .unwrap();
    let names: Vec<&str> = r
        .logs
        .iter()
        .filter_map(|l| decode_event(&d, l))
        .map(|e| match e {
            ContractEvent::Consortium(ConsortiumEvents::OrganisationProposed(_)) => "proposed",
            ContractEvent::Consortium(ConsortiumEvents::ProposalApproved(_)) => "approved",
            ContractEvent::Consortium(ConsortiumEvents::OrganisationAdded(_)) => "added",
            ContractEvent::Consortium(ConsortiumEvents::ProposalExecuted(_)) => "executed",
            _ => "other",
        })
        .collect();
    assert_eq!(names, ["proposed", "approved", "added", "executed"]);
    assert_eq!(
        c.get_proposal(pid).await.unwrap().status,
        ProposalStatus::Executed
    );
    assert!(c.is_admin("duo", joiner).await.unwrap());
    assert_eq!(c.approvals_needed().await.unwrap(), 2, "2 of 2");
}

pub async fn proposal_ttl_sets_expiry_and_zero_means_seven_days(net: &Network) {
    let c = &net.consortium;
    let (pid, r) = c
        .propose(net.admin(1), &net.unique("org"), "N", &[address()], 3600)
        .await
        .unwrap();
    let ev = net.consortium_events(&r);
    let ConsortiumEvents::OrganisationProposed(p) = &ev[0] else {
        panic!("{ev:?}");
    };
    let info = c.get_proposal(pid).await.unwrap();
    assert_eq!(info.expires_at, info.created_at + 3600);
    assert_eq!(p.expiresAt, info.expires_at);
    let (pid, _) = c
        .propose(net.admin(1), &net.unique("org"), "N", &[address()], 0)
        .await
        .unwrap();
    let info = c.get_proposal(pid).await.unwrap();
    assert_eq!(info.expires_at, info.created_at + 7 * DAY);
}

pub async fn approve_refuses_outsiders_repeats_unknown_and_settled_proposals(net: &Network) {
    let c = &net.consortium;
    let (pid, _) = c
        .propose(net.admin(0), &net.unique("org"), "N", &[address()], 0)
        .await
        .unwrap();
    reverted(
        c.approve(&net.outsider, pid).await,
        "caller is not an admin of any organisation",
    );
    reverted(
        c.approve(net.admin(0), pid).await,
        "organisation supplier has already approved this proposal",
    );
    c.approve(net.admin(1), pid).await.unwrap();
    reverted(
        c.approve(net.admin(1), pid).await,
        "organisation manufacturer has already approved this proposal",
    );
    reverted(c.approve(net.admin(1), U256::MAX).await, "unknown proposal");
    reverted(c.get_proposal(U256::MAX).await, "unknown proposal");
    assert!(!c.has_approved(U256::MAX, "supplier").await.unwrap());
    c.cancel(net.admin(0), pid).await.unwrap();
    reverted(
        c.approve(net.admin(2), pid).await,
        "proposal is not pending",
    );
}

pub async fn approve_after_expiry_reverts_and_the_proposal_reads_as_expired(net: &Network) {
    let c = &net.consortium;
    let proposer = net.admin(2);
    let (pid, _) = c
        .propose(proposer, &net.unique("org"), "N", &[address()], 1)
        .await
        .unwrap();
    assert_eq!(
        c.get_proposal(pid).await.unwrap().status,
        ProposalStatus::Pending
    );
    // Block times have one-second resolution: two seconds later the chain's
    // next block is past `expiresAt = createdAt + 1`.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    net.new_block(proposer).await;
    assert_eq!(
        c.get_proposal(pid).await.unwrap().status,
        ProposalStatus::Expired
    );
    reverted(c.approve(net.admin(3), pid).await, "proposal has expired");
    reverted(c.cancel(proposer, pid).await, "proposal has expired");
    assert_eq!(c.get_proposal(pid).await.unwrap().approvals, 1);
}

pub async fn executing_approval_reverts_when_the_org_id_was_taken_meanwhile(net: &Network) {
    let net = net.private().await;
    let c = &net.consortium;
    let (first, _) = c
        .propose(net.admin(0), "dup", "First", &[address()], 0)
        .await
        .unwrap();
    let (second, _) = c
        .propose(net.admin(3), "dup", "Second", &[address()], 0)
        .await
        .unwrap();
    c.approve(net.admin(1), first).await.unwrap();
    c.approve(net.admin(2), first).await.unwrap();
    assert_eq!(c.get_org("dup").await.unwrap().name, "First");
    // Five organisations now: the second proposal needs 3 approvals.
    c.approve(net.admin(1), second).await.unwrap();
    reverted(
        c.approve(net.admin(2), second).await,
        "organisation dup already exists",
    );
    let p = c.get_proposal(second).await.unwrap();
    assert_eq!((p.status, p.approvals), (ProposalStatus::Pending, 2));
    assert!(!c.has_approved(second, "distributor").await.unwrap());
    c.cancel(net.admin(3), second).await.unwrap();
}

pub async fn executing_approval_reverts_when_an_admin_joined_another_org_meanwhile(net: &Network) {
    let net = net.private().await;
    let c = &net.consortium;
    let contested = address();
    let (pid, _) = c
        .propose(net.admin(0), "late", "Late", &[contested], 0)
        .await
        .unwrap();
    c.approve(net.admin(1), pid).await.unwrap();
    c.add_admin(net.admin(3), "retailer", contested)
        .await
        .unwrap();
    reverted(
        c.approve(net.admin(2), pid).await,
        "account is already an admin of an organisation",
    );
    assert!(!c.is_org("late").await.unwrap());
    assert_eq!(
        c.get_proposal(pid).await.unwrap().status,
        ProposalStatus::Pending
    );
}

pub async fn cancel_by_the_proposer_emits_and_settles_the_proposal(net: &Network) {
    let c = &net.consortium;
    let id = net.unique("org");
    let proposer = net.admin(1);
    let (pid, _) = c
        .propose(proposer, &id, "N", &[address()], 3600)
        .await
        .unwrap();
    let r = c.cancel(proposer, pid).await.unwrap();
    let ev = net.consortium_events(&r);
    let [ConsortiumEvents::ProposalCancelled(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(
        (e.proposalId, e.orgId.as_str(), e.by),
        (pid, id.as_str(), proposer.address())
    );
    let p = c.get_proposal(pid).await.unwrap();
    assert_eq!((p.status, p.approvals), (ProposalStatus::Cancelled, 1));
    assert!(!c.is_org(&id).await.unwrap());
}

pub async fn cancel_refuses_others_unknown_and_settled_proposals(net: &Network) {
    let c = &net.consortium;
    let (pid, _) = c
        .propose(net.admin(0), &net.unique("org"), "N", &[address()], 0)
        .await
        .unwrap();
    reverted(
        c.cancel(net.admin(1), pid).await,
        "only the proposer may cancel a proposal",
    );
    reverted(
        c.cancel(&net.outsider, pid).await,
        "only the proposer may cancel a proposal",
    );
    reverted(c.cancel(net.admin(0), U256::MAX).await, "unknown proposal");
    c.cancel(net.admin(0), pid).await.unwrap();
    reverted(c.cancel(net.admin(0), pid).await, "proposal is not pending");
}

// ------------------------------------------------------------------ admins

pub async fn add_admin_emits_and_the_new_admin_can_act(net: &Network) {
    let net = net.private().await;
    let c = &net.consortium;
    let extra = net.account().await;
    let r = c
        .add_admin(net.admin(0), "supplier", extra.address())
        .await
        .unwrap();
    let ev = net.consortium_events(&r);
    let [ConsortiumEvents::AdminAdded(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.orgKey, key_of("supplier"));
    assert_eq!(
        (e.orgId.as_str(), e.account, e.by),
        ("supplier", extra.address(), net.admin(0).address())
    );
    assert!(c.is_admin("supplier", extra.address()).await.unwrap());
    assert_eq!(c.org_of_admin(extra.address()).await.unwrap(), "supplier");
    assert_eq!(
        c.get_org("supplier").await.unwrap().admins,
        vec![net.admin(0).address(), extra.address()]
    );
    // The new admin may remove the founder (admins are peers).
    c.remove_admin(&extra, "supplier", net.admin(0).address())
        .await
        .unwrap();
    assert_eq!(
        c.get_org("supplier").await.unwrap().admins,
        vec![extra.address()]
    );
}

pub async fn add_admin_refuses_non_admins_unknown_orgs_and_bad_accounts(net: &Network) {
    let c = &net.consortium;
    let a0 = net.admin(0);
    reverted(
        c.add_admin(net.admin(1), "supplier", address()).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        c.add_admin(&net.outsider, "supplier", address()).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        c.add_admin(a0, "nowhere", address()).await,
        "unknown organisation nowhere",
    );
    reverted(
        c.add_admin(a0, "supplier", net.admin(1).address()).await,
        "account is already an admin of an organisation",
    );
    reverted(
        c.add_admin(a0, "supplier", a0.address()).await,
        "account is already an admin of an organisation",
    );
    reverted(
        c.add_admin(a0, "supplier", Address::ZERO).await,
        "admin account is the zero address",
    );
}

pub async fn add_admin_refuses_a_seventeenth_admin(net: &Network) {
    let net = net.private().await;
    let c = &net.consortium;
    for _ in 1..16 {
        c.add_admin(net.admin(2), "distributor", address())
            .await
            .unwrap();
    }
    assert_eq!(c.get_org("distributor").await.unwrap().admins.len(), 16);
    reverted(
        c.add_admin(net.admin(2), "distributor", address()).await,
        "too many admins",
    );
}

pub async fn remove_admin_emits_and_revokes_the_account(net: &Network) {
    let net = net.private().await;
    let c = &net.consortium;
    let extra = address();
    c.add_admin(net.admin(1), "manufacturer", extra)
        .await
        .unwrap();
    let r = c
        .remove_admin(net.admin(1), "manufacturer", extra)
        .await
        .unwrap();
    let ev = net.consortium_events(&r);
    let [ConsortiumEvents::AdminRemoved(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.orgKey, key_of("manufacturer"));
    assert_eq!(
        (e.orgId.as_str(), e.account, e.by),
        ("manufacturer", extra, net.admin(1).address())
    );
    assert!(!c.is_admin("manufacturer", extra).await.unwrap());
    assert_eq!(c.org_of_admin(extra).await.unwrap(), "");
    assert_eq!(
        c.get_org("manufacturer").await.unwrap().admins,
        vec![net.admin(1).address()]
    );
    // The removed account is free to administer another organisation.
    c.add_admin(net.admin(2), "distributor", extra)
        .await
        .unwrap();
    // An admin may remove itself while another remains.
    let r = c
        .remove_admin(net.admin(2), "distributor", net.admin(2).address())
        .await
        .unwrap();
    let ev = net.consortium_events(&r);
    assert!(matches!(&ev[..], [ConsortiumEvents::AdminRemoved(e)] if e.account == e.by));
    assert_eq!(c.get_org("distributor").await.unwrap().admins, vec![extra]);
}

pub async fn remove_admin_refuses_strangers_and_the_last_admin(net: &Network) {
    let c = &net.consortium;
    let a0 = net.admin(0);
    reverted(
        c.remove_admin(net.admin(1), "supplier", a0.address()).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        c.remove_admin(a0, "nowhere", a0.address()).await,
        "unknown organisation nowhere",
    );
    reverted(
        c.remove_admin(a0, "supplier", net.admin(1).address()).await,
        "account is not an admin of this organisation",
    );
    reverted(
        c.remove_admin(a0, "supplier", address()).await,
        "account is not an admin of this organisation",
    );
    reverted(
        c.remove_admin(a0, "supplier", a0.address()).await,
        "cannot remove the last admin of an organisation",
    );
}

// ----------------------------------------------------------------- brokers

pub async fn add_broker_emits_and_registers_the_node(net: &Network) {
    let c = &net.consortium;
    let node = address();
    let (sk, ak) = (net.unique_b256(), net.unique_b256());
    let r = c
        .add_broker(net.admin(1), "manufacturer", node, sk, ak)
        .await
        .unwrap();
    let added_at = net
        .ledger
        .block(r.block_number)
        .await
        .unwrap()
        .unwrap()
        .timestamp;
    let ev = net.consortium_events(&r);
    let [ConsortiumEvents::BrokerAdded(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.orgKey, key_of("manufacturer"));
    assert_eq!((e.orgId.as_str(), e.account), ("manufacturer", node));
    assert_eq!((e.signingKey, e.agreementKey), (sk, ak));
    assert!(c.is_broker(node).await.unwrap());
    assert_eq!(c.org_of_broker(node).await.unwrap(), "manufacturer");
    assert_eq!(c.org_of_broker(address()).await.unwrap(), "");
    let info = c.get_broker(node).await.unwrap();
    assert_eq!(
        (info.org.as_str(), info.signing_key, info.agreement_key),
        ("manufacturer", sk, ak)
    );
    assert_eq!(info.added_at, added_at);
    assert!(c
        .get_org("manufacturer")
        .await
        .unwrap()
        .brokers
        .contains(&node));
    let count = c.broker_count().await.unwrap();
    let mut found = false;
    for i in 0..count {
        found |= c.broker_at(i).await.unwrap() == node;
    }
    assert!(found, "brokerAt lists the new node");
    assert!(c.list_brokers().await.unwrap().contains(&info));
    // The shared network's own node, registered at deployment.
    let own = c.get_broker(net.broker.address()).await.unwrap();
    assert_eq!(
        (own.org.as_str(), own.signing_key, own.agreement_key),
        ("supplier", k(0xb0), k(0xb1))
    );
}

pub async fn add_broker_refuses_non_admins_zero_accounts_zero_keys_and_duplicates(net: &Network) {
    let c = &net.consortium;
    let a0 = net.admin(0);
    let node = address();
    reverted(
        c.add_broker(net.admin(1), "supplier", node, k(1), k(2))
            .await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        c.add_broker(a0, "nowhere", node, k(1), k(2)).await,
        "unknown organisation nowhere",
    );
    reverted(
        c.add_broker(a0, "supplier", Address::ZERO, k(1), k(2))
            .await,
        "broker account is the zero address",
    );
    for (sk, ak) in [(k(0), k(2)), (k(1), k(0))] {
        reverted(
            c.add_broker(a0, "supplier", node, sk, ak).await,
            "broker keys must not be zero",
        );
    }
    reverted(
        c.add_broker(
            net.admin(1),
            "manufacturer",
            net.broker.address(),
            k(1),
            k(2),
        )
        .await,
        "account is already a registered broker",
    );
    assert!(!c.is_broker(node).await.unwrap());
}

pub async fn remove_broker_emits_and_forgets_the_node(net: &Network) {
    let c = &net.consortium;
    let node = address();
    c.add_broker(net.admin(2), "distributor", node, k(1), k(2))
        .await
        .unwrap();
    let r = c.remove_broker(net.admin(2), node).await.unwrap();
    let ev = net.consortium_events(&r);
    let [ConsortiumEvents::BrokerRemoved(e)] = &ev[..] else {
        panic!("{ev:?}");
    };
    assert_eq!(e.orgKey, key_of("distributor"));
    assert_eq!(
        (e.orgId.as_str(), e.account, e.by),
        ("distributor", node, net.admin(2).address())
    );
    assert!(!c.is_broker(node).await.unwrap());
    reverted(
        c.get_broker(node).await,
        "account is not a registered broker",
    );
    assert!(!c
        .get_org("distributor")
        .await
        .unwrap()
        .brokers
        .contains(&node));
    assert!(c
        .list_brokers()
        .await
        .unwrap()
        .iter()
        .all(|b| b.account != node));
    // A removed account may be registered again.
    c.add_broker(net.admin(3), "retailer", node, k(3), k(4))
        .await
        .unwrap();
    assert_eq!(c.get_broker(node).await.unwrap().org, "retailer");
}

pub async fn replace_broker_swaps_accounts_and_rotates_keys_in_place(net: &Network) {
    let c = &net.consortium;
    let a3 = net.admin(3);
    let (old, new) = (address(), address());
    c.add_broker(a3, "retailer", old, k(1), k(2)).await.unwrap();
    let r = c.replace_broker(a3, old, new, k(3), k(4)).await.unwrap();
    let ev = net.consortium_events(&r);
    let [ConsortiumEvents::BrokerRemoved(gone), ConsortiumEvents::BrokerAdded(came)] = &ev[..]
    else {
        panic!("{ev:?}");
    };
    assert_eq!(
        (gone.orgId.as_str(), gone.account, gone.by),
        ("retailer", old, a3.address())
    );
    assert_eq!((came.orgId.as_str(), came.account), ("retailer", new));
    assert_eq!((came.signingKey, came.agreementKey), (k(3), k(4)));
    assert!(!c.is_broker(old).await.unwrap());
    assert_eq!(c.get_broker(new).await.unwrap().signing_key, k(3));
    let brokers = c.get_org("retailer").await.unwrap().brokers;
    assert!(brokers.contains(&new) && !brokers.contains(&old));
    // Key rotation: the same account, new keys.
    let r = c.replace_broker(a3, new, new, k(5), k(6)).await.unwrap();
    let ev = net.consortium_events(&r);
    assert!(
        matches!(&ev[..], [ConsortiumEvents::BrokerRemoved(g), ConsortiumEvents::BrokerAdded(a)]
        if g.account == new && a.account == new && a.signingKey == k(5) && a.agreementKey == k(6))
    );
    let info = c.get_broker(new).await.unwrap();
    assert_eq!((info.signing_key, info.agreement_key), (k(5), k(6)));
    // The replacement is checked like a new node.
    reverted(
        c.replace_broker(a3, new, Address::ZERO, k(1), k(2)).await,
        "broker account is the zero address",
    );
    reverted(
        c.replace_broker(a3, new, address(), k(0), k(2)).await,
        "broker keys must not be zero",
    );
    reverted(
        c.replace_broker(a3, new, net.broker.address(), k(1), k(2))
            .await,
        "account is already a registered broker",
    );
    assert!(
        c.is_broker(new).await.unwrap(),
        "a failed replacement changes nothing"
    );
}

pub async fn broker_changes_refuse_unknown_brokers_and_other_orgs_admins(net: &Network) {
    let c = &net.consortium;
    let stranger = address();
    reverted(
        c.remove_broker(net.admin(0), stranger).await,
        "account is not a registered broker",
    );
    reverted(
        c.replace_broker(net.admin(0), stranger, address(), k(1), k(2))
            .await,
        "account is not a registered broker",
    );
    reverted(
        c.get_broker(stranger).await,
        "account is not a registered broker",
    );
    reverted(c.broker_at(u64::MAX).await, "index out of range");
    let own = net.broker.address();
    reverted(
        c.remove_broker(net.admin(1), own).await,
        "caller is not an admin of organisation supplier",
    );
    reverted(
        c.replace_broker(&net.outsider, own, address(), k(1), k(2))
            .await,
        "caller is not an admin of organisation supplier",
    );
    assert!(c.is_broker(own).await.unwrap());
}
