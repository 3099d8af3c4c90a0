//! Hand-written byte vectors for every packet type in MQTT 3.1.1 and 5.0,
//! checked in both directions.

mod common;

use bytes::Bytes;
use common::*;
use ledgermq_proto::*;

fn props() -> Properties {
    Properties::default()
}

#[test]
fn v311_connect_minimal() {
    let bytes = b"\x10\x0F\x00\x04MQTT\x04\x02\x00\x3C\x00\x03abc";
    let c = Connect {
        protocol: Protocol::V311,
        clean_start: true,
        keep_alive: 60,
        client_id: "abc".into(),
        ..Connect::default()
    };
    assert_vector(bytes, Protocol::V311, Packet::Connect(c));
}

#[test]
fn v311_connect_with_will_user_name_and_password() {
    let bytes =
        b"\x10\x1A\x00\x04MQTT\x04\xEE\x00\x0A\x00\x01c\x00\x01t\x00\x02hi\x00\x01u\x00\x01p";
    let c = Connect {
        protocol: Protocol::V311,
        clean_start: true,
        keep_alive: 10,
        client_id: "c".into(),
        will: Some(Will {
            topic: "t".into(),
            payload: Bytes::from_static(b"hi"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: props(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        properties: props(),
    };
    assert_vector(bytes, Protocol::V311, Packet::Connect(c));
}

#[test]
fn v311_connack_accepted_with_session_present() {
    let c = ConnAck {
        session_present: true,
        reason: ReasonCode::SUCCESS,
        properties: props(),
    };
    assert_vector(b"\x20\x02\x01\x00", Protocol::V311, Packet::ConnAck(c));
}

#[test]
fn v311_connack_return_codes_map_to_v5_reasons() {
    for (code, reason) in [
        (1, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION),
        (2, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
        (3, ReasonCode::SERVER_UNAVAILABLE),
        (4, ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        (5, ReasonCode::NOT_AUTHORIZED),
    ] {
        let c = ConnAck {
            session_present: false,
            reason,
            properties: props(),
        };
        assert_vector(&[0x20, 2, 0, code], Protocol::V311, Packet::ConnAck(c));
    }
}

#[test]
fn v311_publish_qos0_and_qos1() {
    let p0 = Publish {
        topic: "a/b".into(),
        payload: Bytes::from_static(b"hi"),
        ..Publish::default()
    };
    assert_vector(
        b"\x30\x07\x00\x03a/bhi",
        Protocol::V311,
        Packet::Publish(p0),
    );
    let p1 = Publish {
        dup: true,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: "a/b".into(),
        packet_id: 10,
        payload: Bytes::from_static(b"hi"),
        properties: props(),
    };
    assert_vector(
        b"\x3B\x09\x00\x03a/b\x00\x0Ahi",
        Protocol::V311,
        Packet::Publish(p1),
    );
}

#[test]
fn v311_publish_acknowledgements() {
    let r = PubResp {
        packet_id: 10,
        ..PubResp::default()
    };
    assert_vector(
        b"\x40\x02\x00\x0A",
        Protocol::V311,
        Packet::PubAck(r.clone()),
    );
    assert_vector(
        b"\x50\x02\x00\x0A",
        Protocol::V311,
        Packet::PubRec(r.clone()),
    );
    assert_vector(
        b"\x62\x02\x00\x0A",
        Protocol::V311,
        Packet::PubRel(r.clone()),
    );
    assert_vector(b"\x70\x02\x00\x0A", Protocol::V311, Packet::PubComp(r));
}

#[test]
fn v311_subscribe_and_suback() {
    let s = Subscribe {
        packet_id: 1,
        properties: props(),
        filters: vec![
            (
                "a/b".into(),
                SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..Default::default()
                },
            ),
            (
                "#".into(),
                SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    ..Default::default()
                },
            ),
        ],
    };
    assert_vector(
        b"\x82\x0C\x00\x01\x00\x03a/b\x01\x00\x01#\x02",
        Protocol::V311,
        Packet::Subscribe(s),
    );
    let a = SubAck {
        packet_id: 1,
        properties: props(),
        reasons: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::UNSPECIFIED_ERROR],
    };
    assert_vector(
        b"\x90\x04\x00\x01\x01\x80",
        Protocol::V311,
        Packet::SubAck(a),
    );
}

#[test]
fn v311_unsubscribe_and_unsuback() {
    let u = Unsubscribe {
        packet_id: 2,
        properties: props(),
        filters: vec!["x".into()],
    };
    assert_vector(
        b"\xA2\x05\x00\x02\x00\x01x",
        Protocol::V311,
        Packet::Unsubscribe(u),
    );
    let a = UnsubAck {
        packet_id: 2,
        ..UnsubAck::default()
    };
    assert_vector(b"\xB0\x02\x00\x02", Protocol::V311, Packet::UnsubAck(a));
}

#[test]
fn v311_ping_and_disconnect() {
    assert_vector(b"\xC0\x00", Protocol::V311, Packet::PingReq);
    assert_vector(b"\xD0\x00", Protocol::V311, Packet::PingResp);
    assert_vector(
        b"\xE0\x00",
        Protocol::V311,
        Packet::Disconnect(Disconnect::default()),
    );
}

#[test]
fn v5_connect_with_session_expiry() {
    let bytes = b"\x10\x15\x00\x04MQTT\x05\x02\x00\x3C\x05\x11\x00\x00\x00\x78\x00\x03abc";
    let c = Connect {
        protocol: Protocol::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: "abc".into(),
        properties: Properties {
            session_expiry_interval: Some(120),
            ..props()
        },
        ..Connect::default()
    };
    assert_vector(bytes, Protocol::V5, Packet::Connect(c));
}

#[test]
fn v5_connect_with_auth_method_will_properties_and_credentials() {
    let bytes = b"\x10\x28\x00\x04MQTT\x05\xC4\x00\x00\
        \x09\x15\x00\x03otp\x21\x00\x0A\
        \x00\x01c\
        \x05\x18\x00\x00\x00\x05\x00\x01t\x00\x00\
        \x00\x01u\x00\x01p";
    let c = Connect {
        protocol: Protocol::V5,
        clean_start: false,
        keep_alive: 0,
        client_id: "c".into(),
        will: Some(Will {
            topic: "t".into(),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties {
                will_delay_interval: Some(5),
                ..props()
            },
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        properties: Properties {
            authentication_method: Some("otp".into()),
            receive_maximum: Some(10),
            ..props()
        },
    };
    assert_vector(bytes, Protocol::V5, Packet::Connect(c));
}

#[test]
fn v5_connack_minimal_and_with_capabilities() {
    assert_vector(
        b"\x20\x03\x00\x00\x00",
        Protocol::V5,
        Packet::ConnAck(ConnAck::default()),
    );
    let c = ConnAck {
        session_present: false,
        reason: ReasonCode::SUCCESS,
        properties: Properties {
            maximum_qos: Some(1),
            retain_available: Some(0),
            ..props()
        },
    };
    assert_vector(
        b"\x20\x07\x00\x00\x04\x24\x01\x25\x00",
        Protocol::V5,
        Packet::ConnAck(c),
    );
}

#[test]
fn v5_publish_with_properties() {
    let p = Publish {
        qos: QoS::AtLeastOnce,
        topic: "a/b".into(),
        packet_id: 7,
        properties: Properties {
            payload_format_indicator: Some(1),
            topic_alias: Some(5),
            subscription_identifiers: vec![129],
            ..props()
        },
        payload: Bytes::from_static(b"hi"),
        ..Publish::default()
    };
    let bytes = b"\x32\x12\x00\x03a/b\x00\x07\x08\x01\x01\x0B\x81\x01\x23\x00\x05hi";
    assert_vector(bytes, Protocol::V5, Packet::Publish(p));
}

#[test]
fn v5_publish_with_topic_alias_only() {
    let p = Publish {
        topic: String::new(),
        properties: Properties {
            topic_alias: Some(5),
            ..props()
        },
        payload: Bytes::from_static(b"x"),
        ..Publish::default()
    };
    assert_vector(
        b"\x30\x07\x00\x00\x03\x23\x00\x05x",
        Protocol::V5,
        Packet::Publish(p),
    );
}

#[test]
fn v5_puback_short_forms() {
    let ok = PubResp {
        packet_id: 7,
        ..PubResp::default()
    };
    assert_vector(b"\x40\x02\x00\x07", Protocol::V5, Packet::PubAck(ok));
    let no_subs = PubResp {
        packet_id: 7,
        reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        ..PubResp::default()
    };
    assert_vector(
        b"\x40\x03\x00\x07\x10",
        Protocol::V5,
        Packet::PubAck(no_subs),
    );
    let refused = PubResp {
        packet_id: 7,
        reason: ReasonCode::NOT_AUTHORIZED,
        properties: Properties {
            reason_string: Some("no".into()),
            ..props()
        },
    };
    assert_vector(
        b"\x40\x09\x00\x07\x87\x05\x1F\x00\x02no",
        Protocol::V5,
        Packet::PubAck(refused),
    );
}

#[test]
fn v5_puback_with_reason_and_empty_property_length_decodes() {
    let p = decode_one(b"\x40\x04\x00\x07\x00\x00", V5).unwrap();
    assert_eq!(
        p,
        Packet::PubAck(PubResp {
            packet_id: 7,
            ..PubResp::default()
        })
    );
}

#[test]
fn v5_pubrec_pubrel_pubcomp() {
    let rec = PubResp {
        packet_id: 7,
        reason: ReasonCode::UNSPECIFIED_ERROR,
        ..PubResp::default()
    };
    assert_vector(b"\x50\x03\x00\x07\x80", Protocol::V5, Packet::PubRec(rec));
    let rel = PubResp {
        packet_id: 7,
        reason: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        ..PubResp::default()
    };
    assert_vector(b"\x62\x03\x00\x07\x92", Protocol::V5, Packet::PubRel(rel));
    let comp = PubResp {
        packet_id: 7,
        ..PubResp::default()
    };
    assert_vector(b"\x70\x02\x00\x07", Protocol::V5, Packet::PubComp(comp));
}

#[test]
fn v5_subscribe_with_options_and_identifier() {
    let s = Subscribe {
        packet_id: 1,
        properties: Properties {
            subscription_identifiers: vec![5],
            ..props()
        },
        filters: vec![(
            "a/+".into(),
            SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
        )],
    };
    assert_vector(
        b"\x82\x0B\x00\x01\x02\x0B\x05\x00\x03a/+\x2E",
        Protocol::V5,
        Packet::Subscribe(s),
    );
}

#[test]
fn v5_suback_unsubscribe_unsuback() {
    let a = SubAck {
        packet_id: 1,
        properties: props(),
        reasons: vec![
            ReasonCode::GRANTED_QOS_2,
            ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
        ],
    };
    assert_vector(
        b"\x90\x05\x00\x01\x00\x02\xA2",
        Protocol::V5,
        Packet::SubAck(a),
    );
    let u = Unsubscribe {
        packet_id: 2,
        properties: props(),
        filters: vec!["x".into()],
    };
    assert_vector(
        b"\xA2\x06\x00\x02\x00\x00\x01x",
        Protocol::V5,
        Packet::Unsubscribe(u),
    );
    let ua = UnsubAck {
        packet_id: 2,
        properties: props(),
        reasons: vec![ReasonCode::NO_SUBSCRIPTION_EXISTED],
    };
    assert_vector(
        b"\xB0\x04\x00\x02\x00\x11",
        Protocol::V5,
        Packet::UnsubAck(ua),
    );
}

#[test]
fn v5_ping() {
    assert_vector(b"\xC0\x00", Protocol::V5, Packet::PingReq);
    assert_vector(b"\xD0\x00", Protocol::V5, Packet::PingResp);
}

#[test]
fn v5_disconnect_forms() {
    assert_vector(
        b"\xE0\x00",
        Protocol::V5,
        Packet::Disconnect(Disconnect::default()),
    );
    let will = Disconnect {
        reason: ReasonCode::DISCONNECT_WITH_WILL,
        properties: props(),
    };
    assert_vector(b"\xE0\x01\x04", Protocol::V5, Packet::Disconnect(will));
    let expiry = Disconnect {
        reason: ReasonCode::NORMAL_DISCONNECTION,
        properties: Properties {
            session_expiry_interval: Some(0),
            ..props()
        },
    };
    assert_vector(
        b"\xE0\x07\x00\x05\x11\x00\x00\x00\x00",
        Protocol::V5,
        Packet::Disconnect(expiry),
    );
}

#[test]
fn v5_auth_forms() {
    assert_vector(b"\xF0\x00", Protocol::V5, Packet::Auth(Auth::default()));
    let challenge = Auth {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some("otp".into()),
            authentication_data: Some(Bytes::from_static(&[1, 2])),
            ..props()
        },
    };
    assert_vector(
        b"\xF0\x0D\x18\x0B\x15\x00\x03otp\x16\x00\x02\x01\x02",
        Protocol::V5,
        Packet::Auth(challenge),
    );
    // Reason code without property length is accepted, like mosquitto does.
    let p = decode_one(b"\xF0\x01\x19", V5).unwrap();
    assert_eq!(
        p,
        Packet::Auth(Auth {
            reason: ReasonCode::RE_AUTHENTICATE,
            properties: props()
        })
    );
}
