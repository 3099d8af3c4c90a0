//! The state every connection shares: sessions, subscriptions, retained
//! messages, the store, metrics, timers and the security decisions; and
//! routing, which is what they are shared for.
//!
//! Session lifecycle (CONNECT, takeover, disconnect, expiry, wills) lives
//! in [`crate::lifecycle`]; this file routes messages into sessions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ledgermq_proto::topic::TopicLimits;
use ledgermq_proto::{Properties, Publish, QoS, ReasonCode};
use parking_lot::Mutex;

use crate::auth::{Authenticator, Authorizer, ClientIdentity, DeliveryCheck, PayloadSource};
use crate::auth_pool::AuthPool;
use crate::config::Config;
use crate::message::{unix_now, Delivery, Message};
use crate::metrics::Metrics;
use crate::retained::{Retained, RetainedLimits, RetainedStore};
use crate::router::{CachedCheck, Checks, Matched, Router};
use crate::session::{Enqueued, Inflight, Outgoing, Session, SessionState};
use crate::store::{Loaded, MessageRecord, Store, StoreOp};
use crate::timers::{Timer, Timers};

pub struct Broker {
    pub config: Config,
    pub metrics: Metrics,
    pub router: Router,
    pub retained: RetainedStore,
    pub(crate) sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    store: Option<Store>,
    next_seq: AtomicU64,
    pub authenticator: Box<dyn Authenticator>,
    pub authorizer: Box<dyn Authorizer>,
    /// Where authentication steps run (bounded, see [`AuthPool`]).
    pub auth_pool: AuthPool,
    /// Delayed wills and session expiries.
    pub timers: Timers,
    pub topic_limits: TopicLimits,
    /// Bytes held by connections still reading their CONNECT.
    pub(crate) connect_bytes: AtomicUsize,
    /// Open connections per client address (with `max_connections_per_address`).
    pub(crate) per_address: Mutex<HashMap<IpAddr, usize>>,
    pub started: Instant,
}

/// Authentication workers in the ledger mode unless `auth_workers` says.
pub const LEDGER_AUTH_WORKERS: usize = 32;

/// What routing one PUBLISH did.
#[derive(Default)]
pub struct Routed {
    /// Sessions the message was queued for.
    pub matched: usize,
    /// Something was written to the store: acknowledge only after a barrier.
    pub stored: bool,
    /// Connected subscribers whose queue went over its limit while they
    /// keep taking messages: the publisher waits for them (backpressure).
    pub congested: Vec<Arc<Session>>,
}

/// What queuing one delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub stored: bool,
    pub over_limit: bool,
}

/// What to do with a retained PUBLISH the retained store has no room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRetainLimit {
    /// Refuse the whole PUBLISH (MQTT 5 QoS 1/2: the client is told 0x97).
    Refuse,
    /// Deliver it to current subscribers without retaining it (the client
    /// cannot be told: QoS 0, MQTT 3.1.1, wills).
    DeliverAnyway,
}

/// A retained PUBLISH refused because the retained store is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedFull;

impl Broker {
    pub fn new(
        config: Config,
        store: Option<Store>,
        authenticator: Box<dyn Authenticator>,
        authorizer: Box<dyn Authorizer>,
    ) -> Broker {
        let retained = RetainedStore::new(RetainedLimits {
            max_messages: config.max_retained_messages,
            max_bytes: usize::try_from(config.max_retained_bytes).unwrap_or(usize::MAX),
        });
        let workers = config
            .auth_workers
            .unwrap_or_else(AuthPool::default_workers);
        Broker {
            metrics: Metrics::default(),
            router: Router::default(),
            retained,
            sessions: Mutex::new(HashMap::new()),
            store,
            next_seq: AtomicU64::new(1),
            authenticator,
            authorizer,
            auth_pool: AuthPool::new(workers, config.auth_queue),
            timers: Timers::default(),
            topic_limits: config.topic_limits(),
            connect_bytes: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            started: Instant::now(),
            config,
        }
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Rebuilds sessions, subscriptions, queues, in-flight state and
    /// retained messages from what the store held at start-up.
    pub fn restore(&self, loaded: Loaded) {
        let now = Instant::now();
        let now_unix = unix_now();
        self.next_seq
            .fetch_max(loaded.next_seq.max(1), Ordering::Relaxed);
        for r in loaded.retained {
            if let Some(m) = record_to_message(r, now, now_unix, "".into()) {
                self.retained.set(Arc::new(m));
            }
        }
        for ls in loaded.sessions {
            let client_id: Arc<str> = ls.client_id.into();
            // A session that was connected when the broker stopped counts as
            // disconnected from now.
            let down_since = match ls.meta.disconnected_at {
                0 => now_unix,
                at => at,
            };
            let elapsed = now_unix.saturating_sub(down_since);
            let expiry = ls.meta.expiry_interval;
            if expiry != u32::MAX && elapsed >= u64::from(expiry) {
                self.store_op(StoreOp::DeleteSession { client_id });
                continue;
            }
            let session = Arc::new(Session::new(client_id.clone(), ls.meta.protocol, expiry));
            {
                let mut st = session.state.lock();
                let down_at = now.checked_sub(Duration::from_secs(elapsed)).unwrap_or(now);
                st.disconnected_at = Some(down_at);
                st.identity = Some(Arc::new(ClientIdentity {
                    client_id: client_id.to_string(),
                    username: ls.meta.username.clone(),
                }));
                for sub in ls.subscriptions {
                    self.router
                        .subscribe(&sub.filter, &session, sub.options, sub.id);
                    st.subscriptions.insert(sub.filter.clone(), sub);
                }
                st.incoming_qos2.extend(ls.incoming_qos2);
                self.restore_messages(&session, &mut st, ls.messages, ls.inflight, now, now_unix);
                if expiry != u32::MAX {
                    let at = down_at + Duration::from_secs(u64::from(expiry));
                    st.expiry_timer = Some(self.timers.schedule(
                        at,
                        Timer::SessionExpiry {
                            client_id: client_id.clone(),
                            generation: 0,
                        },
                    ));
                }
            }
            self.sessions.lock().insert(client_id, session);
        }
    }

    /// Messages of a restored session: those that were in flight go back
    /// into the window under their packet ids (to be resent with DUP, or
    /// their PUBREL resent), the rest into the queue, in arrival order.
    fn restore_messages(
        &self,
        session: &Session,
        st: &mut SessionState,
        messages: Vec<(u64, MessageRecord)>,
        inflight: Vec<(u64, crate::store::LoadedInflight)>,
        now: Instant,
        now_unix: u64,
    ) {
        let states: HashMap<u64, crate::store::LoadedInflight> = inflight.iter().copied().collect();
        let mut released: Vec<(u64, u16)> = inflight
            .iter()
            .filter(|(_, i)| i.released)
            .map(|(seq, i)| (*seq, i.packet_id))
            .collect();
        released.sort_unstable();
        for (seq, packet_id) in released {
            st.restore_inflight(Inflight {
                packet_id,
                store_seq: Some(seq),
                out: Outgoing::Release,
            });
        }
        for (seq, record) in messages {
            let qos = record.publish.qos;
            let retain = record.publish.retain;
            let ids = record.publish.properties.subscription_identifiers.clone();
            let Some(m) = record_to_message(record, now, now_unix, "".into()) else {
                self.store_op(StoreOp::DeleteMessage {
                    client_id: session.client_id.clone(),
                    seq,
                });
                continue;
            };
            let delivery = Delivery {
                message: Arc::new(m),
                qos,
                retain,
                subscription_ids: ids,
                store_seq: Some(seq),
            };
            match states.get(&seq) {
                Some(i) if !i.released => st.restore_inflight(Inflight {
                    packet_id: i.packet_id,
                    store_seq: Some(seq),
                    out: Outgoing::Publish {
                        delivery,
                        sent: true,
                    },
                }),
                _ => {
                    st.enqueue(delivery, usize::MAX);
                }
            }
        }
    }

    pub fn store_op(&self, op: StoreOp) {
        if let Some(s) = &self.store {
            s.send(op);
        }
    }

    /// Runs `f` once everything queued to the store so far is durable (at
    /// once without persistence).
    pub fn after_durable(&self, f: impl FnOnce() + Send + 'static) {
        match &self.store {
            Some(s) => s.send(StoreOp::Barrier(Box::new(f))),
            None => f(),
        }
    }

    /// Resolves once everything queued to the store so far is durable.
    pub async fn durable(&self) {
        if self.store.is_none() {
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.after_durable(move || {
            let _ = tx.send(());
        });
        let _ = rx.await;
    }

    /// Resolves once the store's backlog is under `max_store_backlog_bytes`
    /// (at once without persistence): connections wait here before reading
    /// more from their clients.
    pub async fn store_room(&self) {
        let Some(store) = &self.store else {
            return;
        };
        let limit = self.config.max_store_backlog_bytes;
        let backlog = store.backlog_handle().clone();
        loop {
            let drained = backlog.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if store.backlog() <= limit {
                return;
            }
            drained.await;
        }
    }

    /// Whether the store has room right now (see [`Self::store_room`]).
    pub fn store_has_room(&self) -> bool {
        self.store
            .as_ref()
            .is_none_or(|s| s.backlog() <= self.config.max_store_backlog_bytes)
    }

    /// Routes one application message to every matching session and, if it
    /// is retained, updates the retained store.
    pub fn publish(
        &self,
        message: Arc<Message>,
        on_limit: OnRetainLimit,
    ) -> Result<Routed, RetainedFull> {
        let stored = match message.retain {
            true => self.retain(&message, on_limit)?,
            false => false,
        };
        let mut routed = self.route(&message);
        routed.stored |= stored;
        Ok(routed)
    }

    /// Updates the retained store (and the persistent one); returns whether
    /// a store write was queued.
    fn retain(
        &self,
        message: &Arc<Message>,
        on_limit: OnRetainLimit,
    ) -> Result<bool, RetainedFull> {
        let op = match self.retained.set(message.clone()) {
            Retained::Stored => StoreOp::PutRetained {
                topic: message.topic.clone(),
                record: message_record(message, message.qos, true, &[]).encode(),
            },
            Retained::Cleared => StoreOp::DeleteRetained {
                topic: message.topic.clone(),
            },
            Retained::NothingToClear => return Ok(false),
            Retained::OverLimit => {
                Metrics::add(&self.metrics.retained_refused, 1);
                tracing::info!(
                    topic = message.topic,
                    "retained store full (max_retained_messages/max_retained_bytes): not retained"
                );
                return match on_limit {
                    OnRetainLimit::Refuse => Err(RetainedFull),
                    OnRetainLimit::DeliverAnyway => Ok(false),
                };
            }
        };
        self.store_op(op);
        Ok(self.store.is_some())
    }

    /// Queues the message for every session with a matching subscription.
    fn route(&self, message: &Arc<Message>) -> Routed {
        let mut routed = Routed::default();
        let epoch = self.authorizer.rights_epoch();
        let checks = match self.authorizer.allows_everything() {
            true => Checks::Never,
            false => Checks::Unsettled(epoch),
        };
        let mut matches = Vec::new();
        self.router.matches(&message.topic, checks, &mut matches);
        if matches.len() > 1 {
            matches.sort_by_key(|m| Arc::as_ptr(&m.session) as usize);
        }
        let mut i = 0;
        while i < matches.len() {
            // All matches of one session are adjacent: one delivery each.
            let mut j = i + 1;
            while j < matches.len() && Arc::ptr_eq(&matches[i].session, &matches[j].session) {
                j += 1;
            }
            if let Some(q) = self.deliver_matches(message, &matches[i..j], epoch) {
                routed.matched += 1;
                routed.stored |= q.stored;
                if q.over_limit {
                    routed.congested.push(matches[i].session.clone());
                }
            }
            i = j;
        }
        routed
    }

    /// Queues one delivery merging every subscription of one session that
    /// matched and may receive the message (§3.3.4: highest QoS, every
    /// subscription id). Returns whether it was written to the store, or
    /// `None` if nothing was queued.
    fn deliver_matches(
        &self,
        message: &Arc<Message>,
        matches: &[Matched],
        epoch: Option<u64>,
    ) -> Option<Queued> {
        let session = &matches[0].session;
        let mut st = session.state.lock();
        let mut qos: Option<QoS> = None;
        let mut retain = false;
        let mut ids = Vec::new();
        for m in matches {
            if m.options.no_local && !m.shared && *m.session.client_id == *message.publisher {
                continue;
            }
            if !self.may_deliver(m, &st, &message.topic, epoch) {
                continue;
            }
            let q = m.options.qos.min(message.qos);
            qos = Some(qos.map_or(q, |x| x.max(q)));
            retain |= m.options.retain_as_published && message.retain;
            ids.extend(m.id);
        }
        let d = Delivery {
            message: message.clone(),
            qos: qos?,
            retain,
            subscription_ids: ids,
            store_seq: None,
        };
        self.enqueue_locked(session, &mut st, d)
    }

    /// Whether the subscription may receive this topic: its cached verdict
    /// for the current rights epoch, or the authorizer's answer.
    fn may_deliver(&self, m: &Matched, st: &SessionState, topic: &str, epoch: Option<u64>) -> bool {
        let Some(cache) = &m.check else {
            return true; // settled: every topic of the filter is allowed
        };
        let Some(who) = &st.identity else {
            return false;
        };
        let verdict = match epoch.and_then(|e| cache.get(e)) {
            Some(v) => v,
            None => {
                let v = match self.authorizer.delivery_check(who, &cache.filter) {
                    DeliveryCheck::All => CachedCheck::All,
                    DeliveryCheck::EachMessage => CachedCheck::EachMessage,
                    DeliveryCheck::Refused => CachedCheck::Refused,
                };
                if let Some(e) = epoch {
                    cache.set(e, v);
                }
                v
            }
        };
        match verdict {
            CachedCheck::All => true,
            CachedCheck::Refused => false,
            CachedCheck::EachMessage => self.authorizer.can_receive(who, topic),
        }
    }

    /// Queues one delivery on a session (persisting it first when the
    /// session is persistent) and wakes its connection. Returns `None` if
    /// it was not queued (session ended, queue full).
    pub fn deliver(&self, session: &Arc<Session>, d: Delivery) -> Option<Queued> {
        let mut st = session.state.lock();
        self.enqueue_locked(session, &mut st, d)
    }

    fn enqueue_locked(
        &self,
        session: &Arc<Session>,
        st: &mut SessionState,
        mut d: Delivery,
    ) -> Option<Queued> {
        if st.ended {
            return None;
        }
        let stored = d.qos != QoS::AtMostOnce && st.is_persistent() && self.store.is_some();
        if stored {
            d.store_seq = Some(self.next_seq.fetch_add(1, Ordering::Relaxed));
        }
        let record =
            stored.then(|| message_record(&d.message, d.qos, d.retain, &d.subscription_ids));
        let seq = d.store_seq;
        let mut over_limit = false;
        match st.enqueue(d, self.config.max_queued_messages) {
            Enqueued::Yes => {}
            Enqueued::OverLimit => over_limit = true,
            Enqueued::ReplacedQos0 => Metrics::add(&self.metrics.messages_dropped, 1),
            Enqueued::Dropped { .. } => {
                Metrics::add(&self.metrics.messages_dropped, 1);
                return None;
            }
            Enqueued::SubscriberTooSlow { .. } => {
                Metrics::add(&self.metrics.messages_dropped, 1);
                Metrics::add(&self.metrics.slow_subscribers, 1);
                // Warned and closed once: deliveries routed while it
                // closes find it closing.
                if let Some(c) = st.conn.as_ref().filter(|c| !c.is_closing()) {
                    tracing::warn!(
                        client_id = &*session.client_id,
                        queued = st.queue.len(),
                        "subscriber stuck with a full queue; disconnecting it (0x97)"
                    );
                    c.close(
                        ReasonCode::QUOTA_EXCEEDED,
                        Some("queue full: subscriber too slow".into()),
                    );
                }
                return None;
            }
            Enqueued::Ended => return None,
        }
        if let (Some(seq), Some(record)) = (seq, record) {
            self.store_op(StoreOp::PutMessage {
                client_id: session.client_id.clone(),
                seq,
                record: record.encode(),
            });
        }
        if let Some(c) = &st.conn {
            c.notify.notify_one();
        }
        Some(Queued { stored, over_limit })
    }

    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Publishes a client's will (authorised like its own PUBLISH).
    pub(crate) fn publish_will(&self, will: ledgermq_proto::Will, who: &ClientIdentity) {
        if !self.may_publish_to(who, &will.topic) {
            tracing::info!(
                client_id = who.client_id,
                topic = will.topic,
                "will refused by ACL"
            );
            return;
        }
        if self.authorizer.checks_payload(who, &will.topic) {
            let checked =
                self.authorizer
                    .check_payload(who, &will.topic, &will.payload, PayloadSource::Will);
            if let Err(refusal) = checked {
                Metrics::add(&self.metrics.payloads_refused[refusal.index()], 1);
                tracing::info!(
                    client_id = who.client_id,
                    topic = will.topic,
                    refusal = refusal.label(),
                    "will refused by the payload check"
                );
                return;
            }
        }
        let mut properties = will.properties;
        properties.will_delay_interval = None;
        let publish = Publish {
            dup: false,
            qos: will.qos,
            retain: will.retain,
            topic: will.topic,
            packet_id: 0,
            properties,
            payload: will.payload,
        };
        let msg = Message::from_publish(publish, who.client_id.as_str().into(), Instant::now());
        Metrics::add(&self.metrics.messages_received, 1);
        let _ = self.publish(Arc::new(msg), OnRetainLimit::DeliverAnyway);
    }

    /// Whether a client may publish to `topic`: the authorizer's answer,
    /// and never to `$SYS` (reserved for the broker).
    pub fn may_publish_to(&self, who: &ClientIdentity, topic: &str) -> bool {
        !is_sys_topic(topic) && self.authorizer.can_publish(who, topic)
    }

    /// Publishes a broker-made retained message (used for `$SYS`).
    pub fn publish_internal(&self, topic: &str, payload: String) {
        let msg = Arc::new(Message {
            topic: topic.to_owned(),
            payload: Bytes::from(payload),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Properties::default(),
            expires_at: None,
            publisher: "".into(),
        });
        // Regenerated at every start: kept in memory, not in the store.
        self.retained.set_internal(msg.clone());
        self.route(&msg);
    }

    /// Publishes a broker-made QoS 1 message (not retained), e.g. a device
    /// status report; persistent sessions keep it while offline. Returns
    /// how many sessions it was queued for.
    pub fn publish_notice(&self, topic: &str, payload: String) -> usize {
        let msg = Message {
            topic: topic.to_owned(),
            payload: Bytes::from(payload),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
            expires_at: None,
            publisher: "".into(),
        };
        self.publish(Arc::new(msg), OnRetainLimit::DeliverAnyway)
            .map_or(0, |r| r.matched)
    }

    /// Removes retained messages whose expiry has passed, from memory and
    /// from the store.
    pub fn sweep_retained(&self, now: Instant) {
        for m in self.retained.sweep_expired(now) {
            self.store_op(StoreOp::DeleteRetained {
                topic: m.topic.clone(),
            });
        }
    }

    /// The session of `client_id`, connected or not.
    pub fn session(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().get(client_id).cloned()
    }

    /// Every session, connected or not (a snapshot).
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.sessions.lock().values().cloned().collect()
    }

    /// Removes one subscription of a session, as an UNSUBSCRIBE would;
    /// returns whether it existed. Durable once [`Self::durable`] returns.
    pub fn remove_subscription(&self, session: &Arc<Session>, filter: &str) -> bool {
        let mut st = session.state.lock();
        let removed = self.router.unsubscribe(filter, session);
        st.subscriptions.remove(filter);
        if removed && st.is_persistent() {
            self.store_op(StoreOp::DeleteSubscription {
                client_id: session.client_id.clone(),
                filter: filter.to_owned(),
            });
        }
        removed
    }

    /// Closes every connection (graceful shutdown).
    pub fn disconnect_all(&self, reason: ReasonCode) {
        for s in self.sessions.lock().values() {
            if let Some(c) = &s.state.lock().conn {
                c.close(reason, None);
            }
        }
    }
}

/// `$SYS/…` topics belong to the broker (§4.7.2).
pub fn is_sys_topic(topic: &str) -> bool {
    topic == "$SYS" || topic.starts_with("$SYS/")
}

pub(crate) fn message_record(m: &Message, qos: QoS, retain: bool, ids: &[u32]) -> MessageRecord {
    let mut properties = m.properties.clone();
    properties.message_expiry_interval = None;
    properties.subscription_identifiers = ids.to_vec();
    let expires_at_unix = m
        .remaining_expiry(Instant::now())
        .map(|left| unix_now() + u64::from(left))
        .unwrap_or(0);
    MessageRecord {
        expires_at_unix,
        publish: Publish {
            dup: false,
            qos,
            retain,
            topic: m.topic.clone(),
            packet_id: if qos == QoS::AtMostOnce { 0 } else { 1 },
            properties,
            payload: m.payload.clone(),
        },
    }
}

/// A stored record back into a message; `None` if it expired meanwhile.
fn record_to_message(
    r: MessageRecord,
    now: Instant,
    now_unix: u64,
    publisher: Arc<str>,
) -> Option<Message> {
    let mut p = r.publish;
    p.properties.subscription_identifiers.clear();
    let expires_at = if r.expires_at_unix == 0 {
        None
    } else if r.expires_at_unix <= now_unix {
        return None;
    } else {
        Some(now + Duration::from_secs(r.expires_at_unix - now_unix))
    };
    Some(Message {
        topic: p.topic,
        payload: p.payload,
        qos: p.qos,
        retain: p.retain,
        properties: p.properties,
        expires_at,
        publisher,
    })
}
