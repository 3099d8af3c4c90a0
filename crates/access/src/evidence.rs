//! The evidence behind a blacklist entry this node writes to the ledger.
//!
//! The ledger gets only a SHA-256 digest of a canonical evidence record
//! (`Registry.blacklistDevice(…, evidence)`); the record itself is logged
//! here at warn level, so the node's operator can hand it to an auditor,
//! who recomputes the digest and compares it with the ledger's. Source
//! addresses are personal data: the record carries them only as
//! HMAC-SHA256 under a random per-record salt, which stays in this node's
//! log next to the addresses in clear. Without the salt the hashes cannot
//! be reversed by trying every address; with it the operator can show
//! which address a hash stands for.
//!
//! ```text
//! record = "LMQ-EVIDENCE-1"            14 bytes ASCII
//!        ‖ kind                        u8, the blacklist reason code
//!        ‖ node                        20 bytes, the reporting broker node's account
//!        ‖ u16 len(device id) ‖ device id (UTF-8)
//!        ‖ count                       u32, events in the window
//!        ‖ first_ms ‖ last_ms          u64 each, Unix ms of the first and last event
//!        ‖ u8 n ‖ n × source hash      32 bytes each, ascending, distinct (n ≤ 16)
//! source hash = HMAC-SHA256(key = salt, message = address octets: 4 for IPv4, 16 for IPv6)
//! evidence digest = SHA-256(record)
//! ```
//! All integers are big-endian.

use std::net::IpAddr;

use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// Leading bytes of every evidence record (its format version).
pub const MAGIC: &[u8] = b"LMQ-EVIDENCE-1";
/// Most source hashes one record carries.
pub const MAX_SOURCES: usize = 16;

/// What a device was caught doing, as the blacklist reason code
/// (contracts/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvidenceKind {
    /// A valid `LMQ-OTP-1` proof for a packet number at or below the last
    /// accepted one (reason 2, replay).
    Replay,
    /// PUBLISH/SUBSCRIBE refusals after a verified login (reason 6).
    RightsViolation,
    /// Verified logins from another address while the device had a live
    /// connection (reason 7).
    KeyInTwoPlaces,
}

impl EvidenceKind {
    pub fn reason_code(self) -> u8 {
        match self {
            EvidenceKind::Replay => 2,
            EvidenceKind::RightsViolation => 6,
            EvidenceKind::KeyInTwoPlaces => 7,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EvidenceKind::Replay => "replayed credential",
            EvidenceKind::RightsViolation => "rights violations",
            EvidenceKind::KeyInTwoPlaces => "device key in use from two places",
        }
    }
}

/// Evidence against one device, as this node observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub kind: EvidenceKind,
    pub device_id: String,
    /// This broker node's account.
    pub node: [u8; 20],
    pub count: u32,
    pub first_ms: u64,
    pub last_ms: u64,
    /// The source addresses involved (in clear: never leaves this node).
    pub sources: Vec<IpAddr>,
}

/// The canonical bytes of an [`Evidence`] and their digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRecord {
    pub bytes: Vec<u8>,
    pub digest: [u8; 32],
    /// The key of the source hashes (local only, like the addresses).
    pub salt: [u8; 32],
}

impl Evidence {
    /// The record with source hashes keyed by `salt` (draw it at random).
    pub fn record(&self, salt: [u8; 32]) -> EvidenceRecord {
        let mut hashes: Vec<[u8; 32]> = self
            .sources
            .iter()
            .map(|ip| source_hash(&salt, ip))
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        hashes.truncate(MAX_SOURCES);
        let id = self.device_id.as_bytes();
        let id = &id[..id.len().min(usize::from(u16::MAX))];
        let mut bytes = Vec::with_capacity(MAGIC.len() + 64 + id.len() + 32 * hashes.len());
        bytes.extend_from_slice(MAGIC);
        bytes.push(self.kind.reason_code());
        bytes.extend_from_slice(&self.node);
        bytes.extend_from_slice(&(id.len() as u16).to_be_bytes());
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(&self.count.to_be_bytes());
        bytes.extend_from_slice(&self.first_ms.to_be_bytes());
        bytes.extend_from_slice(&self.last_ms.to_be_bytes());
        bytes.push(hashes.len() as u8);
        for h in &hashes {
            bytes.extend_from_slice(h);
        }
        let digest = Sha256::digest(&bytes).into();
        EvidenceRecord {
            bytes,
            digest,
            salt,
        }
    }
}

/// HMAC-SHA256(salt, address octets), IPv4-mapped IPv6 read as IPv4.
pub fn source_hash(salt: &[u8; 32], ip: &IpAddr) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes any key length");
    match ip.to_canonical() {
        IpAddr::V4(v4) => mac.update(&v4.octets()),
        IpAddr::V6(v6) => mac.update(&v6.octets()),
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sample() -> Evidence {
        Evidence {
            kind: EvidenceKind::Replay,
            device_id: "sensor-42".into(),
            node: [0x11; 20],
            count: 5,
            first_ms: 1_700_000_000_000,
            last_ms: 1_700_000_030_000,
            sources: vec!["192.0.2.7".parse().unwrap(), "192.0.2.7".parse().unwrap()],
        }
    }

    #[test]
    fn the_record_has_the_documented_layout_and_no_address_in_clear() {
        let r = sample().record([0x5a; 32]);
        let b = &r.bytes;
        assert_eq!(&b[..14], MAGIC);
        assert_eq!(b[14], 2, "kind");
        assert_eq!(&b[15..35], &[0x11; 20], "node");
        assert_eq!(&b[35..37], &[0, 9], "device id length");
        assert_eq!(&b[37..46], b"sensor-42");
        assert_eq!(&b[46..50], &5u32.to_be_bytes());
        assert_eq!(&b[50..58], &1_700_000_000_000u64.to_be_bytes());
        assert_eq!(&b[58..66], &1_700_000_030_000u64.to_be_bytes());
        assert_eq!(b[66], 1, "one distinct source");
        assert_eq!(b.len(), 67 + 32);
        assert!(!b.windows(4).any(|w| w == [192, 0, 2, 7]));
        assert_eq!(r.digest, <[u8; 32]>::from(Sha256::digest(b)));
    }

    /// docs/device-auth.md "Evidence records".
    #[test]
    fn evidence_record_vector() {
        let r = sample().record([0x5a; 32]);
        assert_eq!(
            hex(&r.bytes[67..]),
            "5df7f95e255a78e744e758367d2d8636f3d06e0f4d09f9de14444ed6dacccbcd"
        );
        assert_eq!(
            hex(&r.digest),
            "d11c895e45d284ba5d23864fb3fb7ebce3f332da599ec4ea5aebb1a23d7652a5"
        );
    }

    #[test]
    fn the_salt_keys_the_source_hashes_and_so_the_digest() {
        let e = sample();
        assert_ne!(e.record([1; 32]).digest, e.record([2; 32]).digest);
        assert_eq!(e.record([1; 32]), e.record([1; 32]));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let plain: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            source_hash(&[1; 32], &mapped),
            source_hash(&[1; 32], &plain)
        );
        assert_eq!(hex(&e.record([1; 32]).bytes[..14]), hex(MAGIC));
    }
}
