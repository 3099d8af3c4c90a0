//! Bounded queues for slow and offline subscribers: what is dropped, what
//! is never dropped, and how publishers are held back (ledgermq's overload
//! policy, docs/configuration.md `max_queued_messages`).

mod common;

use std::time::{Duration, Instant};

use common::*;

fn persistent(id: &str) -> Connect {
    Connect {
        clean_start: false,
        props: Props {
            session_expiry_interval: Some(300),
            ..Props::default()
        },
        ..Connect::v5(id)
    }
}

fn publish_with_id(c: &mut Client, topic: &str, payload: &[u8], qos: u8, pkid: u16) {
    c.send(&Packet::Publish(Publish {
        pkid: if qos == 0 { 0 } else { pkid },
        ..Publish::new(topic, payload, qos)
    }));
}

/// Reads `$SYS/broker/messages/dropped` until it equals `want` or the wait ends.
fn wait_for_dropped(b: &Broker, want: u64) -> u64 {
    let mut sys = b.v5(&format!("sys-{}", unique()));
    sys.subscribe("$SYS/broker/messages/dropped", 0);
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut last = u64::MAX;
    while Instant::now() < deadline {
        if let Recv::Packet(Packet::Publish(p)) = sys.try_recv(Duration::from_secs(2)) {
            last = String::from_utf8_lossy(&p.payload)
                .parse()
                .unwrap_or(u64::MAX);
            if last == want {
                break;
            }
        }
    }
    last
}

/// An offline session's full queue drops QoS 0 messages first to make
/// room for QoS 1 ones, then refuses further messages; every drop is
/// counted in `$SYS/broker/messages/dropped`.
#[test]
fn offline_queue_overflow_drops_qos0_first_and_counts_drops() {
    let Some(b) = Broker::with(&[("max-queued-messages", "5"), ("sys-interval", "1")]) else {
        return;
    };
    let sub = b.connect_ok(persistent("ovf-sub"));
    let mut sub = sub;
    sub.subscribe("ovf/t", 1);
    sub.disconnect();

    let mut p = b.v5("ovf-pub");
    for i in 0..3u8 {
        publish_with_id(&mut p, "ovf/t", &[b'a', i], 0, 0);
    }
    for i in 0..5u8 {
        p.publish_packet(Publish::new("ovf/t", &[b'b', i], 1));
    }
    // Queue is now five QoS 1 messages: one more of either QoS is dropped.
    publish_with_id(&mut p, "ovf/t", b"c0", 0, 0);
    p.publish_packet(Publish::new("ovf/t", b"c1", 1));
    p.ping();

    let mut sub = b.connect_ok(persistent("ovf-sub"));
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = sub.recv_publish();
        sub.ack(&m);
        got.push(m.payload.clone());
    }
    sub.expect_nothing(QUIET);
    let want: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'b', i]).collect();
    assert_eq!(got, want, "the QoS 1 messages survive, in order");
    // 3 QoS 0 evicted + 1 QoS 0 and 1 QoS 1 refused.
    assert_eq!(wait_for_dropped(&b, 5), 5);
}

/// A connected subscriber that is stuck (takes nothing from its socket nor
/// acknowledges anything) never holds a publisher back for long: its queue
/// takes QoS 1 messages up to `max_queued_messages`, then it is disconnected
/// with 0x97 Quota exceeded; its persistent session keeps what was queued,
/// and the publisher gets every PUBACK.
#[test]
fn slow_connected_subscriber_is_disconnected_with_0x97_and_keeps_its_queue() {
    if skip_unless_ledgermq("disconnecting a slow subscriber with 0x97") {
        return;
    }
    let Some(b) = Broker::with(&[("max-queued-messages", "4")]) else {
        return;
    };
    let mut sub = b.connect_ok(Connect {
        props: Props {
            receive_maximum: Some(1),
            session_expiry_interval: Some(300),
            ..Props::default()
        },
        clean_start: false,
        ..Connect::v5("slow-sub")
    });
    sub.subscribe("slow/t", 1);

    let mut p = b.v5("slow-pub");
    let total = 30u16;
    for i in 1..=total {
        publish_with_id(&mut p, "slow/t", &i.to_be_bytes(), 1, i);
    }
    // The publisher is never held back: every PUBLISH is acknowledged.
    for _ in 0..total {
        match p.try_recv(WAIT) {
            Recv::Packet(Packet::PubAck(_)) => {}
            other => panic!("expected a PUBACK, got {other:?}"),
        }
    }
    // One in flight (never acknowledged by the subscriber), four queued;
    // the next one waits over the limit until the subscriber counts as
    // stuck (100 ms without progress), then DISCONNECT 0x97.
    let first = sub.recv_publish();
    assert_eq!(first.payload, 1u16.to_be_bytes());
    sub.expect_disconnect(&[0x97]);

    let mut sub = b.connect_ok(Connect {
        clean_start: false,
        props: Props {
            session_expiry_interval: Some(300),
            ..Props::default()
        },
        ..Connect::v5("slow-sub")
    });
    let mut got = Vec::new();
    while let Recv::Packet(Packet::Publish(m)) = sub.try_recv(QUIET) {
        sub.ack(&m);
        got.push(u16::from_be_bytes([m.payload[0], m.payload[1]]));
    }
    // The in-flight message and the four queued survive, and the one that
    // waited over the limit if the subscriber had taken something within
    // the last 100 ms when its queue filled (then it counted as stuck only
    // after the wait).
    assert!(
        got == [1, 2, 3, 4, 5] || got == [1, 2, 3, 4, 5, 6],
        "kept for the next connection: {got:?}"
    );
}

/// A connected subscriber that keeps taking messages, only more slowly
/// than they are published, is never dropped from: the publisher is held
/// back (its PUBACKs slow down to the subscriber's pace) and every
/// acknowledged QoS 1 message arrives, in order.
#[test]
fn slow_but_live_subscriber_holds_back_the_publisher_and_loses_nothing() {
    if skip_unless_ledgermq("backpressure from a slow subscriber") {
        return;
    }
    let Some(b) = Broker::with(&[("max-queued-messages", "4")]) else {
        return;
    };
    let mut sub = b.connect_ok(Connect {
        props: Props {
            receive_maximum: Some(1),
            ..Props::default()
        },
        ..Connect::v5("live-slow-sub")
    });
    sub.subscribe("live/t", 1);
    let total = 40u16;
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..total {
            let m = sub.recv_publish();
            std::thread::sleep(Duration::from_millis(15));
            sub.ack(&m);
            got.push(u16::from_be_bytes([m.payload[0], m.payload[1]]));
        }
        sub.ping();
        got
    });
    let mut p = b.v5("live-slow-pub");
    let start = Instant::now();
    for i in 1..=total {
        publish_with_id(&mut p, "live/t", &i.to_be_bytes(), 1, i);
    }
    for _ in 0..total {
        match p.try_recv(Duration::from_secs(10)) {
            Recv::Packet(Packet::PubAck(a)) => assert!(a.reason < 0x80),
            other => panic!("expected a PUBACK, got {other:?}"),
        }
    }
    let held = start.elapsed();
    let got = reader.join().unwrap();
    assert_eq!(got, (1..=total).collect::<Vec<_>>());
    // 40 messages at the subscriber's 15 ms each, less what the queue and
    // the window absorbed: the publisher waited for a good part of that.
    assert!(
        held > Duration::from_millis(200),
        "publisher not held back: {held:?}"
    );
}
