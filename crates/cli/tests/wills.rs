//! Will messages (MQTT 5.0 §3.1.2.5–3.1.2.7, §3.1.3.2; 3.1.1 §3.1.2.5).

mod common;

use common::*;
use std::time::{Duration, Instant};

fn with_will(mut c: Connect, topic: &str, payload: &[u8]) -> Connect {
    c.will = Some(Will {
        topic: topic.into(),
        payload: payload.to_vec(),
        qos: 1,
        ..Will::default()
    });
    c
}

fn watcher(b: &Broker, topic: &str) -> Client {
    let mut w = b.v5(&format!("watch-{}", unique()));
    w.subscribe(topic, 1);
    w
}

/// [MQTT-3.1.2-8]: the will is published when the connection closes
/// without DISCONNECT.
#[test]
fn will_is_published_when_connection_drops() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/drop");
    let c = b.connect_ok(with_will(Connect::v5("dropper"), "will/drop", b"gone"));
    c.drop_connection();
    assert_eq!(w.recv_publish_ack().payload, b"gone");
}

/// 3.1.1 [MQTT-3.1.2-8].
#[test]
fn will_is_published_when_v311_connection_drops() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/drop3");
    let c = b.connect_ok(with_will(Connect::v3("dropper3"), "will/drop3", b"gone3"));
    c.drop_connection();
    assert_eq!(w.recv_publish_ack().payload, b"gone3");
}

/// [MQTT-3.1.2-10], [MQTT-3.14.4-3]: DISCONNECT 0x00 discards the will.
#[test]
fn will_is_not_published_on_normal_disconnect() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/normal");
    let c = b.connect_ok(with_will(Connect::v5("polite"), "will/normal", b"no"));
    c.disconnect();
    w.expect_nothing(QUIET);
}

/// 3.1.1 [MQTT-3.1.2-10].
#[test]
fn will_is_not_published_on_normal_disconnect_v311() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/normal3");
    let c = b.connect_ok(with_will(Connect::v3("polite3"), "will/normal3", b"no"));
    c.disconnect();
    w.expect_nothing(QUIET);
}

/// §3.14.2.1: DISCONNECT 0x04 (Disconnect with Will Message) publishes it.
#[test]
fn disconnect_with_reason_0x04_publishes_will() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/04");
    let mut c = b.connect_ok(with_will(Connect::v5("with-will"), "will/04", b"asked"));
    c.send(&Packet::Disconnect {
        reason: 0x04,
        props: Props::default(),
    });
    assert_eq!(w.recv_publish_ack().payload, b"asked");
}

/// [MQTT-3.1.2-17]: Will Retain 1 publishes the will as retained.
#[test]
fn will_with_retain_flag_becomes_retained_message() {
    let b = Broker::start();
    let mut c = with_will(Connect::v5("will-ret"), "will/ret", b"last");
    c.will.as_mut().unwrap().retain = true;
    b.connect_ok(c).drop_connection();
    sleep_ms(300);
    let mut late = b.v5("late");
    late.subscribe("will/ret", 1);
    let m = late.recv_publish_ack();
    assert_eq!((m.payload.as_slice(), m.retain), (&b"last"[..], true));
}

/// [MQTT-3.1.2-?] §3.1.2.6: the will is published with its Will QoS.
#[test]
fn will_is_published_with_will_qos() {
    let b = Broker::start();
    let mut w = b.v5("wq-watch");
    w.subscribe("will/qos", 2);
    let mut c = with_will(Connect::v5("wq"), "will/qos", b"q2");
    c.will.as_mut().unwrap().qos = 2;
    b.connect_ok(c).drop_connection();
    assert_eq!(w.recv_publish_ack().qos, 2);
}

/// [MQTT-3.1.3-9]: the will waits for the Will Delay Interval.
#[test]
fn will_delay_interval_delays_the_will() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/delay");
    let mut c = with_will(Connect::v5("delayed"), "will/delay", b"late");
    c.will.as_mut().unwrap().props.will_delay_interval = Some(2);
    c.props.session_expiry_interval = Some(60);
    let t = Instant::now();
    b.connect_ok(c).drop_connection();
    w.expect_nothing(Duration::from_millis(1200));
    let m = w.recv_publish_ack();
    assert_eq!(m.payload, b"late");
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "will sent after {:?}",
        t.elapsed()
    );
}

/// [MQTT-3.1.3-9]: reconnecting before the delay ends cancels the will.
#[test]
fn will_is_cancelled_when_client_reconnects_within_delay() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/cancel");
    let mut c = with_will(Connect::v5("comeback"), "will/cancel", b"no");
    c.will.as_mut().unwrap().props.will_delay_interval = Some(2);
    c.props.session_expiry_interval = Some(60);
    c.clean_start = false;
    b.connect_ok(c).drop_connection();
    sleep_ms(300);
    let _again = b.connect_ok(Connect {
        clean_start: false,
        props: Props {
            session_expiry_interval: Some(60),
            ..Props::default()
        },
        ..Connect::v5("comeback")
    });
    w.expect_nothing(Duration::from_millis(3000));
}

/// §3.1.3.2.2: the will is sent when the session ends, if that comes
/// before the will delay.
#[test]
fn will_is_sent_when_session_expires_before_will_delay() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/sessionend");
    let mut c = with_will(Connect::v5("short-session"), "will/sessionend", b"ended");
    c.will.as_mut().unwrap().props.will_delay_interval = Some(30);
    c.props.session_expiry_interval = Some(1);
    b.connect_ok(c).drop_connection();
    assert_eq!(w.recv_publish_ack().payload, b"ended");
}

/// [MQTT-3.3.2-?]: will properties (content type, response topic,
/// correlation data, user properties, payload format) are forwarded.
#[test]
fn will_properties_are_forwarded() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/props");
    let mut c = with_will(Connect::v5("propwill"), "will/props", b"{}");
    c.will.as_mut().unwrap().props = Props {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("will/reply".into()),
        correlation_data: Some(b"corr".to_vec()),
        user_properties: vec![("k".into(), "v".into())],
        ..Props::default()
    };
    b.connect_ok(c).drop_connection();
    let m = w.recv_publish_ack();
    assert_eq!(m.props.payload_format_indicator, Some(1));
    assert_eq!(m.props.content_type.as_deref(), Some("application/json"));
    assert_eq!(m.props.response_topic.as_deref(), Some("will/reply"));
    assert_eq!(m.props.correlation_data.as_deref(), Some(&b"corr"[..]));
    assert_eq!(
        m.props.user_properties,
        vec![("k".to_string(), "v".to_string())]
    );
}

/// [MQTT-3.1.2-8]: a keep-alive timeout publishes the will.
#[test]
fn will_is_published_on_keep_alive_timeout() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/ka");
    let c = with_will(
        Connect {
            keep_alive: 1,
            ..Connect::v5("sleepy")
        },
        "will/ka",
        b"timeout",
    );
    let _silent = b.connect_ok(c);
    match w.try_recv(Duration::from_secs(12)) {
        Recv::Packet(Packet::Publish(p)) => assert_eq!(p.payload, b"timeout"),
        other => panic!("expected the will, got {other:?}"),
    }
}

/// [MQTT-3.1.2-8]: closing the connection for a protocol error publishes the will.
#[test]
fn will_is_published_when_server_closes_for_protocol_error() {
    let b = Broker::start();
    let mut w = watcher(&b, "will/err");
    let mut c = b.connect_ok(with_will(Connect::v5("faulty"), "will/err", b"broken"));
    c.send_bytes(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
    assert_eq!(w.recv_publish_ack().payload, b"broken");
}
