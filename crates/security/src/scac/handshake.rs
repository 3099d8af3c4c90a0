//! The three handshake steps as typed states, dispatching to the suites.
//!
//! ```text
//! client                                   broker
//! ClientHandshake::start ── CONNECT(step 1) ──▶ uid_of_step1 → look up device key
//!                                               BrokerHandshake::start
//!        on_step2 ◀──────── AUTH 0x18 (step 2) ── BrokerAwaiting
//!        (Channel) ──────── AUTH 0x18 (step 3) ──▶ BrokerAwaiting::finish (Channel)
//!                  ◀──────── CONNACK 0x00
//! ```

use std::sync::Arc;

use rand_core::{CryptoRng, OsRng, RngCore};
use rsa::traits::PublicKeyParts as _;
use rsa::RsaPublicKey;

use super::channel::{Channel, Role, Uid};
use super::error::{Party, ScacError};
use super::keys::{Ed25519Signer, RsaKey};
use super::{compat, default_suite, LocalKey, PeerKey, Suite};

/// The UID a step 1 claims (not yet authenticated), so the broker can look
/// up the device's registered key and check it equals the Client ID.
pub fn uid_of_step1(suite: Suite, step1: &[u8]) -> Result<&str, ScacError> {
    match suite {
        Suite::Default => default_suite::uid_of_step1(step1),
        Suite::RsaCompat => compat::uid_of_step1(step1),
    }
}

fn wrong_kind(suite: Suite, party: Party) -> ScacError {
    ScacError::WrongKeyKind {
        suite: suite.method(),
        expected: match suite {
            Suite::Default => "Ed25519",
            Suite::RsaCompat => "RSA-2048",
        },
        party,
    }
}

fn ed25519_peer(suite: Suite, key: &PeerKey, party: Party) -> Result<&[u8; 32], ScacError> {
    match key {
        PeerKey::Ed25519(public) => Ok(public),
        PeerKey::Rsa { .. } => Err(wrong_kind(suite, party)),
    }
}

fn rsa_peer(suite: Suite, key: &PeerKey, party: Party) -> Result<RsaPublicKey, ScacError> {
    match key {
        PeerKey::Rsa { n, e } => compat::public_key(n, e, party),
        PeerKey::Ed25519(_) => Err(wrong_kind(suite, party)),
    }
}

/// The broker's long-term key with its public half computed once.
#[derive(Debug, Clone)]
pub struct BrokerCredentials {
    key: BrokerKey,
}

#[derive(Debug, Clone)]
enum BrokerKey {
    Ed25519 {
        signer: Arc<dyn Ed25519Signer>,
        public: [u8; 32],
    },
    Rsa {
        key: Arc<dyn RsaKey>,
        public: RsaPublicKey,
    },
}

impl BrokerCredentials {
    /// Asks the key store for the public key once; fails on a key that is
    /// not Ed25519 or RSA-2048.
    pub fn new(key: LocalKey) -> Result<BrokerCredentials, ScacError> {
        let key = match key {
            LocalKey::Ed25519(signer) => BrokerKey::Ed25519 {
                public: signer.public(),
                signer,
            },
            LocalKey::Rsa(key) => BrokerKey::Rsa {
                public: compat::public_key(&key.modulus(), &key.public_exponent(), Party::Broker)?,
                key,
            },
        };
        Ok(BrokerCredentials { key })
    }

    /// The suite this key can serve.
    pub fn suite(&self) -> Suite {
        match self.key {
            BrokerKey::Ed25519 { .. } => Suite::Default,
            BrokerKey::Rsa { .. } => Suite::RsaCompat,
        }
    }

    /// The public key devices must hold for this broker.
    pub fn public(&self) -> PeerKey {
        match &self.key {
            BrokerKey::Ed25519 { public, .. } => PeerKey::Ed25519(*public),
            BrokerKey::Rsa { public, .. } => PeerKey::Rsa {
                n: public.n().to_bytes_be(),
                e: public.e().to_bytes_be(),
            },
        }
    }
}

/// The broker's entry point: processes step 1.
#[derive(Debug)]
pub struct BrokerHandshake;

enum BrokerInner {
    Default(default_suite::BrokerState),
    Compat(compat::BrokerState),
    /// Step 2 was a decoy: every step 3 is refused with `reason`.
    DefaultDecoy(default_suite::DecoyState, ScacError),
    CompatDecoy(compat::DecoyState, ScacError),
}

/// The broker after sending step 2, waiting for step 3.
pub struct BrokerAwaiting {
    inner: BrokerInner,
}

impl std::fmt::Debug for BrokerAwaiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAwaiting")
            .field("suite", &self.suite())
            .field("uid", &self.uid())
            .finish_non_exhaustive()
    }
}

impl BrokerHandshake {
    /// Checks step 1 against the device's registered key and returns the
    /// state awaiting step 3 and the bytes of step 2 (AUTH 0x18).
    pub fn start(
        suite: Suite,
        broker: &BrokerCredentials,
        device_key: &PeerKey,
        step1: &[u8],
    ) -> Result<(BrokerAwaiting, Vec<u8>), ScacError> {
        Self::start_with_rng(suite, broker, device_key, step1, &mut OsRng)
    }

    /// [`BrokerHandshake::start`] with the caller's random generator (test
    /// vectors use a seeded one).
    pub fn start_with_rng<R: RngCore + CryptoRng>(
        suite: Suite,
        broker: &BrokerCredentials,
        device_key: &PeerKey,
        step1: &[u8],
        rng: &mut R,
    ) -> Result<(BrokerAwaiting, Vec<u8>), ScacError> {
        let (inner, step2) = match (suite, &broker.key) {
            (Suite::Default, BrokerKey::Ed25519 { signer, public }) => {
                let device = ed25519_peer(suite, device_key, Party::Device)?;
                let (state, step2) =
                    default_suite::broker_start(signer.as_ref(), public, device, step1, rng)?;
                (BrokerInner::Default(state), step2)
            }
            (Suite::RsaCompat, BrokerKey::Rsa { key, .. }) => {
                let device = rsa_peer(suite, device_key, Party::Device)?;
                let (state, step2) = compat::broker_start(key.clone(), &device, step1, rng)?;
                (BrokerInner::Compat(state), step2)
            }
            _ => return Err(wrong_kind(suite, Party::Broker)),
        };
        Ok((BrokerAwaiting { inner }, step2))
    }
}

impl BrokerHandshake {
    /// [`BrokerHandshake::start`] that never tells at step 2 whether the
    /// UID is known or its step 1 verified, so a client without the
    /// device's key learns neither (DESIGN.md §3, trust model). With no
    /// `device_key` (unknown UID), or a step 1 that does not verify under
    /// it, the answer is a decoy step 2 of the same length, made with the
    /// same work, and the returned state refuses every step 3 with the
    /// step-1 error ([`ScacError::UnknownDevice`] for an unknown UID).
    /// Only what does not depend on the UID is refused at once: a
    /// malformed step 1 or UID, a broker key of the wrong kind, a failing
    /// key store.
    pub fn start_or_decoy<R: RngCore + CryptoRng>(
        suite: Suite,
        broker: &BrokerCredentials,
        device_key: Option<&PeerKey>,
        step1: &[u8],
        rng: &mut R,
    ) -> Result<(BrokerAwaiting, Vec<u8>), ScacError> {
        uid_of_step1(suite, step1)?;
        let reason = match device_key {
            Some(key) => match Self::start_with_rng(suite, broker, key, step1, rng) {
                Ok(started) => return Ok(started),
                Err(e @ ScacError::Key(_)) => return Err(e),
                Err(
                    e @ ScacError::WrongKeyKind {
                        party: Party::Broker,
                        ..
                    },
                ) => return Err(e),
                Err(e) => e,
            },
            None => {
                Self::dummy_step1_check(suite, broker, step1);
                ScacError::UnknownDevice
            }
        };
        let (inner, step2) = match (suite, &broker.key) {
            (Suite::Default, BrokerKey::Ed25519 { signer, public }) => {
                let (state, step2) =
                    default_suite::broker_decoy(signer.as_ref(), public, step1, rng)?;
                (BrokerInner::DefaultDecoy(state, reason), step2)
            }
            (Suite::RsaCompat, BrokerKey::Rsa { key, public }) => {
                let (state, step2) = compat::broker_decoy(key.clone(), public, step1, rng)?;
                (BrokerInner::CompatDecoy(state, reason), step2)
            }
            _ => return Err(wrong_kind(suite, Party::Broker)),
        };
        Ok((BrokerAwaiting { inner }, step2))
    }

    /// The step-1 check a known UID costs, against the broker's own key.
    fn dummy_step1_check(suite: Suite, broker: &BrokerCredentials, step1: &[u8]) {
        match (suite, &broker.key) {
            (Suite::Default, BrokerKey::Ed25519 { public, .. }) => {
                default_suite::dummy_step1_check(public, public, step1)
            }
            (Suite::RsaCompat, BrokerKey::Rsa { public, .. }) => {
                compat::dummy_step1_check(public, step1)
            }
            _ => {}
        }
    }
}

impl BrokerAwaiting {
    pub fn suite(&self) -> Suite {
        match self.inner {
            BrokerInner::Default(_) | BrokerInner::DefaultDecoy(..) => Suite::Default,
            BrokerInner::Compat(_) | BrokerInner::CompatDecoy(..) => Suite::RsaCompat,
        }
    }

    /// Whether step 2 was a decoy ([`BrokerHandshake::start_or_decoy`]):
    /// every step 3 will be refused. For the broker's own accounting;
    /// never tell the client.
    pub fn is_decoy(&self) -> bool {
        matches!(
            self.inner,
            BrokerInner::DefaultDecoy(..) | BrokerInner::CompatDecoy(..)
        )
    }

    /// The UID step 1 claims (proved by it unless step 2 was a decoy; the
    /// device still has to answer step 3).
    pub fn uid(&self) -> &str {
        match &self.inner {
            BrokerInner::Default(s) => s.uid().as_str(),
            BrokerInner::Compat(s) => s.uid().as_str(),
            BrokerInner::DefaultDecoy(s, _) => s.uid().as_str(),
            BrokerInner::CompatDecoy(s, _) => s.uid().as_str(),
        }
    }

    /// Checks step 3; on success send CONNACK 0x00 and use the channel.
    /// After a decoy step 2 this does the same work and always fails, with
    /// the error that made step 1 a decoy.
    pub fn finish(self, step3: &[u8]) -> Result<Channel, ScacError> {
        Ok(match self.inner {
            BrokerInner::Default(state) => {
                let (uid, keys) = default_suite::broker_finish(state, step3)?;
                Channel::from_default(Role::Broker, uid, keys)
            }
            BrokerInner::Compat(state) => {
                let (uid, keys) = compat::broker_finish(state, step3)?;
                Channel::from_compat(Role::Broker, uid, keys)
            }
            BrokerInner::DefaultDecoy(state, reason) => {
                default_suite::decoy_finish(state, step3);
                return Err(reason);
            }
            BrokerInner::CompatDecoy(state, reason) => {
                compat::decoy_finish(state, step3);
                return Err(reason);
            }
        })
    }
}

enum ClientInner {
    Default(default_suite::ClientState),
    Compat(compat::ClientState),
}

/// The device after sending step 1 (in CONNECT), waiting for step 2.
pub struct ClientHandshake {
    inner: ClientInner,
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("suite", &self.suite())
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// Builds step 1 for `uid` (which must also be the MQTT Client ID).
    pub fn start(
        suite: Suite,
        uid: &str,
        device_key: &LocalKey,
        broker_key: &PeerKey,
    ) -> Result<(ClientHandshake, Vec<u8>), ScacError> {
        Self::start_with_rng(suite, uid, device_key, broker_key, &mut OsRng)
    }

    /// [`ClientHandshake::start`] with the caller's random generator. In the
    /// compatibility suite it also seeds the generator of the later key
    /// updates and of the RSA padding of step 3.
    pub fn start_with_rng<R: RngCore + CryptoRng>(
        suite: Suite,
        uid: &str,
        device_key: &LocalKey,
        broker_key: &PeerKey,
        rng: &mut R,
    ) -> Result<(ClientHandshake, Vec<u8>), ScacError> {
        let uid = Uid::new(suite.check_uid(uid.as_bytes())?);
        let (inner, step1) = match (suite, device_key) {
            (Suite::Default, LocalKey::Ed25519(signer)) => {
                let broker = ed25519_peer(suite, broker_key, Party::Broker)?;
                let (state, step1) = default_suite::client_start(uid, signer.clone(), broker, rng)?;
                (ClientInner::Default(state), step1)
            }
            (Suite::RsaCompat, LocalKey::Rsa(key)) => {
                let broker = rsa_peer(suite, broker_key, Party::Broker)?;
                let (state, step1) = compat::client_start(uid, key.clone(), broker, rng)?;
                (ClientInner::Compat(state), step1)
            }
            _ => return Err(wrong_kind(suite, Party::Device)),
        };
        Ok((ClientHandshake { inner }, step1))
    }

    pub fn suite(&self) -> Suite {
        match self.inner {
            ClientInner::Default(_) => Suite::Default,
            ClientInner::Compat(_) => Suite::RsaCompat,
        }
    }

    /// Checks the broker's step 2 and returns step 3 (AUTH 0x18) and the
    /// channel, usable once CONNACK 0x00 arrives. On error send DISCONNECT
    /// 0x80 with reason string "Auth Error".
    pub fn on_step2(self, step2: &[u8]) -> Result<(Vec<u8>, Channel), ScacError> {
        Ok(match self.inner {
            ClientInner::Default(state) => {
                let (step3, uid, keys) = default_suite::client_on_step2(state, step2)?;
                (step3, Channel::from_default(Role::Client, uid, keys))
            }
            ClientInner::Compat(state) => {
                let (step3, uid, keys) = compat::client_on_step2(state, step2)?;
                (step3, Channel::from_compat(Role::Client, uid, keys))
            }
        })
    }
}
