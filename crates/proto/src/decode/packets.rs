//! Variable header and payload of each control packet (spec chapter 3).
//!
//! Each function reads the fields of one packet type from a reader that
//! holds exactly the packet's remaining length; the caller refuses bytes
//! left over afterwards.

use super::properties::decode_properties;
use super::reader::{field, Reader};
use super::DecodeError;
use crate::properties::PropertyContext;
use crate::{
    Auth, ConnAck, Connect, Disconnect, Properties, Protocol, PubResp, Publish, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};

/// The reason codes one packet type may carry (spec §2.4, table 2-6).
pub(super) struct Codes {
    valid: &'static [u8],
    invalid: &'static str,
}

impl Codes {
    fn check(&self, code: u8) -> Result<ReasonCode, DecodeError> {
        if self.valid.contains(&code) {
            Ok(ReasonCode(code))
        } else {
            Err(DecodeError::Protocol(self.invalid))
        }
    }
}

const CONNACK_CODES: Codes = Codes {
    valid: &[
        0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
        0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
    ],
    invalid: "reason code not valid in CONNACK",
};
pub(super) const PUBACK_CODES: Codes = Codes {
    valid: &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
    invalid: "reason code not valid in PUBACK/PUBREC",
};
pub(super) const PUBREL_CODES: Codes = Codes {
    valid: &[0x00, 0x92],
    invalid: "reason code not valid in PUBREL/PUBCOMP",
};
const SUBACK_CODES: Codes = Codes {
    valid: &[
        0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
    ],
    invalid: "reason code not valid in SUBACK",
};
const SUBACK_V311_CODES: Codes = Codes {
    valid: &[0x00, 0x01, 0x02, 0x80],
    invalid: "SUBACK return code is not 0x00, 0x01, 0x02 or 0x80",
};
const UNSUBACK_CODES: Codes = Codes {
    valid: &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
    invalid: "reason code not valid in UNSUBACK",
};
const DISCONNECT_CODES: Codes = Codes {
    valid: &[
        0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
        0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
    ],
    invalid: "reason code not valid in DISCONNECT",
};
const AUTH_CODES: Codes = Codes {
    valid: &[0x00, 0x18, 0x19],
    invalid: "reason code not valid in AUTH",
};

fn properties_if_v5(
    r: &mut Reader,
    v: Protocol,
    ctx: PropertyContext,
) -> Result<Properties, DecodeError> {
    match v {
        Protocol::V5 => decode_properties(r, ctx),
        Protocol::V311 => Ok(Properties::default()),
    }
}

/// A packet identifier, which must be non-zero (spec §2.2.1).
fn packet_id(r: &mut Reader) -> Result<u16, DecodeError> {
    match r.u16(field!("packet identifier"))? {
        0 => Err(DecodeError::Malformed("packet identifier is 0")),
        id => Ok(id),
    }
}

/// "MQTT 3.1.1: Malformed Packet; MQTT 5.0: Protocol Error" for rules that
/// 3.1.1 states as framing and 5.0 as protocol.
fn by_version(v: Protocol, msg: &'static str) -> DecodeError {
    match v {
        Protocol::V311 => DecodeError::Malformed(msg),
        Protocol::V5 => DecodeError::Protocol(msg),
    }
}

pub(super) fn connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.binary(field!("CONNECT protocol name"))?;
    let level = r.u8(field!("CONNECT protocol level"))?;
    let protocol = match (&name[..], level) {
        (b"MQTT", 4) => Protocol::V311,
        (b"MQTT", 5) => Protocol::V5,
        _ => return Err(DecodeError::UnsupportedProtocolVersion(level)),
    };
    let flags = r.u8(field!("CONNECT flags"))?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::Malformed("CONNECT reserved flag bit 0 is set"));
    }
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::Malformed(
            "CONNECT will QoS or will retain set without the will flag",
        ));
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::Malformed("CONNECT will QoS 3"))?;
    if protocol == Protocol::V311 && has_password && !has_username {
        return Err(DecodeError::Malformed(
            "CONNECT password flag set without the user name flag",
        ));
    }
    let keep_alive = r.u16(field!("CONNECT keep alive"))?;
    let properties = properties_if_v5(r, protocol, PropertyContext::Connect)?;
    if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
        return Err(DecodeError::Protocol(
            "CONNECT has Authentication Data without Authentication Method",
        ));
    }
    let client_id = r.string(field!("CONNECT client identifier"))?;
    let will = if will_flag {
        let properties = properties_if_v5(r, protocol, PropertyContext::Will)?;
        let topic = r.string(field!("CONNECT will topic"))?;
        if crate::topic::validate_name(&topic).is_err() {
            return Err(DecodeError::TopicNameInvalid);
        }
        let payload = r.binary(field!("CONNECT will payload"))?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string(field!("CONNECT user name"))?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary(field!("CONNECT password"))?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

pub(super) fn connack(r: &mut Reader, v: Protocol) -> Result<ConnAck, DecodeError> {
    let flags = r.u8(field!("CONNACK acknowledge flags"))?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::Malformed(
            "CONNACK reserved acknowledge flag bits are set",
        ));
    }
    let code = r.u8(field!("CONNACK reason code"))?;
    let reason = match v {
        Protocol::V311 => ReasonCode::from_v311_connack(code)
            .ok_or(DecodeError::Protocol("CONNACK return code greater than 5"))?,
        Protocol::V5 => CONNACK_CODES.check(code)?,
    };
    let session_present = flags & 0x01 != 0;
    if session_present && reason.is_error() {
        return Err(DecodeError::Protocol(
            "CONNACK sets session present with a failure code",
        ));
    }
    let properties = properties_if_v5(r, v, PropertyContext::ConnAck)?;
    Ok(ConnAck {
        session_present,
        reason,
        properties,
    })
}

pub(super) fn publish(r: &mut Reader, flags: u8, v: Protocol) -> Result<Publish, DecodeError> {
    let qos =
        QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::Malformed("PUBLISH with QoS 3"))?;
    let topic = r.string(field!("PUBLISH topic name"))?;
    if topic.contains(['+', '#']) {
        return Err(DecodeError::TopicNameInvalid);
    }
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        packet_id(r)?
    };
    let properties = properties_if_v5(r, v, PropertyContext::Publish)?;
    if topic.is_empty() {
        match v {
            Protocol::V311 => return Err(DecodeError::Malformed("PUBLISH topic name is empty")),
            Protocol::V5 if properties.topic_alias.is_none() => {
                return Err(DecodeError::Protocol(
                    "PUBLISH topic name is empty and there is no Topic Alias",
                ))
            }
            Protocol::V5 => {}
        }
    }
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP. In 5.0 the reason code and the
/// property length may be left out (remaining length 2 or 3, §3.4.2.1).
pub(super) fn pub_resp(r: &mut Reader, v: Protocol, codes: Codes) -> Result<PubResp, DecodeError> {
    let packet_id = packet_id(r)?;
    let mut resp = PubResp {
        packet_id,
        ..PubResp::default()
    };
    if v == Protocol::V311 || r.is_empty() {
        return Ok(resp);
    }
    resp.reason = codes.check(r.u8(field!("reason code"))?)?;
    if !r.is_empty() {
        resp.properties = decode_properties(r, PropertyContext::PubResp)?;
    }
    Ok(resp)
}

pub(super) fn subscribe(r: &mut Reader, v: Protocol) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = properties_if_v5(r, v, PropertyContext::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string(field!("SUBSCRIBE topic filter"))?;
        let options = subscription_options(r.u8(field!("SUBSCRIBE options"))?, v)?;
        if options.no_local && filter.starts_with("$share/") {
            return Err(DecodeError::Protocol(
                "SUBSCRIBE sets No Local on a shared subscription",
            ));
        }
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(by_version(v, "SUBSCRIBE without topic filters"));
    }
    Ok(Subscribe {
        packet_id,
        properties,
        filters,
    })
}

/// Subscription options byte (3.1.1 §3.8.3.1, 5.0 §3.8.3.1).
fn subscription_options(byte: u8, v: Protocol) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = match v {
        Protocol::V311 => 0xFC,
        Protocol::V5 => 0xC0,
    };
    if byte & reserved != 0 {
        return Err(DecodeError::Malformed(
            "SUBSCRIBE options reserved bits are set",
        ));
    }
    let qos = QoS::from_u8(byte & 0b11).ok_or(by_version(v, "SUBSCRIBE requests QoS 3"))?;
    let retain_handling = match (byte >> 4) & 0b11 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(DecodeError::Protocol("SUBSCRIBE retain handling 3")),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

pub(super) fn suback(r: &mut Reader, v: Protocol) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = properties_if_v5(r, v, PropertyContext::SubAck)?;
    let codes = match v {
        Protocol::V311 => &SUBACK_V311_CODES,
        Protocol::V5 => &SUBACK_CODES,
    };
    let reasons = r
        .rest()
        .iter()
        .map(|&c| codes.check(c))
        .collect::<Result<Vec<_>, _>>()?;
    if reasons.is_empty() {
        return Err(by_version(v, "SUBACK without return codes"));
    }
    Ok(SubAck {
        packet_id,
        properties,
        reasons,
    })
}

pub(super) fn unsubscribe(r: &mut Reader, v: Protocol) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = properties_if_v5(r, v, PropertyContext::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string(field!("UNSUBSCRIBE topic filter"))?);
    }
    if filters.is_empty() {
        return Err(by_version(v, "UNSUBSCRIBE without topic filters"));
    }
    Ok(Unsubscribe {
        packet_id,
        properties,
        filters,
    })
}

pub(super) fn unsuback(r: &mut Reader, v: Protocol) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    if v == Protocol::V311 {
        return Ok(UnsubAck {
            packet_id,
            ..UnsubAck::default()
        });
    }
    let properties = decode_properties(r, PropertyContext::UnsubAck)?;
    let reasons = r
        .rest()
        .iter()
        .map(|&c| UNSUBACK_CODES.check(c))
        .collect::<Result<Vec<_>, _>>()?;
    if reasons.is_empty() {
        return Err(DecodeError::Protocol("UNSUBACK without reason codes"));
    }
    Ok(UnsubAck {
        packet_id,
        properties,
        reasons,
    })
}

/// In 5.0 a DISCONNECT of remaining length 0 means Normal disconnection and
/// one of length 1 has no properties (§3.14.2.1).
pub(super) fn disconnect(r: &mut Reader, v: Protocol) -> Result<Disconnect, DecodeError> {
    let mut d = Disconnect::default();
    if v == Protocol::V311 || r.is_empty() {
        return Ok(d);
    }
    d.reason = DISCONNECT_CODES.check(r.u8(field!("DISCONNECT reason code"))?)?;
    if !r.is_empty() {
        d.properties = decode_properties(r, PropertyContext::Disconnect)?;
    }
    Ok(d)
}

/// AUTH of remaining length 0 means Success (§3.15.2.1). Like mosquitto we
/// also accept a reason code without a property length.
pub(super) fn auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    let mut a = Auth::default();
    if r.is_empty() {
        return Ok(a);
    }
    a.reason = AUTH_CODES.check(r.u8(field!("AUTH reason code"))?)?;
    if !r.is_empty() {
        a.properties = decode_properties(r, PropertyContext::Auth)?;
    }
    if a.properties.authentication_data.is_some() && a.properties.authentication_method.is_none() {
        return Err(DecodeError::Protocol(
            "AUTH has Authentication Data without Authentication Method",
        ));
    }
    Ok(a)
}
