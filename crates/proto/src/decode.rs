//! Decoding: bytes from the network into [`Packet`]s.
//!
//! The decoder is strict: every rule of the spec that a receiver can check
//! on one packet in isolation is checked here, and each failure names the
//! reason code the receiver must close the connection with. Rules that need
//! connection state (topic alias mapping, in-flight packet identifiers, who
//! sent a packet) are the session's job.
//!
//! Framing is length-first: the remaining length is checked against the
//! caller's maximum as soon as the fixed header is readable, so an oversized
//! packet is refused before its body is buffered.

mod packets;
mod properties;
mod reader;

use bytes::{Buf, BytesMut};

use crate::{Packet, Protocol, ReasonCode};
use reader::{parse_varint, Reader, VarInt};

/// Why a byte sequence is not an acceptable MQTT packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes cannot be parsed as the packet they claim to be (0x81).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet parses but breaks a rule of the protocol (0x82).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The whole packet, fixed header included, exceeds the limit (0x95).
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { size: usize, max: usize },
    /// CONNECT names a protocol or level other than MQTT 3.1.1 or 5.0 (0x84).
    /// The value is the protocol level byte.
    #[error("unsupported protocol version (level {0})")]
    UnsupportedProtocolVersion(u8),
    /// A PUBLISH or will topic name contains a wildcard (0x90).
    #[error("topic name contains a wildcard character")]
    TopicNameInvalid,
}

impl DecodeError {
    /// The MQTT 5.0 reason code for CONNACK or DISCONNECT.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::Malformed(_) => ReasonCode::MALFORMED_PACKET,
            DecodeError::Protocol(_) => ReasonCode::PROTOCOL_ERROR,
            DecodeError::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocolVersion(_) => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::TopicNameInvalid => ReasonCode::TOPIC_NAME_INVALID,
        }
    }
}

/// Control packet type numbers (spec §2.1.2).
pub(crate) mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
    pub const AUTH: u8 = 15;
}

/// Decodes one packet from the front of `buf`.
///
/// * `protocol` is `None` until CONNECT has been received: then only
///   CONNECT is accepted and its protocol level picks the version.
/// * `max_packet_size` bounds the whole packet including the fixed header.
///
/// Returns `Ok(None)` without consuming anything when `buf` does not yet
/// hold a whole packet; otherwise consumes exactly one packet. After an
/// error the connection must be closed; `buf` is then in no defined state.
pub fn decode(
    buf: &mut BytesMut,
    protocol: Option<Protocol>,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = first >> 4;
    let flags = first & 0x0F;
    if protocol.is_none() && packet_type != kind::CONNECT {
        return Err(DecodeError::Protocol("first packet is not CONNECT"));
    }
    check_fixed_header(packet_type, flags, protocol)?;

    let (remaining, varint_len) = match parse_varint(buf.get(1..).unwrap_or_default()) {
        VarInt::Value { value, len } => (value, len),
        VarInt::Incomplete => return Ok(None),
        VarInt::Invalid(msg) => return Err(DecodeError::Malformed(msg)),
    };
    let header_len = 1 + varint_len;
    let size = usize::try_from(remaining)
        .ok()
        .and_then(|r| r.checked_add(header_len))
        .ok_or(DecodeError::Malformed(
            "remaining length does not fit in memory",
        ))?;
    if size > max_packet_size {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }

    let mut frame = buf.split_to(size).freeze();
    frame.advance(header_len);
    let mut r = Reader::new(frame);
    let packet = decode_body(packet_type, flags, protocol, &mut r)?;
    if !r.is_empty() {
        return Err(DecodeError::Malformed(
            "bytes left over after the last field of the packet",
        ));
    }
    Ok(Some(packet))
}

/// Packet type and reserved flag bits (spec §2.1.3, table 2-2).
fn check_fixed_header(
    packet_type: u8,
    flags: u8,
    protocol: Option<Protocol>,
) -> Result<(), DecodeError> {
    let expected = match packet_type {
        0 => return Err(DecodeError::Malformed("reserved packet type 0")),
        kind::PUBLISH => return check_publish_flags(flags),
        kind::PUBREL | kind::SUBSCRIBE | kind::UNSUBSCRIBE => 0b0010,
        kind::AUTH if protocol == Some(Protocol::V311) => {
            return Err(DecodeError::Malformed(
                "reserved packet type 15 (AUTH is MQTT 5.0 only)",
            ))
        }
        _ => 0,
    };
    if flags != expected {
        return Err(DecodeError::Malformed(
            "reserved fixed header flags have the wrong value",
        ));
    }
    Ok(())
}

fn check_publish_flags(flags: u8) -> Result<(), DecodeError> {
    let qos = (flags >> 1) & 0b11;
    if qos == 3 {
        return Err(DecodeError::Malformed("PUBLISH with QoS 3"));
    }
    if qos == 0 && flags & 0b1000 != 0 {
        return Err(DecodeError::Malformed(
            "PUBLISH with QoS 0 has the DUP flag set",
        ));
    }
    Ok(())
}

fn decode_body(
    packet_type: u8,
    flags: u8,
    protocol: Option<Protocol>,
    r: &mut Reader,
) -> Result<Packet, DecodeError> {
    let Some(v) = protocol else {
        return packets::connect(r).map(Packet::Connect);
    };
    Ok(match packet_type {
        kind::CONNECT => Packet::Connect(packets::connect(r)?),
        kind::CONNACK => Packet::ConnAck(packets::connack(r, v)?),
        kind::PUBLISH => Packet::Publish(packets::publish(r, flags, v)?),
        kind::PUBACK => Packet::PubAck(packets::pub_resp(r, v, packets::PUBACK_CODES)?),
        kind::PUBREC => Packet::PubRec(packets::pub_resp(r, v, packets::PUBACK_CODES)?),
        kind::PUBREL => Packet::PubRel(packets::pub_resp(r, v, packets::PUBREL_CODES)?),
        kind::PUBCOMP => Packet::PubComp(packets::pub_resp(r, v, packets::PUBREL_CODES)?),
        kind::SUBSCRIBE => Packet::Subscribe(packets::subscribe(r, v)?),
        kind::SUBACK => Packet::SubAck(packets::suback(r, v)?),
        kind::UNSUBSCRIBE => Packet::Unsubscribe(packets::unsubscribe(r, v)?),
        kind::UNSUBACK => Packet::UnsubAck(packets::unsuback(r, v)?),
        kind::PINGREQ => Packet::PingReq,
        kind::PINGRESP => Packet::PingResp,
        kind::DISCONNECT => Packet::Disconnect(packets::disconnect(r, v)?),
        kind::AUTH => Packet::Auth(packets::auth(r)?),
        _ => return Err(DecodeError::Malformed("reserved packet type")),
    })
}
