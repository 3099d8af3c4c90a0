//! Persistence of sessions, subscriptions, queued/in-flight QoS 1/2
//! messages and retained messages in one redb file.
//!
//! Writes leave the hot path through a channel to one store thread, which
//! applies everything waiting in a single transaction and commits it
//! durably (group commit). A QoS 1/2 PUBLISH that was stored for a
//! persistent session is acknowledged only from a [`StoreOp::Barrier`]
//! queued after it, i.e. after the commit that made it durable: an
//! acknowledged message survives `kill -9`.
//!
//! Records reuse the MQTT 5 wire format (a PUBLISH for a message, a
//! SUBSCRIBE for a subscription), so there is no second serialisation
//! format to keep in step with the codec.
//!
//! Both directions of the QoS 2 handshake are kept, with their packet
//! ids, for persistent sessions: `incoming` holds the ids the broker
//! answered PUBREC for and has not seen PUBREL of; `inflight` holds the id
//! each outgoing message was sent under and whether its PUBREC arrived
//! (then only the PUBREL is owed and the message record is gone). After a
//! restart the broker resends a PUBREL, not the PUBLISH, and the same
//! PUBLISH under the same id, never a copy under a new one.
//!
//! The channel to the store thread has no fixed capacity, but its backlog
//! is counted ([`Store::backlog`]): connections stop reading from their
//! clients while it is over `max_store_backlog_bytes`, so a store that
//! cannot keep up delays acknowledgements instead of filling memory.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use ledgermq_proto::{
    decode, encode, Packet, Properties, Protocol, Publish, QoS, Subscribe, MAX_PACKET_SIZE,
};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::mpsc;

use crate::session::Subscription;

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const SUBSCRIPTIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("subscriptions");
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");
/// (client id, message seq) → packet id (2 bytes) and state (1: PUBREL owed).
const INFLIGHT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("inflight");
/// (client id, packet id) of inbound QoS 2 messages awaiting PUBREL.
const INCOMING: TableDefinition<(&str, u16), ()> = TableDefinition::new("incoming_qos2");

/// Work for the store thread.
pub enum StoreOp {
    PutSession {
        client_id: Arc<str>,
        meta: SessionMeta,
    },
    /// Removes the session with its subscriptions and messages.
    DeleteSession {
        client_id: Arc<str>,
    },
    PutSubscription {
        client_id: Arc<str>,
        subscription: Subscription,
    },
    DeleteSubscription {
        client_id: Arc<str>,
        filter: String,
    },
    PutMessage {
        client_id: Arc<str>,
        seq: u64,
        record: Bytes,
    },
    /// The message is done: its record and its in-flight state go.
    DeleteMessage {
        client_id: Arc<str>,
        seq: u64,
    },
    /// The message went in flight under `packet_id`; with `released` its
    /// PUBREC arrived, the PUBREL is owed and the message record goes.
    PutInflight {
        client_id: Arc<str>,
        seq: u64,
        packet_id: u16,
        released: bool,
    },
    PutIncoming {
        client_id: Arc<str>,
        packet_id: u16,
    },
    DeleteIncoming {
        client_id: Arc<str>,
        packet_id: u16,
    },
    PutRetained {
        topic: String,
        record: Bytes,
    },
    DeleteRetained {
        topic: String,
    },
    /// Runs after every op queued before it is durable.
    Barrier(Box<dyn FnOnce() + Send>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMeta {
    pub protocol: Protocol,
    pub expiry_interval: u32,
    /// Unix seconds of the last disconnect; 0 while connected.
    pub disconnected_at: u64,
    /// The user name of the last connection: deliveries to the session
    /// while it is offline are authorised for it.
    pub username: Option<String>,
}

impl SessionMeta {
    /// Version 2: version, protocol level, expiry, disconnect time, then
    /// the user name (flag byte, UTF-8). Version 1 had no user name.
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.username.as_ref().map_or(0, |u| u.len()));
        b.push(2);
        b.push(self.protocol.level());
        b.extend_from_slice(&self.expiry_interval.to_be_bytes());
        b.extend_from_slice(&self.disconnected_at.to_be_bytes());
        match &self.username {
            Some(u) => {
                b.push(1);
                b.extend_from_slice(u.as_bytes());
            }
            None => b.push(0),
        }
        b
    }

    fn from_bytes(b: &[u8]) -> Option<SessionMeta> {
        let version = *b.first()?;
        if b.len() < 14 || !(1..=2).contains(&version) {
            return None;
        }
        let username = match (version, b.get(14)) {
            (2, Some(1)) => Some(std::str::from_utf8(&b[15..]).ok()?.to_owned()),
            (2, Some(0)) if b.len() == 15 => None,
            (1, None) => None,
            _ => return None,
        };
        Some(SessionMeta {
            protocol: if b[1] == 4 {
                Protocol::V311
            } else {
                Protocol::V5
            },
            expiry_interval: u32::from_be_bytes(b[2..6].try_into().ok()?),
            disconnected_at: u64::from_be_bytes(b[6..14].try_into().ok()?),
            username,
        })
    }
}

/// A message as stored: absolute expiry (Unix seconds, 0 = none) followed
/// by an MQTT 5 PUBLISH carrying topic, QoS, retain, properties, payload.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub expires_at_unix: u64,
    pub publish: Publish,
}

impl MessageRecord {
    pub fn encode(&self) -> Bytes {
        let mut buf =
            BytesMut::with_capacity(self.publish.payload.len() + self.publish.topic.len() + 32);
        buf.put_u64(self.expires_at_unix);
        let mut p = self.publish.clone();
        if p.qos != QoS::AtMostOnce && p.packet_id == 0 {
            p.packet_id = 1;
        }
        // Encoding a PUBLISH we built ourselves cannot fail short of the
        // 256 MiB limit, which max_packet_size keeps us far below.
        let _ = encode(&Packet::Publish(p), Protocol::V5, &mut buf);
        buf.freeze()
    }

    pub fn decode(record: &[u8]) -> Option<MessageRecord> {
        let expires_at_unix = u64::from_be_bytes(record.get(..8)?.try_into().ok()?);
        let mut buf = BytesMut::from(&record[8..]);
        match decode(&mut buf, Some(Protocol::V5), MAX_PACKET_SIZE) {
            Ok(Some(Packet::Publish(publish))) => Some(MessageRecord {
                expires_at_unix,
                publish,
            }),
            _ => None,
        }
    }
}

fn encode_subscription(s: &Subscription) -> Vec<u8> {
    let mut properties = Properties::default();
    properties.subscription_identifiers.extend(s.id);
    let packet = Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties,
        filters: vec![(s.filter.clone(), s.options)],
    });
    let mut buf = BytesMut::new();
    let _ = encode(&packet, Protocol::V5, &mut buf);
    buf.to_vec()
}

fn decode_subscription(b: &[u8]) -> Option<Subscription> {
    let mut buf = BytesMut::from(b);
    match decode(&mut buf, Some(Protocol::V5), MAX_PACKET_SIZE) {
        Ok(Some(Packet::Subscribe(mut s))) if s.filters.len() == 1 => {
            let (filter, options) = s.filters.pop()?;
            Some(Subscription {
                filter,
                options,
                id: s.properties.subscription_identifiers.first().copied(),
            })
        }
        _ => None,
    }
}

/// Everything found in the store at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sessions: Vec<LoadedSession>,
    pub retained: Vec<MessageRecord>,
    /// Next free message sequence number.
    pub next_seq: u64,
}

#[derive(Debug)]
pub struct LoadedSession {
    pub client_id: String,
    pub meta: SessionMeta,
    pub subscriptions: Vec<Subscription>,
    /// In arrival order.
    pub messages: Vec<(u64, MessageRecord)>,
    /// Message seq → (packet id, PUBREL owed). An entry whose PUBREL is
    /// owed has no message record any more.
    pub inflight: Vec<(u64, LoadedInflight)>,
    /// Inbound QoS 2 packet ids awaiting PUBREL.
    pub incoming_qos2: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedInflight {
    pub packet_id: u16,
    pub released: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store {path}: {message}")]
    Open { path: String, message: String },
    #[error("store read failed: {0}")]
    Read(String),
}

/// Handle for queuing store writes. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::UnboundedSender<StoreOp>,
    backlog: Arc<Backlog>,
}

/// Bytes queued for the store thread and not yet committed.
#[derive(Default)]
pub struct Backlog {
    bytes: AtomicUsize,
    /// Woken after each commit.
    pub drained: tokio::sync::Notify,
}

impl StoreOp {
    /// What the op holds in memory until committed, roughly.
    fn weight(&self) -> usize {
        64 + match self {
            StoreOp::PutMessage { record, .. } | StoreOp::PutRetained { record, .. } => {
                record.len()
            }
            StoreOp::PutSubscription { subscription, .. } => subscription.filter.len(),
            _ => 0,
        }
    }
}

impl Store {
    /// Opens (or creates) the store, loads its content and starts the
    /// store thread.
    pub fn open(path: &Path) -> Result<(Store, Loaded, std::thread::JoinHandle<()>), StoreError> {
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let db = Database::create(path).map_err(|e| open_err(&e))?;
        // Create the tables so that reads of a fresh file succeed.
        let tx = db.begin_write().map_err(|e| open_err(&e))?;
        for t in [SESSIONS, RETAINED] {
            tx.open_table(t).map_err(|e| open_err(&e))?;
        }
        tx.open_table(SUBSCRIPTIONS).map_err(|e| open_err(&e))?;
        tx.open_table(MESSAGES).map_err(|e| open_err(&e))?;
        tx.open_table(INFLIGHT).map_err(|e| open_err(&e))?;
        tx.open_table(INCOMING).map_err(|e| open_err(&e))?;
        tx.commit().map_err(|e| open_err(&e))?;
        let loaded = load(&db).map_err(|e| StoreError::Read(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        let thread_backlog = backlog.clone();
        let handle = std::thread::Builder::new()
            .name("ledgermq-store".into())
            .spawn(move || writer(db, rx, thread_backlog))
            .map_err(|e| open_err(&e))?;
        Ok((Store { tx, backlog }, loaded, handle))
    }

    pub fn send(&self, op: StoreOp) {
        self.backlog.bytes.fetch_add(op.weight(), Ordering::Relaxed);
        // The store thread only stops after every handle is dropped.
        let _ = self.tx.send(op);
    }

    /// Bytes queued and not yet committed.
    pub fn backlog(&self) -> usize {
        self.backlog.bytes.load(Ordering::Relaxed)
    }

    pub fn backlog_handle(&self) -> &Arc<Backlog> {
        &self.backlog
    }
}

fn load(db: &Database) -> Result<Loaded, Box<dyn std::error::Error>> {
    let rtx = db.begin_read()?;
    let sessions = rtx.open_table(SESSIONS)?;
    let subs = rtx.open_table(SUBSCRIPTIONS)?;
    let msgs = rtx.open_table(MESSAGES)?;
    let retained = rtx.open_table(RETAINED)?;
    let inflight = rtx.open_table(INFLIGHT)?;
    let incoming = rtx.open_table(INCOMING)?;
    let mut out = Loaded::default();
    for row in sessions.iter()? {
        let (k, v) = row?;
        let client_id = k.value().to_owned();
        let Some(meta) = SessionMeta::from_bytes(v.value()) else {
            tracing::warn!(client_id, "skipping unreadable session record");
            continue;
        };
        let mut loaded = LoadedSession {
            client_id,
            meta,
            subscriptions: Vec::new(),
            messages: Vec::new(),
            inflight: Vec::new(),
            incoming_qos2: Vec::new(),
        };
        let cid = loaded.client_id.as_str();
        for row in subs.range((cid, "")..)? {
            let (k, v) = row?;
            if k.value().0 != cid {
                break;
            }
            loaded.subscriptions.extend(decode_subscription(v.value()));
        }
        for row in msgs.range((cid, 0u64)..)? {
            let (k, v) = row?;
            let (owner, seq) = k.value();
            if owner != cid {
                break;
            }
            out.next_seq = out.next_seq.max(seq + 1);
            match MessageRecord::decode(v.value()) {
                Some(r) => loaded.messages.push((seq, r)),
                None => tracing::warn!(client_id = cid, seq, "skipping unreadable message record"),
            }
        }
        for row in inflight.range((cid, 0u64)..)? {
            let (k, v) = row?;
            let (owner, seq) = k.value();
            if owner != cid {
                break;
            }
            out.next_seq = out.next_seq.max(seq + 1);
            match v.value() {
                &[hi, lo, state] if state <= 1 => loaded.inflight.push((
                    seq,
                    LoadedInflight {
                        packet_id: u16::from_be_bytes([hi, lo]),
                        released: state == 1,
                    },
                )),
                _ => tracing::warn!(client_id = cid, seq, "skipping unreadable in-flight record"),
            }
        }
        for row in incoming.range((cid, 0u16)..)? {
            let (k, _) = row?;
            let (owner, packet_id) = k.value();
            if owner != cid {
                break;
            }
            loaded.incoming_qos2.push(packet_id);
        }
        out.sessions.push(loaded);
    }
    for row in retained.iter()? {
        let (_, v) = row?;
        out.retained.extend(MessageRecord::decode(v.value()));
    }
    Ok(out)
}

/// The store thread: batch, commit, then run barriers.
fn writer(db: Database, mut rx: mpsc::UnboundedReceiver<StoreOp>, backlog: Arc<Backlog>) {
    let mut batch = Vec::with_capacity(1024);
    while let Some(op) = rx.blocking_recv() {
        batch.push(op);
        while batch.len() < 8192 {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let weight: usize = batch.iter().map(StoreOp::weight).sum();
        let mut barriers = Vec::new();
        let applied = apply(&db, &mut batch, &mut barriers);
        backlog.bytes.fetch_sub(weight, Ordering::Relaxed);
        backlog.drained.notify_waiters();
        if let Err(e) = applied {
            // Nothing queued in this batch is durable; barriers are not run,
            // so the QoS 1/2 publishes they would acknowledge stay
            // unacknowledged and the clients will resend them.
            tracing::error!("store commit failed: {e}");
            barriers.clear();
            continue;
        }
        for b in barriers {
            b();
        }
    }
}

fn apply(
    db: &Database,
    batch: &mut Vec<StoreOp>,
    barriers: &mut Vec<Box<dyn FnOnce() + Send>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::Immediate);
    {
        let mut sessions = tx.open_table(SESSIONS)?;
        let mut subs = tx.open_table(SUBSCRIPTIONS)?;
        let mut msgs = tx.open_table(MESSAGES)?;
        let mut retained = tx.open_table(RETAINED)?;
        let mut inflight = tx.open_table(INFLIGHT)?;
        let mut incoming = tx.open_table(INCOMING)?;
        for op in batch.drain(..) {
            match op {
                StoreOp::PutSession { client_id, meta } => {
                    sessions.insert(&*client_id, meta.to_bytes().as_slice())?;
                }
                StoreOp::PutInflight {
                    client_id,
                    seq,
                    packet_id,
                    released,
                } => {
                    let [hi, lo] = packet_id.to_be_bytes();
                    inflight.insert((&*client_id, seq), [hi, lo, u8::from(released)].as_slice())?;
                    if released {
                        msgs.remove((&*client_id, seq))?;
                    }
                }
                StoreOp::PutIncoming {
                    client_id,
                    packet_id,
                } => {
                    incoming.insert((&*client_id, packet_id), ())?;
                }
                StoreOp::DeleteIncoming {
                    client_id,
                    packet_id,
                } => {
                    incoming.remove((&*client_id, packet_id))?;
                }
                StoreOp::DeleteSession { client_id } => {
                    let cid = &*client_id;
                    sessions.remove(cid)?;
                    let keys: Vec<String> = subs
                        .range((cid, "")..)?
                        .map_while(|r| r.ok())
                        .take_while(|(k, _)| k.value().0 == cid)
                        .map(|(k, _)| k.value().1.to_owned())
                        .collect();
                    for f in keys {
                        subs.remove((cid, f.as_str()))?;
                    }
                    let seqs: Vec<u64> = msgs
                        .range((cid, 0u64)..)?
                        .map_while(|r| r.ok())
                        .take_while(|(k, _)| k.value().0 == cid)
                        .map(|(k, _)| k.value().1)
                        .collect();
                    for s in seqs {
                        msgs.remove((cid, s))?;
                    }
                    let seqs: Vec<u64> = inflight
                        .range((cid, 0u64)..)?
                        .map_while(|r| r.ok())
                        .take_while(|(k, _)| k.value().0 == cid)
                        .map(|(k, _)| k.value().1)
                        .collect();
                    for s in seqs {
                        inflight.remove((cid, s))?;
                    }
                    let ids: Vec<u16> = incoming
                        .range((cid, 0u16)..)?
                        .map_while(|r| r.ok())
                        .take_while(|(k, _)| k.value().0 == cid)
                        .map(|(k, _)| k.value().1)
                        .collect();
                    for id in ids {
                        incoming.remove((cid, id))?;
                    }
                }
                StoreOp::PutSubscription {
                    client_id,
                    subscription,
                } => {
                    let bytes = encode_subscription(&subscription);
                    subs.insert(
                        (&*client_id, subscription.filter.as_str()),
                        bytes.as_slice(),
                    )?;
                }
                StoreOp::DeleteSubscription { client_id, filter } => {
                    subs.remove((&*client_id, filter.as_str()))?;
                }
                StoreOp::PutMessage {
                    client_id,
                    seq,
                    record,
                } => {
                    msgs.insert((&*client_id, seq), &*record)?;
                }
                StoreOp::DeleteMessage { client_id, seq } => {
                    msgs.remove((&*client_id, seq))?;
                    inflight.remove((&*client_id, seq))?;
                }
                StoreOp::PutRetained { topic, record } => {
                    retained.insert(topic.as_str(), &*record)?;
                }
                StoreOp::DeleteRetained { topic } => {
                    retained.remove(topic.as_str())?;
                }
                StoreOp::Barrier(f) => barriers.push(f),
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgermq_proto::SubscriptionOptions;

    #[test]
    fn version_1_session_records_still_load() {
        let mut v1 = vec![1, 5];
        v1.extend_from_slice(&60u32.to_be_bytes());
        v1.extend_from_slice(&7u64.to_be_bytes());
        let meta = SessionMeta::from_bytes(&v1).unwrap();
        assert_eq!((meta.expiry_interval, meta.username.as_deref()), (60, None));
        let v2 = SessionMeta {
            username: Some("u".into()),
            ..meta.clone()
        };
        assert_eq!(SessionMeta::from_bytes(&v2.to_bytes()), Some(v2));
        assert_eq!(SessionMeta::from_bytes(&meta.to_bytes()), Some(meta));
    }

    #[test]
    fn records_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("lmq-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.redb");
        let _ = std::fs::remove_file(&path);
        let record = MessageRecord {
            expires_at_unix: 0,
            publish: Publish {
                qos: QoS::AtLeastOnce,
                topic: "a/b".into(),
                packet_id: 1,
                payload: Bytes::from_static(b"hello"),
                ..Default::default()
            },
        };
        {
            let (store, loaded, handle) = Store::open(&path).unwrap();
            assert!(loaded.sessions.is_empty());
            let cid: Arc<str> = "c1".into();
            store.send(StoreOp::PutSession {
                client_id: cid.clone(),
                meta: SessionMeta {
                    protocol: Protocol::V5,
                    expiry_interval: 60,
                    disconnected_at: 5,
                    username: Some("alice".into()),
                },
            });
            store.send(StoreOp::PutIncoming {
                client_id: cid.clone(),
                packet_id: 77,
            });
            store.send(StoreOp::PutIncoming {
                client_id: cid.clone(),
                packet_id: 78,
            });
            store.send(StoreOp::DeleteIncoming {
                client_id: cid.clone(),
                packet_id: 78,
            });
            store.send(StoreOp::PutMessage {
                client_id: cid.clone(),
                seq: 50,
                record: record.encode(),
            });
            store.send(StoreOp::PutInflight {
                client_id: cid.clone(),
                seq: 50,
                packet_id: 9,
                released: true,
            });
            store.send(StoreOp::PutSubscription {
                client_id: cid.clone(),
                subscription: Subscription {
                    filter: "a/+".into(),
                    options: SubscriptionOptions::default(),
                    id: Some(7),
                },
            });
            store.send(StoreOp::PutMessage {
                client_id: cid.clone(),
                seq: 41,
                record: record.encode(),
            });
            store.send(StoreOp::PutMessage {
                client_id: cid,
                seq: 42,
                record: record.encode(),
            });
            store.send(StoreOp::DeleteMessage {
                client_id: "c1".into(),
                seq: 41,
            });
            drop(store);
            handle.join().unwrap();
        }
        let (_store, loaded, _h) = Store::open(&path).unwrap();
        assert_eq!(loaded.sessions.len(), 1);
        let s = &loaded.sessions[0];
        assert_eq!(s.meta.expiry_interval, 60);
        assert_eq!(s.subscriptions[0].id, Some(7));
        assert_eq!(s.messages.len(), 1, "a released message's record is gone");
        assert_eq!(s.messages[0].0, 42);
        assert_eq!(s.messages[0].1, record);
        assert_eq!(s.meta.username.as_deref(), Some("alice"));
        assert_eq!(s.incoming_qos2, [77]);
        assert_eq!(
            s.inflight,
            [(
                50,
                LoadedInflight {
                    packet_id: 9,
                    released: true
                }
            )]
        );
        assert_eq!(loaded.next_seq, 51);
        std::fs::remove_dir_all(&dir).ok();
    }
}
