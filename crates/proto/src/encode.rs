//! Encoding: [`Packet`]s into bytes for the network.
//!
//! Each packet's remaining length is computed first, the buffer is reserved
//! once, then the fields are written. For 3.1.1 the 5.0-only parts
//! (properties, reason codes on acknowledgements) are left out; for 5.0 the
//! short forms the spec allows are used, as mosquitto and paho do.

mod properties;
mod publish;
mod wire;

use bytes::{BufMut, BytesMut};

pub use publish::{encode_outgoing_publish, outgoing_publish_len, OutgoingPublish};

use crate::decode::kind;
use crate::properties::PropertyContext as Ctx;
use crate::{
    Auth, ConnAck, Connect, Disconnect, Packet, Properties, Protocol, PubResp, ReasonCode, SubAck,
    Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use properties::PropsOut;
use wire::{block_len, field_len, put_binary, put_fixed_header, put_string, varint_len};

/// Why a packet cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The remaining length would exceed 268,435,455 bytes.
    #[error("remaining length {0} exceeds the MQTT maximum of 268435455 bytes")]
    PacketTooLarge(usize),
    /// A string or binary field longer than its 2-byte length prefix allows.
    #[error("{field} is {len} bytes, longer than the 65535 bytes MQTT allows")]
    FieldTooLong { field: &'static str, len: usize },
    /// The packet or field does not exist in MQTT 3.1.1.
    #[error("{0} cannot be expressed in MQTT 3.1.1")]
    NotInV311(&'static str),
    /// A value the wire format cannot carry.
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),
}

/// Appends `packet` to `buf` in the layout of `protocol`. On error nothing is
/// appended. For CONNECT, `protocol` (not `Connect::protocol`) decides the
/// protocol level written.
pub fn encode(packet: &Packet, protocol: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    if let Packet::Publish(p) = packet {
        return encode_outgoing_publish(&OutgoingPublish::from(p), protocol, buf);
    }
    check_expressible(packet, protocol)?;
    let start = buf.len();
    let remaining = body_len(packet, protocol);
    let result = put_fixed_header(buf, first_byte(packet), remaining)
        .and_then(|()| write_body(packet, protocol, buf));
    if result.is_err() {
        buf.truncate(start);
    }
    debug_assert!(result.is_err() || buf.len() - start == 1 + varint_len(remaining) + remaining);
    result
}

/// Appends `packet` if it fits in `max` bytes (the peer's Maximum Packet
/// Size). A packet that is too large loses its Reason String first, then its
/// User Properties (MQTT-3.1.2-25; §3.1.2.11.4, §3.14.2.2.3); one that
/// still does not fit is not sent at all. Returns whether it was appended.
pub fn encode_within(packet: &Packet, protocol: Protocol, max: usize, buf: &mut BytesMut) -> bool {
    // The common case in one pass: encode, and look at the size after.
    let start = buf.len();
    if encode(packet, protocol, buf).is_ok() && buf.len() - start <= max {
        return true;
    }
    buf.truncate(start);
    let mut slim = packet.clone();
    let Some(props) = optional_properties(&mut slim) else {
        return false;
    };
    props.reason_string = None;
    if encoded_len(&slim, protocol) > max {
        if let Some(props) = optional_properties(&mut slim) {
            props.user_properties.clear();
        }
    }
    encoded_len(&slim, protocol) <= max && encode(&slim, protocol, buf).is_ok()
}

/// The properties of a packet whose Reason String and User Properties the
/// sender may drop to respect the receiver's Maximum Packet Size.
fn optional_properties(packet: &mut Packet) -> Option<&mut crate::Properties> {
    match packet {
        Packet::ConnAck(p) => Some(&mut p.properties),
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
            Some(&mut p.properties)
        }
        Packet::SubAck(p) => Some(&mut p.properties),
        Packet::UnsubAck(p) => Some(&mut p.properties),
        Packet::Disconnect(p) => Some(&mut p.properties),
        Packet::Auth(p) => Some(&mut p.properties),
        _ => None,
    }
}

/// Total bytes [`encode`] writes for `packet`, fixed header included.
pub fn encoded_len(packet: &Packet, protocol: Protocol) -> usize {
    if let Packet::Publish(p) = packet {
        return outgoing_publish_len(&OutgoingPublish::from(p), protocol);
    }
    let remaining = body_len(packet, protocol);
    1 + varint_len(remaining) + remaining
}

fn check_expressible(packet: &Packet, protocol: Protocol) -> Result<(), EncodeError> {
    if protocol == Protocol::V5 {
        return Ok(());
    }
    match packet {
        Packet::Auth(_) => Err(EncodeError::NotInV311("AUTH")),
        Packet::Connect(c) if c.password.is_some() && c.username.is_none() => {
            Err(EncodeError::NotInV311("a password without a user name"))
        }
        _ => Ok(()),
    }
}

fn first_byte(packet: &Packet) -> u8 {
    let (kind, flags) = match packet {
        Packet::Connect(_) => (kind::CONNECT, 0),
        Packet::ConnAck(_) => (kind::CONNACK, 0),
        Packet::Publish(_) => (kind::PUBLISH, 0), // written by the publish encoder
        Packet::PubAck(_) => (kind::PUBACK, 0),
        Packet::PubRec(_) => (kind::PUBREC, 0),
        Packet::PubRel(_) => (kind::PUBREL, 0b0010),
        Packet::PubComp(_) => (kind::PUBCOMP, 0),
        Packet::Subscribe(_) => (kind::SUBSCRIBE, 0b0010),
        Packet::SubAck(_) => (kind::SUBACK, 0),
        Packet::Unsubscribe(_) => (kind::UNSUBSCRIBE, 0b0010),
        Packet::UnsubAck(_) => (kind::UNSUBACK, 0),
        Packet::PingReq => (kind::PINGREQ, 0),
        Packet::PingResp => (kind::PINGRESP, 0),
        Packet::Disconnect(_) => (kind::DISCONNECT, 0),
        Packet::Auth(_) => (kind::AUTH, 0),
    };
    (kind << 4) | flags
}

/// Property length for 5.0, `None` for 3.1.1 (no property block).
fn props_len(props: &Properties, ctx: Ctx, protocol: Protocol) -> Option<usize> {
    match protocol {
        Protocol::V5 => Some(PropsOut::new(props, ctx).len()),
        Protocol::V311 => None,
    }
}

fn opt_block_len(len: Option<usize>) -> usize {
    len.map_or(0, block_len)
}

fn write_props(
    buf: &mut BytesMut,
    props: &Properties,
    ctx: Ctx,
    len: Option<usize>,
) -> Result<(), EncodeError> {
    match len {
        Some(len) => PropsOut::new(props, ctx).write_block(buf, len),
        None => Ok(()),
    }
}

/// The short forms of 5.0 acknowledgements (§3.4.2.1, §3.14.2.1, §3.15.2.1):
/// how much of "reason code, property block" to write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tail {
    Nothing,
    ReasonOnly,
    Full(usize),
}

fn ack_tail(reason: ReasonCode, props: &Properties, ctx: Ctx, protocol: Protocol) -> Tail {
    let Some(len) = props_len(props, ctx, protocol) else {
        return Tail::Nothing;
    };
    match (len, reason) {
        (0, ReasonCode::SUCCESS) => Tail::Nothing,
        // AUTH has no reason-only form; always write its property length.
        (0, _) if ctx != Ctx::Auth => Tail::ReasonOnly,
        _ => Tail::Full(len),
    }
}

fn tail_len(t: Tail) -> usize {
    match t {
        Tail::Nothing => 0,
        Tail::ReasonOnly => 1,
        Tail::Full(len) => 1 + block_len(len),
    }
}

fn write_tail(
    buf: &mut BytesMut,
    t: Tail,
    reason: ReasonCode,
    props: &Properties,
    ctx: Ctx,
) -> Result<(), EncodeError> {
    if t != Tail::Nothing {
        buf.put_u8(reason.0);
    }
    if let Tail::Full(len) = t {
        PropsOut::new(props, ctx).write_block(buf, len)?;
    }
    Ok(())
}

fn body_len(packet: &Packet, v: Protocol) -> usize {
    match packet {
        Packet::Connect(c) => connect_len(c, v),
        Packet::ConnAck(c) => 2 + opt_block_len(props_len(&c.properties, Ctx::ConnAck, v)),
        Packet::Publish(p) => publish::remaining_len(&OutgoingPublish::from(p), v),
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            2 + tail_len(ack_tail(r.reason, &r.properties, Ctx::PubResp, v))
        }
        Packet::Subscribe(s) => {
            let filters: usize = s.filters.iter().map(|(f, _)| field_len(f.len()) + 1).sum();
            2 + opt_block_len(props_len(&s.properties, Ctx::Subscribe, v)) + filters
        }
        Packet::SubAck(s) => {
            2 + opt_block_len(props_len(&s.properties, Ctx::SubAck, v)) + s.reasons.len()
        }
        Packet::Unsubscribe(u) => {
            let filters: usize = u.filters.iter().map(|f| field_len(f.len())).sum();
            2 + opt_block_len(props_len(&u.properties, Ctx::Unsubscribe, v)) + filters
        }
        Packet::UnsubAck(u) => match v {
            Protocol::V311 => 2,
            Protocol::V5 => {
                2 + opt_block_len(props_len(&u.properties, Ctx::UnsubAck, v)) + u.reasons.len()
            }
        },
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => tail_len(ack_tail(d.reason, &d.properties, Ctx::Disconnect, v)),
        Packet::Auth(a) => tail_len(ack_tail(a.reason, &a.properties, Ctx::Auth, v)),
    }
}

fn write_body(packet: &Packet, v: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(c) => write_connect(c, v, buf),
        Packet::ConnAck(c) => write_connack(c, v, buf),
        // `encode` hands PUBLISH to the publish encoder before getting here.
        Packet::Publish(_) => Err(EncodeError::InvalidValue(
            "PUBLISH is written by encode_outgoing_publish",
        )),
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            write_pub_resp(r, v, buf)
        }
        Packet::Subscribe(s) => write_subscribe(s, v, buf),
        Packet::SubAck(s) => write_suback(s, v, buf),
        Packet::Unsubscribe(u) => write_unsubscribe(u, v, buf),
        Packet::UnsubAck(u) => write_unsuback(u, v, buf),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(d) => write_disconnect(d, v, buf),
        Packet::Auth(a) => write_auth(a, v, buf),
    }
}

const PROTOCOL_NAME: &str = "MQTT";

fn connect_len(c: &Connect, v: Protocol) -> usize {
    let mut len = field_len(PROTOCOL_NAME.len()) + 1 + 1 + 2;
    len += opt_block_len(props_len(&c.properties, Ctx::Connect, v));
    len += field_len(c.client_id.len());
    if let Some(w) = &c.will {
        len += opt_block_len(props_len(&w.properties, Ctx::Will, v));
        len += field_len(w.topic.len()) + field_len(w.payload.len());
    }
    len += c.username.as_ref().map_or(0, |u| field_len(u.len()));
    len += c.password.as_ref().map_or(0, |p| field_len(p.len()));
    len
}

fn write_connect(c: &Connect, v: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    put_string(buf, PROTOCOL_NAME, "protocol name")?;
    buf.put_u8(v.level());
    let mut flags = 0u8;
    if c.clean_start {
        flags |= 0x02;
    }
    if let Some(w) = &c.will {
        flags |= 0x04 | ((w.qos as u8) << 3);
        if w.retain {
            flags |= 0x20;
        }
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    write_props(
        buf,
        &c.properties,
        Ctx::Connect,
        props_len(&c.properties, Ctx::Connect, v),
    )?;
    put_string(buf, &c.client_id, "CONNECT client identifier")?;
    if let Some(w) = &c.will {
        write_props(
            buf,
            &w.properties,
            Ctx::Will,
            props_len(&w.properties, Ctx::Will, v),
        )?;
        put_string(buf, &w.topic, "CONNECT will topic")?;
        put_binary(buf, &w.payload, "CONNECT will payload")?;
    }
    if let Some(u) = &c.username {
        put_string(buf, u, "CONNECT user name")?;
    }
    if let Some(p) = &c.password {
        put_binary(buf, p, "CONNECT password")?;
    }
    Ok(())
}

/// Session present is written only with a success code (spec
/// §3.2.2.1.1 in 3.1.1 and 5.0: a failure code requires it to be 0).
fn write_connack(c: &ConnAck, v: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    buf.put_u8(u8::from(c.session_present && !c.reason.is_error()));
    let code = match v {
        Protocol::V311 => c.reason.to_v311_connack(),
        Protocol::V5 => c.reason.0,
    };
    buf.put_u8(code);
    write_props(
        buf,
        &c.properties,
        Ctx::ConnAck,
        props_len(&c.properties, Ctx::ConnAck, v),
    )
}

fn write_pub_resp(r: &PubResp, v: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    buf.put_u16(r.packet_id);
    let tail = ack_tail(r.reason, &r.properties, Ctx::PubResp, v);
    write_tail(buf, tail, r.reason, &r.properties, Ctx::PubResp)
}

fn options_byte(o: &SubscriptionOptions, v: Protocol) -> u8 {
    let qos = o.qos as u8;
    match v {
        Protocol::V311 => qos,
        Protocol::V5 => {
            qos | (u8::from(o.no_local) << 2)
                | (u8::from(o.retain_as_published) << 3)
                | ((o.retain_handling as u8) << 4)
        }
    }
}

fn write_subscribe(s: &Subscribe, v: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    buf.put_u16(s.packet_id);
    write_props(
        buf,
        &s.properties,
        Ctx::Subscribe,
        props_len(&s.properties, Ctx::Subscribe, v),
    )?;
    for (filter, options) in &s.filters {
        put_string(buf, filter, "SUBSCRIBE topic filter")?;
        buf.put_u8(options_byte(options, v));
    }
    Ok(())
}

/// In 3.1.1 every failure is 0x80, and so is anything that is not a
/// granted QoS.
fn write_suback(s: &SubAck, v: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    buf.put_u16(s.packet_id);
    write_props(
        buf,
        &s.properties,
        Ctx::SubAck,
        props_len(&s.properties, Ctx::SubAck, v),
    )?;
    for reason in &s.reasons {
        buf.put_u8(match (v, reason.0) {
            (Protocol::V311, code @ 0..=2) => code,
            (Protocol::V311, _) => 0x80,
            (Protocol::V5, code) => code,
        });
    }
    Ok(())
}

fn write_unsubscribe(u: &Unsubscribe, v: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    buf.put_u16(u.packet_id);
    write_props(
        buf,
        &u.properties,
        Ctx::Unsubscribe,
        props_len(&u.properties, Ctx::Unsubscribe, v),
    )?;
    for filter in &u.filters {
        put_string(buf, filter, "UNSUBSCRIBE topic filter")?;
    }
    Ok(())
}

fn write_unsuback(u: &UnsubAck, v: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    buf.put_u16(u.packet_id);
    if v == Protocol::V5 {
        write_props(
            buf,
            &u.properties,
            Ctx::UnsubAck,
            props_len(&u.properties, Ctx::UnsubAck, v),
        )?;
        for reason in &u.reasons {
            buf.put_u8(reason.0);
        }
    }
    Ok(())
}

fn write_disconnect(d: &Disconnect, v: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let tail = ack_tail(d.reason, &d.properties, Ctx::Disconnect, v);
    write_tail(buf, tail, d.reason, &d.properties, Ctx::Disconnect)
}

fn write_auth(a: &Auth, v: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let tail = ack_tail(a.reason, &a.properties, Ctx::Auth, v);
    write_tail(buf, tail, a.reason, &a.properties, Ctx::Auth)
}
