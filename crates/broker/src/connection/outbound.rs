//! The outbound side of a connection: what to write, in which order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use ledgermq_proto::{
    encode, encode_outgoing_publish, outgoing_publish_len, OutgoingPublish, Packet, Protocol,
    PubResp, QoS, ReasonCode,
};

use super::disconnect_packet;
use super::inbound::Limits;
use crate::auth::{PayloadProtection, SharedProtection};
use crate::broker::Broker;
use crate::message::Delivery;
use crate::metrics::Metrics;
use crate::session::{ConnLink, Inflight, Outgoing, Session, SessionState};
use crate::store::StoreOp;

/// The connection's payload protection while the writer holds it.
type Protection<'a> = Option<&'a mut (dyn PayloadProtection + 'static)>;

/// Bytes gathered before a write; bounds the time the session lock is held.
const BATCH_BYTES: usize = 64 * 1024;

/// Outbound topic aliases (broker → client, §3.3.2.3.4): a topic gets the
/// next free alias the first time it is sent; once all are used, further
/// topics are sent in full.
struct OutAliases {
    max: u16,
    map: HashMap<String, u16>,
}

impl OutAliases {
    /// The topic string and alias to put in the PUBLISH.
    fn resolve<'a>(&mut self, topic: &'a str) -> (&'a str, Option<u16>) {
        if self.max == 0 {
            return (topic, None);
        }
        if let Some(a) = self.map.get(topic) {
            return ("", Some(*a));
        }
        let next = self.map.len() as u16 + 1;
        if next <= self.max {
            self.map.insert(topic.to_owned(), next);
            (topic, Some(next))
        } else {
            (topic, None)
        }
    }
}

/// Builds the bytes to send: control packets, resends after a resume,
/// and deliveries from the session queue within the in-flight window.
pub(crate) struct Writer {
    broker: Arc<Broker>,
    session: Arc<Session>,
    link: Arc<ConnLink>,
    protocol: Protocol,
    window: usize,
    max_packet_size: usize,
    aliases: OutAliases,
    resumed: bool,
    /// QoS 2 payload protection set up by the authentication (SCAC).
    protection: Option<SharedProtection>,
    /// Encoded packets not yet written; `written` bytes of it are on the wire.
    pub out: BytesMut,
    pub written: usize,
}

impl Writer {
    pub fn new(
        broker: Arc<Broker>,
        session: Arc<Session>,
        link: Arc<ConnLink>,
        limits: &Limits,
        protection: Option<SharedProtection>,
    ) -> Writer {
        let protocol = link.protocol;
        Writer {
            window: link.window,
            max_packet_size: limits.client_max_packet_size as usize,
            protocol,
            aliases: OutAliases {
                max: if protocol == Protocol::V5 {
                    limits.client_topic_alias_maximum
                } else {
                    0
                },
                map: HashMap::new(),
            },
            resumed: false,
            protection,
            out: BytesMut::with_capacity(BATCH_BYTES),
            written: 0,
            broker,
            session,
            link,
        }
    }

    /// Bytes encoded but not yet written.
    pub fn pending(&self) -> usize {
        self.out.len() - self.written
    }

    /// Moves pending control packets and, while the batch has room,
    /// queued deliveries into `out`.
    pub fn gather(&mut self) {
        // With payload protection, the key state is held from the control
        // packets (a PUBREL moving to the next key) to the last PUBLISH
        // sealed, so the wire order is the order the keys moved in.
        let protection = self.protection.clone();
        let mut guard = protection.as_ref().map(|p| p.lock());
        let mut protection = guard.as_deref_mut().map(|p| &mut **p);
        {
            let mut control = self.link.control.lock();
            if !control.is_empty() {
                self.out.extend_from_slice(&control);
                control.clear();
            }
        }
        if !self.resumed {
            // Right after the CONNACK: resend what the session had in flight.
            self.resend_inflight(&mut protection);
            self.resumed = true;
        }
        if self.pending() < BATCH_BYTES {
            self.drain_queue(&mut protection);
        }
        self.link.set_unwritten(self.pending() > 0);
    }

    /// Whether this writer's connection is the one attached to the session
    /// (after a takeover the new connection owns the queue and the window).
    fn owns(&self, st: &SessionState) -> bool {
        st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.link))
    }

    /// `n` more bytes reached the socket.
    pub fn advance(&mut self, n: usize) {
        self.written += n;
        self.link.progressed();
        Metrics::add(&self.broker.metrics.bytes_sent, n as u64);
        if self.written == self.out.len() {
            self.link.set_unwritten(false);
            self.out.clear();
            self.written = 0;
            if self.out.capacity() > 16 * BATCH_BYTES {
                self.out = BytesMut::with_capacity(BATCH_BYTES);
            }
        }
    }

    /// Appends the DISCONNECT a closing MQTT 5 connection sends; its reason
    /// string goes if the packet would exceed the client's Maximum Packet
    /// Size (MQTT-3.1.2-25).
    pub fn push_disconnect(&mut self, reason: ReasonCode, text: Option<String>) {
        if self.protocol == Protocol::V5 {
            ledgermq_proto::encode_within(
                &disconnect_packet(reason, text),
                self.protocol,
                self.max_packet_size,
                &mut self.out,
            );
        }
    }

    fn resend_inflight(&mut self, protection: &mut Protection<'_>) {
        let session = self.session.clone();
        let mut st = session.state.lock();
        if !self.owns(&st) {
            return;
        }
        let now = Instant::now();
        let SessionState {
            inflight, staged, ..
        } = &mut *st;
        for i in inflight.iter_mut() {
            match &mut i.out {
                // A QoS 2 id not yet durable goes out when it is.
                Outgoing::Publish { sent: false, .. } if staged.contains(&i.packet_id) => {}
                Outgoing::Publish { delivery, sent } => {
                    let dup = *sent;
                    *sent = true;
                    let d = delivery.clone();
                    self.encode_delivery(&d, i.packet_id, dup, now, protection);
                }
                Outgoing::Release => {
                    // Its key update is made now, with this connection's keys.
                    let mut properties = ledgermq_proto::Properties::default();
                    if let Some(p) = protection {
                        match p.update(i.packet_id) {
                            Ok(update) => properties.user_properties.push(update),
                            Err(e) => return self.protection_failed(e),
                        }
                    }
                    let rel = Packet::PubRel(PubResp {
                        packet_id: i.packet_id,
                        reason: ReasonCode::SUCCESS,
                        properties,
                    });
                    let _ = encode(&rel, self.protocol, &mut self.out);
                }
            }
        }
    }

    /// Sends the staged QoS 2 deliveries whose packet ids are durable now.
    fn send_durable_staged(
        &mut self,
        st: &mut SessionState,
        now: Instant,
        protection: &mut Protection<'_>,
    ) {
        while st.staged_durable > 0 {
            st.staged_durable -= 1;
            let Some(id) = st.staged.pop_front() else {
                st.staged_durable = 0;
                break;
            };
            if let Some(Inflight {
                out: Outgoing::Publish { delivery, sent },
                ..
            }) = st.inflight_mut(id)
            {
                let dup = *sent;
                *sent = true;
                let d = delivery.clone();
                self.encode_delivery(&d, id, dup, now, protection);
            }
        }
    }

    /// Moves deliveries from the session queue into `out`, QoS 1/2 ones
    /// through the in-flight window.
    ///
    /// A QoS 2 delivery to a persistent session goes out only once its
    /// message and packet id are durable: after a crash the broker then
    /// resends it under the same id (the subscriber recognises it), never a
    /// copy under a new one. Such deliveries are staged in batches, one
    /// commit per batch, and nothing queued behind them overtakes them.
    fn drain_queue(&mut self, protection: &mut Protection<'_>) {
        let now = Instant::now();
        let session = self.session.clone();
        let mut st = session.state.lock();
        // After a takeover the new connection owns the queue; a message this
        // writer took now would be in flight on a dying socket and would only
        // be resent at the next reconnect.
        if !self.owns(&st) {
            return;
        }
        self.send_durable_staged(&mut st, now, protection);
        let mut newly_staged = 0;
        while self.pending() < BATCH_BYTES {
            let Some(front) = st.queue.front() else {
                break;
            };
            let gated = front.qos == QoS::ExactlyOnce && front.store_seq.is_some();
            if !st.staged.is_empty() && !gated {
                break; // keep the order: wait for the staged batch
            }
            if front.qos != QoS::AtMostOnce && st.inflight.len() >= self.window {
                break;
            }
            let Some(d) = st.pop_queued() else { break };
            if d.message.is_expired(now) || !self.fits(&d, now) {
                Metrics::add(&self.broker.metrics.messages_dropped, 1);
                if let Some(seq) = d.store_seq {
                    self.broker.store_op(StoreOp::DeleteMessage {
                        client_id: session.client_id.clone(),
                        seq,
                    });
                }
                continue;
            }
            if d.qos == QoS::AtMostOnce {
                self.encode_delivery(&d, 0, false, now, protection);
                continue;
            }
            let seq = d.store_seq;
            let packet_id = st.start_inflight(d.clone());
            if let Some(seq) = seq {
                self.broker.store_op(StoreOp::PutInflight {
                    client_id: session.client_id.clone(),
                    seq,
                    packet_id,
                    released: false,
                });
            }
            if gated {
                st.staged.push_back(packet_id);
                newly_staged += 1;
                continue;
            }
            if let Some(Inflight {
                out: Outgoing::Publish { sent, .. },
                ..
            }) = st.newest_inflight_mut(packet_id)
            {
                *sent = true;
            }
            self.encode_delivery(&d, packet_id, false, now, protection);
        }
        if st.queue.len() < self.broker.config.max_queued_messages {
            session.room.notify_waiters();
        }
        drop(st);
        if newly_staged > 0 {
            let session = self.session.clone();
            self.broker.after_durable(move || {
                let mut st = session.state.lock();
                st.staged_durable = (st.staged_durable + newly_staged).min(st.staged.len());
                if let Some(c) = &st.conn {
                    c.notify.notify_one();
                }
            });
        }
    }

    /// Whether the delivery fits the client's Maximum Packet Size; one that
    /// does not is discarded as if it had been sent (§3.1.2.11.4).
    fn fits(&self, d: &Delivery, now: Instant) -> bool {
        let p = self.outgoing(d, &d.message.topic, None, 1, false, now);
        outgoing_publish_len(&p, self.protocol) <= self.max_packet_size
    }

    fn outgoing<'a>(
        &self,
        d: &'a Delivery,
        topic: &'a str,
        alias: Option<u16>,
        packet_id: u16,
        dup: bool,
        now: Instant,
    ) -> OutgoingPublish<'a> {
        OutgoingPublish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic,
            packet_id,
            properties: &d.message.properties,
            message_expiry_interval: d.message.remaining_expiry(now).map(|s| s.max(1)),
            topic_alias: alias,
            subscription_identifiers: &d.subscription_ids,
            payload: &d.message.payload,
        }
    }

    /// Sealing failed: the connection closes with the method's reason
    /// string; what is in flight is resent (and sealed anew) on the next.
    fn protection_failed(&self, e: crate::auth::ProtectionError) {
        tracing::info!(
            client_id = &*self.session.client_id,
            detail = e.detail,
            "payload protection failed"
        );
        self.link
            .close(ReasonCode::UNSPECIFIED_ERROR, Some(e.reason_string));
    }

    fn encode_delivery(
        &mut self,
        d: &Delivery,
        packet_id: u16,
        dup: bool,
        now: Instant,
        protection: &mut Protection<'_>,
    ) {
        // Sealed at each send: a resend after a reconnect uses the new keys.
        let sealed = match protection {
            Some(p) if d.qos == QoS::ExactlyOnce => {
                match p.seal(&d.message.topic, packet_id, &d.message.payload) {
                    Ok(sealed) => Some(sealed),
                    Err(e) => return self.protection_failed(e),
                }
            }
            _ => None,
        };
        let (topic, alias) = self.aliases.resolve(&d.message.topic);
        let mut p = self.outgoing(d, topic, alias, packet_id, dup, now);
        if let Some(sealed) = &sealed {
            p.payload = sealed;
        }
        if encode_outgoing_publish(&p, self.protocol, &mut self.out).is_ok() {
            Metrics::add(&self.broker.metrics.messages_sent, 1);
        }
    }
}
