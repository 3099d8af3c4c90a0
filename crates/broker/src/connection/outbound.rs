//! The writer half: the only code that writes to the socket.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use ledgermq_proto::{
    encode, encode_outgoing_publish, outgoing_publish_len, OutgoingPublish, Packet, Protocol,
    PubResp, QoS, ReasonCode,
};
use tokio::io::{AsyncWrite, AsyncWriteExt, WriteHalf};

use super::disconnect_packet;
use super::inbound::Limits;
use crate::broker::Broker;
use crate::message::Delivery;
use crate::metrics::Metrics;
use crate::session::{ConnLink, OutState, Session};
use crate::store::StoreOp;

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

struct Writer {
    broker: Arc<Broker>,
    protocol: Protocol,
    window: usize,
    max_packet_size: usize,
    aliases: OutAliases,
    out: BytesMut,
}

pub(super) async fn run<W: AsyncWrite + Send + 'static>(
    broker: Arc<Broker>,
    session: Arc<Session>,
    link: Arc<ConnLink>,
    limits: Limits,
    mut wr: WriteHalf<W>,
) {
    let mut w = Writer {
        window: usize::from(
            limits
                .client_receive_maximum
                .min(broker.config.max_inflight),
        ),
        max_packet_size: limits.client_max_packet_size as usize,
        protocol: link.protocol,
        aliases: OutAliases {
            max: if link.protocol == Protocol::V5 {
                limits.client_topic_alias_maximum
            } else {
                0
            },
            map: HashMap::new(),
        },
        out: BytesMut::with_capacity(BATCH_BYTES),
        broker,
    };
    let mut resumed = false;
    loop {
        {
            let mut control = link.control.lock();
            w.out.extend_from_slice(&control);
            control.clear();
        }
        if !resumed {
            // After the CONNACK: resend what the session had in flight.
            w.resend_inflight(&session);
            resumed = true;
        }
        if link.is_closing() {
            if let Some((reason, text)) = link.close.lock().take() {
                if w.protocol == Protocol::V5 {
                    let _ = encode(&disconnect_packet(reason, text), w.protocol, &mut w.out);
                }
            }
            let _ = wr.write_all(&w.out).await;
            let _ = wr.flush().await;
            let _ = wr.shutdown().await;
            return;
        }
        w.drain_queue(&session, &link);
        if w.out.is_empty() {
            link.notify.notified().await;
            continue;
        }
        let ok = wr.write_all(&w.out).await.is_ok() && wr.flush().await.is_ok();
        Metrics::add(&w.broker.metrics.bytes_sent, w.out.len() as u64);
        if !ok {
            link.close_silently();
            return;
        }
        w.out.clear();
        link.drained.notify_one();
        if w.out.capacity() > 16 * BATCH_BYTES {
            w.out = BytesMut::with_capacity(BATCH_BYTES);
        }
    }
}

impl Writer {
    fn resend_inflight(&mut self, session: &Session) {
        let st = session.state.lock();
        for i in &st.inflight {
            match i.state {
                OutState::AwaitAck => {
                    let now = Instant::now();
                    self.encode_delivery(&i.delivery, i.packet_id, true, now);
                }
                OutState::AwaitComp => {
                    let rel = Packet::PubRel(PubResp {
                        packet_id: i.packet_id,
                        reason: ReasonCode::SUCCESS,
                        properties: Default::default(),
                    });
                    let _ = encode(&rel, self.protocol, &mut self.out);
                }
            }
        }
    }

    /// Moves deliveries from the session queue into `out`, QoS 1/2 ones
    /// through the in-flight window.
    fn drain_queue(&mut self, session: &Session, link: &Arc<ConnLink>) {
        let now = Instant::now();
        let mut st = session.state.lock();
        // After a takeover the new connection owns the queue; a message this
        // writer took now would be in flight on a dying socket and would only
        // be resent at the next reconnect.
        if !st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, link)) {
            return;
        }
        while self.out.len() < BATCH_BYTES {
            let Some(front) = st.queue.front() else {
                break;
            };
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
                self.encode_delivery(&d, 0, false, now);
            } else {
                let packet_id = st.start_inflight(d);
                let Some(inflight) = st.inflight.back() else {
                    break;
                };
                let d = inflight.delivery.clone();
                self.encode_delivery(&d, packet_id, false, now);
            }
        }
        if st.queue.len() < self.broker.config.max_queued_messages {
            session.room.notify_waiters();
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

    fn encode_delivery(&mut self, d: &Delivery, packet_id: u16, dup: bool, now: Instant) {
        let (topic, alias) = self.aliases.resolve(&d.message.topic);
        let p = self.outgoing(d, topic, alias, packet_id, dup, now);
        if encode_outgoing_publish(&p, self.protocol, &mut self.out).is_ok() {
            Metrics::add(&self.broker.metrics.messages_sent, 1);
        }
    }
}
