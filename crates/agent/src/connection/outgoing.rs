//! Requests waiting for the broker: QoS 1/2 publishes and subscribes,
//! keyed by packet identifier.
//!
//! The broker's Receive Maximum caps how many QoS 1/2 publishes may be
//! unacknowledged at once (exceeding it gets DISCONNECT 0x93), so
//! publishes beyond it wait here, in order, until an acknowledgement frees
//! a slot.

use std::collections::{HashMap, VecDeque};

use ledgermq_proto::{Protocol, PubResp, Publish, QoS, ReasonCode, SubAck};

use super::Reply;
use crate::ClientError;

enum Pending {
    Publish {
        reply: Reply<ReasonCode>,
        stage: Awaiting,
    },
    Subscribe {
        reply: Reply<Vec<ReasonCode>>,
        filters: usize,
    },
}

/// The acknowledgement a publish waits for.
enum Awaiting {
    /// PUBACK (QoS 1).
    Ack,
    /// PUBREC (QoS 2, first half).
    Rec,
    /// PUBCOMP (QoS 2, PUBREL sent); the caller gets the PUBREC code (0x00 or 0x10).
    Comp { rec_reason: ReasonCode },
}

pub(super) struct Outgoing {
    protocol: Protocol,
    pending: HashMap<u16, Pending>,
    next_id: u16,
    /// QoS 1/2 publishes sent and not yet completed.
    inflight: usize,
    receive_maximum: usize,
    waiting: VecDeque<(Publish, Reply<ReasonCode>)>,
}

impl Outgoing {
    /// `receive_maximum` from CONNACK (absent: 65,535, spec §3.2.2.3.3).
    pub(super) fn new(protocol: Protocol, receive_maximum: Option<u16>) -> Self {
        Self {
            protocol,
            pending: HashMap::new(),
            next_id: 1,
            inflight: 0,
            receive_maximum: usize::from(receive_maximum.unwrap_or(u16::MAX).max(1)),
            waiting: VecDeque::new(),
        }
    }

    fn allocate_id(&mut self) -> Option<u16> {
        for _ in 0..=u16::MAX {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.pending.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    /// Queues a QoS 1/2 publish; it is sent by [`Self::start_ready`].
    pub(super) fn enqueue_publish(&mut self, publish: Publish, reply: Reply<ReasonCode>) {
        self.waiting.push_back((publish, reply));
    }

    /// Takes the next waiting publish that fits under Receive Maximum,
    /// gives it a packet identifier and starts waiting for its answer.
    /// The caller encodes it and calls [`Self::abandon`] if that fails.
    pub(super) fn start_ready(&mut self) -> Option<Publish> {
        while self.inflight < self.receive_maximum {
            let (mut publish, reply) = self.waiting.pop_front()?;
            if reply.is_closed() {
                continue; // the caller gave up (timeout) before it was sent
            }
            let Some(id) = self.allocate_id() else {
                let _ = reply.send(Err(ClientError::Request(
                    "all 65535 packet identifiers are in use".into(),
                )));
                continue;
            };
            publish.packet_id = id;
            let stage = match publish.qos {
                QoS::ExactlyOnce => Awaiting::Rec,
                _ => Awaiting::Ack,
            };
            self.pending.insert(id, Pending::Publish { reply, stage });
            self.inflight += 1;
            return Some(publish);
        }
        None
    }

    /// Registers a SUBSCRIBE of `filters` topic filters; returns its id.
    pub(super) fn start_subscribe(
        &mut self,
        filters: usize,
        reply: Reply<Vec<ReasonCode>>,
    ) -> Option<u16> {
        let Some(id) = self.allocate_id() else {
            let _ = reply.send(Err(ClientError::Request(
                "all 65535 packet identifiers are in use".into(),
            )));
            return None;
        };
        self.pending
            .insert(id, Pending::Subscribe { reply, filters });
        Some(id)
    }

    /// Forgets a request that could not be encoded, answering `err`.
    pub(super) fn abandon(&mut self, id: u16, err: ClientError) {
        match self.pending.remove(&id) {
            Some(Pending::Publish { reply, .. }) => {
                self.inflight = self.inflight.saturating_sub(1);
                let _ = reply.send(Err(err));
            }
            Some(Pending::Subscribe { reply, .. }) => {
                let _ = reply.send(Err(err));
            }
            None => {}
        }
    }

    pub(super) fn on_puback(&mut self, ack: PubResp) -> Result<(), ClientError> {
        match self.pending.remove(&ack.packet_id) {
            Some(Pending::Publish {
                reply,
                stage: Awaiting::Ack,
            }) => {
                self.inflight = self.inflight.saturating_sub(1);
                let _ = reply.send(outcome(self.protocol, "PUBACK", ack.reason, ack.reason));
                Ok(())
            }
            None => Ok(()), // late answer to a request we already failed
            Some(other) => self.mismatch(ack.packet_id, other, "PUBACK"),
        }
    }

    /// Returns the PUBREL to send: for our QoS 2 publish, or with 0x92
    /// (Packet Identifier not found) for an identifier we do not know.
    pub(super) fn on_pubrec(&mut self, rec: PubResp) -> Result<Option<PubResp>, ClientError> {
        let id = rec.packet_id;
        let pubrel = |reason| {
            Some(PubResp {
                packet_id: id,
                reason,
                ..PubResp::default()
            })
        };
        match self.pending.remove(&id) {
            Some(Pending::Publish { reply, stage }) if !matches!(stage, Awaiting::Ack) => {
                if rec.reason.is_error() {
                    self.inflight = self.inflight.saturating_sub(1);
                    let _ = reply.send(outcome(self.protocol, "PUBREC", rec.reason, rec.reason));
                    return Ok(None);
                }
                let stage = Awaiting::Comp {
                    rec_reason: rec.reason,
                };
                self.pending.insert(id, Pending::Publish { reply, stage });
                Ok(pubrel(ReasonCode::SUCCESS))
            }
            None if self.protocol == Protocol::V5 => {
                Ok(pubrel(ReasonCode::PACKET_IDENTIFIER_NOT_FOUND))
            }
            None => Ok(pubrel(ReasonCode::SUCCESS)),
            Some(other) => self.mismatch(id, other, "PUBREC").map(|()| None),
        }
    }

    pub(super) fn on_pubcomp(&mut self, comp: PubResp) -> Result<(), ClientError> {
        match self.pending.remove(&comp.packet_id) {
            Some(Pending::Publish {
                reply,
                stage: Awaiting::Comp { rec_reason },
            }) => {
                self.inflight = self.inflight.saturating_sub(1);
                let _ = reply.send(outcome(self.protocol, "PUBCOMP", comp.reason, rec_reason));
                Ok(())
            }
            None => Ok(()),
            Some(other) => self.mismatch(comp.packet_id, other, "PUBCOMP"),
        }
    }

    pub(super) fn on_suback(&mut self, ack: SubAck) -> Result<(), ClientError> {
        match self.pending.remove(&ack.packet_id) {
            Some(Pending::Subscribe { reply, filters }) if filters == ack.reasons.len() => {
                let _ = reply.send(Ok(ack.reasons));
                Ok(())
            }
            Some(Pending::Subscribe { filters, .. }) => Err(ClientError::Protocol(format!(
                "SUBACK has {} reason codes for {filters} topic filters",
                ack.reasons.len()
            ))),
            None => Ok(()),
            Some(other) => self.mismatch(ack.packet_id, other, "SUBACK"),
        }
    }

    /// An acknowledgement of the wrong kind for a pending identifier.
    fn mismatch(&mut self, id: u16, pending: Pending, got: &str) -> Result<(), ClientError> {
        self.pending.insert(id, pending);
        Err(ClientError::Protocol(format!(
            "{got} for packet identifier {id}, which is waiting for another acknowledgement"
        )))
    }

    /// The connection ended: every waiting caller learns why.
    pub(super) fn fail_all(&mut self, err: &ClientError) {
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Publish { reply, .. } => drop(reply.send(Err(err.clone()))),
                Pending::Subscribe { reply, .. } => drop(reply.send(Err(err.clone()))),
            }
        }
        for (_, reply) in self.waiting.drain(..) {
            let _ = reply.send(Err(err.clone()));
        }
        self.inflight = 0;
    }
}

/// A failure code in `packet` refuses the publish; otherwise the caller
/// gets `success` (the PUBACK or PUBREC code: 0x00 or 0x10).
fn outcome(
    protocol: Protocol,
    packet: &'static str,
    reason: ReasonCode,
    success: ReasonCode,
) -> Result<ReasonCode, ClientError> {
    if reason.is_error() {
        Err(ClientError::Refused {
            packet,
            reason,
            protocol,
        })
    } else {
        Ok(success)
    }
}
