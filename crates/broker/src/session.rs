//! Sessions: the state MQTT keeps for a client id across connections.
//!
//! A session outlives its network connections. The router pushes deliveries
//! into the session's queue whether or not a connection is attached; the
//! connection's writer drains the queue into the in-flight window. Keeping
//! one queue for both cases makes offline queuing, redelivery after
//! reconnect and session takeover the same code path.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use ledgermq_proto::{Protocol, QoS, ReasonCode, SubscriptionOptions};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::message::Delivery;

/// A subscription as the client made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// The filter as subscribed, including any `$share/group/` prefix.
    pub filter: String,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
}

/// What the broker waits for on a message it sent with QoS 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    AwaitAck,
    /// PUBREL sent; waiting for PUBCOMP.
    AwaitComp,
}

#[derive(Debug, Clone)]
pub struct Inflight {
    pub packet_id: u16,
    pub delivery: Delivery,
    pub state: OutState,
}

/// The link between a session and the connection currently serving it.
/// Handlers (and the store thread, for acks after a commit) put encoded
/// control packets into `control`; anyone who gives the connection work
/// calls `notify`.
pub struct ConnLink {
    pub protocol: Protocol,
    /// Encoded control packets (acks, SUBACK, PINGRESP…) waiting for the writer.
    pub control: Mutex<BytesMut>,
    pub notify: Notify,
    /// Set when the connection must close; the writer sends a DISCONNECT
    /// with this reason first (MQTT 5).
    pub close: Mutex<Option<(ReasonCode, Option<String>)>>,
    pub closing: AtomicBool,
}

impl ConnLink {
    pub fn new(protocol: Protocol) -> ConnLink {
        ConnLink {
            protocol,
            control: Mutex::new(BytesMut::with_capacity(256)),
            notify: Notify::new(),
            close: Mutex::new(None),
            closing: AtomicBool::new(false),
        }
    }

    /// Encodes a control packet for the writer and wakes it.
    pub fn send(&self, packet: &ledgermq_proto::Packet) {
        let mut c = self.control.lock();
        // Control packets are a few bytes; they cannot exceed any limit.
        let _ = ledgermq_proto::encode(packet, self.protocol, &mut c);
        drop(c);
        self.notify.notify_one();
    }

    /// Closes without a DISCONNECT packet (network error, client DISCONNECT).
    pub fn close_silently(&self) {
        self.closing.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Ask the connection to send DISCONNECT (v5) with `reason` and close.
    pub fn close(&self, reason: ReasonCode, reason_string: Option<String>) {
        let mut c = self.close.lock();
        if c.is_none() {
            *c = Some((reason, reason_string));
        }
        self.closing.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

/// Packet identifiers in use towards the client, as a bitset.
struct PacketIds {
    used: Box<[u64; 1024]>,
    next: u16,
}

impl PacketIds {
    fn new() -> Self {
        PacketIds {
            used: Box::new([0; 1024]),
            next: 1,
        }
    }
    fn is_used(&self, id: u16) -> bool {
        self.used[usize::from(id / 64)] & (1 << (id % 64)) != 0
    }
    fn set(&mut self, id: u16, on: bool) {
        let w = &mut self.used[usize::from(id / 64)];
        if on {
            *w |= 1 << (id % 64);
        } else {
            *w &= !(1 << (id % 64));
        }
    }
    /// A free non-zero id; the caller guarantees fewer than 65535 are in use.
    fn allocate(&mut self) -> u16 {
        loop {
            let id = self.next;
            self.next = if self.next == u16::MAX {
                1
            } else {
                self.next + 1
            };
            if !self.is_used(id) {
                self.set(id, true);
                return id;
            }
        }
    }
}

pub struct SessionState {
    pub protocol: Protocol,
    /// Session Expiry Interval in seconds (3.1.1: 0 for clean sessions,
    /// "never" otherwise).
    pub expiry_interval: u32,
    pub conn: Option<Arc<ConnLink>>,
    pub disconnected_at: Option<Instant>,
    pub subscriptions: HashMap<String, Subscription>,
    pub queue: VecDeque<Delivery>,
    queued_qos0: usize,
    pub inflight: VecDeque<Inflight>,
    ids: PacketIds,
    /// QoS 2 packet ids received (PUBREC sent) and not yet released.
    pub incoming_qos2: HashSet<u16>,
    /// Set when the session was discarded (clean start, expiry): routers
    /// holding a stale reference must not queue into it.
    pub ended: bool,
}

/// Result of offering a delivery to a session's queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Enqueued {
    Yes,
    /// Queue full; this delivery (or an older QoS 0 one) was dropped. The
    /// dropped delivery's store key, if it was persisted, is returned.
    Dropped {
        store_seq: Option<u64>,
    },
    /// Queue full of QoS 0 messages made room; the new one is queued.
    ReplacedQos0,
    /// Queue full, but an acknowledged QoS 1/2 message for a connected
    /// client is never dropped: it is queued beyond the limit and the
    /// publisher must wait for [`Session::room`] (backpressure).
    OverLimit,
    /// The session ended.
    Ended,
}

pub struct Session {
    pub client_id: Arc<str>,
    /// Cheap "is a connection attached" flag for shared-subscription
    /// member selection, without taking the lock.
    pub online: AtomicBool,
    /// Signalled by the writer when the queue is back under its limit,
    /// for publishers held back by [`Enqueued::OverLimit`].
    pub room: Notify,
    /// Counts connections attached to this session; a delayed will fires
    /// only if no new connection attached meanwhile.
    pub generation: AtomicU64,
    pub state: Mutex<SessionState>,
}

impl Session {
    pub fn new(client_id: Arc<str>, protocol: Protocol, expiry_interval: u32) -> Session {
        Session {
            client_id,
            online: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            room: Notify::new(),
            state: Mutex::new(SessionState {
                protocol,
                expiry_interval,
                conn: None,
                disconnected_at: None,
                subscriptions: HashMap::new(),
                queue: VecDeque::new(),
                queued_qos0: 0,
                inflight: VecDeque::new(),
                ids: PacketIds::new(),
                incoming_qos2: HashSet::new(),
                ended: false,
            }),
        }
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Whether a publisher held back by this session may go on: its queue
    /// is under `limit`, or nobody is connected to drain it any more.
    pub fn has_room(&self, limit: usize) -> bool {
        let st = self.state.lock();
        st.queue.len() < limit || st.conn.is_none() || st.ended
    }

    /// Closes the attached connection, if any (MQTT 5: DISCONNECT `reason`).
    pub fn close_connection(&self, reason: ReasonCode, text: &str) {
        if let Some(c) = &self.state.lock().conn {
            tracing::warn!(client_id = &*self.client_id, "closing connection: {text}");
            c.close(reason, Some(text.to_owned()));
        }
    }
}

impl SessionState {
    /// Queues a delivery, applying the overflow policy: QoS 0 messages are
    /// dropped first, then the new message.
    pub fn enqueue(&mut self, d: Delivery, max_queued: usize) -> Enqueued {
        if self.ended {
            return Enqueued::Ended;
        }
        let mut outcome = Enqueued::Yes;
        if self.queue.len() >= max_queued {
            if d.qos != QoS::AtMostOnce && self.queued_qos0 > 0 {
                if let Some(pos) = self.queue.iter().position(|q| q.qos == QoS::AtMostOnce) {
                    self.queue.remove(pos);
                    self.queued_qos0 -= 1;
                    outcome = Enqueued::ReplacedQos0;
                }
            } else if d.qos != QoS::AtMostOnce && self.conn.is_some() {
                outcome = Enqueued::OverLimit;
            } else {
                return Enqueued::Dropped {
                    store_seq: d.store_seq,
                };
            }
        }
        if d.qos == QoS::AtMostOnce {
            self.queued_qos0 += 1;
        }
        self.queue.push_back(d);
        outcome
    }

    pub fn pop_queued(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        if d.qos == QoS::AtMostOnce {
            self.queued_qos0 -= 1;
        }
        Some(d)
    }

    /// Moves a QoS 1/2 delivery into the in-flight window under a fresh
    /// packet id.
    pub fn start_inflight(&mut self, delivery: Delivery) -> u16 {
        let packet_id = self.ids.allocate();
        self.inflight.push_back(Inflight {
            packet_id,
            delivery,
            state: OutState::AwaitAck,
        });
        packet_id
    }

    fn inflight_position(&self, packet_id: u16) -> Option<usize> {
        self.inflight.iter().position(|i| i.packet_id == packet_id)
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2): the message is done.
    pub fn complete(&mut self, packet_id: u16, expect: OutState, qos: QoS) -> Option<Inflight> {
        let pos = self.inflight_position(packet_id)?;
        let i = &self.inflight[pos];
        if i.state != expect || i.delivery.qos != qos {
            return None;
        }
        let done = self.inflight.remove(pos)?;
        self.ids.set(packet_id, false);
        Some(done)
    }

    /// PUBREC: the client has the message; we now owe it a PUBREL. Returns
    /// the delivery's store key (the message itself need not be kept any
    /// longer), or `None` for an unknown id.
    pub fn received(&mut self, packet_id: u16) -> Option<Option<u64>> {
        let pos = self.inflight_position(packet_id)?;
        let i = &mut self.inflight[pos];
        if i.delivery.qos != QoS::ExactlyOnce {
            return None;
        }
        i.state = OutState::AwaitComp;
        Some(i.delivery.store_seq.take())
    }

    /// Drops a failed in-flight message (PUBREC with an error reason code).
    pub fn abandon(&mut self, packet_id: u16) -> Option<Inflight> {
        let pos = self.inflight_position(packet_id)?;
        let done = self.inflight.remove(pos)?;
        self.ids.set(packet_id, false);
        Some(done)
    }

    pub fn release_ids(&mut self) {
        for i in &self.inflight {
            self.ids.set(i.packet_id, false);
        }
    }

    /// Store keys of everything the session still holds, for deletion when
    /// the session ends.
    pub fn stored_seqs(&self) -> Vec<u64> {
        self.queue
            .iter()
            .chain(self.inflight.iter().map(|i| &i.delivery))
            .filter_map(|d| d.store_seq)
            .collect()
    }

    /// Whether this session survives its connection.
    pub fn is_persistent(&self) -> bool {
        self.expiry_interval > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;
    use ledgermq_proto::Properties;

    fn delivery(qos: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message {
                topic: "t".into(),
                payload: Bytes::new(),
                qos,
                retain: false,
                properties: Properties::default(),
                expires_at: None,
                publisher: "p".into(),
            }),
            qos,
            retain: false,
            subscription_ids: vec![],
            store_seq: None,
        }
    }

    fn state() -> SessionState {
        Session::new("c".into(), Protocol::V5, 0).state.into_inner()
    }

    #[test]
    fn full_queue_drops_qos0_before_qos1() {
        let mut s = state();
        assert_eq!(s.enqueue(delivery(QoS::AtMostOnce), 2), Enqueued::Yes);
        assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce), 2), Enqueued::Yes);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 2),
            Enqueued::ReplacedQos0
        );
        assert!(s.queue.iter().all(|d| d.qos == QoS::AtLeastOnce));
        assert!(matches!(
            s.enqueue(delivery(QoS::AtLeastOnce), 2),
            Enqueued::Dropped { .. }
        ));
        assert!(matches!(
            s.enqueue(delivery(QoS::AtMostOnce), 2),
            Enqueued::Dropped { .. }
        ));
    }

    #[test]
    fn full_queue_of_online_session_keeps_qos1_and_asks_for_backpressure() {
        let mut s = state();
        s.conn = Some(Arc::new(ConnLink::new(Protocol::V5)));
        assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce), 1), Enqueued::Yes);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 1),
            Enqueued::OverLimit
        );
        assert_eq!(s.queue.len(), 2);
        assert!(matches!(
            s.enqueue(delivery(QoS::AtMostOnce), 1),
            Enqueued::Dropped { .. }
        ));
    }

    #[test]
    fn packet_ids_are_unique_while_in_flight_and_reused_after() {
        let mut s = state();
        let a = s.start_inflight(delivery(QoS::AtLeastOnce));
        let b = s.start_inflight(delivery(QoS::AtLeastOnce));
        assert_ne!(a, b);
        assert!(s
            .complete(a, OutState::AwaitAck, QoS::AtLeastOnce)
            .is_some());
        assert!(s
            .complete(a, OutState::AwaitAck, QoS::AtLeastOnce)
            .is_none());
        for _ in 0..70_000 {
            let id = s.start_inflight(delivery(QoS::AtLeastOnce));
            assert_ne!(id, b);
            assert_ne!(id, 0);
            s.complete(id, OutState::AwaitAck, QoS::AtLeastOnce)
                .unwrap();
        }
    }

    #[test]
    fn qos2_flow_needs_pubrec_before_pubcomp() {
        let mut s = state();
        let id = s.start_inflight(delivery(QoS::ExactlyOnce));
        assert!(s
            .complete(id, OutState::AwaitComp, QoS::ExactlyOnce)
            .is_none());
        assert!(s.received(id).is_some());
        assert!(s
            .complete(id, OutState::AwaitComp, QoS::ExactlyOnce)
            .is_some());
    }
}
