//! A whole broker driven in process by arbitrary client behaviour: several
//! clients sharing two client ids (so takeovers happen), CONNECTs of both
//! protocol versions with and without clean start, SUBSCRIBE and
//! UNSUBSCRIBE, QoS 0/1/2 and retained PUBLISHes, raw garbage, normal and
//! abrupt disconnects.
//!
//! Shared by the stable property test (`tests/broker_model.rs`) and the
//! libFuzzer target (`fuzz/fuzz_targets/broker.rs`): both turn bytes into a
//! [`Scenario`] with [`Scenario::from_bytes`] and [`run`] it. Invariants
//! checked after every scenario:
//! - nothing panicked (a panic in any broker task is caught and reported);
//! - every PUBLISH the broker acknowledged reached an observer subscribed
//!   to `#` (QoS 1 and 2: "acknowledged ⇒ delivered or queued");
//! - nothing grows without bound: sessions, subscriptions, timers,
//!   pending-CONNECT bytes and connections go back to what the persistent
//!   sessions of two client ids can hold.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ledgermq_broker::auth::{AllowAll, AllowAnonymous};
use ledgermq_broker::metrics::Metrics;
use ledgermq_broker::{Broker, Config};
use ledgermq_proto::{
    decode, encode, Connect, Disconnect, Packet, Properties, Protocol, PubResp, Publish, QoS,
    ReasonCode, Subscribe, SubscriptionOptions, Unsubscribe, Will,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const SLOTS: usize = 3;
const IDS: [&str; 2] = ["alpha", "beta"];
const FILTERS: [&str; 7] = ["a/#", "a/+", "#", "+/b", "$SYS/#", "$share/g/a/b", "a/b/c"];
const TOPICS: [&str; 4] = ["a/b", "a", "c/b", "a/b/c"];

#[derive(Debug, Clone)]
pub enum Op {
    Connect {
        slot: usize,
        id: usize,
        v5: bool,
        clean: bool,
        expiry: u32,
        will: bool,
    },
    Subscribe {
        slot: usize,
        filter: usize,
        qos: u8,
    },
    Unsubscribe {
        slot: usize,
        filter: usize,
    },
    Publish {
        slot: usize,
        topic: usize,
        qos: u8,
        retain: bool,
    },
    Raw {
        slot: usize,
        bytes: Vec<u8>,
    },
    Disconnect {
        slot: usize,
        with_will: bool,
    },
    Drop {
        slot: usize,
    },
    Pump,
}

#[derive(Debug, Clone, Default)]
pub struct Scenario {
    pub ops: Vec<Op>,
}

impl Scenario {
    /// Reads operations from bytes until they run out: one byte picks the
    /// kind, the next ones its fields.
    pub fn from_bytes(data: &[u8]) -> Scenario {
        let mut it = data.iter().copied();
        let mut ops = Vec::new();
        while let Some(kind) = it.next() {
            let mut b = || it.next().unwrap_or(0);
            let slot = usize::from(b()) % SLOTS;
            let op = match kind % 12 {
                0..=2 => {
                    let f = b();
                    Op::Connect {
                        slot,
                        id: usize::from(f & 1),
                        v5: f & 2 != 0,
                        clean: f & 4 != 0,
                        expiry: [0, 1, 60][usize::from(f >> 3) % 3],
                        will: f & 0x40 != 0,
                    }
                }
                3 | 4 => Op::Subscribe {
                    slot,
                    filter: usize::from(b()) % FILTERS.len(),
                    qos: b() % 3,
                },
                5 => Op::Unsubscribe {
                    slot,
                    filter: usize::from(b()) % FILTERS.len(),
                },
                6..=8 => {
                    let f = b();
                    Op::Publish {
                        slot,
                        topic: usize::from(f) % TOPICS.len(),
                        qos: (f >> 2) % 3,
                        retain: f & 0x80 != 0,
                    }
                }
                9 => {
                    let len = usize::from(b() % 24);
                    Op::Raw {
                        slot,
                        bytes: (0..len).map(|_| b()).collect(),
                    }
                }
                10 => Op::Disconnect {
                    slot,
                    with_will: b() & 1 != 0,
                },
                _ => match b() % 2 {
                    0 => Op::Drop { slot },
                    _ => Op::Pump,
                },
            };
            ops.push(op);
            if ops.len() >= 64 {
                break;
            }
        }
        Scenario { ops }
    }
}

/// Set when any thread panics while a scenario runs.
static PANICKED: AtomicBool = AtomicBool::new(false);

fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// One in-process client: our codec over an in-memory pipe to the broker.
struct Client {
    io: DuplexStream,
    protocol: Protocol,
    buf: BytesMut,
    next_id: u16,
    /// Our publishes waiting for PUBACK/PUBREC: packet id → marker.
    unacked: HashMap<u16, u32>,
    connected: bool,
}

impl Client {
    async fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        if encode(p, self.protocol, &mut out).is_ok() {
            let _ = self.io.write_all(&out).await;
        }
    }

    fn pkid(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn config() -> Config {
    Config {
        persistence: false,
        sys_interval: 0,
        max_queued_messages: 1000,
        connect_timeout: 2,
        ..Config::default()
    }
}

fn connect_to(broker: &Arc<Broker>, port: u16) -> DuplexStream {
    let (client, server) = tokio::io::duplex(64 * 1024);
    tokio::spawn(ledgermq_broker::serve_connection(
        broker.clone(),
        server,
        addr(port),
        addr(1883),
    ));
    client
}

/// Reads what the broker sent, answering as a well-behaved client would.
/// Returns the markers of our publishes the broker acknowledged, and the
/// markers delivered to us.
async fn drain(c: &mut Client, acked: &mut BTreeSet<u32>, delivered: &mut BTreeSet<u32>) {
    loop {
        let mut chunk = [0u8; 8192];
        let read = tokio::time::timeout(Duration::from_millis(1), c.io.read(&mut chunk)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => {
                c.connected = false;
                return;
            }
            Ok(Ok(n)) => c.buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        let mut answers = Vec::new();
        loop {
            match decode(&mut c.buf, Some(c.protocol), 1 << 20) {
                Ok(Some(p)) => answers.push(p),
                Ok(None) => break,
                Err(_) => {
                    c.connected = false;
                    return;
                }
            }
        }
        if answers.is_empty() && read.is_err() {
            return;
        }
        for p in answers {
            match p {
                Packet::PubAck(a) => acknowledged(c, &a, acked),
                Packet::PubRec(a) => {
                    acknowledged(c, &a, acked);
                    c.send(&Packet::PubRel(resp(a.packet_id))).await;
                }
                Packet::Publish(m) => {
                    if let Some(marker) = marker_of(&m.payload) {
                        delivered.insert(marker);
                    }
                    match m.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => c.send(&Packet::PubAck(resp(m.packet_id))).await,
                        QoS::ExactlyOnce => c.send(&Packet::PubRec(resp(m.packet_id))).await,
                    }
                }
                Packet::PubRel(a) => c.send(&Packet::PubComp(resp(a.packet_id))).await,
                Packet::Disconnect(_) => c.connected = false,
                _ => {}
            }
        }
    }
}

/// The broker acknowledged one of our publishes.
fn acknowledged(c: &mut Client, a: &PubResp, acked: &mut BTreeSet<u32>) {
    if let Some(marker) = c.unacked.remove(&a.packet_id) {
        if !a.reason.is_error() {
            acked.insert(marker);
        }
    }
}

fn resp(packet_id: u16) -> PubResp {
    PubResp {
        packet_id,
        reason: ReasonCode::SUCCESS,
        properties: Properties::default(),
    }
}

fn marker_of(payload: &[u8]) -> Option<u32> {
    let rest = payload.strip_prefix(b"m")?;
    Some(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?))
}

/// Runs a scenario against a fresh broker and checks the invariants;
/// panics (with the scenario in the message) when one does not hold.
pub fn run(scenario: &Scenario) {
    watch_panics();
    PANICKED.store(false, Ordering::SeqCst);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run_async(scenario));
    drop(rt);
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "a broker task panicked in {scenario:?}"
    );
}

async fn run_async(scenario: &Scenario) {
    let broker = Arc::new(Broker::new(
        config(),
        None,
        Box::new(AllowAnonymous(true)),
        Box::new(AllowAll),
    ));
    let housekeeping = tokio::spawn(ledgermq_broker::sys::housekeeping(broker.clone()));
    let (mut acked, mut delivered, mut ignored) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    // The observer: a clean MQTT 5 session subscribed to everything.
    let mut observer = Client {
        io: connect_to(&broker, 40000),
        protocol: Protocol::V5,
        buf: BytesMut::new(),
        next_id: 0,
        unacked: HashMap::new(),
        connected: true,
    };
    observer
        .send(&Packet::Connect(Connect {
            protocol: Protocol::V5,
            clean_start: true,
            keep_alive: 0,
            client_id: "observer".into(),
            ..Default::default()
        }))
        .await;
    let id = observer.pkid();
    observer
        .send(&Packet::Subscribe(Subscribe {
            packet_id: id,
            properties: Properties::default(),
            filters: vec![(
                "#".into(),
                SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    ..Default::default()
                },
            )],
        }))
        .await;
    for _ in 0..20 {
        drain(&mut observer, &mut ignored, &mut delivered).await;
    }
    let mut slots: Vec<Option<Client>> = (0..SLOTS).map(|_| None).collect();
    let mut marker = 0u32;
    for (step, op) in scenario.ops.iter().enumerate() {
        apply(&broker, &mut slots, op, &mut marker, step).await;
        for c in slots.iter_mut().flatten() {
            drain(c, &mut acked, &mut ignored).await;
        }
        drain(&mut observer, &mut ignored, &mut delivered).await;
    }
    // Everyone leaves; the broker settles.
    for slot in slots.iter_mut() {
        if let Some(mut c) = slot.take() {
            drain(&mut c, &mut acked, &mut ignored).await;
            drop(c);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !acked.is_subset(&delivered) && tokio::time::Instant::now() < deadline {
        drain(&mut observer, &mut ignored, &mut delivered).await;
    }
    let lost: Vec<&u32> = acked.difference(&delivered).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?} in {scenario:?}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Bounded state: two client ids' sessions (plus the observer's), each
    // with at most every filter; at most two timers per session.
    let sessions = broker.session_count();
    assert!(
        sessions <= IDS.len() + 1,
        "{sessions} sessions in {scenario:?}"
    );
    let subscriptions = broker.router.subscription_count();
    assert!(
        subscriptions <= IDS.len() * FILTERS.len() + 1,
        "{subscriptions} subscriptions in {scenario:?}"
    );
    assert!(
        broker.timers.len() <= 2 * IDS.len(),
        "{} timers",
        broker.timers.len()
    );
    assert!(broker.retained.len() <= TOPICS.len());
    assert_eq!(
        Metrics::get(&broker.metrics.clients_connected),
        1,
        "only the observer is connected once everyone left: {scenario:?}"
    );
    housekeeping.abort();
}

async fn apply(
    broker: &Arc<Broker>,
    slots: &mut [Option<Client>],
    op: &Op,
    marker: &mut u32,
    step: usize,
) {
    match op {
        &Op::Connect {
            slot,
            id,
            v5,
            clean,
            expiry,
            will,
        } => {
            let protocol = if v5 { Protocol::V5 } else { Protocol::V311 };
            let mut c = Client {
                io: connect_to(broker, 41000 + step as u16),
                protocol,
                buf: BytesMut::new(),
                next_id: 0,
                unacked: HashMap::new(),
                connected: true,
            };
            let mut properties = Properties::default();
            if v5 && expiry > 0 {
                properties.session_expiry_interval = Some(expiry);
            }
            let will = will.then(|| Will {
                topic: "a/will".into(),
                payload: Bytes::from_static(b"will"),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties {
                    will_delay_interval: v5.then_some(1),
                    ..Default::default()
                },
            });
            c.send(&Packet::Connect(Connect {
                protocol,
                clean_start: clean,
                keep_alive: 0,
                client_id: IDS[id].into(),
                will,
                properties,
                ..Default::default()
            }))
            .await;
            slots[slot] = Some(c);
        }
        &Op::Subscribe { slot, filter, qos } => {
            if let Some(c) = slots[slot].as_mut() {
                let id = c.pkid();
                let qos = QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce);
                c.send(&Packet::Subscribe(Subscribe {
                    packet_id: id,
                    properties: Properties::default(),
                    filters: vec![(
                        FILTERS[filter].into(),
                        SubscriptionOptions {
                            qos,
                            ..Default::default()
                        },
                    )],
                }))
                .await;
            }
        }
        &Op::Unsubscribe { slot, filter } => {
            if let Some(c) = slots[slot].as_mut() {
                let id = c.pkid();
                c.send(&Packet::Unsubscribe(Unsubscribe {
                    packet_id: id,
                    properties: Properties::default(),
                    filters: vec![FILTERS[filter].into()],
                }))
                .await;
            }
        }
        &Op::Publish {
            slot,
            topic,
            qos,
            retain,
        } => {
            if let Some(c) = slots[slot].as_mut() {
                *marker += 1;
                let qos = QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce);
                let id = if qos == QoS::AtMostOnce { 0 } else { c.pkid() };
                if qos != QoS::AtMostOnce {
                    c.unacked.insert(id, *marker);
                }
                let mut payload = b"m".to_vec();
                payload.extend_from_slice(&marker.to_be_bytes());
                c.send(&Packet::Publish(Publish {
                    dup: false,
                    qos,
                    retain,
                    topic: TOPICS[topic].into(),
                    packet_id: id,
                    properties: Properties::default(),
                    payload: payload.into(),
                }))
                .await;
            }
        }
        Op::Raw { slot, bytes } => {
            if let Some(c) = slots[*slot].as_mut() {
                let _ = c.io.write_all(bytes).await;
            }
        }
        &Op::Disconnect { slot, with_will } => {
            if let Some(mut c) = slots[slot].take() {
                let reason = if with_will && c.protocol == Protocol::V5 {
                    ReasonCode::DISCONNECT_WITH_WILL
                } else {
                    ReasonCode::NORMAL_DISCONNECTION
                };
                c.send(&Packet::Disconnect(Disconnect {
                    reason,
                    properties: Properties::default(),
                }))
                .await;
            }
        }
        &Op::Drop { slot } => {
            slots[slot] = None;
        }
        Op::Pump => tokio::time::sleep(Duration::from_millis(5)).await,
    }
}
