//! `SCACAuth-Ed25519-256-ChaCha20Poly1305-256`: the handshake and payload
//! cryptography of the default suite (layouts in `docs/scac.md`).
//!
//! Where the paper has the broker choose RNp ‖ RNs and RSA-encrypt them to
//! the card, both sides contribute an ephemeral X25519 key and derive the
//! two initial chain keys with HKDF over the shared secret, salted with the
//! transcript hash: a later theft of either long-term key does not reveal
//! past sessions. Every signature covers the method name, both identities
//! and both nonces, so no step can be moved to another session or broker.

use std::sync::Arc;

use chacha20poly1305::aead::AeadInPlace as _;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit as _, Nonce, Tag};
use ed25519_dalek::{Signature, VerifyingKey};
use hkdf::Hkdf;
use hmac::{Hmac, Mac as _};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public};
use zeroize::Zeroizing;

use super::channel::{Direction, Uid};
use super::error::{CryptError, Party, ScacError};
use super::keys::Ed25519Signer;
use super::Suite;

pub(super) const MAX_UID_LEN: usize = 64;
pub(super) const RN_LEN: usize = 32;
const POINT_LEN: usize = 32;
const SIG_LEN: usize = 64;
const MAC_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// uid_len ‖ UID ‖ RN1 ‖ Ec ‖ σ1
const STEP1_FIXED: usize = 1 + RN_LEN + POINT_LEN + SIG_LEN;
/// RN2 ‖ Eb ‖ σ2
pub(super) const STEP2_LEN: usize = RN_LEN + POINT_LEN + SIG_LEN;
/// σ3 ‖ τ
pub(super) const STEP3_LEN: usize = SIG_LEN + MAC_LEN;
/// epoch ‖ seq, in front of every payload and key update.
const HEADER_LEN: usize = 8;
/// Longest key-update property: header ‖ AEAD(UID).
pub(super) const MAX_KEY_UPDATE_HEX: usize = 2 * (HEADER_LEN + MAX_UID_LEN + TAG_LEN);

const LABEL_STEP1: &[u8] = b"ledgermq SCACAuth v1 step 1";
const LABEL_TRANSCRIPT: &[u8] = b"ledgermq SCACAuth v1 transcript";
const LABEL_STEP2: &[u8] = b"ledgermq SCACAuth v1 step 2";
const LABEL_STEP3: &[u8] = b"ledgermq SCACAuth v1 step 3";
const INFO_C2B: &[u8] = b"ledgermq SCACAuth v1 c2b key";
const INFO_B2C: &[u8] = b"ledgermq SCACAuth v1 b2c key";
const INFO_CONFIRM: &[u8] = b"ledgermq SCACAuth v1 confirm";
const LABEL_PAYLOAD: &[u8] = b"ledgermq SCACAuth v1 payload";
const LABEL_KEY_UPDATE: &[u8] = b"ledgermq SCACAuth v1 key update";
const INFO_RATCHET: &[u8] = b"ledgermq SCACAuth v1 ratchet";

const KIND_PAYLOAD: u8 = 0x01;
const KIND_KEY_UPDATE: u8 = 0x02;

/// The keys a default-suite handshake yields.
pub(super) struct SessionKeys {
    pub c2b: Zeroizing<[u8; 32]>,
    pub b2c: Zeroizing<[u8; 32]>,
    pub session_id: [u8; 32],
}

struct Step1<'a> {
    uid: &'a [u8],
    rn1: &'a [u8],
    ec: [u8; 32],
    sig: [u8; 64],
}

fn malformed(step: u8, reason: &'static str) -> ScacError {
    ScacError::Malformed { step, reason }
}

/// Splits step 1 without checking any proof.
fn parse_step1(step1: &[u8]) -> Result<Step1<'_>, ScacError> {
    let (&uid_len, rest) = step1.split_first().ok_or_else(|| malformed(1, "empty"))?;
    let uid_len = usize::from(uid_len);
    if uid_len == 0 || uid_len > MAX_UID_LEN {
        return Err(malformed(1, "UID length is not 1-64"));
    }
    if step1.len() != STEP1_FIXED + uid_len {
        return Err(malformed(1, "length does not match the UID length"));
    }
    let (uid, rest) = rest.split_at(uid_len);
    let (rn1, rest) = rest.split_at(RN_LEN);
    let (ec, sig) = rest.split_at(POINT_LEN);
    Ok(Step1 {
        uid,
        rn1,
        ec: ec.try_into().expect("split at 32"),
        sig: sig.try_into().expect("64 bytes left"),
    })
}

/// The UID in step 1, checked as 1–64 bytes of UTF-8.
pub(super) fn uid_of_step1(step1: &[u8]) -> Result<&str, ScacError> {
    let parsed = parse_step1(step1)?;
    Suite::Default.check_uid(parsed.uid)
}

/// What the device signs in step 1.
fn step1_message(broker_pub: &[u8; 32], uid: &[u8], rn1: &[u8], ec: &[u8; 32]) -> Vec<u8> {
    let method = Suite::Default.method().as_bytes();
    let mut m = Vec::with_capacity(LABEL_STEP1.len() + 2 + method.len() + 32 + uid.len() + 64);
    m.extend_from_slice(LABEL_STEP1);
    m.push(method.len() as u8);
    m.extend_from_slice(method);
    m.extend_from_slice(broker_pub);
    m.push(uid.len() as u8);
    m.extend_from_slice(uid);
    m.extend_from_slice(rn1);
    m.extend_from_slice(ec);
    m
}

/// The transcript hash state up to and including step 1.
fn transcript_after_step1(broker_pub: &[u8; 32], device_pub: &[u8; 32], step1: &[u8]) -> Sha256 {
    let method = Suite::Default.method().as_bytes();
    let mut h = Sha256::new();
    h.update(LABEL_TRANSCRIPT);
    h.update([method.len() as u8]);
    h.update(method);
    h.update(broker_pub);
    h.update(device_pub);
    h.update((step1.len() as u16).to_be_bytes());
    h.update(step1);
    h
}

/// T1 = H(… ‖ RN2 ‖ Eb), signed by the broker.
fn transcript_1(mut h: Sha256, rn2: &[u8], eb: &[u8; 32]) -> [u8; 32] {
    h.update(rn2);
    h.update(eb);
    h.finalize().into()
}

/// T2 = H(T1 ‖ σ2): the HKDF salt, signed by the device, the session id.
fn transcript_2(t1: &[u8; 32], sig2: &[u8; 64]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(t1);
    h.update(sig2);
    h.finalize().into()
}

fn labelled(label: &[u8], t: &[u8; 32]) -> [u8; 64] {
    let mut m = [0u8; 64];
    m[..label.len()].copy_from_slice(label);
    m[label.len()..label.len() + 32].copy_from_slice(t);
    m
}

/// Signed message: label ‖ transcript hash (label ≤ 32 bytes).
fn signed_message<'a>(buf: &'a mut [u8; 64], label: &[u8], t: &[u8; 32]) -> &'a [u8] {
    *buf = labelled(label, t);
    &buf[..label.len() + 32]
}

fn derive(shared: &[u8; 32], t2: &[u8; 32]) -> (SessionKeys, Zeroizing<[u8; 32]>) {
    let hk = Hkdf::<Sha256>::new(Some(t2), shared);
    let mut c2b = Zeroizing::new([0u8; 32]);
    let mut b2c = Zeroizing::new([0u8; 32]);
    let mut confirm = Zeroizing::new([0u8; 32]);
    // 32-byte outputs are far below HKDF's 8160-byte limit.
    hk.expand(INFO_C2B, c2b.as_mut()).expect("32 bytes");
    hk.expand(INFO_B2C, b2c.as_mut()).expect("32 bytes");
    hk.expand(INFO_CONFIRM, confirm.as_mut()).expect("32 bytes");
    (
        SessionKeys {
            c2b,
            b2c,
            session_id: *t2,
        },
        confirm,
    )
}

fn confirmation_tag(confirm: &[u8; 32], t2: &[u8; 32]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(confirm).expect("any key length");
    mac.update(LABEL_STEP3);
    mac.update(t2);
    mac.finalize().into_bytes().into()
}

fn verifying_key(public: &[u8; 32], party: Party) -> Result<VerifyingKey, ScacError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| ScacError::BadPublicKey {
        party,
        reason: "not an Ed25519 point",
    })?;
    if key.is_weak() {
        return Err(ScacError::BadPublicKey {
            party,
            reason: "Ed25519 key of small order",
        });
    }
    Ok(key)
}

fn verify(
    key: &VerifyingKey,
    msg: &[u8],
    sig: &[u8; 64],
    step: u8,
    signer: Party,
) -> Result<(), ScacError> {
    key.verify_strict(msg, &Signature::from_bytes(sig))
        .map_err(|_| ScacError::BadProof { step, signer })
}

fn agree(
    secret: EphemeralSecret,
    peer: [u8; 32],
    step: u8,
) -> Result<Zeroizing<[u8; 32]>, ScacError> {
    let shared = secret.diffie_hellman(&X25519Public::from(peer));
    if !shared.was_contributory() {
        return Err(ScacError::NonContributory { step });
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// The device between step 1 and step 2.
pub(super) struct ClientState {
    uid: Uid,
    device: Arc<dyn Ed25519Signer>,
    broker_key: VerifyingKey,
    ephemeral: EphemeralSecret,
    transcript: Sha256,
}

pub(super) fn client_start<R: RngCore + CryptoRng>(
    uid: Uid,
    device: Arc<dyn Ed25519Signer>,
    broker_pub: &[u8; 32],
    rng: &mut R,
) -> Result<(ClientState, Vec<u8>), ScacError> {
    let broker_key = verifying_key(broker_pub, Party::Broker)?;
    let device_pub = device.public();
    let mut rn1 = [0u8; RN_LEN];
    rng.fill_bytes(&mut rn1);
    let ephemeral = EphemeralSecret::random_from_rng(&mut *rng);
    let ec = X25519Public::from(&ephemeral).to_bytes();
    let sig = device.sign(&step1_message(broker_pub, uid.as_bytes(), &rn1, &ec))?;

    let mut step1 = Vec::with_capacity(STEP1_FIXED + uid.len());
    step1.push(uid.len() as u8);
    step1.extend_from_slice(uid.as_bytes());
    step1.extend_from_slice(&rn1);
    step1.extend_from_slice(&ec);
    step1.extend_from_slice(&sig);
    let transcript = transcript_after_step1(broker_pub, &device_pub, &step1);
    Ok((
        ClientState {
            uid,
            device,
            broker_key,
            ephemeral,
            transcript,
        },
        step1,
    ))
}

pub(super) fn client_on_step2(
    state: ClientState,
    step2: &[u8],
) -> Result<(Vec<u8>, Uid, SessionKeys), ScacError> {
    if step2.len() != STEP2_LEN {
        return Err(malformed(2, "length is not 128 bytes"));
    }
    let (rn2, rest) = step2.split_at(RN_LEN);
    let (eb, sig2) = rest.split_at(POINT_LEN);
    let eb: [u8; 32] = eb.try_into().expect("32 bytes");
    let sig2: [u8; 64] = sig2.try_into().expect("64 bytes");
    let t1 = transcript_1(state.transcript, rn2, &eb);
    let mut buf = [0u8; 64];
    verify(
        &state.broker_key,
        signed_message(&mut buf, LABEL_STEP2, &t1),
        &sig2,
        2,
        Party::Broker,
    )?;
    let shared = agree(state.ephemeral, eb, 2)?;
    let t2 = transcript_2(&t1, &sig2);
    let (keys, confirm) = derive(&shared, &t2);

    let sig3 = state
        .device
        .sign(signed_message(&mut buf, LABEL_STEP3, &t2))?;
    let mut step3 = Vec::with_capacity(STEP3_LEN);
    step3.extend_from_slice(&sig3);
    step3.extend_from_slice(&confirmation_tag(&confirm, &t2));
    Ok((step3, state.uid, keys))
}

/// The broker between step 2 and step 3.
pub(super) struct BrokerState {
    uid: Uid,
    device_key: VerifyingKey,
    t2: [u8; 32],
    keys: SessionKeys,
    confirm: Zeroizing<[u8; 32]>,
}

impl BrokerState {
    pub fn uid(&self) -> &Uid {
        &self.uid
    }
}

pub(super) fn broker_start<R: RngCore + CryptoRng>(
    broker: &dyn Ed25519Signer,
    broker_pub: &[u8; 32],
    device_pub: &[u8; 32],
    step1: &[u8],
    rng: &mut R,
) -> Result<(BrokerState, Vec<u8>), ScacError> {
    let parsed = parse_step1(step1)?;
    let uid = Uid::new(Suite::Default.check_uid(parsed.uid)?);
    let device_key = verifying_key(device_pub, Party::Device)?;
    verify(
        &device_key,
        &step1_message(broker_pub, parsed.uid, parsed.rn1, &parsed.ec),
        &parsed.sig,
        1,
        Party::Device,
    )?;

    let mut rn2 = [0u8; RN_LEN];
    rng.fill_bytes(&mut rn2);
    let ephemeral = EphemeralSecret::random_from_rng(&mut *rng);
    let eb = X25519Public::from(&ephemeral).to_bytes();
    let shared = agree(ephemeral, parsed.ec, 1)?;
    let t1 = transcript_1(
        transcript_after_step1(broker_pub, device_pub, step1),
        &rn2,
        &eb,
    );
    let mut buf = [0u8; 64];
    let sig2 = broker.sign(signed_message(&mut buf, LABEL_STEP2, &t1))?;
    let t2 = transcript_2(&t1, &sig2);
    let (keys, confirm) = derive(&shared, &t2);

    let mut step2 = Vec::with_capacity(STEP2_LEN);
    step2.extend_from_slice(&rn2);
    step2.extend_from_slice(&eb);
    step2.extend_from_slice(&sig2);
    Ok((
        BrokerState {
            uid,
            device_key,
            t2,
            keys,
            confirm,
        },
        step2,
    ))
}

/// A step 2 for a step 1 the broker could not verify (unknown UID, or a
/// proof that does not verify): the same 128 bytes — fresh RN2, a real
/// ephemeral key, a real signature of the broker, over a transcript with
/// an all-zero device key — so the client cannot tell it from a genuine
/// one without the device's key. The state refuses every step 3.
pub(super) struct DecoyState {
    uid: Uid,
    /// Checked against step 3 as a genuine state would be, then ignored.
    dummy_key: VerifyingKey,
    t2: [u8; 32],
}

impl DecoyState {
    pub fn uid(&self) -> &Uid {
        &self.uid
    }
}

/// Checks σ1 against `dummy_pub`, for the work a genuine step 1 costs
/// (an unknown UID has no key to check it with); the result is ignored.
pub(super) fn dummy_step1_check(broker_pub: &[u8; 32], dummy_pub: &[u8; 32], step1: &[u8]) {
    if let (Ok(parsed), Ok(key)) = (parse_step1(step1), verifying_key(dummy_pub, Party::Device)) {
        let m = step1_message(broker_pub, parsed.uid, parsed.rn1, &parsed.ec);
        let _ = verify(&key, &m, &parsed.sig, 1, Party::Device);
    }
}

pub(super) fn broker_decoy<R: RngCore + CryptoRng>(
    broker: &dyn Ed25519Signer,
    broker_pub: &[u8; 32],
    step1: &[u8],
    rng: &mut R,
) -> Result<(DecoyState, Vec<u8>), ScacError> {
    let parsed = parse_step1(step1)?;
    let uid = Uid::new(Suite::Default.check_uid(parsed.uid)?);
    let mut rn2 = [0u8; RN_LEN];
    rng.fill_bytes(&mut rn2);
    let ephemeral = EphemeralSecret::random_from_rng(&mut *rng);
    let eb = X25519Public::from(&ephemeral).to_bytes();
    // The Diffie-Hellman a genuine step 2 costs; a low-order Ec is not
    // refused here (it would tell that the proof was checked).
    let _ = agree(ephemeral, parsed.ec, 1);
    let t1 = transcript_1(
        transcript_after_step1(broker_pub, &[0; 32], step1),
        &rn2,
        &eb,
    );
    let mut buf = [0u8; 64];
    let sig2 = broker.sign(signed_message(&mut buf, LABEL_STEP2, &t1))?;
    let t2 = transcript_2(&t1, &sig2);
    let mut step2 = Vec::with_capacity(STEP2_LEN);
    step2.extend_from_slice(&rn2);
    step2.extend_from_slice(&eb);
    step2.extend_from_slice(&sig2);
    let dummy_key = verifying_key(broker_pub, Party::Broker)?;
    Ok((DecoyState { uid, dummy_key, t2 }, step2))
}

/// Step 3 against a decoy: the checks a genuine state makes, always refused.
pub(super) fn decoy_finish(state: DecoyState, step3: &[u8]) {
    if step3.len() != STEP3_LEN {
        return;
    }
    let sig3: [u8; 64] = step3[..SIG_LEN].try_into().expect("64 bytes");
    let mut buf = [0u8; 64];
    let _ = verify(
        &state.dummy_key,
        signed_message(&mut buf, LABEL_STEP3, &state.t2),
        &sig3,
        3,
        Party::Device,
    );
}

pub(super) fn broker_finish(
    state: BrokerState,
    step3: &[u8],
) -> Result<(Uid, SessionKeys), ScacError> {
    if step3.len() != STEP3_LEN {
        return Err(malformed(3, "length is not 96 bytes"));
    }
    let (sig3, tag) = step3.split_at(SIG_LEN);
    let sig3: [u8; 64] = sig3.try_into().expect("64 bytes");
    let mut buf = [0u8; 64];
    verify(
        &state.device_key,
        signed_message(&mut buf, LABEL_STEP3, &state.t2),
        &sig3,
        3,
        Party::Device,
    )?;
    let expected = confirmation_tag(&state.confirm, &state.t2);
    if !bool::from(expected.ct_eq(tag)) {
        return Err(ScacError::Mismatch {
            step: 3,
            what: "key confirmation",
        });
    }
    Ok((state.uid, state.keys))
}

/// One direction's key chain: K_epoch, and the next sequence number (the
/// next to use when sending, the lowest acceptable when receiving).
pub(super) struct Chain {
    key: Zeroizing<[u8; 32]>,
    epoch: u32,
    seq: u32,
}

impl Chain {
    pub fn new(key: Zeroizing<[u8; 32]>) -> Self {
        Chain {
            key,
            epoch: 0,
            seq: 0,
        }
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// K_{n+1} = HKDF-Expand(K_n, label ‖ direction); K_n is overwritten.
    fn ratchet(&mut self, direction: Direction) {
        let hk = Hkdf::<Sha256>::from_prk(self.key.as_ref()).expect("32-byte PRK");
        let mut next = Zeroizing::new([0u8; 32]);
        hk.expand_multi_info(&[INFO_RATCHET, &[direction.byte()]], next.as_mut())
            .expect("32 bytes");
        self.key = next;
        self.epoch += 1;
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.key.as_ref()))
    }

    fn take_seq(&mut self) -> Result<u32, CryptError> {
        let seq = self.seq;
        self.seq = seq.checked_add(1).ok_or(CryptError::Exhausted)?;
        Ok(seq)
    }

    /// Checks the header of a received message against this (rx) chain.
    fn check_header(&self, what: &'static str, bytes: &[u8]) -> Result<(u32, u32), CryptError> {
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(CryptError::Malformed {
                what,
                reason: "shorter than header and tag",
            });
        }
        let epoch = u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes"));
        let seq = u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes"));
        if epoch != self.epoch {
            return Err(CryptError::EpochMismatch {
                what,
                expected: self.epoch,
                got: epoch,
            });
        }
        if seq < self.seq {
            return Err(CryptError::Replayed {
                what,
                got: seq,
                next: self.seq,
            });
        }
        Ok((epoch, seq))
    }
}

fn nonce(kind: u8, epoch: u32, seq: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[0] = kind;
    n[4..8].copy_from_slice(&epoch.to_be_bytes());
    n[8..12].copy_from_slice(&seq.to_be_bytes());
    Nonce::from(n)
}

/// What a payload's AEAD authenticates besides the data.
pub(super) struct PayloadContext<'a> {
    pub direction: Direction,
    pub session_id: &'a [u8; 32],
    pub uid: &'a Uid,
    pub topic: &'a str,
    pub packet_id: u16,
}

fn payload_aad(cx: &PayloadContext<'_>, epoch: u32, seq: u32) -> Vec<u8> {
    let topic = cx.topic.as_bytes();
    let mut aad = Vec::with_capacity(LABEL_PAYLOAD.len() + 48 + cx.uid.len() + topic.len());
    aad.extend_from_slice(LABEL_PAYLOAD);
    aad.push(cx.direction.byte());
    aad.extend_from_slice(cx.session_id);
    aad.push(cx.uid.len() as u8);
    aad.extend_from_slice(cx.uid.as_bytes());
    aad.extend_from_slice(&(topic.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    aad.extend_from_slice(topic);
    aad.extend_from_slice(&cx.packet_id.to_be_bytes());
    aad.extend_from_slice(&epoch.to_be_bytes());
    aad.extend_from_slice(&seq.to_be_bytes());
    aad
}

fn key_update_aad(
    direction: Direction,
    session_id: &[u8; 32],
    packet_id: u16,
    epoch: u32,
    seq: u32,
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(LABEL_KEY_UPDATE.len() + 43);
    aad.extend_from_slice(LABEL_KEY_UPDATE);
    aad.push(direction.byte());
    aad.extend_from_slice(session_id);
    aad.extend_from_slice(&packet_id.to_be_bytes());
    aad.extend_from_slice(&epoch.to_be_bytes());
    aad.extend_from_slice(&seq.to_be_bytes());
    aad
}

fn seal_into(chain: &Chain, kind: u8, seq: u32, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&chain.epoch.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(plaintext);
    let tag = chain
        .cipher()
        .encrypt_in_place_detached(&nonce(kind, chain.epoch, seq), aad, &mut out[HEADER_LEN..])
        .expect("ChaCha20-Poly1305 accepts any MQTT-sized payload");
    out.extend_from_slice(&tag);
    out
}

fn open_from(
    chain: &Chain,
    what: &'static str,
    kind: u8,
    (epoch, seq): (u32, u32),
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, CryptError> {
    let (ciphertext, tag) = sealed[HEADER_LEN..].split_at(sealed.len() - HEADER_LEN - TAG_LEN);
    let mut plaintext = ciphertext.to_vec();
    chain
        .cipher()
        .decrypt_in_place_detached(
            &nonce(kind, epoch, seq),
            aad,
            &mut plaintext,
            Tag::from_slice(tag),
        )
        .map_err(|_| CryptError::Decryption { what, epoch })?;
    Ok(plaintext)
}

pub(super) fn seal(
    tx: &mut Chain,
    cx: &PayloadContext<'_>,
    data: &[u8],
) -> Result<Vec<u8>, CryptError> {
    let max = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
    if data.len() > max {
        return Err(CryptError::TooLarge {
            len: data.len(),
            max,
        });
    }
    let seq = tx.take_seq()?;
    let aad = payload_aad(cx, tx.epoch, seq);
    Ok(seal_into(tx, KIND_PAYLOAD, seq, &aad, data))
}

pub(super) fn open(
    rx: &mut Chain,
    cx: &PayloadContext<'_>,
    payload: &[u8],
) -> Result<Vec<u8>, CryptError> {
    const WHAT: &str = "payload";
    let (epoch, seq) = rx.check_header(WHAT, payload)?;
    let aad = payload_aad(cx, epoch, seq);
    let data = open_from(rx, WHAT, KIND_PAYLOAD, (epoch, seq), &aad, payload)?;
    rx.seq = seq.saturating_add(1);
    Ok(data)
}

/// Seals the key-update proof under K_n, then ratchets the sender to K_{n+1}.
pub(super) fn key_update(
    tx: &mut Chain,
    direction: Direction,
    session_id: &[u8; 32],
    uid: &Uid,
    packet_id: u16,
) -> Result<String, CryptError> {
    if tx.epoch == u32::MAX {
        return Err(CryptError::Exhausted);
    }
    let seq = tx.take_seq()?;
    let aad = key_update_aad(direction, session_id, packet_id, tx.epoch, seq);
    let sealed = seal_into(tx, KIND_KEY_UPDATE, seq, &aad, uid.as_bytes());
    tx.ratchet(direction);
    Ok(hex::encode(sealed))
}

/// Verifies a key-update proof under K_n and ratchets the receiver.
pub(super) fn accept_key_update(
    rx: &mut Chain,
    direction: Direction,
    session_id: &[u8; 32],
    uid: &Uid,
    packet_id: u16,
    value: &str,
) -> Result<(), CryptError> {
    const WHAT: &str = "key update";
    if value.len() > MAX_KEY_UPDATE_HEX {
        return Err(CryptError::Malformed {
            what: WHAT,
            reason: "longer than any UID allows",
        });
    }
    let sealed = hex::decode(value).map_err(|_| CryptError::NotHex)?;
    let (epoch, seq) = rx.check_header(WHAT, &sealed)?;
    if epoch == u32::MAX {
        return Err(CryptError::Exhausted);
    }
    let aad = key_update_aad(direction, session_id, packet_id, epoch, seq);
    let named = Zeroizing::new(open_from(
        rx,
        WHAT,
        KIND_KEY_UPDATE,
        (epoch, seq),
        &aad,
        &sealed,
    )?);
    if !bool::from(named.as_slice().ct_eq(uid.as_bytes())) {
        return Err(CryptError::UidMismatch { what: WHAT });
    }
    rx.seq = seq.saturating_add(1);
    rx.ratchet(direction);
    Ok(())
}
