//! Published byte-layout vectors of `LMQ-OTP-1` (also in README.md).
//! Other implementations should reproduce these bytes exactly.

mod common;

use common::{hex, hex32, Directory, FixedRng};
use ledgermq_security::{wire, Authenticated, OtpClient, OtpKey, OtpServer};

struct Vector {
    key: &'static str,
    device_id: &'static str,
    packet_number: u64,
    step1: &'static str,
    challenge: &'static str,
    otp: &'static str,
    step3: &'static str,
}

const VECTORS: [Vector; 2] = [
    Vector {
        key: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        device_id: "sensor-42",
        packet_number: 0x0102_0304_0506_0708,
        step1: "01010203040506070873656e736f722d3432",
        challenge: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
        otp: "e9892f4e4cc92c0ca6487253523e37b7d8ad74db135a3d5295058a63337c2b78",
        step3: "1ba5395666ed1ef6a983b260a965ce9d18f8be3c0fac72850457ee9cc9533a0a",
    },
    Vector {
        // ASCII "12345678901234567890123456789012", the RFC 6238 SHA-256 key.
        key: "3132333435363738393031323334353637383930313233343536373839303132",
        device_id: "d",
        packet_number: 1,
        step1: "01000000000000000164",
        challenge: "0000000000000000000000000000000000000000000000000000000000000000",
        otp: "39c672654a6b03fb668c66c394a77e2778f491fdfe377265797ae5203fa0b2a1",
        step3: "326a48b9b5c31a34df28ed9149a010d4c454f1c7d10d01aad4ef33c315abffd0",
    },
];

#[test]
fn step1_connect_data_matches_published_bytes() {
    for v in &VECTORS {
        assert_eq!(
            OtpClient::connect_data(v.device_id, v.packet_number).unwrap(),
            hex(v.step1)
        );
    }
}

#[test]
fn otp_and_step3_proof_match_published_bytes() {
    for v in &VECTORS {
        let key = OtpKey::from_bytes(hex32(v.key));
        let challenge = hex32(v.challenge);
        assert_eq!(
            wire::otp(&key, &challenge, v.device_id, v.packet_number),
            hex32(v.otp)
        );
        assert_eq!(
            OtpClient::proof(&key, &challenge, v.device_id, v.packet_number),
            hex32(v.step3)
        );
    }
}

#[test]
fn broker_accepts_published_exchange_end_to_end() {
    for v in &VECTORS {
        let dir = Directory::with_active(v.device_id, hex32(v.key));
        let mut rng = FixedRng(hex32(v.challenge));
        let awaiting = OtpServer::default()
            .start(&dir, &hex(v.step1), 0, &mut rng)
            .unwrap();
        assert_eq!(awaiting.challenge(), &hex32(v.challenge), "step 2 bytes");
        assert_eq!(
            awaiting.finish(&hex(v.step3), 1).unwrap(),
            Authenticated {
                device_id: v.device_id.into(),
                packet_number: v.packet_number
            }
        );
    }
}
