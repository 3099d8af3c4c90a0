//! `ledgermq admin group …` and `ledgermq admin key-service …`: encryption
//! groups on the ledger (the Groups contract). The admin of the owning
//! organisation defines a group (the topic filters it protects, its
//! policy) and its members; the organisation's key service, registered
//! here, is the only account that may commit the group's key epochs.

use alloy_primitives::{Address, B256};
use anyhow::bail;
use clap::Subcommand;
use ledgermq_ledger::contracts::{GroupInfo, GroupsClient, Protection, VerifyPolicy};
use ledgermq_ledger::Signer;

use crate::ledger_cmd::{ledger_error, out};

#[derive(Subcommand)]
pub(super) enum GroupCmd {
    /// Define an encryption group of an organisation.
    Create {
        #[arg(long)]
        org: String,
        /// Group name: 1–64 bytes of letters, digits, `-`, `_`, `.`.
        #[arg(long)]
        name: String,
        /// A topic filter the group protects (repeatable, at least one); it
        /// applies to the organisation's own topics only.
        #[arg(long = "filter", value_name = "FILTER", required = true)]
        filters: Vec<String>,
        /// What payloads on its topics must be: sealed (encrypted and signed
        /// envelopes), signed (envelopes, signed-only allowed) or optional.
        #[arg(long, default_value = "sealed", value_parser = parse_protection)]
        protection: Protection,
        /// Who verifies envelope signatures: subscribers, sample (the broker
        /// checks one in 16) or every (the broker checks each one).
        #[arg(long, default_value = "subscribers", value_parser = parse_verify)]
        verify: VerifyPolicy,
        /// How long the previous key epoch stays acceptable after a new one
        /// is committed, in seconds.
        #[arg(long = "grace", value_name = "SECONDS", default_value_t = 60)]
        grace_seconds: u32,
    },
    /// Change a group's filters or policy; what is not given stays.
    Update {
        #[arg(long)]
        name: String,
        /// Replaces all filters (repeatable).
        #[arg(long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
        #[arg(long, value_parser = parse_protection)]
        protection: Option<Protection>,
        #[arg(long, value_parser = parse_verify)]
        verify: Option<VerifyPolicy>,
        #[arg(long = "grace", value_name = "SECONDS")]
        grace_seconds: Option<u32>,
    },
    /// Make an active device a member: it gets the group's keys and can read
    /// its topics (a device of any organisation; subscribe rights still
    /// decide who receives).
    Add {
        #[arg(long)]
        name: String,
        /// A device to add (repeatable: one transaction each, in order; the
        /// first refusal stops with what was added before it).
        #[arg(long = "device", required = true)]
        devices: Vec<String>,
    },
    /// Remove a member; its key service rotates the group key.
    Remove {
        #[arg(long)]
        name: String,
        #[arg(long)]
        device: String,
    },
    /// One group per line: name, organisation, protection, verify, filters.
    List,
    /// A group's policy, members and key epochs.
    Show { name: String },
}

#[derive(Subcommand)]
pub(super) enum KeyServiceCmd {
    /// Register (or replace) the key service of an organisation: the only
    /// account that may commit its groups' key epochs, and the Ed25519 key
    /// its key bundles are signed with.
    Set {
        #[arg(long)]
        org: String,
        /// Account (address) the key service sends its transactions from.
        #[arg(long)]
        address: Address,
        /// Ed25519 public key of the key service, 32 bytes hex.
        #[arg(long, value_name = "HEX")]
        signing_key: B256,
    },
    /// The organisation's registered key service.
    Show { org: String },
}

fn parse_protection(s: &str) -> Result<Protection, String> {
    Protection::parse(s).ok_or_else(|| format!("'{s}' is not one of sealed, signed, optional"))
}

fn parse_verify(s: &str) -> Result<VerifyPolicy, String> {
    VerifyPolicy::parse(s).ok_or_else(|| format!("'{s}' is not one of subscribers, sample, every"))
}

fn line(g: &GroupInfo) -> String {
    format!(
        "{}\t{}\t{}\tverify={}\tgrace={}s\t{}",
        g.name,
        g.org,
        g.protection.as_str(),
        g.verify.as_str(),
        g.grace_seconds,
        g.filters.join(",")
    )
}

pub(super) async fn run_group(
    groups: &GroupsClient,
    cmd: &GroupCmd,
    signer: impl Fn() -> anyhow::Result<Box<dyn Signer>>,
) -> anyhow::Result<()> {
    match cmd {
        GroupCmd::Create {
            org,
            name,
            filters,
            protection,
            verify,
            grace_seconds,
        } => {
            groups
                .create_group(
                    &*signer()?,
                    org,
                    name,
                    filters,
                    *protection,
                    *verify,
                    *grace_seconds,
                )
                .await
                .map_err(ledger_error)?;
            out!(
                "group {name} of {org} created: {} payloads on {}, verify={}",
                protection.as_str(),
                filters.join(", "),
                verify.as_str()
            );
        }
        GroupCmd::Update {
            name,
            filters,
            protection,
            verify,
            grace_seconds,
        } => {
            if filters.is_empty()
                && protection.is_none()
                && verify.is_none()
                && grace_seconds.is_none()
            {
                bail!("nothing to change: give --filter, --protection, --verify or --grace");
            }
            let g = groups.get_group(name).await.map_err(ledger_error)?;
            let filters = if filters.is_empty() {
                g.filters.clone()
            } else {
                filters.clone()
            };
            let (protection, verify, grace) = (
                protection.unwrap_or(g.protection),
                verify.unwrap_or(g.verify),
                grace_seconds.unwrap_or(g.grace_seconds),
            );
            groups
                .update_group(&*signer()?, name, &filters, protection, verify, grace)
                .await
                .map_err(ledger_error)?;
            let g = groups.get_group(name).await.map_err(ledger_error)?;
            out!("{}", line(&g));
        }
        GroupCmd::Add { name, devices } => {
            let signer = signer()?;
            for device in devices {
                groups
                    .add_member(&*signer, name, device)
                    .await
                    .map_err(|e| anyhow::anyhow!("{device}: {}", ledger_error(e)))?;
                out!("{device} is now a member of {name}");
            }
        }
        GroupCmd::Remove { name, device } => {
            groups
                .remove_member(&*signer()?, name, device)
                .await
                .map_err(ledger_error)?;
            out!("{device} is no longer a member of {name}; its key service rotates the key");
        }
        GroupCmd::List => {
            for g in groups.list_groups().await.map_err(ledger_error)? {
                out!("{}", line(&g));
            }
        }
        GroupCmd::Show { name } => {
            let g = groups.get_group(name).await.map_err(ledger_error)?;
            out!(
                "name: {}\norg: {}\nprotection: {}\nverify: {}\ngrace_seconds: {}\ncreated_at: {}",
                g.name,
                g.org,
                g.protection.as_str(),
                g.verify.as_str(),
                g.grace_seconds,
                g.created_at
            );
            g.filters.iter().for_each(|f| out!("filter: {f}"));
            for m in groups.members(name).await.map_err(ledger_error)? {
                out!("member: {m}");
            }
            for i in 0..groups.epoch_count(name).await.map_err(ledger_error)? {
                let e = groups.epoch_at(name, i).await.map_err(ledger_error)?;
                out!(
                    "epoch: {}\tcommitment={}\tmembers={}\tkey_exchanges={}\tat={}",
                    e.epoch,
                    e.commitment,
                    e.member_count,
                    e.recorded,
                    e.committed_at
                );
            }
        }
    }
    Ok(())
}

pub(super) async fn run_key_service(
    groups: &GroupsClient,
    cmd: &KeyServiceCmd,
    signer: impl Fn() -> anyhow::Result<Box<dyn Signer>>,
) -> anyhow::Result<()> {
    match cmd {
        KeyServiceCmd::Set {
            org,
            address,
            signing_key,
        } => {
            groups
                .set_key_service(&*signer()?, org, *address, *signing_key)
                .await
                .map_err(ledger_error)?;
            out!("key service of {org}: {address} (signing key {signing_key})");
        }
        KeyServiceCmd::Show { org } => {
            let k = groups.key_service(org).await.map_err(ledger_error)?;
            if k.account.is_zero() {
                bail!("organisation {org} has no key service registered");
            }
            out!("account: {}\nsigning_key: {}", k.account, k.signing_key);
        }
    }
    Ok(())
}
