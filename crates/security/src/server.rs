//! Broker side of `LMQ-OTP-1` as typed states.
//!
//! [`OtpServer::start`] turns step-1 data into an [`AwaitingProof`], whose
//! challenge the caller sends in AUTH 0x18. [`AwaitingProof::finish`]
//! consumes the state, so one challenge can never be answered twice. Time
//! comes in as `now` (milliseconds on whatever clock the caller uses
//! consistently, e.g. Unix millis); this module never reads a clock.

use rand_core::{CryptoRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::wire::{self, ConnectData, CHALLENGE_LEN, PROOF_LEN};
use crate::{OtpError, OtpKey};

/// Default lifetime of a challenge: 30 s.
pub const DEFAULT_CHALLENGE_LIFETIME_MS: u64 = 30_000;

/// Registration state of a device, as the directory (ledger view) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Unknown,
    Active,
    Revoked,
    /// Banned while `now < until` (same clock as `now`; `u64::MAX` = for ever).
    Blacklisted {
        until: u64,
    },
}

/// What the broker knows about devices. Implemented by the caller over the
/// registry, the blacklist and the store of accepted packet numbers.
pub trait OtpDirectory {
    /// The device's OTP key, already unsealed for this broker node.
    fn otp_key(&self, device_id: &str) -> Option<OtpKey>;
    fn status(&self, device_id: &str) -> DeviceStatus;
    /// The highest packet number accepted so far, `None` if never.
    fn last_packet_number(&self, device_id: &str) -> Option<u64>;
}

/// Broker configuration for `LMQ-OTP-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpServer {
    pub challenge_lifetime_ms: u64,
}

impl Default for OtpServer {
    fn default() -> Self {
        Self {
            challenge_lifetime_ms: DEFAULT_CHALLENGE_LIFETIME_MS,
        }
    }
}

impl OtpServer {
    pub fn new(challenge_lifetime_ms: u64) -> Self {
        Self {
            challenge_lifetime_ms,
        }
    }

    /// Step 1 → 2: checks CONNECT (or AUTH 0x19) data against the directory
    /// and draws a fresh challenge. The order of checks is: layout,
    /// status (unknown/revoked/blacklisted), key present, replay.
    pub fn start<D, R>(
        &self,
        directory: &D,
        auth_data: &[u8],
        now: u64,
        rng: &mut R,
    ) -> Result<AwaitingProof, OtpError>
    where
        D: OtpDirectory + ?Sized,
        R: RngCore + CryptoRng + ?Sized,
    {
        let ConnectData {
            device_id,
            packet_number,
        } = ConnectData::decode(auth_data)?;
        match directory.status(&device_id) {
            DeviceStatus::Active => {}
            DeviceStatus::Blacklisted { until } if now < until => {
                return Err(OtpError::BlacklistedDevice { device_id, until });
            }
            DeviceStatus::Blacklisted { .. } => {}
            DeviceStatus::Unknown => return Err(OtpError::UnknownDevice { device_id }),
            DeviceStatus::Revoked => return Err(OtpError::RevokedDevice { device_id }),
        }
        let Some(key) = directory.otp_key(&device_id) else {
            return Err(OtpError::UnknownDevice { device_id });
        };
        if let Some(last_accepted) = directory.last_packet_number(&device_id) {
            if packet_number <= last_accepted {
                return Err(OtpError::ReplayedPacketNumber {
                    device_id,
                    packet_number,
                    last_accepted,
                });
            }
        }
        let mut challenge = [0u8; CHALLENGE_LEN];
        rng.fill_bytes(&mut challenge);
        let expected = wire::proof(&key, &challenge, &device_id, packet_number);
        Ok(AwaitingProof {
            device_id,
            packet_number,
            challenge,
            expected,
            expires_at: now.saturating_add(self.challenge_lifetime_ms),
        })
    }
}

/// Step 2 sent, waiting for the device's step-3 proof. Holds the expected
/// proof rather than the key; it is wiped on drop.
pub struct AwaitingProof {
    device_id: String,
    packet_number: u64,
    challenge: [u8; CHALLENGE_LEN],
    expected: [u8; PROOF_LEN],
    expires_at: u64,
}

impl AwaitingProof {
    /// The AUTH 0x18 authentication data to send to the client.
    pub fn challenge(&self) -> &[u8; CHALLENGE_LEN] {
        &self.challenge
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn packet_number(&self) -> u64 {
        self.packet_number
    }

    /// First `now` at which [`finish`](Self::finish) refuses the proof.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Step 3: checks the client's proof in constant time.
    pub fn finish(self, proof: &[u8], now: u64) -> Result<Authenticated, OtpError> {
        if now >= self.expires_at {
            return Err(OtpError::ChallengeExpired {
                device_id: self.device_id.clone(),
                expired_at: self.expires_at,
                now,
            });
        }
        if proof.len() != PROOF_LEN {
            return Err(OtpError::MalformedProof {
                device_id: self.device_id.clone(),
                len: proof.len(),
            });
        }
        if !bool::from(self.expected.ct_eq(proof)) {
            return Err(OtpError::WrongProof {
                device_id: self.device_id.clone(),
            });
        }
        Ok(Authenticated {
            device_id: self.device_id.clone(),
            packet_number: self.packet_number,
        })
    }
}

impl Drop for AwaitingProof {
    fn drop(&mut self) {
        self.expected.zeroize();
        self.challenge.zeroize();
    }
}

impl std::fmt::Debug for AwaitingProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitingProof")
            .field("device_id", &self.device_id)
            .field("packet_number", &self.packet_number)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A successful `LMQ-OTP-1` exchange. The caller sends CONNACK 0x00 (or
/// AUTH 0x00 after re-authentication) and must record `packet_number` as
/// the device's last accepted one — only if it is still above the stored
/// value, since two concurrent exchanges may have passed step 1 together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub device_id: String,
    pub packet_number: u64,
}
