//! Persistence across crashes (DESIGN §4: "every acknowledged QoS 1/2
//! message survives a crash when persistence is on"). The broker is killed
//! with SIGKILL, so nothing can be flushed on the way out. ledgermq-only
//! (the mosquitto run has persistence off).

mod common;

use common::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn persistent_broker() -> Option<Broker> {
    if skip_unless_ledgermq("persistence") {
        return None;
    }
    Broker::with(&[("persistence", "true")])
}

fn session(id: &str, level: u8) -> Connect {
    if level == V3 {
        Connect {
            clean_start: false,
            ..Connect::v3(id)
        }
    } else {
        Connect {
            clean_start: false,
            props: Props {
                session_expiry_interval: Some(3600),
                ..Props::default()
            },
            ..Connect::v5(id)
        }
    }
}

/// Publishes numbered QoS 1 messages until the connection dies; records
/// every number whose PUBACK arrived.
fn publish_until_killed(
    port: u16,
    topic: &str,
    acked: Arc<Mutex<Vec<u32>>>,
    count: Arc<AtomicUsize>,
) {
    let mut c = Client::connect_ok(port, Connect::v5(&format!("crash-pub-{}", unique())));
    for n in 0u32..100_000 {
        let pkid = (n % 60000) as u16 + 1;
        c.send(&Packet::Publish(Publish {
            pkid,
            ..Publish::new(topic, &n.to_be_bytes(), 1)
        }));
        loop {
            match c.try_recv(Duration::from_secs(5)) {
                Recv::Packet(Packet::PubAck(a)) if a.pkid == pkid => {
                    assert!(a.reason < 0x80, "PUBACK {:#04x}", a.reason);
                    acked.lock().unwrap().push(n);
                    count.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Recv::Packet(_) => {}
                _ => return,
            }
        }
    }
}

fn crash_mid_stream_loses_no_acked_message(level: u8) {
    let Some(mut b) = persistent_broker() else {
        return;
    };
    let id = format!("crash-sub-{level}");
    let mut sub = b.connect_ok(session(&id, level));
    assert_eq!(sub.subscribe("crash/t", 1), 1);
    sub.drop_connection();

    let acked = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (port, a2, c2) = (b.port, acked.clone(), count.clone());
    let publisher = std::thread::spawn(move || publish_until_killed(port, "crash/t", a2, c2));
    let deadline = Instant::now() + Duration::from_secs(30);
    while count.load(Ordering::SeqCst) < 200 {
        assert!(
            Instant::now() < deadline,
            "publisher stalled at {}",
            count.load(Ordering::SeqCst)
        );
        sleep_ms(5);
    }
    b.kill9();
    publisher.join().unwrap();
    let acked: BTreeSet<u32> = acked.lock().unwrap().iter().copied().collect();
    assert!(acked.len() >= 200);

    b.restart();
    let (mut sub, ack) = b.connect(session(&id, level));
    assert_eq!(ack.code, 0);
    assert!(ack.session_present, "session lost in the crash");
    let mut got = BTreeSet::new();
    loop {
        match sub.try_recv(Duration::from_secs(3)) {
            Recv::Packet(Packet::Publish(p)) => {
                sub.ack(&p);
                got.insert(u32::from_be_bytes(p.payload[..4].try_into().unwrap()));
            }
            Recv::Packet(_) => {}
            Recv::Timeout => break,
            other => panic!("subscriber after restart: {other:?}"),
        }
    }
    let lost: Vec<u32> = acked.difference(&got).copied().collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

#[test]
fn acknowledged_qos1_messages_survive_kill9_for_v5_session() {
    crash_mid_stream_loses_no_acked_message(V5);
}

#[test]
fn acknowledged_qos1_messages_survive_kill9_for_v311_session() {
    crash_mid_stream_loses_no_acked_message(V3);
}

#[test]
fn retained_messages_survive_kill9() {
    let Some(mut b) = persistent_broker() else {
        return;
    };
    let mut p = b.v5("ret-crash-pub");
    p.publish("keep/a", b"A", 1, true);
    p.publish("keep/b", b"B", 1, true);
    p.publish("keep/b", b"", 1, true); // deleted before the crash
    drop(p);
    b.kill9();
    b.restart();
    let mut c = b.v5("ret-crash-sub");
    c.subscribe("keep/#", 1);
    let m = c.recv_publish_ack();
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice(), m.retain),
        ("keep/a", &b"A"[..], true)
    );
    c.expect_nothing(QUIET);
}

#[test]
fn subscriptions_survive_kill9() {
    let Some(mut b) = persistent_broker() else {
        return;
    };
    let mut sub = b.connect_ok(session("subs-crash", V5));
    sub.subscribe("subs/crash", 1);
    sub.disconnect();
    b.kill9();
    b.restart();
    publish_once(b.port, "subs/crash", b"after restart", 1, false);
    let (mut sub, ack) = b.connect(session("subs-crash", V5));
    assert!(ack.session_present);
    assert_eq!(sub.recv_publish_ack().payload, b"after restart");
}

#[test]
fn unacknowledged_outgoing_message_is_redelivered_after_kill9() {
    let Some(mut b) = persistent_broker() else {
        return;
    };
    let mut sub = b.connect_ok(session("inflight-crash", V5));
    sub.subscribe("inflight/t", 1);
    publish_once(b.port, "inflight/t", b"unacked", 1, false);
    let first = sub.recv_publish(); // never acknowledged
    assert_eq!(first.payload, b"unacked");
    b.kill9();
    b.restart();
    let mut sub = b.connect_ok(session("inflight-crash", V5));
    let again = sub.recv_publish_ack();
    assert_eq!(again.payload, b"unacked");
}

#[test]
fn graceful_shutdown_keeps_state_too() {
    let Some(mut b) = persistent_broker() else {
        return;
    };
    publish_once(b.port, "graceful/t", b"G", 1, true);
    let st = b.terminate();
    assert!(st.success(), "SIGTERM exit status {st}");
    b.restart();
    let mut c = b.v5("graceful-sub");
    c.subscribe("graceful/t", 1);
    assert_eq!(c.recv_publish_ack().payload, b"G");
}

#[test]
fn persistence_off_forgets_state_on_restart() {
    if skip_unless_ledgermq("--persistence false") {
        return;
    }
    let mut b = Broker::with(&[("persistence", "false")]).unwrap();
    publish_once(b.port, "volatile/t", b"V", 1, true);
    b.restart();
    let mut c = b.v5("volatile-sub");
    c.subscribe("volatile/t", 1);
    c.expect_nothing(QUIET);
}
