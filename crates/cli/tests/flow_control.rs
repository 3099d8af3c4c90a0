//! Flow control, Maximum Packet Size and message expiry (MQTT 5.0 §4.9,
//! §3.1.2.11.4, §3.2.2.3.6, §3.3.2.3.3).

mod common;

use common::*;

/// [MQTT-3.3.4-8]: more unacknowledged QoS 2 PUBLISHes than the server's
/// Receive Maximum: DISCONNECT 0x93.
#[test]
fn receive_maximum_exceeded_disconnects_with_0x93() {
    let Some(b) = Broker::with(&[("receive-maximum", "2")]) else {
        return;
    };
    let mut c = b.v5("rmx");
    for id in 1..=3u16 {
        c.send(&Packet::Publish(Publish {
            pkid: id,
            ..Publish::new("rmx/t", b"x", 2)
        }));
    }
    if mosquitto_deviates("mosquitto 2.0.11 does not enforce its own Receive Maximum") {
        return;
    }
    // The first two are PUBRECed; the third is one too many.
    let seen = c.expect_closed();
    let reasons: Vec<u8> = seen
        .iter()
        .filter_map(|p| match p {
            Packet::Disconnect { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, vec![0x93], "saw {seen:?}");
}

/// [MQTT-3.3.4-9]: the server sends no more unacknowledged QoS 1/2
/// PUBLISHes than the client's Receive Maximum; acks release more.
#[test]
fn broker_respects_client_receive_maximum() {
    let b = Broker::start();
    let mut sub = b.connect_ok(Connect {
        props: Props {
            receive_maximum: Some(2),
            ..Props::default()
        },
        ..Connect::v5("crm")
    });
    sub.subscribe("crm/t", 1);
    let mut p = b.v5("crm-pub");
    for i in 0..5u8 {
        p.publish("crm/t", &[i], 1, false);
    }
    let m0 = sub.recv_publish();
    let m1 = sub.recv_publish();
    sub.expect_nothing(QUIET);
    sub.ack(&m0);
    let m2 = sub.recv_publish();
    if mosquitto_deviates("mosquitto 2.0.11 exceeds the client's Receive Maximum after an ack") {
        return;
    }
    sub.expect_nothing(QUIET);
    sub.ack(&m1);
    sub.ack(&m2);
    let rest: Vec<u8> = (0..2).map(|_| sub.recv_publish_ack().payload[0]).collect();
    assert_eq!(
        [
            m0.payload[0],
            m1.payload[0],
            m2.payload[0],
            rest[0],
            rest[1]
        ],
        [0, 1, 2, 3, 4]
    );
}

/// [MQTT-3.3.4-9]: QoS 0 messages are not limited by Receive Maximum.
#[test]
fn qos0_messages_are_not_limited_by_receive_maximum() {
    let b = Broker::start();
    let mut sub = b.connect_ok(Connect {
        props: Props {
            receive_maximum: Some(1),
            ..Props::default()
        },
        ..Connect::v5("crm0")
    });
    sub.subscribe("crm0/t", 0);
    let mut p = b.v5("crm0-pub");
    for i in 0..4u8 {
        p.publish("crm0/t", &[i], 0, false);
    }
    for i in 0..4u8 {
        assert_eq!(sub.recv_publish().payload, vec![i]);
    }
}

/// [MQTT-3.1.2-24]/§3.2.2.3.6: a packet above the server's Maximum Packet
/// Size: DISCONNECT 0x95.
#[test]
fn packet_larger_than_server_maximum_disconnects_with_0x95() {
    let Some(b) = Broker::with(&[("max-packet-size", "1000")]) else {
        return;
    };
    let mut c = b.v5("big");
    c.send(&Packet::Publish(Publish::new("big/t", &[0u8; 2000], 0)));
    c.expect_disconnect(&[0x95]);
}

/// 3.1.1: an oversized packet closes the connection.
#[test]
fn packet_larger_than_server_maximum_closes_v311_connection() {
    let Some(b) = Broker::with(&[("max-packet-size", "1000")]) else {
        return;
    };
    let mut c = b.v3("big3");
    c.send(&Packet::Publish(Publish::new("big/t", &[0u8; 2000], 1)));
    c.expect_closed();
}

/// A packet just under the limit is accepted.
#[test]
fn packet_within_server_maximum_is_accepted() {
    let Some(b) = Broker::with(&[("max-packet-size", "1000")]) else {
        return;
    };
    let mut c = b.v5("fits");
    assert!(c.publish("fits/t", &[0u8; 900], 1, false) < 0x80);
}

/// [MQTT-3.1.2-25]: the server never sends a packet above the client's
/// Maximum Packet Size: it drops that message and goes on with others.
#[test]
fn broker_drops_messages_larger_than_client_maximum_packet_size() {
    let b = Broker::start();
    let mut sub = b.connect_ok(Connect {
        props: Props {
            maximum_packet_size: Some(200),
            ..Props::default()
        },
        ..Connect::v5("small")
    });
    sub.subscribe("small/t", 1);
    let mut p = b.v5("small-pub");
    p.publish("small/t", &[7u8; 500], 1, false);
    p.publish("small/t", b"fits", 1, false);
    assert_eq!(sub.recv_publish_ack().payload, b"fits");
    sub.expect_nothing(QUIET);
}

/// [MQTT-3.3.2-5]: a message whose expiry passed while the subscriber was
/// offline is not delivered.
#[test]
fn expired_message_is_not_delivered_to_offline_session() {
    let b = Broker::start();
    let persistent = || Connect {
        clean_start: false,
        props: Props {
            session_expiry_interval: Some(60),
            ..Props::default()
        },
        ..Connect::v5("exp-off")
    };
    let mut sub = b.connect_ok(persistent());
    sub.subscribe("expoff/t", 1);
    sub.disconnect();
    let mut p = b.v5("exp-off-pub");
    p.publish_packet(Publish {
        props: Props {
            message_expiry_interval: Some(1),
            ..Props::default()
        },
        ..Publish::new("expoff/t", b"stale", 1)
    });
    p.publish("expoff/t", b"fresh", 1, false);
    sleep_ms(2200);
    let mut sub = b.connect_ok(persistent());
    assert_eq!(sub.recv_publish_ack().payload, b"fresh");
    sub.expect_nothing(QUIET);
}

/// [MQTT-3.3.2-6]: a forwarded message carries the remaining expiry.
#[test]
fn queued_message_expiry_is_decremented_by_waiting_time() {
    let b = Broker::start();
    let persistent = || Connect {
        clean_start: false,
        props: Props {
            session_expiry_interval: Some(60),
            ..Props::default()
        },
        ..Connect::v5("exp-dec")
    };
    let mut sub = b.connect_ok(persistent());
    sub.subscribe("expdec/t", 1);
    sub.disconnect();
    let mut p = b.v5("exp-dec-pub");
    p.publish_packet(Publish {
        props: Props {
            message_expiry_interval: Some(20),
            ..Props::default()
        },
        ..Publish::new("expdec/t", b"x", 1)
    });
    sleep_ms(2100);
    let mut sub = b.connect_ok(persistent());
    let m = sub.recv_publish_ack();
    let left = m
        .props
        .message_expiry_interval
        .expect("Message Expiry Interval");
    assert!(
        (1..=18).contains(&left),
        "expiry {left} not decremented by ~2 s"
    );
}

/// §3.3.2.3.3: a message without expiry is forwarded without the property.
#[test]
fn message_without_expiry_has_no_expiry_property() {
    let b = Broker::start();
    let mut sub = b.v5("noexp");
    sub.subscribe("noexp/t", 1);
    publish_once(b.port, "noexp/t", b"x", 1, false);
    assert_eq!(sub.recv_publish_ack().props.message_expiry_interval, None);
}
