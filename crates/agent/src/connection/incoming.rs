//! Messages from the broker on their way to the application.
//!
//! QoS 1 and 2 deliveries are acknowledged when the application takes
//! them ([`crate::Client::next_message`]), not when they arrive: an
//! acknowledged message is the device's responsibility, and a device that
//! stops reading stops the broker's flow (its in-flight window fills)
//! instead of growing an unbounded queue. QoS 0 has no such brake, so at
//! most [`MAX_QUEUED_QOS0`] unread QoS 0 messages are kept and the rest
//! dropped.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ledgermq_proto::{Packet, Protocol, PubResp, Publish, QoS, ReasonCode};
use tokio::sync::mpsc;

use super::protection::PayloadProtection;
use super::Shared;
use crate::{ClientError, Message};

/// Unread QoS 0 messages kept for the application.
pub const MAX_QUEUED_QOS0: usize = 1024;

enum Qos2 {
    /// Handed to the application, not yet taken (no PUBREC yet).
    Queued,
    /// PUBREC sent; waiting for PUBREL.
    Received,
}

pub(super) struct Incoming {
    protocol: Protocol,
    qos2: HashMap<u16, Qos2>,
    messages: mpsc::UnboundedSender<Message>,
    shared: Arc<Shared>,
}

impl Incoming {
    pub(super) fn new(
        protocol: Protocol,
        messages: mpsc::UnboundedSender<Message>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            protocol,
            qos2: HashMap::new(),
            messages,
            shared,
        }
    }

    /// Queues a PUBLISH for the application; returns the PUBREC to repeat
    /// when the broker resends a QoS 2 message we already received. With
    /// SCAC, a new QoS 2 payload is opened first (a duplicate is not: its
    /// first copy was).
    pub(super) fn on_publish(
        &mut self,
        mut publish: Publish,
        protection: Option<&mut PayloadProtection>,
    ) -> Result<Option<Packet>, ClientError> {
        if publish.properties.topic_alias.is_some() {
            // We announce no Topic Alias Maximum, so the broker may not use one.
            return Err(ClientError::Protocol(
                "PUBLISH uses a topic alias, which this client did not allow".into(),
            ));
        }
        match publish.qos {
            QoS::AtMostOnce => {
                let queued = self.shared.queued_qos0.fetch_add(1, Ordering::AcqRel);
                if queued >= MAX_QUEUED_QOS0 {
                    self.shared.queued_qos0.fetch_sub(1, Ordering::AcqRel);
                    tracing::warn!(topic = %publish.topic, "dropped a QoS 0 message: {MAX_QUEUED_QOS0} unread");
                    return Ok(None);
                }
            }
            QoS::AtLeastOnce => {}
            QoS::ExactlyOnce => match self.qos2.get(&publish.packet_id) {
                Some(Qos2::Received) => return Ok(Some(self.pubrec(publish.packet_id))),
                Some(Qos2::Queued) => return Ok(None),
                None => {
                    if let Some(protection) = protection {
                        protection.open(&mut publish)?;
                    }
                    self.qos2.insert(publish.packet_id, Qos2::Queued);
                }
            },
        }
        // A closed receiver means the client is gone; the command channel
        // closing ends the connection right after.
        let _ = self.messages.send(Message::from_publish(publish));
        Ok(None)
    }

    /// The application took a QoS 1/2 message: its PUBACK or PUBREC.
    pub(super) fn on_taken(&mut self, packet_id: u16, qos: QoS) -> Option<Packet> {
        match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(Packet::PubAck(PubResp {
                packet_id,
                ..PubResp::default()
            })),
            QoS::ExactlyOnce => {
                self.qos2.insert(packet_id, Qos2::Received);
                Some(self.pubrec(packet_id))
            }
        }
    }

    /// PUBREL ends a QoS 2 delivery: PUBCOMP, with 0x92 (Packet
    /// Identifier not found) for an identifier we hold no state for. With
    /// SCAC every PUBREL's `Ns` is checked first, whatever its identifier:
    /// the broker moved to its next key when it sent it.
    pub(super) fn on_pubrel(
        &mut self,
        rel: PubResp,
        protection: Option<&mut PayloadProtection>,
    ) -> Result<Packet, ClientError> {
        if let Some(Qos2::Queued) = self.qos2.get(&rel.packet_id) {
            return Err(ClientError::Protocol(format!(
                "PUBREL for packet identifier {} before this client sent PUBREC",
                rel.packet_id
            )));
        }
        if let Some(protection) = protection {
            protection.accept_key_update(&rel)?;
        }
        let reason = match self.qos2.remove(&rel.packet_id) {
            Some(_) => ReasonCode::SUCCESS,
            None if self.protocol == Protocol::V5 => ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            None => ReasonCode::SUCCESS,
        };
        Ok(Packet::PubComp(PubResp {
            packet_id: rel.packet_id,
            reason,
            ..PubResp::default()
        }))
    }

    fn pubrec(&self, packet_id: u16) -> Packet {
        Packet::PubRec(PubResp {
            packet_id,
            ..PubResp::default()
        })
    }
}
