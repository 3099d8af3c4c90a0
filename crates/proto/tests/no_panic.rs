//! The decoder never panics: random bytes, truncations and single-byte
//! mutations of valid packets, under every protocol state (deterministic
//! seed, so a failure reproduces).

use bytes::BytesMut;
use ledgermq_proto::{decode, encode, Packet, Protocol, MAX_PACKET_SIZE};

/// xorshift64*: small, deterministic, good enough to spray bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

const STATES: [Option<Protocol>; 3] = [None, Some(Protocol::V311), Some(Protocol::V5)];

/// Decodes until the buffer stops yielding packets; returns how many decoded.
fn drain(bytes: &[u8], state: Option<Protocol>, max: usize) -> usize {
    let mut buf = BytesMut::from(bytes);
    let mut n = 0;
    while let Ok(Some(_)) = decode(&mut buf, state, max) {
        n += 1;
    }
    n
}

fn seeds() -> Vec<Vec<u8>> {
    let raw: [&[u8]; 8] = [
        b"\x10\x28\x00\x04MQTT\x05\xC4\x00\x00\x09\x15\x00\x03otp\x21\x00\x0A\x00\x01c\x05\x18\x00\x00\x00\x05\x00\x01t\x00\x00\x00\x01u\x00\x01p",
        b"\x10\x1A\x00\x04MQTT\x04\xEE\x00\x0A\x00\x01c\x00\x01t\x00\x02hi\x00\x01u\x00\x01p",
        b"\x32\x12\x00\x03a/b\x00\x07\x08\x01\x01\x0B\x81\x01\x23\x00\x05hi",
        b"\x82\x0B\x00\x01\x02\x0B\x05\x00\x03a/+\x2E",
        b"\x40\x09\x00\x07\x87\x05\x1F\x00\x02no",
        b"\xF0\x0D\x18\x0B\x15\x00\x03otp\x16\x00\x02\x01\x02",
        b"\x20\x07\x00\x00\x04\x24\x01\x25\x00",
        b"\xE0\x07\x00\x05\x11\x00\x00\x00\x00",
    ];
    let mut seeds: Vec<Vec<u8>> = raw.iter().map(|s| s.to_vec()).collect();
    // Make sure the seeds really are valid, so mutations start from the edge.
    for s in &seeds {
        let state = if s[0] >> 4 == 1 {
            None
        } else {
            Some(Protocol::V5)
        };
        assert_eq!(drain(s, state, MAX_PACKET_SIZE), 1, "seed {s:02X?}");
    }
    let mut encoded = BytesMut::new();
    encode(&Packet::PingReq, Protocol::V5, &mut encoded).unwrap();
    seeds.push(encoded.to_vec());
    seeds
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for _ in 0..20_000 {
        let len = rng.below(64);
        let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        for state in STATES {
            drain(&bytes, state, MAX_PACKET_SIZE);
            drain(&bytes, state, 16);
        }
    }
}

#[test]
fn random_bytes_behind_a_plausible_header_never_panic() {
    let mut rng = Rng(0x5EED_1234_ABCD_0002);
    for _ in 0..20_000 {
        let len = rng.below(40);
        let mut bytes = vec![rng.byte(), u8::try_from(len).unwrap()];
        bytes.extend((0..len).map(|_| rng.byte()));
        for state in STATES {
            drain(&bytes, state, MAX_PACKET_SIZE);
        }
    }
}

#[test]
fn truncated_and_mutated_valid_packets_never_panic() {
    let mut rng = Rng(0x5EED_1234_ABCD_0003);
    for seed in seeds() {
        for cut in 0..=seed.len() {
            for state in STATES {
                drain(&seed[..cut], state, MAX_PACKET_SIZE);
            }
        }
        for _ in 0..5_000 {
            let mut m = seed.clone();
            for _ in 0..=rng.below(3) {
                let i = rng.below(m.len());
                m[i] = rng.byte();
            }
            for state in STATES {
                drain(&m, state, MAX_PACKET_SIZE);
            }
        }
    }
}
