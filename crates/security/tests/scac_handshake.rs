//! SCAC handshakes, both suites: nominal runs, spoofing, tampering (every
//! byte of steps 2 and 3), replay across sessions, hostile inputs.

mod scac_common;

use ledgermq_security::scac::{
    uid_of_step1, BrokerHandshake, ClientHandshake, LocalKey, Party, ScacError, Suite, AUTH_ERROR,
    NOT_AUTHORIZED,
};
use scac_common::*;

fn both_suites() -> [Parties; 2] {
    [parties(Suite::Default), parties(Suite::RsaCompat)]
}

#[test]
fn method_names_round_trip() {
    assert_eq!(
        Suite::Default.method(),
        "SCACAuth-Ed25519-256-ChaCha20Poly1305-256"
    );
    assert_eq!(Suite::RsaCompat.method(), "SCACAuth-RSAPKCS1-2048-AES-128");
    for suite in Suite::ALL {
        assert_eq!(Suite::from_method(suite.method()), Some(suite));
    }
    assert_eq!(
        Suite::from_method("SCACAuth-ed25519-256-ChaCha20Poly1305-256"),
        None
    );
    assert_eq!(Suite::from_method("LMQ-OTP-1"), None);
}

#[test]
fn nominal_handshake_authenticates_both_sides_and_shares_keys() {
    for p in both_suites() {
        let mut s = handshake(&p);
        assert_eq!(uid_of_step1(p.suite, &s.step1).unwrap(), p.uid);
        assert_eq!(s.broker.uid(), p.uid);
        assert_eq!(s.client.uid(), p.uid);
        let sealed = s.client.seal("t/1", 1, b"hello").unwrap();
        assert_eq!(s.broker.open("t/1", 1, &sealed).unwrap(), b"hello");
        let sealed = s.broker.seal("t/1", 2, b"world").unwrap();
        assert_eq!(s.client.open("t/1", 2, &sealed).unwrap(), b"world");
    }
}

#[test]
fn step_sizes_are_fixed_by_the_suite() {
    let d = handshake(&parties(Suite::Default));
    assert_eq!(
        (d.step1.len(), d.step2.len(), d.step3.len()),
        (129 + DEFAULT_UID.len(), 128, 96)
    );
    let c = handshake(&parties(Suite::RsaCompat));
    assert_eq!(
        (c.step1.len(), c.step2.len(), c.step3.len()),
        (266, 516, 258)
    );
    assert_eq!(&c.step1[..8], COMPAT_UID.as_bytes());
}

#[test]
fn unregistered_client_key_is_refused_by_the_broker() {
    for p in both_suites() {
        let impostor = match p.suite {
            Suite::Default => ed25519([0x33; 32]),
            Suite::RsaCompat => rsa_broker_local(),
        };
        let (_, step1) = ClientHandshake::start(p.suite, p.uid, &impostor, &p.broker_pub).unwrap();
        let err = BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &step1).unwrap_err();
        assert_eq!(
            err,
            ScacError::BadProof {
                step: 1,
                signer: Party::Device
            },
            "{}",
            p.suite
        );
        assert_eq!(err.reason_code(), NOT_AUTHORIZED);
    }
}

/// The broker's RSA key used as a (wrong) device key: saves generating one.
fn rsa_broker_local() -> LocalKey {
    use ledgermq_security::scac::keys::InMemoryRsa;
    let key = InMemoryRsa::from_primes(
        &hex::decode(BROKER_RSA_P).unwrap(),
        &hex::decode(BROKER_RSA_Q).unwrap(),
    )
    .unwrap();
    LocalKey::Rsa(std::sync::Arc::new(key))
}

#[test]
fn impostor_broker_is_refused_by_the_client() {
    for p in both_suites() {
        // A broker holding another key answers a genuine step 1.
        let impostor = match p.suite {
            Suite::Default => ed25519([0x44; 32]),
            Suite::RsaCompat => p.device.clone(),
        };
        let impostor = ledgermq_security::scac::BrokerCredentials::new(impostor).unwrap();
        let (client, step1) =
            ClientHandshake::start(p.suite, p.uid, &p.device, &p.broker_pub).unwrap();
        let step2 = match BrokerHandshake::start(p.suite, &impostor, &p.device_pub, &step1) {
            Ok((_, step2)) => step2,
            // Default suite: step 1 names the genuine broker, so the impostor
            // cannot even verify it; forge a step 2 from another session.
            Err(_) => {
                let other = handshake(&parties(p.suite));
                other.step2
            }
        };
        let err = client.on_step2(&step2).unwrap_err();
        assert!(
            matches!(
                err,
                ScacError::BadProof {
                    step: 2,
                    signer: Party::Broker
                }
            ),
            "{}: {err}",
            p.suite
        );
    }
}

/// Step 2 does not tell whether the UID is known or step 1 verified: a
/// decoy of the same length, which the client refuses as it refuses an
/// impostor broker's (it cannot tell them apart), and whose state refuses
/// any step 3 with the step-1 error.
#[test]
fn an_unverified_step1_gets_a_decoy_step2_of_the_same_shape() {
    for p in both_suites() {
        let genuine = handshake(&p);
        let impostor = match p.suite {
            Suite::Default => ed25519([0x33; 32]),
            Suite::RsaCompat => rsa_broker_local(),
        };
        let (client, forged) =
            ClientHandshake::start(p.suite, p.uid, &impostor, &p.broker_pub).unwrap();
        let mut r = rng([9; 32]);
        let (known, step2) = BrokerHandshake::start_or_decoy(
            p.suite,
            &p.broker,
            Some(&p.device_pub),
            &forged,
            &mut r,
        )
        .unwrap();
        assert_eq!(step2.len(), genuine.step2.len(), "{}", p.suite);
        assert_eq!(known.uid(), p.uid);
        let err = client.on_step2(&step2).unwrap_err();
        assert!(
            matches!(
                err,
                ScacError::BadProof { step: 2, .. } | ScacError::Decryption { step: 2 }
            ),
            "{}: {err}",
            p.suite
        );
        assert_eq!(
            known.finish(&genuine.step3).unwrap_err(),
            ScacError::BadProof {
                step: 1,
                signer: Party::Device
            },
            "{}",
            p.suite
        );
        // An unknown UID: the genuine step 1, no key to check it with.
        let (unknown, step2) =
            BrokerHandshake::start_or_decoy(p.suite, &p.broker, None, &genuine.step1, &mut r)
                .unwrap();
        assert_eq!(step2.len(), genuine.step2.len(), "{}", p.suite);
        assert_eq!(
            unknown.finish(&genuine.step3).unwrap_err(),
            ScacError::UnknownDevice
        );
        // A genuine step 1 with its key is answered for real.
        let (client, step1) =
            ClientHandshake::start(p.suite, p.uid, &p.device, &p.broker_pub).unwrap();
        let (broker, step2) = BrokerHandshake::start_or_decoy(
            p.suite,
            &p.broker,
            Some(&p.device_pub),
            &step1,
            &mut r,
        )
        .unwrap();
        let (step3, _) = client.on_step2(&step2).unwrap();
        assert!(broker.finish(&step3).is_ok(), "{}", p.suite);
        // A malformed step 1 is refused at once, whatever the UID.
        assert!(matches!(
            BrokerHandshake::start_or_decoy(p.suite, &p.broker, None, &step1[..10], &mut r),
            Err(ScacError::Malformed { step: 1, .. })
        ));
    }
}

#[test]
fn step1_addressed_to_another_broker_is_refused() {
    let p = parties(Suite::Default);
    let other = ed25519([0x55; 32]).public();
    let (_, step1) = ClientHandshake::start(p.suite, p.uid, &p.device, &other).unwrap();
    assert!(BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &step1).is_err());
}

fn flip_each_byte(bytes: &[u8], stride: usize, mut check: impl FnMut(usize, Vec<u8>)) {
    let mut i = 0;
    while i < bytes.len() {
        let mut tampered = bytes.to_vec();
        tampered[i] ^= 0x01;
        check(i, tampered);
        i += stride;
    }
}

#[test]
fn every_tampered_byte_of_step2_is_refused_by_the_client() {
    for p in both_suites() {
        let (client, step1) = ClientHandshake::start_with_rng(
            p.suite,
            p.uid,
            &p.device,
            &p.broker_pub,
            &mut rng(CLIENT_RNG_SEED),
        )
        .unwrap();
        let (_, step2) = BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &step1).unwrap();
        let positions: Vec<usize> = (0..step2.len()).collect();
        for i in positions {
            let mut tampered = step2.clone();
            tampered[i] ^= 0x01;
            let (again, _) = ClientHandshake::start_with_rng(
                p.suite,
                p.uid,
                &p.device,
                &p.broker_pub,
                &mut rng(CLIENT_RNG_SEED),
            )
            .unwrap();
            assert!(
                again.on_step2(&tampered).is_err(),
                "{}: byte {i} of step 2",
                p.suite
            );
        }
        // The untampered step 2 still works with the same client state.
        assert!(client.on_step2(&step2).is_ok());
    }
}

#[test]
fn every_tampered_byte_of_step3_is_refused_by_the_broker() {
    for p in both_suites() {
        let s = handshake_seeded(&p, CLIENT_RNG_SEED, BROKER_RNG_SEED);
        for i in 0..s.step3.len() {
            let mut tampered = s.step3.clone();
            tampered[i] ^= 0x01;
            let (awaiting, _) = BrokerHandshake::start_with_rng(
                p.suite,
                &p.broker,
                &p.device_pub,
                &s.step1,
                &mut rng(BROKER_RNG_SEED),
            )
            .unwrap();
            assert!(
                awaiting.finish(&tampered).is_err(),
                "{}: byte {i} of step 3",
                p.suite
            );
        }
    }
}

#[test]
fn every_tampered_byte_of_step1_is_refused_by_the_broker() {
    let p = parties(Suite::Default);
    let s = handshake(&p);
    flip_each_byte(&s.step1, 1, |i, tampered| {
        assert!(
            BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &tampered).is_err(),
            "byte {i} of step 1"
        );
    });
}

#[test]
fn replayed_step1_fails_at_step3_on_a_new_connection() {
    for p in both_suites() {
        let captured = handshake(&p);
        // The attacker replays step 1; the broker answers with fresh nonces,
        // and the only step 3 the attacker holds is the captured one.
        let (awaiting, step2) =
            BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &captured.step1).unwrap();
        assert_ne!(
            step2, captured.step2,
            "{}: broker nonce must be fresh",
            p.suite
        );
        let err = awaiting.finish(&captured.step3).unwrap_err();
        assert!(
            matches!(
                err,
                ScacError::BadProof { step: 3, .. } | ScacError::Mismatch { step: 3, .. }
            ),
            "{}: {err}",
            p.suite
        );
    }
}

#[test]
fn replayed_step3_is_refused_on_a_new_connection() {
    for p in both_suites() {
        let captured = handshake(&p);
        let (_, step1) = ClientHandshake::start(p.suite, p.uid, &p.device, &p.broker_pub).unwrap();
        let (awaiting, _) =
            BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &step1).unwrap();
        assert!(awaiting.finish(&captured.step3).is_err(), "{}", p.suite);
    }
}

#[test]
fn truncated_and_extended_steps_are_malformed_not_panics() {
    for p in both_suites() {
        let s = handshake_seeded(&p, CLIENT_RNG_SEED, BROKER_RNG_SEED);
        for cut in [0, 1, s.step1.len() - 1] {
            assert!(uid_of_step1(p.suite, &s.step1[..cut]).is_err());
            assert!(
                BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &s.step1[..cut]).is_err()
            );
        }
        let mut longer = s.step1.clone();
        longer.push(0);
        assert!(BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &longer).is_err());

        for step2 in [
            &s.step2[..0],
            &s.step2[..s.step2.len() - 1],
            &[s.step2.as_slice(), &[0]].concat()[..],
        ] {
            let (client, _) = ClientHandshake::start_with_rng(
                p.suite,
                p.uid,
                &p.device,
                &p.broker_pub,
                &mut rng(CLIENT_RNG_SEED),
            )
            .unwrap();
            assert!(matches!(
                client.on_step2(step2),
                Err(ScacError::Malformed { step: 2, .. })
            ));
        }
        for step3 in [
            &s.step3[..0],
            &s.step3[..s.step3.len() - 1],
            &[s.step3.as_slice(), &[0]].concat()[..],
        ] {
            let (awaiting, _) = BrokerHandshake::start_with_rng(
                p.suite,
                &p.broker,
                &p.device_pub,
                &s.step1,
                &mut rng(BROKER_RNG_SEED),
            )
            .unwrap();
            assert!(matches!(
                awaiting.finish(step3),
                Err(ScacError::Malformed { step: 3, .. })
            ));
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let p = parties(Suite::Default);
    let mut r = rng([7; 32]);
    for len in 0..300usize {
        let mut bytes = vec![0u8; len];
        rand_core::RngCore::fill_bytes(&mut r, &mut bytes);
        if let Some(b) = bytes.first_mut() {
            *b = (len as u8) % 70;
        }
        let _ = uid_of_step1(Suite::Default, &bytes);
        let _ = uid_of_step1(Suite::RsaCompat, &bytes);
        let _ = BrokerHandshake::start(p.suite, &p.broker, &p.device_pub, &bytes);
        let (client, _) = ClientHandshake::start(p.suite, p.uid, &p.device, &p.broker_pub).unwrap();
        let _ = client.on_step2(&bytes);
    }
}

#[test]
fn uids_outside_the_suite_rules_are_refused() {
    let d = parties(Suite::Default);
    for bad in ["", &"x".repeat(65)] {
        assert!(matches!(
            ClientHandshake::start(d.suite, bad, &d.device, &d.broker_pub),
            Err(ScacError::InvalidUid(_))
        ));
    }
    assert!(ClientHandshake::start(d.suite, &"é".repeat(32), &d.device, &d.broker_pub).is_ok());
    let c = parties(Suite::RsaCompat);
    for bad in ["CLIENT1", "CLIENTE12", "CLIENTé"] {
        assert!(matches!(
            ClientHandshake::start(c.suite, bad, &c.device, &c.broker_pub),
            Err(ScacError::InvalidUid(_))
        ));
    }
}

#[test]
fn keys_of_the_wrong_kind_are_refused() {
    let d = parties(Suite::Default);
    let c = parties(Suite::RsaCompat);
    assert!(matches!(
        ClientHandshake::start(Suite::Default, DEFAULT_UID, &c.device, &d.broker_pub),
        Err(ScacError::WrongKeyKind { .. })
    ));
    assert!(matches!(
        ClientHandshake::start(Suite::RsaCompat, COMPAT_UID, &c.device, &d.broker_pub),
        Err(ScacError::WrongKeyKind { .. })
    ));
    let (_, step1) =
        ClientHandshake::start(Suite::Default, DEFAULT_UID, &d.device, &d.broker_pub).unwrap();
    assert!(matches!(
        BrokerHandshake::start(Suite::Default, &c.broker, &d.device_pub, &step1),
        Err(ScacError::WrongKeyKind { .. })
    ));
}

#[test]
fn errors_say_what_failed() {
    let e = ScacError::BadProof {
        step: 2,
        signer: Party::Broker,
    };
    assert_eq!(e.to_string(), "step 2: the broker's proof does not verify");
    assert_eq!(AUTH_ERROR, "Auth Error");
}
