//! `ledgermq admin …`: the consortium administrator's commands. Every
//! command that changes the ledger signs with `--account KEYFILE`; secrets
//! are written to 0600 files and never printed.

use std::path::PathBuf;

use alloy_primitives::{Address, B256, U256};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use ledgermq_ledger::admin::apply::{apply, ApplyFile, ApplyOptions};
use ledgermq_ledger::admin::{AdminClient, BrokerNodeFile, BrokerNodeKeys, TopicRight};
use ledgermq_ledger::contracts::GroupsClient;
use ledgermq_ledger::{LocalAccount, Signer, TxRequest};
use sha2::{Digest as _, Sha256};

use crate::ledger_cmd::{ledger_error, load_account, out, LedgerTarget};

mod group;

#[derive(Args)]
pub struct AdminArgs {
    #[command(flatten)]
    target: LedgerTarget,
    /// Key file of the signing administrator.
    #[arg(long, global = true, value_name = "KEYFILE")]
    account: Option<PathBuf>,
    #[command(subcommand)]
    cmd: AdminCmd,
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Local secp256k1 accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Organisations: propose, approve, list, show.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Admin accounts of an organisation.
    #[command(subcommand)]
    Admin(AdminAccountCmd),
    /// Broker nodes.
    #[command(subcommand)]
    Broker(BrokerCmd),
    /// Devices: register (with key generation and a provisioning bundle), revoke, list, show.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Publish/subscribe rights.
    #[command(subcommand)]
    Right(RightCmd),
    /// End-to-end encryption groups: create, update, members, list, show.
    #[command(subcommand)]
    Group(group::GroupCmd),
    /// The key service of an organisation (commits its groups' key epochs).
    #[command(subcommand)]
    KeyService(group::KeyServiceCmd),
    /// Seal the OTP keys of the given bundles to the nodes of the device's own
    /// organisation that lack an envelope, and delete envelopes held by nodes
    /// of other organisations or by removed nodes.
    Reseal {
        #[arg(required = true, value_name = "BUNDLE")]
        bundles: Vec<PathBuf>,
        /// Give each device a fresh OTP key (rewrites the bundle; hand the
        /// device its new bundle). Needed when another organisation's node
        /// held the old key.
        #[arg(long)]
        rotate_otp_key: bool,
    },
    /// One item per line.
    List { what: ListWhat },
    /// Declarative set-up of a whole consortium from a TOML file.
    Apply {
        file: PathBuf,
        /// Directory for the devices' provisioning bundles (`<device-id>.json`).
        #[arg(long, value_name = "OUTDIR")]
        bundles: PathBuf,
        /// Directory of admin and broker key files (created, 0600, when missing).
        #[arg(long, value_name = "DIR", default_value = "keys")]
        keys_dir: PathBuf,
        /// Wei sent from --account to each account apply creates (chains that charge gas).
        #[arg(long, value_name = "WEI")]
        fund: Option<U256>,
    },
}

#[derive(Subcommand)]
enum AccountCmd {
    /// Create a key file (mode 0600) and print the account address.
    New {
        #[arg(long, value_name = "KEYFILE")]
        out: PathBuf,
        /// Wei sent from --account to the new account (chains that charge
        /// gas: a key service's account pays for its epochs).
        #[arg(long, value_name = "WEI")]
        fund: Option<U256>,
    },
}

#[derive(Subcommand)]
enum OrgCmd {
    /// Propose a new organisation (counts as your organisation's approval).
    Propose {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Admin account address (repeatable).
        #[arg(long = "admin", required = true, value_name = "ADDRESS")]
        admins: Vec<Address>,
        /// Seconds until the proposal expires (0 = 7 days).
        #[arg(long, default_value_t = 0)]
        ttl: u64,
    },
    /// Approve a proposal on behalf of your organisation.
    Approve {
        #[arg(long)]
        proposal: U256,
    },
    List,
    Show {
        id: String,
    },
    /// Every proposal with its status.
    Proposals,
}

#[derive(Subcommand)]
enum AdminAccountCmd {
    Add {
        #[arg(long)]
        org: String,
        #[arg(long, value_name = "ADDRESS")]
        address: Address,
    },
    Remove {
        #[arg(long)]
        org: String,
        #[arg(long, value_name = "ADDRESS")]
        address: Address,
    },
}

#[derive(Subcommand)]
enum BrokerCmd {
    /// Register a broker node: creates `<keys-dir>/<name>.key` (account) and
    /// `<name>.node.json` (Ed25519 + X25519 keys) if missing, then adds it.
    Add {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "DIR", default_value = "keys")]
        keys_dir: PathBuf,
    },
    List,
}

#[derive(Subcommand)]
enum DeviceCmd {
    Register {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: String,
        /// A right: TOPIC:pub, TOPIC:sub or TOPIC:pub,sub (repeatable).
        #[arg(long = "topic", value_name = "TOPIC:RIGHTS")]
        topics: Vec<TopicRight>,
        /// Provisioning bundle to write (0600) [default: ./<id>.json].
        #[arg(long, value_name = "FILE")]
        bundle_out: Option<PathBuf>,
    },
    Revoke {
        #[arg(long)]
        id: String,
    },
    /// Ban a device: every broker node refuses it (0x8A) until the ban ends.
    Blacklist {
        #[arg(long)]
        id: String,
        /// Ban duration in seconds [default: indefinitely].
        #[arg(long = "for", value_name = "SECONDS")]
        duration: Option<u64>,
        /// Reason code (contracts/README.md) [default: 5, admin decision].
        #[arg(long, default_value_t = 5)]
        reason: u8,
        /// What the ban rests on, as you would tell an auditor. Only its
        /// SHA-256 digest goes on the ledger (`printf %s TEXT | sha256sum`);
        /// keep the text, it is what the digest commits to [default: no
        /// evidence digest].
        #[arg(long, value_name = "TEXT")]
        evidence: Option<String>,
    },
    /// Lift a device's ban.
    Unblacklist {
        #[arg(long)]
        id: String,
    },
    /// Replace a device's public keys (e.g. a signing key generated inside
    /// the device's smart card or HSM, for SCAC). Keys not given stay.
    Keys {
        #[arg(long)]
        id: String,
        /// Ed25519 public key, 32 bytes hex.
        #[arg(long, value_name = "HEX")]
        signing_key: Option<alloy_primitives::B256>,
        /// X25519 public key, 32 bytes hex.
        #[arg(long, value_name = "HEX")]
        agreement_key: Option<alloy_primitives::B256>,
    },
    List,
    Show {
        id: String,
    },
}

#[derive(Subcommand)]
enum RightCmd {
    Grant {
        #[arg(long)]
        device: String,
        #[arg(long)]
        topic: String,
        #[arg(long = "pub")]
        publish: bool,
        #[arg(long = "sub")]
        subscribe: bool,
    },
    Revoke {
        #[arg(long)]
        device: String,
        #[arg(long)]
        topic: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ListWhat {
    Orgs,
    Devices,
    Topics,
    Brokers,
}

pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    if let AdminCmd::Account(AccountCmd::New { out, fund: None }) = &args.cmd {
        let account =
            LocalAccount::create(out).map_err(|e| anyhow!("cannot create the key file: {e}"))?;
        out!("{}", account.address());
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

fn signer(args: &AdminArgs) -> anyhow::Result<LocalAccount> {
    let path = args
        .account
        .as_ref()
        .ok_or_else(|| anyhow!("this command needs --account KEYFILE"))?;
    load_account(path)
}

async fn run_async(args: AdminArgs) -> anyhow::Result<()> {
    let ledger = args.target.open().await?;
    if let AdminCmd::Account(AccountCmd::New {
        out,
        fund: Some(wei),
    }) = &args.cmd
    {
        let funder = signer(&args)?;
        let account =
            LocalAccount::create(out).map_err(|e| anyhow!("cannot create the key file: {e}"))?;
        let tx = TxRequest {
            to: Some(account.address()),
            value: *wei,
            ..TxRequest::default()
        };
        ledger
            .send_transaction(&funder, tx)
            .await
            .map_err(|e| anyhow!("{} created, but funding it failed: {e}", out.display()))?;
        out!("{}", account.address());
        return Ok(());
    }
    if let AdminCmd::Apply {
        file,
        bundles,
        keys_dir,
        fund,
    } = &args.cmd
    {
        let spec = ApplyFile::load(file).map_err(ledger_error)?;
        let account = args.account.as_ref().map(|p| load_account(p)).transpose()?;
        let funder = match (fund, &account) {
            (Some(_), None) => bail!("--fund needs --account KEYFILE (the paying account)"),
            (Some(w), Some(a)) => Some((a as &dyn Signer, *w)),
            _ => None,
        };
        let opts = ApplyOptions {
            keys_dir: keys_dir.clone(),
            bundles_dir: bundles.clone(),
            deployment_path: args.target.deployment_path(),
            deployer: account.as_ref().map(|a| a as &dyn Signer),
            fund: funder,
        };
        let report = apply(ledger, &spec, &opts).await.map_err(ledger_error)?;
        for line in &report.actions {
            out!("{line}");
        }
        out!(
            "applied {} ({} changes)",
            file.display(),
            report.actions.len()
        );
        return Ok(());
    }
    let d = args.target.load_deployment()?;
    let boxed_signer = || Ok(Box::new(signer(&args)?) as Box<dyn Signer>);
    match &args.cmd {
        AdminCmd::Group(cmd) => {
            let groups = GroupsClient::new(ledger, d.groups).map_err(ledger_error)?;
            return group::run_group(&groups, cmd, boxed_signer).await;
        }
        AdminCmd::KeyService(cmd) => {
            let groups = GroupsClient::new(ledger, d.groups).map_err(ledger_error)?;
            return group::run_key_service(&groups, cmd, boxed_signer).await;
        }
        _ => {}
    }
    let admin = AdminClient::new(ledger, d);
    let (c, r) = (&admin.consortium, &admin.registry);
    match &args.cmd {
        AdminCmd::Account(_)
        | AdminCmd::Apply { .. }
        | AdminCmd::Group(_)
        | AdminCmd::KeyService(_) => unreachable!("handled above"),
        AdminCmd::Org(OrgCmd::Propose {
            id,
            name,
            admins,
            ttl,
        }) => {
            let (pid, _) = c
                .propose(&signer(&args)?, id, name, admins, *ttl)
                .await
                .map_err(ledger_error)?;
            out!("proposal {pid}");
        }
        AdminCmd::Org(OrgCmd::Approve { proposal }) => {
            c.approve(&signer(&args)?, *proposal)
                .await
                .map_err(ledger_error)?;
            let p = c.get_proposal(*proposal).await.map_err(ledger_error)?;
            out!(
                "proposal {proposal}: {:?} ({} approvals)",
                p.status,
                p.approvals
            );
        }
        AdminCmd::Org(OrgCmd::List)
        | AdminCmd::List {
            what: ListWhat::Orgs,
        } => {
            for o in c.list_orgs().await.map_err(ledger_error)? {
                out!(
                    "{}\t{}\tadmins={}\tbrokers={}",
                    o.id,
                    o.name,
                    o.admins.len(),
                    o.brokers.len()
                );
            }
        }
        AdminCmd::Org(OrgCmd::Show { id }) => {
            admin.require_org(id).await.map_err(ledger_error)?;
            let o = c.get_org(id).await.map_err(ledger_error)?;
            out!("id: {}\nname: {}\nadded_at: {}", o.id, o.name, o.added_at);
            o.admins.iter().for_each(|a| out!("admin: {a}"));
            o.brokers.iter().for_each(|b| out!("broker: {b}"));
        }
        AdminCmd::Org(OrgCmd::Proposals) => {
            for p in c.list_proposals().await.map_err(ledger_error)? {
                out!(
                    "{}\t{}\t{:?}\tapprovals={}",
                    p.id,
                    p.org_id,
                    p.status,
                    p.approvals
                );
            }
        }
        AdminCmd::Admin(AdminAccountCmd::Add { org, address }) => {
            admin.require_org(org).await.map_err(ledger_error)?;
            c.add_admin(&signer(&args)?, org, *address)
                .await
                .map_err(ledger_error)?;
            out!("{address} is now an admin of {org}");
        }
        AdminCmd::Admin(AdminAccountCmd::Remove { org, address }) => {
            admin.require_org(org).await.map_err(ledger_error)?;
            c.remove_admin(&signer(&args)?, org, *address)
                .await
                .map_err(ledger_error)?;
            out!("{address} is no longer an admin of {org}");
        }
        AdminCmd::Broker(BrokerCmd::Add {
            org,
            name,
            keys_dir,
        }) => {
            let s = signer(&args)?;
            let key_path = keys_dir.join(format!("{name}.key"));
            let node_path = keys_dir.join(format!("{name}.node.json"));
            let account = if key_path.exists() {
                load_account(&key_path)?
            } else {
                LocalAccount::create(&key_path).map_err(ledger_error)?
            };
            let keys = BrokerNodeKeys::generate();
            let node = BrokerNodeFile::new(account.address(), org, &keys);
            if node_path.exists() {
                bail!(
                    "{} already exists; not replacing a broker node's keys",
                    node_path.display()
                );
            }
            admin
                .add_broker_node(&s, org, account.address(), &keys)
                .await
                .map_err(ledger_error)?;
            node.write_new(&node_path).map_err(ledger_error)?;
            out!("broker {name} {} added to {org}", account.address());
        }
        AdminCmd::Broker(BrokerCmd::List)
        | AdminCmd::List {
            what: ListWhat::Brokers,
        } => {
            for b in c.list_brokers().await.map_err(ledger_error)? {
                out!("{}\t{}", b.account, b.org);
            }
        }
        AdminCmd::Device(DeviceCmd::Register {
            org,
            id,
            topics,
            bundle_out,
        }) => {
            let out = bundle_out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{id}.json")));
            let s = signer(&args)?;
            let bundle = admin
                .register_device(&s, org, id, topics, &out)
                .await
                .map_err(ledger_error)?;
            out!(
                "registered device {} of {} with {} right(s), OTP key sealed to {} broker node(s); bundle written to {}",
                bundle.device_id,
                bundle.org,
                topics.len(),
                bundle.brokers.len(),
                out.display()
            );
        }
        AdminCmd::Device(DeviceCmd::Blacklist {
            id,
            duration,
            reason,
            evidence,
        }) => {
            let until = match duration {
                Some(d) => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|n| n.as_secs())
                    .unwrap_or(0)
                    .saturating_add((*d).max(1)),
                None => u64::MAX,
            };
            let digest = evidence
                .as_deref()
                .map(|text| B256::from(<[u8; 32]>::from(Sha256::digest(text.as_bytes()))))
                .unwrap_or(B256::ZERO);
            r.blacklist_device(&signer(&args)?, id, until, *reason, digest)
                .await
                .map_err(ledger_error)?;
            match duration {
                Some(d) => out!("device {id} blacklisted for {d} s (reason {reason})"),
                None => out!("device {id} blacklisted indefinitely (reason {reason})"),
            }
            if evidence.is_some() {
                out!("evidence digest {digest}");
            }
        }
        AdminCmd::Device(DeviceCmd::Keys {
            id,
            signing_key,
            agreement_key,
        }) => {
            if signing_key.is_none() && agreement_key.is_none() {
                return Err(anyhow::anyhow!(
                    "give --signing-key, --agreement-key or both"
                ));
            }
            let dev = r.get_device(id).await.map_err(ledger_error)?;
            let signing = signing_key.unwrap_or(dev.signing_key);
            let agreement = agreement_key.unwrap_or(dev.agreement_key);
            r.update_device_keys(&signer(&args)?, id, signing, agreement)
                .await
                .map_err(ledger_error)?;
            out!("device {id} keys updated: signing_key={signing} agreement_key={agreement}");
        }
        AdminCmd::Device(DeviceCmd::Unblacklist { id }) => {
            r.lift_blacklist(&signer(&args)?, id)
                .await
                .map_err(ledger_error)?;
            out!("device {id} is no longer blacklisted");
        }
        AdminCmd::Device(DeviceCmd::Revoke { id }) => {
            r.revoke_device(&signer(&args)?, id)
                .await
                .map_err(ledger_error)?;
            out!("revoked device {id}");
        }
        AdminCmd::Device(DeviceCmd::List)
        | AdminCmd::List {
            what: ListWhat::Devices,
        } => {
            for dev in r.list_devices().await.map_err(ledger_error)? {
                out!("{}\t{}\t{}", dev.id, dev.org, dev.status.as_str());
            }
        }
        AdminCmd::Device(DeviceCmd::Show { id }) => {
            let dev = r.get_device(id).await.map_err(ledger_error)?;
            out!(
                "id: {}\norg: {}\nstatus: {}",
                dev.id,
                dev.org,
                dev.status.as_str()
            );
            out!(
                "signing_key: {}\nagreement_key: {}\nregistered_at: {}",
                dev.signing_key,
                dev.agreement_key,
                dev.registered_at
            );
            for right in r.list_rights(id).await.map_err(ledger_error)? {
                out!(
                    "right: {} pub={} sub={}",
                    right.topic,
                    right.publish,
                    right.subscribe
                );
            }
            for b in r.otp_envelope_brokers(id).await.map_err(ledger_error)? {
                out!("otp_envelope_for: {b}");
            }
            let ban = r.get_blacklist(id).await.map_err(ledger_error)?;
            if ban.active {
                out!(
                    "blacklisted: until={} reason={} by={} evidence={}",
                    ban.until,
                    ban.reason,
                    ban.by,
                    ban.evidence
                );
            }
        }
        AdminCmd::Right(RightCmd::Grant {
            device,
            topic,
            publish,
            subscribe,
        }) => {
            if !publish && !subscribe {
                bail!("grant needs --pub and/or --sub");
            }
            r.grant_right(&signer(&args)?, device, topic, *publish, *subscribe)
                .await
                .map_err(ledger_error)?;
            out!("granted {device} on {topic} (pub={publish} sub={subscribe})");
        }
        AdminCmd::Right(RightCmd::Revoke { device, topic }) => {
            r.revoke_right(&signer(&args)?, device, topic)
                .await
                .map_err(ledger_error)?;
            out!("revoked the right of {device} on {topic}");
        }
        AdminCmd::Reseal {
            bundles,
            rotate_otp_key,
        } => {
            let s = signer(&args)?;
            for path in bundles {
                let r = admin
                    .reseal(&s, path, *rotate_otp_key)
                    .await
                    .map_err(ledger_error)
                    .with_context(|| format!("resealing {}", path.display()))?;
                let device = path.display();
                if r.rotated {
                    out!("{device}: new OTP key written; give the device this bundle");
                }
                out!(
                    "{device}: {} envelope(s) sealed, {} removed from nodes no longer registered",
                    r.sealed,
                    r.cleared_removed
                );
                for (node, org) in &r.cleared_foreign {
                    out!("{device}: removed the envelope held by {node} of organisation {org}");
                }
                if !r.cleared_foreign.is_empty() && !r.rotated {
                    eprintln!(
                        "warning: {device}: nodes of another organisation held this device's OTP key; \
                         their operators could act as the device until the key changes: \
                         run `ledgermq admin reseal --rotate-otp-key {device}` and give the device its new bundle"
                    );
                }
            }
        }
        AdminCmd::List {
            what: ListWhat::Topics,
        } => {
            for t in r.list_topics().await.map_err(ledger_error)? {
                out!(
                    "{}\t{}\tsensitive={}\tpublish_open={}\tsubscribe_open={}",
                    t.topic,
                    t.org,
                    t.sensitive,
                    t.publish_open,
                    t.subscribe_open
                );
            }
        }
    }
    Ok(())
}
