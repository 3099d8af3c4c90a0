//! Published test vectors of the end-to-end envelope format
//! (docs/e2e-format.md, "Test vectors"): fixed keys, nonce and HPKE
//! ephemerals below. Asserted byte for byte, checked to appear verbatim in
//! the documentation, and cross-checked against an independent
//! recomputation of the derivations from the primitives.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use hkdf::Hkdf;
use ledgermq_keystore::software::{SoftwareEd25519, SoftwareX25519};
use ledgermq_keystore::{Ed25519Signer as _, X25519Agreement as _};
use ledgermq_security::envelope::{
    epoch_commitment, member_commitment, roster_digest, Envelope, EpochDistribution, GroupKey,
    KeyBundle, Publisher, WRAP_LEN,
};
use sha2::{Digest as _, Sha256};

const GROUP: &str = "plant-7/telemetry";
const EPOCH: u64 = 3;
const SENDER: &str = "sensor-42";
const MEMBER_2: &str = "dashboard-1";
const SEALED_TOPIC: &str = "plant-7/telemetry/temp";
const SEALED_SEQUENCE: u64 = 1;
const SEALED_PLAINTEXT: &[u8] = b"21.5 C";
const SIGNED_TOPIC: &str = "plant-7/status";
const SIGNED_SEQUENCE: u64 = 2;
const SIGNED_PLAINTEXT: &[u8] = b"online";

const SENDER_ED25519_SEED: [u8; 32] = [0x01; 32];
const SERVICE_ED25519_SEED: [u8; 32] = [0x02; 32];
const SENDER_X25519_SECRET: [u8; 32] = [0x03; 32];
const MEMBER_2_X25519_SECRET: [u8; 32] = [0x04; 32];
const EPHEMERAL_SENDER: [u8; 32] = [0x05; 32];
const EPHEMERAL_MEMBER_2: [u8; 32] = [0x06; 32];

fn group_key_bytes() -> [u8; 32] {
    std::array::from_fn(|i| i as u8) // 00 01 .. 1f
}

fn nonce() -> [u8; 24] {
    std::array::from_fn(|i| 0x40 + i as u8) // 40 41 .. 57
}

struct Fixture {
    key: GroupKey,
    publisher: Publisher,
    service: SoftwareEd25519,
    sender_x: SoftwareX25519,
    member_2_x: SoftwareX25519,
}

fn fixture() -> Fixture {
    Fixture {
        key: GroupKey::from_bytes(GROUP, EPOCH, &group_key_bytes()).unwrap(),
        publisher: Publisher::new(
            SENDER,
            Arc::new(SoftwareEd25519::from_seed(&SENDER_ED25519_SEED)),
        )
        .unwrap(),
        service: SoftwareEd25519::from_seed(&SERVICE_ED25519_SEED),
        sender_x: SoftwareX25519::from_bytes(&SENDER_X25519_SECRET),
        member_2_x: SoftwareX25519::from_bytes(&MEMBER_2_X25519_SECRET),
    }
}

/// Named hex values, in the documentation's order.
fn compute() -> Vec<(&'static str, String)> {
    let f = fixture();
    let sealed = f
        .publisher
        .seal_with_nonce(
            SEALED_TOPIC,
            &f.key,
            SEALED_SEQUENCE,
            &nonce(),
            SEALED_PLAINTEXT,
        )
        .unwrap();
    let signed = f
        .publisher
        .sign(SIGNED_TOPIC, SIGNED_SEQUENCE, SIGNED_PLAINTEXT)
        .unwrap();
    let wrap_sender = f
        .key
        .wrap_for_with_ephemeral(SENDER, &f.sender_x.public(), &EPHEMERAL_SENDER)
        .unwrap();
    let wrap_member_2 = f
        .key
        .wrap_for_with_ephemeral(MEMBER_2, &f.member_2_x.public(), &EPHEMERAL_MEMBER_2)
        .unwrap();
    let members = [
        (SENDER, f.sender_x.public()),
        (MEMBER_2, f.member_2_x.public()),
    ];
    let distribution =
        EpochDistribution::from_wraps(&f.key, &members, &[wrap_sender, wrap_member_2], &f.service)
            .unwrap();
    vec![
        (
            "sender Ed25519 public key",
            hex::encode(f.publisher.public()),
        ),
        (
            "key service Ed25519 public key",
            hex::encode(f.service.public()),
        ),
        (
            "sensor-42 X25519 public key",
            hex::encode(f.sender_x.public()),
        ),
        (
            "dashboard-1 X25519 public key",
            hex::encode(f.member_2_x.public()),
        ),
        (
            "envelope AEAD key",
            hex::encode(envelope_key(&group_key_bytes())),
        ),
        ("sealed envelope", hex::encode(&sealed)),
        ("signed-only envelope", hex::encode(&signed)),
        ("key_check", hex::encode(f.key.check())),
        ("wrap for sensor-42", hex::encode(wrap_sender)),
        ("wrap for dashboard-1", hex::encode(wrap_member_2)),
        ("roster_digest", hex::encode(distribution.roster_digest)),
        (
            "epoch_commitment",
            hex::encode(distribution.epoch_commitment),
        ),
        (
            "member_commitment sensor-42",
            hex::encode(distribution.members[0].member_commitment),
        ),
        (
            "member_commitment dashboard-1",
            hex::encode(distribution.members[1].member_commitment),
        ),
        (
            "key bundle for sensor-42",
            hex::encode(&distribution.members[0].bundle),
        ),
    ]
}

/// HKDF-SHA256(ikm = key, salt = none, info = "LMQ-ENV-1 key" ‖ u8 len ‖ group ‖ u64 BE epoch),
/// recomputed here from the primitive, not through the crate.
fn envelope_key(key: &[u8; 32]) -> [u8; 32] {
    let mut info = b"LMQ-ENV-1 key".to_vec();
    info.push(GROUP.len() as u8);
    info.extend_from_slice(GROUP.as_bytes());
    info.extend_from_slice(&EPOCH.to_be_bytes());
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, key)
        .expand(&info, &mut out)
        .unwrap();
    out
}

/// The documentation's rendering: 64 hex digits per line.
fn wrapped(hex: &str) -> String {
    hex.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn render() -> String {
    compute()
        .into_iter()
        .map(|(name, hex)| format!("{name} ({} bytes):\n{}\n", hex.len() / 2, wrapped(&hex)))
        .collect()
}

#[test]
fn vectors_are_reproduced_byte_for_byte() {
    if std::env::var_os("ENVELOPE_PRINT_VECTORS").is_some() {
        println!("{}", render());
    }
    assert_eq!(render(), VECTORS);
}

#[test]
fn vectors_are_published_in_the_documentation() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/e2e-format.md"
    ))
    .unwrap();
    assert!(
        doc.contains(VECTORS),
        "docs/e2e-format.md lacks:\n{VECTORS}"
    );
}

fn vector(name: &str) -> Vec<u8> {
    let (_, hex) = compute().into_iter().find(|(n, _)| *n == name).unwrap();
    hex::decode(hex).unwrap()
}

#[test]
fn sealed_vector_decrypts_with_an_independent_recomputation_of_key_and_aad() {
    let sealed = vector("sealed envelope");
    // Header: magic, version, kind, group, epoch, sender, sequence, nonce.
    let header_len = 4 + 1 + 1 + 1 + GROUP.len() + 8 + 1 + SENDER.len() + 8 + 24;
    let mut aad = b"LMQ-ENV-1 aad".to_vec();
    aad.extend_from_slice(&(SEALED_TOPIC.len() as u16).to_be_bytes());
    aad.extend_from_slice(SEALED_TOPIC.as_bytes());
    aad.extend_from_slice(&sealed[..header_len]);
    let body_len = u32::from_be_bytes(sealed[header_len..header_len + 4].try_into().unwrap());
    let body = &sealed[header_len + 4..sealed.len() - 64];
    assert_eq!(body.len(), body_len as usize);
    let plain = XChaCha20Poly1305::new(&envelope_key(&group_key_bytes()).into())
        .decrypt(
            &nonce().into(),
            Payload {
                msg: body,
                aad: &aad,
            },
        )
        .unwrap();
    assert_eq!(plain, SEALED_PLAINTEXT);

    let mut signed = b"LMQ-ENV-1 sig".to_vec();
    signed.extend_from_slice(&(SEALED_TOPIC.len() as u16).to_be_bytes());
    signed.extend_from_slice(SEALED_TOPIC.as_bytes());
    signed.extend_from_slice(&sealed[..sealed.len() - 64]);
    let public = ed25519_dalek::VerifyingKey::from_bytes(&fixture().publisher.public()).unwrap();
    let signature = ed25519_dalek::Signature::from_slice(&sealed[sealed.len() - 64..]).unwrap();
    public.verify_strict(&signed, &signature).unwrap();
}

#[test]
fn vectors_open_through_the_api() {
    let f = fixture();
    let sealed = vector("sealed envelope");
    let env = Envelope::parse(&sealed).unwrap();
    let plain = env
        .open_verified(SEALED_TOPIC, &f.publisher.public(), &f.key)
        .unwrap();
    assert_eq!(plain.as_slice(), SEALED_PLAINTEXT);
    let signed = vector("signed-only envelope");
    let env = Envelope::parse(&signed).unwrap();
    assert_eq!(
        env.open_signed(SIGNED_TOPIC, &f.publisher.public())
            .unwrap(),
        SIGNED_PLAINTEXT
    );

    let commitment: [u8; 32] = vector("epoch_commitment").try_into().unwrap();
    let bundle_bytes = vector("key bundle for sensor-42");
    let bundle = KeyBundle::parse(&bundle_bytes).unwrap();
    let key = bundle
        .open(&f.service.public(), &f.sender_x, &commitment)
        .unwrap();
    assert_eq!(key.secret_bytes(), &group_key_bytes());

    let wrap: [u8; WRAP_LEN] = vector("wrap for dashboard-1").try_into().unwrap();
    let key = GroupKey::unwrap(GROUP, EPOCH, MEMBER_2, &wrap, &f.member_2_x).unwrap();
    assert_eq!(key.secret_bytes(), &group_key_bytes());
}

#[test]
fn commitments_are_recomputed_from_their_definitions() {
    let f = fixture();
    let wrap_a: [u8; WRAP_LEN] = vector("wrap for sensor-42").try_into().unwrap();
    let wrap_b: [u8; WRAP_LEN] = vector("wrap for dashboard-1").try_into().unwrap();
    let g = |h: &mut Sha256| {
        h.update([GROUP.len() as u8]);
        h.update(GROUP.as_bytes());
        h.update(EPOCH.to_be_bytes());
    };
    let mut h = Sha256::new();
    h.update(b"LMQ-GK-1 check");
    g(&mut h);
    h.update(group_key_bytes());
    let key_check: [u8; 32] = h.finalize().into();
    assert_eq!(key_check, f.key.check());

    // Sorted by id: "dashboard-1" < "sensor-42".
    let mut h = Sha256::new();
    h.update(b"LMQ-GK-1 roster");
    h.update(2u32.to_be_bytes());
    for (id, wrap) in [(MEMBER_2, &wrap_b), (SENDER, &wrap_a)] {
        h.update([id.len() as u8]);
        h.update(id.as_bytes());
        h.update(Sha256::digest(wrap));
    }
    let roster: [u8; 32] = h.finalize().into();
    assert_eq!(roster.to_vec(), vector("roster_digest"));
    assert_eq!(
        roster_digest(&[(SENDER, &wrap_a), (MEMBER_2, &wrap_b)]).unwrap(),
        roster
    );

    let mut h = Sha256::new();
    h.update(b"LMQ-GK-1 epoch");
    g(&mut h);
    h.update(key_check);
    h.update(roster);
    let commitment: [u8; 32] = h.finalize().into();
    assert_eq!(commitment.to_vec(), vector("epoch_commitment"));
    assert_eq!(
        epoch_commitment(
            GROUP,
            EPOCH,
            &key_check,
            &[(MEMBER_2, &wrap_b), (SENDER, &wrap_a)]
        )
        .unwrap(),
        commitment
    );

    let mut h = Sha256::new();
    h.update(b"LMQ-GK-1 exchange");
    g(&mut h);
    h.update([SENDER.len() as u8]);
    h.update(SENDER.as_bytes());
    h.update(Sha256::digest(wrap_a));
    let exchange: [u8; 32] = h.finalize().into();
    assert_eq!(exchange.to_vec(), vector("member_commitment sensor-42"));
    assert_eq!(
        member_commitment(GROUP, EPOCH, SENDER, &wrap_a).unwrap(),
        exchange
    );
}

#[test]
fn wrap_vector_opens_with_the_hpke_crate() {
    use hpke::aead::ChaCha20Poly1305;
    use hpke::kdf::HkdfSha256;
    use hpke::kem::X25519HkdfSha256;
    use hpke::{Deserializable as _, OpModeR};

    let wrap = vector("wrap for sensor-42");
    let mut info = b"LMQ-GK-1 wrap".to_vec();
    info.push(GROUP.len() as u8);
    info.extend_from_slice(GROUP.as_bytes());
    info.extend_from_slice(&EPOCH.to_be_bytes());
    info.push(SENDER.len() as u8);
    info.extend_from_slice(SENDER.as_bytes());
    let sk =
        <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&SENDER_X25519_SECRET).unwrap();
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&wrap[..32]).unwrap();
    let plain = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        &info,
        &wrap[32..],
        b"",
    )
    .unwrap();
    assert_eq!(plain, group_key_bytes());
}

const VECTORS: &str = "\
sender Ed25519 public key (32 bytes):\n\
8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\n\
key service Ed25519 public key (32 bytes):\n\
8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394\n\
sensor-42 X25519 public key (32 bytes):\n\
5dfedd3b6bd47f6fa28ee15d969d5bb0ea53774d488bdaf9df1c6e0124b3ef22\n\
dashboard-1 X25519 public key (32 bytes):\n\
ac01b2209e86354fb853237b5de0f4fab13c7fcbf433a61c019369617fecf10b\n\
envelope AEAD key (32 bytes):\n\
cf3dbbf5d234fe59d6b98deaffc2de0753823f3cc7d489985ffcffe7b2bbec2a\n\
sealed envelope (164 bytes):\n\
4c4d5145010111706c616e742d372f74656c656d657472790000000000000003\n\
0973656e736f722d34320000000000000001404142434445464748494a4b4c4d\n\
4e4f50515253545556570000001637d2fae8573ad800bb406ea5cb8724469c40\n\
707787da73c63cbebd9b6586519485063feceff4b57fe67f681e2588e0fdcb9a\n\
f262f1fc2def8ce2c7a76e5042aec9a447435516c16df0527d3f30d3bd81d436\n\
ad541200\n\
signed-only envelope (107 bytes):\n\
4c4d514501020000000000000000000973656e736f722d343200000000000000\n\
02000000066f6e6c696e65cd74b6eca5b6f4332df46912c43d6cda9f15468c34\n\
b24a7cd732a4dbdbba9e11c024a291b9b6c136b46f1f0586bb2aaaed78c67ec1\n\
5c261ada20465b9bda9204\n\
key_check (32 bytes):\n\
1c44cd590c42f07d6d3ca88cb09833c1b94fd1af31cfaca9835d700d916ad339\n\
wrap for sensor-42 (80 bytes):\n\
50a61409b1ddd0325e9b16b700e719e9772c07000b1bd7786e907c653d20495d\n\
61696ae99dcfcca317f84f0d7288a4b90e8ce1cb720013050a67a650255dfb3c\n\
95ddeff293e757d7681d3cd4f7af7b97\n\
wrap for dashboard-1 (80 bytes):\n\
f5b2d6e60f9477e310c2982daaa6c9136c108a1777c5947e448fa37d68174557\n\
f5b1d92a0117d91b90cae5b1b7d48b559adcc33018f602187b3cf1f449c4073e\n\
e98103224f64d475ab01f13328b62d11\n\
roster_digest (32 bytes):\n\
fdc5a1b978fa4fd631d59cc7ff1a4f20431597ea0c287a9641ecc0fc2eed65bd\n\
epoch_commitment (32 bytes):\n\
930a471e1ba28fbfb079e32b9e5197dc813837f1c7c1e31e7fe5e1ed571c1059\n\
member_commitment sensor-42 (32 bytes):\n\
0c6a529ca700fba50a90082c8d97b3cc46926574a4a65b175cd562b03cce7a0a\n\
member_commitment dashboard-1 (32 bytes):\n\
b2c85556f540edaef9bc98013b431a0595191bc447d763355170d3c96c2fd27b\n\
key bundle for sensor-42 (217 bytes):\n\
4c4d514b0111706c616e742d372f74656c656d65747279000000000000000309\n\
73656e736f722d3432fdc5a1b978fa4fd631d59cc7ff1a4f20431597ea0c287a\n\
9641ecc0fc2eed65bd50a61409b1ddd0325e9b16b700e719e9772c07000b1bd7\n\
786e907c653d20495d61696ae99dcfcca317f84f0d7288a4b90e8ce1cb720013\n\
050a67a650255dfb3c95ddeff293e757d7681d3cd4f7af7b97642d2293724dfd\n\
70c01364f03b713cde4ef4df2cc956354e72d10a9af51d465e181a04289fb7b7\n\
b39e8416181fab27a85c4c2b08075095b3d4b224ed16f56c04\n\
";
