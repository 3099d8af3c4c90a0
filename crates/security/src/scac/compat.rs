//! `SCACAuth-RSAPKCS1-2048-AES-128`: byte-compatible with the Java Card
//! applet published with the paper (UID 8 bytes, RN 16 bytes, RSA-2048
//! PKCS#1 v1.5, AES-128-CBC with a zero IV and zero padding, 16-bit
//! big-endian length prefixes). Off by default: `docs/scac.md` lists its
//! weaknesses, which are the paper's and are kept on purpose so existing
//! cards keep working.

use std::sync::Arc;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut as _, BlockEncryptMut as _, KeyIvInit as _};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng as _};
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPublicKey};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::channel::{Direction, Uid};
use super::error::{CryptError, Party, ScacError};
use super::keys::RsaKey;
use super::Suite;

pub(super) const UID_LEN: usize = 8;
pub(super) const RN_LEN: usize = 16;
const RSA_LEN: usize = 256;
const BLOCK: usize = 16;
/// UID ‖ len ‖ RSA block
pub(super) const STEP1_LEN: usize = UID_LEN + 2 + RSA_LEN;
/// len ‖ RSA block ‖ len ‖ RSA block
pub(super) const STEP2_LEN: usize = 2 * (2 + RSA_LEN);
/// len ‖ RSA block
pub(super) const STEP3_LEN: usize = 2 + RSA_LEN;
/// len ‖ AES-CBC(UID ‖ K_n ‖ K_{n+1} ‖ 0^8)
const KEY_UPDATE_LEN: usize = 2 + 48;
/// Largest CBC ciphertext a 16-bit length prefix can announce.
const MAX_CIPHERTEXT: usize = 65_520;

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

fn malformed(step: u8, reason: &'static str) -> ScacError {
    ScacError::Malformed { step, reason }
}

/// A 2048-bit RSA public key from its (n, e) encoding.
pub(super) fn public_key(n: &[u8], e: &[u8], party: Party) -> Result<RsaPublicKey, ScacError> {
    let bad = |reason| ScacError::BadPublicKey { party, reason };
    let key = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
        .map_err(|_| bad("not a valid RSA public key"))?;
    if key.n().bits() != RSA_LEN * 8 {
        return Err(bad("modulus is not 2048 bits"));
    }
    Ok(key)
}

fn be16(bytes: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([bytes[0], bytes[1]]))
}

fn push_block(out: &mut Vec<u8>, block: &[u8]) {
    out.extend_from_slice(&(block.len() as u16).to_be_bytes());
    out.extend_from_slice(block);
}

/// `u16 len ‖ block` at the start of `bytes`, with len == 256.
fn rsa_block(bytes: &[u8], step: u8) -> Result<(&[u8], &[u8]), ScacError> {
    if bytes.len() < 2 + RSA_LEN || be16(bytes) != RSA_LEN {
        return Err(malformed(step, "RSA block length is not 256"));
    }
    Ok(bytes[2..].split_at(RSA_LEN))
}

/// The private-key proof of step 1 or 2: the PKCS#1 v1.5 signature
/// primitive over `msg` without hashing (the applet's "private encrypt").
fn prove(key: &dyn RsaKey, msg: &[u8]) -> Result<Vec<u8>, ScacError> {
    let proof = key.sign_raw_pkcs1v15(msg)?;
    if proof.len() != RSA_LEN {
        return Err(ScacError::Key(super::keys::KeyError {
            operation: "RSA raw signature",
            detail: format!("{} bytes, expected 256", proof.len()),
        }));
    }
    Ok(proof)
}

/// Recovers the 24-byte `UID ‖ RN1` a step-1 proof carries ("public
/// decrypt"), then checks the whole padding with the `rsa` crate.
fn recover_step1(device: &RsaPublicKey, proof: &[u8]) -> Result<[u8; UID_LEN + RN_LEN], ScacError> {
    let bad = ScacError::BadProof {
        step: 1,
        signer: Party::Device,
    };
    let s = BigUint::from_bytes_be(proof);
    if &s >= device.n() {
        return Err(bad);
    }
    let em = s.modpow(device.e(), device.n()).to_bytes_be();
    if em.len() < UID_LEN + RN_LEN {
        return Err(bad);
    }
    let mut recovered = [0u8; UID_LEN + RN_LEN];
    recovered.copy_from_slice(&em[em.len() - (UID_LEN + RN_LEN)..]);
    device
        .verify(Pkcs1v15Sign::new_unprefixed(), &recovered, proof)
        .map_err(|_| bad)?;
    Ok(recovered)
}

fn encrypt_to<R: RngCore + CryptoRng>(
    key: &RsaPublicKey,
    rng: &mut R,
    msg: &[u8],
    party: Party,
) -> Result<Vec<u8>, ScacError> {
    key.encrypt(rng, Pkcs1v15Encrypt, msg)
        .map_err(|_| ScacError::BadPublicKey {
            party,
            reason: "RSA encryption failed",
        })
}

/// The UID in step 1, checked as exactly 8 ASCII bytes.
pub(super) fn uid_of_step1(step1: &[u8]) -> Result<&str, ScacError> {
    if step1.len() != STEP1_LEN {
        return Err(malformed(1, "length is not 266 bytes"));
    }
    Suite::RsaCompat.check_uid(&step1[..UID_LEN])
}

/// Initial keys of a compatibility session (RNp, RNs in the paper).
pub(super) struct SessionKeys {
    pub rnp: Zeroizing<[u8; RN_LEN]>,
    pub rns: Zeroizing<[u8; RN_LEN]>,
    /// Draws the next keys this side sends in its key updates.
    pub rng: ChaCha20Rng,
}

/// The device between step 1 and step 2.
pub(super) struct ClientState {
    uid: Uid,
    device: Arc<dyn RsaKey>,
    broker: RsaPublicKey,
    uid_rn1: [u8; UID_LEN + RN_LEN],
    rng: ChaCha20Rng,
}

pub(super) fn client_start<R: RngCore + CryptoRng>(
    uid: Uid,
    device: Arc<dyn RsaKey>,
    broker: RsaPublicKey,
    rng: &mut R,
) -> Result<(ClientState, Vec<u8>), ScacError> {
    let mut uid_rn1 = [0u8; UID_LEN + RN_LEN];
    uid_rn1[..UID_LEN].copy_from_slice(uid.as_bytes());
    rng.fill_bytes(&mut uid_rn1[UID_LEN..]);
    let proof = prove(device.as_ref(), &uid_rn1)?;
    let mut step1 = Vec::with_capacity(STEP1_LEN);
    step1.extend_from_slice(uid.as_bytes());
    push_block(&mut step1, &proof);
    let rng = ChaCha20Rng::from_rng(rng).map_err(|_| ScacError::Key(rng_failed()))?;
    Ok((
        ClientState {
            uid,
            device,
            broker,
            uid_rn1,
            rng,
        },
        step1,
    ))
}

fn rng_failed() -> super::keys::KeyError {
    super::keys::KeyError {
        operation: "random generation",
        detail: "the random generator failed".into(),
    }
}

pub(super) fn client_on_step2(
    mut state: ClientState,
    step2: &[u8],
) -> Result<(Vec<u8>, Uid, SessionKeys), ScacError> {
    if step2.len() != STEP2_LEN {
        return Err(malformed(2, "length is not 516 bytes"));
    }
    let (proof, rest) = rsa_block(step2, 2)?;
    let (sealed, _) = rsa_block(rest, 2)?;
    state
        .broker
        .verify(Pkcs1v15Sign::new_unprefixed(), &state.uid_rn1, proof)
        .map_err(|_| ScacError::BadProof {
            step: 2,
            signer: Party::Broker,
        })?;
    let opened = state
        .device
        .decrypt_pkcs1v15(sealed)
        .map_err(|_| ScacError::Decryption { step: 2 })?;
    if opened.len() != UID_LEN + 2 * RN_LEN {
        return Err(ScacError::Mismatch {
            step: 2,
            what: "length of UID ‖ RNp ‖ RNs",
        });
    }
    if !bool::from(opened[..UID_LEN].ct_eq(state.uid.as_bytes())) {
        return Err(ScacError::Mismatch {
            step: 2,
            what: "UID",
        });
    }
    let sealed3 = encrypt_to(&state.broker, &mut state.rng, &opened, Party::Broker)?;
    let mut step3 = Vec::with_capacity(STEP3_LEN);
    push_block(&mut step3, &sealed3);
    let keys = split_keys(&opened, state.rng);
    Ok((step3, state.uid, keys))
}

fn split_keys(uid_rnp_rns: &[u8], rng: ChaCha20Rng) -> SessionKeys {
    let mut rnp = Zeroizing::new([0u8; RN_LEN]);
    let mut rns = Zeroizing::new([0u8; RN_LEN]);
    rnp.copy_from_slice(&uid_rnp_rns[UID_LEN..UID_LEN + RN_LEN]);
    rns.copy_from_slice(&uid_rnp_rns[UID_LEN + RN_LEN..]);
    SessionKeys { rnp, rns, rng }
}

/// The broker between step 2 and step 3.
pub(super) struct BrokerState {
    uid: Uid,
    broker: Arc<dyn RsaKey>,
    expected: Zeroizing<[u8; UID_LEN + 2 * RN_LEN]>,
    rng: ChaCha20Rng,
}

impl BrokerState {
    pub fn uid(&self) -> &Uid {
        &self.uid
    }
}

pub(super) fn broker_start<R: RngCore + CryptoRng>(
    broker: Arc<dyn RsaKey>,
    device: &RsaPublicKey,
    step1: &[u8],
    rng: &mut R,
) -> Result<(BrokerState, Vec<u8>), ScacError> {
    let uid = Uid::new(uid_of_step1(step1)?);
    let (proof, _) = rsa_block(&step1[UID_LEN..], 1)?;
    let uid_rn1 = recover_step1(device, proof)?;
    if !bool::from(uid_rn1[..UID_LEN].ct_eq(uid.as_bytes())) {
        return Err(ScacError::Mismatch {
            step: 1,
            what: "UID",
        });
    }
    let mut expected = Zeroizing::new([0u8; UID_LEN + 2 * RN_LEN]);
    expected[..UID_LEN].copy_from_slice(uid.as_bytes());
    rng.fill_bytes(&mut expected[UID_LEN..]);

    let proof2 = prove(broker.as_ref(), &uid_rn1)?;
    let sealed = encrypt_to(device, rng, expected.as_ref(), Party::Device)?;
    let mut step2 = Vec::with_capacity(STEP2_LEN);
    push_block(&mut step2, &proof2);
    push_block(&mut step2, &sealed);
    let rng = ChaCha20Rng::from_rng(rng).map_err(|_| ScacError::Key(rng_failed()))?;
    Ok((
        BrokerState {
            uid,
            broker,
            expected,
            rng,
        },
        step2,
    ))
}

/// A step 2 for a step 1 the broker could not verify (unknown UID, no or
/// another RSA key): the same 516 bytes and the same private-key work — a
/// proof of the broker over UID ‖ a random RN1, and random UID ‖ RNp ‖ RNs
/// encrypted to the broker's own public key (a client without the
/// device's key cannot tell either from a genuine one). The state refuses
/// every step 3.
pub(super) struct DecoyState {
    uid: Uid,
    broker: Arc<dyn RsaKey>,
}

impl DecoyState {
    pub fn uid(&self) -> &Uid {
        &self.uid
    }
}

/// "Public decrypt" of the step-1 proof with `dummy`, for the work a
/// genuine step 1 costs; the result is ignored.
pub(super) fn dummy_step1_check(dummy: &RsaPublicKey, step1: &[u8]) {
    if let Ok((proof, _)) = step1
        .get(UID_LEN..)
        .ok_or_else(|| malformed(1, "short"))
        .and_then(|rest| rsa_block(rest, 1))
    {
        let _ = recover_step1(dummy, proof);
    }
}

pub(super) fn broker_decoy<R: RngCore + CryptoRng>(
    broker: Arc<dyn RsaKey>,
    broker_public: &RsaPublicKey,
    step1: &[u8],
    rng: &mut R,
) -> Result<(DecoyState, Vec<u8>), ScacError> {
    let uid = Uid::new(uid_of_step1(step1)?);
    let mut uid_rn1 = [0u8; UID_LEN + RN_LEN];
    uid_rn1[..UID_LEN].copy_from_slice(uid.as_bytes());
    rng.fill_bytes(&mut uid_rn1[UID_LEN..]);
    let mut sealed_keys = Zeroizing::new([0u8; UID_LEN + 2 * RN_LEN]);
    sealed_keys[..UID_LEN].copy_from_slice(uid.as_bytes());
    rng.fill_bytes(&mut sealed_keys[UID_LEN..]);
    let proof2 = prove(broker.as_ref(), &uid_rn1)?;
    let sealed = encrypt_to(broker_public, rng, sealed_keys.as_ref(), Party::Broker)?;
    let mut step2 = Vec::with_capacity(STEP2_LEN);
    push_block(&mut step2, &proof2);
    push_block(&mut step2, &sealed);
    Ok((DecoyState { uid, broker }, step2))
}

/// Step 3 against a decoy: the private-key work a genuine state does,
/// always refused.
pub(super) fn decoy_finish(state: DecoyState, step3: &[u8]) {
    if step3.len() != STEP3_LEN {
        return;
    }
    if let Ok((sealed, _)) = rsa_block(step3, 3) {
        let _ = state.broker.decrypt_pkcs1v15(sealed);
    }
}

pub(super) fn broker_finish(
    state: BrokerState,
    step3: &[u8],
) -> Result<(Uid, SessionKeys), ScacError> {
    if step3.len() != STEP3_LEN {
        return Err(malformed(3, "length is not 258 bytes"));
    }
    let (sealed, _) = rsa_block(step3, 3)?;
    let opened = state
        .broker
        .decrypt_pkcs1v15(sealed)
        .map_err(|_| ScacError::Decryption { step: 3 })?;
    if !bool::from(opened.as_slice().ct_eq(state.expected.as_ref())) {
        return Err(ScacError::Mismatch {
            step: 3,
            what: "UID ‖ RNp ‖ RNs",
        });
    }
    Ok((state.uid, split_keys(state.expected.as_ref(), state.rng)))
}

/// One direction's key: RNp or RNs of the current epoch.
pub(super) struct Chain {
    key: Zeroizing<[u8; RN_LEN]>,
    epoch: u32,
}

impl Chain {
    pub fn new(key: Zeroizing<[u8; RN_LEN]>) -> Self {
        Chain { key, epoch: 0 }
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    fn encrypt(&self, buf: &mut [u8]) {
        let len = buf.len();
        Aes128CbcEnc::new(self.key.as_ref().into(), &[0u8; BLOCK].into())
            .encrypt_padded_mut::<NoPadding>(buf, len)
            .expect("whole blocks");
    }

    fn decrypt(&self, buf: &mut [u8]) {
        Aes128CbcDec::new(self.key.as_ref().into(), &[0u8; BLOCK].into())
            .decrypt_padded_mut::<NoPadding>(buf)
            .expect("whole blocks");
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(BLOCK) * BLOCK
}

/// The applet carries RNp after the data of a publisher's PUBLISH
/// (CREATE_MSG_PUBLISH), nothing after a subscriber's (READ_PAYLOAD).
fn trailer_len(direction: Direction) -> usize {
    match direction {
        Direction::ClientToBroker => RN_LEN,
        Direction::BrokerToClient => 0,
    }
}

/// `u16 len ‖ AES-CBC(UID ‖ u16 n ‖ data ‖ [RNp] ‖ 0-pad)`.
pub(super) fn seal(
    tx: &Chain,
    direction: Direction,
    uid: &Uid,
    data: &[u8],
) -> Result<Vec<u8>, CryptError> {
    let trailer = trailer_len(direction);
    let max = MAX_CIPHERTEXT - UID_LEN - 2 - trailer;
    if data.len() > max {
        return Err(CryptError::TooLarge {
            len: data.len(),
            max,
        });
    }
    let plain_len = UID_LEN + 2 + data.len() + trailer;
    let cipher_len = padded(plain_len);
    let mut out = Zeroizing::new(Vec::with_capacity(2 + cipher_len));
    out.extend_from_slice(&(cipher_len as u16).to_be_bytes());
    out.extend_from_slice(uid.as_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    if trailer > 0 {
        out.extend_from_slice(tx.key.as_ref());
    }
    out.resize(2 + cipher_len, 0);
    tx.encrypt(&mut out[2..]);
    Ok(std::mem::take(&mut *out))
}

fn whole_blocks<'a>(what: &'static str, bytes: &'a [u8]) -> Result<&'a [u8], CryptError> {
    let malformed = |reason| CryptError::Malformed { what, reason };
    if bytes.len() < 2 || be16(bytes) != bytes.len() - 2 {
        return Err(malformed("length prefix does not match"));
    }
    let body = &bytes[2..];
    if body.is_empty() || body.len() % BLOCK != 0 {
        return Err(malformed("not whole AES blocks"));
    }
    Ok(body)
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, b| acc | b) == 0
}

pub(super) fn open(
    rx: &Chain,
    direction: Direction,
    uid: &Uid,
    payload: &[u8],
) -> Result<Vec<u8>, CryptError> {
    const WHAT: &str = "payload";
    let malformed = |reason| CryptError::Malformed { what: WHAT, reason };
    let mut plain = Zeroizing::new(whole_blocks(WHAT, payload)?.to_vec());
    rx.decrypt(&mut plain);
    if plain.len() < UID_LEN + 2 || !bool::from(plain[..UID_LEN].ct_eq(uid.as_bytes())) {
        return Err(CryptError::UidMismatch { what: WHAT });
    }
    let n = be16(&plain[UID_LEN..]);
    let data_end = UID_LEN + 2 + n;
    let trailer_end = data_end + trailer_len(direction);
    if trailer_end > plain.len() || padded(trailer_end) != plain.len() {
        return Err(malformed("data length does not match the blocks"));
    }
    if trailer_end > data_end && !bool::from(plain[data_end..trailer_end].ct_eq(rx.key.as_ref())) {
        return Err(CryptError::Decryption {
            what: WHAT,
            epoch: rx.epoch,
        });
    }
    if !all_zero(&plain[trailer_end..]) {
        return Err(malformed("padding is not zero"));
    }
    Ok(plain[UID_LEN + 2..data_end].to_vec())
}

/// `u16 48 ‖ AES-CBC_{K_n}(UID ‖ K_n ‖ K_{n+1} ‖ 0^8)`, then switch to K_{n+1}.
pub(super) fn key_update(
    tx: &mut Chain,
    rng: &mut ChaCha20Rng,
    uid: &Uid,
) -> Result<String, CryptError> {
    let mut next = Zeroizing::new([0u8; RN_LEN]);
    rng.fill_bytes(next.as_mut());
    let mut out = Zeroizing::new([0u8; KEY_UPDATE_LEN]);
    out[..2].copy_from_slice(&48u16.to_be_bytes());
    out[2..10].copy_from_slice(uid.as_bytes());
    out[10..26].copy_from_slice(tx.key.as_ref());
    out[26..42].copy_from_slice(next.as_ref());
    tx.encrypt(&mut out[2..]);
    tx.key = next;
    tx.epoch = tx.epoch.wrapping_add(1);
    Ok(hex::encode(out.as_ref()))
}

pub(super) fn accept_key_update(rx: &mut Chain, uid: &Uid, value: &str) -> Result<(), CryptError> {
    const WHAT: &str = "key update";
    if value.len() != 2 * KEY_UPDATE_LEN {
        return Err(CryptError::Malformed {
            what: WHAT,
            reason: "not 50 bytes",
        });
    }
    let mut bytes = Zeroizing::new([0u8; KEY_UPDATE_LEN]);
    hex::decode_to_slice(value, bytes.as_mut()).map_err(|_| CryptError::NotHex)?;
    let mut plain = Zeroizing::new([0u8; KEY_UPDATE_LEN - 2]);
    plain.copy_from_slice(whole_blocks(WHAT, bytes.as_ref())?);
    rx.decrypt(plain.as_mut());
    if !bool::from(plain[..UID_LEN].ct_eq(uid.as_bytes())) {
        return Err(CryptError::UidMismatch { what: WHAT });
    }
    if !bool::from(plain[UID_LEN..UID_LEN + RN_LEN].ct_eq(rx.key.as_ref())) {
        return Err(CryptError::StaleKeyUpdate);
    }
    if !all_zero(&plain[UID_LEN + 2 * RN_LEN..]) {
        return Err(CryptError::Malformed {
            what: WHAT,
            reason: "padding is not zero",
        });
    }
    rx.key
        .copy_from_slice(&plain[UID_LEN + RN_LEN..UID_LEN + 2 * RN_LEN]);
    rx.epoch = rx.epoch.wrapping_add(1);
    Ok(())
}
