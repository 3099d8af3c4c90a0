//! Real third-party clients against the broker: mosquitto_pub /
//! mosquitto_sub (MQTT 3.1.1 and 5.0) and paho-mqtt scripts (5.0).

mod common;

use common::*;
use std::time::Duration;

fn pub_sub_roundtrip(version: &str, qos: &str) {
    let b = Broker::start();
    let topic = format!("tp/{version}/{qos}");
    let sub = BackgroundSub::start(
        b.port,
        &[
            "-V", version, "-t", &topic, "-q", qos, "-C", "3", "-W", "10",
        ],
    );
    for i in 0..3 {
        mosquitto_pub(
            b.port,
            &[
                "-V",
                version,
                "-t",
                &topic,
                "-q",
                qos,
                "-m",
                &format!("msg-{i}"),
            ],
        );
    }
    assert_eq!(
        sub.finish(Duration::from_secs(10)),
        vec!["msg-0", "msg-1", "msg-2"]
    );
}

#[test]
fn mosquitto_clients_v311_qos0_roundtrip() {
    pub_sub_roundtrip("mqttv311", "0");
}

#[test]
fn mosquitto_clients_v311_qos1_roundtrip() {
    pub_sub_roundtrip("mqttv311", "1");
}

#[test]
fn mosquitto_clients_v311_qos2_roundtrip() {
    pub_sub_roundtrip("mqttv311", "2");
}

#[test]
fn mosquitto_clients_v5_qos0_roundtrip() {
    pub_sub_roundtrip("mqttv5", "0");
}

#[test]
fn mosquitto_clients_v5_qos1_roundtrip() {
    pub_sub_roundtrip("mqttv5", "1");
}

#[test]
fn mosquitto_clients_v5_qos2_roundtrip() {
    pub_sub_roundtrip("mqttv5", "2");
}

fn retained_roundtrip(version: &str) {
    let b = Broker::start();
    mosquitto_pub(
        b.port,
        &[
            "-V",
            version,
            "-t",
            "tp/retained",
            "-m",
            "stays",
            "-r",
            "-q",
            "1",
        ],
    );
    let out = run_with_timeout(
        std::process::Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &b.port.to_string(), "-V", version])
            .args(["-t", "tp/retained", "-C", "1", "-W", "5", "-F", "%r %p"]),
        Duration::from_secs(10),
    );
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout.trim(), "1 stays");
}

#[test]
fn mosquitto_sub_v311_receives_retained_message() {
    retained_roundtrip("mqttv311");
}

#[test]
fn mosquitto_sub_v5_receives_retained_message() {
    retained_roundtrip("mqttv5");
}

#[test]
fn mosquitto_pub_v5_properties_reach_subscriber() {
    let b = Broker::start();
    let mut sub = b.v5("props-sub");
    sub.subscribe("tp/props", 1);
    mosquitto_pub(
        b.port,
        &[
            "-V",
            "mqttv5",
            "-t",
            "tp/props",
            "-m",
            "{}",
            "-q",
            "1",
            "-D",
            "publish",
            "user-property",
            "unit",
            "celsius",
            "-D",
            "publish",
            "content-type",
            "application/json",
            "-D",
            "publish",
            "response-topic",
            "tp/reply",
            "-D",
            "publish",
            "correlation-data",
            "c-42",
            "-D",
            "publish",
            "message-expiry-interval",
            "60",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
        ],
    );
    let m = sub.recv_publish_ack();
    assert_eq!(
        m.props.user_properties,
        vec![("unit".to_string(), "celsius".to_string())]
    );
    assert_eq!(m.props.content_type.as_deref(), Some("application/json"));
    assert_eq!(m.props.response_topic.as_deref(), Some("tp/reply"));
    assert_eq!(m.props.correlation_data.as_deref(), Some(&b"c-42"[..]));
    assert_eq!(m.props.payload_format_indicator, Some(1));
    assert!(matches!(m.props.message_expiry_interval, Some(1..=60)));
}

#[test]
fn mosquitto_sub_will_is_published_when_killed() {
    let b = Broker::start();
    let mut w = b.v5("will-watch");
    w.subscribe("tp/will", 1);
    let sub = BackgroundSub::start(
        b.port,
        &[
            "-V",
            "mqttv311",
            "-t",
            "tp/x",
            "--will-topic",
            "tp/will",
            "--will-payload",
            "sub died",
            "--will-qos",
            "1",
        ],
    );
    drop(sub); // SIGKILL: no DISCONNECT
    assert_eq!(w.recv_publish_ack().payload, b"sub died");
}

#[test]
fn mosquitto_sub_v5_wildcard_subscription() {
    let b = Broker::start();
    let sub = BackgroundSub::start(
        b.port,
        &[
            "-V",
            "mqttv5",
            "-t",
            "tp/wild/+/x",
            "-C",
            "2",
            "-W",
            "10",
            "-F",
            "%t",
        ],
    );
    for t in ["tp/wild/a/x", "tp/wild/a/y", "tp/wild/b/x"] {
        mosquitto_pub(b.port, &["-V", "mqttv5", "-t", t, "-m", "."]);
    }
    assert_eq!(
        sub.finish(Duration::from_secs(10)),
        vec!["tp/wild/a/x", "tp/wild/b/x"]
    );
}

#[test]
fn mosquitto_pub_large_payload_roundtrip() {
    let b = Broker::start();
    let mut sub = b.v3("large-sub");
    sub.subscribe("tp/large", 1);
    let file = b.path("large.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    mosquitto_pub(
        b.port,
        &["-t", "tp/large", "-q", "1", "-f", file.to_str().unwrap()],
    );
    assert_eq!(sub.recv_publish_ack().payload, data);
}

// ---------------------------------------------------------------- paho

#[test]
fn paho_v5_properties_roundtrip() {
    let b = Broker::start();
    run_paho("properties_roundtrip.py", b.port, &[]);
}

#[test]
fn paho_v5_request_response() {
    let b = Broker::start();
    run_paho("request_response.py", b.port, &[]);
}

#[test]
fn paho_v5_shared_subscriptions_load_balance() {
    let b = Broker::start();
    run_paho("shared_subscriptions.py", b.port, &[]);
}

#[test]
fn paho_v5_subscription_identifiers() {
    let b = Broker::start();
    run_paho("subscription_identifiers.py", b.port, &[]);
}

#[test]
fn paho_v5_no_local() {
    let b = Broker::start();
    run_paho("no_local.py", b.port, &[]);
}

#[test]
fn paho_v5_retain_handling_and_retain_as_published() {
    let b = Broker::start();
    run_paho("retain_handling.py", b.port, &[]);
}

#[test]
fn paho_v5_topic_alias() {
    let b = Broker::start();
    run_paho("topic_alias.py", b.port, &[]);
}

#[test]
fn paho_v5_session_resume_with_qos1_delivery() {
    let b = Broker::start();
    run_paho("session_resume.py", b.port, &[]);
}

#[test]
fn paho_v5_will_delay() {
    let b = Broker::start();
    run_paho("will_delay.py", b.port, &[]);
}
