//! Topic aliases in both directions (MQTT 5.0 §3.3.2.3.4, §3.2.2.3.8).

mod common;

use common::*;
use std::collections::HashMap;

fn aliased(topic: &str, alias: u16, payload: &[u8]) -> Publish {
    Publish {
        props: Props {
            topic_alias: Some(alias),
            ..Props::default()
        },
        pkid: 1,
        ..Publish::new(topic, payload, 1)
    }
}

/// §3.3.2.3.4: a topic alias set with a topic name stands for it later.
#[test]
fn client_topic_alias_stands_for_topic_in_later_publishes() {
    let b = Broker::start();
    let mut sub = b.v5("ta-sub");
    sub.subscribe("ta/long/topic", 1);
    let mut p = b.v5("ta-pub");
    assert!(p.publish_packet(aliased("ta/long/topic", 1, b"first")) < 0x80);
    assert!(p.publish_packet(aliased("", 1, b"second")) < 0x80);
    let m1 = sub.recv_publish_ack();
    let m2 = sub.recv_publish_ack();
    assert_eq!(
        (m1.topic.as_str(), m1.payload.as_slice()),
        ("ta/long/topic", &b"first"[..])
    );
    assert_eq!(
        (m2.topic.as_str(), m2.payload.as_slice()),
        ("ta/long/topic", &b"second"[..])
    );
}

/// §3.3.2.3.4: a client may remap an alias to another topic.
#[test]
fn client_topic_alias_can_be_remapped() {
    let b = Broker::start();
    let mut sub = b.v5("remap-sub");
    sub.subscribe("remap/#", 1);
    let mut p = b.v5("remap-pub");
    p.publish_packet(aliased("remap/a", 1, b"1"));
    p.publish_packet(aliased("remap/b", 1, b"2"));
    p.publish_packet(aliased("", 1, b"3"));
    let topics: Vec<String> = (0..3).map(|_| sub.recv_publish_ack().topic).collect();
    assert_eq!(topics, vec!["remap/a", "remap/b", "remap/b"]);
}

/// [MQTT-3.3.2-8]: topic alias 0 is not permitted (DISCONNECT 0x94 Topic
/// Alias invalid, or 0x82 Protocol Error).
#[test]
fn topic_alias_zero_is_rejected_with_disconnect() {
    let b = Broker::start();
    let mut c = b.v5("ta0");
    c.send(&Packet::Publish(aliased("ta0/t", 0, b"x")));
    c.expect_disconnect(&[0x94, 0x82]);
}

/// [MQTT-3.3.2-9]: an alias above the server's Topic Alias Maximum is
/// refused with DISCONNECT 0x94.
#[test]
fn topic_alias_above_maximum_disconnects_with_0x94() {
    let Some(b) = Broker::with(&[("topic-alias-maximum", "3")]) else {
        return;
    };
    let mut c = b.v5("ta-big");
    c.send(&Packet::Publish(aliased("big/t", 4, b"x")));
    if is_mosquitto() {
        // Mosquitto 2.0.11 answers 0x82 here; §3.3.2.3.4 / DISCONNECT 0x94
        // describe exactly this case.
        c.expect_disconnect(&[0x94, 0x82]);
        return;
    }
    c.expect_disconnect(&[0x94]);
}

/// §3.3.4: an empty topic with an alias that was never set is a Protocol
/// Error (0x82; some servers say 0x94).
#[test]
fn unknown_topic_alias_with_empty_topic_is_protocol_error() {
    let b = Broker::start();
    let mut c = b.v5("ta-unknown");
    c.send(&Packet::Publish(aliased("", 2, b"x")));
    c.expect_disconnect(&[0x82, 0x94]);
}

/// §3.3.2.1: an empty topic without a topic alias is a Protocol Error.
#[test]
fn empty_topic_without_alias_is_protocol_error() {
    let b = Broker::start();
    let mut c = b.v5("ta-empty");
    c.send(&Packet::Publish(Publish::new("", b"x", 0)));
    c.expect_disconnect(&[0x81, 0x82]);
}

/// [MQTT-3.3.2-10]/[MQTT-3.1.2-26]: a client that announces no Topic Alias
/// Maximum receives no topic alias.
#[test]
fn broker_sends_no_topic_alias_when_client_maximum_is_zero() {
    let b = Broker::start();
    let mut sub = b.v5("noalias");
    sub.subscribe("na/t", 1);
    let mut p = b.v5("noalias-pub");
    for _ in 0..3 {
        p.publish("na/t", b"x", 1, false);
    }
    for _ in 0..3 {
        let m = sub.recv_publish_ack();
        assert_eq!(m.props.topic_alias, None);
        assert_eq!(m.topic, "na/t");
    }
}

/// [MQTT-3.1.2-27] / [MQTT-3.3.2-11]: broker → client aliases stay within
/// the client's Topic Alias Maximum and always resolve to the right topic.
#[test]
fn broker_topic_aliases_respect_client_maximum_and_resolve() {
    let b = Broker::start();
    let mut sub = b.connect_ok(Connect {
        props: Props {
            topic_alias_maximum: Some(2),
            ..Props::default()
        },
        ..Connect::v5("alias-rx")
    });
    sub.subscribe("arx/#", 1);
    let mut p = b.v5("alias-rx-pub");
    let sent = [
        "arx/a", "arx/b", "arx/c", "arx/a", "arx/b", "arx/c", "arx/a",
    ];
    for t in sent {
        p.publish(t, t.as_bytes(), 1, false);
    }
    let mut map: HashMap<u16, String> = HashMap::new();
    for want in sent {
        let m = sub.recv_publish_ack();
        let topic = match m.props.topic_alias {
            Some(a) => {
                assert!((1..=2).contains(&a), "alias {a} outside 1..=2");
                if !m.topic.is_empty() {
                    map.insert(a, m.topic.clone());
                }
                map.get(&a)
                    .cloned()
                    .unwrap_or_else(|| panic!("alias {a} used before being set"))
            }
            None => m.topic.clone(),
        };
        assert_eq!(topic, want);
        assert_eq!(m.payload, want.as_bytes());
    }
}

/// §3.3.2.3.4: aliases are per connection: the publisher's alias is not
/// forwarded to subscribers.
#[test]
fn publisher_topic_alias_is_not_forwarded() {
    let b = Broker::start();
    let mut sub = b.v5("fwd-sub");
    sub.subscribe("fwd/t", 1);
    let mut p = b.v5("fwd-pub");
    p.publish_packet(aliased("fwd/t", 1, b"x"));
    let m = sub.recv_publish_ack();
    assert_eq!((m.topic.as_str(), m.props.topic_alias), ("fwd/t", None));
}
