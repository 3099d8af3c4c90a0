//! MQTT 5.0 properties (spec §2.2.2.2).
//!
//! One struct holds every property; the decoder rejects a property that is
//! not allowed in the packet it appears in (Malformed Packet) and a property
//! that appears twice where only one is allowed (Protocol Error).

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    /// 0x01, PUBLISH and will.
    pub payload_format_indicator: Option<u8>,
    /// 0x02, PUBLISH and will.
    pub message_expiry_interval: Option<u32>,
    /// 0x03, PUBLISH and will.
    pub content_type: Option<String>,
    /// 0x08, PUBLISH and will.
    pub response_topic: Option<String>,
    /// 0x09, PUBLISH and will.
    pub correlation_data: Option<Bytes>,
    /// 0x0B, PUBLISH (several allowed, server to client) and SUBSCRIBE (one).
    pub subscription_identifiers: Vec<u32>,
    /// 0x11, CONNECT, CONNACK, DISCONNECT.
    pub session_expiry_interval: Option<u32>,
    /// 0x12, CONNACK.
    pub assigned_client_identifier: Option<String>,
    /// 0x13, CONNACK.
    pub server_keep_alive: Option<u16>,
    /// 0x15, CONNECT, CONNACK, AUTH.
    pub authentication_method: Option<String>,
    /// 0x16, CONNECT, CONNACK, AUTH.
    pub authentication_data: Option<Bytes>,
    /// 0x17, CONNECT.
    pub request_problem_information: Option<u8>,
    /// 0x18, will.
    pub will_delay_interval: Option<u32>,
    /// 0x19, CONNECT.
    pub request_response_information: Option<u8>,
    /// 0x1A, CONNACK.
    pub response_information: Option<String>,
    /// 0x1C, CONNACK, DISCONNECT.
    pub server_reference: Option<String>,
    /// 0x1F, CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH.
    pub reason_string: Option<String>,
    /// 0x21, CONNECT, CONNACK.
    pub receive_maximum: Option<u16>,
    /// 0x22, CONNECT, CONNACK.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23, PUBLISH.
    pub topic_alias: Option<u16>,
    /// 0x24, CONNACK.
    pub maximum_qos: Option<u8>,
    /// 0x25, CONNACK.
    pub retain_available: Option<u8>,
    /// 0x26, all packets that have properties; order preserved.
    pub user_properties: Vec<(String, String)>,
    /// 0x27, CONNECT, CONNACK.
    pub maximum_packet_size: Option<u32>,
    /// 0x28, CONNACK.
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29, CONNACK.
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A, CONNACK.
    pub shared_subscription_available: Option<u8>,
}

impl Properties {
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }
}

/// Property identifiers (spec §2.2.2.2, table 2-4).
pub(crate) mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u32 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u32 = 0x02;
    pub const CONTENT_TYPE: u32 = 0x03;
    pub const RESPONSE_TOPIC: u32 = 0x08;
    pub const CORRELATION_DATA: u32 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u32 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u32 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u32 = 0x12;
    pub const SERVER_KEEP_ALIVE: u32 = 0x13;
    pub const AUTHENTICATION_METHOD: u32 = 0x15;
    pub const AUTHENTICATION_DATA: u32 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u32 = 0x17;
    pub const WILL_DELAY_INTERVAL: u32 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u32 = 0x19;
    pub const RESPONSE_INFORMATION: u32 = 0x1A;
    pub const SERVER_REFERENCE: u32 = 0x1C;
    pub const REASON_STRING: u32 = 0x1F;
    pub const RECEIVE_MAXIMUM: u32 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u32 = 0x22;
    pub const TOPIC_ALIAS: u32 = 0x23;
    pub const MAXIMUM_QOS: u32 = 0x24;
    pub const RETAIN_AVAILABLE: u32 = 0x25;
    pub const USER_PROPERTY: u32 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u32 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u32 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u32 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u32 = 0x2A;
}

/// Where a property set sits. The decoder refuses a property the spec does
/// not allow there; the encoder leaves such a property out rather than put a
/// packet on the wire that the peer must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    PubResp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl PropertyContext {
    /// Whether property `pid` may appear in this context (table 2-4).
    pub(crate) fn allows(self, pid: u32) -> bool {
        use id::*;
        use PropertyContext as C;
        match pid {
            PAYLOAD_FORMAT_INDICATOR
            | MESSAGE_EXPIRY_INTERVAL
            | CONTENT_TYPE
            | RESPONSE_TOPIC
            | CORRELATION_DATA => matches!(self, C::Publish | C::Will),
            SUBSCRIPTION_IDENTIFIER => matches!(self, C::Publish | C::Subscribe),
            SESSION_EXPIRY_INTERVAL => matches!(self, C::Connect | C::ConnAck | C::Disconnect),
            ASSIGNED_CLIENT_IDENTIFIER
            | SERVER_KEEP_ALIVE
            | RESPONSE_INFORMATION
            | MAXIMUM_QOS
            | RETAIN_AVAILABLE
            | WILDCARD_SUBSCRIPTION_AVAILABLE
            | SUBSCRIPTION_IDENTIFIER_AVAILABLE
            | SHARED_SUBSCRIPTION_AVAILABLE => self == C::ConnAck,
            AUTHENTICATION_METHOD | AUTHENTICATION_DATA => {
                matches!(self, C::Connect | C::ConnAck | C::Auth)
            }
            REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => self == C::Connect,
            WILL_DELAY_INTERVAL => self == C::Will,
            SERVER_REFERENCE => matches!(self, C::ConnAck | C::Disconnect),
            REASON_STRING => matches!(
                self,
                C::ConnAck | C::PubResp | C::SubAck | C::UnsubAck | C::Disconnect | C::Auth
            ),
            RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => {
                matches!(self, C::Connect | C::ConnAck)
            }
            TOPIC_ALIAS => self == C::Publish,
            USER_PROPERTY => true,
            _ => false,
        }
    }

    /// The Malformed Packet message for a known property in the wrong place.
    pub(crate) fn not_allowed_message(self) -> &'static str {
        match self {
            PropertyContext::Connect => "property not allowed in CONNECT",
            PropertyContext::Will => "property not allowed in will properties",
            PropertyContext::ConnAck => "property not allowed in CONNACK",
            PropertyContext::Publish => "property not allowed in PUBLISH",
            PropertyContext::PubResp => "property not allowed in PUBACK/PUBREC/PUBREL/PUBCOMP",
            PropertyContext::Subscribe => "property not allowed in SUBSCRIBE",
            PropertyContext::SubAck => "property not allowed in SUBACK",
            PropertyContext::Unsubscribe => "property not allowed in UNSUBSCRIBE",
            PropertyContext::UnsubAck => "property not allowed in UNSUBACK",
            PropertyContext::Disconnect => "property not allowed in DISCONNECT",
            PropertyContext::Auth => "property not allowed in AUTH",
        }
    }
}
