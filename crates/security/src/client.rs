//! Device side of `LMQ-OTP-1`: build step 1, answer step 2.

use crate::wire::{self, ConnectData, CHALLENGE_LEN, PROOF_LEN};
use crate::{OtpError, OtpKey};

/// Stateless helpers for devices (and for tests of the broker).
#[derive(Debug, Clone, Copy)]
pub struct OtpClient;

impl OtpClient {
    /// Step-1 Authentication Data for CONNECT (or AUTH 0x19). The packet
    /// number must be above every one the device used before.
    pub fn connect_data(device_id: &str, packet_number: u64) -> Result<Vec<u8>, OtpError> {
        ConnectData {
            device_id: device_id.to_owned(),
            packet_number,
        }
        .encode()
    }

    /// Reads the broker's step-2 AUTH 0x18 data.
    pub fn challenge(auth_data: &[u8]) -> Option<[u8; CHALLENGE_LEN]> {
        auth_data.try_into().ok()
    }

    /// Step-3 AUTH 0x18 data: SHA-256(HMAC-SHA256(key, challenge ‖ device_id ‖ packet_number BE)).
    pub fn proof(
        otp_key: &OtpKey,
        challenge: &[u8; CHALLENGE_LEN],
        device_id: &str,
        packet_number: u64,
    ) -> [u8; PROOF_LEN] {
        wire::proof(otp_key, challenge, device_id, packet_number)
    }
}
