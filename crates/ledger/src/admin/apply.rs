//! Declarative set-up of a consortium from one TOML file (`ledgermq admin
//! apply`): organisations with their admin key files, broker nodes, topics
//! with their owners and flags, devices with their rights.
//!
//! Idempotent: each step first reads the ledger and only sends what is
//! missing, so a second run (or a run after a failure) converges. Key files
//! are created (0600) only when missing; bundles are written once per device.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy_primitives::{Address, U256};
use serde::Deserialize;

use super::{AdminClient, BrokerNodeFile, BrokerNodeKeys, TopicRight};
use crate::account::LocalAccount;
use crate::contracts::{deploy_consortium, Deployment, FoundingOrg, ProposalStatus};
use crate::{Ledger, LedgerError, LedgerResult, Signer, TxRequest};

/// The apply file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyFile {
    #[serde(default, rename = "org")]
    pub orgs: Vec<OrgSpec>,
    #[serde(default, rename = "broker")]
    pub brokers: Vec<BrokerSpec>,
    #[serde(default, rename = "topic")]
    pub topics: Vec<TopicSpec>,
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSpec {
    pub id: String,
    pub name: String,
    /// Admin key file names (`<keys dir>/<name>.key`), created if missing.
    pub admins: Vec<String>,
    /// Founding organisations go into the Consortium constructor; the others
    /// join by proposal and majority approval.
    #[serde(default)]
    pub founding: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSpec {
    /// Key files `<keys dir>/<name>.key` (account) and `<name>.node.json`.
    pub name: String,
    pub org: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    pub org: String,
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default)]
    pub publish_open: bool,
    #[serde(default = "yes")]
    pub subscribe_open: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    pub id: String,
    pub org: String,
    /// `TOPIC:pub`, `TOPIC:sub` or `TOPIC:pub,sub`.
    #[serde(default)]
    pub rights: Vec<String>,
}

impl ApplyFile {
    pub fn parse(text: &str) -> LedgerResult<Self> {
        let file: Self = toml::from_str(text)
            .map_err(|e| LedgerError::Other(format!("invalid apply file: {e}")))?;
        if !file.orgs.iter().any(|o| o.founding) {
            return Err(LedgerError::Other(
                "invalid apply file: no organisation has founding = true".into(),
            ));
        }
        for d in &file.devices {
            for r in &d.rights {
                r.parse::<TopicRight>()
                    .map_err(|e| LedgerError::Other(format!("device {}: {e}", d.id)))?;
            }
        }
        Ok(file)
    }

    pub fn load(path: &Path) -> LedgerResult<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LedgerError::Storage(format!("{}: {e}", path.display())))?;
        Self::parse(&text)
    }
}

/// Where apply reads and writes files, and how it pays for gas.
pub struct ApplyOptions<'a> {
    pub keys_dir: PathBuf,
    pub bundles_dir: PathBuf,
    /// Read if it exists; otherwise the contracts are deployed and it is written.
    pub deployment_path: PathBuf,
    /// Deploys when there is no deployment yet (default: the first founding admin).
    pub deployer: Option<&'a dyn Signer>,
    /// On chains that charge gas: sends `amount` wei from this account to
    /// every admin and broker account apply creates.
    pub fund: Option<(&'a dyn Signer, U256)>,
}

/// What apply did, one line per action.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub deployment: Option<Deployment>,
    pub actions: Vec<String>,
}

struct Keys {
    admins: HashMap<String, Vec<LocalAccount>>,
    created: Vec<Address>,
}

fn load_or_create(
    dir: &Path,
    name: &str,
    created: &mut Vec<Address>,
) -> LedgerResult<LocalAccount> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(LedgerError::Other(format!("invalid key name {name:?}")));
    }
    let path = dir.join(format!("{name}.key"));
    if path.exists() {
        LocalAccount::load(&path)
    } else {
        let account = LocalAccount::create(&path)?;
        created.push(account.address());
        Ok(account)
    }
}

/// The founding organisations of `file`, loading (or creating, 0600) their
/// admin key files under `keys_dir`.
pub fn founders(file: &ApplyFile, keys_dir: &Path) -> LedgerResult<Vec<FoundingOrg>> {
    let mut created = Vec::new();
    let mut out = Vec::new();
    for org in file.orgs.iter().filter(|o| o.founding) {
        let mut admins = Vec::new();
        for name in &org.admins {
            admins.push(load_or_create(keys_dir, name, &mut created)?.address());
        }
        out.push(FoundingOrg {
            id: org.id.clone(),
            name: org.name.clone(),
            admins,
        });
    }
    Ok(out)
}

/// Applies `file` to the ledger.
pub async fn apply(
    ledger: Arc<dyn Ledger>,
    file: &ApplyFile,
    opts: &ApplyOptions<'_>,
) -> LedgerResult<ApplyReport> {
    let mut report = ApplyReport::default();
    let mut keys = Keys {
        admins: HashMap::new(),
        created: Vec::new(),
    };
    for org in &file.orgs {
        let mut list = Vec::new();
        for name in &org.admins {
            list.push(load_or_create(&opts.keys_dir, name, &mut keys.created)?);
        }
        if list.is_empty() {
            return Err(LedgerError::Other(format!(
                "organisation {} has no admins",
                org.id
            )));
        }
        keys.admins.insert(org.id.clone(), list);
    }
    let mut broker_accounts = Vec::new();
    for b in &file.brokers {
        let account = load_or_create(&opts.keys_dir, &b.name, &mut keys.created)?;
        let node_path = opts.keys_dir.join(format!("{}.node.json", b.name));
        let node = if node_path.exists() {
            BrokerNodeFile::load(&node_path)?
        } else {
            let node = BrokerNodeFile::new(account.address(), &b.org, &BrokerNodeKeys::generate());
            node.write_new(&node_path)?;
            node
        };
        broker_accounts.push((b, account, node));
    }
    if let Some((funder, amount)) = opts.fund {
        for a in &keys.created {
            let tx = TxRequest {
                to: Some(*a),
                value: amount,
                ..TxRequest::default()
            };
            ledger.send_transaction(funder, tx).await?;
        }
    }
    let admin_of = |org: &str| -> LedgerResult<&LocalAccount> {
        keys.admins.get(org).and_then(|l| l.first()).ok_or_else(|| {
            LedgerError::Other(format!("organisation {org} is not in the apply file"))
        })
    };

    // Contracts.
    let deployment = if opts.deployment_path.exists() {
        let text = std::fs::read_to_string(&opts.deployment_path).map_err(|e| {
            LedgerError::Storage(format!("{}: {e}", opts.deployment_path.display()))
        })?;
        Deployment::from_toml(&text)?
    } else {
        let founders: Vec<FoundingOrg> = file
            .orgs
            .iter()
            .filter(|o| o.founding)
            .map(|o| FoundingOrg {
                id: o.id.clone(),
                name: o.name.clone(),
                admins: keys.admins[&o.id].iter().map(|a| a.address()).collect(),
            })
            .collect();
        let default_deployer = admin_of(&founders[0].id)?;
        let deployer: &dyn Signer = opts.deployer.unwrap_or(default_deployer);
        let d = deploy_consortium(ledger.as_ref(), deployer, &founders).await?;
        write_plain(&opts.deployment_path, &d.to_toml())?;
        report.actions.push(format!(
            "deployed consortium {} registry {} audit {}",
            d.consortium, d.registry, d.audit
        ));
        d
    };
    report.deployment = Some(deployment);
    let admin = AdminClient::new(ledger.clone(), deployment);

    // Organisations that join by proposal.
    for org in file.orgs.iter().filter(|o| !o.founding) {
        if admin.consortium.is_org(&org.id).await? {
            continue;
        }
        join_by_majority(&admin, file, org, &keys, &mut report).await?;
    }

    // Broker nodes.
    for (spec, account, node) in &broker_accounts {
        if admin.consortium.is_broker(account.address()).await? {
            continue;
        }
        let signer = admin_of(&spec.org)?;
        admin
            .consortium
            .add_broker(
                signer,
                &spec.org,
                account.address(),
                node.signing_public,
                node.agreement_public,
            )
            .await?;
        report.actions.push(format!(
            "added broker {} ({}) to {}",
            spec.name,
            account.address(),
            spec.org
        ));
    }

    // Topics with their owners and flags.
    for t in &file.topics {
        let signer = admin_of(&t.org)?;
        if !admin.registry.is_topic(&t.name).await? {
            admin
                .registry
                .create_topic(
                    signer,
                    &t.org,
                    &t.name,
                    t.sensitive,
                    t.publish_open,
                    t.subscribe_open,
                )
                .await?;
            report
                .actions
                .push(format!("created topic {} owned by {}", t.name, t.org));
            continue;
        }
        let now = admin.registry.get_topic(&t.name).await?;
        if (now.sensitive, now.publish_open, now.subscribe_open)
            != (t.sensitive, t.publish_open, t.subscribe_open)
        {
            admin
                .registry
                .set_topic_flags(
                    signer,
                    &t.name,
                    t.sensitive,
                    t.publish_open,
                    t.subscribe_open,
                )
                .await?;
            report
                .actions
                .push(format!("updated flags of topic {}", t.name));
        }
    }

    // Devices, rights, envelopes.
    for d in &file.devices {
        let signer = admin_of(&d.org)?;
        let rights: Vec<TopicRight> = d.rights.iter().filter_map(|r| r.parse().ok()).collect();
        let bundle_path = opts.bundles_dir.join(format!("{}.json", d.id));
        let registered = match admin.registry.get_device(&d.id).await {
            Ok(_) => true,
            Err(LedgerError::Reverted(r)) if r.starts_with("unknown device") => false,
            Err(e) => return Err(e),
        };
        if !registered {
            admin
                .register_device(signer, &d.org, &d.id, &rights, &bundle_path)
                .await?;
            report.actions.push(format!(
                "registered device {} of {} ({} rights)",
                d.id,
                d.org,
                rights.len()
            ));
            continue;
        }
        for r in &rights {
            if admin.registry.get_right(&d.id, &r.topic).await? != (r.publish, r.subscribe) {
                admin
                    .registry
                    .grant_right(signer, &d.id, &r.topic, r.publish, r.subscribe)
                    .await?;
                report
                    .actions
                    .push(format!("granted {} on {}", d.id, r.topic));
            }
        }
        if bundle_path.exists() {
            let r = admin.reseal(signer, &bundle_path, false).await?;
            if r.sealed > 0 {
                report.actions.push(format!(
                    "sealed the OTP key of {} to {} new broker node(s) of {}",
                    d.id, r.sealed, d.org
                ));
            }
            for (node, org) in &r.cleared_foreign {
                report.actions.push(format!(
                    "warning: removed the OTP envelope of {} held by {node} of {org}; \
                     its operator could act as the device until you run \
                     `ledgermq admin reseal --rotate-otp-key {}`",
                    d.id,
                    bundle_path.display()
                ));
            }
        } else {
            report.actions.push(format!(
                "warning: device {} is registered but {} is missing; its OTP key cannot be resealed",
                d.id,
                bundle_path.display()
            ));
        }
    }
    Ok(report)
}

async fn join_by_majority(
    admin: &AdminClient,
    file: &ApplyFile,
    org: &OrgSpec,
    keys: &Keys,
    report: &mut ApplyReport,
) -> LedgerResult<()> {
    let addresses: Vec<Address> = keys.admins[&org.id].iter().map(|a| a.address()).collect();
    let pending = admin
        .consortium
        .list_proposals()
        .await?
        .into_iter()
        .find(|p| p.org_id == org.id && p.status == ProposalStatus::Pending);
    let id = match pending {
        Some(p) => p.id,
        None => {
            let proposer_org = file
                .orgs
                .iter()
                .find(|o| o.founding)
                .map(|o| o.id.as_str())
                .unwrap_or_default();
            let proposer = &keys.admins[proposer_org][0];
            let (id, _) = admin
                .consortium
                .propose(proposer, &org.id, &org.name, &addresses, 0)
                .await?;
            report.actions.push(format!(
                "{proposer_org} proposed organisation {} (proposal {id})",
                org.id
            ));
            id
        }
    };
    for member in file.orgs.iter().filter(|o| o.id != org.id) {
        if admin.consortium.is_org(&org.id).await? {
            break;
        }
        if !admin.consortium.is_org(&member.id).await?
            || admin.consortium.has_approved(id, &member.id).await?
        {
            continue;
        }
        admin
            .consortium
            .approve(&keys.admins[&member.id][0], id)
            .await?;
        report
            .actions
            .push(format!("{} approved proposal {id}", member.id));
    }
    if !admin.consortium.is_org(&org.id).await? {
        return Err(LedgerError::Other(format!(
            "organisation {} did not reach a majority of approvals (proposal {id})",
            org.id
        )));
    }
    report
        .actions
        .push(format!("organisation {} joined the consortium", org.id));
    Ok(())
}

fn write_plain(path: &Path, text: &str) -> LedgerResult<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| LedgerError::Storage(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(path, text).map_err(|e| LedgerError::Storage(format!("{}: {e}", path.display())))
}
