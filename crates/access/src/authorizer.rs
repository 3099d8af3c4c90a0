//! PUBLISH and SUBSCRIBE rights from the ledger registry.
//!
//! The device is the client id (authentication made sure of it) and a
//! right is looked up for that exact id: no pattern is ever substituted,
//! so a client id or user name with `+`, `#` or `/` can never widen a right
//! (the CVE-2017-7650 class).

use std::sync::Arc;
use std::time::Instant;

use ledgermq_broker::auth::{
    AfterRefusal, Authorizer, ClientIdentity, DeliveryCheck, PayloadRefusal, PayloadSource, Refused,
};
use ledgermq_proto::QoS;

use crate::directory::unix_ms;
use crate::evidence::EvidenceKind;
use crate::status::{is_own_status_filter, is_status_topic};
use crate::{key_topics, Access};

pub struct LedgerAuthorizer(pub(crate) Arc<Access>);

impl Authorizer for LedgerAuthorizer {
    fn can_publish(&self, who: &ClientIdentity, topic: &str) -> bool {
        let view = &self.0.directory.view;
        if key_topics::is_reserved(topic) {
            let s = view.snapshot();
            return !view.is_blacklisted(&who.client_id)
                && key_topics::may_publish(&s, &who.client_id, topic);
        }
        let reserved = self.0.settings.status_topics && is_status_topic(topic);
        !reserved && view.can_publish(&who.client_id, topic)
    }

    /// A right is only ever lost through a ledger event, which starts a new
    /// generation of the view (a ban expiring only widens rights).
    fn rights_epoch(&self) -> Option<u64> {
        Some(self.0.directory.view.generation())
    }

    /// Rights are grants only: a subscription allowed by a right covering
    /// its filter may receive every topic the filter matches, until the
    /// view moves on (then the broker asks again, so a revoked right or a
    /// ban stops deliveries at once, before enforcement prunes anything).
    fn delivery_check(&self, who: &ClientIdentity, filter: &str) -> DeliveryCheck {
        if self.can_subscribe(who, filter) {
            DeliveryCheck::All
        } else {
            DeliveryCheck::Refused
        }
    }

    fn can_subscribe(&self, who: &ClientIdentity, filter: &str) -> bool {
        let device = &who.client_id;
        if self.0.settings.status_topics && is_own_status_filter(device, filter) {
            return self.0.directory.view.is_active(device);
        }
        if key_topics::is_reserved(filter) {
            return key_topics::is_own_key_filter(device, filter)
                && self.0.directory.view.is_active(device);
        }
        self.0.directory.view.can_subscribe(device, filter)
    }

    /// Whether a group of the Groups contract protects `topic` for this
    /// publisher (crate::envelopes); a group change is a ledger event, so
    /// the answer changes only with [`Self::rights_epoch`].
    fn checks_payload(&self, who: &ClientIdentity, topic: &str) -> bool {
        let snapshot = self.0.directory.view.snapshot();
        self.0.envelopes.applies(&snapshot, &who.client_id, topic)
    }

    fn check_payload(
        &self,
        who: &ClientIdentity,
        topic: &str,
        payload: &[u8],
        source: PayloadSource,
    ) -> Result<(), PayloadRefusal> {
        let snapshot = self.0.directory.view.snapshot();
        self.0
            .envelopes
            .check(&snapshot, &who.client_id, topic, payload, source)
    }

    /// A refusal on the device's own authenticated connection is misuse of
    /// its valid credential: `evidence_limit` of them within
    /// `evidence_window` blacklist it on the ledger (reason 6). A refused
    /// payload is not: a device whose key or clock is behind (a stale
    /// epoch, a plain payload from an old firmware) is told and counted,
    /// never banned for it.
    fn refused(&self, who: &ClientIdentity, what: Refused<'_>) -> AfterRefusal {
        let access = &self.0;
        if let Refused::Payload {
            topic,
            qos,
            refusal,
        } = what
        {
            let code = format!("0x{:02X}", refusal.reason_code().0);
            access
                .status
                .publish_error_with(&who.client_id, topic, &code, refusal.label());
            return if qos == QoS::AtMostOnce {
                AfterRefusal::Disconnect
            } else {
                AfterRefusal::KeepConnection
            };
        }
        let evidence = access.misuse.note(
            EvidenceKind::RightsViolation,
            &who.client_id,
            &[],
            Instant::now(),
            unix_ms(),
        );
        access.on_evidence(evidence);
        let status = &access.status;
        match what {
            Refused::Publish { topic, qos } => {
                status.publish_error(&who.client_id, topic);
                if qos == QoS::AtMostOnce || self.0.settings.disconnect_on_refused_publish {
                    AfterRefusal::Disconnect
                } else {
                    AfterRefusal::KeepConnection
                }
            }
            Refused::Subscribe { filter } => {
                status.forbidden(&who.client_id, filter);
                AfterRefusal::KeepConnection
            }
            Refused::Payload { .. } => AfterRefusal::KeepConnection,
        }
    }
}
