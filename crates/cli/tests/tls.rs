//! TLS listener (ledgermq's `--tls-listen/--tls-cert/--tls-key`), checked
//! with mosquitto_pub/mosquitto_sub and a certificate made in the test.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

struct TlsBroker {
    broker: Broker,
    ca: std::path::PathBuf,
}

fn tls_broker() -> Option<TlsBroker> {
    if skip_unless_ledgermq("TLS listener flags") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let broker = Broker::with(&[
        ("tls-listen", "127.0.0.1:0"),
        ("tls-cert", cert.to_str().unwrap()),
        ("tls-key", key.to_str().unwrap()),
    ])
    .unwrap();
    let ca = broker.path("ca.pem");
    std::fs::copy(&cert, &ca).unwrap();
    assert!(broker.tls_port.is_some(), "no `LISTENING mqtts` line");
    Some(TlsBroker { broker, ca })
}

#[test]
fn tls_listener_is_announced() {
    let Some(t) = tls_broker() else { return };
    assert_ne!(t.broker.tls_port, Some(t.broker.port));
}

#[test]
fn mosquitto_sub_over_tls_receives_plain_publish() {
    let Some(t) = tls_broker() else { return };
    let port = t.broker.tls_port.unwrap();
    let sub = BackgroundSub::start(
        port,
        &[
            "--cafile",
            t.ca.to_str().unwrap(),
            "-t",
            "tls/t",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "10",
            "-V",
            "mqttv5",
        ],
    );
    publish_once(t.broker.port, "tls/t", b"secret hello", 1, false);
    assert_eq!(sub.finish(Duration::from_secs(10)), vec!["secret hello"]);
}

#[test]
fn mosquitto_pub_over_tls_reaches_plain_subscriber() {
    let Some(t) = tls_broker() else { return };
    let mut sub = t.broker.v3("tls-plain-sub");
    sub.subscribe("tls/up", 1);
    let port = t.broker.tls_port.unwrap();
    mosquitto_pub(
        port,
        &[
            "--cafile",
            t.ca.to_str().unwrap(),
            "-t",
            "tls/up",
            "-m",
            "over tls",
            "-q",
            "1",
        ],
    );
    assert_eq!(sub.recv_publish_ack().payload, b"over tls");
}

#[test]
fn tls_client_with_unknown_ca_is_rejected() {
    let Some(t) = tls_broker() else { return };
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let wrong_ca = t.broker.path("wrong-ca.pem");
    std::fs::write(&wrong_ca, other.cert.pem()).unwrap();
    let port = t.broker.tls_port.unwrap();
    let out = run_with_timeout(
        Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--cafile",
                wrong_ca.to_str().unwrap(),
            ])
            .args(["-t", "x", "-m", "y"]),
        Duration::from_secs(10),
    );
    assert!(
        !out.success(),
        "handshake with an untrusted certificate succeeded"
    );
}

#[test]
fn plain_mqtt_on_tls_port_gets_no_connack() {
    let Some(t) = tls_broker() else { return };
    let mut s = std::net::TcpStream::connect(("127.0.0.1", t.broker.tls_port.unwrap())).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let _ = s.write_all(&wire::encode(
        &Packet::Connect(Connect::v5("plain-on-tls")),
        V5,
    ));
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) if n >= 2 => assert_ne!(buf[0], 0x20, "a CONNACK came back in clear"),
        _ => {}
    }
}
