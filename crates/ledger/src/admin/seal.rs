//! Device and broker-node key material, and the HPKE envelopes that carry a
//! device's OTP key to broker nodes.
//!
//! The OTP key never reaches the ledger in clear: it is sealed with HPKE
//! (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
//! ChaCha20-Poly1305; `ledgermq_security::hpke`, the one HPKE of the
//! project) to each broker node's X25519 key, with info
//! `"ledgermq otp v1" ‖ device id` so an envelope cannot be replayed for
//! another device. Envelope layout: `enc (32 bytes) ‖ ciphertext ‖ tag (16)`.

use alloy_primitives::B256;
use ledgermq_keystore::software::SoftwareX25519;
use ledgermq_security::hpke;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::{LedgerError, LedgerResult};

const INFO_PREFIX: &[u8] = b"ledgermq otp v1";
const ENC_LEN: usize = hpke::ENC_LEN;

/// A device's secrets, generated with the OS CSPRNG. Zeroed on drop.
pub struct DeviceSecrets {
    /// Ed25519 signing key (seed).
    pub signing_secret: Zeroizing<[u8; 32]>,
    pub signing_public: [u8; 32],
    /// X25519 agreement key.
    pub agreement_secret: Zeroizing<[u8; 32]>,
    pub agreement_public: [u8; 32],
    /// The 32-byte OTP key shared with broker nodes only through envelopes.
    pub otp_key: Zeroizing<[u8; 32]>,
}

impl DeviceSecrets {
    pub fn generate() -> Self {
        let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let agreement = x25519_dalek::StaticSecret::random_from_rng(OsRng);
        let mut otp = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(otp.as_mut());
        Self {
            signing_secret: Zeroizing::new(signing.to_bytes()),
            signing_public: signing.verifying_key().to_bytes(),
            agreement_public: x25519_dalek::PublicKey::from(&agreement).to_bytes(),
            agreement_secret: Zeroizing::new(agreement.to_bytes()),
            otp_key: otp,
        }
    }

    pub fn signing_public_b256(&self) -> B256 {
        B256::from(self.signing_public)
    }

    pub fn agreement_public_b256(&self) -> B256 {
        B256::from(self.agreement_public)
    }
}

impl std::fmt::Debug for DeviceSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSecrets").finish_non_exhaustive()
    }
}

/// A broker node's Ed25519 signing and X25519 (HPKE) key pairs.
pub struct BrokerNodeKeys {
    pub signing_secret: Zeroizing<[u8; 32]>,
    pub signing_public: [u8; 32],
    pub agreement_secret: Zeroizing<[u8; 32]>,
    pub agreement_public: [u8; 32],
}

impl BrokerNodeKeys {
    pub fn generate() -> Self {
        let d = DeviceSecrets::generate();
        Self {
            signing_secret: d.signing_secret.clone(),
            signing_public: d.signing_public,
            agreement_secret: d.agreement_secret.clone(),
            agreement_public: d.agreement_public,
        }
    }
}

fn info(device_id: &str) -> Vec<u8> {
    let mut info = INFO_PREFIX.to_vec();
    info.extend_from_slice(device_id.as_bytes());
    info
}

/// Seals `otp_key` for `device_id` to a broker node's X25519 public key.
pub fn seal_otp_key(
    broker_agreement_key: &B256,
    device_id: &str,
    otp_key: &[u8; 32],
) -> LedgerResult<Vec<u8>> {
    let pk: [u8; 32] = broker_agreement_key.0;
    let (enc, ciphertext) = hpke::seal(&pk, &info(device_id), &[], otp_key)
        .map_err(|e| LedgerError::Other(format!("HPKE seal failed: {e:?}")))?;
    let mut out = enc.to_vec();
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens an envelope made by [`seal_otp_key`] with the broker node's X25519 secret.
pub fn open_otp_envelope(
    broker_agreement_secret: &[u8; 32],
    device_id: &str,
    envelope: &[u8],
) -> LedgerResult<Zeroizing<[u8; 32]>> {
    if envelope.len() <= ENC_LEN {
        return Err(LedgerError::Other("OTP envelope is too short".into()));
    }
    let recipient = SoftwareX25519::from_bytes(broker_agreement_secret);
    let mut enc = [0u8; ENC_LEN];
    enc.copy_from_slice(&envelope[..ENC_LEN]);
    let plain = hpke::open_base(
        &recipient,
        &enc,
        &info(device_id),
        &[],
        &envelope[ENC_LEN..],
    )
    .map_err(|_| LedgerError::Other("OTP envelope does not open with this broker key".into()))?;
    if plain.len() != 32 {
        return Err(LedgerError::Other(
            "OTP envelope does not hold a 32-byte key".into(),
        ));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&plain);
    Ok(key)
}

/// The X25519 public key of a broker-node or device agreement secret.
pub fn agreement_public(secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_opens_only_for_its_broker_and_device() {
        let broker = BrokerNodeKeys::generate();
        let other = BrokerNodeKeys::generate();
        let device = DeviceSecrets::generate();
        let pk = B256::from(broker.agreement_public);
        let env = seal_otp_key(&pk, "dev-1", &device.otp_key).unwrap();
        assert_eq!(env.len(), 32 + 32 + 16);
        assert!(
            !env.windows(32).any(|w| w == device.otp_key.as_slice()),
            "key not in clear"
        );
        let opened = open_otp_envelope(&broker.agreement_secret, "dev-1", &env).unwrap();
        assert_eq!(*opened, *device.otp_key);
        assert!(open_otp_envelope(&broker.agreement_secret, "dev-2", &env).is_err());
        assert!(open_otp_envelope(&other.agreement_secret, "dev-1", &env).is_err());
        assert!(open_otp_envelope(&broker.agreement_secret, "dev-1", &env[..10]).is_err());
        assert_eq!(
            agreement_public(&broker.agreement_secret),
            broker.agreement_public
        );
    }

    /// Envelopes on existing ledgers were sealed with the `hpke` crate:
    /// they open unchanged (same RFC 9180 suite and layout).
    #[test]
    fn envelopes_sealed_by_the_hpke_crate_still_open() {
        use ::hpke::{aead::ChaCha20Poly1305, kdf::HkdfSha256, kem::X25519HkdfSha256};
        use ::hpke::{Deserializable, OpModeS, Serializable};
        struct Rng;
        impl ::hpke::rand_core::RngCore for Rng {
            fn next_u32(&mut self) -> u32 {
                OsRng.next_u32()
            }
            fn next_u64(&mut self) -> u64 {
                OsRng.next_u64()
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                OsRng.fill_bytes(dest)
            }
        }
        impl ::hpke::rand_core::CryptoRng for Rng {}
        let broker = BrokerNodeKeys::generate();
        let pk = <X25519HkdfSha256 as ::hpke::Kem>::PublicKey::from_bytes(&broker.agreement_public)
            .unwrap();
        let (enc, ct) =
            ::hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256, _>(
                &OpModeS::Base,
                &pk,
                &info("dev-1"),
                &[7u8; 32],
                &[],
                &mut Rng,
            )
            .unwrap();
        let mut env = enc.to_bytes().to_vec();
        env.extend_from_slice(&ct);
        let opened = open_otp_envelope(&broker.agreement_secret, "dev-1", &env).unwrap();
        assert_eq!(*opened, [7u8; 32]);
    }
}
