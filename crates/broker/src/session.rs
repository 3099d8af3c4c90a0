//! Sessions: the state MQTT keeps for a client id across connections.
//!
//! A session outlives its network connections. The router pushes deliveries
//! into the session's queue whether or not a connection is attached; the
//! connection's writer drains the queue into the in-flight window. Keeping
//! one queue for both cases makes offline queuing, redelivery after
//! reconnect and session takeover the same code path.
//!
//! Who may change a session: the connection attached to it, while it holds
//! [`Session::handling`]. A takeover takes that lock too before it moves
//! the session to the new connection, so a packet of the old connection is
//! either handled before the takeover or not at all (its link is closing by
//! then): two connections never act on one session at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use ledgermq_proto::{Packet, Protocol, QoS, ReasonCode, SubscriptionOptions, Will};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::auth::ClientIdentity;
use crate::message::Delivery;
use crate::timers::TimerKey;

/// A subscription as the client made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// The filter as subscribed, including any `$share/group/` prefix.
    pub filter: String,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
}

/// A QoS 1/2 message the broker sent (or is about to send) and the
/// acknowledgement it waits for.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// PUBLISH; waiting for PUBACK (QoS 1) or PUBREC (QoS 2). `sent` is
    /// false until it first reached a connection (a resend has DUP set).
    Publish { delivery: Delivery, sent: bool },
    /// PUBREC received, PUBREL sent or owed; waiting for PUBCOMP. The
    /// message itself is no longer needed.
    Release,
}

#[derive(Debug, Clone)]
pub struct Inflight {
    pub packet_id: u16,
    /// Key of the message in the store (persistent sessions).
    pub store_seq: Option<u64>,
    pub out: Outgoing,
}

/// The link between a session and the connection currently serving it.
/// Handlers (and the store thread, for acks after a commit) put encoded
/// control packets into `control`; anyone who gives the connection work
/// calls `notify`.
pub struct ConnLink {
    pub protocol: Protocol,
    /// The client's Maximum Packet Size: a packet over it is never sent
    /// (its reason string and user properties are dropped first).
    pub max_packet_size: usize,
    /// Encoded control packets (acks, SUBACK, PINGRESP…) waiting for the writer.
    pub control: Mutex<BytesMut>,
    pub notify: Notify,
    /// Set when the connection must close; the writer sends a DISCONNECT
    /// with this reason first (MQTT 5).
    pub close: Mutex<Option<(ReasonCode, Option<String>)>>,
    pub closing: AtomicBool,
    /// How many QoS 1/2 deliveries may be unacknowledged at once: the
    /// client's Receive Maximum capped by the broker's `max_inflight`.
    pub window: usize,
    /// When the client last took something from us (bytes written to its
    /// socket, an acknowledgement that freed its in-flight window), or last
    /// had nothing to take: work arriving for an idle client starts its
    /// clock afresh (milliseconds on [`clock_ms`]).
    progress: AtomicU64,
    /// Whether the writer holds bytes the socket has not taken yet.
    unwritten: AtomicBool,
}

/// How long a subscriber with a full queue may hold its deliveries back
/// (its in-flight window full and unacknowledged, or its socket not taking
/// our bytes) without taking anything before it counts as stuck and is
/// disconnected (0x97). A subscriber that keeps taking messages, only more
/// slowly than they come, holds its publishers back instead; so does one
/// whose queue filled while the broker had not yet got to write to it.
pub const STUCK_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// Milliseconds since the first call, on the monotonic clock.
pub fn clock_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl ConnLink {
    pub fn new(protocol: Protocol, max_packet_size: usize, window: usize) -> ConnLink {
        ConnLink {
            protocol,
            max_packet_size,
            window,
            unwritten: AtomicBool::new(false),
            control: Mutex::new(BytesMut::with_capacity(256)),
            notify: Notify::new(),
            close: Mutex::new(None),
            closing: AtomicBool::new(false),
            progress: AtomicU64::new(clock_ms()),
        }
    }

    /// The client took something from us.
    pub fn progressed(&self) {
        self.progress.store(clock_ms(), Ordering::Relaxed);
    }

    /// Work arrives for the client with `inflight` deliveries
    /// unacknowledged and nothing queued: if it was holding nothing back,
    /// it had nothing to take, so its silence so far was not its own and
    /// its clock starts now.
    pub fn work_arrives(&self, inflight: usize) {
        if inflight < self.window && !self.unwritten.load(Ordering::Relaxed) {
            self.progressed();
        }
    }

    /// The writer has (or no longer has) bytes the socket did not take.
    pub fn set_unwritten(&self, unwritten: bool) {
        if self.unwritten.load(Ordering::Relaxed) != unwritten {
            self.unwritten.store(unwritten, Ordering::Relaxed);
        }
    }

    /// Whether the client, with `inflight` deliveries unacknowledged, is
    /// the one holding its deliveries back (window full, or socket not
    /// taking our bytes) and has taken nothing for [`STUCK_AFTER`]. A
    /// client the broker simply has not written to yet is not stuck.
    pub fn is_stuck(&self, inflight: usize) -> bool {
        (inflight >= self.window || self.unwritten.load(Ordering::Relaxed))
            && clock_ms().saturating_sub(self.progress.load(Ordering::Relaxed))
                >= STUCK_AFTER.as_millis() as u64
    }

    /// Encodes a control packet for the writer and wakes it.
    pub fn send(&self, packet: &Packet) {
        let mut c = self.control.lock();
        // Control packets carry no payload; one over the client's limit
        // loses its reason string and user properties, or is not sent.
        ledgermq_proto::encode_within(packet, self.protocol, self.max_packet_size, &mut c);
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

/// Packet identifiers in use towards the client, as a bitset, allocated
/// on first use so an idle session costs no 8 KiB.
#[derive(Default)]
struct PacketIds {
    used: Option<Box<[u64; 1024]>>,
    next: u16,
}

impl PacketIds {
    fn is_used(&self, id: u16) -> bool {
        self.used
            .as_ref()
            .is_some_and(|u| u[usize::from(id / 64)] & (1 << (id % 64)) != 0)
    }

    fn set(&mut self, id: u16, on: bool) {
        let used = self.used.get_or_insert_with(|| Box::new([0; 1024]));
        let w = &mut used[usize::from(id / 64)];
        if on {
            *w |= 1 << (id % 64);
        } else {
            *w &= !(1 << (id % 64));
        }
    }

    /// A free non-zero id; the caller guarantees fewer than 65535 are in use.
    fn allocate(&mut self) -> u16 {
        loop {
            let id = self.next.max(1);
            self.next = id.checked_add(1).unwrap_or(1);
            if !self.is_used(id) {
                self.set(id, true);
                return id;
            }
        }
    }

    fn clear(&mut self) {
        self.used = None;
    }
}

/// A will whose connection ended, waiting for its delay (§3.1.3.2.2).
pub struct PendingWill {
    pub will: Will,
    pub who: ClientIdentity,
    /// The session generation it belongs to: a new connection moves it on.
    pub generation: u64,
}

pub struct SessionState {
    pub protocol: Protocol,
    /// Session Expiry Interval in seconds (3.1.1: 0 for clean sessions,
    /// "never" otherwise).
    pub expiry_interval: u32,
    pub conn: Option<Arc<ConnLink>>,
    /// Who the client is (of the attached connection, or the last one):
    /// deliveries are authorised for it.
    pub identity: Option<Arc<ClientIdentity>>,
    /// The will of the attached connection.
    pub will: Option<Will>,
    /// A will of a past connection waiting for its delay.
    pub pending_will: Option<PendingWill>,
    /// The timers of the pending will and of the session's expiry, to
    /// cancel when a connection resumes the session.
    pub will_timer: Option<TimerKey>,
    pub expiry_timer: Option<TimerKey>,
    pub disconnected_at: Option<Instant>,
    pub subscriptions: HashMap<String, Subscription>,
    pub queue: VecDeque<Delivery>,
    queued_qos0: usize,
    pub inflight: VecDeque<Inflight>,
    ids: PacketIds,
    /// QoS 2 deliveries of a persistent session given a packet id whose
    /// assignment is not durable yet (oldest first): they go out once it
    /// is, so a crash can never make the broker resend one under a new id.
    pub staged: VecDeque<u16>,
    /// How many of `staged`, from the front, are durable now.
    pub staged_durable: usize,
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
    /// Queue full; this delivery was dropped. The dropped delivery's store
    /// key, if it was persisted, is returned.
    Dropped {
        store_seq: Option<u64>,
    },
    /// Queue full of QoS 0 messages made room; the new one is queued.
    ReplacedQos0,
    /// Queue full of QoS 1/2 messages while a subscriber is connected and
    /// taking messages, only slowly: the delivery is queued beyond the limit
    /// and the publisher must wait for [`Session::room`] (backpressure).
    OverLimit,
    /// Queue full of QoS 1/2 messages while a subscriber is connected but
    /// stuck (see [`ConnLink::is_stuck`]): the delivery was
    /// dropped and the subscriber is disconnected with 0x97; its session
    /// keeps the queue.
    SubscriberTooSlow {
        store_seq: Option<u64>,
    },
    /// The session ended.
    Ended,
}

pub struct Session {
    pub client_id: Arc<str>,
    /// Cheap "is a connection attached" flag for shared-subscription
    /// member selection, without taking the lock.
    pub online: AtomicBool,
    /// Counts connections attached to this session; a delayed will or an
    /// expiry fires only if no new connection attached meanwhile.
    pub generation: AtomicU64,
    /// Held by the attached connection while it handles packets, and by a
    /// takeover while it moves the session to a new connection.
    pub handling: tokio::sync::Mutex<()>,
    /// Signalled by the writer when the queue is back under its limit, for
    /// publishers held back by [`Enqueued::OverLimit`].
    pub room: Notify,
    pub state: Mutex<SessionState>,
}

impl Session {
    pub fn new(client_id: Arc<str>, protocol: Protocol, expiry_interval: u32) -> Session {
        Session {
            client_id,
            online: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            handling: tokio::sync::Mutex::new(()),
            room: Notify::new(),
            state: Mutex::new(SessionState {
                protocol,
                expiry_interval,
                conn: None,
                identity: None,
                will: None,
                pending_will: None,
                will_timer: None,
                expiry_timer: None,
                disconnected_at: None,
                subscriptions: HashMap::new(),
                queue: VecDeque::new(),
                queued_qos0: 0,
                inflight: VecDeque::new(),
                ids: PacketIds::default(),
                staged: VecDeque::new(),
                staged_durable: 0,
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

    /// Whether no connection is attached (the subscriber went away, or was
    /// disconnected as too slow): an offline session's full queue refuses
    /// new messages and holds no publisher back.
    pub fn subscriber_detached(&self) -> bool {
        self.state.lock().conn.is_none()
    }

    /// Whether the attached subscriber is stuck (see [`STUCK_AFTER`]).
    pub fn subscriber_stuck(&self) -> bool {
        self.state.lock().subscriber_stuck()
    }

    /// Closes the attached connection (MQTT 5: DISCONNECT `reason`) unless
    /// there is none or it is closing already; says whether it did.
    pub fn close_connection(&self, reason: ReasonCode, text: &str) -> bool {
        let st = self.state.lock();
        let Some(c) = st.conn.as_ref().filter(|c| !c.is_closing()) else {
            return false;
        };
        tracing::warn!(client_id = &*self.client_id, "closing connection: {text}");
        c.close(reason, Some(text.to_owned()));
        true
    }
}

impl SessionState {
    /// Whether the attached subscriber is stuck (see [`ConnLink::is_stuck`]).
    pub fn subscriber_stuck(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.is_stuck(self.inflight.len()))
    }

    /// Queues a delivery, applying the overflow policy: QoS 0 messages are
    /// dropped first; a full queue of QoS 1/2 messages holds the publisher
    /// back while a connected subscriber keeps taking messages, drops the
    /// new one and calls the subscriber too slow when it is stuck, and drops
    /// it for an offline session.
    pub fn enqueue(&mut self, d: Delivery, max_queued: usize) -> Enqueued {
        if self.ended {
            return Enqueued::Ended;
        }
        let mut outcome = Enqueued::Yes;
        if let (Some(c), true) = (&self.conn, self.queue.is_empty()) {
            c.work_arrives(self.inflight.len());
        }
        if self.queue.len() >= max_queued {
            let room = (d.qos != QoS::AtMostOnce && self.queued_qos0 > 0)
                .then(|| self.queue.iter().position(|q| q.qos == QoS::AtMostOnce))
                .flatten();
            match room {
                Some(pos) => {
                    self.queue.remove(pos);
                    self.queued_qos0 -= 1;
                    outcome = Enqueued::ReplacedQos0;
                }
                None if d.qos != QoS::AtMostOnce && self.conn.is_some() => {
                    if self.subscriber_stuck() {
                        return Enqueued::SubscriberTooSlow {
                            store_seq: d.store_seq,
                        };
                    }
                    outcome = Enqueued::OverLimit;
                }
                None => {
                    return Enqueued::Dropped {
                        store_seq: d.store_seq,
                    }
                }
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
            store_seq: delivery.store_seq,
            out: Outgoing::Publish {
                delivery,
                sent: false,
            },
        });
        packet_id
    }

    /// Puts back a message that was in flight when the broker stopped,
    /// under the packet id it had.
    pub fn restore_inflight(&mut self, inflight: Inflight) {
        self.ids.set(inflight.packet_id, true);
        self.inflight.push_back(inflight);
    }

    /// Acknowledgements come mostly in order: search from the oldest.
    fn inflight_position(&self, packet_id: u16) -> Option<usize> {
        self.inflight.iter().position(|i| i.packet_id == packet_id)
    }

    pub fn inflight_mut(&mut self, packet_id: u16) -> Option<&mut Inflight> {
        let pos = self.inflight_position(packet_id)?;
        self.inflight.get_mut(pos)
    }

    /// The in-flight entry the writer just started (search from the newest).
    pub fn newest_inflight_mut(&mut self, packet_id: u16) -> Option<&mut Inflight> {
        let pos = self
            .inflight
            .iter()
            .rposition(|i| i.packet_id == packet_id)?;
        self.inflight.get_mut(pos)
    }

    /// PUBACK (for a QoS 1 PUBLISH) or PUBCOMP (for a PUBREL): done.
    /// `None` for an id that is not in that state.
    pub fn complete(&mut self, packet_id: u16, qos: QoS) -> Option<Inflight> {
        let pos = self.inflight_position(packet_id)?;
        let expected = match (&self.inflight[pos].out, qos) {
            (Outgoing::Publish { delivery, sent }, QoS::AtLeastOnce) => {
                *sent && delivery.qos == QoS::AtLeastOnce
            }
            (Outgoing::Release, QoS::ExactlyOnce) => true,
            _ => false,
        };
        if !expected {
            return None;
        }
        let done = self.inflight.remove(pos)?;
        self.ids.set(packet_id, false);
        Some(done)
    }

    /// PUBREC: the client has the message; we now owe it a PUBREL. Returns
    /// the message's store key, or `None` for an unknown id.
    pub fn received(&mut self, packet_id: u16) -> Option<Option<u64>> {
        let i = self.inflight_mut(packet_id)?;
        match &i.out {
            Outgoing::Publish { delivery, sent } if *sent && delivery.qos == QoS::ExactlyOnce => {}
            // A repeated PUBREC after a resumed session: the PUBREL is owed.
            Outgoing::Release => return Some(i.store_seq),
            _ => return None,
        }
        i.out = Outgoing::Release;
        Some(i.store_seq)
    }

    /// Drops a failed in-flight message (PUBREC with an error reason code).
    pub fn abandon(&mut self, packet_id: u16) -> Option<Inflight> {
        let pos = self.inflight_position(packet_id)?;
        if !matches!(self.inflight[pos].out, Outgoing::Publish { sent: true, .. }) {
            return None;
        }
        let done = self.inflight.remove(pos)?;
        self.ids.set(packet_id, false);
        Some(done)
    }

    /// Forgets everything in flight and queued (the session ends).
    pub fn clear_messages(&mut self) {
        self.queue.clear();
        self.queued_qos0 = 0;
        self.inflight.clear();
        self.ids.clear();
        self.staged.clear();
        self.staged_durable = 0;
        self.incoming_qos2.clear();
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

    fn sent(s: &mut SessionState, id: u16) {
        if let Some(Inflight {
            out: Outgoing::Publish { sent, .. },
            ..
        }) = s.inflight_mut(id)
        {
            *sent = true;
        }
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
    fn full_queue_of_a_live_subscriber_holds_back_and_of_a_stuck_one_drops() {
        let past_stuck = STUCK_AFTER + std::time::Duration::from_millis(20);
        let mut s = state();
        let link = Arc::new(ConnLink::new(Protocol::V5, usize::MAX, 1));
        s.conn = Some(link.clone());
        // Idle past the threshold: it had nothing to take.
        std::thread::sleep(past_stuck);
        assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce), 1), Enqueued::Yes);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 1),
            Enqueued::OverLimit,
            "an idle subscriber whose queue fills is not stuck"
        );
        std::thread::sleep(past_stuck);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 1),
            Enqueued::OverLimit,
            "the broker has not written to it yet: it holds nothing back"
        );
        // The writer puts one in flight; it fills the window.
        let first = s.pop_queued().unwrap();
        s.start_inflight(first);
        link.progressed();
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 1),
            Enqueued::OverLimit,
            "a subscriber that keeps taking messages slows the publisher down"
        );
        std::thread::sleep(past_stuck);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 1),
            Enqueued::SubscriberTooSlow { store_seq: None },
            "window full and unacknowledged for too long"
        );
        assert_eq!(
            s.queue.len(),
            3,
            "a stuck subscriber's queue grows no further"
        );
        assert!(matches!(
            s.enqueue(delivery(QoS::AtMostOnce), 1),
            Enqueued::Dropped { .. }
        ));
    }

    #[test]
    fn a_subscriber_whose_socket_takes_nothing_is_stuck() {
        let mut s = state();
        let link = Arc::new(ConnLink::new(Protocol::V5, usize::MAX, 100));
        s.conn = Some(link.clone());
        assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce), 1), Enqueued::Yes);
        link.set_unwritten(true);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 1),
            Enqueued::OverLimit
        );
        std::thread::sleep(STUCK_AFTER + std::time::Duration::from_millis(20));
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce), 1),
            Enqueued::SubscriberTooSlow { store_seq: None }
        );
    }

    #[test]
    fn packet_ids_are_unique_while_in_flight_and_reused_after() {
        let mut s = state();
        let a = s.start_inflight(delivery(QoS::AtLeastOnce));
        let b = s.start_inflight(delivery(QoS::AtLeastOnce));
        assert_ne!(a, b);
        assert!(s.complete(a, QoS::AtLeastOnce).is_none(), "not sent yet");
        sent(&mut s, a);
        assert!(s.complete(a, QoS::AtLeastOnce).is_some());
        assert!(s.complete(a, QoS::AtLeastOnce).is_none());
        for _ in 0..70_000 {
            let id = s.start_inflight(delivery(QoS::AtLeastOnce));
            assert_ne!(id, b);
            assert_ne!(id, 0);
            sent(&mut s, id);
            s.complete(id, QoS::AtLeastOnce).unwrap();
        }
    }

    #[test]
    fn qos2_flow_needs_pubrec_before_pubcomp() {
        let mut s = state();
        let id = s.start_inflight(delivery(QoS::ExactlyOnce));
        sent(&mut s, id);
        assert!(s.complete(id, QoS::ExactlyOnce).is_none());
        assert!(s.received(id).is_some());
        assert!(s.received(id).is_some(), "a repeated PUBREC is answered");
        assert!(s.complete(id, QoS::AtLeastOnce).is_none());
        assert!(s.complete(id, QoS::ExactlyOnce).is_some());
    }

    #[test]
    fn restored_inflight_keeps_its_packet_id() {
        let mut s = state();
        s.restore_inflight(Inflight {
            packet_id: 1,
            store_seq: Some(9),
            out: Outgoing::Release,
        });
        assert_ne!(s.start_inflight(delivery(QoS::AtLeastOnce)), 1);
        assert_eq!(s.complete(1, QoS::ExactlyOnce).unwrap().store_seq, Some(9));
    }
}
