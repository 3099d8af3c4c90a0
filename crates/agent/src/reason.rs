//! Human names of reason codes, for error messages.
//!
//! The codec keeps reason codes as bare bytes because 0x00 means
//! different things in different packets; the failure codes (0x80 and
//! above) and the 3.1.1 CONNACK return codes, which are all a device ever
//! needs to explain, have one meaning each.

use ledgermq_proto::ReasonCode;

/// The MQTT 5 name of a failure code, or of the few success codes a
/// device reports ("No matching subscribers").
pub fn reason_name(code: ReasonCode) -> &'static str {
    match code.0 {
        0x00 => "Success",
        0x01 => "Granted QoS 1",
        0x02 => "Granted QoS 2",
        0x10 => "No matching subscribers",
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        0x85 => "Client Identifier not valid",
        0x86 => "Bad User Name or Password",
        0x87 => "Not authorized",
        0x88 => "Server unavailable",
        0x89 => "Server busy",
        0x8A => "Banned",
        0x8B => "Server shutting down",
        0x8C => "Bad authentication method",
        0x8D => "Keep Alive timeout",
        0x8E => "Session taken over",
        0x8F => "Topic Filter invalid",
        0x90 => "Topic Name invalid",
        0x91 => "Packet Identifier in use",
        0x92 => "Packet Identifier not found",
        0x93 => "Receive Maximum exceeded",
        0x94 => "Topic Alias invalid",
        0x95 => "Packet too large",
        0x96 => "Message rate too high",
        0x97 => "Quota exceeded",
        0x98 => "Administrative action",
        0x99 => "Payload format invalid",
        0x9A => "Retain not supported",
        0x9B => "QoS not supported",
        0x9C => "Use another server",
        0x9D => "Server moved",
        0x9E => "Shared Subscriptions not supported",
        0x9F => "Connection rate exceeded",
        0xA0 => "Maximum connect time",
        0xA1 => "Subscription Identifiers not supported",
        0xA2 => "Wildcard Subscriptions not supported",
        _ => "unknown reason code",
    }
}

/// The name of a 3.1.1 CONNACK return code (spec 3.1.1 §3.2.2.3).
pub fn v311_connack_name(code: u8) -> &'static str {
    match code {
        0 => "Connection Accepted",
        1 => "Unacceptable protocol version",
        2 => "Identifier rejected",
        3 => "Server unavailable",
        4 => "Bad user name or password",
        5 => "Not authorized",
        _ => "unknown return code",
    }
}

/// `0x87 (Not authorized)`: an MQTT 5 reason code as the CLI prints it.
pub fn describe_reason(code: ReasonCode) -> String {
    describe(code.0, reason_name(code))
}

/// Lowercase hex and the name: what people grep logs for.
pub(crate) fn describe(code: u8, name: &str) -> String {
    format!("0x{code:02x} ({name})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_codes_are_described_in_lowercase_hex() {
        let code = ReasonCode::BAD_AUTHENTICATION_METHOD;
        assert_eq!(
            describe(code.0, reason_name(code)),
            "0x8c (Bad authentication method)"
        );
        assert_eq!(describe(5, v311_connack_name(5)), "0x05 (Not authorized)");
    }
}
