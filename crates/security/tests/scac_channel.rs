//! SCAC payload channels, both suites: sealing in both directions with key
//! updates, replays, the PUBREL-loss rule, and the soft card.

mod scac_common;

use ledgermq_security::scac::softcard::{SoftCard, SoftCardError};
use ledgermq_security::scac::{
    BrokerHandshake, CryptError, Epochs, Suite, CRYPT_ERROR, PUBLISHER_KEY_PROPERTY,
    SUBSCRIBER_KEY_PROPERTY,
};
use scac_common::*;

fn both_suites() -> [Parties; 2] {
    [parties(Suite::Default), parties(Suite::RsaCompat)]
}

#[test]
fn messages_flow_both_ways_across_several_key_updates() {
    for p in both_suites() {
        let mut s = handshake(&p);
        assert_eq!(s.client.tx_key_property(), PUBLISHER_KEY_PROPERTY);
        assert_eq!(s.broker.tx_key_property(), SUBSCRIBER_KEY_PROPERTY);
        for n in 0..5u16 {
            let data = format!("reading {n}").repeat(usize::from(n) * 7 + 1);
            // Publisher → broker: PUBLISH, PUBREC, PUBREL(Np), PUBCOMP.
            let sealed = s.client.seal("plant/7/temp", n, data.as_bytes()).unwrap();
            assert_eq!(
                s.broker.open("plant/7/temp", n, &sealed).unwrap(),
                data.as_bytes()
            );
            let np = s.client.key_update(n).unwrap();
            s.broker.accept_key_update(n, &np).unwrap();
            // Broker → subscriber: PUBLISH, PUBREC, PUBREL(Ns), PUBCOMP.
            let sealed = s
                .broker
                .seal("plant/7/temp", 100 + n, data.as_bytes())
                .unwrap();
            assert_eq!(
                s.client.open("plant/7/temp", 100 + n, &sealed).unwrap(),
                data.as_bytes()
            );
            let ns = s.broker.key_update(100 + n).unwrap();
            s.client.accept_key_update(100 + n, &ns).unwrap();
            let e = u32::from(n) + 1;
            assert_eq!(s.client.epochs(), Epochs { tx: e, rx: e }, "{}", p.suite);
            assert_eq!(s.broker.epochs(), Epochs { tx: e, rx: e }, "{}", p.suite);
        }
        // An empty payload works too.
        let sealed = s.client.seal("x", 9, b"").unwrap();
        assert_eq!(s.broker.open("x", 9, &sealed).unwrap(), b"");
    }
}

#[test]
fn replayed_publish_on_a_new_session_is_a_crypt_error() {
    for p in both_suites() {
        let mut old = handshake(&p);
        let captured = old.client.seal("t", 1, b"open the valve").unwrap();
        let mut new = handshake(&p);
        assert!(new.broker.open("t", 1, &captured).is_err(), "{}", p.suite);
    }
}

#[test]
fn replayed_publish_after_a_key_update_is_a_crypt_error() {
    for p in both_suites() {
        let mut s = handshake(&p);
        let captured = s.client.seal("t", 1, b"open the valve").unwrap();
        s.broker.open("t", 1, &captured).unwrap();
        let np = s.client.key_update(1).unwrap();
        s.broker.accept_key_update(1, &np).unwrap();
        assert!(s.broker.open("t", 1, &captured).is_err(), "{}", p.suite);
        // Same for a replayed key update: it names the retired key.
        assert!(s.broker.accept_key_update(1, &np).is_err(), "{}", p.suite);
    }
}

#[test]
fn default_suite_refuses_a_replay_within_the_same_epoch() {
    let mut s = handshake(&parties(Suite::Default));
    let sealed = s.client.seal("t", 1, b"once").unwrap();
    s.broker.open("t", 1, &sealed).unwrap();
    assert!(matches!(
        s.broker.open("t", 1, &sealed),
        Err(CryptError::Replayed { .. })
    ));
}

#[test]
fn default_suite_binds_topic_packet_id_and_direction() {
    let mut s = handshake(&parties(Suite::Default));
    let sealed = s.client.seal("a/b", 5, b"x").unwrap();
    assert!(s.broker.open("a/c", 5, &sealed).is_err());
    let sealed = s.client.seal("a/b", 5, b"x").unwrap();
    assert!(s.broker.open("a/b", 6, &sealed).is_err());
    // A client payload reflected back to the client does not open.
    let sealed = s.client.seal("a/b", 5, b"x").unwrap();
    assert!(s.client.open("a/b", 5, &sealed).is_err());
    // A key update for another packet id is refused.
    let np = s.client.key_update(7).unwrap();
    assert!(s.broker.accept_key_update(8, &np).is_err());
}

#[test]
fn every_tampered_byte_of_a_payload_or_key_update_is_refused() {
    for p in both_suites() {
        let mut s = handshake(&p);
        let sealed = s.client.seal("t", 1, b"twenty bytes of data").unwrap();
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            // Refusals leave the channel unchanged, so one session serves all.
            let result = s.broker.open("t", 1, &tampered);
            // Without a MAC, the compatibility suite only notices flips that
            // reach the UID, the length, the RNp trailer or the padding.
            if p.suite == Suite::Default {
                assert!(result.is_err(), "byte {i}");
            } else if let Ok(data) = result {
                assert_ne!(data, b"twenty bytes of data", "byte {i}");
            }
        }
        let np = s.client.key_update(1).unwrap();
        for i in 0..np.len() {
            let mut tampered = np.clone().into_bytes();
            tampered[i] = if tampered[i] == b'0' { b'1' } else { b'0' };
            let tampered = String::from_utf8(tampered).unwrap();
            assert!(
                s.broker.accept_key_update(1, &tampered).is_err(),
                "{}: char {i}",
                p.suite
            );
            assert_eq!(s.broker.epochs().rx, 0, "a refused update must not advance");
        }
    }
}

#[test]
fn hostile_payloads_and_key_updates_never_panic() {
    for p in both_suites() {
        let mut s = handshake(&p);
        let mut r = rng([9; 32]);
        for len in 0..200usize {
            let mut bytes = vec![0u8; len];
            rand_core::RngCore::fill_bytes(&mut r, &mut bytes);
            if len >= 2 {
                let body = (len - 2) as u16;
                bytes[..2].copy_from_slice(&body.to_be_bytes());
            }
            assert!(s.broker.open("t", 1, &bytes).is_err());
            assert!(s.broker.accept_key_update(1, &hex::encode(&bytes)).is_err());
        }
        for bad in ["zz", "0", "é", &"00".repeat(5000)] {
            assert!(s.client.accept_key_update(1, bad).is_err());
        }
        assert_eq!(s.broker.epochs(), Epochs { tx: 0, rx: 0 });
    }
}

/// The lost-PUBREL rule: the publisher sends PUBLISH and PUBREL(Np), the
/// connection drops before the broker reads the PUBREL. The publisher has
/// already switched keys; the broker has not. After the reconnect (a new
/// handshake) both start from the new session's keys, the publisher
/// retransmits the PUBREL with a value computed now from its *new* current
/// key, and both end in step.
#[test]
fn lost_pubrel_then_new_session_leaves_both_sides_in_step() {
    for p in both_suites() {
        let mut s = handshake(&p);
        let sealed = s.client.seal("t", 1, b"m1").unwrap();
        s.broker.open("t", 1, &sealed).unwrap();
        let _lost = s.client.key_update(1).unwrap();
        assert_eq!(s.client.epochs().tx, 1);
        assert_eq!(s.broker.epochs().rx, 0, "the broker never saw the PUBREL");

        let mut s = handshake(&p);
        let np = s.client.key_update(1).unwrap(); // retransmitted PUBREL
        s.broker.accept_key_update(1, &np).unwrap();
        assert_eq!(s.client.epochs().tx, s.broker.epochs().rx);
        let sealed = s.client.seal("t", 2, b"m2").unwrap();
        assert_eq!(
            s.broker.open("t", 2, &sealed).unwrap(),
            b"m2",
            "{}",
            p.suite
        );

        // Broker → subscriber, same rule; a DUP PUBLISH is re-sealed.
        let _lost_publish = s.broker.seal("t", 3, b"m3").unwrap();
        let mut s = handshake(&p);
        let dup = s.broker.seal("t", 3, b"m3").unwrap();
        assert_eq!(s.client.open("t", 3, &dup).unwrap(), b"m3");
        let _lost = s.broker.key_update(3).unwrap();
        let mut s = handshake(&p);
        let ns = s.broker.key_update(3).unwrap();
        s.client.accept_key_update(3, &ns).unwrap();
        let sealed = s.broker.seal("t", 4, b"m4").unwrap();
        assert_eq!(
            s.client.open("t", 4, &sealed).unwrap(),
            b"m4",
            "{}",
            p.suite
        );
    }
}

/// Within one connection nothing is lost; a PUBREL value kept from before a
/// key update (a cached value) is refused.
#[test]
fn a_key_update_value_cannot_be_used_twice() {
    for p in both_suites() {
        let mut s = handshake(&p);
        let first = s.client.key_update(1).unwrap();
        let second = s.client.key_update(2).unwrap();
        s.broker.accept_key_update(1, &first).unwrap();
        s.broker.accept_key_update(2, &second).unwrap();
        assert!(s.broker.accept_key_update(2, &second).is_err());
        assert!(s.broker.accept_key_update(1, &first).is_err());
        assert_eq!(s.broker.epochs().rx, 2);
    }
}

#[test]
fn soft_card_runs_the_paper_operations_against_the_broker() {
    for p in both_suites() {
        let mut card = SoftCard::with_rng(
            p.suite,
            p.uid,
            p.device.clone(),
            p.broker_pub.clone(),
            rng([3; 32]),
        )
        .unwrap();
        assert_eq!(card.get_public_key(), p.device_pub);
        assert!(matches!(
            card.create_auth_step3(),
            Err(SoftCardError::WrongState { .. })
        ));
        let step1 = card.create_auth_step1().unwrap();
        let (awaiting, step2) =
            BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &step1).unwrap();
        card.check_auth_step2(&step2).unwrap();
        let step3 = card.create_auth_step3().unwrap();
        let mut broker = awaiting.finish(&step3).unwrap();
        assert!(card.is_authenticated());

        for n in 1..4u16 {
            let payload = card.create_msg_publish("t", n, b"from the card").unwrap();
            assert_eq!(broker.open("t", n, &payload).unwrap(), b"from the card");
            let np = card.create_pubrel(n).unwrap();
            broker.accept_key_update(n, &np).unwrap();
            let payload = broker.seal("t", n, b"to the card").unwrap();
            assert_eq!(card.read_payload("t", n, &payload).unwrap(), b"to the card");
            let ns = broker.key_update(n).unwrap();
            card.check_pubrel(n, &ns).unwrap();
        }
        assert_eq!(card.epochs(), Some(Epochs { tx: 3, rx: 3 }));

        // A bad Ns wipes the session: DISCONNECT 0x80 "Crypt Error".
        let err = card.check_pubrel(9, "00").unwrap_err();
        assert_eq!(err.reason_string(), CRYPT_ERROR);
        assert!(!card.is_authenticated());
        assert!(matches!(
            card.create_pubrel(1),
            Err(SoftCardError::WrongState { .. })
        ));
    }
}

#[test]
fn soft_card_refuses_a_forged_step2_with_auth_error() {
    for p in both_suites() {
        let mut card = SoftCard::with_rng(
            p.suite,
            p.uid,
            p.device.clone(),
            p.broker_pub.clone(),
            rng([4; 32]),
        )
        .unwrap();
        card.create_auth_step1().unwrap();
        let other = handshake(&p);
        let err = card.check_auth_step2(&other.step2).unwrap_err();
        assert_eq!(err.reason_string(), "Auth Error");
        assert!(matches!(
            card.create_auth_step3(),
            Err(SoftCardError::WrongState { .. })
        ));
    }
}
