//! The PUBLISH encoder, shared by [`crate::encode`] and the broker's
//! fan-out path.
//!
//! Fan-out sends one message to many subscribers whose packets differ only
//! in packet identifier, topic alias, subscription identifiers and the
//! remaining expiry. [`OutgoingPublish`] borrows everything, so no
//! per-subscriber `Publish` is built: the length is computed without
//! allocating, the buffer is reserved once and the bytes written directly.

use bytes::{BufMut, BytesMut};

use super::properties::PropsOut;
use super::wire::{block_len, field_len, put_fixed_header, put_string};
use super::EncodeError;
use crate::properties::PropertyContext;
use crate::{Properties, Protocol, Publish, QoS};

/// A PUBLISH to write, borrowing the message it carries.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingPublish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// `""` when sending only a topic alias (5.0).
    pub topic: &'a str,
    /// Ignored for QoS 0.
    pub packet_id: u16,
    /// The message's properties as published. Its `message_expiry_interval`,
    /// `topic_alias` and `subscription_identifiers` are ignored in favour of
    /// the fields below.
    pub properties: &'a Properties,
    /// Replaces `properties.message_expiry_interval` (remaining lifetime).
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<u16>,
    pub subscription_identifiers: &'a [u32],
    pub payload: &'a [u8],
}

impl<'a> From<&'a Publish> for OutgoingPublish<'a> {
    fn from(p: &'a Publish) -> Self {
        OutgoingPublish {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: &p.topic,
            packet_id: p.packet_id,
            properties: &p.properties,
            message_expiry_interval: p.properties.message_expiry_interval,
            topic_alias: p.properties.topic_alias,
            subscription_identifiers: &p.properties.subscription_identifiers,
            payload: &p.payload,
        }
    }
}

impl OutgoingPublish<'_> {
    fn props(&self) -> PropsOut<'_> {
        PropsOut {
            props: self.properties,
            ctx: PropertyContext::Publish,
            message_expiry_interval: self.message_expiry_interval,
            topic_alias: self.topic_alias,
            subscription_identifiers: self.subscription_identifiers,
        }
    }

    /// Remaining length, given the property length (5.0) or `None` (3.1.1).
    fn remaining(&self, props_len: Option<usize>) -> usize {
        let id_len = if self.qos == QoS::AtMostOnce { 0 } else { 2 };
        field_len(self.topic.len()) + id_len + props_len.map_or(0, block_len) + self.payload.len()
    }
}

fn props_len(p: &OutgoingPublish, protocol: Protocol) -> Option<usize> {
    match protocol {
        Protocol::V5 => Some(p.props().len()),
        Protocol::V311 => None,
    }
}

pub(super) fn remaining_len(p: &OutgoingPublish, protocol: Protocol) -> usize {
    p.remaining(props_len(p, protocol))
}

/// Total bytes [`encode_outgoing_publish`] writes, fixed header included.
pub fn outgoing_publish_len(p: &OutgoingPublish, protocol: Protocol) -> usize {
    let remaining = remaining_len(p, protocol);
    1 + super::wire::varint_len(remaining) + remaining
}

/// Appends one PUBLISH to `buf`. On error nothing is appended.
///
/// The DUP flag is written only for QoS 1 and 2 (spec §3.3.1.1).
pub fn encode_outgoing_publish(
    p: &OutgoingPublish,
    protocol: Protocol,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if p.topic.is_empty() && (protocol == Protocol::V311 || p.topic_alias.is_none()) {
        return Err(EncodeError::InvalidValue(
            "PUBLISH without topic name or topic alias",
        ));
    }
    if p.qos != QoS::AtMostOnce && p.packet_id == 0 {
        return Err(EncodeError::InvalidValue(
            "PUBLISH with QoS 1 or 2 needs a non-zero packet identifier",
        ));
    }
    let start = buf.len();
    let result = write(p, protocol, buf);
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

fn write(p: &OutgoingPublish, protocol: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let props_len = props_len(p, protocol);
    let dup = p.dup && p.qos != QoS::AtMostOnce;
    let first = 0x30 | (u8::from(dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain);
    put_fixed_header(buf, first, p.remaining(props_len))?;
    put_string(buf, p.topic, "PUBLISH topic name")?;
    if p.qos != QoS::AtMostOnce {
        buf.put_u16(p.packet_id);
    }
    if let Some(len) = props_len {
        p.props().write_block(buf, len)?;
    }
    buf.put_slice(p.payload);
    Ok(())
}
