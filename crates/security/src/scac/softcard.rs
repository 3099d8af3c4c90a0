//! A smart card in software: the paper's applet operations over
//! [`LocalKey`] handles, and the reference SCAC client built on them.
//!
//! The applet (`uned.ebs.scacauth.SCACAuth`) keeps the UID, the broker's
//! public key, RN1 and the current RNp / RNs inside the card and exposes
//! one APDU instruction per protocol step. [`SoftCard`] keeps the same
//! state and offers the same eight operations, so a device can move from
//! this soft card to a PKCS#11 token or a real card without changing its
//! MQTT logic. The applet's set-up instructions (CREATE_PAIR 0x20,
//! PUT_PUBLIC_KEY_BROKER 0x22, PUT_UID 0x23, INICIALICE_CIPHER 0x2A) are
//! [`SoftCard::new`]: the key pair lives in the key store, not in the card.
//!
//! | INS  | applet               | [`SoftCard`]                       |
//! |------|----------------------|------------------------------------|
//! | 0x21 | GET_PUBLIC_KEY       | [`SoftCard::get_public_key`]       |
//! | 0x25 | CREATE_AUTH_STEP1    | [`SoftCard::create_auth_step1`]    |
//! | 0x26 | CHECK_AUTH_STEP2     | [`SoftCard::check_auth_step2`]     |
//! | 0x27 | CREATE_AUTH_STEP3    | [`SoftCard::create_auth_step3`]    |
//! | 0x28 | CREATE_MSG_PUBLISH   | [`SoftCard::create_msg_publish`]   |
//! | 0x29 | CHECK_PUBREL         | [`SoftCard::check_pubrel`]         |
//! | 0x30 | READ_PAYLOAD         | [`SoftCard::read_payload`]         |
//! | 0x31 | CREATE_PUBREL        | [`SoftCard::create_pubrel`]        |
//!
//! Any refused step or payload wipes the session keys (like the applet's
//! transient arrays on deselect): the device must reconnect and run a new
//! handshake.

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng as _};

use super::{Channel, ClientHandshake, CryptError, Epochs, LocalKey, PeerKey, ScacError, Suite};

/// Why a soft-card operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SoftCardError {
    /// The operation does not fit the card's state (e.g. step 3 before 2).
    #[error("card operation {operation} is not allowed {state}")]
    WrongState {
        operation: &'static str,
        state: &'static str,
    },
    /// The handshake failed: DISCONNECT 0x80 "Auth Error".
    #[error(transparent)]
    Auth(#[from] ScacError),
    /// A payload or key update failed: DISCONNECT 0x80 "Crypt Error".
    #[error(transparent)]
    Crypt(#[from] CryptError),
}

impl SoftCardError {
    /// The reason string of the DISCONNECT the client sends.
    pub fn reason_string(&self) -> &'static str {
        match self {
            SoftCardError::Crypt(_) => super::CRYPT_ERROR,
            _ => super::AUTH_ERROR,
        }
    }
}

enum CardState {
    Idle,
    AwaitingStep2(Box<ClientHandshake>),
    Step3Ready { step3: Vec<u8>, channel: Channel },
    Authenticated(Channel),
}

impl CardState {
    fn describe(&self) -> &'static str {
        match self {
            CardState::Idle => "before step 1",
            CardState::AwaitingStep2(_) => "while waiting for step 2",
            CardState::Step3Ready { .. } => "before step 3 was sent",
            CardState::Authenticated(_) => "after authentication",
        }
    }
}

/// The reference SCAC client: a card holding one device identity.
pub struct SoftCard {
    suite: Suite,
    uid: String,
    device_key: LocalKey,
    broker_key: PeerKey,
    rng: ChaCha20Rng,
    state: CardState,
}

impl std::fmt::Debug for SoftCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftCard")
            .field("suite", &self.suite)
            .field("uid", &self.uid)
            .field("state", &self.state.describe())
            .finish_non_exhaustive()
    }
}

impl SoftCard {
    /// A card for `uid` with the device key and the broker's public key
    /// (the applet's CREATE_PAIR, PUT_UID, PUT_PUBLIC_KEY_BROKER).
    pub fn new(
        suite: Suite,
        uid: &str,
        device_key: LocalKey,
        broker_key: PeerKey,
    ) -> Result<Self, ScacError> {
        Self::with_rng(
            suite,
            uid,
            device_key,
            broker_key,
            ChaCha20Rng::from_rng(OsRng).map_err(|_| {
                ScacError::Key(super::keys::KeyError {
                    operation: "random generation",
                    detail: "the operating system's generator failed".into(),
                })
            })?,
        )
    }

    /// [`SoftCard::new`] with a given generator (test vectors).
    pub fn with_rng(
        suite: Suite,
        uid: &str,
        device_key: LocalKey,
        broker_key: PeerKey,
        rng: ChaCha20Rng,
    ) -> Result<Self, ScacError> {
        suite.check_uid(uid.as_bytes())?;
        Ok(SoftCard {
            suite,
            uid: uid.to_owned(),
            device_key,
            broker_key,
            rng,
            state: CardState::Idle,
        })
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The UID, also the MQTT Client ID (GET_UID, 0x24).
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// True once step 3 has been produced.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, CardState::Authenticated(_))
    }

    /// Key epochs of the session, if authenticated.
    pub fn epochs(&self) -> Option<Epochs> {
        match &self.state {
            CardState::Authenticated(channel) => Some(channel.epochs()),
            _ => None,
        }
    }

    /// Forgets the session (connection reset): the next operation must be
    /// [`SoftCard::create_auth_step1`].
    pub fn reset(&mut self) {
        self.state = CardState::Idle;
    }

    /// GET_PUBLIC_KEY (0x21): the key to register on the ledger.
    pub fn get_public_key(&self) -> PeerKey {
        self.device_key.public()
    }

    /// CREATE_AUTH_STEP1 (0x25): the CONNECT authentication data. Starts
    /// a new session whatever the card's state.
    pub fn create_auth_step1(&mut self) -> Result<Vec<u8>, SoftCardError> {
        self.state = CardState::Idle;
        let (handshake, step1) = ClientHandshake::start_with_rng(
            self.suite,
            &self.uid,
            &self.device_key,
            &self.broker_key,
            &mut self.rng,
        )?;
        self.state = CardState::AwaitingStep2(Box::new(handshake));
        Ok(step1)
    }

    /// CHECK_AUTH_STEP2 (0x26): checks the broker's first AUTH.
    pub fn check_auth_step2(&mut self, step2: &[u8]) -> Result<(), SoftCardError> {
        match std::mem::replace(&mut self.state, CardState::Idle) {
            CardState::AwaitingStep2(handshake) => {
                let (step3, channel) = handshake.on_step2(step2)?;
                self.state = CardState::Step3Ready { step3, channel };
                Ok(())
            }
            other => Err(self.refuse("CHECK_AUTH_STEP2", other)),
        }
    }

    /// CREATE_AUTH_STEP3 (0x27): the device's AUTH answer.
    pub fn create_auth_step3(&mut self) -> Result<Vec<u8>, SoftCardError> {
        match std::mem::replace(&mut self.state, CardState::Idle) {
            CardState::Step3Ready { step3, channel } => {
                self.state = CardState::Authenticated(channel);
                Ok(step3)
            }
            other => Err(self.refuse("CREATE_AUTH_STEP3", other)),
        }
    }

    /// CREATE_MSG_PUBLISH (0x28): the protected payload of a QoS 2 PUBLISH.
    pub fn create_msg_publish(
        &mut self,
        topic: &str,
        packet_id: u16,
        data: &[u8],
    ) -> Result<Vec<u8>, SoftCardError> {
        self.with_channel("CREATE_MSG_PUBLISH", |c| c.seal(topic, packet_id, data))
    }

    /// CREATE_PUBREL (0x31): the `Np` property of the PUBREL, sent now.
    pub fn create_pubrel(&mut self, packet_id: u16) -> Result<String, SoftCardError> {
        self.with_channel("CREATE_PUBREL", |c| c.key_update(packet_id))
    }

    /// READ_PAYLOAD (0x30): the data of a protected PUBLISH received.
    pub fn read_payload(
        &mut self,
        topic: &str,
        packet_id: u16,
        payload: &[u8],
    ) -> Result<Vec<u8>, SoftCardError> {
        self.with_channel("READ_PAYLOAD", |c| c.open(topic, packet_id, payload))
    }

    /// CHECK_PUBREL (0x29): checks the broker's `Ns` and switches keys;
    /// answer PUBCOMP 0x00.
    pub fn check_pubrel(&mut self, packet_id: u16, ns: &str) -> Result<(), SoftCardError> {
        self.with_channel("CHECK_PUBREL", |c| c.accept_key_update(packet_id, ns))
    }

    fn with_channel<T>(
        &mut self,
        operation: &'static str,
        op: impl FnOnce(&mut Channel) -> Result<T, CryptError>,
    ) -> Result<T, SoftCardError> {
        let CardState::Authenticated(channel) = &mut self.state else {
            return Err(SoftCardError::WrongState {
                operation,
                state: self.state.describe(),
            });
        };
        op(channel).map_err(|e| {
            self.state = CardState::Idle;
            SoftCardError::Crypt(e)
        })
    }

    fn refuse(&mut self, operation: &'static str, state: CardState) -> SoftCardError {
        let error = SoftCardError::WrongState {
            operation,
            state: state.describe(),
        };
        self.state = state;
        error
    }
}
