//! The device's half of `LMQ-OTP-1` as MQTT packets: step 1 in CONNECT or
//! AUTH 0x19, step 3 in answer to the broker's AUTH 0x18 challenge. Used
//! by the handshake and by re-authentication, which differ only in the
//! packets around the exchange.

use bytes::Bytes;
use ledgermq_proto::{Auth as AuthPacket, Packet, Properties, ReasonCode};
use ledgermq_security::{OtpClient, OtpKey, AUTH_METHOD};

use crate::ClientError;

/// Holds the OTP key for the lifetime of the connection, because every
/// re-authentication needs it again. `Debug` never shows the key.
#[derive(Debug)]
pub(crate) struct OtpSigner {
    device_id: String,
    key: OtpKey,
}

impl OtpSigner {
    pub(crate) fn new(device_id: String, key: OtpKey) -> Self {
        Self { device_id, key }
    }

    /// Step-1 Authentication Data for `packet_number`.
    pub(crate) fn step1(&self, packet_number: u64) -> Result<Bytes, ClientError> {
        OtpClient::connect_data(&self.device_id, packet_number)
            .map(Bytes::from)
            .map_err(|e| ClientError::Options(e.to_string()))
    }

    /// The AUTH 0x19 that starts a re-authentication.
    pub(crate) fn reauth_start(&self, packet_number: u64) -> Result<Packet, ClientError> {
        Ok(auth_packet(
            ReasonCode::RE_AUTHENTICATE,
            self.step1(packet_number)?,
        ))
    }

    /// The step-3 AUTH 0x18 answering the broker's step-2 AUTH 0x18.
    /// Anything but a 32-byte `LMQ-OTP-1` challenge is a protocol error.
    pub(crate) fn answer(
        &self,
        challenge: &AuthPacket,
        packet_number: u64,
    ) -> Result<Packet, ClientError> {
        if challenge.reason != ReasonCode::CONTINUE_AUTHENTICATION {
            return Err(ClientError::Protocol(format!(
                "expected AUTH 0x18 with a challenge, got AUTH 0x{:02x}",
                challenge.reason.0
            )));
        }
        let method = challenge.properties.authentication_method.as_deref();
        if method != Some(AUTH_METHOD) {
            return Err(ClientError::Protocol(format!(
                "AUTH names authentication method {method:?}, not {AUTH_METHOD}"
            )));
        }
        let data = challenge.properties.authentication_data.as_deref();
        let challenge = data.and_then(OtpClient::challenge).ok_or_else(|| {
            ClientError::Protocol("the LMQ-OTP-1 challenge is not 32 bytes".into())
        })?;
        let proof = OtpClient::proof(&self.key, &challenge, &self.device_id, packet_number);
        Ok(auth_packet(
            ReasonCode::CONTINUE_AUTHENTICATION,
            Bytes::copy_from_slice(&proof),
        ))
    }
}

fn auth_packet(reason: ReasonCode, data: Bytes) -> Packet {
    Packet::Auth(AuthPacket {
        reason,
        properties: Properties {
            authentication_method: Some(AUTH_METHOD.into()),
            authentication_data: Some(data),
            ..Properties::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(reason: ReasonCode, method: &str, data: &[u8]) -> AuthPacket {
        AuthPacket {
            reason,
            properties: Properties {
                authentication_method: Some(method.into()),
                authentication_data: Some(Bytes::copy_from_slice(data)),
                ..Properties::default()
            },
        }
    }

    fn auth_data(packet: &Packet) -> &[u8] {
        match packet {
            Packet::Auth(a) => a.properties.authentication_data.as_deref().unwrap(),
            other => panic!("not AUTH: {other:?}"),
        }
    }

    /// Vector 1 of crates/security/README.md, through the MQTT packets.
    #[test]
    fn answer_carries_the_published_test_vector_proof() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let signer = OtpSigner::new("sensor-42".into(), OtpKey::from_bytes(key));
        let step2: Vec<u8> = (0x80..=0x9f).collect();
        let packet_number = 0x0102_0304_0506_0708;
        let start = signer.reauth_start(packet_number).unwrap();
        assert_eq!(
            auth_data(&start),
            b"\x01\x01\x02\x03\x04\x05\x06\x07\x08sensor-42"
        );
        let step3 = signer
            .answer(
                &challenge(ReasonCode::CONTINUE_AUTHENTICATION, AUTH_METHOD, &step2),
                packet_number,
            )
            .unwrap();
        let expected = "1ba5395666ed1ef6a983b260a965ce9d18f8be3c0fac72850457ee9cc9533a0a";
        let hex: String = auth_data(&step3)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn challenge_of_wrong_length_or_method_is_a_protocol_error() {
        let signer = OtpSigner::new("d".into(), OtpKey::from_bytes([1; 32]));
        for bad in [
            challenge(ReasonCode::CONTINUE_AUTHENTICATION, AUTH_METHOD, &[0; 31]),
            challenge(ReasonCode::CONTINUE_AUTHENTICATION, "OTHER", &[0; 32]),
            challenge(ReasonCode::SUCCESS, AUTH_METHOD, &[0; 32]),
        ] {
            let err = signer.answer(&bad, 1).unwrap_err();
            assert!(matches!(err, ClientError::Protocol(_)), "{err}");
        }
    }
}
