//! The reader half: decodes inbound packets and acts on them.
//!
//! Handlers run while the connection holds its session's handling lock
//! (see [`crate::lifecycle`]): nothing here can interleave with a takeover.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ledgermq_proto::{
    topic, Auth, Disconnect, Packet, Properties, PubResp, Publish, QoS, ReasonCode, RetainHandling,
    SubAck, Subscribe, UnsubAck, Unsubscribe,
};

use super::{is_v5, Ending};
use crate::auth::{
    AfterRefusal, AuthExchange, AuthStep, ClientIdentity, DeliveryCheck, LoginAttempt,
    PayloadRefusal, PayloadSource, ProtectionError, Refused, SharedProtection,
};
use crate::broker::{Broker, OnRetainLimit};
use crate::message::{Delivery, Message};
use crate::metrics::Metrics;
use crate::session::{ConnLink, Session, Subscription};
use crate::store::StoreOp;

/// What CONNECT negotiated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub keep_alive: u16,
    pub client_receive_maximum: u16,
    pub client_max_packet_size: u32,
    pub client_topic_alias_maximum: u16,
}

/// How the client authenticated, for re-authentication (AUTH 0x19).
pub(crate) struct AuthContext {
    /// The CONNECT's Authentication Method; re-authentication must use it.
    pub method: Option<String>,
    pub peer: SocketAddr,
    pub listener: SocketAddr,
}

/// Acknowledgements owed to the client that wait for the store.
#[derive(Default)]
pub(crate) struct PendingAcks {
    /// All of them (PUBACK, PUBREC, PUBCOMP): later acks queue behind them.
    pub all: AtomicUsize,
    /// Those of QoS 1 PUBLISHes, which count against Receive Maximum
    /// (a QoS 2 one already counts as an unreleased packet id).
    pub qos1: AtomicUsize,
}

pub(crate) struct Connection {
    broker: Arc<Broker>,
    auth: AuthContext,
    /// A re-authentication waiting for the client's next AUTH 0x18.
    reauth: Option<Box<dyn AuthExchange>>,
    pub session: Arc<Session>,
    pub link: Arc<ConnLink>,
    pub identity: ClientIdentity,
    limits: Limits,
    /// Inbound topic aliases (client → broker).
    aliases: HashMap<u16, String>,
    pending: Arc<PendingAcks>,
    /// Subscribers the last PUBLISH overfilled while they keep taking
    /// messages; reading pauses until they drain (backpressure).
    congested: Vec<Arc<Session>>,
    /// A QoS 1/2 message was queued for other sessions since the last
    /// write, and its acknowledgement should wait for their deliveries.
    pub routed: bool,
    /// The client acknowledged a delivery since the pump last looked: it is
    /// taking messages (see [`ConnLink::progressed`]).
    pub acknowledged: bool,
    /// The last topic this connection was allowed to publish to, the
    /// authorizer's epoch then (see [`Authorizer::rights_epoch`]), and
    /// whether its payloads are checked ([`Authorizer::checks_payload`]).
    allowed_publish: Option<(u64, String, bool)>,
    /// QoS 2 payload protection set up by the authentication (SCAC).
    protection: Option<SharedProtection>,
}

type Step = Result<(), Ending>;

/// Protected data that does not open: DISCONNECT 0x80 with the method's
/// reason string ("Crypt Error").
fn crypt_failure(who: &ClientIdentity, e: ProtectionError) -> Step {
    tracing::info!(
        client_id = who.client_id,
        detail = e.detail,
        "payload protection failed"
    );
    Err(Ending::Broker(
        ReasonCode::UNSPECIFIED_ERROR,
        Some(e.reason_string),
    ))
}

fn fail(reason: ReasonCode, text: &str) -> Step {
    Err(Ending::Broker(reason, Some(text.to_owned())))
}

impl Connection {
    pub fn new(
        broker: Arc<Broker>,
        session: Arc<Session>,
        link: Arc<ConnLink>,
        identity: ClientIdentity,
        limits: Limits,
        auth: AuthContext,
        protection: Option<SharedProtection>,
    ) -> Connection {
        Connection {
            broker,
            auth,
            reauth: None,
            session,
            link,
            identity,
            limits,
            aliases: HashMap::new(),
            pending: Arc::new(PendingAcks::default()),
            congested: Vec::new(),
            routed: false,
            acknowledged: false,
            allowed_publish: None,
            protection,
        }
    }

    /// Asks the authorizer, unless the same topic was allowed under the
    /// same epoch (rights only ever narrow with an epoch change). `None`:
    /// refused; `Some(check)`: allowed, and whether the payload is checked.
    fn may_publish(&mut self, topic: &str) -> Option<bool> {
        if crate::broker::is_sys_topic(topic) {
            return None;
        }
        let authorizer = &self.broker.authorizer;
        if authorizer.allows_everything() {
            return Some(false);
        }
        let epoch = authorizer.rights_epoch();
        if let (Some(now), Some((then, last, check))) = (epoch, &self.allowed_publish) {
            if now == *then && last == topic {
                return Some(*check);
            }
        }
        if !authorizer.can_publish(&self.identity, topic) {
            self.allowed_publish = None;
            return None;
        }
        let check = authorizer.checks_payload(&self.identity, topic);
        match (epoch, &mut self.allowed_publish) {
            (Some(now), Some((then, last, checked))) => {
                // Reuse the buffer: a client cycling through topics does
                // not pay an allocation per PUBLISH.
                *then = now;
                *checked = check;
                last.clear();
                last.push_str(topic);
            }
            (Some(now), memo) => *memo = Some((now, topic.to_owned(), check)),
            (None, memo) => *memo = None,
        }
        Some(check)
    }

    fn v5(&self) -> bool {
        is_v5(self.link.protocol)
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    pub fn keep_alive(&self) -> u16 {
        self.limits.keep_alive
    }

    /// The first subscriber the last PUBLISH overfilled, if any.
    pub fn congested(&self) -> Option<&Arc<Session>> {
        self.congested.first()
    }

    /// That subscriber has room again, or was given up on.
    pub fn uncongest_first(&mut self) {
        if !self.congested.is_empty() {
            self.congested.remove(0);
        }
    }

    /// Acknowledgements waiting for the store: past Receive Maximum the
    /// connection stops reading until they go out.
    pub fn acks_waiting(&self) -> usize {
        self.pending.all.load(Ordering::Relaxed)
    }

    /// Handles one inbound packet; `Err` ends the connection.
    pub async fn handle(&mut self, packet: Packet) -> Step {
        match packet {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(r) => self.on_puback(r),
            Packet::PubRec(r) => self.on_pubrec(r),
            Packet::PubRel(r) => self.on_pubrel(r),
            Packet::PubComp(r) => self.on_pubcomp(r),
            Packet::Subscribe(s) => self.on_subscribe(s).await,
            Packet::Unsubscribe(u) => self.on_unsubscribe(u).await,
            Packet::PingReq => {
                self.link.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.on_disconnect(d),
            Packet::Connect(_) => fail(ReasonCode::PROTOCOL_ERROR, "second CONNECT"),
            Packet::Auth(a) => self.on_auth(a).await,
            other => {
                tracing::debug!("client sent server-only packet {}", other.name());
                fail(
                    ReasonCode::PROTOCOL_ERROR,
                    "packet not allowed from a client",
                )
            }
        }
    }

    fn ack(&self, kind: fn(PubResp) -> Packet, packet_id: u16, reason: ReasonCode) {
        self.link.send(&kind(PubResp {
            packet_id,
            reason,
            properties: Default::default(),
        }));
    }

    /// Sends an acknowledgement once everything queued to the store is
    /// durable, or at once when nothing needs to be; acknowledgements keep
    /// their order (§4.6): behind a pending one, every one waits.
    fn ack_after_store(&self, packet: Packet, wait: bool, qos1: bool) {
        if !wait && self.pending.all.load(Ordering::Relaxed) == 0 {
            self.link.send(&packet);
            return;
        }
        let link = self.link.clone();
        let pending = self.pending.clone();
        pending.all.fetch_add(1, Ordering::Relaxed);
        if qos1 {
            pending.qos1.fetch_add(1, Ordering::Relaxed);
        }
        self.broker.after_durable(move || {
            link.send(&packet);
            pending.all.fetch_sub(1, Ordering::Relaxed);
            if qos1 {
                pending.qos1.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }

    fn on_publish(&mut self, mut p: Publish) -> Step {
        Metrics::add(&self.broker.metrics.messages_received, 1);
        if !p.properties.subscription_identifiers.is_empty() {
            return fail(
                ReasonCode::PROTOCOL_ERROR,
                "subscription identifier in PUBLISH from a client",
            );
        }
        if let Some(alias) = p.properties.topic_alias {
            if alias == 0 || alias > self.broker.config.topic_alias_maximum {
                return fail(ReasonCode::TOPIC_ALIAS_INVALID, "topic alias out of range");
            }
            if p.topic.is_empty() {
                match self.aliases.get(&alias) {
                    Some(t) => p.topic = t.clone(),
                    None => return fail(ReasonCode::PROTOCOL_ERROR, "unknown topic alias"),
                }
            } else if self.broker.topic_limits.check_name(&p.topic).is_ok() {
                self.aliases.insert(alias, p.topic.clone());
            }
        }
        // 3.1.1 has no DISCONNECT from the server: the connection closes.
        if let Err(e) = self.broker.topic_limits.check_name(&p.topic) {
            return fail(
                ReasonCode::TOPIC_NAME_INVALID,
                &format!("invalid topic name: {e}"),
            );
        }
        let qos = p.qos;
        let packet_id = p.packet_id;
        if let (QoS::ExactlyOnce, Some(protection)) = (qos, &self.protection) {
            let opened = protection.lock().open(&p.topic, packet_id, &p.payload);
            match opened {
                Ok(data) => p.payload = data.into(),
                Err(e) => return crypt_failure(&self.identity, e),
            }
        }
        if qos != QoS::AtMostOnce {
            let (resend, in_qos2) = {
                let st = self.session.state.lock();
                let resend = qos == QoS::ExactlyOnce && st.incoming_qos2.contains(&packet_id);
                (resend, st.incoming_qos2.len())
            };
            if resend {
                // A resend of a message already accepted (method B, §4.3.3):
                // answer again, do not route again.
                self.ack(Packet::PubRec, packet_id, ReasonCode::SUCCESS);
                return Ok(());
            }
            // Receive Maximum is MQTT 5's: a 3.1.1 client that sends faster
            // is simply read more slowly (see the pump).
            let in_progress = in_qos2 + self.pending.qos1.load(Ordering::Relaxed);
            if self.v5() && in_progress >= usize::from(self.broker.config.receive_maximum) {
                return fail(
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                    "receive maximum exceeded",
                );
            }
        }
        if p.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&p.payload).is_err()
        {
            self.refuse_publish(qos, packet_id, ReasonCode::PAYLOAD_FORMAT_INVALID);
            return Ok(());
        }
        let Some(check_payload) = self.may_publish(&p.topic) else {
            tracing::info!(
                client_id = self.identity.client_id,
                topic = p.topic,
                "publish refused"
            );
            self.refuse_publish(qos, packet_id, ReasonCode::NOT_AUTHORIZED);
            let what = Refused::Publish {
                topic: &p.topic,
                qos,
            };
            if self.broker.authorizer.refused(&self.identity, what) == AfterRefusal::Disconnect {
                return fail(
                    ReasonCode::NOT_AUTHORIZED,
                    "not authorized to publish there",
                );
            }
            return Ok(());
        };
        if check_payload {
            let checked = self.broker.authorizer.check_payload(
                &self.identity,
                &p.topic,
                &p.payload,
                PayloadSource::Publish,
            );
            if let Err(refusal) = checked {
                return self.refuse_payload(qos, packet_id, &p.topic, refusal);
            }
        }
        let v5 = self.v5();
        let message = Message::from_publish(p, self.session.client_id.clone(), Instant::now());
        // MQTT 5 QoS 1/2 can be told that a retained message did not fit;
        // otherwise it is delivered without being retained.
        let on_limit = match (v5, qos) {
            (true, QoS::AtLeastOnce | QoS::ExactlyOnce) => OnRetainLimit::Refuse,
            _ => OnRetainLimit::DeliverAnyway,
        };
        let Ok(mut routed) = self.broker.publish(Arc::new(message), on_limit) else {
            self.refuse_publish(qos, packet_id, ReasonCode::QUOTA_EXCEEDED);
            return Ok(());
        };
        self.congested.append(&mut routed.congested);
        // An acknowledgement is owed: let the deliveries go out first.
        self.routed |= routed.matched > 0 && qos != QoS::AtMostOnce;
        let reason = if routed.matched == 0 && v5 {
            ReasonCode::NO_MATCHING_SUBSCRIBERS
        } else {
            ReasonCode::SUCCESS
        };
        let ack = PubResp {
            packet_id,
            reason,
            properties: Default::default(),
        };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.ack_after_store(Packet::PubAck(ack), routed.stored, true),
            QoS::ExactlyOnce => {
                // The packet id is owed a PUBREL; for a persistent session
                // that survives a restart too (the PUBREC waits for it).
                let persisted = self.remember_incoming(packet_id);
                self.ack_after_store(Packet::PubRec(ack), routed.stored || persisted, false);
            }
        }
        Ok(())
    }

    /// A payload the authorizer refused: counted, answered with its reason
    /// code, reported; the connection survives unless the authorizer says
    /// otherwise (a refused QoS 0 PUBLISH has no answer but a DISCONNECT).
    fn refuse_payload(
        &self,
        qos: QoS,
        packet_id: u16,
        topic: &str,
        refusal: PayloadRefusal,
    ) -> Step {
        Metrics::add(&self.broker.metrics.payloads_refused[refusal.index()], 1);
        tracing::info!(
            client_id = self.identity.client_id,
            topic,
            refusal = refusal.label(),
            "payload refused"
        );
        let reason = refusal.reason_code();
        self.refuse_publish(qos, packet_id, reason);
        let what = Refused::Payload {
            topic,
            qos,
            refusal,
        };
        if self.broker.authorizer.refused(&self.identity, what) == AfterRefusal::Disconnect {
            return fail(reason, &format!("payload refused: {}", refusal.label()));
        }
        Ok(())
    }

    /// Records an inbound QoS 2 packet id (PUBREC sent, PUBREL awaited);
    /// returns whether it was written to the store.
    fn remember_incoming(&self, packet_id: u16) -> bool {
        let mut st = self.session.state.lock();
        st.incoming_qos2.insert(packet_id);
        let persist = st.is_persistent() && self.broker.store().is_some();
        if persist {
            self.broker.store_op(StoreOp::PutIncoming {
                client_id: self.session.client_id.clone(),
                packet_id,
            });
        }
        persist
    }

    /// Tells the client a PUBLISH was refused: the reason code in MQTT 5,
    /// and in 3.1.1 (which has no negative acknowledgement) a positive one
    /// for a message that is dropped.
    fn refuse_publish(&self, qos: QoS, packet_id: u16, reason: ReasonCode) {
        match (qos, self.v5()) {
            (QoS::AtMostOnce, _) => {}
            (QoS::AtLeastOnce, true) => self.ack(Packet::PubAck, packet_id, reason),
            (QoS::ExactlyOnce, true) => self.ack(Packet::PubRec, packet_id, reason),
            (QoS::AtLeastOnce, false) => self.ack(Packet::PubAck, packet_id, ReasonCode::SUCCESS),
            (QoS::ExactlyOnce, false) => {
                self.session.state.lock().incoming_qos2.insert(packet_id);
                self.ack(Packet::PubRec, packet_id, ReasonCode::SUCCESS)
            }
        }
    }

    fn forget_stored(&self, seq: Option<u64>) {
        if let Some(seq) = seq {
            self.broker.store_op(StoreOp::DeleteMessage {
                client_id: self.session.client_id.clone(),
                seq,
            });
        }
    }

    fn on_puback(&mut self, r: PubResp) -> Step {
        let done = self
            .session
            .state
            .lock()
            .complete(r.packet_id, QoS::AtLeastOnce);
        // Unknown ids are tolerated: a late ack after a session resume.
        if let Some(i) = done {
            self.forget_stored(i.store_seq);
            self.acknowledged = true;
            self.link.notify.notify_one(); // the window has room again
        }
        Ok(())
    }

    fn on_pubrec(&mut self, r: PubResp) -> Step {
        let mut st = self.session.state.lock();
        if r.reason.is_error() {
            let done = st.abandon(r.packet_id);
            drop(st);
            if let Some(i) = done {
                self.forget_stored(i.store_seq);
                self.link.notify.notify_one();
            }
            return Ok(());
        }
        let outcome = st.received(r.packet_id);
        drop(st);
        self.acknowledged = true;
        let (reason, seq) = match outcome {
            Some(seq) => (ReasonCode::SUCCESS, seq),
            None => (ReasonCode::PACKET_IDENTIFIER_NOT_FOUND, None),
        };
        let packet_id = r.packet_id;
        let Some(seq) = seq else {
            self.send_pubrel(packet_id, reason);
            return Ok(());
        };
        // Persistent session: from now on only the PUBREL is owed, and the
        // PUBREL goes out once that is durable, so a restart resends the
        // PUBREL, never the PUBLISH.
        self.broker.store_op(StoreOp::PutInflight {
            client_id: self.session.client_id.clone(),
            seq,
            packet_id,
            released: true,
        });
        let link = self.link.clone();
        let protection = self.protection.clone();
        let who = self.identity.clone();
        self.broker.after_durable(move || {
            if let Err(e) = pubrel(&link, protection.as_ref(), packet_id, reason) {
                let _ = crypt_failure(&who, e.clone());
                link.close(ReasonCode::UNSPECIFIED_ERROR, Some(e.reason_string));
            }
        });
        Ok(())
    }

    fn send_pubrel(&self, packet_id: u16, reason: ReasonCode) {
        if let Err(e) = pubrel(&self.link, self.protection.as_ref(), packet_id, reason) {
            let _ = crypt_failure(&self.identity, e.clone());
            self.link
                .close(ReasonCode::UNSPECIFIED_ERROR, Some(e.reason_string));
        }
    }

    fn on_pubrel(&mut self, r: PubResp) -> Step {
        if let Some(protection) = &self.protection {
            let accepted = protection
                .lock()
                .accept_update(r.packet_id, &r.properties.user_properties);
            if let Err(e) = accepted {
                return crypt_failure(&self.identity, e);
            }
        }
        let (known, persist) = {
            let mut st = self.session.state.lock();
            let known = st.incoming_qos2.remove(&r.packet_id);
            (
                known,
                known && st.is_persistent() && self.broker.store().is_some(),
            )
        };
        if persist {
            self.broker.store_op(StoreOp::DeleteIncoming {
                client_id: self.session.client_id.clone(),
                packet_id: r.packet_id,
            });
        }
        let reason = if known {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        };
        let comp = Packet::PubComp(PubResp {
            packet_id: r.packet_id,
            reason,
            properties: Default::default(),
        });
        // Once the client has PUBCOMP it may reuse the id: the id must be
        // free in the store first, or a restart would take the next message
        // under it for a resend.
        self.ack_after_store(comp, persist, false);
        Ok(())
    }

    fn on_pubcomp(&mut self, r: PubResp) -> Step {
        let done = self
            .session
            .state
            .lock()
            .complete(r.packet_id, QoS::ExactlyOnce);
        if let Some(i) = done {
            self.forget_stored(i.store_seq);
            self.acknowledged = true;
            self.link.notify.notify_one();
        }
        Ok(())
    }

    async fn on_subscribe(&mut self, s: Subscribe) -> Step {
        let v5 = self.v5();
        let sub_id = s.properties.subscription_identifiers.first().copied();
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut retained_for = Vec::new();
        let mut stored = false;
        for (filter, options) in s.filters {
            // Syntax and size (max_topic_levels, max_topic_length) in one
            // check; 3.1.1's encoder writes any failure as 0x80.
            if self.broker.topic_limits.check_filter(&filter).is_err() {
                reasons.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            let shared = topic::parse_shared(&filter).ok().flatten().is_some();
            let inner = topic::without_share(&filter).to_owned();
            if shared && options.no_local && v5 {
                return fail(
                    ReasonCode::PROTOCOL_ERROR,
                    "No Local on a shared subscription",
                );
            }
            if !self.broker.authorizer.can_subscribe(&self.identity, &inner) {
                tracing::info!(
                    client_id = self.identity.client_id,
                    filter,
                    "subscribe refused by ACL"
                );
                reasons.push(ReasonCode::NOT_AUTHORIZED);
                let what = Refused::Subscribe { filter: &inner };
                if self.broker.authorizer.refused(&self.identity, what) == AfterRefusal::Disconnect
                {
                    return fail(
                        ReasonCode::NOT_AUTHORIZED,
                        "not authorized to subscribe there",
                    );
                }
                continue;
            }
            let subscription = Subscription {
                filter: filter.clone(),
                options,
                id: sub_id,
            };
            let existed = {
                let mut st = self.session.state.lock();
                let full = st.subscriptions.len() >= self.broker.config.max_subscriptions
                    && !st.subscriptions.contains_key(&filter);
                if full || st.ended {
                    reasons.push(ReasonCode::QUOTA_EXCEEDED);
                    continue;
                }
                let existed = self
                    .broker
                    .router
                    .subscribe(&filter, &self.session, options, sub_id);
                st.subscriptions
                    .insert(filter.clone(), subscription.clone());
                if st.is_persistent() {
                    self.broker.store_op(StoreOp::PutSubscription {
                        client_id: self.session.client_id.clone(),
                        subscription,
                    });
                    stored = true;
                }
                existed
            };
            reasons.push(ReasonCode(options.qos as u8));
            let send_retained = match options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => !existed,
                RetainHandling::DoNotSend => false,
            };
            // Shared subscriptions never receive retained messages (§4.8.2).
            if send_retained && !shared {
                retained_for.push((inner, options.qos));
            }
        }
        if stored {
            // SUBACK promises the subscription: it must survive a crash.
            self.broker.durable().await;
        }
        self.link.send(&Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: Default::default(),
            reasons,
        }));
        let now = Instant::now();
        for (filter, max_qos) in retained_for {
            let check = match self.broker.authorizer.allows_everything() {
                true => DeliveryCheck::All,
                false => self
                    .broker
                    .authorizer
                    .delivery_check(&self.identity, &filter),
            };
            for m in self.broker.retained.matching(&filter, now) {
                let allowed = match check {
                    DeliveryCheck::All => true,
                    DeliveryCheck::Refused => false,
                    DeliveryCheck::EachMessage => {
                        self.broker.authorizer.can_receive(&self.identity, &m.topic)
                    }
                };
                if !allowed {
                    continue;
                }
                let d = Delivery {
                    qos: m.qos.min(max_qos),
                    message: m,
                    retain: true,
                    subscription_ids: sub_id.into_iter().collect(),
                    store_seq: None,
                };
                self.broker.deliver(&self.session, d);
            }
        }
        Ok(())
    }

    async fn on_unsubscribe(&mut self, u: Unsubscribe) -> Step {
        let mut reasons = Vec::with_capacity(u.filters.len());
        let mut stored = false;
        for filter in u.filters {
            if self.broker.topic_limits.check_filter(&filter).is_err() {
                reasons.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            let removed = self.broker.remove_subscription(&self.session, &filter);
            stored |= removed && self.session.state.lock().is_persistent();
            reasons.push(if removed {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NO_SUBSCRIPTION_EXISTED
            });
        }
        if stored {
            self.broker.durable().await;
        }
        self.link.send(&Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: Default::default(),
            reasons,
        }));
        Ok(())
    }

    /// Re-authentication (§4.12.1): AUTH 0x19 starts an exchange with the
    /// CONNECT's method, AUTH 0x18 answers a challenge; success is AUTH 0x00,
    /// failure ends the connection.
    async fn on_auth(&mut self, a: Auth) -> Step {
        let Some(method) = self.auth.method.clone() else {
            return fail(
                ReasonCode::PROTOCOL_ERROR,
                "AUTH without an authentication method",
            );
        };
        if a.properties.authentication_method.as_deref() != Some(method.as_str()) {
            return fail(
                ReasonCode::PROTOCOL_ERROR,
                "re-authentication must use the CONNECT's method",
            );
        }
        if self.protection.is_some() {
            // The payload keys belong to this connection's handshake; new
            // keys mean a new connection (docs/scac.md).
            return fail(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                "re-authentication is not supported with payload protection: reconnect",
            );
        }
        let data = a.properties.authentication_data.unwrap_or_default();
        let pending = self.reauth.take();
        let broker = self.broker.clone();
        let step = match (a.reason, pending) {
            (ReasonCode::RE_AUTHENTICATE, None) => {
                let client_id = self.identity.client_id.clone();
                let username = self.identity.username.clone();
                let (peer, listener) = (self.auth.peer, self.auth.listener);
                let protocol = self.link.protocol;
                let m = method.clone();
                super::connect::blocking(&self.broker, move || {
                    let attempt = LoginAttempt {
                        peer,
                        listener,
                        protocol,
                        client_id: &client_id,
                        username: username.as_deref(),
                        password: None,
                    };
                    Ok(broker.authenticator.begin(&attempt, &m, &data))
                })
                .await
            }
            (ReasonCode::CONTINUE_AUTHENTICATION, Some(next)) => {
                super::connect::blocking(&self.broker, move || Ok(next.answer(&data))).await
            }
            _ => return fail(ReasonCode::PROTOCOL_ERROR, "unexpected AUTH"),
        };
        let step = step.unwrap_or_else(|refusal| AuthStep::Done(Err(refusal)));
        let (reason, data) = match step {
            AuthStep::Continue { data, next } => {
                self.reauth = Some(next);
                (ReasonCode::CONTINUE_AUTHENTICATION, Some(data.into()))
            }
            AuthStep::Done(Ok(ok)) => {
                if ok.client_id.is_some_and(|id| id != self.identity.client_id) {
                    return fail(
                        ReasonCode::NOT_AUTHORIZED,
                        "re-authenticated as another client",
                    );
                }
                (ReasonCode::SUCCESS, None)
            }
            AuthStep::Done(Err(refusal)) => {
                tracing::info!(client_id = self.identity.client_id, reason = %refusal.reason, detail = refusal.detail, "re-authentication refused");
                if !refusal.delay.is_zero() {
                    tokio::time::sleep(refusal.delay).await;
                }
                return fail(
                    disconnect_reason(refusal.reason),
                    "re-authentication failed",
                );
            }
        };
        self.link.send(&Packet::Auth(Auth {
            reason,
            properties: Properties {
                authentication_method: Some(method),
                authentication_data: data,
                ..Default::default()
            },
        }));
        Ok(())
    }

    fn on_disconnect(&mut self, d: Disconnect) -> Step {
        if let Some(expiry) = d.properties.session_expiry_interval {
            let mut st = self.session.state.lock();
            if st.expiry_interval == 0 && expiry != 0 {
                // §3.14.2.2.2
                drop(st);
                return fail(
                    ReasonCode::PROTOCOL_ERROR,
                    "session expiry set after connecting with 0",
                );
            }
            let was_persistent = st.is_persistent();
            st.expiry_interval = expiry.min(self.broker.config.max_session_expiry);
            if was_persistent && !st.is_persistent() {
                self.broker.store_op(StoreOp::DeleteSession {
                    client_id: self.session.client_id.clone(),
                });
            }
        }
        if d.reason == ReasonCode::DISCONNECT_WITH_WILL {
            Err(Ending::WithWill)
        } else {
            Err(Ending::Normal)
        }
    }
}

/// Queues a PUBREL; to a protected client it carries the next key. The
/// protection lock is held until the PUBREL is queued, so the writer cannot
/// seal a PUBLISH with the next key and send it ahead of this PUBREL.
fn pubrel(
    link: &ConnLink,
    protection: Option<&SharedProtection>,
    packet_id: u16,
    reason: ReasonCode,
) -> Result<(), ProtectionError> {
    let mut properties = Properties::default();
    let guard = match protection {
        Some(p) => {
            let mut guard = p.lock();
            properties.user_properties.push(guard.update(packet_id)?);
            Some(guard)
        }
        None => None,
    };
    link.send(&Packet::PubRel(PubResp {
        packet_id,
        reason,
        properties,
    }));
    drop(guard);
    Ok(())
}

/// A refusal reason as a DISCONNECT may carry it: 0x86 and 0x8A exist only
/// in CONNACK (§3.14.2.1), so they become 0x87.
fn disconnect_reason(reason: ReasonCode) -> ReasonCode {
    match reason {
        ReasonCode::BAD_USER_NAME_OR_PASSWORD | ReasonCode::BANNED => ReasonCode::NOT_AUTHORIZED,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => ReasonCode::NOT_AUTHORIZED,
        r => r,
    }
}
