//! Helpers shared by the integration tests.
#![allow(dead_code)]

use bytes::BytesMut;
use ledgermq_proto::{
    decode, encode, encoded_len, DecodeError, Packet, Protocol, ReasonCode, MAX_PACKET_SIZE,
};

/// Decodes exactly one whole packet from `bytes`.
pub fn decode_one(bytes: &[u8], state: Option<Protocol>) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, state, MAX_PACKET_SIZE)?.expect("vector is a whole packet");
    assert!(buf.is_empty(), "decode left {} bytes", buf.len());
    Ok(packet)
}

pub fn encode_vec(packet: &Packet, v: Protocol) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(packet, v, &mut buf).expect("encodes");
    assert_eq!(buf.len(), encoded_len(packet, v), "encoded_len");
    buf.to_vec()
}

/// `bytes` decodes to `packet` and `packet` encodes to `bytes`.
pub fn assert_vector(bytes: &[u8], v: Protocol, packet: Packet) {
    let state = if matches!(packet, Packet::Connect(_)) {
        None
    } else {
        Some(v)
    };
    assert_eq!(decode_one(bytes, state).expect("decodes"), packet);
    assert_eq!(encode_vec(&packet, v), bytes, "encoding of {packet:?}");
}

/// The reason code `bytes` is refused with.
pub fn refusal(bytes: &[u8], state: Option<Protocol>) -> ReasonCode {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, state, MAX_PACKET_SIZE) {
        Err(e) => e.reason_code(),
        Ok(p) => panic!("expected a refusal, decoded {p:?}"),
    }
}

/// Wraps a body in a fixed header (remaining length < 128).
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut v = vec![first, body.len() as u8];
    v.extend_from_slice(body);
    v
}

/// A CONNECT 5.0 body prefix up to and including the keep alive.
pub fn connect5(flags: u8) -> Vec<u8> {
    vec![0, 4, b'M', b'Q', b'T', b'T', 5, flags, 0, 60]
}

pub fn connect311(flags: u8) -> Vec<u8> {
    vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60]
}

/// A 5.0 PUBLISH QoS 0 on topic "t" with the given property bytes.
pub fn publish5_with_props(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, b't', props.len() as u8];
    body.extend_from_slice(props);
    packet(0x30, &body)
}

pub const V5: Option<Protocol> = Some(Protocol::V5);
pub const V311: Option<Protocol> = Some(Protocol::V311);
