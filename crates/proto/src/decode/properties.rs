//! MQTT 5.0 property blocks (spec §2.2.2).
//!
//! Classification follows the spec's wording: a property in a packet that
//! does not allow it, or an unknown identifier, cannot be parsed
//! (Malformed Packet); a repeated single-valued property or a value the
//! spec forbids is a Protocol Error.

use super::reader::{field, Field, Reader};
use super::DecodeError;
use crate::properties::{id, PropertyContext};
use crate::Properties;

/// Reads a Property Length and the properties it covers.
pub(super) fn decode_properties(
    r: &mut Reader,
    ctx: PropertyContext,
) -> Result<Properties, DecodeError> {
    let len = r.varint(field!("property length"))?;
    let len = usize::try_from(len).map_err(|_| DecodeError::Malformed("property length"))?;
    let mut block = r.sub(len, field!("property block"))?;
    let mut props = Properties::default();
    while !block.is_empty() {
        let pid = block.varint(field!("property identifier"))?;
        if !is_known(pid) {
            return Err(DecodeError::Malformed("unknown property identifier"));
        }
        if !ctx.allows(pid) {
            return Err(DecodeError::Malformed(ctx.not_allowed_message()));
        }
        decode_one(&mut block, pid, ctx, &mut props)?;
    }
    Ok(props)
}

fn is_known(pid: u32) -> bool {
    matches!(pid, 0x01..=0x03 | 0x08 | 0x09 | 0x0B | 0x11..=0x13 | 0x15..=0x1A | 0x1C | 0x1F | 0x21..=0x2A)
}

fn once<T>(slot: &mut Option<T>, value: T, duplicate: &'static str) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::Protocol(duplicate));
    }
    *slot = Some(value);
    Ok(())
}

/// A byte property whose only legal values are 0 and 1.
fn flag(r: &mut Reader, f: Field, invalid: &'static str) -> Result<u8, DecodeError> {
    match r.u8(f)? {
        v @ (0 | 1) => Ok(v),
        _ => Err(DecodeError::Protocol(invalid)),
    }
}

fn non_zero_u16(r: &mut Reader, f: Field, zero: &'static str) -> Result<u16, DecodeError> {
    match r.u16(f)? {
        0 => Err(DecodeError::Protocol(zero)),
        v => Ok(v),
    }
}

fn decode_one(
    r: &mut Reader,
    pid: u32,
    ctx: PropertyContext,
    p: &mut Properties,
) -> Result<(), DecodeError> {
    match pid {
        id::PAYLOAD_FORMAT_INDICATOR => {
            let v = flag(
                r,
                field!("Payload Format Indicator"),
                "Payload Format Indicator must be 0 or 1",
            )?;
            once(
                &mut p.payload_format_indicator,
                v,
                "Payload Format Indicator appears twice",
            )
        }
        id::MESSAGE_EXPIRY_INTERVAL => {
            let v = r.u32(field!("Message Expiry Interval"))?;
            once(
                &mut p.message_expiry_interval,
                v,
                "Message Expiry Interval appears twice",
            )
        }
        id::CONTENT_TYPE => {
            let v = r.string(field!("Content Type"))?;
            once(&mut p.content_type, v, "Content Type appears twice")
        }
        id::RESPONSE_TOPIC => {
            let v = r.string(field!("Response Topic"))?;
            if v.is_empty() || v.contains(['+', '#']) {
                return Err(DecodeError::Protocol(
                    "Response Topic is not a valid topic name",
                ));
            }
            once(&mut p.response_topic, v, "Response Topic appears twice")
        }
        id::CORRELATION_DATA => {
            let v = r.binary(field!("Correlation Data"))?;
            once(&mut p.correlation_data, v, "Correlation Data appears twice")
        }
        id::SUBSCRIPTION_IDENTIFIER => {
            let v = r.varint(field!("Subscription Identifier"))?;
            if v == 0 {
                return Err(DecodeError::Protocol("Subscription Identifier is 0"));
            }
            // PUBLISH carries one per matching subscription; SUBSCRIBE one at most.
            if ctx != PropertyContext::Publish && !p.subscription_identifiers.is_empty() {
                return Err(DecodeError::Protocol(
                    "Subscription Identifier appears twice in SUBSCRIBE",
                ));
            }
            p.subscription_identifiers.push(v);
            Ok(())
        }
        id::SESSION_EXPIRY_INTERVAL => {
            let v = r.u32(field!("Session Expiry Interval"))?;
            once(
                &mut p.session_expiry_interval,
                v,
                "Session Expiry Interval appears twice",
            )
        }
        id::ASSIGNED_CLIENT_IDENTIFIER => {
            let v = r.string(field!("Assigned Client Identifier"))?;
            once(
                &mut p.assigned_client_identifier,
                v,
                "Assigned Client Identifier appears twice",
            )
        }
        id::SERVER_KEEP_ALIVE => {
            let v = r.u16(field!("Server Keep Alive"))?;
            once(
                &mut p.server_keep_alive,
                v,
                "Server Keep Alive appears twice",
            )
        }
        id::AUTHENTICATION_METHOD => {
            let v = r.string(field!("Authentication Method"))?;
            once(
                &mut p.authentication_method,
                v,
                "Authentication Method appears twice",
            )
        }
        id::AUTHENTICATION_DATA => {
            let v = r.binary(field!("Authentication Data"))?;
            once(
                &mut p.authentication_data,
                v,
                "Authentication Data appears twice",
            )
        }
        id::REQUEST_PROBLEM_INFORMATION => {
            let v = flag(
                r,
                field!("Request Problem Information"),
                "Request Problem Information must be 0 or 1",
            )?;
            once(
                &mut p.request_problem_information,
                v,
                "Request Problem Information appears twice",
            )
        }
        id::WILL_DELAY_INTERVAL => {
            let v = r.u32(field!("Will Delay Interval"))?;
            once(
                &mut p.will_delay_interval,
                v,
                "Will Delay Interval appears twice",
            )
        }
        id::REQUEST_RESPONSE_INFORMATION => {
            let v = flag(
                r,
                field!("Request Response Information"),
                "Request Response Information must be 0 or 1",
            )?;
            once(
                &mut p.request_response_information,
                v,
                "Request Response Information appears twice",
            )
        }
        id::RESPONSE_INFORMATION => {
            let v = r.string(field!("Response Information"))?;
            once(
                &mut p.response_information,
                v,
                "Response Information appears twice",
            )
        }
        id::SERVER_REFERENCE => {
            let v = r.string(field!("Server Reference"))?;
            once(&mut p.server_reference, v, "Server Reference appears twice")
        }
        id::REASON_STRING => {
            let v = r.string(field!("Reason String"))?;
            once(&mut p.reason_string, v, "Reason String appears twice")
        }
        id::RECEIVE_MAXIMUM => {
            let v = non_zero_u16(r, field!("Receive Maximum"), "Receive Maximum is 0")?;
            once(&mut p.receive_maximum, v, "Receive Maximum appears twice")
        }
        id::TOPIC_ALIAS_MAXIMUM => {
            let v = r.u16(field!("Topic Alias Maximum"))?;
            once(
                &mut p.topic_alias_maximum,
                v,
                "Topic Alias Maximum appears twice",
            )
        }
        id::TOPIC_ALIAS => {
            let v = non_zero_u16(r, field!("Topic Alias"), "Topic Alias is 0")?;
            once(&mut p.topic_alias, v, "Topic Alias appears twice")
        }
        id::MAXIMUM_QOS => {
            let v = flag(r, field!("Maximum QoS"), "Maximum QoS must be 0 or 1")?;
            once(&mut p.maximum_qos, v, "Maximum QoS appears twice")
        }
        id::RETAIN_AVAILABLE => {
            let v = flag(
                r,
                field!("Retain Available"),
                "Retain Available must be 0 or 1",
            )?;
            once(&mut p.retain_available, v, "Retain Available appears twice")
        }
        id::USER_PROPERTY => {
            let k = r.string(field!("User Property name"))?;
            let v = r.string(field!("User Property value"))?;
            p.user_properties.push((k, v));
            Ok(())
        }
        id::MAXIMUM_PACKET_SIZE => {
            let v = r.u32(field!("Maximum Packet Size"))?;
            if v == 0 {
                return Err(DecodeError::Protocol("Maximum Packet Size is 0"));
            }
            once(
                &mut p.maximum_packet_size,
                v,
                "Maximum Packet Size appears twice",
            )
        }
        id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
            let v = flag(
                r,
                field!("Wildcard Subscription Available"),
                "Wildcard Subscription Available must be 0 or 1",
            )?;
            once(
                &mut p.wildcard_subscription_available,
                v,
                "Wildcard Subscription Available appears twice",
            )
        }
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
            let v = flag(
                r,
                field!("Subscription Identifier Available"),
                "Subscription Identifier Available must be 0 or 1",
            )?;
            once(
                &mut p.subscription_identifier_available,
                v,
                "Subscription Identifier Available appears twice",
            )
        }
        id::SHARED_SUBSCRIPTION_AVAILABLE => {
            let v = flag(
                r,
                field!("Shared Subscription Available"),
                "Shared Subscription Available must be 0 or 1",
            )?;
            once(
                &mut p.shared_subscription_available,
                v,
                "Shared Subscription Available appears twice",
            )
        }
        _ => Err(DecodeError::Malformed("unknown property identifier")),
    }
}
