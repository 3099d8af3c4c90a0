//! The payload channel a finished handshake yields: one key chain per
//! direction, a one-message window, and the PUBREL key-update rule.
//!
//! Each side holds one [`Channel`]. `tx` is the chain for the PUBLISHes this
//! side sends (the client's publisher keys, `Np`; the broker's subscriber
//! keys, `Ns`), `rx` the chain for those it receives. The rule that keeps
//! both sides in step, even when a PUBREL is lost with its connection:
//! the key-update value is computed from the sender's *current* key when
//! the PUBREL is sent ([`Channel::key_update`], never cached), the sender
//! switches right after, and the receiver switches on each PUBREL whose
//! value verifies ([`Channel::accept_key_update`]). A PUBREL retransmitted
//! after a reconnect belongs to the new handshake, hence is simply the
//! first key update of the new session.

use std::fmt;

use rand_chacha::ChaCha20Rng;

use super::error::CryptError;
use super::{compat, default_suite, Suite, PUBLISHER_KEY_PROPERTY, SUBSCRIBER_KEY_PROPERTY};

/// Which end of the session a channel belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Broker,
}

/// A direction of travel; each has its own key chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Publisher keys, announced in PUBREL property `Np`.
    ClientToBroker,
    /// Subscriber keys, announced in PUBREL property `Ns`.
    BrokerToClient,
}

impl Direction {
    pub(super) fn byte(self) -> u8 {
        match self {
            Direction::ClientToBroker => 0x01,
            Direction::BrokerToClient => 0x02,
        }
    }

    /// The PUBREL user property that carries this direction's key updates.
    pub fn key_property(self) -> &'static str {
        match self {
            Direction::ClientToBroker => PUBLISHER_KEY_PROPERTY,
            Direction::BrokerToClient => SUBSCRIBER_KEY_PROPERTY,
        }
    }
}

/// Key epochs of both chains: how many key updates each has gone through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epochs {
    pub tx: u32,
    pub rx: u32,
}

/// A validated UID, stored inline (at most 64 bytes).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Uid {
    len: u8,
    bytes: [u8; default_suite::MAX_UID_LEN],
}

impl Uid {
    /// `uid` must already be validated by [`Suite::check_uid`].
    pub fn new(uid: &str) -> Uid {
        let mut bytes = [0u8; default_suite::MAX_UID_LEN];
        let len = uid.len().min(default_suite::MAX_UID_LEN);
        bytes[..len].copy_from_slice(&uid.as_bytes()[..len]);
        Uid {
            len: len as u8,
            bytes,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn as_str(&self) -> &str {
        // Built from a &str and cut at its full length: always UTF-8.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

enum Chains {
    Default {
        session_id: [u8; 32],
        tx: default_suite::Chain,
        rx: default_suite::Chain,
    },
    Compat {
        tx: compat::Chain,
        rx: compat::Chain,
        rng: Box<ChaCha20Rng>,
    },
}

/// An authenticated SCAC session's payload protection (QoS 2 only).
pub struct Channel {
    role: Role,
    uid: Uid,
    chains: Chains,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("suite", &self.suite())
            .field("role", &self.role)
            .field("uid", &self.uid)
            .field("epochs", &self.epochs())
            .finish_non_exhaustive()
    }
}

impl Channel {
    pub(super) fn from_default(role: Role, uid: Uid, keys: default_suite::SessionKeys) -> Channel {
        let c2b = default_suite::Chain::new(keys.c2b);
        let b2c = default_suite::Chain::new(keys.b2c);
        let (tx, rx) = match role {
            Role::Client => (c2b, b2c),
            Role::Broker => (b2c, c2b),
        };
        Channel {
            role,
            uid,
            chains: Chains::Default {
                session_id: keys.session_id,
                tx,
                rx,
            },
        }
    }

    pub(super) fn from_compat(role: Role, uid: Uid, keys: compat::SessionKeys) -> Channel {
        let c2b = compat::Chain::new(keys.rnp);
        let b2c = compat::Chain::new(keys.rns);
        let (tx, rx) = match role {
            Role::Client => (c2b, b2c),
            Role::Broker => (b2c, c2b),
        };
        Channel {
            role,
            uid,
            chains: Chains::Compat {
                tx,
                rx,
                rng: Box::new(keys.rng),
            },
        }
    }

    pub fn suite(&self) -> Suite {
        match self.chains {
            Chains::Default { .. } => Suite::Default,
            Chains::Compat { .. } => Suite::RsaCompat,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The authenticated UID (the MQTT Client ID of the session).
    pub fn uid(&self) -> &str {
        self.uid.as_str()
    }

    /// The direction of the PUBLISHes this side sends.
    pub fn tx_direction(&self) -> Direction {
        match self.role {
            Role::Client => Direction::ClientToBroker,
            Role::Broker => Direction::BrokerToClient,
        }
    }

    /// The direction of the PUBLISHes this side receives.
    pub fn rx_direction(&self) -> Direction {
        match self.role {
            Role::Client => Direction::BrokerToClient,
            Role::Broker => Direction::ClientToBroker,
        }
    }

    /// The PUBREL property this side writes: `Np` (client) or `Ns` (broker).
    pub fn tx_key_property(&self) -> &'static str {
        self.tx_direction().key_property()
    }

    /// The PUBREL property this side reads: `Ns` (client) or `Np` (broker).
    pub fn rx_key_property(&self) -> &'static str {
        self.rx_direction().key_property()
    }

    pub fn epochs(&self) -> Epochs {
        match &self.chains {
            Chains::Default { tx, rx, .. } => Epochs {
                tx: tx.epoch(),
                rx: rx.epoch(),
            },
            Chains::Compat { tx, rx, .. } => Epochs {
                tx: tx.epoch(),
                rx: rx.epoch(),
            },
        }
    }

    /// Protects the payload of a QoS 2 PUBLISH this side sends, under the
    /// current tx key. A PUBLISH retransmitted after a reconnect (DUP) is
    /// sealed again by the new session's channel.
    pub fn seal(
        &mut self,
        topic: &str,
        packet_id: u16,
        data: &[u8],
    ) -> Result<Vec<u8>, CryptError> {
        let direction = self.tx_direction();
        match &mut self.chains {
            Chains::Default { session_id, tx, .. } => {
                let cx = default_suite::PayloadContext {
                    direction,
                    session_id,
                    uid: &self.uid,
                    topic,
                    packet_id,
                };
                default_suite::seal(tx, &cx, data)
            }
            Chains::Compat { tx, .. } => compat::seal(tx, direction, &self.uid, data),
        }
    }

    /// The value of this side's PUBREL key property (`Np` or `Ns`) for the
    /// PUBREL of `packet_id`, computed from the current tx key; the tx
    /// chain advances to the next key as soon as it returns. Call it when
    /// the PUBREL is sent, never earlier, and never reuse the value.
    pub fn key_update(&mut self, packet_id: u16) -> Result<String, CryptError> {
        let direction = self.tx_direction();
        match &mut self.chains {
            Chains::Default { session_id, tx, .. } => {
                default_suite::key_update(tx, direction, session_id, &self.uid, packet_id)
            }
            Chains::Compat { tx, rng, .. } => compat::key_update(tx, rng, &self.uid),
        }
    }

    /// Opens the payload of a QoS 2 PUBLISH this side receives.
    pub fn open(
        &mut self,
        topic: &str,
        packet_id: u16,
        payload: &[u8],
    ) -> Result<Vec<u8>, CryptError> {
        let direction = self.rx_direction();
        match &mut self.chains {
            Chains::Default { session_id, rx, .. } => {
                let cx = default_suite::PayloadContext {
                    direction,
                    session_id,
                    uid: &self.uid,
                    topic,
                    packet_id,
                };
                default_suite::open(rx, &cx, payload)
            }
            Chains::Compat { rx, .. } => compat::open(rx, direction, &self.uid, payload),
        }
    }

    /// Checks the peer's PUBREL key property (`Ns` on the client, `Np` on
    /// the broker) and advances the rx chain. On success answer PUBCOMP
    /// 0x00; on error DISCONNECT 0x80 "Crypt Error" (the chain is unchanged).
    pub fn accept_key_update(&mut self, packet_id: u16, value: &str) -> Result<(), CryptError> {
        let direction = self.rx_direction();
        match &mut self.chains {
            Chains::Default { session_id, rx, .. } => default_suite::accept_key_update(
                rx, direction, session_id, &self.uid, packet_id, value,
            ),
            Chains::Compat { rx, .. } => compat::accept_key_update(rx, &self.uid, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_core::SeedableRng as _;
    use zeroize::Zeroizing;

    use super::*;

    fn default_pair(client_uid: &str, broker_uid: &str) -> (Channel, Channel) {
        let keys = || default_suite::SessionKeys {
            c2b: Zeroizing::new([1; 32]),
            b2c: Zeroizing::new([2; 32]),
            session_id: [3; 32],
        };
        (
            Channel::from_default(Role::Client, Uid::new(client_uid), keys()),
            Channel::from_default(Role::Broker, Uid::new(broker_uid), keys()),
        )
    }

    fn compat_pair(client_uid: &str, broker_uid: &str) -> (Channel, Channel) {
        let keys = || compat::SessionKeys {
            rnp: Zeroizing::new([1; 16]),
            rns: Zeroizing::new([2; 16]),
            rng: ChaCha20Rng::from_seed([4; 32]),
        };
        (
            Channel::from_compat(Role::Client, Uid::new(client_uid), keys()),
            Channel::from_compat(Role::Broker, Uid::new(broker_uid), keys()),
        )
    }

    #[test]
    fn same_keys_but_another_uid_is_a_crypt_error() {
        for (mut client, mut broker) in [
            default_pair("device-a", "device-b"),
            compat_pair("DEVICE-A", "DEVICE-B"),
        ] {
            let sealed = client.seal("t", 1, b"data").unwrap();
            assert!(
                matches!(
                    broker.open("t", 1, &sealed),
                    Err(CryptError::UidMismatch { .. } | CryptError::Decryption { .. })
                ),
                "{:?}",
                client.suite()
            );
            let update = client.key_update(1).unwrap();
            assert!(matches!(
                broker.accept_key_update(1, &update),
                Err(CryptError::UidMismatch { .. })
            ));
            assert_eq!(broker.epochs().rx, 0);
        }
    }

    #[test]
    fn same_keys_and_uid_interoperate() {
        for (mut client, mut broker) in [
            default_pair("device-a", "device-a"),
            compat_pair("DEVICE-A", "DEVICE-A"),
        ] {
            let sealed = client.seal("t", 1, b"data").unwrap();
            assert_eq!(broker.open("t", 1, &sealed).unwrap(), b"data");
            let update = client.key_update(1).unwrap();
            broker.accept_key_update(1, &update).unwrap();
            assert_eq!(broker.epochs().rx, 1);
        }
    }

    #[test]
    fn compat_payload_too_large_for_a_16_bit_length_is_refused() {
        let (mut client, _) = compat_pair("DEVICE-A", "DEVICE-A");
        assert!(matches!(
            client.seal("t", 1, &vec![0; 70_000]),
            Err(CryptError::TooLarge { .. })
        ));
        assert_eq!(
            client.seal("t", 1, &vec![0; 65_494]).unwrap().len(),
            2 + 65_520
        );
    }
}
