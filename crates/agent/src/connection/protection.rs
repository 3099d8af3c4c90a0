//! SCAC payload protection on a live connection (docs/scac.md): QoS 2
//! payloads are sealed on the way out and opened on the way in, and each
//! PUBREL carries a key update — `Np` in the ones this client sends, `Ns`
//! in the broker's. QoS 0/1 payloads are not protected.
//!
//! The key-update value is computed when the PUBREL is written and never
//! kept: the chain moves to the next key as soon as it is computed, which
//! is what keeps both sides in step (a PUBREL is only ever retransmitted
//! after a reconnect, i.e. under a new handshake). Payloads are sealed
//! with the full topic name, since the client never uses topic aliases.
//! Every failure here ends the connection with DISCONNECT 0x80 "Crypt
//! Error", except a payload too large for the suite, which fails only its
//! publish.

use ledgermq_proto::{PubResp, Publish, QoS};
use ledgermq_security::scac::{Channel, CryptError};

use crate::ClientError;

/// The payload channel of a SCAC-authenticated connection.
pub(super) struct PayloadProtection {
    channel: Channel,
}

impl PayloadProtection {
    pub(super) fn new(channel: Channel) -> Self {
        Self { channel }
    }

    /// Encrypts the payload of a QoS 2 publish about to be written, under
    /// its packet identifier; QoS 0/1 publishes are left as they are.
    pub(super) fn seal(&mut self, publish: &mut Publish) -> Result<(), SealError> {
        if publish.qos != QoS::ExactlyOnce {
            return Ok(());
        }
        match self
            .channel
            .seal(&publish.topic, publish.packet_id, &publish.payload)
        {
            Ok(sealed) => {
                publish.payload = sealed.into();
                Ok(())
            }
            Err(e @ CryptError::TooLarge { .. }) => Err(SealError::Request(ClientError::Request(
                format!("cannot protect the payload: {e}"),
            ))),
            Err(e) => Err(SealError::Connection(ClientError::Crypt(e))),
        }
    }

    /// Adds `Np` to a PUBREL about to be written: every PUBREL this client
    /// sends carries one, since the broker checks each of them.
    pub(super) fn announce_key_update(&mut self, pubrel: &mut PubResp) -> Result<(), ClientError> {
        let value = self
            .channel
            .key_update(pubrel.packet_id)
            .map_err(ClientError::Crypt)?;
        let property = self.channel.tx_key_property();
        pubrel
            .properties
            .user_properties
            .push((property.into(), value));
        Ok(())
    }

    /// Decrypts the payload of a new QoS 2 delivery (not of a duplicate:
    /// the caller only opens what it has not seen).
    pub(super) fn open(&mut self, publish: &mut Publish) -> Result<(), ClientError> {
        let data = self
            .channel
            .open(&publish.topic, publish.packet_id, &publish.payload)
            .map_err(ClientError::Crypt)?;
        publish.payload = data.into();
        Ok(())
    }

    /// Checks the broker's `Ns` in a PUBREL and moves to the next
    /// subscriber key; a PUBREL without one is refused.
    pub(super) fn accept_key_update(&mut self, pubrel: &PubResp) -> Result<(), ClientError> {
        let property = self.channel.rx_key_property();
        let mut values = pubrel
            .properties
            .user_properties
            .iter()
            .filter(|(name, _)| name == property)
            .map(|(_, value)| value);
        let value = match (values.next(), values.next()) {
            (Some(value), None) => value,
            (None, _) => {
                return Err(ClientError::Crypt(CryptError::Malformed {
                    what: "PUBREL",
                    reason: "the key-update property is missing",
                }))
            }
            (Some(_), Some(_)) => {
                return Err(ClientError::Crypt(CryptError::Malformed {
                    what: "PUBREL",
                    reason: "the key-update property is repeated",
                }))
            }
        };
        self.channel
            .accept_key_update(pubrel.packet_id, value)
            .map_err(ClientError::Crypt)
    }
}

/// Why a publish could not be sealed.
pub(super) enum SealError {
    /// Only this publish fails (payload too large for the suite).
    Request(ClientError),
    /// The connection must end ("Crypt Error").
    Connection(ClientError),
}
