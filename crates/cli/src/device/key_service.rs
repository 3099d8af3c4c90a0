//! `ledgermq device --bundle KS.json … key-service`: an organisation's key
//! service. It is a device of its organisation (its bundle's Ed25519 key
//! signs the key bundles and logs it in to the broker) with a ledger
//! account of its own; `admin key-service set` registers both. No broker
//! holds this power: a broker only relays the bundles, which it can
//! neither read (HPKE to each member) nor forge (signed).
//!
//! For every group of its organisation it keeps one key epoch per roster:
//! whenever the set of members that may read changes (a member added or
//! removed, a member revoked, banned or its ban lifted, its X25519 key
//! replaced, its last right on the group's topics revoked), it
//! generates a fresh random key, wraps it per remaining member, commits
//! the epoch and a key exchange per member on the ledger, then publishes
//! each member's signed bundle retained on `$lmq/keys/<group>/<member>`
//! and clears the bundles of members that left. It keeps no key: a
//! restart rotates every group once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ledgermq_access::key_topics;
use ledgermq_agent::scac::{LocalKey, ScacCredentials};
use ledgermq_agent::{Client, QoS};
use ledgermq_keystore::Ed25519Signer;
use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_ledger::contracts::{DeviceStatus, GroupsClient};
use ledgermq_ledger::view::{GroupView, Snapshot};
use ledgermq_ledger::{LocalAccount, RegistryView, Signer};
use ledgermq_proto::topic::intersects;
use ledgermq_security::envelope::EpochDistribution;
use ledgermq_security::GroupKey;
use rand_core::OsRng;

use super::failed;
use crate::ledger_cmd::{ledger_error, load_account, LedgerTarget};

/// Key exchanges recorded per ledger transaction.
const EXCHANGES_PER_TX: usize = 32;

/// How often the rosters are checked without a ledger event (a ban
/// expires without one).
const RECHECK: Duration = Duration::from_secs(5);

#[derive(Args)]
pub(super) struct KeyServiceArgs {
    /// Key file of the account registered as the organisation's key service
    /// (`admin key-service set --address`): it commits the key epochs.
    #[arg(long, value_name = "KEYFILE")]
    account: PathBuf,
    /// Bring every group up to date once, then exit.
    #[arg(long)]
    once: bool,
}

/// Who may read a group: its members that are active, not banned, have an
/// X25519 key and still hold a right on one of the group's topics (topics
/// of the group's organisation its filters match); member id → X25519
/// public key.
type Roster = BTreeMap<String, [u8; 32]>;

fn roster(s: &Snapshot, g: &GroupView, now: u64) -> Roster {
    let mut roster = Roster::new();
    for m in &g.members {
        let Some(d) = s.devices.get(m) else { continue };
        let banned = s.is_blacklisted_at(m, now);
        // Only topics of the group's own organisation: a group protects
        // nothing of another's, so a right there reads none of its data.
        let ours = |t: &str| s.topics.get(t).is_some_and(|v| v.org == g.org);
        let rights = d
            .rights
            .exact
            .iter()
            .filter(|(t, r)| (r.publish || r.subscribe) && ours(t))
            .any(|(t, _)| g.protects(t))
            || d.rights
                .filters
                .iter()
                .filter(|(rf, r)| (r.publish || r.subscribe) && ours(rf))
                .any(|(rf, _)| g.filters.iter().any(|f| intersects(f, rf)));
        if d.status != DeviceStatus::Active || banned || d.agreement_key.is_zero() || !rights {
            continue;
        }
        if key_topics::key_topic(&g.name, m).is_none() {
            tracing::warn!(
                member = m,
                group = g.name,
                "a member id that cannot be a topic level gets no key"
            );
            continue;
        }
        roster.insert(m.clone(), d.agreement_key.0);
    }
    roster
}

struct KeyService {
    org: String,
    groups: GroupsClient,
    account: LocalAccount,
    signer: Arc<dyn Ed25519Signer>,
    client: Client,
    /// Per group: the roster of the last epoch this process distributed,
    /// and that epoch.
    distributed: HashMap<String, (Roster, u64)>,
}

impl KeyService {
    /// Rotates every group of the organisation whose roster changed.
    async fn sync(&mut self, s: &Snapshot) -> Result<()> {
        let now = unix_now();
        let mut names: Vec<&String> = s
            .groups
            .iter()
            .filter(|(_, g)| g.org == self.org)
            .map(|(n, _)| n)
            .collect();
        names.sort();
        for name in names {
            let g = &s.groups[name];
            let roster = roster(s, g, now);
            match self.distributed.get(name) {
                Some((last, _)) if *last == roster => continue,
                None if roster.is_empty() => {
                    self.distributed.insert(name.clone(), (roster, 0));
                    continue;
                }
                _ => {}
            }
            let latest = g.latest_epoch().map_or(0, |e| e.epoch);
            let mine = self.distributed.get(name).map_or(0, |(_, e)| *e);
            let epoch = latest.max(mine) + 1;
            self.rotate(g, epoch, roster).await?;
        }
        Ok(())
    }

    async fn rotate(&mut self, g: &GroupView, epoch: u64, roster: Roster) -> Result<()> {
        let started = Instant::now();
        let key = GroupKey::generate(&g.name, epoch, &mut OsRng).map_err(|e| anyhow!("{e}"))?;
        let members: Vec<(&str, [u8; 32])> = roster.iter().map(|(m, k)| (m.as_str(), *k)).collect();
        let dist = EpochDistribution::new(&key, &members, &*self.signer, &mut OsRng)
            .map_err(|e| anyhow!("group {} epoch {epoch}: {e}", g.name))?;
        drop(key);
        let exchanges: Vec<(String, B256)> = dist
            .members
            .iter()
            .map(|m| (m.member.clone(), B256::from(m.member_commitment)))
            .collect();
        let mut chunks = exchanges.chunks(EXCHANGES_PER_TX);
        let first = chunks.next().unwrap_or(&[]);
        let receipt = self
            .groups
            .commit_epoch(
                &self.account as &dyn Signer,
                &g.name,
                epoch,
                B256::from(dist.epoch_commitment),
                u32::try_from(members.len()).context("too many members")?,
                first,
            )
            .await
            .map_err(ledger_error)
            .with_context(|| format!("committing epoch {epoch} of group {}", g.name))?;
        let mut gas = receipt.gas_used;
        for chunk in chunks {
            gas += self
                .groups
                .record_exchanges(&self.account as &dyn Signer, &g.name, epoch, chunk)
                .await
                .map_err(ledger_error)?
                .gas_used;
        }
        for m in &dist.members {
            let topic = key_topics::key_topic(&g.name, &m.member).expect("checked in roster()");
            self.client
                .publish(&topic, m.bundle.clone(), QoS::AtLeastOnce, true)
                .await
                .map_err(|e| failed(&format!("publishing the key bundle on {topic}"), e))?;
        }
        let left: Vec<String> = self
            .distributed
            .get(&g.name)
            .map(|(last, _)| {
                last.keys()
                    .filter(|m| !roster.contains_key(*m))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for m in &left {
            let topic = key_topics::key_topic(&g.name, m).expect("was in a roster");
            // An empty retained message removes the old bundle.
            self.client
                .publish(&topic, Vec::new(), QoS::AtLeastOnce, true)
                .await
                .map_err(|e| failed(&format!("clearing {topic}"), e))?;
        }
        crate::ledger_cmd::out!(
            "group {} epoch {epoch}: {} member(s), {} left, commitment 0x{}, gas {gas}, {} ms",
            g.name,
            roster.len(),
            left.len(),
            alloy_primitives::hex::encode(dist.epoch_commitment),
            started.elapsed().as_millis()
        );
        self.distributed.insert(g.name.clone(), (roster, epoch));
        Ok(())
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) async fn run(
    client: Client,
    args: KeyServiceArgs,
    target: &LedgerTarget,
    bundle_path: &Path,
) -> Result<()> {
    let bundle = ProvisioningBundle::load(bundle_path).map_err(ledger_error)?;
    // The bundle's signing key, checked against the public key it was
    // registered with.
    let signer = match ScacCredentials::from_bundle(bundle_path)?.device_key {
        LocalKey::Ed25519(key) => key,
        LocalKey::Rsa(_) => bail!("a key service signs with Ed25519"),
    };
    if target.rpc.is_none() && target.data_dir.is_none() {
        bail!("the key service needs the ledger: give --rpc URL (or --data-dir DIR)");
    }
    let deployment = target.deployment_or(bundle.contracts)?;
    let account = load_account(&args.account)?;
    let ledger = target.open().await?;
    let groups = GroupsClient::new(ledger.clone(), deployment.groups).map_err(ledger_error)?;
    let view = RegistryView::builder(ledger, deployment)
        .build()
        .await
        .map_err(ledger_error)?;
    let org = bundle.org.clone();
    match view.key_service(&org) {
        Some(ks) if ks.account == account.address() && ks.signing_key.0 == signer.public() => {}
        Some(ks) => bail!(
            "the key service registered for {org} is account {} with signing key {}; this one is \
             {} with {} (run `ledgermq admin key-service set --org {org} --address {} \
             --signing-key 0x{}`)",
            ks.account,
            ks.signing_key,
            account.address(),
            B256::from(signer.public()),
            account.address(),
            alloy_primitives::hex::encode(signer.public()),
        ),
        None => bail!(
            "organisation {org} has no key service (run `ledgermq admin key-service set --org \
             {org} --address {} --signing-key 0x{}`)",
            account.address(),
            alloy_primitives::hex::encode(signer.public()),
        ),
    }
    let mut events = view.subscribe();
    let _follow = view.follow();
    let mut service = KeyService {
        org,
        groups,
        account,
        signer,
        client,
        distributed: HashMap::new(),
    };
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        service.sync(&view.snapshot()).await?;
        if args.once {
            break;
        }
        tokio::select! {
            _ = events.recv() => {
                // Let a burst of events (one transaction's) land first.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ = tokio::time::sleep(RECHECK) => {}
            _ = &mut interrupted => break,
        }
    }
    super::disconnect(service.client).await
}
