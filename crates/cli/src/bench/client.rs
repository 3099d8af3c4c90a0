//! The two kinds of benchmark client, each one task over one [`Wire`].
//!
//! A payload starts with a 16-byte stamp — sequence number (u32), publisher
//! index (u32), send time (u64 ns since the run's epoch, all big-endian) —
//! so a subscriber can tell loss, duplicates and latency without any shared
//! state: publishers and subscribers live in one process and share the
//! monotonic clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Buf;
use ledgermq_proto::{OutgoingPublish, Packet, Properties, PubResp, QoS, ReasonCode};

use super::e2e::DeviceKeys;
use super::stats::{Histogram, SeqSet};
use super::wire::{reason_name, Io, Wire, WRITE_HIGH_WATER};

pub const STAMP_LEN: usize = 16;

/// Times every client shares, fixed once all clients are connected.
#[derive(Clone, Copy)]
pub struct Schedule {
    /// Origin of the timestamps carried in payloads.
    pub epoch: Instant,
    /// Publishers start here.
    pub start: Instant,
    /// End of the warm-up: messages sent from here on are measured.
    pub measure_from: Instant,
    /// Publishers stop here.
    pub stop_at: Instant,
    /// How long publishers wait for outstanding acknowledgements, and
    /// subscribers for a next message, once publishing has stopped.
    pub grace: Duration,
    pub keep_alive: Duration,
}

impl Schedule {
    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Next keep-alive ping after a write at `last_tx`.
    fn ping_due(&self, last_tx: Instant) -> Instant {
        last_tx + self.keep_alive / 2
    }
}

/// What publishers tell subscribers once they have all stopped.
pub struct Progress {
    pub publishers_done: AtomicBool,
    /// Messages each publisher sent, warm-up included.
    pub sent: Vec<AtomicU64>,
}

pub struct PublisherPlan {
    pub index: u32,
    pub topic: String,
    pub qos: QoS,
    pub payload_len: usize,
    /// Messages per second, 0 for as fast as possible.
    pub rate: f64,
    /// Unacknowledged QoS 1/2 messages allowed at once.
    pub window: usize,
    /// `--e2e-group`: each payload sealed under the group key, ahead of
    /// the send path (see [`Sealer`]), its send time kept in `send_times`.
    pub keys: Option<(DeviceKeys, Arc<SendTimes>)>,
}

/// With `--e2e-group` a sealed payload cannot carry its send time (it is
/// sealed before it is sent): each publisher's send times, by stamp
/// sequence modulo the ring size, for the subscribers' latency.
pub struct SendTimes(Vec<Box<[AtomicU64]>>);

/// Ring entries per publisher: far above any in-flight window.
const SEND_TIMES: usize = 1 << 18;

impl SendTimes {
    pub fn new(publishers: usize) -> Self {
        SendTimes(
            (0..publishers)
                .map(|_| (0..SEND_TIMES).map(|_| AtomicU64::new(0)).collect())
                .collect(),
        )
    }

    fn set(&self, publisher: u32, seq: u32, at: u64) {
        if let Some(ring) = self.0.get(publisher as usize) {
            ring[seq as usize % SEND_TIMES].store(at, Ordering::Relaxed);
        }
    }

    fn get(&self, publisher: u32, seq: u32) -> u64 {
        self.0.get(publisher as usize).map_or(0, |ring| {
            ring[seq as usize % SEND_TIMES].load(Ordering::Relaxed)
        })
    }
}

/// Seals a publisher's payloads on a thread of its own, in stamp order
/// (sequence 0, 1, …; send time 0), so sealing and signing (~20 µs each)
/// are not on the send path: the broker sees the same pattern of arrivals
/// as with plain payloads.
fn start_sealer(
    keys: DeviceKeys,
    topic: String,
    index: u32,
    payload_len: usize,
) -> tokio::sync::mpsc::Receiver<Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    std::thread::spawn(move || {
        let mut payload = vec![b'.'; payload_len];
        let mut sequence = 0u64;
        for seq in 0u32.. {
            stamp(&mut payload, seq, index, 0);
            // Envelope sequences: microseconds, strictly increasing, so a
            // later run on the same broker is no replay either.
            sequence = unix_micros().max(sequence + 1);
            if tx
                .blocking_send(keys.seal(&topic, sequence, &payload))
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

#[derive(Default)]
pub struct PublisherReport {
    /// Messages sent, warm-up included.
    pub sent_total: u64,
    /// Messages sent after the warm-up.
    pub sent_measured: u64,
    /// QoS 1/2 messages still unacknowledged when the publisher gave up.
    pub unacked: u64,
    /// PUBACK / PUBREC with an error reason code.
    pub rejected: u64,
    /// First rejection reason seen, to explain `rejected`.
    pub first_rejection: Option<ReasonCode>,
}

const FREE: u8 = 0;
const AWAIT_ACK: u8 = 1;
const AWAIT_COMP: u8 = 2;

/// Packet identifiers of the publisher's window and where each flow is.
struct InFlight {
    state: Vec<u8>,
    cursor: u16,
    count: usize,
}

impl InFlight {
    fn new() -> Self {
        InFlight {
            state: vec![FREE; 65536],
            cursor: 0,
            count: 0,
        }
    }

    fn acquire(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.cursor = self.cursor % u16::MAX + 1;
            if self.state[self.cursor as usize] == FREE {
                self.state[self.cursor as usize] = AWAIT_ACK;
                self.count += 1;
                return Some(self.cursor);
            }
        }
        None
    }

    fn state(&self, id: u16) -> u8 {
        self.state[id as usize]
    }

    fn advance(&mut self, id: u16) {
        self.state[id as usize] = AWAIT_COMP;
    }

    fn release(&mut self, id: u16) {
        self.state[id as usize] = FREE;
        self.count -= 1;
    }
}

/// Publishes on schedule until `stop_at`, then waits (up to the grace
/// period) for its QoS 1/2 flows to complete.
pub async fn run_publisher(
    mut wire: Wire,
    plan: PublisherPlan,
    schedule: Schedule,
) -> Result<PublisherReport> {
    let mut report = PublisherReport::default();
    let mut in_flight = InFlight::new();
    let mut payload = vec![b'.'; plan.payload_len];
    let no_properties = Properties::default();
    let measure_from = schedule.nanos(schedule.measure_from);
    let give_up = schedule.stop_at + schedule.grace;
    let interval = (plan.rate > 0.0).then(|| 1.0 / plan.rate);
    let mut stopped = false;
    let mut sealer = plan.keys.as_ref().map(|(keys, _)| {
        start_sealer(
            keys.clone(),
            plan.topic.clone(),
            plan.index,
            plan.payload_len,
        )
    });
    tokio::time::sleep_until(schedule.start.into()).await;

    loop {
        while let Some(packet) = wire.next_packet()? {
            on_ack(&mut wire, packet, &mut in_flight, &mut report)?;
        }
        let mut now = Instant::now();
        stopped |= now >= schedule.stop_at;
        let mut next_due = None;
        while !stopped && wire.pending() < WRITE_HIGH_WATER {
            if plan.qos != QoS::AtMostOnce && in_flight.count >= plan.window {
                break;
            }
            if let Some(interval) = interval {
                let due =
                    schedule.start + Duration::from_secs_f64(report.sent_total as f64 * interval);
                if due > now {
                    next_due = Some(due);
                    break;
                }
            }
            let packet_id = match plan.qos {
                QoS::AtMostOnce => 0,
                _ => in_flight.acquire().expect("window is below 65535"),
            };
            let sealed = match (&mut sealer, &plan.keys) {
                (Some(sealer), Some((_, times))) => {
                    let sealed = sealer
                        .recv()
                        .await
                        .ok_or_else(|| anyhow::anyhow!("the sealing thread stopped"))??;
                    now = Instant::now();
                    times.set(plan.index, report.sent_total as u32, schedule.nanos(now));
                    Some(sealed)
                }
                _ => None,
            };
            let sent_at = schedule.nanos(now);
            stamp(&mut payload, report.sent_total as u32, plan.index, sent_at);
            wire.queue_publish(&OutgoingPublish {
                dup: false,
                qos: plan.qos,
                retain: false,
                topic: &plan.topic,
                packet_id,
                properties: &no_properties,
                message_expiry_interval: None,
                topic_alias: None,
                subscription_identifiers: &[],
                payload: sealed.as_deref().unwrap_or(&payload),
            })?;
            report.sent_total += 1;
            if sent_at >= measure_from {
                report.sent_measured += 1;
            }
            now = Instant::now();
            stopped |= now >= schedule.stop_at;
        }
        if stopped && wire.pending() == 0 && in_flight.count == 0 {
            break;
        }
        if stopped && now >= give_up {
            report.unacked = in_flight.count as u64;
            break;
        }
        if wire.pending() == 0 && now >= schedule.ping_due(wire.last_tx()) {
            wire.queue(&Packet::PingReq)?;
        }
        let mut wake = schedule.ping_due(wire.last_tx()).min(give_up);
        if !stopped {
            wake = wake.min(schedule.stop_at);
        }
        if let Some(due) = next_due {
            wake = wake.min(due);
        }
        wire.pump(Some(wake)).await?;
    }
    wire.close(Duration::from_millis(500)).await;
    Ok(report)
}

/// Overwrites the stamp at the front of a reused payload buffer.
fn stamp(payload: &mut [u8], seq: u32, publisher: u32, sent_at: u64) {
    payload[0..4].copy_from_slice(&seq.to_be_bytes());
    payload[4..8].copy_from_slice(&publisher.to_be_bytes());
    payload[8..16].copy_from_slice(&sent_at.to_be_bytes());
}

fn on_ack(
    wire: &mut Wire,
    packet: Packet,
    in_flight: &mut InFlight,
    report: &mut PublisherReport,
) -> Result<()> {
    let mut reject = |reason: ReasonCode| {
        report.rejected += 1;
        report.first_rejection.get_or_insert(reason);
    };
    match packet {
        Packet::PubAck(ack) if in_flight.state(ack.packet_id) == AWAIT_ACK => {
            if ack.reason.is_error() {
                reject(ack.reason);
            }
            in_flight.release(ack.packet_id);
        }
        Packet::PubRec(rec) if in_flight.state(rec.packet_id) == AWAIT_ACK => {
            if rec.reason.is_error() {
                reject(rec.reason);
                in_flight.release(rec.packet_id);
            } else {
                in_flight.advance(rec.packet_id);
                wire.queue(&Packet::PubRel(PubResp {
                    packet_id: rec.packet_id,
                    ..Default::default()
                }))?;
            }
        }
        Packet::PubComp(comp) if in_flight.state(comp.packet_id) == AWAIT_COMP => {
            in_flight.release(comp.packet_id);
        }
        Packet::Disconnect(d) => disconnected(wire, d.reason)?,
        _ => {}
    }
    Ok(())
}

fn disconnected(wire: &Wire, reason: ReasonCode) -> Result<()> {
    bail!(
        "broker disconnected {}: DISCONNECT reason {reason} ({})",
        wire.name(),
        reason_name(reason)
    )
}

/// Which messages a subscriber expects.
#[derive(Clone, Copy)]
pub enum Expect {
    /// Every message of this one publisher (pairs mode).
    From(usize),
    /// Every message of every publisher (fan-out mode).
    All,
}

#[derive(Default)]
pub struct SubscriberReport {
    /// Distinct measured messages received.
    pub unique: u64,
    /// Measured messages received more than once.
    pub duplicates: u64,
    /// Deliveries of any message whose arrival fell in the measured window.
    pub in_window: u64,
    /// Payloads without a valid stamp.
    pub malformed: u64,
    pub latency: Histogram,
}

/// Receives and acknowledges until everything expected has arrived, or
/// nothing has for the grace period after the publishers stopped.
pub async fn run_subscriber(
    mut wire: Wire,
    expect: Expect,
    publishers: usize,
    schedule: Schedule,
    progress: Arc<Progress>,
    keys: Option<(DeviceKeys, Arc<SendTimes>)>,
) -> Result<SubscriberReport> {
    let mut report = SubscriberReport::default();
    let mut seen: Vec<SeqSet> = (0..publishers).map(|_| SeqSet::default()).collect();
    let mut deliveries = 0u64;
    let mut expected = None;
    let mut last_rx = Instant::now();
    let mut drain_start = None;
    let window = (
        schedule.nanos(schedule.measure_from),
        schedule.nanos(schedule.stop_at),
    );
    let poll = Duration::from_millis(50);

    loop {
        let now = Instant::now();
        if wire.pending() == 0 && now >= schedule.ping_due(wire.last_tx()) {
            wire.queue(&Packet::PingReq)?;
        }
        if expected.is_none() && progress.publishers_done.load(Ordering::Acquire) {
            let sent = |i: usize| progress.sent[i].load(Ordering::Relaxed);
            expected = Some(match expect {
                Expect::From(i) => sent(i),
                Expect::All => (0..publishers).map(sent).sum(),
            });
            drain_start = Some(now);
        }
        if let (Some(expected), Some(drain_start)) = (expected, drain_start) {
            let idle = now >= last_rx.max(drain_start) + schedule.grace;
            // A broker with a deep backlog may trickle for long; stop anyway.
            let too_long = now >= drain_start + schedule.grace * 10;
            if deliveries >= expected || idle || too_long {
                break;
            }
        }
        let wake = schedule.ping_due(wire.last_tx()).min(now + poll);
        if wire.pump(Some(wake)).await? != Io::Read {
            continue;
        }
        last_rx = Instant::now();
        let arrived = schedule.nanos(last_rx);
        let in_window = arrived >= window.0 && arrived < window.1;
        while let Some(packet) = wire.next_packet()? {
            match packet {
                Packet::Publish(p) => {
                    deliveries += 1;
                    report.in_window += u64::from(in_window);
                    match &keys {
                        None => record(&mut report, &mut seen, &p.payload, arrived, window.0),
                        Some((keys, times)) => match keys.open(&p.topic, &p.payload) {
                            Some(mut plain) if plain.len() >= STAMP_LEN => {
                                // The send time the publisher kept.
                                let seq = u32::from_be_bytes(plain[0..4].try_into().unwrap());
                                let publisher = u32::from_be_bytes(plain[4..8].try_into().unwrap());
                                let at = times.get(publisher, seq);
                                plain[8..16].copy_from_slice(&at.to_be_bytes());
                                record(&mut report, &mut seen, &plain, arrived, window.0)
                            }
                            _ => report.malformed += 1,
                        },
                    }
                    let ack = PubResp {
                        packet_id: p.packet_id,
                        ..Default::default()
                    };
                    match p.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => wire.queue(&Packet::PubAck(ack))?,
                        QoS::ExactlyOnce => wire.queue(&Packet::PubRec(ack))?,
                    }
                }
                Packet::PubRel(rel) => {
                    let comp = PubResp {
                        packet_id: rel.packet_id,
                        ..Default::default()
                    };
                    wire.queue(&Packet::PubComp(comp))?;
                }
                Packet::Disconnect(d) => disconnected(&wire, d.reason)?,
                _ => {}
            }
        }
    }
    wire.close(Duration::from_millis(500)).await;
    Ok(report)
}

/// Books one delivery: duplicates and latency count for measured messages
/// (sent after the warm-up) only.
fn record(
    report: &mut SubscriberReport,
    seen: &mut [SeqSet],
    mut payload: &[u8],
    arrived: u64,
    measure_from: u64,
) {
    if payload.len() < STAMP_LEN {
        report.malformed += 1;
        return;
    }
    let seq = payload.get_u32();
    let publisher = payload.get_u32() as usize;
    let sent_at = payload.get_u64();
    let Some(set) = seen.get_mut(publisher) else {
        report.malformed += 1;
        return;
    };
    let fresh = set.insert(seq);
    if sent_at < measure_from {
        return;
    }
    if fresh {
        report.unique += 1;
        report.latency.record(arrived.saturating_sub(sent_at));
    } else {
        report.duplicates += 1;
    }
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
