//! The state every connection shares: sessions, subscriptions, retained
//! messages, the store, metrics and the security decisions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ledgermq_proto::{Properties, Protocol, Publish, QoS, ReasonCode, Will};
use parking_lot::Mutex;

use crate::auth::{Authenticator, Authorizer, ClientIdentity};
use crate::config::Config;
use crate::message::{unix_now, Delivery, Message};
use crate::metrics::Metrics;
use crate::retained::RetainedStore;
use crate::router::{Matched, Router};
use crate::session::{ConnLink, Enqueued, Session};
use crate::store::{Loaded, MessageRecord, SessionMeta, Store, StoreOp};

pub struct Broker {
    pub config: Config,
    pub metrics: Metrics,
    pub router: Router,
    pub retained: RetainedStore,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    store: Option<Store>,
    next_seq: AtomicU64,
    pub authenticator: Box<dyn Authenticator>,
    pub authorizer: Box<dyn Authorizer>,
    pub started: Instant,
}

/// What routing one PUBLISH did.
#[derive(Default)]
pub struct Routed {
    /// Sessions the message was queued for.
    pub matched: usize,
    /// Something was written to the store: acknowledge only after a barrier.
    pub stored: bool,
    /// Connected sessions whose queue went over its limit: the publisher
    /// must wait for them to drain before sending more (backpressure).
    pub congested: Vec<Arc<Session>>,
}

/// What queuing one delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub stored: bool,
    pub over_limit: bool,
}

impl Broker {
    pub fn new(
        config: Config,
        store: Option<Store>,
        authenticator: Box<dyn Authenticator>,
        authorizer: Box<dyn Authorizer>,
    ) -> Broker {
        Broker {
            config,
            metrics: Metrics::default(),
            router: Router::default(),
            retained: RetainedStore::default(),
            sessions: Mutex::new(HashMap::new()),
            store,
            next_seq: AtomicU64::new(1),
            authenticator,
            authorizer,
            started: Instant::now(),
        }
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Rebuilds sessions, subscriptions, queues and retained messages from
    /// what the store held at start-up.
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
            let down_since = if ls.meta.disconnected_at == 0 {
                now_unix
            } else {
                ls.meta.disconnected_at
            };
            let elapsed = now_unix.saturating_sub(down_since);
            if ls.meta.expiry_interval != u32::MAX && elapsed >= u64::from(ls.meta.expiry_interval)
            {
                self.store_op(StoreOp::DeleteSession { client_id });
                continue;
            }
            let session = Arc::new(Session::new(
                client_id.clone(),
                ls.meta.protocol,
                ls.meta.expiry_interval,
            ));
            {
                let mut st = session.state.lock();
                st.disconnected_at =
                    Some(now.checked_sub(Duration::from_secs(elapsed)).unwrap_or(now));
                for sub in ls.subscriptions {
                    self.router
                        .subscribe(&sub.filter, &session, sub.options, sub.id);
                    st.subscriptions.insert(sub.filter.clone(), sub);
                }
                for (seq, record) in ls.messages {
                    let qos = record.publish.qos;
                    let retain = record.publish.retain;
                    let ids = record.publish.properties.subscription_identifiers.clone();
                    match record_to_message(record, now, now_unix, "".into()) {
                        Some(m) => {
                            let d = Delivery {
                                message: Arc::new(m),
                                qos,
                                retain,
                                subscription_ids: ids,
                                store_seq: Some(seq),
                            };
                            st.enqueue(d, usize::MAX);
                        }
                        None => self.store_op(StoreOp::DeleteMessage {
                            client_id: client_id.clone(),
                            seq,
                        }),
                    }
                }
            }
            self.sessions.lock().insert(client_id, session);
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

    /// Routes one application message to every matching session and, if it
    /// is retained, updates the retained store.
    pub fn publish(&self, message: Arc<Message>) -> Routed {
        let mut routed = Routed::default();
        if message.retain {
            self.retained.set(message.clone());
            if self.store.is_some() {
                let op = if message.payload.is_empty() {
                    StoreOp::DeleteRetained {
                        topic: message.topic.clone(),
                    }
                } else {
                    StoreOp::PutRetained {
                        topic: message.topic.clone(),
                        record: message_record(&message, message.qos, true, &[]).encode(),
                    }
                };
                self.store_op(op);
                routed.stored = true;
            }
        }
        let mut matches = Vec::new();
        self.router.matches(&message.topic, &mut matches);
        if matches.len() > 1 {
            matches.sort_by_key(|m| Arc::as_ptr(&m.session) as usize);
        }
        let mut i = 0;
        while i < matches.len() {
            // All matches of one session are adjacent: merge them into one
            // delivery with the highest QoS and every subscription id
            // (§3.3.4).
            let mut j = i + 1;
            while j < matches.len() && Arc::ptr_eq(&matches[i].session, &matches[j].session) {
                j += 1;
            }
            if let Some(d) = merge(&message, &matches[i..j]) {
                if let Some(q) = self.deliver(&matches[i].session, d) {
                    routed.matched += 1;
                    routed.stored |= q.stored;
                    if q.over_limit {
                        routed.congested.push(matches[i].session.clone());
                    }
                }
            }
            i = j;
        }
        routed
    }

    /// Queues one delivery on a session (persisting it first when the
    /// session is persistent) and wakes its connection. Returns `None` if
    /// the delivery was dropped.
    pub fn deliver(&self, session: &Arc<Session>, mut d: Delivery) -> Option<Queued> {
        let mut st = session.state.lock();
        if st.ended {
            return None;
        }
        let stored = d.qos != QoS::AtMostOnce && st.is_persistent() && self.store.is_some();
        if stored {
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            let record = message_record(&d.message, d.qos, d.retain, &d.subscription_ids);
            self.store_op(StoreOp::PutMessage {
                client_id: session.client_id.clone(),
                seq,
                record: record.encode(),
            });
            d.store_seq = Some(seq);
        }
        let mut over_limit = false;
        match st.enqueue(d, self.config.max_queued_messages) {
            Enqueued::Yes => {}
            Enqueued::OverLimit => over_limit = true,
            Enqueued::ReplacedQos0 => Metrics::add(&self.metrics.messages_dropped, 1),
            Enqueued::Dropped { store_seq } => {
                Metrics::add(&self.metrics.messages_dropped, 1);
                if let Some(seq) = store_seq {
                    self.store_op(StoreOp::DeleteMessage {
                        client_id: session.client_id.clone(),
                        seq,
                    });
                }
                return None;
            }
            Enqueued::Ended => return None,
        }
        if let Some(c) = &st.conn {
            c.notify.notify_one();
        }
        Some(Queued { stored, over_limit })
    }

    /// Attaches a new connection to the session of `client_id`, creating or
    /// discarding the old session as `clean_start` says, and closing any
    /// connection still attached to it (session takeover). Returns the
    /// session and the CONNACK "session present" flag.
    pub fn open_session(
        &self,
        client_id: &Arc<str>,
        clean_start: bool,
        expiry_interval: u32,
        link: &Arc<ConnLink>,
    ) -> (Arc<Session>, bool) {
        let mut sessions = self.sessions.lock();
        let existing = sessions.get(client_id).cloned();
        let mut present = false;
        let session = match existing {
            Some(old) => {
                let mut st = old.state.lock();
                if let Some(c) = st.conn.take() {
                    c.close(ReasonCode::SESSION_TAKEN_OVER, None);
                }
                drop(st);
                if clean_start {
                    self.end_session_locked(&old);
                    sessions.remove(client_id);
                    let s = Arc::new(Session::new(
                        client_id.clone(),
                        link.protocol,
                        expiry_interval,
                    ));
                    sessions.insert(client_id.clone(), s.clone());
                    s
                } else {
                    present = true;
                    old
                }
            }
            None => {
                let s = Arc::new(Session::new(
                    client_id.clone(),
                    link.protocol,
                    expiry_interval,
                ));
                sessions.insert(client_id.clone(), s.clone());
                s
            }
        };
        drop(sessions);
        let was_persistent;
        {
            let mut st = session.state.lock();
            was_persistent = present && st.is_persistent();
            st.protocol = link.protocol;
            st.expiry_interval = expiry_interval;
            st.conn = Some(link.clone());
            st.disconnected_at = None;
            session.generation.fetch_add(1, Ordering::AcqRel);
            session.online.store(true, Ordering::Relaxed);
            // A QoS 2 exchange half-done by a previous connection that did
            // not keep its session is forgotten with it.
            if !present {
                st.incoming_qos2.clear();
            }
        }
        if expiry_interval > 0 {
            self.store_op(StoreOp::PutSession {
                client_id: client_id.clone(),
                meta: SessionMeta {
                    protocol: link.protocol,
                    expiry_interval,
                    disconnected_at: 0,
                },
            });
            if !was_persistent && present {
                // The session becomes persistent: store what it already holds.
                self.persist_session_contents(&session);
            }
        } else if was_persistent {
            self.store_op(StoreOp::DeleteSession {
                client_id: client_id.clone(),
            });
        }
        (session, present)
    }

    fn persist_session_contents(&self, session: &Arc<Session>) {
        let st = session.state.lock();
        for sub in st.subscriptions.values() {
            self.store_op(StoreOp::PutSubscription {
                client_id: session.client_id.clone(),
                subscription: sub.clone(),
            });
        }
    }

    /// Detaches `link` from `session` when its connection ends. A session
    /// with expiry 0 ends now; others wait for the expiry sweeper.
    pub fn close_session(&self, session: &Arc<Session>, link: &Arc<ConnLink>) {
        let mut st = session.state.lock();
        let attached = st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, link));
        if !attached {
            return; // taken over: the new connection owns the session now
        }
        st.conn = None;
        session.online.store(false, Ordering::Relaxed);
        st.disconnected_at = Some(Instant::now());
        let expiry = st.expiry_interval;
        let protocol = st.protocol;
        drop(st);
        if expiry == 0 {
            let mut sessions = self.sessions.lock();
            if sessions
                .get(&session.client_id)
                .is_some_and(|s| Arc::ptr_eq(s, session))
            {
                sessions.remove(&session.client_id);
            }
            drop(sessions);
            self.end_session_locked(session);
        } else {
            self.store_op(StoreOp::PutSession {
                client_id: session.client_id.clone(),
                meta: SessionMeta {
                    protocol,
                    expiry_interval: expiry,
                    disconnected_at: unix_now(),
                },
            });
        }
    }

    /// Ends a session: its subscriptions leave the router, its queue and
    /// store records are dropped. The caller removes it from the map.
    fn end_session_locked(&self, session: &Arc<Session>) {
        let mut st = session.state.lock();
        if st.ended {
            return;
        }
        st.ended = true;
        for filter in st.subscriptions.keys() {
            self.router.unsubscribe(filter, session);
        }
        let persistent = st.is_persistent() || !st.stored_seqs().is_empty();
        st.subscriptions.clear();
        st.queue.clear();
        st.release_ids();
        st.inflight.clear();
        drop(st);
        if persistent {
            self.store_op(StoreOp::DeleteSession {
                client_id: session.client_id.clone(),
            });
        }
    }

    /// Ends disconnected sessions whose expiry interval has passed.
    pub fn expire_sessions(&self, now: Instant) {
        let expired: Vec<Arc<Session>> = {
            let sessions = self.sessions.lock();
            sessions
                .values()
                .filter(|s| {
                    let st = s.state.lock();
                    match st.disconnected_at {
                        Some(at) if st.conn.is_none() && st.expiry_interval != u32::MAX => {
                            now.saturating_duration_since(at)
                                >= Duration::from_secs(u64::from(st.expiry_interval))
                        }
                        _ => false,
                    }
                })
                .cloned()
                .collect()
        };
        for s in expired {
            let mut sessions = self.sessions.lock();
            if sessions
                .get(&s.client_id)
                .is_some_and(|x| Arc::ptr_eq(x, &s))
                && !s.is_online()
            {
                sessions.remove(&s.client_id);
                drop(sessions);
                self.end_session_locked(&s);
            }
        }
    }

    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Publishes a client's will now or after its delay, unless a new
    /// connection resumes the session first (§3.1.2.5).
    pub fn schedule_will(self: &Arc<Self>, will: Will, who: ClientIdentity, session: Arc<Session>) {
        let expiry = session.state.lock().expiry_interval;
        let delay = will.properties.will_delay_interval.unwrap_or(0).min(expiry);
        let generation = session.generation.load(Ordering::Acquire);
        if delay == 0 {
            self.publish_will(will, &who);
            return;
        }
        let broker = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
            if session.generation.load(Ordering::Acquire) == generation && !session.is_online() {
                broker.publish_will(will, &who);
            }
        });
    }

    fn publish_will(&self, will: Will, who: &ClientIdentity) {
        if !self.authorizer.can_publish(who, &will.topic) {
            tracing::info!(
                client_id = who.client_id,
                topic = will.topic,
                "will refused by ACL"
            );
            return;
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
        self.publish(Arc::new(msg));
    }

    /// Publishes a broker-made retained message (used for `$SYS`).
    pub fn publish_internal(&self, topic: &str, payload: String) {
        let msg = Message {
            topic: topic.to_owned(),
            payload: Bytes::from(payload),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Properties::default(),
            expires_at: None,
            publisher: "".into(),
        };
        let msg = Arc::new(msg);
        self.retained.set(msg.clone());
        let mut matches = Vec::new();
        self.router.matches(topic, &mut matches);
        for m in matches {
            let d = Delivery {
                message: msg.clone(),
                qos: QoS::AtMostOnce,
                retain: m.options.retain_as_published,
                subscription_ids: m.id.into_iter().collect(),
                store_seq: None,
            };
            self.deliver(&m.session, d);
        }
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
        self.publish(Arc::new(msg)).matched
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
        let removed = self.router.unsubscribe(filter, session);
        let persistent = {
            let mut st = session.state.lock();
            st.subscriptions.remove(filter);
            st.is_persistent()
        };
        if removed && persistent {
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

    pub fn next_protocol_default(&self) -> Protocol {
        Protocol::V5
    }
}

/// One delivery merging every subscription of a session that matched.
fn merge(message: &Arc<Message>, matches: &[Matched]) -> Option<Delivery> {
    let mut qos: Option<QoS> = None;
    let mut retain = false;
    let mut ids = Vec::new();
    for m in matches {
        if m.options.no_local && !m.shared && *m.session.client_id == *message.publisher {
            continue;
        }
        let q = m.options.qos.min(message.qos);
        qos = Some(qos.map_or(q, |x| x.max(q)));
        retain |= m.options.retain_as_published && message.retain;
        ids.extend(m.id);
    }
    Some(Delivery {
        message: message.clone(),
        qos: qos?,
        retain,
        subscription_ids: ids,
        store_seq: None,
    })
}

fn message_record(m: &Message, qos: QoS, retain: bool, ids: &[u32]) -> MessageRecord {
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
