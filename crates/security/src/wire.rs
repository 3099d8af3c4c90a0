//! The bytes of `LMQ-OTP-1`, shared by both ends.
//!
//! ```text
//! step 1  CONNECT / AUTH 0x19 data : version u8 = 1 ‖ packet_number u64 BE ‖ device_id UTF-8 (1–128 bytes, rest)
//! step 2  AUTH 0x18 data (broker)  : challenge, 32 random bytes
//! step 3  AUTH 0x18 data (client)  : SHA-256(OTP), 32 bytes
//!         OTP = HMAC-SHA256(otp_key, challenge ‖ device_id ‖ packet_number u64 BE)
//! ```

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::{OtpError, OtpKey};

/// The MQTT 5 Authentication Method string.
pub const AUTH_METHOD: &str = "LMQ-OTP-1";
/// The only step-1 layout version defined so far.
pub const VERSION: u8 = 1;
/// Length of the step-2 challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Length of the step-3 proof.
pub const PROOF_LEN: usize = 32;
/// Longest accepted device id, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 128;

const HEADER_LEN: usize = 1 + 8;

/// Decoded step-1 authentication data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectData {
    pub device_id: String,
    pub packet_number: u64,
}

impl ConnectData {
    /// Parses step-1 data; every malformation is refused with 0x87.
    pub fn decode(data: &[u8]) -> Result<Self, OtpError> {
        if data.len() < HEADER_LEN {
            return Err(OtpError::AuthDataTooShort { len: data.len() });
        }
        let (header, id) = data.split_at(HEADER_LEN);
        if header[0] != VERSION {
            return Err(OtpError::UnsupportedVersion { version: header[0] });
        }
        let packet_number = u64::from_be_bytes(header[1..].try_into().expect("8 bytes"));
        validate_device_id_len(id.len())?;
        let device_id = std::str::from_utf8(id)
            .map_err(|_| OtpError::InvalidDeviceId { len: id.len() })?
            .to_owned();
        Ok(Self {
            device_id,
            packet_number,
        })
    }

    /// Encodes step-1 data.
    pub fn encode(&self) -> Result<Vec<u8>, OtpError> {
        validate_device_id_len(self.device_id.len())?;
        let mut out = Vec::with_capacity(HEADER_LEN + self.device_id.len());
        out.push(VERSION);
        out.extend_from_slice(&self.packet_number.to_be_bytes());
        out.extend_from_slice(self.device_id.as_bytes());
        Ok(out)
    }
}

fn validate_device_id_len(len: usize) -> Result<(), OtpError> {
    if (1..=MAX_DEVICE_ID_LEN).contains(&len) {
        Ok(())
    } else {
        Err(OtpError::InvalidDeviceId { len })
    }
}

/// OTP = HMAC-SHA256(key, challenge ‖ device_id ‖ packet_number BE).
pub fn otp(
    key: &OtpKey,
    challenge: &[u8; CHALLENGE_LEN],
    device_id: &str,
    packet_number: u64,
) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose()).expect("HMAC takes any key length");
    mac.update(challenge);
    mac.update(device_id.as_bytes());
    mac.update(&packet_number.to_be_bytes());
    mac.finalize().into_bytes().into()
}

/// Step-3 proof: SHA-256(OTP).
pub fn proof(
    key: &OtpKey,
    challenge: &[u8; CHALLENGE_LEN],
    device_id: &str,
    packet_number: u64,
) -> [u8; PROOF_LEN] {
    let mut otp = otp(key, challenge, device_id, packet_number);
    let proof = Sha256::digest(otp).into();
    zeroize::Zeroize::zeroize(&mut otp);
    proof
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_data_round_trips() {
        let data = ConnectData {
            device_id: "sensor-42".into(),
            packet_number: 0x0102_0304_0506_0708,
        };
        let bytes = data.encode().unwrap();
        assert_eq!(&bytes[..9], &[1, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(ConnectData::decode(&bytes).unwrap(), data);
    }

    #[test]
    fn data_shorter_than_header_is_refused_with_0x87() {
        let err = ConnectData::decode(&[1, 0, 0]).unwrap_err();
        assert_eq!(err, OtpError::AuthDataTooShort { len: 3 });
        assert_eq!(err.reason_code(), 0x87);
    }

    #[test]
    fn empty_device_id_is_refused_with_0x87() {
        let err = ConnectData::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 1]).unwrap_err();
        assert_eq!(err, OtpError::InvalidDeviceId { len: 0 });
        assert_eq!(err.reason_code(), 0x87);
    }

    #[test]
    fn device_id_of_129_bytes_is_refused_and_128_accepted() {
        let mut data = vec![1, 0, 0, 0, 0, 0, 0, 0, 1];
        data.extend_from_slice(&[b'a'; 128]);
        assert!(ConnectData::decode(&data).is_ok());
        data.push(b'a');
        assert_eq!(
            ConnectData::decode(&data).unwrap_err(),
            OtpError::InvalidDeviceId { len: 129 }
        );
    }

    #[test]
    fn non_utf8_device_id_is_refused_with_0x87() {
        let err = ConnectData::decode(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF]).unwrap_err();
        assert_eq!(err, OtpError::InvalidDeviceId { len: 1 });
        assert_eq!(err.reason_code(), 0x87);
    }

    #[test]
    fn unknown_version_is_refused_with_0x87() {
        let err = ConnectData::decode(&[2, 0, 0, 0, 0, 0, 0, 0, 1, b'd']).unwrap_err();
        assert_eq!(err, OtpError::UnsupportedVersion { version: 2 });
        assert_eq!(err.reason_code(), 0x87);
    }

    #[test]
    fn proof_binds_device_id_and_packet_number() {
        let key = OtpKey::from_bytes([7; 32]);
        let challenge = [9; 32];
        let base = proof(&key, &challenge, "dev", 1);
        assert_ne!(base, proof(&key, &challenge, "dev", 2));
        assert_ne!(base, proof(&key, &challenge, "dew", 1));
        assert_ne!(base, proof(&key, &[8; 32], "dev", 1));
    }
}
