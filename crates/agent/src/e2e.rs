//! End-to-end payloads for a device (docs/e2e.md): the group keys it was
//! given, sealing what it publishes on protected topics and opening what
//! it receives. Nothing here does I/O: the caller feeds the retained key
//! bundles it receives on `$lmq/keys/+/<device>` ([`KEY_FILTER_PREFIX`])
//! and a registry [`Snapshot`] of the ledger it trusts (the key service's
//! key, the epoch commitments, the groups, the senders' public keys).
//!
//! - [`DeviceE2e::take_bundle`] verifies a bundle (key service signature,
//!   the ledger's commitment for its group and epoch) and keeps the key.
//! - [`DeviceE2e::protect`] turns a payload into what the topic's groups
//!   require: a sealed envelope under the group's latest epoch, a signed
//!   one, or the plain payload.
//! - [`DeviceE2e::open`] verifies and decrypts what arrives, and says why
//!   it cannot ("not a member of group X (epoch N)").

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ledgermq_keystore::software::SoftwareX25519;
use ledgermq_keystore::{Ed25519Signer, X25519Agreement};
use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_ledger::contracts::Protection;
use ledgermq_ledger::view::Snapshot;
use ledgermq_security::envelope::{EnvelopeKind, ENVELOPE_MAGIC};
use ledgermq_security::{Envelope, EnvelopeError, GroupKey, KeyBundle, Publisher};
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::scac::{LocalKey, ScacCredentials};
use crate::ClientError;

/// Prefix of a device's key topics; subscribe to
/// `$lmq/keys/+/<device id>` to receive one's key bundles.
pub const KEY_FILTER_PREFIX: &str = "$lmq/keys/+/";

/// Why a payload could not be protected or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum E2eError {
    /// The topic's group requires a sealed envelope and no key of its
    /// latest epoch has arrived (yet).
    NoKey { group: String, epoch: u64 },
    /// The group has no key epoch on the ledger yet.
    NoEpoch { group: String },
    /// A key bundle of a group or epoch the ledger view does not show
    /// (yet): keep it and try again once the view has moved on.
    AheadOfLedger(String),
    /// A key bundle that does not check out (signature, commitment, not
    /// for this device).
    BadBundle(String),
    /// An envelope that does not parse or verify.
    Envelope(EnvelopeError),
    /// The sender of an envelope is not registered.
    UnknownSender(String),
}

impl fmt::Display for E2eError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            E2eError::NoKey { group, epoch } => {
                write!(f, "no key of group {group} epoch {epoch} received (yet)")
            }
            E2eError::NoEpoch { group } => write!(f, "group {group} has no key epoch yet"),
            E2eError::AheadOfLedger(why) | E2eError::BadBundle(why) => {
                write!(f, "key bundle refused: {why}")
            }
            E2eError::Envelope(e) => write!(f, "{e}"),
            E2eError::UnknownSender(s) => write!(f, "sender {s} is not registered"),
        }
    }
}

impl std::error::Error for E2eError {}

/// What a received payload turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// Not an envelope: as it came.
    Plain(Vec<u8>),
    /// A signed-only envelope whose signature verified.
    Signed { sender: String, payload: Vec<u8> },
    /// A sealed envelope, verified and decrypted.
    Decrypted {
        sender: String,
        group: String,
        epoch: u64,
        payload: Zeroizing<Vec<u8>>,
    },
    /// A sealed envelope this device has no key for.
    CannotDecrypt {
        group: String,
        epoch: u64,
        member: bool,
    },
}

impl Opened {
    /// The line a command-line subscriber prints for it.
    pub fn describe(&self) -> String {
        match self {
            Opened::Plain(p) | Opened::Signed { payload: p, .. } => {
                String::from_utf8_lossy(p).into_owned()
            }
            Opened::Decrypted { payload, .. } => String::from_utf8_lossy(payload).into_owned(),
            Opened::CannotDecrypt {
                group,
                epoch,
                member: false,
            } => format!("cannot decrypt: not a member of group {group} (epoch {epoch})"),
            Opened::CannotDecrypt { group, epoch, .. } => {
                format!("cannot decrypt: no key of group {group} (epoch {epoch}) received yet")
            }
        }
    }
}

/// A device's end-to-end state: its keys and the group keys it holds.
pub struct DeviceE2e {
    device_id: String,
    publisher: Publisher,
    agreement: Arc<dyn X25519Agreement>,
    keys: HashMap<(String, u64), GroupKey>,
    /// The last sequence number sent; sequences are microseconds since the
    /// epoch, strictly increasing, so a restart needs no state file.
    last_sequence: u64,
    /// Per sender, the highest sequence opened (replays are refused).
    seen: HashMap<String, u64>,
}

impl fmt::Debug for DeviceE2e {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceE2e")
            .field("device_id", &self.device_id)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl DeviceE2e {
    pub fn new(
        device_id: &str,
        signer: Arc<dyn Ed25519Signer>,
        agreement: Arc<dyn X25519Agreement>,
    ) -> Result<Self, E2eError> {
        Ok(DeviceE2e {
            device_id: device_id.to_owned(),
            publisher: Publisher::new(device_id, signer).map_err(E2eError::Envelope)?,
            agreement,
            keys: HashMap::new(),
            last_sequence: 0,
            seen: HashMap::new(),
        })
    }

    /// A device's end-to-end state from its provisioning bundle: its
    /// Ed25519 signing key (checked against the registered public key) and
    /// its X25519 key, both held in memory.
    pub fn from_bundle(path: &Path) -> Result<Self, ClientError> {
        let credentials = ScacCredentials::from_bundle(path)?;
        let LocalKey::Ed25519(signer) = credentials.device_key else {
            return Err(ClientError::Credentials(
                "end-to-end envelopes are signed with Ed25519".into(),
            ));
        };
        let bundle = ProvisioningBundle::load(path)
            .map_err(|e| ClientError::Credentials(format!("cannot load the bundle: {e}")))?;
        let secret = bundle.agreement_secret_bytes().map_err(|e| {
            ClientError::Credentials(format!("{}: bad agreement secret: {e}", path.display()))
        })?;
        let agreement = Arc::new(SoftwareX25519::from_bytes(&secret));
        DeviceE2e::new(&credentials.device_id, signer, agreement)
            .map_err(|e| ClientError::Credentials(e.to_string()))
    }

    /// What this device signs with.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The filter of this device's key topics.
    pub fn key_filter(&self) -> String {
        format!("{KEY_FILTER_PREFIX}{}", self.device_id)
    }

    /// Whether `topic` is one of this device's key topics.
    pub fn is_key_topic(&self, topic: &str) -> bool {
        topic
            .strip_prefix("$lmq/keys/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, member)| member == self.device_id)
    }

    /// Whether a key of `group`'s `epoch` is held.
    pub fn has_key(&self, group: &str, epoch: u64) -> bool {
        self.keys.contains_key(&(group.to_owned(), epoch))
    }

    /// The key of `group`'s `epoch`, if held (for a caller that seals or
    /// opens with `ledgermq-security` directly, such as a load generator).
    pub fn key(&self, group: &str, epoch: u64) -> Option<&GroupKey> {
        self.keys.get(&(group.to_owned(), epoch))
    }

    /// Verifies and keeps the key of a retained bundle: signed by the key
    /// service of the group's organisation, for this device, and matching
    /// the ledger's commitment for its group and epoch. An empty payload
    /// (a cleared bundle) is ignored. Returns the (group, epoch) taken.
    pub fn take_bundle(
        &mut self,
        s: &Snapshot,
        payload: &[u8],
    ) -> Result<Option<(String, u64)>, E2eError> {
        if payload.is_empty() {
            return Ok(None);
        }
        let bad = |why: String| E2eError::BadBundle(why);
        let bundle = KeyBundle::parse(payload).map_err(|e| bad(e.to_string()))?;
        if bundle.member() != self.device_id {
            return Err(bad(format!("it is for {}", bundle.member())));
        }
        let ahead = |why: String| E2eError::AheadOfLedger(why);
        let group = s
            .groups
            .get(bundle.group())
            .ok_or_else(|| ahead(format!("no group {} on the ledger", bundle.group())))?;
        let service = s
            .key_services
            .get(&group.org)
            .ok_or_else(|| bad(format!("organisation {} has no key service", group.org)))?;
        let epoch = group
            .epochs
            .iter()
            .find(|e| e.epoch == bundle.epoch())
            .ok_or_else(|| {
                ahead(format!(
                    "group {} has no epoch {} on the ledger",
                    bundle.group(),
                    bundle.epoch()
                ))
            })?;
        let key = bundle
            .open(
                &service.signing_key.0,
                &*self.agreement,
                &epoch.commitment.0,
            )
            .map_err(|e| bad(e.to_string()))?;
        let taken = (bundle.group().to_owned(), bundle.epoch());
        self.keys.insert(taken.clone(), key);
        Ok(Some(taken))
    }

    /// What `payload` must become to be published on `topic`: sealed under
    /// the latest epoch of the first group (by name) that requires it,
    /// signed if the strictest group asks only for that, plain if no group
    /// applies. An optional group seals when its key is held.
    pub fn protect(
        &mut self,
        s: &Snapshot,
        topic: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, E2eError> {
        let mut groups = s.groups_applying(&self.device_id, topic);
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        let Some(strictest) = groups.iter().map(|g| g.protection).max_by_key(|p| p.code()) else {
            return Ok(payload.to_vec());
        };
        let sequence = self.next_sequence();
        let sealing = groups
            .iter()
            .filter(|g| strictest != Protection::Sealed || g.protection == Protection::Sealed)
            .find_map(|g| {
                let epoch = g.latest_epoch()?.epoch;
                self.keys.get(&(g.name.clone(), epoch))
            });
        match (sealing, strictest) {
            (Some(key), _) => self
                .publisher
                .seal(topic, key, sequence, payload, &mut OsRng)
                .map_err(E2eError::Envelope),
            (None, Protection::Sealed) => {
                let g = groups
                    .iter()
                    .find(|g| g.protection == Protection::Sealed)
                    .expect("the strictest is sealed");
                Err(match g.latest_epoch() {
                    Some(e) => E2eError::NoKey {
                        group: g.name.clone(),
                        epoch: e.epoch,
                    },
                    None => E2eError::NoEpoch {
                        group: g.name.clone(),
                    },
                })
            }
            (None, Protection::Signed) => self
                .publisher
                .sign(topic, sequence, payload)
                .map_err(E2eError::Envelope),
            (None, Protection::Optional) => Ok(payload.to_vec()),
        }
    }

    /// Verifies (the sender's registered key) and decrypts a received
    /// payload; refuses a replayed sequence from the same sender.
    pub fn open(&mut self, s: &Snapshot, topic: &str, payload: &[u8]) -> Result<Opened, E2eError> {
        if !payload.starts_with(ENVELOPE_MAGIC) {
            return Ok(Opened::Plain(payload.to_vec()));
        }
        let envelope = Envelope::parse(payload).map_err(E2eError::Envelope)?;
        let sender = envelope.sender().to_owned();
        let public = s
            .devices
            .get(&sender)
            .map(|d| d.signing_key.0)
            .ok_or_else(|| E2eError::UnknownSender(sender.clone()))?;
        envelope
            .verify(topic, &public)
            .map_err(E2eError::Envelope)?;
        envelope
            .check_sequence(self.seen.get(&sender).copied().unwrap_or(0))
            .map_err(E2eError::Envelope)?;
        let opened = match envelope.kind() {
            EnvelopeKind::Signed => Opened::Signed {
                sender: sender.clone(),
                payload: envelope.body().to_vec(),
            },
            EnvelopeKind::Sealed => {
                let group = envelope.group().unwrap_or_default().to_owned();
                let epoch = envelope.epoch().unwrap_or_default();
                match self.keys.get(&(group.clone(), epoch)) {
                    Some(key) => Opened::Decrypted {
                        sender: sender.clone(),
                        payload: envelope.open(topic, key).map_err(E2eError::Envelope)?,
                        group,
                        epoch,
                    },
                    None => Opened::CannotDecrypt {
                        member: s
                            .groups
                            .get(&group)
                            .is_some_and(|g| g.members.contains(&self.device_id)),
                        group,
                        epoch,
                    },
                }
            }
        };
        // A message this device cannot decrypt yet does not move the
        // sender's sequence: opened again once its key arrives, it must
        // not look like a replay.
        if !matches!(opened, Opened::CannotDecrypt { .. }) {
            self.seen.insert(sender, envelope.sequence());
        }
        Ok(opened)
    }

    /// Whether a key of `group` for `epoch` may still come: no key of the
    /// group is held yet, or only older ones (a rotation whose bundle is
    /// on its way). A key older than one held will not be handed out.
    pub fn awaits_key(&self, group: &str, epoch: u64) -> bool {
        self.keys
            .keys()
            .filter(|(g, _)| g == group)
            .map(|(_, e)| *e)
            .max()
            .is_none_or(|latest| epoch > latest)
    }

    fn next_sequence(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.last_sequence = now.max(self.last_sequence + 1);
        self.last_sequence
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{Address, B256};
    use ledgermq_keystore::software::{SoftwareEd25519, SoftwareX25519};
    use ledgermq_ledger::contracts::{DeviceStatus, VerifyPolicy};
    use ledgermq_ledger::view::{
        DeviceView, GroupView, KeyEpochView, KeyServiceView, Right, Rights, TopicView,
    };
    use ledgermq_security::envelope::EpochDistribution;

    use super::*;

    const TOPIC: &str = "plant/7/temp";

    struct Fixture {
        snapshot: Snapshot,
        service: SoftwareEd25519,
        publisher: DeviceE2e,
        reader: DeviceE2e,
        stranger: DeviceE2e,
    }

    fn device(id: &str, seed: u8) -> (DeviceE2e, Arc<DeviceView>) {
        let signer = Arc::new(SoftwareEd25519::from_seed(&[seed; 32]));
        let agreement = Arc::new(SoftwareX25519::from_bytes(&[seed; 32]));
        let mut rights = Rights::default();
        rights.filters.push((
            "plant/#".into(),
            Right {
                publish: true,
                subscribe: true,
            },
        ));
        let view = Arc::new(DeviceView {
            id: id.into(),
            org: "supplier".into(),
            signing_key: B256::from(signer.public()),
            agreement_key: B256::from(agreement.public()),
            registered_at: 0,
            status: DeviceStatus::Active,
            rights,
            otp_envelopes: HashMap::new(),
        });
        (DeviceE2e::new(id, signer, agreement).unwrap(), view)
    }

    /// 1111 publishes on plant/#, 1112 reads it, both members of sealed
    /// group hsu0001; 1113 may subscribe but is no member.
    fn fixture() -> Fixture {
        let mut snapshot = Snapshot::default();
        let (publisher, p) = device("1111", 1);
        let (reader, r) = device("1112", 2);
        let (stranger, s) = device("1113", 3);
        for d in [p, r, s] {
            snapshot.devices.insert(d.id.clone(), d);
        }
        snapshot.topics.insert(
            "plant/#".into(),
            Arc::new(TopicView {
                topic: "plant/#".into(),
                org: "supplier".into(),
                sensitive: false,
                publish_open: false,
                subscribe_open: true,
            }),
        );
        snapshot.groups.insert(
            "hsu0001".into(),
            Arc::new(GroupView {
                name: "hsu0001".into(),
                org: "supplier".into(),
                filters: vec!["plant/#".into()],
                protection: Protection::Sealed,
                verify: VerifyPolicy::Subscribers,
                grace_seconds: 60,
                members: ["1111".to_string(), "1112".to_string()]
                    .into_iter()
                    .collect(),
                epochs: Vec::new(),
            }),
        );
        let service = SoftwareEd25519::from_seed(&[9; 32]);
        snapshot.key_services.insert(
            "supplier".into(),
            KeyServiceView {
                account: Address::repeat_byte(9),
                signing_key: B256::from(service.public()),
            },
        );
        Fixture {
            snapshot,
            service,
            publisher,
            reader,
            stranger,
        }
    }

    impl Fixture {
        /// Commits epoch `epoch` on the "ledger" and returns each member's
        /// bundle, publisher's first.
        fn rotate(&mut self, epoch: u64) -> Vec<Vec<u8>> {
            let key = GroupKey::generate("hsu0001", epoch, &mut OsRng).unwrap();
            let members: Vec<(&str, [u8; 32])> = ["1111", "1112"]
                .iter()
                .map(|m| (*m, self.snapshot.devices[*m].agreement_key.0))
                .collect();
            let d = EpochDistribution::new(&key, &members, &self.service, &mut OsRng).unwrap();
            let mut g = (*self.snapshot.groups["hsu0001"]).clone();
            g.epochs.push(KeyEpochView {
                epoch,
                commitment: B256::from(d.epoch_commitment),
                member_count: 2,
                committed_at: 0,
            });
            self.snapshot.groups.insert("hsu0001".into(), Arc::new(g));
            d.members.into_iter().map(|m| m.bundle).collect()
        }
    }

    #[test]
    fn members_open_what_a_member_sealed_and_a_replay_is_refused() {
        let mut f = fixture();
        let s = f.snapshot.clone();
        assert!(matches!(
            f.publisher.protect(&s, TOPIC, b"21.5 C"),
            Err(E2eError::NoEpoch { .. })
        ));
        let bundles = f.rotate(1);
        let s = f.snapshot.clone();
        assert!(matches!(
            f.publisher.protect(&s, TOPIC, b"21.5 C"),
            Err(E2eError::NoKey { epoch: 1, .. })
        ));
        f.publisher.take_bundle(&s, &bundles[0]).unwrap();
        f.reader.take_bundle(&s, &bundles[1]).unwrap();
        assert!(
            f.reader.take_bundle(&s, &bundles[0]).is_err(),
            "not its own"
        );
        let sealed = f.publisher.protect(&s, TOPIC, b"21.5 C").unwrap();
        assert!(sealed.starts_with(ENVELOPE_MAGIC));
        match f.reader.open(&s, TOPIC, &sealed).unwrap() {
            Opened::Decrypted { payload, epoch, .. } => {
                assert_eq!((&payload[..], epoch), (&b"21.5 C"[..], 1));
            }
            other => panic!("{other:?}"),
        }
        assert!(f.reader.open(&s, TOPIC, &sealed).is_err(), "a replay");
        assert!(
            f.reader.open(&s, "plant/8/temp", &sealed).is_err(),
            "another topic"
        );
        assert_eq!(
            f.stranger.open(&s, TOPIC, &sealed).unwrap().describe(),
            "cannot decrypt: not a member of group hsu0001 (epoch 1)"
        );
    }

    #[test]
    fn a_message_of_an_epoch_whose_key_is_on_its_way_opens_once_it_arrives() {
        let mut f = fixture();
        let first = f.rotate(1);
        let s = f.snapshot.clone();
        f.publisher.take_bundle(&s, &first[0]).unwrap();
        f.reader.take_bundle(&s, &first[1]).unwrap();
        let second = f.rotate(2);
        let s = f.snapshot.clone();
        // The publisher got its bundle of epoch 2 first.
        f.publisher.take_bundle(&s, &second[0]).unwrap();
        let sealed = f.publisher.protect(&s, TOPIC, b"22.0 C").unwrap();
        let opened = f.reader.open(&s, TOPIC, &sealed).unwrap();
        assert!(matches!(
            opened,
            Opened::CannotDecrypt {
                epoch: 2,
                member: true,
                ..
            }
        ));
        assert!(f.reader.awaits_key("hsu0001", 2));
        assert!(!f.reader.awaits_key("hsu0001", 1), "it holds epoch 1");
        f.reader.take_bundle(&s, &second[1]).unwrap();
        // Not taken for a replay: the first attempt did not move the
        // sender's sequence.
        match f.reader.open(&s, TOPIC, &sealed).unwrap() {
            Opened::Decrypted { payload, .. } => assert_eq!(&payload[..], b"22.0 C"),
            other => panic!("{other:?}"),
        }
    }
}
