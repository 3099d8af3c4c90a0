//! The session rules where the broker used to get them wrong: takeovers of
//! clean sessions, wills on takeover, wills of sessions ended by a Clean
//! Start reconnect, and takeover races (MQTT 5.0 §3.1.2.4–5, §3.1.3.2.2,
//! §3.1.4; 3.1.1 §3.1.2.4, MQTT-3.1.2-6). crates/broker/src/rules.rs has the
//! same rules as unit tests without sockets.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;

fn with_will(mut c: Connect, topic: &str, payload: &[u8], delay: Option<u32>) -> Connect {
    c.will = Some(Will {
        topic: topic.into(),
        payload: payload.to_vec(),
        qos: 1,
        props: Props {
            will_delay_interval: delay,
            ..Props::default()
        },
        ..Will::default()
    });
    c
}

/// A 3.1.1 Clean Session = 0 CONNECT, or a 5.0 one with a session expiry.
fn persistent(level: u8, id: &str) -> Connect {
    let mut c = if level == V5 {
        Connect::v5(id)
    } else {
        Connect::v3(id)
    };
    c.clean_start = false;
    if level == V5 {
        c.props.session_expiry_interval = Some(300);
    }
    c
}

/// A 3.1.1 Clean Session = 1 CONNECT, or a 5.0 one with expiry 0.
fn clean(level: u8, id: &str) -> Connect {
    if level == V5 {
        Connect::v5(id)
    } else {
        Connect::v3(id)
    }
}

fn watcher(b: &Broker, topic: &str) -> Client {
    let mut w = b.v5(&format!("watch-{}", unique()));
    w.subscribe(topic, 1);
    w
}

/// Item 1 [MQTT-3.1.2-6]: a clean session lasts as long as its network
/// connection. A Clean Session = 0 reconnect that takes it over gets
/// Session Present = 0 and none of the old, meant-to-be-discarded
/// subscriptions.
fn clean_session_taken_over_by_persistent_reconnect_is_not_resumed(level: u8) {
    let b = Broker::start();
    let id = format!("clean-then-persistent-{level}");
    let topic = format!("cleanover/{level}");
    let mut old = b.connect_ok(clean(level, &id));
    old.subscribe(&topic, 1);
    let (mut new, ack) = b.connect(persistent(level, &id));
    assert_eq!(ack.code, 0);
    assert!(
        !ack.session_present,
        "the clean session ended with its connection"
    );
    let _ = old.expect_closed();
    publish_once(b.port, &topic, b"old subscription", 1, false);
    new.expect_nothing(QUIET);
}

#[test]
fn v311_clean_session_taken_over_by_persistent_reconnect_is_not_resumed() {
    clean_session_taken_over_by_persistent_reconnect_is_not_resumed(V3);
}

#[test]
fn v5_clean_session_taken_over_by_persistent_reconnect_is_not_resumed() {
    clean_session_taken_over_by_persistent_reconnect_is_not_resumed(V5);
}

/// Item 2 (§3.1.4, §3.1.2.5): a takeover that resumes the session (both
/// connections persistent) does not publish the old connection's will.
fn resuming_takeover_does_not_publish_the_old_will(level: u8) {
    if mosquitto_deviates("publishing the will on a resuming takeover") {
        return;
    }
    let b = Broker::start();
    let topic = format!("takeover/will/resume/{level}");
    let id = format!("resume-will-{level}");
    let mut w = watcher(&b, &topic);
    let mut old = b.connect_ok(with_will(persistent(level, &id), &topic, b"gone", None));
    let (_new, ack) = b.connect(persistent(level, &id));
    assert!(ack.session_present);
    let _ = old.expect_closed();
    w.expect_nothing(QUIET);
}

#[test]
fn v311_resuming_takeover_does_not_publish_the_old_will() {
    resuming_takeover_does_not_publish_the_old_will(V3);
}

#[test]
fn v5_resuming_takeover_does_not_publish_the_old_will() {
    resuming_takeover_does_not_publish_the_old_will(V5);
}

/// Item 2: when either side is clean the old session ends with the
/// takeover, and the old connection's will is published at once, even
/// with a will delay.
fn ending_takeover_publishes_the_old_will_at_once(level: u8, old_clean: bool) {
    let b = Broker::start();
    let topic = format!("takeover/will/end/{level}/{old_clean}");
    let id = format!("end-will-{level}-{old_clean}");
    let mut w = watcher(&b, &topic);
    let (first, second) = if old_clean {
        (clean(level, &id), persistent(level, &id))
    } else {
        (persistent(level, &id), clean(level, &id))
    };
    let delay = (level == V5).then_some(30);
    let mut old = b.connect_ok(with_will(first, &topic, b"ended", delay));
    let start = Instant::now();
    let (_new, ack) = b.connect(second);
    assert!(!ack.session_present);
    let _ = old.expect_closed();
    assert_eq!(w.recv_publish_ack().payload, b"ended");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "published when the session ended, not after the 30 s delay"
    );
}

#[test]
fn v311_takeover_of_a_persistent_session_by_a_clean_one_publishes_the_will() {
    ending_takeover_publishes_the_old_will_at_once(V3, false);
}

#[test]
fn v311_takeover_of_a_clean_session_publishes_the_will() {
    ending_takeover_publishes_the_old_will_at_once(V3, true);
}

#[test]
fn v5_takeover_with_clean_start_publishes_the_will_despite_its_delay() {
    ending_takeover_publishes_the_old_will_at_once(V5, false);
}

#[test]
fn v5_takeover_of_a_clean_session_publishes_the_will_despite_its_delay() {
    ending_takeover_publishes_the_old_will_at_once(V5, true);
}

/// Item 3 (§3.1.3.2.2): a will waiting for its delay is published when
/// the session ends, and a Clean Start reconnect ends it: at once, not
/// when the delay would have passed.
#[test]
fn delayed_will_is_published_at_once_when_a_clean_start_reconnect_ends_the_session() {
    let b = Broker::start();
    let topic = "will/cleanstart";
    let mut w = watcher(&b, topic);
    let c = b.connect_ok(with_will(
        persistent(V5, "delayed-will"),
        topic,
        b"bye",
        Some(30),
    ));
    c.drop_connection();
    w.expect_nothing(QUIET);
    let start = Instant::now();
    let _again = b.connect_ok(Connect::v5("delayed-will"));
    assert_eq!(w.recv_publish_ack().payload, b"bye");
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// Item 3, the other way: a resuming reconnect within the delay discards it.
#[test]
fn delayed_will_is_discarded_when_a_reconnect_resumes_the_session() {
    let b = Broker::start();
    let topic = "will/resumed";
    let mut w = watcher(&b, topic);
    let c = b.connect_ok(with_will(
        persistent(V5, "resumed-will"),
        topic,
        b"bye",
        Some(2),
    ));
    c.drop_connection();
    sleep_ms(200);
    let _again = b.connect_ok(persistent(V5, "resumed-will"));
    w.expect_nothing(Duration::from_millis(3000));
}

/// Item 8: 100 concurrent reconnects of one client id, each subscribing
/// and publishing QoS 1. Afterwards exactly one connection is live, the
/// session holds exactly the subscriptions that were acknowledged (no
/// lost, no duplicated subscription: one message per publish reaches it),
/// and every acknowledged publish was delivered to an independent
/// subscriber.
fn concurrent_reconnects_keep_one_session_consistent(level: u8) {
    let b = Broker::start();
    let port = b.port;
    let id = format!("racer-{level}");
    let mut watch = b.v5(&format!("race-watch-{level}"));
    watch.subscribe(&format!("race/{level}/pub/#"), 1);
    let rounds = 100;
    let barrier = Arc::new(Barrier::new(rounds));
    let acked_publishes = Arc::new(AtomicUsize::new(0));
    let acked_subscriptions = Arc::new(parking_lot_free::Set::default());
    let still_open = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for i in 0..rounds {
        let (barrier, acked_publishes, acked_subscriptions, id, still_open) = (
            barrier.clone(),
            acked_publishes.clone(),
            acked_subscriptions.clone(),
            id.clone(),
            still_open.clone(),
        );
        threads.push(std::thread::spawn(move || {
            barrier.wait();
            let (mut c, ack) = Client::connect(port, persistent(level, &id));
            if ack.code != 0 {
                return;
            }
            // Anything may be cut short by the next takeover: count only
            // what the broker acknowledged.
            let filter = format!("race/{level}/sub/{i}");
            let pkid = c.pkid();
            c.send(&Packet::Subscribe {
                pkid,
                props: Props::default(),
                filters: vec![(filter.clone(), 1)],
            });
            let mut pub_pkid = None;
            loop {
                match c.try_recv(Duration::from_secs(3)) {
                    Recv::Packet(Packet::SubAck { codes, .. }) => {
                        if codes.first().is_some_and(|&q| q < 0x80) {
                            acked_subscriptions.insert(i);
                        }
                        let p = c.pkid();
                        pub_pkid = Some(p);
                        c.send(&Packet::Publish(Publish {
                            pkid: p,
                            ..Publish::new(&format!("race/{level}/pub/{i}"), b"x", 1)
                        }));
                    }
                    Recv::Packet(Packet::PubAck(a)) if Some(a.pkid) == pub_pkid => {
                        acked_publishes.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    Recv::Packet(_) => {}
                    _ => break,
                }
            }
            // Every connection but the last one to attach is taken over.
            let deadline = Instant::now() + Duration::from_secs(6);
            loop {
                match c.try_recv(deadline.saturating_duration_since(Instant::now())) {
                    Recv::Closed | Recv::Malformed(_) => return,
                    Recv::Timeout => break,
                    Recv::Packet(_) => {}
                }
            }
            still_open.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(2)); // keep it open for the count
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        still_open.load(Ordering::SeqCst),
        1,
        "exactly one of the racing connections is left attached"
    );
    // Every acknowledged publish reached the watcher (QoS 1: at least once).
    let acked = acked_publishes.load(Ordering::SeqCst);
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.len() < acked && Instant::now() < deadline {
        if let Recv::Packet(Packet::Publish(p)) = watch.try_recv(Duration::from_millis(500)) {
            watch.ack(&p);
            seen.insert(p.topic);
        }
    }
    assert!(
        seen.len() >= acked,
        "{acked} publishes acknowledged, {} delivered",
        seen.len()
    );
    // One final connection resumes the session: it is the only live one,
    // and each acknowledged subscription is there exactly once.
    let (mut last, ack) = Client::connect(port, persistent(level, &id));
    assert_eq!(ack.code, 0);
    assert!(ack.session_present);
    let subscribed = acked_subscriptions.items();
    assert!(
        !subscribed.is_empty(),
        "no SUBSCRIBE survived a takeover at all"
    );
    let mut p = b.v5(&format!("race-pub-{level}"));
    for i in &subscribed {
        p.publish(&format!("race/{level}/sub/{i}"), b"check", 1, false);
    }
    let mut got = Vec::new();
    loop {
        match last.try_recv(Duration::from_millis(1500)) {
            Recv::Packet(Packet::Publish(m)) => {
                last.ack(&m);
                if m.payload == b"check" {
                    got.push(m.topic);
                }
            }
            Recv::Packet(_) => {}
            _ => break,
        }
    }
    got.sort();
    let mut want: Vec<String> = subscribed
        .iter()
        .map(|i| format!("race/{level}/sub/{i}"))
        .collect();
    want.sort();
    assert_eq!(got, want, "each acknowledged subscription exactly once");
    last.ping();
}

#[test]
fn v311_concurrent_reconnects_keep_one_session_consistent() {
    concurrent_reconnects_keep_one_session_consistent(V3);
}

#[test]
fn v5_concurrent_reconnects_keep_one_session_consistent() {
    concurrent_reconnects_keep_one_session_consistent(V5);
}

/// A set shared between test threads (std only).
mod parking_lot_free {
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Set(Mutex<Vec<usize>>);

    impl Set {
        pub fn insert(&self, i: usize) {
            self.0.lock().unwrap().push(i);
        }
        pub fn items(&self) -> Vec<usize> {
            let mut v = self.0.lock().unwrap().clone();
            v.sort_unstable();
            v.dedup();
            v
        }
    }
}
