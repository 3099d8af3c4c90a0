//! The Prometheus endpoint (`--metrics-listen`, docs/configuration.md).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;

/// One HTTP/1.1 request; returns (status line, body).
fn http(port: u16, method: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics endpoint");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read HTTP response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

fn value(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{body}"))
}

#[test]
fn metrics_endpoint_exposes_counters_that_follow_traffic() {
    let Some(b) = Broker::with(&[("metrics-listen", "127.0.0.1:0")]) else {
        return;
    };
    let port = b.metrics_port.expect("LISTENING metrics line");
    let (status, before) = http(port, "GET", "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(before.contains("# TYPE ledgermq_messages_received_total counter"));
    let received = value(&before, "ledgermq_messages_received_total");

    let mut sub = b.v5("metrics-sub");
    sub.subscribe("m/t", 1);
    let mut p = b.v5("metrics-pub");
    for _ in 0..3 {
        p.publish("m/t", b"x", 1, false);
    }
    for _ in 0..3 {
        let m = sub.recv_publish();
        sub.ack(&m);
    }
    let (_, after) = http(port, "GET", "/metrics");
    assert_eq!(
        value(&after, "ledgermq_messages_received_total"),
        received + 3
    );
    assert!(value(&after, "ledgermq_messages_sent_total") >= 3);
    assert_eq!(value(&after, "ledgermq_clients_connected"), 2);
    assert_eq!(value(&after, "ledgermq_subscriptions"), 1);
}

#[test]
fn metrics_endpoint_refuses_other_paths_and_methods() {
    let Some(b) = Broker::with(&[("metrics-listen", "127.0.0.1:0")]) else {
        return;
    };
    let port = b.metrics_port.expect("LISTENING metrics line");
    assert!(http(port, "GET", "/").0.contains("404"));
    assert!(http(port, "POST", "/metrics").0.contains("405"));
}
