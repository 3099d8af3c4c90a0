//! The private-key operations SCAC needs, and in-memory keys for tests,
//! published vectors and the reference soft card.
//!
//! Protocol code reaches private keys only through `ledgermq-keystore`'s
//! handle traits [`Ed25519Signer`] and [`RsaKey`], so a key may live in a
//! file, a PKCS#11 token or a smart card. The compatibility suite also uses
//! [`RsaKey::sign_raw_pkcs1v15`], because the paper's applet "encrypts
//! with the private key".

use std::fmt;

use ed25519_dalek::Signer as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

pub use ledgermq_keystore::{Ed25519Signer, KeyStoreError, RsaKey};

/// Why a private-key operation failed, as SCAC errors carry it (the key
/// store's message; `Clone` and comparable, unlike the store's error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {detail}")]
pub struct KeyError {
    pub operation: &'static str,
    pub detail: String,
}

impl From<KeyStoreError> for KeyError {
    fn from(e: KeyStoreError) -> Self {
        KeyError {
            operation: "private-key operation",
            detail: e.to_string(),
        }
    }
}

/// Results of private-key operations (the key store's).
pub type Result<T, E = KeyStoreError> = std::result::Result<T, E>;

/// An Ed25519 key held in process memory (zeroised on drop).
pub struct InMemoryEd25519 {
    key: ed25519_dalek::SigningKey,
}

impl InMemoryEd25519 {
    /// The key whose RFC 8032 secret seed is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        InMemoryEd25519 {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, seed.as_mut());
        Self::from_seed(&seed)
    }
}

impl fmt::Debug for InMemoryEd25519 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let public = self.key.verifying_key().to_bytes();
        write!(f, "InMemoryEd25519(public {}…)", hex::encode(&public[..8]))
    }
}

impl Ed25519Signer for InMemoryEd25519 {
    fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn sign(&self, msg: &[u8]) -> Result<[u8; 64]> {
        Ok(self.key.sign(msg).to_bytes())
    }
}

/// An RSA-2048 key held in process memory.
///
/// Built on the `rsa` crate, whose PKCS#1 v1.5 decryption is not
/// constant-time (RUSTSEC-2023-0071): fine for tests and the reference
/// client, not for a broker exposed to the network.
pub struct InMemoryRsa {
    key: RsaPrivateKey,
}

impl InMemoryRsa {
    /// The key with primes `p` and `q` (big-endian) and e = 65537.
    pub fn from_primes(p: &[u8], q: &[u8]) -> Result<Self> {
        let key = RsaPrivateKey::from_p_q(
            BigUint::from_bytes_be(p),
            BigUint::from_bytes_be(q),
            BigUint::from(65_537u32),
        )
        .map_err(|e| crypto_failed("RSA key construction", e))?;
        if key.size() != 256 {
            return Err(KeyStoreError::Crypto {
                operation: "RSA key construction",
                detail: format!("{} bits, only RSA-2048 is supported", key.size() * 8),
            });
        }
        Ok(InMemoryRsa { key })
    }

    /// A fresh RSA-2048 key (slow in unoptimised builds).
    pub fn generate() -> Result<Self> {
        let key = RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
            .map_err(|e| crypto_failed("RSA key generation", e))?;
        Ok(InMemoryRsa { key })
    }
}

fn crypto_failed(operation: &'static str, e: impl fmt::Display) -> KeyStoreError {
    KeyStoreError::Crypto {
        operation,
        detail: e.to_string(),
    }
}

impl fmt::Debug for InMemoryRsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.key.n().to_bytes_be();
        write!(f, "InMemoryRsa(modulus {}…)", hex::encode(&n[..8]))
    }
}

impl RsaKey for InMemoryRsa {
    fn modulus(&self) -> Vec<u8> {
        self.key.n().to_bytes_be()
    }

    fn public_exponent(&self) -> Vec<u8> {
        self.key.e().to_bytes_be()
    }

    fn public_key_der(&self) -> Vec<u8> {
        use rsa::pkcs8::EncodePublicKey as _;
        self.key
            .to_public_key()
            .to_public_key_der()
            .map(|der| der.into_vec())
            .unwrap_or_default()
    }

    fn sign_pkcs1v15_sha256(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let digest = Sha256::digest(msg);
        self.key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .map_err(|e| crypto_failed("RSA signature", e))
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.key
            .decrypt(Pkcs1v15Encrypt, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| KeyStoreError::DecryptionFailed)
    }

    fn sign_raw_pkcs1v15(&self, msg: &[u8]) -> Result<Vec<u8>> {
        self.key
            .sign(Pkcs1v15Sign::new_unprefixed(), msg)
            .map_err(|e| crypto_failed("RSA raw signature", e))
    }
}
