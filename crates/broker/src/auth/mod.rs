//! The seam between the broker and whoever decides who may connect,
//! publish and subscribe.
//!
//! The broker core never decides by itself: it asks an [`Authenticator`]
//! (CONNECT, and MQTT 5 enhanced authentication including re-authentication)
//! and an [`Authorizer`] (PUBLISH, SUBSCRIBE, wills). The plain
//! implementations (password file, ACL file) live in [`plain`]; the
//! ledger-backed ones in crate `ledgermq-access`.
//!
//! Enhanced authentication is a chain of typed steps: [`Authenticator::begin`]
//! returns either a verdict or a challenge plus the [`AuthExchange`] that
//! will judge the client's answer. The exchange is consumed by each answer,
//! so a challenge can only ever be answered once.

mod plain;

use std::net::SocketAddr;
use std::time::Duration;

use ledgermq_proto::{Protocol, QoS, ReasonCode};

pub use plain::{AclFile, AllowAll, AllowAnonymous, AuthFileError, PasswordFile};

/// Who a connected client is, as far as authorisation is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub client_id: String,
    /// `None` for anonymous clients.
    pub username: Option<String>,
}

/// A CONNECT (or a re-authentication) as an authenticator sees it.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// The client's address.
    pub peer: SocketAddr,
    /// The local address of the listener the client connected to, so a
    /// failure can be counted against its source on that listener.
    pub listener: SocketAddr,
    pub protocol: Protocol,
    /// As the client sent it; empty when it asks the broker to assign one.
    /// For a re-authentication, the connection's client id.
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

/// A successful authentication.
#[derive(Default)]
pub struct Authenticated {
    /// The client id the session must use, when authentication fixes it
    /// (a device authenticates as its id). `None` keeps the client's own.
    pub client_id: Option<String>,
    /// Payload protection the method set up for this connection (SCAC's
    /// rolling keys), or `None` for payloads as they are.
    pub protection: Option<Box<dyn PayloadProtection>>,
}

impl std::fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("client_id", &self.client_id)
            .field("protection", &self.protection.is_some())
            .finish()
    }
}

/// Per-connection protection of QoS 2 payloads that an authentication
/// method sets up (SCAC, docs/scac.md): the broker opens what the client
/// publishes and seals what it delivers, and each PUBREL carries the next
/// key of its direction in a user property.
///
/// The broker calls these in wire order for each direction: `open` and
/// `accept_update` in the order the client's packets arrive, `seal` and
/// `update` in the order the broker's packets are written. A connection
/// that breaks takes its protection with it; the next connection runs a new
/// handshake, and what is resent on it (PUBLISH, PUBREL) is sealed afresh.
pub trait PayloadProtection: Send {
    /// The data of a QoS 2 PUBLISH payload from the client.
    fn open(
        &mut self,
        topic: &str,
        packet_id: u16,
        payload: &[u8],
    ) -> Result<Vec<u8>, ProtectionError>;
    /// A PUBREL from the client: its user properties carry the key update.
    fn accept_update(
        &mut self,
        packet_id: u16,
        user_properties: &[(String, String)],
    ) -> Result<(), ProtectionError>;
    /// The payload of a QoS 2 PUBLISH to the client. An error closes the
    /// connection; the message stays in flight for the next one.
    fn seal(
        &mut self,
        topic: &str,
        packet_id: u16,
        data: &[u8],
    ) -> Result<Vec<u8>, ProtectionError>;
    /// The user property (name, value) of a PUBREL to the client; the
    /// sending direction moves to its next key. An error closes the
    /// connection.
    fn update(&mut self, packet_id: u16) -> Result<(String, String), ProtectionError>;
}

/// A connection's protection, shared by its reading and writing halves.
pub type SharedProtection = std::sync::Arc<parking_lot::Mutex<Box<dyn PayloadProtection>>>;

/// Protected data that does not open: the connection is closed with
/// DISCONNECT 0x80 and this reason string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionError {
    /// What the client reads in the DISCONNECT (`"Crypt Error"` for SCAC).
    pub reason_string: String,
    /// For the log; never contains key material.
    pub detail: String,
}

/// A refused authentication: the reason code the client sees, how long to
/// wait before saying so (slows down guessing without holding a thread),
/// and a description for the log that never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: ReasonCode,
    pub delay: Duration,
    pub detail: String,
}

impl Refusal {
    pub fn new(reason: ReasonCode, detail: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            delay: Duration::ZERO,
            detail: detail.into(),
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Refusal {
        self.delay = delay;
        self
    }
}

/// One step of an enhanced-authentication exchange.
pub enum AuthStep {
    /// Send AUTH 0x18 (Continue authentication) with `data` and hand the
    /// client's answer to `next`.
    Continue {
        data: Vec<u8>,
        next: Box<dyn AuthExchange>,
    },
    /// The exchange is over.
    Done(Result<Authenticated, Refusal>),
}

/// An enhanced-authentication exchange waiting for the client's answer.
pub trait AuthExchange: Send {
    /// Judges the Authentication Data of the client's AUTH 0x18. May block.
    fn answer(self: Box<Self>, data: &[u8]) -> AuthStep;
}

pub trait Authenticator: Send + Sync {
    /// Decides a CONNECT without an Authentication Method (user name and
    /// password). May block (password hashing): the broker calls it off
    /// the async runtime.
    fn authenticate(&self, attempt: &LoginAttempt<'_>) -> Result<Authenticated, Refusal>;

    /// Starts MQTT 5 enhanced authentication with `method` and the
    /// Authentication Data of the CONNECT (or of an AUTH 0x19 for
    /// re-authentication). May block. By default no method is supported.
    fn begin(&self, attempt: &LoginAttempt<'_>, method: &str, data: &[u8]) -> AuthStep {
        let _ = (attempt, data);
        AuthStep::Done(Err(Refusal::new(
            ReasonCode::BAD_AUTHENTICATION_METHOD,
            format!("authentication method {method:?} is not enabled"),
        )))
    }
}

/// What the broker refused a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused<'a> {
    Publish {
        topic: &'a str,
        qos: QoS,
    },
    Subscribe {
        filter: &'a str,
    },
    /// An allowed PUBLISH whose payload failed [`Authorizer::check_payload`].
    Payload {
        topic: &'a str,
        qos: QoS,
        refusal: PayloadRefusal,
    },
}

/// Why a payload was refused on a protected topic (end-to-end envelopes,
/// docs/e2e.md). Each kind is counted (`ledgermq_payloads_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadRefusal {
    /// Not an envelope (a plain payload) where the policy requires one.
    NotAnEnvelope,
    /// An envelope that does not parse, or of the wrong kind (signed-only
    /// where sealing is required).
    Malformed,
    /// A sealed envelope of a group that does not protect the topic.
    WrongGroup,
    /// A key epoch that is neither current nor within its grace period.
    StaleEpoch,
    /// The sender is not a member of the envelope's group.
    NotMember,
    /// The envelope's sender is not the authenticated client.
    SenderMismatch,
    /// The signature does not verify against the sender's registered key.
    BadSignature,
    /// The sequence is not above the last one accepted from the sender.
    Replayed,
}

impl PayloadRefusal {
    pub const ALL: [PayloadRefusal; 8] = [
        Self::NotAnEnvelope,
        Self::Malformed,
        Self::WrongGroup,
        Self::StaleEpoch,
        Self::NotMember,
        Self::SenderMismatch,
        Self::BadSignature,
        Self::Replayed,
    ];

    /// 0x99 Payload format invalid for what is not an envelope this topic
    /// takes; 0x87 Not authorized for a well-formed envelope this client
    /// may not send.
    pub fn reason_code(self) -> ReasonCode {
        match self {
            Self::NotAnEnvelope | Self::Malformed | Self::WrongGroup => {
                ReasonCode::PAYLOAD_FORMAT_INVALID
            }
            Self::StaleEpoch
            | Self::NotMember
            | Self::SenderMismatch
            | Self::BadSignature
            | Self::Replayed => ReasonCode::NOT_AUTHORIZED,
        }
    }

    /// The metric label and log word.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotAnEnvelope => "not_envelope",
            Self::Malformed => "malformed",
            Self::WrongGroup => "wrong_group",
            Self::StaleEpoch => "stale_epoch",
            Self::NotMember => "not_member",
            Self::SenderMismatch => "sender_mismatch",
            Self::BadSignature => "bad_signature",
            Self::Replayed => "replayed",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Which PUBLISH a payload check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadSource {
    /// A PUBLISH the client sent now.
    Publish,
    /// The client's will, published after it went away: checked like a
    /// PUBLISH except the sequence (it was made when the client connected).
    Will,
}

/// What to do with a connection after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRefusal {
    /// Answer with the reason code and go on serving the client.
    KeepConnection,
    /// Also close the connection (MQTT 5: DISCONNECT 0x87).
    Disconnect,
}

/// How the deliveries of a subscription the authorizer allowed are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryCheck {
    /// Every topic the filter matches may be delivered: no check per
    /// message (nothing narrower than the grant denies any of them).
    All,
    /// Ask [`Authorizer::can_receive`] for each delivered topic (a deny
    /// rule reaches into the filter, e.g. `deny read a/secret` under
    /// `allow read a/#`).
    EachMessage,
    /// The subscription is not allowed (any more): deliver nothing.
    Refused,
}

pub trait Authorizer: Send + Sync {
    fn can_publish(&self, who: &ClientIdentity, topic: &str) -> bool;

    /// A number that changes whenever an allowed PUBLISH, SUBSCRIBE or
    /// delivery may become refused (rights changed). While it stays the
    /// same, a connection reuses its last "allowed" answer for the same
    /// publish topic, and a subscription its [`DeliveryCheck`], instead of
    /// asking again: the hot path then costs one comparison. `None` (the
    /// default) asks every time.
    fn rights_epoch(&self) -> Option<u64> {
        None
    }

    /// True for an authorizer that allows everything (no ACL): the broker
    /// then skips every check.
    fn allows_everything(&self) -> bool {
        false
    }

    /// `filter` is the topic filter without any `$share/group/` prefix.
    fn can_subscribe(&self, who: &ClientIdentity, filter: &str) -> bool;

    /// How deliveries on `filter` must be checked for `who`. Asked when a
    /// message first matches the subscription and again whenever
    /// [`Self::rights_epoch`] moves. The default checks each message.
    fn delivery_check(&self, who: &ClientIdentity, filter: &str) -> DeliveryCheck {
        if self.can_subscribe(who, filter) {
            DeliveryCheck::EachMessage
        } else {
            DeliveryCheck::Refused
        }
    }

    /// Whether a message on `topic` may be delivered to `who`, whose
    /// subscription matched it. By default: whether `who` could subscribe
    /// to exactly that topic.
    fn can_receive(&self, who: &ClientIdentity, topic: &str) -> bool {
        self.can_subscribe(who, topic)
    }

    /// Whether PUBLISH payloads of `who` on `topic` must pass
    /// [`Self::check_payload`]. Asked with [`Self::can_publish`] and
    /// remembered under the same [`Self::rights_epoch`], so it must change
    /// only with that epoch. Default: no payload is checked.
    fn checks_payload(&self, who: &ClientIdentity, topic: &str) -> bool {
        let _ = (who, topic);
        false
    }

    /// Checks the payload of an allowed PUBLISH on a topic for which
    /// [`Self::checks_payload`] said so: the topic after alias resolution,
    /// the payload after any per-hop protection (SCAC) was removed.
    fn check_payload(
        &self,
        who: &ClientIdentity,
        topic: &str,
        payload: &[u8],
        source: PayloadSource,
    ) -> Result<(), PayloadRefusal> {
        let _ = (who, topic, payload, source);
        Ok(())
    }

    /// Called after a refused PUBLISH or SUBSCRIBE filter (status reports,
    /// auditing); decides whether the connection survives it. By default it
    /// does, as in Mosquitto.
    fn refused(&self, who: &ClientIdentity, what: Refused<'_>) -> AfterRefusal {
        let _ = (who, what);
        AfterRefusal::KeepConnection
    }
}
