//! Keep alive (MQTT 5.0 §3.1.2.10, §3.12, §4.1; 3.1.1 §3.1.2.10).

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Mosquitto checks keep alive coarsely; give it room (never a perf limit).
const KA_WAIT: Duration = Duration::from_secs(12);

fn with_keep_alive(c: Connect, secs: u16) -> Connect {
    Connect {
        keep_alive: secs,
        ..c
    }
}

/// [MQTT-3.12.4-1]: the server answers PINGREQ with PINGRESP.
#[test]
fn pingreq_gets_pingresp() {
    let b = Broker::start();
    let mut c = b.v5("ping");
    c.send(&Packet::PingReq);
    assert_eq!(c.recv(), Packet::PingResp);
}

/// 3.1.1 [MQTT-3.12.4-1].
#[test]
fn pingreq_gets_pingresp_v311() {
    let b = Broker::start();
    let mut c = b.v3("ping3");
    c.send(&Packet::PingReq);
    assert_eq!(c.recv(), Packet::PingResp);
}

/// [MQTT-3.1.2-22]: no packet within 1.5 × keep alive: the server closes
/// the connection (with DISCONNECT 0x8D if it says anything).
#[test]
fn silent_client_is_disconnected_after_one_and_a_half_keep_alive() {
    let b = Broker::start();
    let mut c = b.connect_ok(with_keep_alive(Connect::v5("silent"), 1));
    let t = Instant::now();
    let seen = c.expect_closed_within(KA_WAIT);
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "closed before keep alive: {:?}",
        t.elapsed()
    );
    for p in seen {
        assert!(
            matches!(p, Packet::Disconnect { reason: 0x8D, .. }),
            "unexpected {p:?}"
        );
    }
}

/// 3.1.1 [MQTT-3.1.2-24]: same for 3.1.1 clients.
#[test]
fn silent_v311_client_is_disconnected_after_one_and_a_half_keep_alive() {
    let b = Broker::start();
    let mut c = b.connect_ok(with_keep_alive(Connect::v3("silent3"), 1));
    let t = Instant::now();
    c.expect_closed_within(KA_WAIT);
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "closed too early: {:?}",
        t.elapsed()
    );
}

/// [MQTT-3.1.2-22]: any control packet (here PINGREQ) resets the timer.
#[test]
fn pings_keep_the_connection_alive() {
    let b = Broker::start();
    let mut c = b.connect_ok(with_keep_alive(Connect::v5("pinger"), 1));
    for _ in 0..6 {
        sleep_ms(500);
        c.ping();
    }
}

/// [MQTT-3.1.2-22]: publishes reset the keep-alive timer as well.
#[test]
fn publishes_keep_the_connection_alive() {
    let b = Broker::start();
    let mut c = b.connect_ok(with_keep_alive(Connect::v5("publisher-ka"), 1));
    for i in 0..6u8 {
        sleep_ms(500);
        assert!(c.publish("ka/t", &[i], 1, false) < 0x80);
    }
}

/// §3.1.2.10: keep alive 0 turns the mechanism off.
#[test]
fn keep_alive_zero_never_times_out() {
    let b = Broker::start();
    let mut c = b.connect_ok(with_keep_alive(Connect::v5("ka0"), 0));
    c.expect_nothing(Duration::from_millis(2500));
    c.ping();
}

/// [MQTT-3.2.2-22]: the client must use the Server Keep Alive, and the
/// server enforces it.
#[test]
fn server_keep_alive_is_enforced() {
    if skip_unless_ledgermq("--max-keep-alive below 10 s") {
        return;
    }
    let b = Broker::with(&[("max-keep-alive", "1")]).unwrap();
    let (mut c, ack) = b.connect(with_keep_alive(Connect::v5("ska-enforced"), 60));
    assert_eq!(ack.props.server_keep_alive, Some(1));
    c.expect_closed_within(KA_WAIT);
}
