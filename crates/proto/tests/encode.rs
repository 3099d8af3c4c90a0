//! Encoder behaviour beyond the byte vectors: 3.1.1 down-mapping, refusals
//! and the fan-out PUBLISH encoder.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use ledgermq_proto::*;

#[test]
fn v311_suback_writes_every_failure_as_0x80() {
    let a = SubAck {
        packet_id: 1,
        properties: Properties::default(),
        reasons: vec![
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::QUOTA_EXCEEDED,
        ],
    };
    assert_eq!(
        encode_vec(&Packet::SubAck(a), Protocol::V311),
        b"\x90\x05\x00\x01\x00\x80\x80"
    );
}

#[test]
fn v311_connack_maps_v5_reasons_to_return_codes() {
    let c = ConnAck {
        reason: ReasonCode::BANNED,
        ..ConnAck::default()
    };
    assert_eq!(
        encode_vec(&Packet::ConnAck(c), Protocol::V311),
        b"\x20\x02\x00\x05"
    );
    let c = ConnAck {
        reason: ReasonCode::BAD_AUTHENTICATION_METHOD,
        ..ConnAck::default()
    };
    assert_eq!(
        encode_vec(&Packet::ConnAck(c), Protocol::V311),
        b"\x20\x02\x00\x04"
    );
}

#[test]
fn connack_failure_never_claims_a_session() {
    let c = ConnAck {
        session_present: true,
        reason: ReasonCode::NOT_AUTHORIZED,
        ..ConnAck::default()
    };
    assert_eq!(
        encode_vec(&Packet::ConnAck(c), Protocol::V5),
        b"\x20\x03\x00\x87\x00"
    );
}

#[test]
fn v311_unsuback_and_disconnect_drop_v5_fields() {
    let u = UnsubAck {
        packet_id: 3,
        properties: Properties {
            reason_string: Some("x".into()),
            ..Properties::default()
        },
        reasons: vec![ReasonCode::SUCCESS],
    };
    assert_eq!(
        encode_vec(&Packet::UnsubAck(u), Protocol::V311),
        b"\xB0\x02\x00\x03"
    );
    let d = Disconnect {
        reason: ReasonCode::SERVER_SHUTTING_DOWN,
        ..Disconnect::default()
    };
    assert_eq!(
        encode_vec(&Packet::Disconnect(d), Protocol::V311),
        b"\xE0\x00"
    );
}

#[test]
fn auth_cannot_be_encoded_for_v311() {
    let mut buf = BytesMut::new();
    let err = encode(&Packet::Auth(Auth::default()), Protocol::V311, &mut buf).unwrap_err();
    assert_eq!(err, EncodeError::NotInV311("AUTH"));
    assert!(buf.is_empty());
}

#[test]
fn string_longer_than_65535_bytes_is_refused_and_nothing_is_written() {
    let mut buf = BytesMut::from(&b"prefix"[..]);
    let s = Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        filters: vec![("a".repeat(70_000), SubscriptionOptions::default())],
    };
    let err = encode(&Packet::Subscribe(s), Protocol::V5, &mut buf).unwrap_err();
    assert!(matches!(err, EncodeError::FieldTooLong { len: 70_000, .. }));
    assert_eq!(&buf[..], b"prefix");
}

#[test]
fn property_not_allowed_in_the_packet_is_left_out() {
    let a = PubResp {
        packet_id: 1,
        reason: ReasonCode::SUCCESS,
        properties: Properties {
            topic_alias: Some(3),
            ..Properties::default()
        },
    };
    assert_eq!(
        encode_vec(&Packet::PubAck(a), Protocol::V5),
        b"\x40\x02\x00\x01"
    );
}

#[test]
fn qos0_publish_never_carries_dup() {
    let p = Publish {
        dup: true,
        topic: "t".into(),
        ..Publish::default()
    };
    assert_eq!(
        encode_vec(&Packet::Publish(p), Protocol::V5),
        b"\x30\x04\x00\x01t\x00"
    );
}

#[test]
fn publish_without_topic_or_alias_is_refused() {
    let p = Publish::default();
    assert!(encode(&Packet::Publish(p), Protocol::V5, &mut BytesMut::new()).is_err());
}

fn sample_publish() -> Publish {
    Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: true,
        topic: "sensors/1/temp".into(),
        packet_id: 42,
        properties: Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(300),
            content_type: Some("text/plain".into()),
            correlation_data: Some(Bytes::from_static(b"corr")),
            user_properties: vec![("k".into(), "v".into())],
            ..Properties::default()
        },
        payload: Bytes::from_static(b"21.5"),
    }
}

#[test]
fn fan_out_encoder_matches_the_packet_encoder() {
    let p = sample_publish();
    for v in [Protocol::V311, Protocol::V5] {
        let mut fast = BytesMut::new();
        let out = OutgoingPublish::from(&p);
        encode_outgoing_publish(&out, v, &mut fast).unwrap();
        assert_eq!(fast.len(), outgoing_publish_len(&out, v));
        assert_eq!(&fast[..], &encode_vec(&Packet::Publish(p.clone()), v)[..]);
    }
}

#[test]
fn fan_out_encoder_replaces_expiry_alias_and_subscription_identifiers() {
    let mut stored = sample_publish();
    // The stored message's own alias and identifiers must not leak out.
    stored.properties.topic_alias = Some(99);
    stored.properties.subscription_identifiers = vec![77];
    let out = OutgoingPublish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "",
        packet_id: 7,
        properties: &stored.properties,
        message_expiry_interval: Some(120),
        topic_alias: Some(3),
        subscription_identifiers: &[1, 2],
        payload: &stored.payload,
    };
    let mut buf = BytesMut::new();
    encode_outgoing_publish(&out, Protocol::V5, &mut buf).unwrap();
    let Packet::Publish(got) = decode_one(&buf, V5).unwrap() else {
        panic!()
    };
    let mut want_props = sample_publish().properties;
    want_props.message_expiry_interval = Some(120);
    want_props.topic_alias = Some(3);
    want_props.subscription_identifiers = vec![1, 2];
    let want = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: String::new(),
        packet_id: 7,
        properties: want_props,
        payload: stored.payload.clone(),
    };
    assert_eq!(got, want);
    // Same bytes as the packet encoder for the same content.
    assert_eq!(
        &buf[..],
        &encode_vec(&Packet::Publish(want), Protocol::V5)[..]
    );
}

#[test]
fn fan_out_encoder_for_v311_leaves_properties_out() {
    let p = sample_publish();
    let mut buf = BytesMut::new();
    encode_outgoing_publish(&OutgoingPublish::from(&p), Protocol::V311, &mut buf).unwrap();
    assert_eq!(&buf[..], b"\x35\x16\x00\x0Esensors/1/temp\x00\x2A21.5");
}

/// A packet over the peer's Maximum Packet Size loses its Reason String,
/// then its User Properties, and is not sent when it still does not fit
/// (MQTT-3.1.2-25, §3.14.2.2.3).
#[test]
fn encode_within_drops_reason_string_then_user_properties() {
    let full = Packet::Disconnect(Disconnect {
        reason: ReasonCode::SESSION_TAKEN_OVER,
        properties: Properties {
            reason_string: Some("x".repeat(100)),
            user_properties: vec![("k".into(), "v".repeat(50))],
            ..Default::default()
        },
    });
    let full_len = encoded_len(&full, Protocol::V5);
    let mut buf = BytesMut::new();
    assert!(encode_within(&full, Protocol::V5, full_len, &mut buf));
    assert_eq!(buf.len(), full_len);

    let mut buf = BytesMut::new();
    assert!(encode_within(&full, Protocol::V5, 80, &mut buf));
    let decoded = ledgermq_proto::decode(&mut buf, Some(Protocol::V5), 1 << 20)
        .unwrap()
        .unwrap();
    let Packet::Disconnect(d) = decoded else {
        panic!("{decoded:?}")
    };
    assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER);
    assert_eq!(d.properties.reason_string, None);
    assert_eq!(
        d.properties.user_properties.len(),
        1,
        "user properties fit once the reason string is gone"
    );

    let mut buf = BytesMut::new();
    assert!(encode_within(&full, Protocol::V5, 10, &mut buf));
    assert!(buf.len() <= 4, "bare DISCONNECT: type, length, reason code");
    let mut buf = BytesMut::new();
    assert!(!encode_within(&full, Protocol::V5, 2, &mut buf));
    assert!(buf.is_empty());
}
