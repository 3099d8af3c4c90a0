//! RegistryView: the broker's in-memory copy of the registry, built from the
//! contracts' events only and kept current by polling for new blocks.
//!
//! Why events and not view calls: a broker must authorise a PUBLISH without
//! a round trip to the chain, and events are the one source that tells it
//! exactly what changed (and lets it notify sessions of revocations). The
//! hot-path lookups read an immutable [`Snapshot`] through `arc-swap`: no
//! lock, no allocation, a few hash lookups — well under a microsecond.

mod filter;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, Bytes, B256};
use arc_swap::ArcSwap;
use tokio::sync::broadcast;

use crate::contracts::{decode_event, ContractEvent, Deployment};
use crate::{Ledger, LedgerResult, LogFilter};

pub use filter::{filter_covers, filter_matches};
pub use state::{
    BlacklistView, BrokerView, DeviceView, GroupView, KeyEpochView, KeyServiceView, OrgView, Right,
    Rights, Snapshot, TopicView,
};

/// Most blocks asked for in one `logs` request (nodes cap ranges).
const MAX_LOG_RANGE: u64 = 10_000;

/// A change sessions may have to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryEvent {
    DeviceRegistered(String),
    DeviceRevoked(String),
    Blacklisted {
        id: String,
        until: u64,
        reason: u8,
        /// Digest of the reporter's evidence record (zero: none given).
        evidence: B256,
    },
    BlacklistLifted(String),
    /// The device lost (part of) its right on `topic`.
    RightRevoked {
        id: String,
        topic: String,
    },
    /// A group was created or its filters, policy or members changed.
    GroupChanged(String),
    /// A new key epoch of `group` was committed.
    KeyEpoch {
        group: String,
        epoch: u64,
    },
}

/// Configures and builds a [`RegistryView`].
pub struct RegistryViewBuilder {
    ledger: Arc<dyn Ledger>,
    deployment: Deployment,
    from_block: u64,
    poll_interval: Duration,
    finality_depth: u64,
    channel_capacity: usize,
}

impl RegistryViewBuilder {
    /// Reads events from this block on (default: the deployment block).
    pub fn from_block(mut self, block: u64) -> Self {
        self.from_block = block;
        self
    }

    /// How often [`RegistryView::follow`] asks for new blocks (default 200 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Applies an event only once `depth` blocks are on top of its block
    /// (default 0: chains with instant finality). On a chain that can
    /// reorganise, an event of a block that may still be replaced is not
    /// believed yet: a registration, right or ban appears `depth` blocks late.
    pub fn finality_depth(mut self, depth: u64) -> Self {
        self.finality_depth = depth;
        self
    }

    /// Capacity of the notification channel (default 1024).
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity.max(1);
        self
    }

    /// Reads every event up to the latest block and returns the view.
    pub async fn build(self) -> LedgerResult<Arc<RegistryView>> {
        let (events, _) = broadcast::channel(self.channel_capacity);
        let view = Arc::new(RegistryView {
            ledger: self.ledger,
            deployment: self.deployment,
            poll_interval: self.poll_interval,
            finality_depth: self.finality_depth,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            next_block: AtomicU64::new(self.from_block),
            generation: AtomicU64::new(0),
            events,
            refresh_lock: tokio::sync::Mutex::new(()),
        });
        view.refresh().await?;
        Ok(view)
    }
}

/// The in-memory registry: organisations, brokers, devices, topics, rights,
/// blacklist, OTP envelopes and key epochs.
pub struct RegistryView {
    ledger: Arc<dyn Ledger>,
    deployment: Deployment,
    poll_interval: Duration,
    finality_depth: u64,
    snapshot: ArcSwap<Snapshot>,
    /// First block not yet read.
    next_block: AtomicU64,
    /// Bumped each time a new snapshot is published.
    generation: AtomicU64,
    events: broadcast::Sender<RegistryEvent>,
    refresh_lock: tokio::sync::Mutex<()>,
}

impl RegistryView {
    pub fn builder(ledger: Arc<dyn Ledger>, deployment: Deployment) -> RegistryViewBuilder {
        RegistryViewBuilder {
            ledger,
            deployment,
            from_block: deployment.deployed_at_block,
            poll_interval: Duration::from_millis(200),
            finality_depth: 0,
            channel_capacity: 1024,
        }
    }

    /// Notifications of revocations, bans and lost rights, as they are read.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }

    /// The last block whose events are in the view.
    pub fn last_block(&self) -> u64 {
        self.next_block.load(Ordering::Acquire).saturating_sub(1)
    }

    /// A number that changes each time the registry state changes (any
    /// event read): answers of the hot-path lookups can only differ between
    /// two different generations, or as blacklist entries expire.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current state, for inspection beyond the hot-path lookups.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Reads the events of blocks not yet seen and publishes the new state;
    /// returns how many events were applied.
    pub async fn refresh(&self) -> LedgerResult<usize> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        let latest = self
            .ledger
            .block_number()
            .await?
            .saturating_sub(self.finality_depth);
        let mut from = self.next_block.load(Ordering::Acquire);
        if from > latest {
            return Ok(0);
        }
        let mut next: Option<Snapshot> = None;
        let mut notes = Vec::new();
        let mut applied = 0;
        while from <= latest {
            let to = latest.min(from.saturating_add(MAX_LOG_RANGE - 1));
            let filter = LogFilter {
                from_block: from,
                to_block: Some(to),
                addresses: self.addresses(),
                event_signatures: Vec::new(),
            };
            let mut logs = self.ledger.logs(&filter).await?;
            logs.sort_by_key(|l| (l.block_number, l.log_index));
            for log in &logs {
                let Some(event) = decode_event(&self.deployment, log) else {
                    continue;
                };
                let state = next.get_or_insert_with(|| (**self.snapshot.load()).clone());
                applied += 1;
                match event {
                    ContractEvent::Consortium(e) => state.apply_consortium(e),
                    ContractEvent::Registry(e) => notes.extend(state.apply_registry(e)),
                    ContractEvent::Groups(e) => notes.extend(state.apply_groups(e)),
                    ContractEvent::Audit(_) => {}
                }
            }
            from = to + 1;
        }
        // Without events the published snapshot stays as it is (no copy per poll).
        if let Some(mut state) = next {
            state.block = latest;
            self.snapshot.store(Arc::new(state));
            self.generation.fetch_add(1, Ordering::Release);
        }
        self.next_block.store(latest + 1, Ordering::Release);
        for note in notes {
            // No receiver is fine: nobody is listening yet.
            let _ = self.events.send(note);
        }
        Ok(applied)
    }

    /// Spawns a task that refreshes the view every poll interval; it stops
    /// when the view is dropped. Errors are logged and retried.
    pub fn follow(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.poll_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(view) = weak.upgrade() else { return };
                if let Err(e) = view.refresh().await {
                    tracing::warn!(error = %e, "registry view refresh failed; will retry");
                }
            }
        })
    }

    // ------------------------------------------------------------- hot path

    /// Whether `device_id` is registered, not revoked and not banned now.
    pub fn is_active(&self, device_id: &str) -> bool {
        let s = self.snapshot.load();
        s.devices
            .get(device_id)
            .is_some_and(|d| d.status == crate::contracts::DeviceStatus::Active)
            && !banned(&s, device_id)
    }

    /// Whether `device_id` may publish to topic name `topic`.
    pub fn can_publish(&self, device_id: &str, topic: &str) -> bool {
        let s = self.snapshot.load();
        match s.devices.get(device_id) {
            Some(d) if d.status == crate::contracts::DeviceStatus::Active => {
                d.rights.can_publish(topic) && !banned(&s, device_id)
            }
            _ => false,
        }
    }

    /// Whether `device_id` may subscribe to `filter`.
    pub fn can_subscribe(&self, device_id: &str, filter: &str) -> bool {
        let s = self.snapshot.load();
        match s.devices.get(device_id) {
            Some(d) if d.status == crate::contracts::DeviceStatus::Active => {
                d.rights.can_subscribe(filter) && !banned(&s, device_id)
            }
            _ => false,
        }
    }

    pub fn is_blacklisted(&self, device_id: &str) -> bool {
        banned(&self.snapshot.load(), device_id)
    }

    // --------------------------------------------------------------- lookups

    pub fn device(&self, device_id: &str) -> Option<Arc<DeviceView>> {
        self.snapshot.load().devices.get(device_id).cloned()
    }

    pub fn org(&self, org_id: &str) -> Option<Arc<OrgView>> {
        self.snapshot.load().orgs.get(org_id).cloned()
    }

    pub fn broker(&self, account: &Address) -> Option<Arc<BrokerView>> {
        self.snapshot.load().brokers.get(account).cloned()
    }

    pub fn topic(&self, topic: &str) -> Option<Arc<TopicView>> {
        self.snapshot.load().topics.get(topic).cloned()
    }

    pub fn blacklist_entry(&self, device_id: &str) -> Option<BlacklistView> {
        self.snapshot.load().blacklist.get(device_id).copied()
    }

    /// The OTP key envelope of `device_id` sealed to broker node `broker`.
    pub fn otp_envelope(&self, device_id: &str, broker: &Address) -> Option<Bytes> {
        self.snapshot
            .load()
            .devices
            .get(device_id)?
            .otp_envelopes
            .get(broker)
            .cloned()
    }

    pub fn group(&self, name: &str) -> Option<Arc<GroupView>> {
        self.snapshot.load().groups.get(name).cloned()
    }

    /// The groups whose filters match topic name `topic`.
    pub fn groups_protecting(&self, topic: &str) -> Vec<Arc<GroupView>> {
        let s = self.snapshot.load();
        s.groups
            .values()
            .filter(|g| g.protects(topic))
            .cloned()
            .collect()
    }

    pub fn key_service(&self, org: &str) -> Option<KeyServiceView> {
        self.snapshot.load().key_services.get(org).copied()
    }

    /// The contracts whose events make up the view.
    fn addresses(&self) -> Vec<Address> {
        let d = &self.deployment;
        let mut out = vec![d.consortium, d.registry];
        if !d.groups.is_zero() {
            out.push(d.groups);
        }
        out
    }
}

fn banned(s: &Snapshot, device_id: &str) -> bool {
    if s.blacklist.is_empty() {
        return false;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    s.is_blacklisted_at(device_id, now)
}
