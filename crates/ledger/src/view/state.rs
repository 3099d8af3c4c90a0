//! The registry state a view holds, and how each contract event changes it.
//!
//! A [`Snapshot`] is immutable once published; the follower builds the next
//! one from the previous by cloning maps of `Arc`s (cheap) and rebuilding
//! only the entries an event touches.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use alloy_primitives::{Address, Bytes, B256};

use super::filter::{filter_covers, filter_matches, is_filter};
use super::RegistryEvent;
use crate::contracts::{
    ConsortiumEvents, DeviceStatus, GroupsEvents, Protection, RegistryEvents, VerifyPolicy,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub admins: Vec<Address>,
    pub brokers: Vec<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    pub account: Address,
    pub org: String,
    pub signing_key: B256,
    pub agreement_key: B256,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    pub topic: String,
    pub org: String,
    pub sensitive: bool,
    pub publish_open: bool,
    pub subscribe_open: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlacklistView {
    /// Unix seconds; `u64::MAX` = indefinitely.
    pub until: u64,
    pub reason: u8,
    /// Digest of the reporter's evidence record (zero: none given).
    pub evidence: B256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Right {
    pub publish: bool,
    pub subscribe: bool,
}

/// A device's rights: exact topics in a map, wildcard filters in a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights {
    pub exact: HashMap<String, Right>,
    pub filters: Vec<(String, Right)>,
}

impl Rights {
    pub fn can_publish(&self, topic: &str) -> bool {
        if self.exact.get(topic).is_some_and(|r| r.publish) {
            return true;
        }
        self.filters
            .iter()
            .any(|(f, r)| r.publish && filter_matches(f, topic))
    }

    pub fn can_subscribe(&self, filter: &str) -> bool {
        if self.exact.get(filter).is_some_and(|r| r.subscribe) {
            return true;
        }
        self.filters
            .iter()
            .any(|(f, r)| r.subscribe && filter_covers(f, filter))
    }

    fn set(&mut self, topic: &str, right: Option<Right>) {
        if is_filter(topic) {
            self.filters.retain(|(f, _)| f != topic);
            if let Some(r) = right {
                self.filters.push((topic.to_string(), r));
            }
        } else {
            match right {
                Some(r) => {
                    self.exact.insert(topic.to_string(), r);
                }
                None => {
                    self.exact.remove(topic);
                }
            }
        }
    }

    /// Every right, exact topics and filters alike.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Right)> {
        self.exact
            .iter()
            .map(|(t, r)| (t.as_str(), *r))
            .chain(self.filters.iter().map(|(t, r)| (t.as_str(), *r)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    pub id: String,
    pub org: String,
    pub signing_key: B256,
    pub agreement_key: B256,
    pub registered_at: u64,
    pub status: DeviceStatus,
    pub rights: Rights,
    /// OTP key envelopes, one per broker node account.
    pub otp_envelopes: HashMap<Address, Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEpochView {
    pub epoch: u64,
    pub commitment: B256,
    /// Members given a wrap of this epoch.
    pub member_count: u32,
    /// Block time of the commitment (unix seconds).
    pub committed_at: u64,
}

/// An encryption group: what it protects, how, who may read, its epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    pub org: String,
    pub filters: Vec<String>,
    pub protection: Protection,
    pub verify: VerifyPolicy,
    /// How long the previous epoch stays acceptable after a new one.
    pub grace_seconds: u32,
    pub members: BTreeSet<String>,
    /// Every committed epoch, oldest first (strictly increasing).
    pub epochs: Vec<KeyEpochView>,
}

impl GroupView {
    /// Whether one of the group's filters matches topic name `topic`.
    pub fn protects(&self, topic: &str) -> bool {
        self.filters.iter().any(|f| filter_matches(f, topic))
    }

    pub fn latest_epoch(&self) -> Option<KeyEpochView> {
        self.epochs.last().copied()
    }

    /// Whether an envelope of epoch `epoch` is acceptable at unix time
    /// `now`: the latest epoch, or the one before it within the grace
    /// period after its successor was committed.
    pub fn epoch_acceptable(&self, epoch: u64, now: u64) -> bool {
        let n = self.epochs.len();
        match n {
            0 => false,
            _ if self.epochs[n - 1].epoch == epoch => true,
            1 => false,
            _ => {
                self.epochs[n - 2].epoch == epoch
                    && now
                        < self.epochs[n - 1]
                            .committed_at
                            .saturating_add(u64::from(self.grace_seconds))
            }
        }
    }
}

/// An organisation's key service: who may commit epochs, the key that
/// signs its key bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyServiceView {
    pub account: Address,
    pub signing_key: B256,
}

/// One consistent state of the registry: every event up to `block` (the
/// head when this snapshot was published) applied.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub block: u64,
    pub orgs: HashMap<String, Arc<OrgView>>,
    pub brokers: HashMap<Address, Arc<BrokerView>>,
    pub devices: HashMap<String, Arc<DeviceView>>,
    pub topics: HashMap<String, Arc<TopicView>>,
    pub blacklist: HashMap<String, BlacklistView>,
    pub groups: HashMap<String, Arc<GroupView>>,
    pub key_services: HashMap<String, KeyServiceView>,
}

impl Snapshot {
    pub fn apply_consortium(&mut self, event: ConsortiumEvents) {
        use ConsortiumEvents as E;
        match event {
            E::OrganisationAdded(e) => {
                let org = OrgView {
                    id: e.orgId.clone(),
                    name: e.name,
                    admins: e.admins,
                    brokers: Vec::new(),
                };
                self.orgs.insert(e.orgId, Arc::new(org));
            }
            E::AdminAdded(e) => self.update_org(&e.orgId, |o| {
                if !o.admins.contains(&e.account) {
                    o.admins.push(e.account);
                }
            }),
            E::AdminRemoved(e) => {
                self.update_org(&e.orgId, |o| o.admins.retain(|a| *a != e.account))
            }
            E::BrokerAdded(e) => {
                self.update_org(&e.orgId, |o| {
                    if !o.brokers.contains(&e.account) {
                        o.brokers.push(e.account);
                    }
                });
                let broker = BrokerView {
                    account: e.account,
                    org: e.orgId,
                    signing_key: e.signingKey,
                    agreement_key: e.agreementKey,
                };
                self.brokers.insert(e.account, Arc::new(broker));
            }
            E::BrokerRemoved(e) => {
                self.update_org(&e.orgId, |o| o.brokers.retain(|a| *a != e.account));
                self.brokers.remove(&e.account);
            }
            // Proposals change nothing until executed, which emits OrganisationAdded.
            _ => {}
        }
    }

    /// Applies a Registry event; returns the notification it causes, if any.
    pub fn apply_registry(&mut self, event: RegistryEvents) -> Option<RegistryEvent> {
        use RegistryEvents as E;
        match event {
            E::DeviceRegistered(e) => {
                let device = DeviceView {
                    id: e.deviceId.clone(),
                    org: e.org,
                    signing_key: e.signingKey,
                    agreement_key: e.agreementKey,
                    registered_at: e.registeredAt,
                    status: DeviceStatus::Active,
                    rights: Rights::default(),
                    otp_envelopes: HashMap::new(),
                };
                self.devices.insert(e.deviceId.clone(), Arc::new(device));
                Some(RegistryEvent::DeviceRegistered(e.deviceId))
            }
            E::DeviceKeysUpdated(e) => {
                self.update_device(&e.deviceId, |d| {
                    d.signing_key = e.signingKey;
                    d.agreement_key = e.agreementKey;
                });
                None
            }
            E::DeviceRevoked(e) => {
                self.update_device(&e.deviceId, |d| d.status = DeviceStatus::Revoked);
                Some(RegistryEvent::DeviceRevoked(e.deviceId))
            }
            E::TopicCreated(e) => {
                self.set_topic(e.topic, e.org, e.sensitive, e.publishOpen, e.subscribeOpen);
                None
            }
            E::TopicUpdated(e) => {
                self.set_topic(e.topic, e.org, e.sensitive, e.publishOpen, e.subscribeOpen);
                None
            }
            E::RightGranted(e) => {
                let right = Right {
                    publish: e.publish,
                    subscribe: e.subscribe,
                };
                let mut before = Right::default();
                self.update_device(&e.deviceId, |d| {
                    before = d
                        .rights
                        .iter()
                        .find(|(t, _)| *t == e.topic)
                        .map(|(_, r)| r)
                        .unwrap_or_default();
                    d.rights.set(&e.topic, Some(right));
                });
                // A grant sets both bits exactly: dropping one is a revocation.
                let lost =
                    (before.publish && !right.publish) || (before.subscribe && !right.subscribe);
                lost.then_some(RegistryEvent::RightRevoked {
                    id: e.deviceId,
                    topic: e.topic,
                })
            }
            E::RightRevoked(e) => {
                self.update_device(&e.deviceId, |d| d.rights.set(&e.topic, None));
                Some(RegistryEvent::RightRevoked {
                    id: e.deviceId,
                    topic: e.topic,
                })
            }
            E::OtpEnvelopeSet(e) => {
                self.update_device(&e.deviceId, |d| {
                    d.otp_envelopes.insert(e.broker, e.envelope.clone());
                });
                None
            }
            E::OtpEnvelopeCleared(e) => {
                self.update_device(&e.deviceId, |d| {
                    d.otp_envelopes.remove(&e.broker);
                });
                None
            }
            E::Blacklisted(e) => {
                self.blacklist.insert(
                    e.deviceId.clone(),
                    BlacklistView {
                        until: e.until,
                        reason: e.reason,
                        evidence: e.evidence,
                    },
                );
                Some(RegistryEvent::Blacklisted {
                    id: e.deviceId,
                    until: e.until,
                    reason: e.reason,
                    evidence: e.evidence,
                })
            }
            E::BlacklistLifted(e) => {
                self.blacklist.remove(&e.deviceId);
                Some(RegistryEvent::BlacklistLifted(e.deviceId))
            }
        }
    }

    /// Applies a Groups event; returns the notification it causes, if any.
    pub fn apply_groups(&mut self, event: GroupsEvents) -> Option<RegistryEvent> {
        use GroupsEvents as E;
        match event {
            E::GroupCreated(e) => {
                let (Ok(protection), Ok(verify)) = (
                    Protection::from_code(e.protection),
                    VerifyPolicy::from_code(e.verify),
                ) else {
                    return None;
                };
                let group = GroupView {
                    name: e.group.clone(),
                    org: e.org,
                    filters: e.filters,
                    protection,
                    verify,
                    grace_seconds: e.graceSeconds,
                    members: BTreeSet::new(),
                    epochs: Vec::new(),
                };
                self.groups.insert(e.group.clone(), Arc::new(group));
                Some(RegistryEvent::GroupChanged(e.group))
            }
            E::GroupUpdated(e) => {
                let (Ok(protection), Ok(verify)) = (
                    Protection::from_code(e.protection),
                    VerifyPolicy::from_code(e.verify),
                ) else {
                    return None;
                };
                self.update_group(&e.group, |g| {
                    g.filters = e.filters;
                    g.protection = protection;
                    g.verify = verify;
                    g.grace_seconds = e.graceSeconds;
                });
                Some(RegistryEvent::GroupChanged(e.group))
            }
            E::MemberAdded(e) => {
                self.update_group(&e.group, |g| {
                    g.members.insert(e.deviceId.clone());
                });
                Some(RegistryEvent::GroupChanged(e.group))
            }
            E::MemberRemoved(e) => {
                self.update_group(&e.group, |g| {
                    g.members.remove(&e.deviceId);
                });
                Some(RegistryEvent::GroupChanged(e.group))
            }
            E::KeyServiceSet(e) => {
                self.key_services.insert(
                    e.org,
                    KeyServiceView {
                        account: e.account,
                        signing_key: e.signingKey,
                    },
                );
                None
            }
            E::KeyEpochCommitted(e) => {
                let epoch = KeyEpochView {
                    epoch: e.epoch,
                    commitment: e.commitment,
                    member_count: e.memberCount,
                    committed_at: e.committedAt,
                };
                self.update_group(&e.group, |g| g.epochs.push(epoch));
                Some(RegistryEvent::KeyEpoch {
                    group: e.group,
                    epoch: e.epoch,
                })
            }
            // Exchanges are evidence for auditors; the view needs only the epochs.
            E::KeyExchanged(_) => None,
        }
    }

    fn update_group(&mut self, name: &str, f: impl FnOnce(&mut GroupView)) {
        if let Some(group) = self.groups.get_mut(name) {
            f(Arc::make_mut(group));
        }
    }

    fn update_org(&mut self, id: &str, f: impl FnOnce(&mut OrgView)) {
        if let Some(org) = self.orgs.get_mut(id) {
            f(Arc::make_mut(org));
        }
    }

    fn update_device(&mut self, id: &str, f: impl FnOnce(&mut DeviceView)) {
        if let Some(device) = self.devices.get_mut(id) {
            f(Arc::make_mut(device));
        }
    }

    fn set_topic(
        &mut self,
        topic: String,
        org: String,
        sensitive: bool,
        publish_open: bool,
        subscribe_open: bool,
    ) {
        let view = TopicView {
            topic: topic.clone(),
            org,
            sensitive,
            publish_open,
            subscribe_open,
        };
        self.topics.insert(topic, Arc::new(view));
    }

    /// Whether `device_id` is banned at unix time `now`.
    pub fn is_blacklisted_at(&self, device_id: &str, now: u64) -> bool {
        self.blacklist.get(device_id).is_some_and(|b| b.until > now)
    }

    /// The groups that apply to a PUBLISH of `device` on topic name
    /// `topic`: groups whose filters match it, of an organisation owning a
    /// topic of a publish right of the device that matches it (so an
    /// organisation cannot impose a policy on another's topics). Brokers
    /// check envelopes, and publishers seal, by the same answer. In no
    /// particular order (the broker, per PUBLISH, needs none).
    pub fn groups_applying(&self, device: &str, topic: &str) -> Vec<Arc<GroupView>> {
        if self.groups.is_empty() {
            return Vec::new();
        }
        let Some(d) = self.devices.get(device) else {
            return Vec::new();
        };
        let owners: BTreeSet<&str> = d
            .rights
            .iter()
            .filter(|(t, r)| r.publish && (*t == topic || filter_matches(t, topic)))
            .filter_map(|(t, _)| self.topics.get(t).map(|v| v.org.as_str()))
            .collect();
        if owners.is_empty() {
            return Vec::new();
        }
        self.groups
            .values()
            .filter(|g| owners.contains(g.org.as_str()) && g.protects(topic))
            .cloned()
            .collect()
    }
}
