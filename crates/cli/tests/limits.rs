//! Every limit a client can run into, and what it sees when it does
//! (docs/configuration.md "Limits"): topic depth and length, sessions,
//! retained messages, connections per address, authentication workers,
//! Receive Maximum, the client's Maximum Packet Size, `$SYS`.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn deep(levels: usize) -> String {
    vec!["a"; levels].join("/")
}

fn widest() -> Option<Broker> {
    Broker::with(&[("max-topic-levels", "65536"), ("max-topic-length", "65535")])
}

/// The remote kill switch of the review: ~6,000 levels, SUBSCRIBE then
/// UNSUBSCRIBE, then a clean disconnect. With the default limit the filter
/// is refused (0x8F); the broker keeps serving either way.
#[test]
fn deep_filter_over_the_default_limit_gets_0x8f_and_0x80() {
    if skip_unless_ledgermq("max_topic_levels") {
        return;
    }
    let b = Broker::start();
    let filter = deep(6000);
    let mut v5 = b.v5("deep-v5");
    assert_eq!(v5.subscribe(&filter, 1), 0x8F);
    assert_eq!(v5.unsubscribe(&[&filter]), [0x8F]);
    let mut v3 = b.v3("deep-v3");
    assert_eq!(v3.subscribe(&filter, 1), 0x80);
    // 128 levels are fine, 129 are not.
    assert_eq!(v5.subscribe(&deep(128), 1), 1);
    assert_eq!(v5.subscribe(&deep(129), 1), 0x8F);
    assert_eq!(v5.subscribe(&format!("$share/g/{}", deep(129)), 1), 0x8F);
    v5.disconnect();
    v3.disconnect();
    b.v5("after").ping();
}

#[test]
fn topic_name_over_the_limit_is_disconnect_0x90_or_a_closed_connection() {
    if skip_unless_ledgermq("max_topic_levels") {
        return;
    }
    let b = Broker::with(&[("max-topic-length", "100")]).unwrap();
    let mut v5 = b.v5("long-name-v5");
    v5.send(&Packet::Publish(Publish::new(&deep(129), b"x", 0)));
    v5.expect_disconnect(&[0x90]);
    let mut v5 = b.v5("long-name-v5b");
    v5.send(&Packet::Publish(Publish::new(&"x".repeat(101), b"x", 0)));
    v5.expect_disconnect(&[0x90]);
    let mut v3 = b.v3("long-name-v3");
    v3.send(&Packet::Publish(Publish::new(&deep(129), b"x", 1)));
    let seen = v3.expect_closed();
    assert!(
        seen.is_empty(),
        "3.1.1: closed without an answer, got {seen:?}"
    );
    b.v5("after").ping();
}

#[test]
fn will_topic_over_the_limit_is_connack_0x90_or_a_closed_connection() {
    if skip_unless_ledgermq("max_topic_levels") {
        return;
    }
    let b = Broker::start();
    let will = Will {
        topic: deep(200),
        payload: b"w".to_vec(),
        ..Will::default()
    };
    let (_c, ack) = b.connect(Connect {
        will: Some(will.clone()),
        ..Connect::v5("deep-will")
    });
    assert_eq!(ack.code, 0x90);
    let mut c = Client::tcp(b.port, V3);
    c.send(&Packet::Connect(Connect {
        will: Some(will),
        ..Connect::v3("deep-will-3")
    }));
    let seen = c.expect_closed();
    assert!(
        seen.is_empty(),
        "3.1.1: no CONNACK for a protocol violation, got {seen:?}"
    );
}

/// With the limits raised to the protocol's maximum, a 32,000-level filter
/// and topic work end to end: subscribe, deep publish matching a deep
/// subscription and a `+/…/#` one, deep retained message found by `#` and
/// cleared, unsubscribe, a session expiry sweep over a deep subscription,
/// and a graceful shutdown that drops it all.
#[test]
fn a_32000_level_filter_and_topic_work_without_a_crash() {
    if skip_unless_ledgermq("max_topic_levels") {
        return;
    }
    let mut b = widest().unwrap();
    let topic = deep(32_000);
    let wild = format!("{}/#", vec!["+"; 31_999].join("/"));
    let mut sub = b.v5("deep-sub");
    assert_eq!(sub.subscribe(&topic, 1), 1);
    assert_eq!(sub.subscribe(&wild, 1), 1);
    let mut p = b.v5("deep-pub");
    assert_eq!(p.publish(&topic, b"deep", 1, true), 0);
    let m = sub.recv_publish_ack();
    assert_eq!(
        (m.topic.len(), m.payload.as_slice()),
        (topic.len(), &b"deep"[..])
    );
    let mut all = b.v5("hash-sub");
    all.subscribe("#", 1);
    assert_eq!(
        all.recv_publish_ack().payload,
        b"deep",
        "# finds the deep retained message"
    );
    assert_eq!(
        p.publish(&topic, b"", 1, true),
        0,
        "clearing the deep retained message"
    );
    assert_eq!(sub.unsubscribe(&[&topic, &wild]), [0, 0]);
    // A session that expires with a deep subscription.
    let mut short = b.connect_ok(Connect {
        clean_start: false,
        props: Props {
            session_expiry_interval: Some(1),
            ..Props::default()
        },
        ..Connect::v5("deep-expiring")
    });
    short.subscribe(&topic, 0);
    short.drop_connection();
    // A clean session that disconnects with one.
    let mut clean = b.v5("deep-clean");
    clean.subscribe(&wild, 0);
    clean.disconnect();
    sleep_ms(2500);
    b.v5("after-expiry").ping();
    let status = b.terminate();
    assert!(status.success(), "graceful shutdown: {status:?}");
}

/// Session limit: a CONNECT that would create one more session is refused
/// with 0x97 (3.1.1: 0x03 Server unavailable); resuming one is not.
#[test]
fn the_session_limit_refuses_new_client_ids_only() {
    if skip_unless_ledgermq("max_sessions") {
        return;
    }
    let b = Broker::with(&[("max-sessions", "2")]).unwrap();
    let _a = b.v5("s1");
    let _c = b.connect_ok(Connect {
        clean_start: false,
        ..Connect::v3("s2")
    });
    let (_x, ack) = b.connect(Connect::v5("s3"));
    assert_eq!(ack.code, 0x97);
    let (_y, ack) = b.connect(Connect::v3("s4"));
    assert_eq!(ack.code, 3);
    let (_z, ack) = b.connect(Connect {
        clean_start: false,
        ..Connect::v3("s2")
    });
    assert_eq!(
        ack.code, 0,
        "taking over an existing session is no new session"
    );
}

/// Retained limits: a retained QoS 1 PUBLISH to a new topic beyond
/// `max_retained_messages` gets 0x97 from an MQTT 5 client and is not
/// delivered; a QoS 0 one is delivered but not retained; replacing an
/// existing retained topic still works.
#[test]
fn the_retained_limit_refuses_new_topics_and_says_so_in_v5() {
    if skip_unless_ledgermq("max_retained_messages") {
        return;
    }
    let b = Broker::with(&[("max-retained-messages", "2"), ("sys-interval", "0")]).unwrap();
    let mut live = b.v5("retained-live");
    live.subscribe("r/#", 1);
    let mut p = b.v5("retained-pub");
    assert_eq!(p.publish("r/1", b"1", 1, true), 0);
    assert_eq!(p.publish("r/2", b"2", 1, true), 0);
    assert_eq!(p.publish("r/3", b"3", 1, true), 0x97);
    assert_eq!(p.publish("r/1", b"1b", 1, true), 0, "replacing is fine");
    p.publish("r/4", b"4", 0, true);
    let mut got: Vec<Vec<u8>> = Vec::new();
    while let Recv::Packet(Packet::Publish(m)) = live.try_recv(QUIET) {
        live.ack(&m);
        got.push(m.payload);
    }
    assert_eq!(
        got,
        [b"1".to_vec(), b"2".to_vec(), b"1b".to_vec(), b"4".to_vec()]
    );
    let mut late = b.v5("retained-late");
    late.subscribe("r/#", 1);
    let mut retained: Vec<String> = Vec::new();
    while let Recv::Packet(Packet::Publish(m)) = late.try_recv(QUIET) {
        late.ack(&m);
        retained.push(m.topic);
    }
    retained.sort();
    assert_eq!(retained, ["r/1", "r/2"]);
    // The byte limit, likewise.
    let b = Broker::with(&[("max-retained-bytes", "600"), ("sys-interval", "0")]).unwrap();
    let mut p = b.v5("bytes-pub");
    // No subscriber: 0x10 No matching subscribers, a success.
    assert_eq!(p.publish("b/1", &[7; 200], 1, true), 0x10);
    assert_eq!(p.publish("b/2", &[7; 400], 1, true), 0x97);
}

/// Message expiry is honoured for retained messages: they leave the store.
#[test]
fn expired_retained_messages_are_removed() {
    let b = Broker::start();
    let mut p = b.v5("expiring-pub");
    p.publish_packet(Publish {
        retain: true,
        props: Props {
            message_expiry_interval: Some(1),
            ..Props::default()
        },
        ..Publish::new("exp/t", b"soon gone", 1)
    });
    let mut early = b.v5("exp-early");
    early.subscribe("exp/t", 1);
    assert_eq!(early.recv_publish_ack().payload, b"soon gone");
    sleep_ms(2200);
    let mut late = b.v5("exp-late");
    late.subscribe("exp/t", 1);
    late.expect_nothing(QUIET);
}

/// `max_connections_per_address`: the connection over the limit is closed
/// at once; others from the same address keep working.
#[test]
fn connections_over_the_per_address_limit_are_closed() {
    if skip_unless_ledgermq("max_connections_per_address") {
        return;
    }
    let b = Broker::with(&[("max-connections-per-address", "2")]).unwrap();
    let mut a = b.v5("addr-1");
    let _b2 = b.v5("addr-2");
    let mut third = Client::tcp(b.port, V5);
    let _ = third.expect_closed();
    a.ping();
    drop(_b2);
    sleep_ms(200);
    let _again = b.v5("addr-3");
}

/// MQTT 5: $SYS belongs to the broker; a client PUBLISH there gets 0x87
/// and reaches nobody. 3.1.1 (no negative acknowledgement): acknowledged
/// and dropped.
#[test]
fn publishing_to_sys_is_refused() {
    if mosquitto_deviates("refusing client PUBLISH to $SYS") {
        return;
    }
    let b = Broker::with(&[("sys-interval", "0")]).unwrap();
    let mut sys = b.v5("sys-watch");
    sys.subscribe("$SYS/fake/#", 1);
    let mut v5 = b.v5("sys-pub-5");
    assert_eq!(v5.publish("$SYS/fake/x", b"forged", 1, false), 0x87);
    let mut v3 = b.v3("sys-pub-3");
    assert_eq!(v3.publish("$SYS/fake/y", b"forged", 1, false), 0);
    v3.publish("$SYS/fake/z", b"forged", 0, false);
    v3.ping();
    sys.expect_nothing(QUIET);
    v5.ping();
}

/// Item 5: Receive Maximum is an MQTT 5 property. A 3.1.1 client with more
/// unreleased QoS 2 messages than the broker's receive_maximum is not
/// disconnected (an MQTT 5 client is, with 0x93).
#[test]
fn receive_maximum_applies_to_v5_clients_only() {
    if skip_unless_ledgermq("receive maximum for 3.1.1") {
        return;
    }
    let b = Broker::with(&[("receive-maximum", "5")]).unwrap();
    let mut v3 = b.v3("rm-v3");
    for id in 1..=12u16 {
        v3.send(&Packet::Publish(Publish {
            pkid: id,
            ..Publish::new("rm/t", b"x", 2)
        }));
    }
    for _ in 1..=12 {
        match v3.try_recv(WAIT) {
            Recv::Packet(Packet::PubRec(_)) => {}
            other => panic!("3.1.1: expected PUBREC, got {other:?}"),
        }
    }
    v3.ping();
    let mut v5 = b.v5("rm-v5");
    for id in 1..=6u16 {
        v5.send(&Packet::Publish(Publish {
            pkid: id,
            ..Publish::new("rm/t", b"x", 2)
        }));
    }
    v5.expect_disconnect(&[0x93]);
}

/// Item 6: a QoS 2 message whose PUBREC waits for the store counts once
/// against Receive Maximum, not twice: with receive_maximum 2, two QoS 2
/// PUBLISHes sent back to back by a persistent session are both accepted.
#[test]
fn a_qos2_message_awaiting_durability_counts_once_against_receive_maximum() {
    if skip_unless_ledgermq("receive maximum accounting") {
        return;
    }
    let b = Broker::with(&[("receive-maximum", "2"), ("persistence", "true")]).unwrap();
    let mut sub = b.connect_ok(Connect {
        clean_start: false,
        props: Props {
            session_expiry_interval: Some(60),
            ..Props::default()
        },
        ..Connect::v5("rm2-sub")
    });
    sub.subscribe("rm2/t", 2);
    let mut p = b.connect_ok(Connect {
        clean_start: false,
        props: Props {
            session_expiry_interval: Some(60),
            ..Props::default()
        },
        ..Connect::v5("rm2-pub")
    });
    for round in 0..20u16 {
        let ids = [round * 2 + 1, round * 2 + 2];
        for id in ids {
            p.send(&Packet::Publish(Publish {
                pkid: id,
                ..Publish::new("rm2/t", b"x", 2)
            }));
        }
        for _ in ids {
            match p.try_recv(WAIT) {
                Recv::Packet(Packet::PubRec(a)) => assert_eq!(a.reason, 0),
                other => panic!("round {round}: expected PUBREC, got {other:?}"),
            }
        }
        for id in ids {
            p.send(&Packet::PubRel(Ack::new(id)));
        }
        for _ in ids {
            match p.try_recv(WAIT) {
                Recv::Packet(Packet::PubComp(_)) => {}
                other => panic!("round {round}: expected PUBCOMP, got {other:?}"),
            }
        }
    }
}

/// Item 7: Maximum Packet Size is announced only when it limits something.
#[test]
fn maximum_packet_size_is_announced_only_below_the_protocol_maximum() {
    if skip_unless_ledgermq("announcing Maximum Packet Size") {
        return;
    }
    let b = Broker::start();
    let (_c, ack) = b.connect(Connect::v5("mps-default"));
    assert_eq!(ack.props.maximum_packet_size, Some(1024 * 1024));
    let b = Broker::with(&[("max-packet-size", "268435460")]).unwrap();
    let (_c, ack) = b.connect(Connect::v5("mps-max"));
    assert_eq!(ack.props.maximum_packet_size, None);
}

/// Item 4 [MQTT-3.1.2-25]: a DISCONNECT whose reason string would exceed
/// the client's Maximum Packet Size is sent without it.
#[test]
fn disconnect_drops_its_reason_string_to_fit_the_clients_maximum_packet_size() {
    if skip_unless_ledgermq("reason strings and the client's Maximum Packet Size") {
        return;
    }
    let b = Broker::start();
    let mut big = b.v5("mps-big");
    big.send(&Packet::Publish(Publish::new(&deep(200), b"x", 0)));
    let seen = big.expect_closed();
    let with_text = seen.iter().any(|p| {
        matches!(p, Packet::Disconnect { reason: 0x90, props } if props.reason_string.is_some())
    });
    assert!(with_text, "a roomy client gets the reason string: {seen:?}");

    let (mut small, _) = b.connect(Connect {
        props: Props {
            maximum_packet_size: Some(16),
            ..Props::default()
        },
        ..Connect::v5("mps-small")
    });
    small.send(&Packet::Publish(Publish::new(&deep(200), b"x", 0)));
    let seen = small.expect_closed();
    match seen.as_slice() {
        [Packet::Disconnect {
            reason: 0x90,
            props,
        }] => assert_eq!(props.reason_string, None),
        other => panic!("expected a bare DISCONNECT 0x90, got {other:?}"),
    }
}

/// Pre-authentication work is bounded: with one authentication worker and
/// a queue of one, a burst of password logins gets some 0x89 Server busy
/// (3.1.1: 0x03) instead of a thread each; the broker keeps serving.
#[test]
fn a_burst_of_password_logins_beyond_the_auth_queue_gets_server_busy() {
    if skip_unless_ledgermq("auth_workers and auth_queue") {
        return;
    }
    let b = Broker::with_setup(&[("auth-workers", "1"), ("auth-queue", "1")], |dir| {
        let out = std::process::Command::new(ledgermq_bin())
            .args(["passwd", "--file"])
            .arg(dir.join("passwords"))
            .args(["--user", "alice", "--password", "s3cret"])
            .output()
            .unwrap();
        assert!(out.status.success());
        vec![(
            "password-file".into(),
            dir.join("passwords").display().to_string(),
        )]
    })
    .unwrap();
    let port = b.port;
    let threads: Vec<_> = (0..12)
        .map(|i| {
            std::thread::spawn(move || {
                let level = if i % 2 == 0 { V5 } else { V3 };
                let mut c = Client::tcp(port, level);
                c.send(&Packet::Connect(Connect {
                    username: Some("alice".into()),
                    password: Some(b"wrong".to_vec()),
                    level,
                    ..Connect::v5(&format!("burst-{i}"))
                }));
                match c.try_recv(Duration::from_secs(20)) {
                    Recv::Packet(Packet::ConnAck { code, .. }) => (level, code),
                    other => panic!("expected CONNACK, got {other:?}"),
                }
            })
        })
        .collect();
    let codes: Vec<(u8, u8)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let busy = codes
        .iter()
        .filter(|&&(l, c)| (l == V5 && c == 0x89) || (l == V3 && c == 3))
        .count();
    let refused = codes
        .iter()
        .filter(|&&(l, c)| (l == V5 && c == 0x86) || (l == V3 && c == 4))
        .count();
    assert!(
        busy > 0,
        "some logins must be told the server is busy: {codes:?}"
    );
    assert_eq!(busy + refused, codes.len(), "{codes:?}");
    let start = Instant::now();
    let (_ok, ack) = b.connect(Connect {
        username: Some("alice".into()),
        password: Some(b"s3cret".to_vec()),
        ..Connect::v5("after-burst")
    });
    assert_eq!(ack.code, 0, "after {:?}", start.elapsed());
}
