//! Test doubles shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;

use ledgermq_security::{DeviceStatus, OtpDirectory, OtpKey};
use rand_core::{CryptoRng, RngCore};

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0);
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn hex32(s: &str) -> [u8; 32] {
    hex(s).try_into().unwrap()
}

/// An "RNG" that always yields the same bytes, to pin the challenge.
pub struct FixedRng(pub [u8; 32]);

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        u32::from_be_bytes(self.0[..4].try_into().unwrap())
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().unwrap())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for (d, s) in dest.iter_mut().zip(self.0.iter().cycle()) {
            *d = *s;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FixedRng {}

#[derive(Default)]
pub struct Device {
    pub key: Option<[u8; 32]>,
    pub status: Option<DeviceStatus>,
    pub last_packet_number: Option<u64>,
}

/// In-memory directory.
#[derive(Default)]
pub struct Directory(pub HashMap<String, Device>);

impl Directory {
    pub fn with_active(device_id: &str, key: [u8; 32]) -> Self {
        let mut dir = Self::default();
        dir.0.insert(
            device_id.to_owned(),
            Device {
                key: Some(key),
                status: Some(DeviceStatus::Active),
                last_packet_number: None,
            },
        );
        dir
    }

    pub fn device(&mut self, device_id: &str) -> &mut Device {
        self.0.get_mut(device_id).unwrap()
    }
}

impl OtpDirectory for Directory {
    fn otp_key(&self, device_id: &str) -> Option<OtpKey> {
        self.0.get(device_id)?.key.map(OtpKey::from_bytes)
    }
    fn status(&self, device_id: &str) -> DeviceStatus {
        self.0
            .get(device_id)
            .and_then(|d| d.status)
            .unwrap_or(DeviceStatus::Unknown)
    }
    fn last_packet_number(&self, device_id: &str) -> Option<u64> {
        self.0.get(device_id)?.last_packet_number
    }
}
