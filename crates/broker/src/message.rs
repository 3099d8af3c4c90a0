//! Application messages as the broker routes them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ledgermq_proto::{Properties, Publish, QoS};

/// One application message, shared by every session it is delivered to.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// The publisher's properties, without topic alias and subscription
    /// identifiers (those are per-hop).
    pub properties: Properties,
    /// When the message stops being deliverable (Message Expiry Interval).
    pub expires_at: Option<Instant>,
    /// Client id of the publisher, for No Local. Empty for broker-made
    /// messages ($SYS, wills keep the will owner's id).
    pub publisher: Arc<str>,
}

impl Message {
    pub fn from_publish(p: Publish, publisher: Arc<str>, now: Instant) -> Message {
        let mut properties = p.properties;
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        let expires_at = properties
            .message_expiry_interval
            .map(|s| now + Duration::from_secs(u64::from(s)));
        Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties,
            expires_at,
            publisher,
        }
    }

    /// Remaining lifetime in whole seconds (rounded up), `None` if the message
    /// has no expiry, `Some(0)` once it has expired.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            if left.is_zero() {
                0
            } else {
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                u32::try_from(secs).unwrap_or(u32::MAX)
            }
        })
    }

    /// Bytes this message accounts for while retained: topic, payload and
    /// the variable-length properties, plus a fixed overhead for the rest.
    pub fn retained_size(&self) -> usize {
        let p = &self.properties;
        let strings = [&p.content_type, &p.response_topic]
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| s.len()))
            .sum::<usize>();
        let user: usize = p
            .user_properties
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        let correlation = p.correlation_data.as_ref().map_or(0, |c| c.len());
        128 + self.topic.len() + self.payload.len() + strings + user + correlation
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A message on its way to one session, with the per-subscription options
/// that shape its PUBLISH.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// min(message QoS, subscription QoS).
    pub qos: QoS,
    /// RETAIN flag to send.
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// Key of this delivery in the persistent store, if stored.
    pub store_seq: Option<u64>,
}

/// Wall-clock seconds since the Unix epoch, for persisted timestamps.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
