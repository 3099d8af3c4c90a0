//! QoS 0/1/2 protocol flows and ordering (MQTT 5.0 §4.3, §4.6; 3.1.1 §4.3).

mod common;

use common::*;

/// §4.3.1: a QoS 0 PUBLISH gets no acknowledgement.
#[test]
fn qos0_publish_gets_no_acknowledgement() {
    let b = Broker::start();
    let mut c = b.v5("q0");
    c.send(&Packet::Publish(Publish::new("q0/t", b"x", 0)));
    c.expect_nothing(QUIET);
}

/// [MQTT-4.3.2-4]: a QoS 1 PUBLISH is acknowledged with PUBACK carrying its id.
#[test]
fn qos1_publish_gets_puback_with_same_packet_id() {
    let b = Broker::start();
    let mut c = b.v5("q1");
    c.send(&Packet::Publish(Publish {
        pkid: 4242,
        ..Publish::new("q1/t", b"x", 1)
    }));
    match c.recv() {
        Packet::PubAck(a) => {
            assert_eq!(a.pkid, 4242);
            assert!(
                a.reason == 0x00 || a.reason == 0x10,
                "reason {:#04x}",
                a.reason
            );
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

/// 3.1.1 [MQTT-4.3.2-2].
#[test]
fn qos1_publish_gets_puback_v311() {
    let b = Broker::start();
    let mut c = b.v3("q1-3");
    c.send(&Packet::Publish(Publish {
        pkid: 77,
        ..Publish::new("q1/t", b"x", 1)
    }));
    assert_eq!(c.recv(), Packet::PubAck(Ack::new(77)));
}

/// [MQTT-4.3.3-8], [MQTT-4.3.3-9]: PUBLISH → PUBREC, PUBREL → PUBCOMP.
#[test]
fn qos2_publish_completes_pubrec_pubrel_pubcomp() {
    let b = Broker::start();
    let mut c = b.v5("q2");
    c.send(&Packet::Publish(Publish {
        pkid: 9,
        ..Publish::new("q2/t", b"x", 2)
    }));
    match c.recv() {
        Packet::PubRec(a) => assert_eq!(a.pkid, 9),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    c.send(&Packet::PubRel(Ack::new(9)));
    match c.recv() {
        Packet::PubComp(a) => assert_eq!((a.pkid, a.reason), (9, 0)),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

/// 3.1.1 [MQTT-4.3.3-2].
#[test]
fn qos2_publish_completes_handshake_v311() {
    let b = Broker::start();
    let mut c = b.v3("q2-3");
    c.send(&Packet::Publish(Publish {
        pkid: 5,
        ..Publish::new("q2/t", b"x", 2)
    }));
    assert_eq!(c.recv(), Packet::PubRec(Ack::new(5)));
    c.send(&Packet::PubRel(Ack::new(5)));
    assert_eq!(c.recv(), Packet::PubComp(Ack::new(5)));
}

/// [MQTT-4.3.3-10]: a re-sent QoS 2 PUBLISH (DUP) before PUBREL must not
/// be delivered twice.
#[test]
fn qos2_duplicate_publish_before_pubrel_is_delivered_once() {
    let b = Broker::start();
    let mut sub = b.v5("q2dup-sub");
    sub.subscribe("q2dup/t", 2);
    let mut p = b.v5("q2dup-pub");
    let msg = Publish {
        pkid: 11,
        ..Publish::new("q2dup/t", b"once", 2)
    };
    p.send(&Packet::Publish(msg.clone()));
    assert!(matches!(p.recv(), Packet::PubRec(_)));
    p.send(&Packet::Publish(Publish { dup: true, ..msg }));
    assert!(matches!(p.recv(), Packet::PubRec(_)));
    p.send(&Packet::PubRel(Ack::new(11)));
    assert!(matches!(p.recv(), Packet::PubComp(_)));
    assert_eq!(sub.recv_publish_ack().payload, b"once");
    sub.expect_nothing(QUIET);
}

/// §3.7.2.1: PUBREL for an unknown packet id gets PUBCOMP 0x92.
#[test]
fn pubrel_for_unknown_packet_id_gets_pubcomp_0x92() {
    let b = Broker::start();
    let mut c = b.v5("relunknown");
    c.send(&Packet::PubRel(Ack::new(999)));
    match c.recv() {
        Packet::PubComp(_) if mosquitto_deviates("PUBCOMP 0x00 for unknown PUBREL") => {}
        Packet::PubComp(a) => assert_eq!((a.pkid, a.reason), (999, 0x92)),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

/// §3.4.2.1: PUBACK for a message nobody subscribes to is 0x00 or 0x10.
#[test]
fn puback_without_subscribers_is_success_or_no_matching_subscribers() {
    let b = Broker::start();
    let mut c = b.v5("nosubs");
    let rc = c.publish("nobody/listens", b"x", 1, false);
    assert!(rc == 0x00 || rc == 0x10, "reason {rc:#04x}");
}

/// [MQTT-3.8.4-8]: delivered QoS = min(publish QoS, granted QoS).
#[test]
fn delivered_qos_is_downgraded_to_subscription_qos() {
    let b = Broker::start();
    let mut sub = b.v5("down");
    sub.subscribe("down/t", 1);
    publish_once(b.port, "down/t", b"x", 2, false);
    assert_eq!(sub.recv_publish_ack().qos, 1);
}

/// [MQTT-3.8.4-8]: a QoS 1 message to a QoS 2 subscription stays QoS 1.
#[test]
fn delivered_qos_is_not_upgraded_above_publish_qos() {
    let b = Broker::start();
    let mut sub = b.v5("noup");
    sub.subscribe("noup/t", 2);
    publish_once(b.port, "noup/t", b"x", 1, false);
    assert_eq!(sub.recv_publish_ack().qos, 1);
}

/// [MQTT-3.8.4-8]: QoS 2 message, QoS 0 subscription → QoS 0 delivery.
#[test]
fn qos2_message_to_qos0_subscription_is_delivered_at_qos0() {
    let b = Broker::start();
    let mut sub = b.v5("q0sub");
    sub.subscribe("q0sub/t", 0);
    publish_once(b.port, "q0sub/t", b"x", 2, false);
    let p = sub.recv_publish();
    assert_eq!((p.qos, p.pkid), (0, 0));
}

/// [MQTT-4.6.0-5]/§4.6: messages on one topic at the same QoS arrive in
/// publish order.
#[test]
fn qos1_messages_on_one_topic_arrive_in_order() {
    let b = Broker::start();
    let mut sub = b.v5("order-sub");
    sub.subscribe("order/t", 1);
    let mut p = b.v5("order-pub");
    for i in 0..50u8 {
        p.publish("order/t", &[i], 1, false);
    }
    for i in 0..50u8 {
        assert_eq!(sub.recv_publish_ack().payload, vec![i]);
    }
}

/// [MQTT-2.2.1-3]: unacknowledged QoS 1 messages in flight to one client
/// carry distinct non-zero packet identifiers.
#[test]
fn inflight_messages_have_distinct_packet_ids() {
    let b = Broker::start();
    let mut sub = b.v5("ids-sub");
    sub.subscribe("ids/t", 1);
    let mut p = b.v5("ids-pub");
    for i in 0..5u8 {
        p.publish("ids/t", &[i], 1, false);
    }
    let mut ids: Vec<u16> = (0..5).map(|_| sub.recv_publish().pkid).collect();
    assert!(ids.iter().all(|&i| i != 0));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "packet ids reused while in flight");
}

/// 3.1.1 [MQTT-4.3.3-?]: QoS 2 delivery to a 3.1.1 subscriber completes.
#[test]
fn qos2_delivery_to_v311_subscriber_completes() {
    let b = Broker::start();
    let mut sub = b.v3("q2sub3");
    sub.subscribe("q2s3/t", 2);
    publish_once(b.port, "q2s3/t", b"x", 2, false);
    let p = sub.recv_publish_ack();
    assert_eq!(p.qos, 2);
    sub.expect_nothing(QUIET);
}
