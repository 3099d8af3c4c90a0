//! Session state: clean start, session present, session expiry, queued
//! and in-flight messages across reconnects (MQTT 5.0 §3.1.2.4, §3.1.2.11,
//! §4.1, §4.4; 3.1.1 §3.1.2.4).

mod common;

use common::*;
use std::time::Duration;

fn persistent(id: &str, expiry: u32) -> Connect {
    Connect {
        clean_start: false,
        props: Props {
            session_expiry_interval: Some(expiry),
            ..Props::default()
        },
        ..Connect::v5(id)
    }
}

/// [MQTT-3.2.2-3]: resuming an existing session sets Session Present.
#[test]
fn session_present_is_set_when_resuming_v5_session() {
    let b = Broker::start();
    let mut c = b.connect_ok(persistent("sp5", 60));
    c.subscribe("sp5/t", 1);
    c.disconnect();
    let (_c, ack) = b.connect(persistent("sp5", 60));
    assert!(ack.session_present);
}

/// 3.1.1 [MQTT-3.2.2-2]: clean session 0 with stored state: Session Present 1.
#[test]
fn session_present_is_set_when_resuming_v311_session() {
    let b = Broker::start();
    let mut c = b.connect_ok(Connect {
        clean_start: false,
        ..Connect::v3("sp3")
    });
    c.subscribe("sp3/t", 1);
    c.disconnect();
    let (_c, ack) = b.connect(Connect {
        clean_start: false,
        ..Connect::v3("sp3")
    });
    assert!(ack.session_present);
}

/// [MQTT-3.2.2-2]: no stored session: Session Present 0 even without Clean Start.
#[test]
fn session_present_is_false_without_stored_session() {
    let b = Broker::start();
    let (_c, ack) = b.connect(persistent("fresh", 60));
    assert!(!ack.session_present);
}

/// [MQTT-3.1.2-4]: Clean Start discards the existing session's subscriptions.
#[test]
fn clean_start_discards_existing_subscriptions() {
    let b = Broker::start();
    let mut c = b.connect_ok(persistent("cs-discard", 60));
    c.subscribe("cs/t", 1);
    c.disconnect();
    let mut c = b.connect_ok(Connect {
        clean_start: true,
        ..persistent("cs-discard", 60)
    });
    publish_once(b.port, "cs/t", b"x", 1, false);
    c.expect_nothing(QUIET);
}

/// [MQTT-3.1.2-23] / §3.1.2.11.2: Session Expiry 0 ends the session when
/// the connection closes.
#[test]
fn session_expiry_zero_ends_session_on_disconnect() {
    let b = Broker::start();
    let mut c = b.connect_ok(Connect {
        clean_start: false,
        ..Connect::v5("se0")
    });
    c.subscribe("se0/t", 1);
    c.disconnect();
    let (_c, ack) = b.connect(Connect {
        clean_start: false,
        ..Connect::v5("se0")
    });
    assert!(!ack.session_present);
}

/// [MQTT-4.1.0-2]: the session (and its subscriptions) ends when the
/// Session Expiry Interval has passed.
#[test]
fn session_is_discarded_after_session_expiry_interval() {
    let b = Broker::start();
    let mut c = b.connect_ok(persistent("se1", 1));
    c.subscribe("se1/t", 1);
    c.disconnect();
    sleep_ms(2500);
    let (_c, ack) = b.connect(persistent("se1", 1));
    assert!(!ack.session_present, "session outlived its 1 s expiry");
}

/// §3.14.2.2.2: DISCONNECT may lower the Session Expiry Interval to 0.
#[test]
fn disconnect_with_session_expiry_zero_ends_session() {
    let b = Broker::start();
    let mut c = b.connect_ok(persistent("se-dc", 60));
    c.subscribe("sedc/t", 1);
    c.send(&Packet::Disconnect {
        reason: 0,
        props: Props {
            session_expiry_interval: Some(0),
            ..Props::default()
        },
    });
    let _ = c.expect_closed();
    let (_c, ack) = b.connect(persistent("se-dc", 60));
    assert!(!ack.session_present);
}

/// §3.2.2.3.2: a server that caps the session expiry says so in CONNACK.
#[test]
fn max_session_expiry_is_announced_in_connack() {
    if skip_unless_ledgermq("--max-session-expiry") {
        return;
    }
    let b = Broker::with(&[("max-session-expiry", "30")]).unwrap();
    let (_c, ack) = b.connect(persistent("cap", 3600));
    assert_eq!(ack.props.session_expiry_interval, Some(30), "{ack:?}");
}

/// [MQTT-3.1.2-5]/§4.1: QoS 1 messages published while a persistent
/// session is offline are delivered when it resumes.
#[test]
fn qos1_messages_are_queued_for_offline_v5_session() {
    let b = Broker::start();
    let mut c = b.connect_ok(persistent("q5", 60));
    c.subscribe("q5/t", 1);
    c.disconnect();
    for i in 0..3u8 {
        publish_once(b.port, "q5/t", &[i], 1, false);
    }
    let mut c = b.connect_ok(persistent("q5", 60));
    for i in 0..3u8 {
        let p = c.recv_publish_ack();
        assert_eq!(p.payload, vec![i]);
        assert_eq!(p.qos, 1);
    }
}

/// 3.1.1 §3.1.2.4: a clean session 0 client gets QoS 1 messages sent while
/// it was disconnected.
#[test]
fn qos1_messages_are_queued_for_offline_v311_session() {
    let b = Broker::start();
    let mut c = b.connect_ok(Connect {
        clean_start: false,
        ..Connect::v3("q3")
    });
    c.subscribe("q3/t", 1);
    c.disconnect();
    publish_once(b.port, "q3/t", b"while-away", 1, false);
    let mut c = b.connect_ok(Connect {
        clean_start: false,
        ..Connect::v3("q3")
    });
    let p = c.recv_publish_ack();
    assert_eq!(p.payload, b"while-away");
}

/// [MQTT-4.4.0-1], [MQTT-3.3.1-1]: an unacknowledged QoS 1 PUBLISH is
/// resent with DUP=1 and the same packet id when the session resumes.
#[test]
fn qos1_message_is_redelivered_with_dup_after_reconnect() {
    let b = Broker::start();
    let mut sub = b.connect_ok(persistent("redeliver1", 60));
    sub.subscribe("rd/t", 1);
    publish_once(b.port, "rd/t", b"m", 1, false);
    let first = sub.recv_publish();
    assert!(!first.dup);
    sub.drop_connection();
    let mut sub = b.connect_ok(persistent("redeliver1", 60));
    let again = sub.recv_publish();
    assert_eq!(again.payload, b"m");
    assert_eq!(again.pkid, first.pkid, "same packet identifier");
    assert!(again.dup, "DUP flag must be set on redelivery");
    sub.ack(&again);
    sub.expect_nothing(QUIET);
}

/// 3.1.1 [MQTT-4.4.0-1]: same redelivery for clean session 0.
#[test]
fn qos1_message_is_redelivered_with_dup_after_reconnect_v311() {
    let b = Broker::start();
    let mut sub = b.connect_ok(Connect {
        clean_start: false,
        ..Connect::v3("redeliver3")
    });
    sub.subscribe("rd3/t", 1);
    publish_once(b.port, "rd3/t", b"m", 1, false);
    let first = sub.recv_publish();
    sub.drop_connection();
    let mut sub = b.connect_ok(Connect {
        clean_start: false,
        ..Connect::v3("redeliver3")
    });
    let again = sub.recv_publish();
    assert_eq!(
        (again.pkid, again.dup, again.payload.as_slice()),
        (first.pkid, true, &b"m"[..])
    );
}

/// [MQTT-4.4.0-1]: a QoS 2 PUBLISH not yet PUBREC'd is resent with DUP=1.
#[test]
fn qos2_message_is_redelivered_with_dup_after_reconnect() {
    let b = Broker::start();
    let mut sub = b.connect_ok(persistent("redeliver2", 60));
    sub.subscribe("rd2/t", 2);
    publish_once(b.port, "rd2/t", b"m2", 2, false);
    let first = sub.recv_publish();
    assert_eq!(first.qos, 2);
    sub.drop_connection();
    let mut sub = b.connect_ok(persistent("redeliver2", 60));
    let again = sub.recv_publish();
    assert_eq!((again.pkid, again.dup, again.qos), (first.pkid, true, 2));
    sub.ack(&again);
}

/// [MQTT-4.4.0-1]: after PUBREC, the broker resends PUBREL (not the
/// PUBLISH) when the session resumes.
#[test]
fn qos2_pubrel_is_resent_after_reconnect() {
    let b = Broker::start();
    let mut sub = b.connect_ok(persistent("pubrel-again", 60));
    sub.subscribe("rel/t", 2);
    publish_once(b.port, "rel/t", b"m", 2, false);
    let p = sub.recv_publish();
    sub.send(&Packet::PubRec(Ack::new(p.pkid)));
    match sub.recv() {
        Packet::PubRel(a) => assert_eq!(a.pkid, p.pkid),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.drop_connection();
    let mut sub = b.connect_ok(persistent("pubrel-again", 60));
    match sub.recv() {
        Packet::PubRel(a) => assert_eq!(a.pkid, p.pkid),
        other => panic!("expected PUBREL again, got {other:?}"),
    }
    sub.send(&Packet::PubComp(Ack::new(p.pkid)));
    sub.expect_nothing(QUIET);
}

/// [MQTT-3.1.4-3]/§4.1: a takeover with Clean Start 0 keeps the session.
#[test]
fn takeover_without_clean_start_keeps_session() {
    let b = Broker::start();
    let mut old = b.connect_ok(persistent("keep", 60));
    old.subscribe("keep/t", 1);
    let (mut new, ack) = b.connect(persistent("keep", 60));
    assert!(ack.session_present);
    let _ = old.expect_closed();
    publish_once(b.port, "keep/t", b"k", 1, false);
    assert_eq!(new.recv_publish_ack().payload, b"k");
}

/// §4.1: QoS 0 messages are not required to be queued, but a resumed
/// session must still get messages published after it reconnects.
#[test]
fn resumed_session_receives_new_messages() {
    let b = Broker::start();
    let mut c = b.connect_ok(persistent("resume-live", 60));
    c.subscribe("live/t", 0);
    c.disconnect();
    let mut c = b.connect_ok(persistent("resume-live", 60));
    std::thread::sleep(Duration::from_millis(50));
    publish_once(b.port, "live/t", b"now", 0, false);
    assert_eq!(c.recv_publish().payload, b"now");
}
