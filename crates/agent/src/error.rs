//! Why a client operation failed.
//!
//! A broker's "no" is kept apart from transport trouble: [`ClientError::Refused`]
//! (a CONNACK, PUBACK, PUBREC, PUBCOMP or SUBACK failure code) and
//! [`ClientError::Disconnected`] (a DISCONNECT from the broker) carry the
//! broker's reason code, everything else is about the connection itself.
//! SCAC failures found on this side ([`ClientError::Scac`],
//! [`ClientError::Crypt`]) are kept apart too: they are the client's own
//! refusal of the broker, announced with a DISCONNECT 0x80 of its own.
//! The error is `Clone` because one connection failure is reported to every
//! operation that was waiting on it. Messages never contain keys or OTPs.

use std::path::PathBuf;
use std::sync::Arc;

use ledgermq_proto::{Protocol, ReasonCode};
use ledgermq_security::scac::{CryptError, ScacError, AUTH_ERROR, CRYPT_ERROR};

use crate::reason::{describe, describe_reason, v311_connack_name};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The options cannot work (e.g. `LMQ-OTP-1` over MQTT 3.1.1).
    #[error("invalid client options: {0}")]
    Options(String),
    /// A publish or subscribe that cannot be sent as asked (bad topic,
    /// packet larger than the broker accepts…); the connection stays up.
    #[error("invalid request: {0}")]
    Request(String),
    /// The device credentials (provisioning bundle) cannot be used.
    #[error("{0}")]
    Credentials(String),
    /// The packet counter state file cannot be read or written.
    #[error("packet counter state file {}: {source}", path.display())]
    PacketCounter {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// No TCP connection to the broker.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The broker answered with a failure code in `packet` (CONNACK,
    /// PUBACK, PUBREC, PUBCOMP or SUBACK).
    #[error("{packet} refused: {}", self.reason_text().unwrap_or_default())]
    Refused {
        packet: &'static str,
        /// The MQTT 5 reason code; a 3.1.1 CONNACK return code is mapped
        /// to its 5.0 equivalent (0x04 → 0x86, 0x05 → 0x87).
        reason: ReasonCode,
        /// Decides how the code is shown: 3.1.1 CONNACK refusals are shown
        /// as the return code that was on the wire.
        protocol: Protocol,
    },
    /// The broker sent DISCONNECT.
    #[error("the broker sent DISCONNECT {}", self.reason_text().unwrap_or_default())]
    Disconnected {
        reason: ReasonCode,
        reason_string: Option<String>,
    },
    /// The connection ended without a DISCONNECT, or was closed by this client.
    #[error("connection closed")]
    Closed,
    #[error("I/O error: {0}")]
    Io(#[source] Arc<std::io::Error>),
    /// The broker broke the protocol (or sent bytes we cannot decode).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker did not answer in time; the value names what was awaited.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// SCAC mutual authentication failed on the device's side: the
    /// broker's step 2 does not verify (or never came), or the device key
    /// could not sign step 3. This client sent DISCONNECT 0x80 with the
    /// reason string `Auth Error`. A broker that does not know the device,
    /// or not this key of it, ends here too: it answers a decoy step 2
    /// rather than tell who exists. (A device the *broker* refuses after
    /// step 3 is [`ClientError::Refused`] with CONNACK 0x87; keys that
    /// cannot even make step 1 are [`ClientError::Credentials`].)
    #[error("SCAC authentication failed: {err}{hint}", err = .0, hint = step2_hint(.0))]
    Scac(ScacError),
    /// A SCAC-protected QoS 2 payload or PUBREL key update from the broker
    /// does not verify, or this side's key chain is exhausted: this client
    /// sent DISCONNECT 0x80 with the reason string `Crypt Error` and the
    /// connection is over. (When the *broker* refuses ours it sends that
    /// DISCONNECT: [`ClientError::Disconnected`].)
    #[error("SCAC payload protection failed: {0}")]
    Crypt(CryptError),
}

/// What a step 2 that does not verify may mean, for the person reading it.
fn step2_hint(e: &ScacError) -> &'static str {
    match e {
        ScacError::BadProof { step: 2, .. } | ScacError::Decryption { step: 2 } => {
            " (either the broker is not the one configured, or it does not know this \
             device or this key of it: check --broker-key/--broker-account and the \
             device's key registered on the ledger)"
        }
        _ => "",
    }
}

impl ClientError {
    /// The broker's reason code, for refusals and DISCONNECTs.
    pub fn reason_code(&self) -> Option<ReasonCode> {
        match self {
            ClientError::Refused { reason, .. } | ClientError::Disconnected { reason, .. } => {
                Some(*reason)
            }
            _ => None,
        }
    }

    /// The code as it was on the wire: the 3.1.1 return code for a 3.1.1
    /// CONNACK refusal, the MQTT 5 reason code otherwise.
    pub fn wire_code(&self) -> Option<u8> {
        match self {
            ClientError::Refused {
                packet: "CONNACK",
                reason,
                protocol: Protocol::V311,
            } => Some(reason.to_v311_connack()),
            _ => self.reason_code().map(|r| r.0),
        }
    }

    /// `0x87 (Not authorized)`, plus the broker's reason string if it sent
    /// one; `None` when the error carries no reason code. A 3.1.1 CONNACK
    /// refusal shows the return code on the wire and its MQTT 5
    /// equivalent (what broker logs name): `0x05 (Not authorized; MQTT 5: 0x87)`.
    pub fn reason_text(&self) -> Option<String> {
        match self {
            ClientError::Refused {
                packet: "CONNACK",
                reason,
                protocol: Protocol::V311,
            } => {
                let code = reason.to_v311_connack();
                let name = format!("{}; MQTT 5: 0x{:02x}", v311_connack_name(code), reason.0);
                Some(describe(code, &name))
            }
            ClientError::Refused { reason, .. } => Some(describe_reason(*reason)),
            ClientError::Disconnected {
                reason,
                reason_string,
            } => {
                let mut text = describe_reason(*reason);
                if let Some(s) = reason_string {
                    text.push_str(&format!(": {s:?}"));
                }
                Some(text)
            }
            _ => None,
        }
    }

    /// The reason string of the DISCONNECT 0x80 this client sent because
    /// of this error: `Auth Error` or `Crypt Error` (SCAC failures only).
    pub fn sent_reason_string(&self) -> Option<&'static str> {
        match self {
            ClientError::Scac(_) => Some(AUTH_ERROR),
            ClientError::Crypt(_) => Some(CRYPT_ERROR),
            _ => None,
        }
    }

    pub(crate) fn io(e: std::io::Error) -> Self {
        ClientError::Io(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v311_connack_refusal_shows_the_return_code_on_the_wire() {
        let err = ClientError::Refused {
            packet: "CONNACK",
            reason: ReasonCode::NOT_AUTHORIZED,
            protocol: Protocol::V311,
        };
        assert_eq!(
            err.to_string(),
            "CONNACK refused: 0x05 (Not authorized; MQTT 5: 0x87)"
        );
        assert_eq!(err.reason_code(), Some(ReasonCode::NOT_AUTHORIZED));
        assert_eq!(err.wire_code(), Some(5));
    }

    #[test]
    fn disconnect_shows_reason_code_and_reason_string() {
        let err = ClientError::Disconnected {
            reason: ReasonCode::NOT_AUTHORIZED,
            reason_string: Some("revoked".into()),
        };
        assert_eq!(
            err.to_string(),
            "the broker sent DISCONNECT 0x87 (Not authorized): \"revoked\""
        );
    }

    #[test]
    fn broker_crypt_error_shows_reason_code_and_reason_string() {
        let err = ClientError::Disconnected {
            reason: ReasonCode::UNSPECIFIED_ERROR,
            reason_string: Some(CRYPT_ERROR.into()),
        };
        assert_eq!(
            err.reason_text().unwrap(),
            "0x80 (Unspecified error): \"Crypt Error\""
        );
        assert_eq!(err.sent_reason_string(), None);
    }

    #[test]
    fn scac_failures_name_the_disconnect_this_client_sent() {
        let auth = ClientError::Scac(ScacError::Malformed {
            step: 2,
            reason: "too short",
        });
        assert_eq!(auth.sent_reason_string(), Some("Auth Error"));
        assert_eq!(auth.reason_code(), None);
        let crypt = ClientError::Crypt(CryptError::StaleKeyUpdate);
        assert_eq!(crypt.sent_reason_string(), Some("Crypt Error"));
        assert_eq!(
            crypt.to_string(),
            "SCAC payload protection failed: key update does not name the current key"
        );
    }
}
