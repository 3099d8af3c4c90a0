//! End-to-end envelopes, group-key wraps and key bundles, as a
//! specification: what is accepted, and that every alteration is refused.

use std::sync::{Arc, OnceLock};

use curve25519_dalek::constants::ED25519_BASEPOINT_COMPRESSED;
use curve25519_dalek::scalar::Scalar;
use ledgermq_keystore::software::{SoftwareEd25519, SoftwareX25519};
use ledgermq_keystore::{Ed25519Signer as _, X25519Agreement as _};
use ledgermq_security::envelope::{
    epoch_commitment, member_commitment, roster_digest, verify_batch, Envelope, EnvelopeError,
    EnvelopeKind, EpochDistribution, GroupKey, KeyBundle, Publisher, MAX_BODY_LEN, WRAP_LEN,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use sha2::{Digest as _, Sha512};

const GROUP: &str = "plant-7/telemetry";
const TOPIC: &str = "plant-7/telemetry/temp";
const DEVICE: &str = "sensor-42";

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn publisher(seed: u8) -> Publisher {
    Publisher::new(DEVICE, Arc::new(SoftwareEd25519::from_seed(&[seed; 32]))).unwrap()
}

fn key(epoch: u64, seed: u8) -> GroupKey {
    GroupKey::from_bytes(GROUP, epoch, &[seed; 32]).unwrap()
}

fn sealed(plaintext: &[u8]) -> Vec<u8> {
    publisher(1)
        .seal(TOPIC, &key(3, 9), 7, plaintext, &mut rng(1))
        .unwrap()
}

fn open_all(
    bytes: &[u8],
    topic: &str,
    public: &[u8; 32],
    key: &GroupKey,
) -> Result<Vec<u8>, EnvelopeError> {
    let env = Envelope::parse(bytes)?;
    Ok(env.open_verified(topic, public, key)?.to_vec())
}

// ---------------------------------------------------------------- envelopes

#[test]
fn sealed_envelope_round_trips_and_exposes_its_header() {
    let p = publisher(1);
    let k = key(3, 9);
    for len in [0usize, 1, 100, 4096] {
        let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let bytes = p.seal(TOPIC, &k, 7, &plaintext, &mut rng(2)).unwrap();
        let env = Envelope::parse(&bytes).unwrap();
        assert_eq!(env.kind(), EnvelopeKind::Sealed);
        assert_eq!(env.group(), Some(GROUP));
        assert_eq!(env.epoch(), Some(3));
        assert_eq!(env.sender(), DEVICE);
        assert_eq!(env.sequence(), 7);
        assert_eq!(env.body_len(), len + 16);
        assert_eq!(env.as_bytes(), bytes.as_slice());
        env.verify(TOPIC, &p.public()).unwrap();
        assert_eq!(
            env.open_verified(TOPIC, &p.public(), &k)
                .unwrap()
                .as_slice(),
            plaintext
        );
    }
}

#[test]
fn signed_only_envelope_round_trips_in_clear() {
    let p = publisher(1);
    let bytes = p.sign("plant-7/status", 1, b"online").unwrap();
    let env = Envelope::parse(&bytes).unwrap();
    assert_eq!(env.kind(), EnvelopeKind::Signed);
    assert_eq!((env.group(), env.epoch(), env.nonce()), (None, None, None));
    assert_eq!(env.body(), b"online");
    assert_eq!(
        env.open_signed("plant-7/status", &p.public()).unwrap(),
        b"online"
    );
    assert!(matches!(
        env.open("plant-7/status", &key(3, 9)),
        Err(EnvelopeError::WrongKind { .. })
    ));
}

#[test]
fn two_seals_of_the_same_payload_differ_by_nonce() {
    let p = publisher(1);
    let k = key(3, 9);
    let a = p.seal(TOPIC, &k, 1, b"x", &mut rng(1)).unwrap();
    let b = p.seal(TOPIC, &k, 1, b"x", &mut rng(2)).unwrap();
    assert_ne!(a, b);
}

#[test]
fn every_single_bit_flip_of_a_sealed_envelope_is_refused() {
    let bytes = sealed(b"21.5 C");
    let p = publisher(1);
    let k = key(3, 9);
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= bit;
            assert!(
                open_all(&b, TOPIC, &p.public(), &k).is_err(),
                "flip {bit:#x} at {i} accepted"
            );
        }
    }
}

#[test]
fn the_aead_alone_refuses_a_flip_of_any_header_or_body_byte() {
    // Without the signature check: the header is AAD, the body is AEAD.
    let bytes = sealed(b"21.5 C");
    let k = key(3, 9);
    for i in 0..bytes.len() - 64 {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        let opened = Envelope::parse(&b).and_then(|e| e.open(TOPIC, &k));
        assert!(opened.is_err(), "flip at {i} decrypted");
    }
}

#[test]
fn every_single_bit_flip_of_a_signed_only_envelope_is_refused() {
    let p = publisher(1);
    let bytes = p.sign(TOPIC, 5, b"online").unwrap();
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= bit;
            let opened =
                Envelope::parse(&b).and_then(|e| e.open_signed(TOPIC, &p.public()).map(|_| ()));
            assert!(opened.is_err(), "flip {bit:#x} at {i} accepted");
        }
    }
}

#[test]
fn an_envelope_moved_to_another_topic_fails_signature_and_aead() {
    let bytes = sealed(b"21.5 C");
    let p = publisher(1);
    let env = Envelope::parse(&bytes).unwrap();
    for other in ["plant-7/telemetry/temp2", "plant-7/telemetry/tem", "x"] {
        assert!(matches!(
            env.verify(other, &p.public()),
            Err(EnvelopeError::BadSignature { .. })
        ));
        assert!(matches!(
            env.open(other, &key(3, 9)),
            Err(EnvelopeError::Decrypt { .. })
        ));
    }
    let signed = p.sign(TOPIC, 1, b"online").unwrap();
    let env = Envelope::parse(&signed).unwrap();
    assert!(env.open_signed("plant-7/other", &p.public()).is_err());
}

#[test]
fn another_epochs_key_or_another_key_is_refused() {
    let bytes = sealed(b"21.5 C");
    let env = Envelope::parse(&bytes).unwrap();
    let p = publisher(1);
    assert!(matches!(
        env.open_verified(TOPIC, &p.public(), &key(4, 9)),
        Err(EnvelopeError::WrongGroupKey {
            envelope_epoch: 3,
            key_epoch: 4,
            ..
        })
    ));
    let other_group = GroupKey::from_bytes("plant-8/telemetry", 3, &[9; 32]).unwrap();
    assert!(matches!(
        env.open(TOPIC, &other_group),
        Err(EnvelopeError::WrongGroupKey { .. })
    ));
    // Same group and epoch, other bytes: the AEAD refuses.
    assert!(matches!(
        env.open_verified(TOPIC, &p.public(), &key(3, 8)),
        Err(EnvelopeError::Decrypt { epoch: 3, .. })
    ));
}

#[test]
fn the_same_key_bytes_under_another_epoch_derive_another_envelope_key() {
    // A key service that reused key bytes across epochs still cannot make
    // an epoch-3 envelope open as epoch 4: the epoch is in the derivation.
    let bytes = sealed(b"21.5 C");
    let mut moved = bytes.clone();
    let epoch_at = 4 + 1 + 1 + 1 + GROUP.len();
    moved[epoch_at + 7] = 4;
    let env = Envelope::parse(&moved).unwrap();
    assert!(matches!(
        env.open(TOPIC, &key(4, 9)),
        Err(EnvelopeError::Decrypt { .. })
    ));
}

#[test]
fn truncated_or_extended_envelopes_are_refused_by_the_parser() {
    let p = publisher(1);
    for bytes in [sealed(b"21.5 C"), p.sign(TOPIC, 1, b"online").unwrap()] {
        for len in 0..bytes.len() {
            assert!(
                Envelope::parse(&bytes[..len]).is_err(),
                "prefix of {len} parsed"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Envelope::parse(&longer),
            Err(EnvelopeError::Malformed { .. })
        ));
    }
}

#[test]
fn a_wrong_sender_key_is_refused() {
    let bytes = sealed(b"21.5 C");
    let env = Envelope::parse(&bytes).unwrap();
    let other = publisher(2);
    assert!(matches!(
        env.open_verified(TOPIC, &other.public(), &key(3, 9)),
        Err(EnvelopeError::BadSignature { .. })
    ));
    assert!(matches!(
        env.verify(TOPIC, &[0xff; 32]),
        Err(EnvelopeError::BadPublicKey { .. }) | Err(EnvelopeError::BadSignature { .. })
    ));
}

#[test]
fn broker_checks_sender_and_sequence_and_maps_reason_codes() {
    let bytes = sealed(b"21.5 C");
    let env = Envelope::parse(&bytes).unwrap();
    env.check_sender(DEVICE).unwrap();
    env.check_sequence(6).unwrap();
    let mismatch = env.check_sender("sensor-43").unwrap_err();
    assert_eq!(mismatch.reason_code(), 0x87);
    let replay = env.check_sequence(7).unwrap_err();
    assert_eq!(replay.reason_code(), 0x87);
    assert_eq!(
        replay.to_string(),
        "sender \"sensor-42\" replayed sequence 7 (last accepted 7)"
    );
    let bad_sig = env.verify(TOPIC, &publisher(2).public()).unwrap_err();
    assert_eq!(bad_sig.reason_code(), 0x87);
    let plaintext = Envelope::parse(b"{\"temp\": 21.5}").unwrap_err();
    assert!(matches!(plaintext, EnvelopeError::NotAnEnvelope { .. }));
    assert_eq!(plaintext.reason_code(), 0x99);
    let mut v2 = bytes.clone();
    v2[4] = 2;
    let unsupported = Envelope::parse(&v2).unwrap_err();
    assert_eq!(
        unsupported,
        EnvelopeError::UnsupportedVersion {
            what: "envelope",
            version: 2
        }
    );
    assert_eq!(unsupported.reason_code(), 0x99);
    let truncated = Envelope::parse(&bytes[..bytes.len() - 1]).unwrap_err();
    assert_eq!(truncated.reason_code(), 0x99);
}

#[test]
fn a_huge_declared_body_length_is_refused_before_anything_is_allocated() {
    let p = publisher(1);
    let bytes = p.sign(TOPIC, 1, b"online").unwrap();
    let body_len_at = 4 + 1 + 1 + 1 + 8 + 1 + DEVICE.len() + 8;
    for declared in [u32::MAX, (MAX_BODY_LEN + 1) as u32, 1 << 27] {
        let mut b = bytes.clone();
        b[body_len_at..body_len_at + 4].copy_from_slice(&declared.to_be_bytes());
        assert!(matches!(
            Envelope::parse(&b),
            Err(EnvelopeError::Malformed { .. })
        ));
    }
}

#[test]
fn identifiers_sequence_and_epoch_limits_are_enforced_when_building() {
    let signer = Arc::new(SoftwareEd25519::from_seed(&[1; 32]));
    assert!(Publisher::new("", signer.clone()).is_err());
    assert!(Publisher::new(&"d".repeat(129), signer.clone()).is_err());
    Publisher::new(&"d".repeat(128), signer).unwrap();
    assert!(GroupKey::from_bytes("", 1, &[0; 32]).is_err());
    assert!(GroupKey::from_bytes(&"g".repeat(65), 1, &[0; 32]).is_err());
    GroupKey::from_bytes(&"g".repeat(64), 1, &[0; 32]).unwrap();
    assert_eq!(
        GroupKey::from_bytes(GROUP, 0, &[0; 32]).unwrap_err(),
        EnvelopeError::ZeroEpoch
    );
    let p = publisher(1);
    assert_eq!(
        p.sign(TOPIC, 0, b"x").unwrap_err(),
        EnvelopeError::ZeroSequence
    );
    assert!(p.sign("", 1, b"x").is_err());
    assert!(p.sign(&"t".repeat(65536), 1, b"x").is_err());
    p.sign(&"t".repeat(65535), 1, b"x").unwrap();
}

#[test]
fn group_key_debug_shows_no_key_bytes() {
    let k = GroupKey::from_bytes(GROUP, 3, &[0xab; 32]).unwrap();
    let debug = format!("{k:?}");
    assert!(debug.contains("plant-7/telemetry") && debug.contains('3'));
    assert!(!debug.to_lowercase().contains("ab, ") && !debug.contains("171"));
}

// ------------------------------------------------------------ batch verify

fn signed_message(topic: &str, envelope: &[u8]) -> Vec<u8> {
    let mut m = b"LMQ-ENV-1 sig".to_vec();
    m.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    m.extend_from_slice(topic.as_bytes());
    m.extend_from_slice(&envelope[..envelope.len() - 64]);
    m
}

#[test]
fn batch_verification_accepts_good_envelopes_and_names_the_bad_ones() {
    let publishers: Vec<Publisher> = (1..=8).map(publisher).collect();
    let k = key(3, 9);
    let mut payloads: Vec<Vec<u8>> = publishers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.seal(TOPIC, &k, i as u64 + 1, b"21.5 C", &mut rng(i as u8))
                .unwrap()
        })
        .collect();
    let publics: Vec<[u8; 32]> = publishers.iter().map(|p| p.public()).collect();
    {
        let envs: Vec<Envelope> = payloads
            .iter()
            .map(|b| Envelope::parse(b).unwrap())
            .collect();
        let items: Vec<_> = envs
            .iter()
            .zip(&publics)
            .map(|(e, p)| (TOPIC, e, p))
            .collect();
        verify_batch(&items).unwrap();
        verify_batch(&[]).unwrap();
    }
    let last = payloads[5].len() - 1;
    payloads[5][last] ^= 1; // bad signature
    let envs: Vec<Envelope> = payloads
        .iter()
        .map(|b| Envelope::parse(b).unwrap())
        .collect();
    let wrong_key = publics[0];
    let mut items: Vec<_> = envs
        .iter()
        .zip(&publics)
        .map(|(e, p)| (TOPIC, e, p))
        .collect();
    items[2].2 = &wrong_key; // wrong sender key
    let failures = verify_batch(&items).unwrap_err();
    let indices: Vec<usize> = failures.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, [2, 5]);
    assert!(failures
        .iter()
        .all(|(_, e)| matches!(e, EnvelopeError::BadSignature { .. })));
}

#[test]
fn batch_verification_refuses_a_small_order_r_that_cofactorless_checks_accept() {
    // A registered signer can make R = identity, s = k·a: the plain
    // equation [s]B = R + [k]A holds, verify_strict refuses the small-order
    // R, and so must the batch.
    let signing = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let mut bytes = sealed(b"21.5 C");
    let public = signing.verifying_key();
    let mut r = [0u8; 32];
    r[0] = 1; // the identity point
    let msg = signed_message(TOPIC, &bytes);
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(r)
            .chain_update(public.as_bytes())
            .chain_update(&msg),
    );
    let s = k * signing.to_scalar();
    let n = bytes.len();
    bytes[n - 64..n - 32].copy_from_slice(&r);
    bytes[n - 32..].copy_from_slice(s.as_bytes());
    let signature = ed25519_dalek::Signature::from_slice(&bytes[n - 64..]).unwrap();
    assert!(public.verify_strict(&msg, &signature).is_err());
    // The crafted signature satisfies the cofactorless equation and thus
    // ed25519-dalek's batch equation on its own:
    assert!(ed25519_dalek::verify_batch(&[&msg], &[signature], &[public]).is_ok());

    let env = Envelope::parse(&bytes).unwrap();
    assert!(env.verify(TOPIC, public.as_bytes()).is_err());
    let good = sealed(b"other");
    let good_env = Envelope::parse(&good).unwrap();
    let failures = verify_batch(&[
        (TOPIC, &good_env, public.as_bytes()),
        (TOPIC, &env, public.as_bytes()),
    ])
    .unwrap_err();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, 1);
}

#[test]
fn batch_verification_refuses_a_weak_key_anyone_can_sign_for() {
    // A = identity: (R = B, s = 1) verifies for every message.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let mut bytes = sealed(b"21.5 C");
    let n = bytes.len();
    bytes[n - 64..n - 32].copy_from_slice(ED25519_BASEPOINT_COMPRESSED.as_bytes());
    let mut one = [0u8; 32];
    one[0] = 1;
    bytes[n - 32..].copy_from_slice(&one);
    let msg = signed_message(TOPIC, &bytes);
    let signature = ed25519_dalek::Signature::from_slice(&bytes[n - 64..]).unwrap();
    let weak_key = ed25519_dalek::VerifyingKey::from_bytes(&weak).unwrap();
    assert!(ed25519_dalek::verify_batch(&[&msg], &[signature], &[weak_key]).is_ok());
    let env = Envelope::parse(&bytes).unwrap();
    assert!(env.verify(TOPIC, &weak).is_err());
    assert!(verify_batch(&[(TOPIC, &env, &weak)]).is_err());
}

// --------------------------------------------------------- wraps & bundles

struct Members {
    alice: SoftwareX25519,
    bob: SoftwareX25519,
    service: SoftwareEd25519,
}

fn members() -> Members {
    Members {
        alice: SoftwareX25519::from_bytes(&[0x31; 32]),
        bob: SoftwareX25519::from_bytes(&[0x32; 32]),
        service: SoftwareEd25519::from_seed(&[0x33; 32]),
    }
}

#[test]
fn a_wrap_opens_only_for_its_member_and_its_group_epoch_and_id() {
    let m = members();
    let k = key(3, 9);
    let wrap = k.wrap_for("alice", &m.alice.public(), &mut rng(5)).unwrap();
    let opened = GroupKey::unwrap(GROUP, 3, "alice", &wrap, &m.alice).unwrap();
    assert_eq!(opened.secret_bytes(), k.secret_bytes());
    assert_eq!((opened.group(), opened.epoch()), (GROUP, 3));
    for (group, epoch, member, who) in [
        (GROUP, 3, "alice", &m.bob),   // not a member's key
        (GROUP, 3, "bob", &m.bob),     // bob's id, alice's wrap
        (GROUP, 4, "alice", &m.alice), // another epoch
        ("plant-8/telemetry", 3, "alice", &m.alice),
        (GROUP, 3, "alice2", &m.alice),
    ] {
        assert!(
            matches!(
                GroupKey::unwrap(group, epoch, member, &wrap, who),
                Err(EnvelopeError::Unwrap { .. })
            ),
            "{group} {epoch} {member}"
        );
    }
    for i in 0..WRAP_LEN {
        let mut w = wrap;
        w[i] ^= 1;
        assert!(
            GroupKey::unwrap(GROUP, 3, "alice", &w, &m.alice).is_err(),
            "flip at {i}"
        );
    }
}

#[test]
fn a_low_order_member_key_gets_no_wrap_and_a_low_order_enc_does_not_open() {
    let k = key(3, 9);
    assert!(matches!(
        k.wrap_for("alice", &[0; 32], &mut rng(1)),
        Err(EnvelopeError::LowOrderMemberKey { .. })
    ));
    let m = members();
    let mut wrap = k.wrap_for("alice", &m.alice.public(), &mut rng(1)).unwrap();
    wrap[..32].fill(0);
    assert!(GroupKey::unwrap(GROUP, 3, "alice", &wrap, &m.alice).is_err());
}

/// hpke's rand_core (0.9) over our ChaCha20 generator.
struct HpkeRng(ChaCha20Rng);

impl hpke::rand_core::RngCore for HpkeRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::RngCore::next_u32(&mut self.0)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::RngCore::next_u64(&mut self.0)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::RngCore::fill_bytes(&mut self.0, dest)
    }
}

impl hpke::rand_core::CryptoRng for HpkeRng {}

fn wrap_info(group: &str, epoch: u64, member: &str) -> Vec<u8> {
    let mut info = b"LMQ-GK-1 wrap".to_vec();
    info.push(group.len() as u8);
    info.extend_from_slice(group.as_bytes());
    info.extend_from_slice(&epoch.to_be_bytes());
    info.push(member.len() as u8);
    info.extend_from_slice(member.as_bytes());
    info
}

type Kem = hpke::kem::X25519HkdfSha256;

#[test]
fn a_wrap_sealed_by_the_hpke_crate_opens_through_an_agreement_only_key() {
    use hpke::{Deserializable as _, Serializable as _};
    let m = members();
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&m.alice.public()).unwrap();
    for seed in 0..8u8 {
        let secret = [seed.wrapping_mul(37) ^ 0x5a; 32];
        let (enc, ct) =
            hpke::single_shot_seal::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, Kem, _>(
                &hpke::OpModeS::Base,
                &pk,
                &wrap_info(GROUP, 3, "alice"),
                &secret,
                b"",
                &mut HpkeRng(rng(seed)),
            )
            .unwrap();
        let mut wrap = [0u8; WRAP_LEN];
        wrap[..32].copy_from_slice(&enc.to_bytes());
        wrap[32..].copy_from_slice(&ct);
        let opened = GroupKey::unwrap(GROUP, 3, "alice", &wrap, &m.alice).unwrap();
        assert_eq!(opened.secret_bytes(), &secret);
    }
}

#[test]
fn our_wrap_opens_with_the_hpke_crate() {
    use hpke::Deserializable as _;
    let k = key(3, 9);
    for seed in 0..8u8 {
        let member_secret = [seed ^ 0x77; 32];
        let member = SoftwareX25519::from_bytes(&member_secret);
        let wrap = k.wrap_for("bob", &member.public(), &mut rng(seed)).unwrap();
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&member_secret).unwrap();
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrap[..32]).unwrap();
        let plain =
            hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, Kem>(
                &hpke::OpModeR::Base,
                &sk,
                &enc,
                &wrap_info(GROUP, 3, "bob"),
                &wrap[32..],
                b"",
            )
            .unwrap();
        assert_eq!(plain, k.secret_bytes());
    }
}

#[test]
fn a_member_opens_its_bundle_against_the_ledger_commitment() {
    let m = members();
    let k = GroupKey::generate(GROUP, 3, &mut rng(7)).unwrap();
    let roster = [("alice", m.alice.public()), ("bob", m.bob.public())];
    let d = EpochDistribution::new(&k, &roster, &m.service, &mut rng(8)).unwrap();
    assert_eq!(d.key_check, k.check());
    for (delivery, me) in d.members.iter().zip([&m.alice, &m.bob]) {
        let bundle = KeyBundle::parse(&delivery.bundle).unwrap();
        assert_eq!(
            (bundle.group(), bundle.epoch(), bundle.member()),
            (GROUP, 3, delivery.member.as_str())
        );
        assert_eq!(bundle.wrap(), &delivery.wrap);
        let opened = bundle
            .open(&m.service.public(), me, &d.epoch_commitment)
            .unwrap();
        assert_eq!(opened.secret_bytes(), k.secret_bytes());
        assert!(opened.matches_check(&d.key_check));
        assert_eq!(
            member_commitment(GROUP, 3, &delivery.member, &delivery.wrap).unwrap(),
            delivery.member_commitment
        );
    }
    // Wrong member key, wrong service key, wrong commitment.
    let alice_bundle = KeyBundle::parse(&d.members[0].bundle).unwrap();
    assert!(matches!(
        alice_bundle.open(&m.service.public(), &m.bob, &d.epoch_commitment),
        Err(EnvelopeError::Unwrap { .. })
    ));
    let other_service = SoftwareEd25519::from_seed(&[0x34; 32]);
    assert!(matches!(
        alice_bundle.open(&other_service.public(), &m.alice, &d.epoch_commitment),
        Err(EnvelopeError::BadSignature { .. })
    ));
    let mut other_commitment = d.epoch_commitment;
    other_commitment[0] ^= 1;
    let refused = alice_bundle
        .open(&m.service.public(), &m.alice, &other_commitment)
        .unwrap_err();
    assert!(matches!(
        refused,
        EnvelopeError::CommitmentMismatch { epoch: 3, .. }
    ));
    assert_eq!(refused.reason_code(), 0x87);
}

#[test]
fn a_bundle_signed_by_the_service_for_another_key_is_refused_by_the_commitment() {
    // The key service (or anyone with its key) hands alice a key the ledger
    // does not commit: the signature verifies, the commitment does not.
    let m = members();
    let committed = key(3, 9);
    let roster = [("alice", m.alice.public())];
    let d = EpochDistribution::new(&committed, &roster, &m.service, &mut rng(1)).unwrap();
    let rogue = key(3, 10);
    let rogue_wrap = rogue
        .wrap_for("alice", &m.alice.public(), &mut rng(2))
        .unwrap();
    let rogue_bundle =
        KeyBundle::build(&m.service, GROUP, 3, "alice", &d.roster_digest, &rogue_wrap).unwrap();
    let bundle = KeyBundle::parse(&rogue_bundle).unwrap();
    bundle.verify(&m.service.public()).unwrap();
    assert!(matches!(
        bundle.open(&m.service.public(), &m.alice, &d.epoch_commitment),
        Err(EnvelopeError::CommitmentMismatch { .. })
    ));
}

#[test]
fn every_single_bit_flip_of_a_key_bundle_is_refused() {
    let m = members();
    let k = key(3, 9);
    let d = EpochDistribution::new(&k, &[("alice", m.alice.public())], &m.service, &mut rng(3))
        .unwrap();
    let bytes = &d.members[0].bundle;
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 1;
        let opened = KeyBundle::parse(&b)
            .and_then(|x| x.open(&m.service.public(), &m.alice, &d.epoch_commitment));
        assert!(opened.is_err(), "flip at {i} accepted");
    }
    for len in 0..bytes.len() {
        assert!(KeyBundle::parse(&bytes[..len]).is_err());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(KeyBundle::parse(&longer).is_err());
}

#[test]
fn the_commitment_shows_a_removed_member_got_no_wrap() {
    let m = members();
    let k3 = key(3, 9);
    let k4 = key(4, 10);
    let w_alice = k4
        .wrap_for("alice", &m.alice.public(), &mut rng(1))
        .unwrap();
    let w_bob = k3.wrap_for("bob", &m.bob.public(), &mut rng(2)).unwrap();
    // Epoch 4 after removing bob: the auditor recomputes from the retained
    // wraps and sees exactly {alice}.
    let committed = epoch_commitment(GROUP, 4, &k4.check(), &[("alice", &w_alice)]).unwrap();
    let with_bob = epoch_commitment(
        GROUP,
        4,
        &k4.check(),
        &[("alice", &w_alice), ("bob", &w_bob)],
    )
    .unwrap();
    assert_ne!(committed, with_bob);
    // Order does not matter, duplicates are refused.
    assert_eq!(
        roster_digest(&[("alice", &w_alice), ("bob", &w_bob)]).unwrap(),
        roster_digest(&[("bob", &w_bob), ("alice", &w_alice)]).unwrap()
    );
    assert!(matches!(
        roster_digest(&[("alice", &w_alice), ("alice", &w_bob)]),
        Err(EnvelopeError::DuplicateMember { .. })
    ));
    // Every input moves the commitment.
    let base = epoch_commitment(GROUP, 4, &k4.check(), &[("alice", &w_alice)]).unwrap();
    assert_ne!(
        base,
        epoch_commitment(GROUP, 5, &k4.check(), &[("alice", &w_alice)]).unwrap()
    );
    assert_ne!(
        base,
        epoch_commitment("plant-8", 4, &k4.check(), &[("alice", &w_alice)]).unwrap()
    );
    assert_ne!(
        base,
        epoch_commitment(GROUP, 4, &k3.check(), &[("alice", &w_alice)]).unwrap()
    );
    assert_ne!(
        base,
        epoch_commitment(GROUP, 4, &k4.check(), &[("alicf", &w_alice)]).unwrap()
    );
    assert_ne!(base, epoch_commitment(GROUP, 4, &k4.check(), &[]).unwrap());
}

// -------------------------------------------------------------- fuzz-ish

fn valid_samples() -> &'static [Vec<u8>] {
    static SAMPLES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let m = members();
        let roster = [("alice", m.alice.public())];
        let d = EpochDistribution::new(&key(3, 9), &roster, &m.service, &mut rng(4)).unwrap();
        vec![
            sealed(b"21.5 C"),
            publisher(1).sign(TOPIC, 1, b"online").unwrap(),
            d.members[0].bundle.clone(),
        ]
    })
}

/// Runs every parser and checker; only the absence of a panic is asserted.
fn exercise(bytes: &[u8]) {
    static PARTIES: OnceLock<(Members, Publisher)> = OnceLock::new();
    let (m, p) = PARTIES.get_or_init(|| (members(), publisher(1)));
    if let Ok(env) = Envelope::parse(bytes) {
        let _ = env.open_verified(TOPIC, &p.public(), &key(3, 9));
        let _ = env.open(TOPIC, &key(3, 9));
        let _ = env.open_signed(TOPIC, &p.public());
        let _ = verify_batch(&[(TOPIC, &env, &p.public()), (TOPIC, &env, &[7; 32])]);
        let _ = (
            env.header(),
            env.check_sender(DEVICE),
            env.check_sequence(u64::MAX),
        );
    }
    if let Ok(bundle) = KeyBundle::parse(bytes) {
        let _ = bundle.open(&m.service.public(), &m.alice, &[0; 32]);
    }
}

#[test]
fn random_bytes_never_panic_any_parser() {
    let mut r = rng(42);
    for len in 0..600usize {
        let mut buf = vec![0u8; len % 300];
        rand_core::RngCore::fill_bytes(&mut r, &mut buf);
        // Half of the inputs get a valid magic and version to reach deeper.
        if len % 2 == 0 && buf.len() >= 5 {
            buf[..4].copy_from_slice(if len % 4 == 0 { b"LMQE" } else { b"LMQK" });
            buf[4] = 1;
        }
        exercise(&buf);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_valid_payloads_never_panic(
        sample in 0usize..3,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = valid_samples()[sample].clone();
        for (at, value, op) in edits {
            let at = usize::from(at) % (bytes.len() + 1);
            match op {
                0 if at < bytes.len() => bytes[at] = value,
                1 => bytes.insert(at, value),
                _ if at < bytes.len() => { bytes.remove(at); }
                _ => bytes.push(value),
            }
        }
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        exercise(&bytes);
    }
}
