//! CONNECT / CONNACK, client identifiers, protocol versions, protocol
//! errors and malformed packets (MQTT 5.0 §3.1, §3.2, §4.13; 3.1.1 §3.1).

mod common;

use common::*;
use std::time::{Duration, Instant};

fn connect_bytes(c: Connect) -> Vec<u8> {
    wire::encode(&Packet::Connect(c), V5)
}

#[test]
fn connack_is_success_for_v5_client() {
    let b = Broker::start();
    let (_c, ack) = b.connect(Connect::v5("ok-v5"));
    assert_eq!(ack.code, 0x00);
    assert!(!ack.session_present);
}

#[test]
fn connack_is_success_for_v311_client() {
    let b = Broker::start();
    let (_c, ack) = b.connect(Connect::v3("ok-v3"));
    assert_eq!(ack.code, 0x00);
}

/// §3.2.2.3.3: the server announces its Receive Maximum.
#[test]
fn connack_announces_receive_maximum() {
    let Some(b) = Broker::with(&[("receive-maximum", "7")]) else {
        return;
    };
    let (_c, ack) = b.connect(Connect::v5("rm"));
    assert_eq!(ack.props.receive_maximum, Some(7), "{ack:?}");
}

/// §3.2.2.3.6: the server announces its Maximum Packet Size.
#[test]
fn connack_announces_maximum_packet_size() {
    let Some(b) = Broker::with(&[("max-packet-size", "5000")]) else {
        return;
    };
    let (_c, ack) = b.connect(Connect::v5("mps"));
    assert_eq!(ack.props.maximum_packet_size, Some(5000), "{ack:?}");
}

/// §3.2.2.3.8: the server announces its Topic Alias Maximum.
#[test]
fn connack_announces_topic_alias_maximum() {
    let Some(b) = Broker::with(&[("topic-alias-maximum", "5")]) else {
        return;
    };
    let (_c, ack) = b.connect(Connect::v5("tam"));
    assert_eq!(ack.props.topic_alias_maximum, Some(5), "{ack:?}");
}

/// [MQTT-3.1.3-6], [MQTT-3.2.2-16]: an empty client id gets an Assigned
/// Client Identifier.
#[test]
fn empty_client_id_v5_gets_assigned_client_identifier() {
    let b = Broker::start();
    let (_c, ack) = b.connect(Connect::v5(""));
    assert_eq!(ack.code, 0);
    let id = ack
        .props
        .assigned_client_identifier
        .expect("Assigned Client Identifier");
    assert!(!id.is_empty());
}

/// [MQTT-3.1.3-2]: the assigned identifier is unique to the connection.
#[test]
fn assigned_client_identifiers_are_unique() {
    let b = Broker::start();
    let (_c1, a1) = b.connect(Connect::v5(""));
    let (_c2, a2) = b.connect(Connect::v5(""));
    assert_ne!(
        a1.props.assigned_client_identifier,
        a2.props.assigned_client_identifier
    );
}

/// 3.1.1 [MQTT-3.1.3-6]: zero-length client id with clean session is accepted.
#[test]
fn empty_client_id_v311_with_clean_session_is_accepted() {
    let b = Broker::start();
    let (mut c, ack) = b.connect(Connect::v3(""));
    assert_eq!(ack.code, 0);
    c.ping();
}

/// 3.1.1 [MQTT-3.1.3-8]: zero-length client id without clean session is
/// refused with return code 0x02 (identifier rejected), then closed.
#[test]
fn empty_client_id_v311_without_clean_session_is_rejected_with_return_code_2() {
    let b = Broker::start();
    let (mut c, ack) = b.connect(Connect {
        clean_start: false,
        ..Connect::v3("")
    });
    assert_eq!(ack.code, 0x02);
    c.expect_closed();
}

/// 3.1.1 [MQTT-3.1.2-2]: an unsupported protocol level gets return code 1
/// and the connection is closed; 5.0 [MQTT-3.1.2-2] allows CONNACK 0x84.
#[test]
fn unsupported_protocol_level_is_refused_with_unsupported_version_code() {
    let b = Broker::start();
    let mut c = Client::tcp(b.port, V3);
    c.send_bytes(&connect_bytes(Connect {
        level: 9,
        ..Connect::v3("lvl9")
    }));
    let seen = c.expect_closed();
    match seen.first() {
        Some(Packet::ConnAck { code, .. }) => {
            assert!(*code == 0x01 || *code == 0x84, "CONNACK code {code:#04x}")
        }
        other => panic!("expected CONNACK with return code 1 / 0x84 before close, got {other:?}"),
    }
}

/// [MQTT-3.1.2-1]: a wrong protocol name closes the connection.
#[test]
fn wrong_protocol_name_closes_connection() {
    let b = Broker::start();
    let mut c = Client::tcp(b.port, V5);
    let mut body = Vec::new();
    wire::put_str(&mut body, "MQTX");
    body.extend_from_slice(&[5, 0x02, 0, 60, 0]);
    wire::put_str(&mut body, "badname");
    c.send_bytes(&wire::frame(0x10, &body));
    let seen = c.expect_closed();
    for p in &seen {
        assert!(
            matches!(p, Packet::ConnAck { code, .. } if *code >= 0x80 || *code == 1),
            "unexpected {p:?}"
        );
    }
}

/// [MQTT-3.1.2-3]: the reserved CONNECT flag must be 0, else malformed.
#[test]
fn connect_with_reserved_flag_set_closes_connection() {
    let b = Broker::start();
    let mut c = Client::tcp(b.port, V5);
    let mut bytes = connect_bytes(Connect::v5("reserved"));
    // Fixed header (2 bytes) + "MQTT" (6) + level (1) = connect flags at 9.
    bytes[9] |= 0x01;
    c.send_bytes(&bytes);
    let seen = c.expect_closed();
    for p in &seen {
        assert!(
            matches!(p, Packet::ConnAck { code, .. } if *code >= 0x80),
            "unexpected {p:?}"
        );
    }
}

/// [MQTT-3.1.0-1]: the first packet must be CONNECT.
#[test]
fn first_packet_not_connect_closes_connection() {
    let b = Broker::start();
    let mut c = Client::tcp(b.port, V5);
    c.send(&Packet::PingReq);
    let seen = c.expect_closed();
    assert!(
        !seen.contains(&Packet::PingResp),
        "broker answered PINGREQ before CONNECT"
    );
}

/// [MQTT-3.1.0-1]: a SUBSCRIBE before CONNECT is not processed.
#[test]
fn subscribe_before_connect_closes_connection() {
    let b = Broker::start();
    let mut c = Client::tcp(b.port, V5);
    c.send(&Packet::Subscribe {
        pkid: 1,
        props: Props::default(),
        filters: vec![("a".into(), 0)],
    });
    let seen = c.expect_closed();
    assert!(
        seen.iter().all(|p| !matches!(p, Packet::SubAck { .. })),
        "{seen:?}"
    );
}

/// [MQTT-3.1.0-2]: a second CONNECT is a Protocol Error (DISCONNECT 0x82).
#[test]
fn second_connect_is_protocol_error_0x82() {
    let b = Broker::start();
    let mut c = b.v5("twice");
    c.send(&Packet::Connect(Connect::v5("twice")));
    c.expect_disconnect(&[0x82]);
}

/// 3.1.1 [MQTT-3.1.0-2]: a second CONNECT closes the connection.
#[test]
fn second_connect_v311_closes_connection() {
    let b = Broker::start();
    let mut c = b.v3("twice3");
    c.send(&Packet::Connect(Connect::v3("twice3")));
    c.expect_closed();
}

/// §1.5.5, §4.13: a remaining length over 4 bytes is malformed (0x81).
#[test]
fn malformed_remaining_length_disconnects_with_0x81() {
    let b = Broker::start();
    let mut c = b.v5("mrl");
    c.send_bytes(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
    c.expect_disconnect(&[0x81]);
}

/// [MQTT-3.3.1-4]: a PUBLISH with both QoS bits set is malformed.
#[test]
fn publish_with_qos_3_disconnects_with_0x81() {
    let b = Broker::start();
    let mut c = b.v5("qos3");
    let mut body = Vec::new();
    wire::put_str(&mut body, "t");
    body.extend_from_slice(&[0, 1, 0]);
    body.extend_from_slice(b"x");
    c.send_bytes(&wire::frame(0x36, &body));
    c.expect_disconnect(&[0x81]);
}

/// [MQTT-3.8.1-1]: SUBSCRIBE fixed-header flags must be 0010.
#[test]
fn subscribe_with_wrong_fixed_header_flags_disconnects_with_0x81() {
    let b = Broker::start();
    let mut c = b.v5("subflags");
    let mut bytes = wire::encode(
        &Packet::Subscribe {
            pkid: 1,
            props: Props::default(),
            filters: vec![("a".into(), 0)],
        },
        V5,
    );
    bytes[0] = 0x80;
    c.send_bytes(&bytes);
    c.expect_disconnect(&[0x81]);
}

/// §2.1.2: packet type 0 is reserved and forbidden.
#[test]
fn reserved_packet_type_0_closes_connection() {
    let b = Broker::start();
    let mut c = b.v5("type0");
    c.send_bytes(&[0x00, 0x00]);
    c.expect_disconnect(&[0x81, 0x82]);
}

/// §2.2.2.2: a property that may appear once, twice, is a Protocol Error
/// (some decoders call it malformed).
#[test]
fn duplicated_property_closes_connection() {
    let b = Broker::start();
    let mut c = b.v5("dupprop");
    let mut body = Vec::new();
    wire::put_str(&mut body, "t");
    body.extend_from_slice(&[4, 0x01, 0x00, 0x01, 0x00]);
    body.extend_from_slice(b"x");
    c.send_bytes(&wire::frame(0x30, &body));
    c.expect_disconnect(&[0x81, 0x82]);
}

/// [MQTT-1.5.4-1]: ill-formed UTF-8 in a topic name is a Malformed Packet.
#[test]
fn invalid_utf8_topic_disconnects_with_0x81() {
    let b = Broker::start();
    let mut c = b.v5("badutf8");
    let mut body = Vec::new();
    wire::put_bin(&mut body, &[b'a', 0xC3, 0x28]);
    body.push(0);
    c.send_bytes(&wire::frame(0x30, &body));
    c.expect_disconnect(&[0x81]);
}

/// [MQTT-1.5.4-2]: U+0000 in a UTF-8 string is a Malformed Packet.
#[test]
fn null_character_in_topic_disconnects_with_0x81() {
    let b = Broker::start();
    let mut c = b.v5("nulltopic");
    let mut body = Vec::new();
    wire::put_bin(&mut body, b"a\0b");
    body.push(0);
    c.send_bytes(&wire::frame(0x30, &body));
    c.expect_disconnect(&[0x81]);
}

/// [MQTT-3.3.2-2]: a topic name must not contain wildcards.
#[test]
fn publish_to_wildcard_topic_closes_connection() {
    let b = Broker::start();
    let mut c = b.v5("wildpub");
    c.send(&Packet::Publish(Publish::new("a/+/b", b"x", 0)));
    c.expect_disconnect(&[0x81, 0x82, 0x90]);
}

/// [MQTT-2.2.1-3]: a QoS 1 PUBLISH needs a non-zero packet identifier.
#[test]
fn qos1_publish_with_packet_id_zero_closes_connection() {
    let b = Broker::start();
    let mut c = b.v5("pkid0");
    let mut body = Vec::new();
    wire::put_str(&mut body, "t");
    body.extend_from_slice(&[0, 0, 0]);
    c.send_bytes(&wire::frame(0x32, &body));
    c.expect_disconnect(&[0x81, 0x82]);
}

/// [MQTT-3.8.3-2]: a SUBSCRIBE must contain at least one filter.
#[test]
fn subscribe_without_filters_closes_connection() {
    let b = Broker::start();
    let mut c = b.v5("nofilters");
    c.send(&Packet::Subscribe {
        pkid: 1,
        props: Props::default(),
        filters: vec![],
    });
    c.expect_disconnect(&[0x81, 0x82]);
}

/// [MQTT-3.10.3-2]: an UNSUBSCRIBE must contain at least one filter.
#[test]
fn unsubscribe_without_filters_closes_connection() {
    let b = Broker::start();
    let mut c = b.v5("nounsub");
    c.send(&Packet::Unsubscribe {
        pkid: 1,
        props: Props::default(),
        filters: vec![],
    });
    c.expect_disconnect(&[0x81, 0x82]);
}

/// [MQTT-3.14.2-2]: a client that connected with Session Expiry 0 must not
/// set a non-zero one on DISCONNECT (Protocol Error).
#[test]
fn disconnect_raising_session_expiry_from_zero_is_protocol_error() {
    let b = Broker::start();
    let mut c = b.v5("sei-raise");
    c.send(&Packet::Disconnect {
        reason: 0,
        props: Props {
            session_expiry_interval: Some(60),
            ..Props::default()
        },
    });
    c.expect_disconnect(&[0x82]);
}

/// [MQTT-3.1.4-3]: a second connection with the same client id takes the
/// session over; the old v5 client gets DISCONNECT 0x8E.
#[test]
fn session_takeover_disconnects_old_v5_client_with_0x8e() {
    let b = Broker::start();
    let mut old = b.v5("takeover");
    let mut new = b.v5("takeover");
    old.expect_disconnect(&[0x8E]);
    new.ping();
}

/// 3.1.1 [MQTT-3.1.4-2]: the old connection with the same id is closed.
#[test]
fn session_takeover_closes_old_v311_connection() {
    let b = Broker::start();
    let mut old = b.v3("takeover3");
    let mut new = b.v3("takeover3");
    old.expect_closed();
    new.ping();
}

/// §3.2.2.3.14: the server lowers the keep-alive with Server Keep Alive.
#[test]
fn max_keep_alive_is_announced_as_server_keep_alive() {
    let Some(b) = Broker::with(&[("max-keep-alive", "10")]) else {
        return;
    };
    let (_c, ack) = b.connect(Connect {
        keep_alive: 60,
        ..Connect::v5("ska")
    });
    assert_eq!(ack.props.server_keep_alive, Some(10), "{ack:?}");
}

/// §4.2 / DESIGN "timeouts on every handshake": a TCP connection that never
/// sends CONNECT is closed after the connect timeout.
#[test]
fn connection_without_connect_is_closed_after_connect_timeout() {
    if skip_unless_ledgermq("--connect-timeout") {
        return;
    }
    let b = Broker::with(&[("connect-timeout", "1")]).unwrap();
    let mut c = Client::tcp(b.port, V5);
    let t = Instant::now();
    c.expect_closed();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "closed too early: {:?}",
        t.elapsed()
    );
}

/// Server limit on connections: the next client is refused (CONNACK error
/// code or a closed connection), existing clients keep working.
#[test]
fn max_connections_refuses_extra_client() {
    let Some(b) = Broker::with(&[("max-connections", "2")]) else {
        return;
    };
    let mut c1 = b.v5("mc1");
    let _c2 = b.v5("mc2");
    let mut c3 = Client::tcp(b.port, V5);
    c3.send(&Packet::Connect(Connect::v5("mc3")));
    match c3.try_recv(WAIT) {
        Recv::Packet(Packet::ConnAck { code, .. }) => {
            assert!(code >= 0x80, "third client accepted")
        }
        Recv::Closed => {}
        other => panic!("expected refusal, got {other:?}"),
    }
    c1.ping();
}

/// [MQTT-3.1.2-4]: Clean Start 1 gives Session Present 0 (§3.2.2.1.1).
#[test]
fn clean_start_gives_session_present_false() {
    let b = Broker::start();
    let mut c = b.connect_ok(Connect {
        props: Props {
            session_expiry_interval: Some(60),
            ..Props::default()
        },
        ..Connect::v5("cs1")
    });
    c.subscribe("a", 1);
    c.disconnect();
    let (_c, ack) = b.connect(Connect {
        props: Props {
            session_expiry_interval: Some(60),
            ..Props::default()
        },
        ..Connect::v5("cs1")
    });
    assert!(!ack.session_present);
}
