//! RFC 9180 HPKE for exactly one ciphersuite, the one ledgermq uses for
//! everything it seals to an X25519 key (OTP-key envelopes to broker nodes,
//! group-key wraps to members), base mode, single shot:
//! DHKEM(X25519, HKDF-SHA256) (KEM 0x0020), HKDF-SHA256 (KDF 0x0001),
//! ChaCha20-Poly1305 (AEAD 0x0003).
//!
//! Why not the `hpke` crate for opening: a member's X25519 private key may
//! live in a PKCS#11 token that only offers the raw agreement
//! ([`X25519Agreement::agree`]), and the crate wants the private key bytes.
//! This file is a composition of reviewed primitives (x25519-dalek, hkdf,
//! chacha20poly1305) following RFC 9180 §4 (LabeledExtract/LabeledExpand),
//! §4.1 (DHKEM Encap/Decap, ExtractAndExpand), §5.1 (KeySchedule, mode_base)
//! and §7.1 (X25519: reject an all-zero shared secret). It is proved
//! against the RFC's Appendix A.2.1 vector below and interoperates with the
//! `hpke` crate both ways (tests/envelope.rs). Only the first message of a
//! context is ever sealed, so the nonce is `base_nonce` (sequence 0) and no
//! context is kept.

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use curve25519_dalek::montgomery::MontgomeryPoint;
use hkdf::Hkdf;
use ledgermq_keystore::{KeyStoreError, X25519Agreement};
use sha2::Sha256;
use zeroize::Zeroizing;

/// `"KEM" ‖ I2OSP(kem_id, 2)`.
const KEM_SUITE_ID: &[u8] = b"KEM\x00\x20";
/// `"HPKE" ‖ I2OSP(kem_id, 2) ‖ I2OSP(kdf_id, 2) ‖ I2OSP(aead_id, 2)`.
const HPKE_SUITE_ID: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x03";
const VERSION_LABEL: &[u8] = b"HPKE-v1";
const MODE_BASE: u8 = 0x00;

/// Length of `enc`, the serialized ephemeral public key.
pub const ENC_LEN: usize = 32;
/// Length of the AEAD tag appended to the ciphertext.
pub const TAG_LEN: usize = 16;

/// Why a seal or an open failed.
#[derive(Debug)]
pub enum HpkeError {
    /// The X25519 output is all zero: a low-order public key (RFC 9180 §7.1.4).
    LowOrder,
    /// The key store refused the agreement for another reason.
    Agreement(KeyStoreError),
    /// AEAD encryption or decryption failed.
    Aead,
    /// HKDF refused a length (cannot happen for this suite's fixed sizes).
    Kdf,
}

/// The outputs of `KeySchedule` that single-shot use needs.
pub(crate) struct Context {
    pub(crate) key: Zeroizing<[u8; 32]>,
    pub(crate) base_nonce: [u8; 12],
}

/// `LabeledExtract(salt, label, ikm)` = `HKDF-Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm)`.
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut labeled_ikm = Zeroizing::new(Vec::with_capacity(
        VERSION_LABEL.len() + suite_id.len() + label.len() + ikm.len(),
    ));
    labeled_ikm.extend_from_slice(VERSION_LABEL);
    labeled_ikm.extend_from_slice(suite_id);
    labeled_ikm.extend_from_slice(label);
    labeled_ikm.extend_from_slice(ikm);
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), &labeled_ikm);
    Zeroizing::new(prk.into())
}

/// `LabeledExpand(prk, label, info, L)` =
/// `HKDF-Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L)`, L = `N`.
fn labeled_expand<const N: usize>(
    suite_id: &[u8],
    prk: &[u8; 32],
    label: &[u8],
    info: &[u8],
) -> Result<Zeroizing<[u8; N]>, HpkeError> {
    let len = u16::try_from(N).map_err(|_| HpkeError::Kdf)?;
    let mut labeled_info =
        Vec::with_capacity(2 + VERSION_LABEL.len() + suite_id.len() + label.len() + info.len());
    labeled_info.extend_from_slice(&len.to_be_bytes());
    labeled_info.extend_from_slice(VERSION_LABEL);
    labeled_info.extend_from_slice(suite_id);
    labeled_info.extend_from_slice(label);
    labeled_info.extend_from_slice(info);
    let mut out = Zeroizing::new([0u8; N]);
    Hkdf::<Sha256>::from_prk(prk)
        .map_err(|_| HpkeError::Kdf)?
        .expand(&labeled_info, out.as_mut())
        .map_err(|_| HpkeError::Kdf)?;
    Ok(out)
}

/// DHKEM `ExtractAndExpand(dh, kem_context)` with `kem_context = enc ‖ pkR`.
pub(crate) fn shared_secret(
    dh: &[u8; 32],
    enc: &[u8; 32],
    pk_r: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, HpkeError> {
    let eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh);
    let mut kem_context = [0u8; 64];
    kem_context[..32].copy_from_slice(enc);
    kem_context[32..].copy_from_slice(pk_r);
    labeled_expand::<32>(KEM_SUITE_ID, &eae_prk, b"shared_secret", &kem_context)
}

/// `KeySchedule(mode_base, shared_secret, info, psk = "", psk_id = "")`.
pub(crate) fn key_schedule(shared_secret: &[u8; 32], info: &[u8]) -> Result<Context, HpkeError> {
    let psk_id_hash = labeled_extract(HPKE_SUITE_ID, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(HPKE_SUITE_ID, b"", b"info_hash", info);
    let mut context = [0u8; 65];
    context[0] = MODE_BASE;
    context[1..33].copy_from_slice(psk_id_hash.as_ref());
    context[33..].copy_from_slice(info_hash.as_ref());
    let secret = labeled_extract(HPKE_SUITE_ID, shared_secret, b"secret", b"");
    let key = labeled_expand::<32>(HPKE_SUITE_ID, &secret, b"key", &context)?;
    let base_nonce = *labeled_expand::<12>(HPKE_SUITE_ID, &secret, b"base_nonce", &context)?;
    Ok(Context { key, base_nonce })
}

fn is_all_zero(bytes: &[u8; 32]) -> bool {
    bytes.iter().fold(0u8, |acc, b| acc | b) == 0
}

/// `SealBase(pkR, info, aad, pt)` with the ephemeral secret `sk_e` given
/// (random in use, fixed for vectors). Returns `(enc, ciphertext ‖ tag)`.
pub fn seal_base(
    pk_r: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    sk_e: &[u8; 32],
) -> Result<([u8; ENC_LEN], Vec<u8>), HpkeError> {
    let enc = MontgomeryPoint::mul_base_clamped(*sk_e).to_bytes();
    let dh = Zeroizing::new(MontgomeryPoint(*pk_r).mul_clamped(*sk_e).to_bytes());
    if is_all_zero(&dh) {
        return Err(HpkeError::LowOrder);
    }
    let context = key_schedule(&*shared_secret(&dh, &enc, pk_r)?, info)?;
    let ciphertext = ChaCha20Poly1305::new(context.key.as_ref().into())
        .encrypt(
            &context.base_nonce.into(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| HpkeError::Aead)?;
    Ok((enc, ciphertext))
}

/// `SealBase(pkR, info, aad, pt)` with a fresh ephemeral key from the OS
/// CSPRNG. Returns `(enc, ciphertext ‖ tag)`.
pub fn seal(
    pk_r: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; ENC_LEN], Vec<u8>), HpkeError> {
    use rand_core::{OsRng, RngCore};
    let mut sk_e = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(sk_e.as_mut());
    seal_base(pk_r, info, aad, plaintext, &sk_e)
}

/// `OpenBase(enc, skR, info, aad, ct)` with skR reached only through `agree`.
pub fn open_base(
    recipient: &dyn X25519Agreement,
    enc: &[u8; ENC_LEN],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    let dh = recipient.agree(enc).map_err(|e| match e {
        KeyStoreError::NonContributory => HpkeError::LowOrder,
        other => HpkeError::Agreement(other),
    })?;
    // Do not rely on every key store to refuse a low-order peer.
    if is_all_zero(&dh) {
        return Err(HpkeError::LowOrder);
    }
    let context = key_schedule(&*shared_secret(&dh, enc, &recipient.public())?, info)?;
    ChaCha20Poly1305::new(context.key.as_ref().into())
        .decrypt(
            &context.base_nonce.into(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| HpkeError::Aead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgermq_keystore::software::SoftwareX25519;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    // RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    // ChaCha20Poly1305, mode_base.
    const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
    const SK_EM: &str = "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600";
    const PK_EM: &str = "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a";
    const SK_RM: &str = "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb";
    const PK_RM: &str = "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a";
    const SHARED_SECRET: &str = "0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7";
    const KEY: &str = "ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91";
    const BASE_NONCE: &str = "5c4d98150661b848853b547f";
    const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
    const AAD_0: &str = "436f756e742d30";
    const CT_0: &str = "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28";

    #[test]
    fn rfc9180_a_2_1_key_schedule_is_reproduced() {
        let recipient = SoftwareX25519::from_bytes(&h(SK_RM));
        assert_eq!(recipient.public(), h::<32>(PK_RM));
        let enc: [u8; 32] = h(PK_EM);
        let dh = recipient.agree(&enc).unwrap();
        let ss = shared_secret(&dh, &enc, &recipient.public()).unwrap();
        assert_eq!(*ss, h::<32>(SHARED_SECRET));
        let context = key_schedule(&ss, &hex::decode(INFO).unwrap()).unwrap();
        assert_eq!(*context.key, h::<32>(KEY));
        assert_eq!(context.base_nonce, h::<12>(BASE_NONCE));
    }

    #[test]
    fn rfc9180_a_2_1_first_encryption_is_reproduced_and_opens_through_agree() {
        let (enc, ct) = seal_base(
            &h(PK_RM),
            &hex::decode(INFO).unwrap(),
            &hex::decode(AAD_0).unwrap(),
            &hex::decode(PT).unwrap(),
            &h(SK_EM),
        )
        .unwrap();
        assert_eq!(enc, h::<32>(PK_EM));
        assert_eq!(hex::encode(&ct), CT_0);

        let recipient = SoftwareX25519::from_bytes(&h(SK_RM));
        let pt = open_base(
            &recipient,
            &enc,
            &hex::decode(INFO).unwrap(),
            &hex::decode(AAD_0).unwrap(),
            &ct,
        )
        .unwrap();
        assert_eq!(hex::encode(&*pt), PT);
    }

    #[test]
    fn rfc9180_a_2_1_ciphertext_does_not_open_with_other_info_or_aad() {
        let recipient = SoftwareX25519::from_bytes(&h(SK_RM));
        let ct = hex::decode(CT_0).unwrap();
        let info = hex::decode(INFO).unwrap();
        let aad = hex::decode(AAD_0).unwrap();
        assert!(open_base(&recipient, &h(PK_EM), b"other", &aad, &ct).is_err());
        assert!(open_base(&recipient, &h(PK_EM), &info, b"Count-1", &ct).is_err());
    }

    #[test]
    fn low_order_recipient_or_ephemeral_is_refused() {
        let zero = [0u8; 32];
        assert!(matches!(
            seal_base(&zero, b"", b"", b"x", &[7u8; 32]),
            Err(HpkeError::LowOrder)
        ));
        let recipient = SoftwareX25519::from_bytes(&[9u8; 32]);
        assert!(matches!(
            open_base(&recipient, &zero, b"", b"", &[0u8; 48]),
            Err(HpkeError::LowOrder)
        ));
    }
}
