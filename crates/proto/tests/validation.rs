//! One refusal per decoding rule, each with the reason code the receiver
//! must close the connection with.

mod common;

use bytes::BytesMut;
use common::*;
use ledgermq_proto::*;

const MALFORMED: ReasonCode = ReasonCode::MALFORMED_PACKET;
const PROTOCOL: ReasonCode = ReasonCode::PROTOCOL_ERROR;

// ---- framing -------------------------------------------------------------

#[test]
fn incomplete_packet_consumes_nothing() {
    let full = b"\x30\x07\x00\x03a/bhi";
    for cut in 0..full.len() {
        let mut buf = BytesMut::from(&full[..cut]);
        assert_eq!(
            decode(&mut buf, V311, MAX_PACKET_SIZE),
            Ok(None),
            "cut at {cut}"
        );
        assert_eq!(buf.len(), cut);
    }
}

#[test]
fn two_packets_in_the_buffer_are_decoded_one_at_a_time() {
    let mut buf = BytesMut::from(&b"\xC0\x00\xD0\x00"[..]);
    assert_eq!(decode(&mut buf, V5, 100), Ok(Some(Packet::PingReq)));
    assert_eq!(&buf[..], b"\xD0\x00");
    assert_eq!(decode(&mut buf, V5, 100), Ok(Some(Packet::PingResp)));
    assert!(buf.is_empty());
}

#[test]
fn publish_payload_is_not_copied() {
    let mut buf = BytesMut::from(&b"\x30\x07\x00\x03a/bhi"[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Some(Packet::Publish(p)) = decode(&mut buf, V311, 100).unwrap() else {
        panic!()
    };
    assert!(range.contains(&(p.payload.as_ptr() as usize)));
}

#[test]
fn oversized_packet_is_refused_with_0x95_before_its_body_arrives() {
    // Fixed header only: remaining length 200, body not yet received.
    let mut buf = BytesMut::from(&[0x30, 0xC8, 0x01][..]);
    let err = decode(&mut buf, V5, 100).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PacketTooLarge {
            size: 203,
            max: 100
        }
    );
    assert_eq!(err.reason_code(), ReasonCode::PACKET_TOO_LARGE);
}

#[test]
fn packet_exactly_at_the_maximum_size_is_accepted() {
    let mut buf = BytesMut::from(&b"\x30\x07\x00\x03a/bhi"[..]);
    assert!(decode(&mut buf, V311, 9).unwrap().is_some());
}

#[test]
fn remaining_length_longer_than_four_bytes_is_refused_with_0x81() {
    assert_eq!(
        refusal(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], V5),
        MALFORMED
    );
}

#[test]
fn non_minimal_remaining_length_is_refused_with_0x81() {
    assert_eq!(refusal(&[0xC0, 0x80, 0x00], V5), MALFORMED);
}

#[test]
fn first_packet_other_than_connect_is_refused_with_0x82() {
    assert_eq!(refusal(b"\xC0\x00", None), PROTOCOL);
    assert_eq!(refusal(b"\x30\x07\x00\x03a/bhi", None), PROTOCOL);
}

#[test]
fn packet_type_0_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x00\x00", V5), MALFORMED);
}

#[test]
fn auth_in_v311_is_refused_with_0x81() {
    assert_eq!(refusal(b"\xF0\x00", V311), MALFORMED);
}

#[test]
fn reserved_fixed_header_flags_are_refused_with_0x81() {
    for bytes in [
        &b"\x60\x02\x00\x01"[..],         // PUBREL must be 0b0010
        b"\x80\x06\x00\x01\x00\x01a\x00", // SUBSCRIBE must be 0b0010
        b"\xA0\x05\x00\x01\x00\x01a",     // UNSUBSCRIBE must be 0b0010
        b"\x41\x02\x00\x01",              // PUBACK must be 0
        b"\xC1\x00",                      // PINGREQ must be 0
        b"\xE2\x00",                      // DISCONNECT must be 0
    ] {
        assert_eq!(refusal(bytes, V311), MALFORMED, "{bytes:02X?}");
        assert_eq!(refusal(bytes, V5), MALFORMED, "{bytes:02X?}");
    }
}

#[test]
fn trailing_bytes_after_the_last_field_are_refused_with_0x81() {
    assert_eq!(refusal(b"\xC0\x01\x00", V5), MALFORMED);
    assert_eq!(refusal(b"\x40\x03\x00\x01\x00", V311), MALFORMED);
    assert_eq!(refusal(b"\xE0\x01\x00", V311), MALFORMED);
    assert_eq!(refusal(b"\x20\x03\x00\x00\x00", V311), MALFORMED);
    let mut connect = connect311(0x02);
    connect.extend_from_slice(b"\x00\x01c\xFF");
    assert_eq!(refusal(&packet(0x10, &connect), None), MALFORMED);
}

#[test]
fn field_running_past_the_remaining_length_is_refused_with_0x81() {
    // Topic length 5 but only 3 bytes in the packet.
    assert_eq!(refusal(b"\x30\x05\x00\x05a/b", V5), MALFORMED);
    // Packet identifier cut short.
    assert_eq!(refusal(b"\x40\x01\x00", V5), MALFORMED);
}

// ---- PUBLISH ------------------------------------------------------------

#[test]
fn publish_with_qos_3_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x36\x07\x00\x01t\x00\x01hi", V5), MALFORMED);
}

#[test]
fn publish_qos0_with_dup_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x38\x03\x00\x01t", V5), MALFORMED);
    assert_eq!(refusal(b"\x38\x03\x00\x01t", V311), MALFORMED);
}

#[test]
fn publish_with_wildcard_topic_is_refused_with_0x90() {
    assert_eq!(
        refusal(b"\x30\x05\x00\x03a/+", V5),
        ReasonCode::TOPIC_NAME_INVALID
    );
    assert_eq!(
        refusal(b"\x30\x05\x00\x03a/#", V311),
        ReasonCode::TOPIC_NAME_INVALID
    );
}

#[test]
fn publish_topic_with_invalid_utf8_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x30\x04\x00\x02\xC3\x28", V5), MALFORMED);
}

#[test]
fn publish_topic_with_nul_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x30\x05\x00\x03a\x00b", V311), MALFORMED);
}

#[test]
fn v5_publish_with_empty_topic_and_no_alias_is_refused_with_0x82() {
    assert_eq!(refusal(b"\x30\x03\x00\x00\x00", V5), PROTOCOL);
}

#[test]
fn v311_publish_with_empty_topic_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x30\x02\x00\x00", V311), MALFORMED);
}

#[test]
fn publish_qos1_with_packet_id_0_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x32\x05\x00\x01t\x00\x00", V311), MALFORMED);
}

#[test]
fn acknowledgement_with_packet_id_0_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x40\x02\x00\x00", V5), MALFORMED);
}

// ---- SUBSCRIBE / UNSUBSCRIBE -------------------------------------------

#[test]
fn subscribe_with_packet_id_0_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x82\x06\x00\x00\x00\x01a\x00", V311), MALFORMED);
}

#[test]
fn unsubscribe_with_packet_id_0_is_refused_with_0x81() {
    assert_eq!(refusal(b"\xA2\x05\x00\x00\x00\x01a", V311), MALFORMED);
}

#[test]
fn subscribe_without_filters_is_malformed_in_v311_and_a_protocol_error_in_v5() {
    assert_eq!(refusal(b"\x82\x02\x00\x01", V311), MALFORMED);
    assert_eq!(refusal(b"\x82\x03\x00\x01\x00", V5), PROTOCOL);
}

#[test]
fn unsubscribe_without_filters_is_malformed_in_v311_and_a_protocol_error_in_v5() {
    assert_eq!(refusal(b"\xA2\x02\x00\x01", V311), MALFORMED);
    assert_eq!(refusal(b"\xA2\x03\x00\x01\x00", V5), PROTOCOL);
}

#[test]
fn subscription_options_with_reserved_bits_are_refused_with_0x81() {
    assert_eq!(refusal(b"\x82\x06\x00\x01\x00\x01a\x04", V311), MALFORMED);
    assert_eq!(refusal(b"\x82\x07\x00\x01\x00\x00\x01a\x40", V5), MALFORMED);
}

#[test]
fn subscription_with_qos_3_is_malformed_in_v311_and_a_protocol_error_in_v5() {
    // MQTT 3.1.1 §3.8.3-4 (malformed); MQTT 5.0 §3.8.3.1 (Protocol Error).
    assert_eq!(refusal(b"\x82\x06\x00\x01\x00\x01a\x03", V311), MALFORMED);
    assert_eq!(refusal(b"\x82\x07\x00\x01\x00\x00\x01a\x03", V5), PROTOCOL);
}

#[test]
fn subscription_with_retain_handling_3_is_refused_with_0x82() {
    // MQTT 5.0 §3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3".
    assert_eq!(refusal(b"\x82\x07\x00\x01\x00\x00\x01a\x30", V5), PROTOCOL);
}

#[test]
fn no_local_on_shared_subscription_is_refused_with_0x82() {
    assert_eq!(
        refusal(b"\x82\x10\x00\x01\x00\x00\x0A$share/g/a\x04", V5),
        PROTOCOL
    );
}

// ---- CONNECT ------------------------------------------------------------

fn connect_with(body_prefix: Vec<u8>, rest: &[u8]) -> Vec<u8> {
    let mut body = body_prefix;
    body.extend_from_slice(rest);
    packet(0x10, &body)
}

#[test]
fn connect_with_reserved_flag_bit_is_refused_with_0x81() {
    assert_eq!(
        refusal(&connect_with(connect311(0x03), b"\x00\x01c"), None),
        MALFORMED
    );
}

#[test]
fn connect_with_will_qos_but_no_will_flag_is_refused_with_0x81() {
    assert_eq!(
        refusal(&connect_with(connect311(0x0A), b"\x00\x01c"), None),
        MALFORMED
    );
}

#[test]
fn connect_with_will_retain_but_no_will_flag_is_refused_with_0x81() {
    assert_eq!(
        refusal(&connect_with(connect5(0x22), b"\x00\x00\x01c"), None),
        MALFORMED
    );
}

#[test]
fn connect_with_will_qos_3_is_refused_with_0x81() {
    let rest = b"\x00\x01c\x00\x01t\x00\x00";
    assert_eq!(
        refusal(&connect_with(connect311(0x1E), rest), None),
        MALFORMED
    );
}

#[test]
fn v311_connect_with_password_but_no_user_name_is_refused_with_0x81() {
    assert_eq!(
        refusal(&connect_with(connect311(0x42), b"\x00\x01c\x00\x01p"), None),
        MALFORMED
    );
}

#[test]
fn v5_connect_with_password_but_no_user_name_is_accepted() {
    let bytes = connect_with(connect5(0x42), b"\x00\x00\x01c\x00\x01p");
    let Packet::Connect(c) = decode_one(&bytes, None).unwrap() else {
        panic!()
    };
    assert_eq!((c.username, c.password.as_deref()), (None, Some(&b"p"[..])));
}

#[test]
fn connect_with_invalid_utf8_client_id_is_refused_with_0x81() {
    assert_eq!(
        refusal(&connect_with(connect311(0x02), b"\x00\x01\xFF"), None),
        MALFORMED
    );
}

#[test]
fn connect_with_will_topic_wildcard_is_refused_with_0x90() {
    let rest = b"\x00\x01c\x00\x01#\x00\x00";
    assert_eq!(
        refusal(&connect_with(connect311(0x06), rest), None),
        ReasonCode::TOPIC_NAME_INVALID
    );
}

#[test]
fn connect_with_unknown_protocol_level_is_refused_with_0x84() {
    let mqisdp = b"\x10\x0E\x00\x06MQIsdp\x03\x02\x00\x3C\x00\x00";
    let mut buf = BytesMut::from(&mqisdp[..]);
    assert_eq!(
        decode(&mut buf, None, 1000),
        Err(DecodeError::UnsupportedProtocolVersion(3))
    );
    let level6 = b"\x10\x0C\x00\x04MQTT\x06\x02\x00\x3C\x00\x00";
    assert_eq!(
        refusal(level6, None),
        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
    );
}

#[test]
fn connect_level_decides_the_version_before_negotiation() {
    let Packet::Connect(c) =
        decode_one(&connect_with(connect5(0x02), b"\x00\x00\x00"), None).unwrap()
    else {
        panic!()
    };
    assert_eq!(c.protocol, Protocol::V5);
}

// ---- properties -----------------------------------------------------------

#[test]
fn property_not_allowed_in_the_packet_is_refused_with_0x81() {
    // Topic Alias in CONNECT.
    assert_eq!(
        refusal(
            &connect_with(connect5(0x02), b"\x03\x23\x00\x01\x00\x00"),
            None
        ),
        MALFORMED
    );
    // Session Expiry Interval in PUBLISH.
    assert_eq!(
        refusal(&publish5_with_props(b"\x11\x00\x00\x00\x01"), V5),
        MALFORMED
    );
}

#[test]
fn will_delay_interval_belongs_to_the_will_properties_only() {
    let in_connect = connect_with(connect5(0x02), b"\x05\x18\x00\x00\x00\x01\x00\x00");
    assert_eq!(refusal(&in_connect, None), MALFORMED);
    let in_will = connect_with(
        connect5(0x06),
        b"\x00\x00\x00\x05\x18\x00\x00\x00\x01\x00\x01t\x00\x00",
    );
    assert!(decode_one(&in_will, None).is_ok());
}

#[test]
fn unknown_property_identifier_is_refused_with_0x81() {
    assert_eq!(refusal(&publish5_with_props(b"\x04\x00"), V5), MALFORMED);
}

#[test]
fn property_length_past_the_packet_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x30\x05\x00\x01t\x09\x01", V5), MALFORMED);
}

#[test]
fn duplicate_single_valued_property_is_refused_with_0x82() {
    assert_eq!(
        refusal(&publish5_with_props(b"\x01\x00\x01\x00"), V5),
        PROTOCOL
    );
    assert_eq!(
        refusal(&publish5_with_props(b"\x23\x00\x01\x23\x00\x02"), V5),
        PROTOCOL
    );
}

#[test]
fn user_properties_and_publish_subscription_identifiers_may_repeat() {
    let props = b"\x26\x00\x01k\x00\x01v\x26\x00\x01k\x00\x01w\x0B\x01\x0B\x02";
    let Packet::Publish(p) = decode_one(&publish5_with_props(props), V5).unwrap() else {
        panic!()
    };
    assert_eq!(p.properties.user_properties.len(), 2);
    assert_eq!(p.properties.subscription_identifiers, vec![1, 2]);
}

#[test]
fn subscribe_with_two_subscription_identifiers_is_refused_with_0x82() {
    assert_eq!(
        refusal(b"\x82\x0A\x00\x01\x04\x0B\x01\x0B\x02\x00\x01a\x00", V5),
        PROTOCOL
    );
}

#[test]
fn subscription_identifier_0_is_refused_with_0x82() {
    assert_eq!(refusal(&publish5_with_props(b"\x0B\x00"), V5), PROTOCOL);
}

#[test]
fn topic_alias_0_is_refused_with_0x82() {
    assert_eq!(refusal(&publish5_with_props(b"\x23\x00\x00"), V5), PROTOCOL);
}

#[test]
fn receive_maximum_0_is_refused_with_0x82() {
    assert_eq!(
        refusal(
            &connect_with(connect5(0x02), b"\x03\x21\x00\x00\x00\x00"),
            None
        ),
        PROTOCOL
    );
}

#[test]
fn maximum_packet_size_0_is_refused_with_0x82() {
    let bytes = connect_with(connect5(0x02), b"\x05\x27\x00\x00\x00\x00\x00\x00");
    assert_eq!(refusal(&bytes, None), PROTOCOL);
}

#[test]
fn boolean_properties_other_than_0_or_1_are_refused_with_0x82() {
    assert_eq!(refusal(&publish5_with_props(b"\x01\x02"), V5), PROTOCOL);
    for pid in [0x17u8, 0x19] {
        let bytes = connect_with(connect5(0x02), &[2, pid, 2, 0, 0]);
        assert_eq!(refusal(&bytes, None), PROTOCOL, "property {pid:#x}");
    }
    for pid in [0x24u8, 0x25, 0x28, 0x29, 0x2A] {
        assert_eq!(
            refusal(&[0x20, 5, 0, 0, 2, pid, 2], V5),
            PROTOCOL,
            "property {pid:#x}"
        );
    }
}

#[test]
fn authentication_data_without_method_is_refused_with_0x82() {
    let bytes = connect_with(connect5(0x02), b"\x04\x16\x00\x01x\x00\x00");
    assert_eq!(refusal(&bytes, None), PROTOCOL);
}

// ---- reason codes ---------------------------------------------------------

#[test]
fn reason_code_not_valid_for_the_packet_is_refused_with_0x82() {
    assert_eq!(refusal(b"\x40\x03\x00\x01\x92", V5), PROTOCOL); // PUBACK
    assert_eq!(refusal(b"\x62\x03\x00\x01\x10", V5), PROTOCOL); // PUBREL
    assert_eq!(refusal(b"\xE0\x01\x18", V5), PROTOCOL); // DISCONNECT
    assert_eq!(refusal(b"\xF0\x02\x04\x00", V5), PROTOCOL); // AUTH
    assert_eq!(refusal(b"\x20\x03\x00\x18\x00", V5), PROTOCOL); // CONNACK
    assert_eq!(refusal(b"\x90\x04\x00\x01\x00\x11", V5), PROTOCOL); // SUBACK
    assert_eq!(refusal(b"\xB0\x04\x00\x01\x00\x02", V5), PROTOCOL); // UNSUBACK
    assert_eq!(refusal(b"\x90\x03\x00\x01\x03", V311), PROTOCOL); // 3.1.1 SUBACK
    assert_eq!(refusal(b"\x20\x02\x00\x06", V311), PROTOCOL); // 3.1.1 CONNACK
}

#[test]
fn connack_with_reserved_flag_bits_is_refused_with_0x81() {
    assert_eq!(refusal(b"\x20\x02\x02\x00", V311), MALFORMED);
}

#[test]
fn connack_with_session_present_and_failure_is_refused_with_0x82() {
    assert_eq!(refusal(b"\x20\x03\x01\x87\x00", V5), PROTOCOL);
}
