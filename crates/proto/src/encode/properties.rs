//! Writing MQTT 5.0 property blocks.
//!
//! Length and bytes come from one walk over the properties
//! ([`PropsOut::visit`]), so `len` and `write` cannot disagree. Properties
//! the spec does not allow in the packet being written are left out.

use bytes::{BufMut, BytesMut};

use super::wire::{
    field_len, put_binary, put_string, put_varint, varint_len, MAX_REMAINING_LENGTH,
};
use super::EncodeError;
use crate::properties::{id, PropertyContext};
use crate::Properties;

enum Value<'a> {
    Byte(u8),
    U16(u16),
    U32(u32),
    VarInt(u32),
    Str(&'a str),
    Bin(&'a [u8]),
    Pair(&'a str, &'a str),
}

impl Value<'_> {
    fn len(&self) -> usize {
        match self {
            Value::Byte(_) => 1,
            Value::U16(_) => 2,
            Value::U32(_) => 4,
            Value::VarInt(v) => varint_len(usize::try_from(*v).unwrap_or(usize::MAX)),
            Value::Str(s) => field_len(s.len()),
            Value::Bin(b) => field_len(b.len()),
            Value::Pair(k, v) => field_len(k.len()) + field_len(v.len()),
        }
    }

    fn write(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        match *self {
            Value::Byte(v) => buf.put_u8(v),
            Value::U16(v) => buf.put_u16(v),
            Value::U32(v) => buf.put_u32(v),
            Value::VarInt(v) => match usize::try_from(v) {
                Ok(v) if v <= MAX_REMAINING_LENGTH => put_varint(buf, v)?,
                _ => {
                    return Err(EncodeError::InvalidValue(
                        "Subscription Identifier above 268435455",
                    ))
                }
            },
            Value::Str(s) => put_string(buf, s, "string property")?,
            Value::Bin(b) => put_binary(buf, b, "binary property")?,
            Value::Pair(k, v) => {
                put_string(buf, k, "User Property name")?;
                put_string(buf, v, "User Property value")?;
            }
        }
        Ok(())
    }
}

/// The properties to write for one packet. For PUBLISH the message expiry,
/// topic alias and subscription identifiers may differ per recipient and so
/// are given separately from the message's own properties.
pub(crate) struct PropsOut<'a> {
    pub props: &'a Properties,
    pub ctx: PropertyContext,
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<u16>,
    pub subscription_identifiers: &'a [u32],
}

impl<'a> PropsOut<'a> {
    pub(crate) fn new(props: &'a Properties, ctx: PropertyContext) -> Self {
        PropsOut {
            props,
            ctx,
            message_expiry_interval: props.message_expiry_interval,
            topic_alias: props.topic_alias,
            subscription_identifiers: &props.subscription_identifiers,
        }
    }

    /// Length of the properties, without the Property Length field.
    pub(crate) fn len(&self) -> usize {
        let mut total = 0;
        let _ = self.visit(|_, v| {
            total += 1 + v.len();
            Ok(())
        });
        total
    }

    /// Writes Property Length and properties; `len` is `self.len()`.
    pub(crate) fn write_block(&self, buf: &mut BytesMut, len: usize) -> Result<(), EncodeError> {
        put_varint(buf, len)?;
        self.visit(|pid, v| {
            // Every identifier is below 0x80, so its varint is one byte.
            buf.put_u8(pid);
            v.write(buf)
        })
    }

    fn visit<F>(&self, mut f: F) -> Result<(), EncodeError>
    where
        F: FnMut(u8, Value<'a>) -> Result<(), EncodeError>,
    {
        let p = self.props;
        let ctx = self.ctx;
        let mut emit = |pid: u32, v: Value<'a>| -> Result<(), EncodeError> {
            match u8::try_from(pid) {
                Ok(b) if ctx.allows(pid) => f(b, v),
                _ => Ok(()),
            }
        };
        macro_rules! opt {
            ($pid:expr, $field:expr, $wrap:expr) => {
                if let Some(v) = $field {
                    emit($pid, $wrap(v))?;
                }
            };
        }
        opt!(
            id::PAYLOAD_FORMAT_INDICATOR,
            p.payload_format_indicator,
            Value::Byte
        );
        opt!(
            id::MESSAGE_EXPIRY_INTERVAL,
            self.message_expiry_interval,
            Value::U32
        );
        opt!(id::CONTENT_TYPE, p.content_type.as_deref(), Value::Str);
        opt!(id::RESPONSE_TOPIC, p.response_topic.as_deref(), Value::Str);
        opt!(
            id::CORRELATION_DATA,
            p.correlation_data.as_deref(),
            Value::Bin
        );
        for &sid in self.subscription_identifiers {
            emit(id::SUBSCRIPTION_IDENTIFIER, Value::VarInt(sid))?;
        }
        opt!(
            id::SESSION_EXPIRY_INTERVAL,
            p.session_expiry_interval,
            Value::U32
        );
        opt!(
            id::ASSIGNED_CLIENT_IDENTIFIER,
            p.assigned_client_identifier.as_deref(),
            Value::Str
        );
        opt!(id::SERVER_KEEP_ALIVE, p.server_keep_alive, Value::U16);
        opt!(
            id::AUTHENTICATION_METHOD,
            p.authentication_method.as_deref(),
            Value::Str
        );
        opt!(
            id::AUTHENTICATION_DATA,
            p.authentication_data.as_deref(),
            Value::Bin
        );
        opt!(
            id::REQUEST_PROBLEM_INFORMATION,
            p.request_problem_information,
            Value::Byte
        );
        opt!(id::WILL_DELAY_INTERVAL, p.will_delay_interval, Value::U32);
        opt!(
            id::REQUEST_RESPONSE_INFORMATION,
            p.request_response_information,
            Value::Byte
        );
        opt!(
            id::RESPONSE_INFORMATION,
            p.response_information.as_deref(),
            Value::Str
        );
        opt!(
            id::SERVER_REFERENCE,
            p.server_reference.as_deref(),
            Value::Str
        );
        opt!(id::REASON_STRING, p.reason_string.as_deref(), Value::Str);
        opt!(id::RECEIVE_MAXIMUM, p.receive_maximum, Value::U16);
        opt!(id::TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum, Value::U16);
        opt!(id::TOPIC_ALIAS, self.topic_alias, Value::U16);
        opt!(id::MAXIMUM_QOS, p.maximum_qos, Value::Byte);
        opt!(id::RETAIN_AVAILABLE, p.retain_available, Value::Byte);
        for (k, v) in &p.user_properties {
            emit(id::USER_PROPERTY, Value::Pair(k, v))?;
        }
        opt!(id::MAXIMUM_PACKET_SIZE, p.maximum_packet_size, Value::U32);
        opt!(
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            p.wildcard_subscription_available,
            Value::Byte
        );
        opt!(
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            p.subscription_identifier_available,
            Value::Byte
        );
        opt!(
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            p.shared_subscription_available,
            Value::Byte
        );
        Ok(())
    }
}
