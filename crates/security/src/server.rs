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

    /// Step 1 → 2: reads CONNECT (or AUTH 0x19) data and draws a fresh
    /// challenge. Only a malformed step 1 is refused here: what the
    /// directory says about the device is not told before the device has
    /// proved its key, so an unknown or revoked device id gets a challenge
    /// drawn the same way (a decoy, with its expected proof computed under
    /// a dummy key), and a banned device or a replayed packet number is
    /// refused only at step 3, after a proof that verifies
    /// ([`AwaitingProof::finish`]).
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
        let (standing, key) = match directory.status(&device_id) {
            DeviceStatus::Unknown => (Standing::Unknown, None),
            DeviceStatus::Revoked => (Standing::Revoked, None),
            DeviceStatus::Blacklisted { until } if now < until => {
                (Standing::Banned { until }, directory.otp_key(&device_id))
            }
            DeviceStatus::Active | DeviceStatus::Blacklisted { .. } => {
                (Standing::Active, directory.otp_key(&device_id))
            }
        };
        let (standing, key) = match key {
            Some(key) => (standing, key),
            None if standing == Standing::Revoked => (standing, OtpKey::from_bytes([0; 32])),
            None => (Standing::Unknown, OtpKey::from_bytes([0; 32])),
        };
        let standing = match (standing, directory.last_packet_number(&device_id)) {
            (Standing::Active, Some(last_accepted)) if packet_number <= last_accepted => {
                Standing::Replayed { last_accepted }
            }
            (standing, _) => standing,
        };
        let mut challenge = [0u8; CHALLENGE_LEN];
        rng.fill_bytes(&mut challenge);
        let expected = wire::proof(&key, &challenge, &device_id, packet_number);
        Ok(AwaitingProof {
            device_id,
            packet_number,
            challenge,
            expected,
            expires_at: now.saturating_add(self.challenge_lifetime_ms),
            standing,
        })
    }
}

/// What step 1 found, told only after a proof that verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Active,
    /// No device, or no key for it: the challenge is a decoy.
    Unknown,
    /// Revoked: the challenge is a decoy.
    Revoked,
    Banned {
        until: u64,
    },
    /// The packet number is not above the last accepted one.
    Replayed {
        last_accepted: u64,
    },
}

/// Step 2 sent, waiting for the device's step-3 proof. Holds the expected
/// proof rather than the key; it is wiped on drop.
pub struct AwaitingProof {
    device_id: String,
    packet_number: u64,
    challenge: [u8; CHALLENGE_LEN],
    expected: [u8; PROOF_LEN],
    expires_at: u64,
    standing: Standing,
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

    /// Step 3: checks the client's proof in constant time. The checks
    /// (lifetime, length, proof) run in the same order and with the same
    /// work whatever step 1 found, and a proof that does not verify is
    /// [`OtpError::WrongProof`] for every device id, known or not. Only a
    /// proof that verifies is told the device's standing: banned
    /// ([`OtpError::BlacklistedDevice`], 0x8A) or a replayed packet number
    /// ([`OtpError::ReplayedPacketNumber`], which only the key holder can
    /// produce). An unknown or revoked device fails as
    /// [`OtpError::UnknownDevice`] / [`OtpError::RevokedDevice`], with the
    /// reason code of a wrong proof.
    pub fn finish(self, proof: &[u8], now: u64) -> Result<Authenticated, OtpError> {
        let device_id = || self.device_id.clone();
        if now >= self.expires_at {
            return Err(OtpError::ChallengeExpired {
                device_id: device_id(),
                expired_at: self.expires_at,
                now,
            });
        }
        if proof.len() != PROOF_LEN {
            return Err(OtpError::MalformedProof {
                device_id: device_id(),
                len: proof.len(),
            });
        }
        let verified = bool::from(self.expected.ct_eq(proof));
        match self.standing {
            Standing::Unknown => Err(OtpError::UnknownDevice {
                device_id: device_id(),
            }),
            Standing::Revoked => Err(OtpError::RevokedDevice {
                device_id: device_id(),
            }),
            _ if !verified => Err(OtpError::WrongProof {
                device_id: device_id(),
            }),
            Standing::Banned { until } => Err(OtpError::BlacklistedDevice {
                device_id: device_id(),
                until,
            }),
            Standing::Replayed { last_accepted } => Err(OtpError::ReplayedPacketNumber {
                device_id: device_id(),
                packet_number: self.packet_number,
                last_accepted,
            }),
            Standing::Active => Ok(Authenticated {
                device_id: device_id(),
                packet_number: self.packet_number,
            }),
        }
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
