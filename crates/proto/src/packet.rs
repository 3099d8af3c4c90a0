//! MQTT control packets as plain data.
//!
//! One struct per packet type. The same structs carry MQTT 3.1.1 and 5.0
//! packets: fields that only exist in 5.0 (properties, reason codes on
//! acknowledgements) are ignored when encoding for 3.1.1 and left at their
//! defaults when decoding 3.1.1.

use bytes::Bytes;

use crate::{Properties, ReasonCode};

/// Protocol version negotiated by CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    #[default]
    V5,
}

impl Protocol {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Protocol::V311 => 4,
            Protocol::V5 => 5,
        }
    }
}

/// Quality of service level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// One MQTT control packet.
///
/// CONNECT is much larger than the other variants (two property sets) but
/// arrives once per connection, so it is not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubResp),
    PubRec(PubResp),
    PubRel(PubResp),
    PubComp(PubResp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    /// MQTT 5.0 only.
    Auth(Auth),
}

impl Packet {
    /// The control packet type name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    /// Set from the protocol level when decoding. When encoding, the
    /// `protocol` argument of [`crate::encode`] decides the layout.
    pub protocol: Protocol,
    /// 3.1.1 "clean session" / 5.0 "clean start".
    pub clean_start: bool,
    pub keep_alive: u16,
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Will properties (5.0): will delay interval, message expiry, content type…
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    pub session_present: bool,
    /// 5.0 reason code. For 3.1.1 the encoder maps it to the nearest
    /// 3.1.1 return code (see [`ReasonCode::to_v311_connack`]).
    pub reason: ReasonCode,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty in 5.0 when a topic alias is used.
    pub topic: String,
    /// 0 for QoS 0.
    pub packet_id: u16,
    pub properties: Properties,
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one layout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PubResp {
    pub packet_id: u16,
    pub reason: ReasonCode,
    pub properties: Properties,
}

/// Retain handling option of a subscription (5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send retained messages only if the subscription did not exist.
    SendIfNew = 1,
    /// Do not send retained messages.
    DoNotSend = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribe {
    pub packet_id: u16,
    /// Subscription identifier and user properties (5.0).
    pub properties: Properties,
    pub filters: Vec<(String, SubscriptionOptions)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubAck {
    pub packet_id: u16,
    pub properties: Properties,
    /// One per filter: GrantedQoS0/1/2 or a failure code. For 3.1.1 the
    /// encoder writes any failure code as 0x80.
    pub reasons: Vec<ReasonCode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub properties: Properties,
    pub filters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub properties: Properties,
    /// 5.0 only; empty for 3.1.1.
    pub reasons: Vec<ReasonCode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason: ReasonCode,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Success (0x00), ContinueAuthentication (0x18) or ReAuthenticate (0x19).
    pub reason: ReasonCode,
    pub properties: Properties,
}
