//! Decodes arbitrary bytes under every protocol state and two size limits;
//! whatever decodes must re-encode and decode again to the same packet.

#![no_main]

use bytes::BytesMut;
use ledgermq_proto::{decode, encode, encoded_len, Packet, Protocol, MAX_PACKET_SIZE};
use libfuzzer_sys::fuzz_target;

const STATES: [Option<Protocol>; 3] = [None, Some(Protocol::V311), Some(Protocol::V5)];

fuzz_target!(|data: &[u8]| {
    for protocol in STATES {
        for max in [64, MAX_PACKET_SIZE] {
            let mut buf = BytesMut::from(data);
            // Decode packets until the input runs out or an error stops it.
            while let Ok(Some(packet)) = decode(&mut buf, protocol, max) {
                check_round_trip(&packet, protocol);
            }
        }
    }
});

fn check_round_trip(packet: &Packet, state: Option<Protocol>) {
    // A CONNECT carries its own version; everything else uses the state's.
    let version = match (packet, state) {
        (Packet::Connect(c), _) => c.protocol,
        (_, Some(v)) => v,
        (_, None) => unreachable!("only CONNECT decodes before negotiation"),
    };
    let mut out = BytesMut::new();
    encode(packet, version, &mut out).expect("a decoded packet re-encodes");
    assert_eq!(out.len(), encoded_len(packet, version), "encoded_len disagrees with encode");
    let again = decode(&mut out, state, MAX_PACKET_SIZE)
        .expect("re-encoded packet decodes")
        .expect("re-encoded packet is complete");
    assert_eq!(&again, packet, "round trip changed the packet");
    assert!(out.is_empty(), "decode left bytes behind");
}
