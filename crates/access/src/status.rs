//! Status topics for devices without MQTT 5 reason codes (after the
//! blockchain-MQTT paper for power IoT). Each report is a QoS 1,
//! non-retained message whose payload is a small JSON object; a device
//! with a persistent session receives the ones published while it was
//! offline when it reconnects. docs/device-auth.md says when each is sent.
//!
//! | topic | sent when |
//! |---|---|
//! | `devices/<id>/key/success` | the device authenticated (CONNECT or re-authentication) |
//! | `devices/<id>/key/fail` | an authentication naming the device failed (wrong OTP proof or TOTP, replay, expired challenge, refused while banned); for failures that prove nothing (anyone can name the device) at most one per device per `auth_failure_window`, so a flood cannot fill the device's queue |
//! | `devices/<id>/unauth` | the device lost its authorisation: revoked, or blacklisted (its connection is then closed) |
//! | `devices/<id>/forbidden` | a SUBSCRIBE filter of the device was refused |
//! | `devices/<id>/<topic>/error` | a PUBLISH of the device to `<topic>` was refused |

use std::sync::{OnceLock, Weak};
use std::time::{Duration, Instant};

use ledgermq_broker::Broker;
use ledgermq_proto::topic;
use parking_lot::Mutex;

use crate::failures::{BoundedMap, MAX_ENTRIES};
use crate::misuse::MAX_DEVICE_ID_LEN;

pub const PREFIX: &str = "devices/";

/// Suffixes of the status topics (the `<topic>/error` family aside).
const FIXED: [&str; 4] = ["unauth", "forbidden", "key/success", "key/fail"];

/// Whether status topics can be built for `device_id`: a level of its own,
/// without wildcards.
pub fn usable_id(device_id: &str) -> bool {
    !device_id.is_empty() && !device_id.contains(['/', '+', '#', '\0'])
}

/// Whether `topic_name` has the shape of a status topic (reserved for the
/// broker: devices may not publish there).
pub fn is_status_topic(topic_name: &str) -> bool {
    let Some(rest) = topic_name.strip_prefix(PREFIX) else {
        return false;
    };
    let Some((_, suffix)) = rest.split_once('/') else {
        return false;
    };
    FIXED.contains(&suffix) || suffix.ends_with("/error")
}

/// Whether every topic `filter` matches is one of `device_id`'s own status
/// topics (a device may always subscribe to those).
pub fn is_own_status_filter(device_id: &str, filter: &str) -> bool {
    if !usable_id(device_id) {
        return false;
    }
    let Some(rest) = filter
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix(device_id))
        .and_then(|r| r.strip_prefix('/'))
    else {
        return false;
    };
    FIXED.contains(&rest)
        || rest == "key/+"
        || (rest.ends_with("/error") && !rest.contains('#') && rest.len() > "/error".len())
}

/// Publishes status reports into the broker it is attached to.
pub struct StatusReporter {
    enabled: bool,
    broker: OnceLock<Weak<Broker>>,
    /// Shortest interval between two unproven `key/fail` reports of one device.
    unproven_interval: Duration,
    /// Device id → when its last unproven `key/fail` report went out.
    unproven_sent: Mutex<BoundedMap<String, Option<Instant>>>,
}

impl StatusReporter {
    pub fn new(enabled: bool, unproven_interval: Duration) -> StatusReporter {
        StatusReporter {
            enabled,
            broker: OnceLock::new(),
            unproven_interval,
            unproven_sent: Mutex::new(BoundedMap::new(MAX_ENTRIES)),
        }
    }

    pub fn attach(&self, broker: Weak<Broker>) {
        let _ = self.broker.set(broker);
    }

    fn send(&self, device_id: &str, suffix: &str, payload: serde_json::Value) {
        if !self.enabled || !usable_id(device_id) {
            return;
        }
        let Some(broker) = self.broker.get().and_then(Weak::upgrade) else {
            return;
        };
        let name = format!("{PREFIX}{device_id}/{suffix}");
        if topic::validate_name(&name).is_ok() {
            let matched = broker.publish_notice(&name, payload.to_string());
            tracing::debug!(topic = name, matched, "status report");
        }
    }

    pub fn key_success(&self, device_id: &str, method: &str) {
        self.send(
            device_id,
            "key/success",
            serde_json::json!({ "method": method }),
        );
    }

    pub fn key_fail(&self, device_id: &str, method: &str, reason: u8) {
        let reason = format!("0x{reason:02x}");
        self.send(
            device_id,
            "key/fail",
            serde_json::json!({ "method": method, "reason": reason }),
        );
    }

    /// `key/fail` for a failure that proves nothing about the device (any
    /// client can name it): at most one per device per interval.
    pub fn key_fail_unproven(&self, device_id: &str, method: &str, reason: u8) {
        if !self.enabled || !usable_id(device_id) || device_id.len() > MAX_DEVICE_ID_LEN {
            return;
        }
        let now = Instant::now();
        let interval = self.unproven_interval;
        {
            let mut sent = self.unproven_sent.lock();
            let last = sent.entry(device_id.to_owned(), now, |t| {
                t.is_some_and(|t| now.saturating_duration_since(t) < interval)
            });
            if last.is_some_and(|t| now.saturating_duration_since(t) < interval) {
                return;
            }
            *last = Some(now);
        }
        self.key_fail(device_id, method, reason);
    }

    pub fn unauth(&self, device_id: &str, why: &str) {
        self.send(device_id, "unauth", serde_json::json!({ "reason": why }));
    }

    pub fn forbidden(&self, device_id: &str, filter: &str) {
        self.send(
            device_id,
            "forbidden",
            serde_json::json!({ "filter": filter, "reason": "0x87" }),
        );
    }

    pub fn publish_error(&self, device_id: &str, topic_name: &str) {
        self.send(
            device_id,
            &format!("{topic_name}/error"),
            serde_json::json!({ "topic": topic_name, "reason": "0x87" }),
        );
    }

    /// A refused payload on a protected topic: the reason code and why
    /// (`not_envelope`, `replayed`, ...), for 3.1.1 devices that get no
    /// negative acknowledgement.
    pub fn publish_error_with(&self, device_id: &str, topic_name: &str, code: &str, why: &str) {
        self.send(
            device_id,
            &format!("{topic_name}/error"),
            serde_json::json!({ "topic": topic_name, "reason": code, "refusal": why }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_topics_are_recognised() {
        assert!(is_status_topic("devices/s1/unauth"));
        assert!(is_status_topic("devices/s1/key/fail"));
        assert!(is_status_topic("devices/s1/Temperature/raw Material/error"));
        assert!(!is_status_topic("devices/s1/data"));
        assert!(!is_status_topic("other/s1/unauth"));
    }

    #[test]
    fn a_device_may_subscribe_only_to_its_own_status_topics() {
        assert!(is_own_status_filter("s1", "devices/s1/unauth"));
        assert!(is_own_status_filter("s1", "devices/s1/key/+"));
        assert!(is_own_status_filter("s1", "devices/s1/+/error"));
        assert!(is_own_status_filter(
            "s1",
            "devices/s1/Temperature/raw Material/error"
        ));
        assert!(!is_own_status_filter("s1", "devices/s1/#"));
        assert!(!is_own_status_filter("s1", "devices/s1/+"));
        assert!(!is_own_status_filter("s1", "devices/s2/unauth"));
        assert!(!is_own_status_filter("s1", "devices/+/unauth"));
        assert!(!is_own_status_filter("s1", "devices/s1/error"));
        assert!(!is_own_status_filter("#", "devices/#/unauth"));
        assert!(!is_own_status_filter("+", "devices/+/unauth"));
    }
}
