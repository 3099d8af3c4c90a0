//! Backend-independent contract tests: every function, revert reason and
//! event of Consortium, Registry, Audit and Groups, through the typed clients and
//! `&dyn Ledger` only, so the same checks run on the embedded chain
//! (`contracts_embedded.rs`), on anvil (`contracts_anvil.rs`) and through the
//! embedded node's JSON-RPC (`rpc_embedded_node.rs`).
//!
//! One [`Network`] (a deployment with four founding organisations and a
//! broker node) is shared by all the tests of a binary. Tests that share it
//! use fresh device ids, topics, roots and accounts ([`Network::unique`]) and
//! never assert absolute counts or indexes; tests that must know the whole
//! state (the majority rule counts organisations, admin limits count admins)
//! deploy a private [`Network`] of their own.
//!
//! `coverage.rs` parses the Solidity sources and fails when a function,
//! revert reason or event has no test here.
#![allow(dead_code)]

pub mod audit;
pub mod consortium;
pub mod coverage;
pub mod groups;
pub mod registry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::SolCall;
use ledgermq_ledger::contracts::{
    deploy_consortium, receipt_events, AuditClient, AuditEvents, ConsortiumClient,
    ConsortiumEvents, ContractEvent, Deployment, FoundingOrg, GroupsClient, GroupsEvents,
    RegistryClient, RegistryEvents,
};
use ledgermq_ledger::{
    Ledger, LedgerError, LedgerResult, LocalAccount, Signer, TxReceipt, TxRequest,
};

/// The founding organisations; `Network::admins[i]` administers `ORGS[i]`.
pub const ORGS: [&str; 4] = ["supplier", "manufacturer", "distributor", "retailer"];

/// Asserts that `r` is a revert with exactly `reason`.
#[track_caller]
pub fn reverted<T: std::fmt::Debug>(r: LedgerResult<T>, reason: &str) {
    match r {
        Err(LedgerError::Reverted(got)) => assert_eq!(got, reason),
        other => panic!("expected revert {reason:?}, got {other:?}"),
    }
}

/// A recognisable non-zero 32-byte key.
pub fn k(b: u8) -> B256 {
    B256::repeat_byte(b)
}

/// The on-chain key of an org id, device id or topic.
pub fn key_of(s: &str) -> B256 {
    keccak256(s.as_bytes())
}

/// An address that never signs anything.
pub fn address() -> Address {
    LocalAccount::random().address()
}

/// Deploys with the four founders administered by keys[0..4] (`view_registry.rs`).
pub async fn deploy(ledger: &Arc<dyn Ledger>, keys: &[&dyn Signer]) -> Deployment {
    deploy_consortium(ledger.as_ref(), keys[0], &founders(keys))
        .await
        .expect("deploy")
}

fn founders(admins: &[&dyn Signer]) -> Vec<FoundingOrg> {
    ORGS.iter()
        .zip(admins)
        .map(|(id, admin)| FoundingOrg {
            id: id.to_string(),
            name: format!("The {id}"),
            admins: vec![admin.address()],
        })
        .collect()
}

/// A deployment of the four contracts and the accounts that run it.
pub struct Network {
    pub ledger: Arc<dyn Ledger>,
    funder: Option<Arc<LocalAccount>>,
    pub deployment: Deployment,
    pub consortium: ConsortiumClient,
    pub registry: RegistryClient,
    pub audit: AuditClient,
    pub groups: GroupsClient,
    /// `admins[i]` is the only admin of `ORGS[i]`.
    pub admins: Vec<LocalAccount>,
    /// A broker node of `supplier`, keys `k(0xb0)`, `k(0xb1)`.
    pub broker: LocalAccount,
    /// An account with no role anywhere.
    pub outsider: LocalAccount,
}

impl Network {
    /// Deploys a fresh network on `ledger`; `funder` pays for new accounts
    /// on chains that charge gas.
    pub async fn deploy(ledger: Arc<dyn Ledger>, funder: Option<Arc<LocalAccount>>) -> Network {
        let mut accounts = Vec::new();
        for _ in 0..6 {
            accounts.push(fresh_account(ledger.as_ref(), funder.as_deref()).await);
        }
        let outsider = accounts.pop().unwrap();
        let broker = accounts.pop().unwrap();
        let admins = accounts;
        let signers: Vec<&dyn Signer> = admins.iter().map(|a| a as &dyn Signer).collect();
        let deployment = deploy(&ledger, &signers).await;
        let consortium = ConsortiumClient::new(ledger.clone(), deployment.consortium);
        consortium
            .add_broker(&admins[0], "supplier", broker.address(), k(0xb0), k(0xb1))
            .await
            .expect("register the broker node");
        Network {
            registry: RegistryClient::new(ledger.clone(), deployment.registry),
            audit: AuditClient::new(ledger.clone(), deployment.audit),
            groups: GroupsClient::new(ledger.clone(), deployment.groups).expect("groups deployed"),
            consortium,
            ledger,
            funder,
            deployment,
            admins,
            broker,
            outsider,
        }
    }

    /// A separate deployment on the same ledger, for tests that need to
    /// know every organisation and admin.
    pub async fn private(&self) -> Network {
        Network::deploy(self.ledger.clone(), self.funder.clone()).await
    }

    /// A fresh account that can send transactions.
    pub async fn account(&self) -> LocalAccount {
        fresh_account(self.ledger.as_ref(), self.funder.as_deref()).await
    }

    /// `prefix` plus a number never handed out before in this process:
    /// valid as an org id, device id or topic level.
    pub fn unique(&self, prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// A non-zero 32-byte value never handed out before in this process.
    pub fn unique_b256(&self) -> B256 {
        key_of(&self.unique("b256"))
    }

    /// The admin of `ORGS[i]`.
    pub fn admin(&self, i: usize) -> &LocalAccount {
        &self.admins[i]
    }

    pub fn consortium_events(&self, receipt: &TxReceipt) -> Vec<ConsortiumEvents> {
        receipt_events(&self.deployment, receipt)
            .into_iter()
            .map(|e| match e {
                ContractEvent::Consortium(e) => e,
                other => panic!("not a Consortium event: {other:?}"),
            })
            .collect()
    }

    pub fn registry_events(&self, receipt: &TxReceipt) -> Vec<RegistryEvents> {
        receipt_events(&self.deployment, receipt)
            .into_iter()
            .map(|e| match e {
                ContractEvent::Registry(e) => e,
                other => panic!("not a Registry event: {other:?}"),
            })
            .collect()
    }

    pub fn groups_events(&self, receipt: &TxReceipt) -> Vec<GroupsEvents> {
        receipt_events(&self.deployment, receipt)
            .into_iter()
            .map(|e| match e {
                ContractEvent::Groups(e) => e,
                other => panic!("not a Groups event: {other:?}"),
            })
            .collect()
    }

    pub fn audit_events(&self, receipt: &TxReceipt) -> Vec<AuditEvents> {
        receipt_events(&self.deployment, receipt)
            .into_iter()
            .map(|e| match e {
                ContractEvent::Audit(e) => e,
                other => panic!("not an Audit event: {other:?}"),
            })
            .collect()
    }

    /// Calls a view that has no typed client method (public constants).
    pub async fn view<C: SolCall>(&self, to: Address, call: C) -> C::Return {
        let out = self
            .ledger
            .call(None, to, Bytes::from(call.abi_encode()))
            .await
            .expect("view call");
        C::abi_decode_returns(&out).expect("decode the view's result")
    }

    /// Timestamp of the latest block.
    pub async fn chain_time(&self) -> u64 {
        let head = self.ledger.block_number().await.unwrap();
        self.ledger.block(head).await.unwrap().unwrap().timestamp
    }

    /// Includes a transaction that changes no contract state, so that the
    /// head block (what views see) carries the current time.
    pub async fn new_block(&self, from: &dyn Signer) -> TxReceipt {
        let tx = TxRequest {
            to: Some(from.address()),
            ..TxRequest::default()
        };
        self.ledger.send_transaction(from, tx).await.unwrap()
    }

    /// Sends creation `code` with raw constructor arguments from the supplier admin.
    pub async fn deploy_raw(
        &self,
        code: Bytes,
        constructor_args: Vec<u8>,
    ) -> LedgerResult<TxReceipt> {
        let mut data = code.to_vec();
        data.extend_from_slice(&constructor_args);
        let tx = TxRequest {
            to: None,
            data: data.into(),
            ..TxRequest::default()
        };
        self.ledger.send_transaction(self.admin(0), tx).await
    }
}

async fn fresh_account(ledger: &dyn Ledger, funder: Option<&LocalAccount>) -> LocalAccount {
    let account = LocalAccount::random();
    if let Some(funder) = funder {
        let tx = TxRequest {
            to: Some(account.address()),
            value: U256::from(10u64).pow(U256::from(20u64)),
            ..TxRequest::default()
        };
        ledger
            .send_transaction(funder, tx)
            .await
            .expect("fund a test account");
    }
    account
}

/// One `#[test]` per check of `consortium.rs`, `registry.rs`, `audit.rs` and `groups.rs`
/// on the shared [`Network`] of the binary, deployed at first use on the
/// backend returned by `$backend()` (see `tests/backends`). `coverage.rs`
/// checks that every `pub async fn` of those files is listed here.
#[allow(unused_macros)]
macro_rules! contract_tests {
    ($backend:path) => {
        fn shared_network() -> &'static crate::contracts_suite::Network {
            static NETWORK: std::sync::OnceLock<crate::contracts_suite::Network> =
                std::sync::OnceLock::new();
            NETWORK.get_or_init(|| {
                let backend = $backend();
                backend.block_on(crate::contracts_suite::Network::deploy(
                    backend.ledger.clone(),
                    backend.funder.clone(),
                ))
            })
        }

        contract_tests!(@each $backend; consortium;
            founders_are_bootstrapped_by_the_constructor,
            constructor_rejects_no_founders_mismatched_lists_and_bad_ids,
            public_constants_have_their_documented_values,
            org_views_list_organisations_and_refuse_unknown_ones,
            propose_validates_the_new_organisation,
            propose_refuses_non_admins_and_overlong_ttls,
            propose_counts_as_the_proposers_approval_and_three_of_four_execute,
            propose_executes_at_once_in_a_one_organisation_consortium,
            proposal_ttl_sets_expiry_and_zero_means_seven_days,
            approve_refuses_outsiders_repeats_unknown_and_settled_proposals,
            approve_after_expiry_reverts_and_the_proposal_reads_as_expired,
            executing_approval_reverts_when_the_org_id_was_taken_meanwhile,
            executing_approval_reverts_when_an_admin_joined_another_org_meanwhile,
            cancel_by_the_proposer_emits_and_settles_the_proposal,
            cancel_refuses_others_unknown_and_settled_proposals,
            add_admin_emits_and_the_new_admin_can_act,
            add_admin_refuses_non_admins_unknown_orgs_and_bad_accounts,
            add_admin_refuses_a_seventeenth_admin,
            remove_admin_emits_and_revokes_the_account,
            remove_admin_refuses_strangers_and_the_last_admin,
            add_broker_emits_and_registers_the_node,
            add_broker_refuses_non_admins_zero_accounts_zero_keys_and_duplicates,
            remove_broker_emits_and_forgets_the_node,
            replace_broker_swaps_accounts_and_rotates_keys_in_place,
            broker_changes_refuse_unknown_brokers_and_other_orgs_admins,
        );
        contract_tests!(@each $backend; registry;
            constructor_refuses_a_consortium_address_without_code,
            public_constants_and_consortium_address,
            register_device_emits_and_stores_the_device,
            register_device_validates_caller_id_and_keys,
            device_views_list_devices_and_refuse_unknown_ones,
            update_device_keys_emits_and_replaces_the_keys,
            update_device_keys_refuses_strangers_unknown_devices_and_zero_keys,
            revoke_device_is_final_and_voids_later_changes,
            create_topic_emits_and_stores_the_flags,
            create_topic_validates_the_mqtt_topic_syntax,
            create_topic_refuses_non_admins_and_existing_topics,
            topic_views_list_topics_and_refuse_unknown_ones,
            set_topic_flags_emits_and_changes_the_flags,
            set_topic_flags_refuses_unknown_topics_and_other_orgs,
            grant_right_on_a_missing_topic_creates_it_for_the_devices_org,
            grant_right_sets_exactly_the_bits_given,
            grant_right_refuses_no_bits_strangers_and_revoked_devices,
            cross_org_publish_needs_publish_open_and_subscribe_needs_subscribe_open,
            revoke_right_by_device_or_topic_owner_emits_and_removes,
            revoke_right_refuses_strangers_missing_rights_unknown_ids,
            set_otp_envelope_emits_stores_and_replaces,
            set_otp_envelope_refuses_non_brokers_bad_sizes_and_strangers,
            blacklist_by_a_broker_of_any_org_emits_and_bans,
            blacklist_refuses_strangers_past_ends_missing_evidence_and_broker_shortening,
            admin_may_shorten_a_ban_and_lift_it,
            lift_blacklist_refuses_strangers_and_unbanned_devices,
        );
        contract_tests!(@each $backend; audit;
            constructor_refuses_a_consortium_address_without_code,
            public_constants_and_consortium_address,
            record_by_a_broker_emits_and_stores_the_record,
            record_refuses_non_brokers_and_overlong_fields,
            record_batch_appends_in_order_with_consecutive_indexes,
            record_batch_refuses_empty_and_oversized_batches,
            anchor_by_a_broker_emits_and_is_found_by_root,
            anchor_refuses_non_brokers_zero_roots_empty_and_inverted_ranges,
            anchor_refuses_a_root_anchored_before,
            anchor_views_index_anchors_per_broker,
            views_refuse_indexes_out_of_range,
        );
        contract_tests!(@each $backend; groups;
            constructor_refuses_addresses_without_code,
            public_constants_and_contract_addresses,
            create_group_emits_and_stores_the_group,
            create_group_refuses_non_admins_and_existing_names,
            create_group_validates_the_name,
            create_group_validates_filters_and_policy,
            group_views_list_groups_and_refuse_unknown_ones,
            update_group_emits_and_replaces_filters_and_policy,
            update_group_refuses_other_orgs_unknown_groups_and_bad_policy,
            add_member_emits_and_accepts_devices_of_any_org,
            add_member_refuses_strangers_duplicates_unknown_and_revoked_devices,
            remove_member_swap_pops_and_emits,
            remove_member_refuses_strangers_and_non_members,
            key_service_is_set_by_an_admin_and_commits_with_the_admins,
            set_key_service_refuses_non_admins_zero_keys_and_broker_nodes,
            commit_epoch_emits_stores_and_records_exchanges,
            commit_epoch_refuses_stale_epochs_zero_values_and_excess_counts,
            record_exchanges_only_for_the_latest_epoch_and_its_member_count,
            exchanges_go_only_to_current_active_members,
        );
    };
    (@each $backend:path; $module:ident; $($check:ident),* $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $check() {
                    let network = super::shared_network();
                    $backend().block_on(crate::contracts_suite::$module::$check(network));
                }
            )*
        }
    };
}
