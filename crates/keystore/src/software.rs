//! Keys held in process memory (RustCrypto implementations), and their
//! PKCS#8 encoding for the file store.
//!
//! These are what [`crate::FileKeyStore`] hands out, and they are public so
//! a protocol can make *ephemeral* keys (e.g. a per-handshake X25519 key)
//! that plug into the same traits as stored ones. Secrets are zeroised on
//! drop by the underlying crates.
//!
//! File format: unencrypted PKCS#8 (RFC 5208/5958) in PEM, label
//! `PRIVATE KEY`, the format `openssl genpkey` writes: Ed25519 and X25519 as
//! RFC 8410 (`CurvePrivateKey`), RSA as `rsaEncryption`.

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use ed25519_dalek::Signer as _;
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::der::{Decode as _, Encode as _};
use pkcs8::{AlgorithmIdentifierRef, LineEnding, ObjectIdentifier, PrivateKeyInfo, SecretDocument};
use rand_core::OsRng;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::{
    check_contributory, check_raw_pkcs1_len, Ed25519Signer, KeyHandle, KeyKind, KeyStoreError,
    Result, RsaKey, X25519Agreement,
};

const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const PEM_LABEL: &str = "PRIVATE KEY";
const RSA_BITS: usize = 2048;

/// An Ed25519 signing key in memory.
pub struct SoftwareEd25519 {
    key: ed25519_dalek::SigningKey,
}

impl SoftwareEd25519 {
    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Self {
        SoftwareEd25519 {
            key: ed25519_dalek::SigningKey::generate(&mut OsRng),
        }
    }

    /// The key whose RFC 8032 secret seed is `seed` (test vectors).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SoftwareEd25519 {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }
}

impl fmt::Debug for SoftwareEd25519 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SoftwareEd25519(public {})", hex::encode(self.public()))
    }
}

impl Ed25519Signer for SoftwareEd25519 {
    fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn sign(&self, msg: &[u8]) -> Result<[u8; 64]> {
        Ok(self.key.sign(msg).to_bytes())
    }
}

/// An X25519 key-agreement key in memory.
pub struct SoftwareX25519 {
    secret: x25519_dalek::StaticSecret,
    public: [u8; 32],
}

impl SoftwareX25519 {
    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Self {
        Self::from_secret(x25519_dalek::StaticSecret::random_from_rng(OsRng))
    }

    /// The key with this 32-byte scalar (clamped as RFC 7748 says).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        Self::from_secret(x25519_dalek::StaticSecret::from(*secret))
    }

    fn from_secret(secret: x25519_dalek::StaticSecret) -> Self {
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        SoftwareX25519 { secret, public }
    }
}

impl fmt::Debug for SoftwareX25519 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SoftwareX25519(public {})", hex::encode(self.public))
    }
}

impl X25519Agreement for SoftwareX25519 {
    fn public(&self) -> [u8; 32] {
        self.public
    }

    fn agree(&self, peer_public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(*peer_public));
        let out = Zeroizing::new(shared.to_bytes());
        check_contributory(&out)?;
        Ok(out)
    }
}

/// An RSA-2048 private key in memory.
///
/// Decryption uses the `rsa` 0.9 crate, whose PKCS#1 v1.5 decryption is not
/// constant-time (RUSTSEC-2023-0071, "Marvin"): do not expose it as a
/// timing oracle to the network; keep RSA keys that decrypt in a token.
pub struct SoftwareRsa {
    key: RsaPrivateKey,
    public_der: Vec<u8>,
}

impl SoftwareRsa {
    /// A fresh RSA-2048 key, e = 65537 (takes a moment).
    pub fn generate() -> Result<Self> {
        let key = RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(|e| KeyStoreError::Crypto {
            operation: "RSA key generation",
            detail: e.to_string(),
        })?;
        Self::from_key("(new)", key)
    }

    fn from_key(name: &str, key: RsaPrivateKey) -> Result<Self> {
        if key.size() * 8 != RSA_BITS {
            let bits = key.size() * 8;
            return Err(KeyStoreError::malformed(
                name,
                format!("RSA key has {bits} bits; only RSA-{RSA_BITS} is supported"),
            ));
        }
        key.validate()
            .map_err(|e| KeyStoreError::malformed(name, e))?;
        let public_der = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| KeyStoreError::malformed(name, e))?
            .into_vec();
        Ok(SoftwareRsa { key, public_der })
    }
}

impl fmt::Debug for SoftwareRsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.key.n().to_bytes_be();
        write!(f, "SoftwareRsa(modulus {}…)", hex::encode(&n[..8]))
    }
}

impl RsaKey for SoftwareRsa {
    fn modulus(&self) -> Vec<u8> {
        self.key.n().to_bytes_be()
    }

    fn public_exponent(&self) -> Vec<u8> {
        self.key.e().to_bytes_be()
    }

    fn public_key_der(&self) -> Vec<u8> {
        self.public_der.clone()
    }

    fn sign_pkcs1v15_sha256(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let digest = Sha256::digest(msg);
        self.key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .map_err(|e| KeyStoreError::Crypto {
                operation: "RSA signature",
                detail: e.to_string(),
            })
    }

    fn sign_raw_pkcs1v15(&self, msg: &[u8]) -> Result<Vec<u8>> {
        check_raw_pkcs1_len(msg.len(), self.key.size())?;
        self.key
            .sign(Pkcs1v15Sign::new_unprefixed(), msg)
            .map_err(|e| KeyStoreError::Crypto {
                operation: "RSA raw PKCS#1 v1.5 signature",
                detail: e.to_string(),
            })
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.key
            .decrypt(Pkcs1v15Encrypt, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| KeyStoreError::DecryptionFailed)
    }
}

/// A software key of any kind, as the file store keeps it.
pub(crate) enum SoftwareKey {
    Ed25519(SoftwareEd25519),
    X25519(SoftwareX25519),
    Rsa(SoftwareRsa),
}

impl SoftwareKey {
    pub(crate) fn generate(kind: KeyKind) -> Result<Self> {
        Ok(match kind {
            KeyKind::Ed25519 => SoftwareKey::Ed25519(SoftwareEd25519::generate()),
            KeyKind::X25519 => SoftwareKey::X25519(SoftwareX25519::generate()),
            KeyKind::Rsa2048 => SoftwareKey::Rsa(SoftwareRsa::generate()?),
        })
    }

    pub(crate) fn kind(&self) -> KeyKind {
        match self {
            SoftwareKey::Ed25519(_) => KeyKind::Ed25519,
            SoftwareKey::X25519(_) => KeyKind::X25519,
            SoftwareKey::Rsa(_) => KeyKind::Rsa2048,
        }
    }

    pub(crate) fn into_handle(self) -> KeyHandle {
        match self {
            SoftwareKey::Ed25519(k) => KeyHandle::Ed25519(std::sync::Arc::new(k)),
            SoftwareKey::X25519(k) => KeyHandle::X25519(std::sync::Arc::new(k)),
            SoftwareKey::Rsa(k) => KeyHandle::Rsa(std::sync::Arc::new(k)),
        }
    }

    /// PKCS#8 PEM (see the module docs for the exact format).
    pub(crate) fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        let encoding_failed = |e: &dyn fmt::Display| KeyStoreError::Crypto {
            operation: "PKCS#8 encoding",
            detail: e.to_string(),
        };
        let doc = match self {
            SoftwareKey::Ed25519(k) => k.key.to_pkcs8_der().map_err(|e| encoding_failed(&e))?,
            SoftwareKey::Rsa(k) => k.key.to_pkcs8_der().map_err(|e| encoding_failed(&e))?,
            SoftwareKey::X25519(k) => {
                let scalar = Zeroizing::new(k.secret.to_bytes());
                let curve_private_key = Zeroizing::new(
                    OctetStringRef::new(scalar.as_slice())
                        .and_then(|o| o.to_der())
                        .map_err(|e| encoding_failed(&e))?,
                );
                let algorithm = AlgorithmIdentifierRef {
                    oid: OID_X25519,
                    parameters: None,
                };
                let info = PrivateKeyInfo::new(algorithm, &curve_private_key);
                SecretDocument::encode_msg(&info).map_err(|e| encoding_failed(&e))?
            }
        };
        doc.to_pem(PEM_LABEL, LineEnding::LF)
            .map_err(|e| encoding_failed(&e))
    }

    /// Parses a PKCS#8 PEM key file; the algorithm identifier says the kind.
    pub(crate) fn from_pkcs8_pem(name: &str, pem: &str) -> Result<Self> {
        let (label, doc) =
            SecretDocument::from_pem(pem).map_err(|e| KeyStoreError::malformed(name, e))?;
        if label != PEM_LABEL {
            return Err(KeyStoreError::malformed(
                name,
                format!("PEM label is '{label}', expected '{PEM_LABEL}' (unencrypted PKCS#8)"),
            ));
        }
        let der = doc.as_bytes();
        let info = PrivateKeyInfo::try_from(der).map_err(|e| KeyStoreError::malformed(name, e))?;
        let malformed = |e: &dyn fmt::Display| KeyStoreError::malformed(name, e);
        match info.algorithm.oid {
            OID_ED25519 => ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(|key| SoftwareKey::Ed25519(SoftwareEd25519 { key }))
                .map_err(|e| malformed(&e)),
            OID_X25519 => {
                let octets =
                    OctetStringRef::from_der(info.private_key).map_err(|e| malformed(&e))?;
                let scalar: Zeroizing<[u8; 32]> = Zeroizing::new(
                    octets
                        .as_bytes()
                        .try_into()
                        .map_err(|_| malformed(&"X25519 private key is not 32 bytes"))?,
                );
                Ok(SoftwareKey::X25519(SoftwareX25519::from_bytes(&scalar)))
            }
            OID_RSA_ENCRYPTION => {
                let key = RsaPrivateKey::from_pkcs8_der(der).map_err(|e| malformed(&e))?;
                SoftwareRsa::from_key(name, key).map(SoftwareKey::Rsa)
            }
            other => Err(malformed(&format!(
                "unsupported key algorithm {other} (expected Ed25519, X25519 or RSA)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8410 section 10.3: the example Ed25519 private key, and the public
    /// key of section 10.1 that belongs to it.
    const RFC8410_ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
-----END PRIVATE KEY-----\n";
    const RFC8410_ED25519_PUBLIC: &str =
        "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1";

    #[test]
    fn rfc8410_ed25519_key_file_is_understood() {
        let key = SoftwareKey::from_pkcs8_pem("rfc", RFC8410_ED25519_PEM).unwrap();
        let SoftwareKey::Ed25519(key) = key else {
            panic!("not Ed25519")
        };
        assert_eq!(hex::encode(key.public()), RFC8410_ED25519_PUBLIC);
    }

    #[test]
    fn x25519_pkcs8_round_trips_and_matches_rfc8410_layout() {
        let key = SoftwareKey::X25519(SoftwareX25519::from_bytes(&[7u8; 32]));
        let pem = key.to_pkcs8_pem().unwrap();
        let (_, doc) = SecretDocument::from_pem(&pem).unwrap();
        // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.110 }, OCTET STRING { OCTET STRING (32) } }
        let prefix = hex::decode("302e020100300506032b656e04220420").unwrap();
        assert_eq!(&doc.as_bytes()[..16], prefix.as_slice());
        let back = SoftwareKey::from_pkcs8_pem("k", &pem).unwrap();
        let (SoftwareKey::X25519(a), SoftwareKey::X25519(b)) = (key, back) else {
            panic!("kind changed")
        };
        assert_eq!(a.public(), b.public());
    }

    #[test]
    fn rfc7748_x25519_vector() {
        // RFC 7748 section 6.1.
        let alice = hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
            .unwrap();
        let bob_public =
            hex::decode("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
                .unwrap();
        let alice = SoftwareX25519::from_bytes(&alice.try_into().unwrap());
        let shared = alice.agree(&bob_public.try_into().unwrap()).unwrap();
        assert_eq!(
            hex::encode(shared.as_slice()),
            "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        );
    }

    #[test]
    fn low_order_x25519_peer_is_refused() {
        let key = SoftwareX25519::generate();
        assert!(matches!(
            key.agree(&[0u8; 32]),
            Err(KeyStoreError::NonContributory)
        ));
    }

    const OPENSSL_RSA_PEM: &str = include_str!("testdata/openssl-rsa2048.pem");
    const OPENSSL_RSA_VECTORS: &str = include_str!("testdata/openssl-rsa2048-vectors.txt");

    fn openssl_vector(name: &str) -> Vec<u8> {
        let line = OPENSSL_RSA_VECTORS
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no vector {name}"));
        hex::decode(line).unwrap()
    }

    fn openssl_rsa() -> SoftwareRsa {
        match SoftwareKey::from_pkcs8_pem("openssl", OPENSSL_RSA_PEM).unwrap() {
            SoftwareKey::Rsa(key) => key,
            _ => panic!("not RSA"),
        }
    }

    #[test]
    fn rsa_signatures_match_openssl_byte_for_byte() {
        // PKCS#1 v1.5 signatures are deterministic, so OpenSSL's are the
        // expected output.
        let key = openssl_rsa();
        assert_eq!(
            key.sign_raw_pkcs1v15(b"ledgermq raw").unwrap(),
            openssl_vector("raw_pkcs1v15_signature")
        );
        assert_eq!(
            key.sign_pkcs1v15_sha256(b"ledgermq raw").unwrap(),
            openssl_vector("sha256_pkcs1v15_signature")
        );
    }

    #[test]
    fn rsa_decrypts_an_openssl_ciphertext() {
        let key = openssl_rsa();
        let plaintext = key
            .decrypt_pkcs1v15(&openssl_vector("pkcs1v15_ciphertext"))
            .unwrap();
        assert_eq!(plaintext.as_slice(), b"session key 0123");
        assert!(matches!(
            key.decrypt_pkcs1v15(&[0x5a; 256]),
            Err(KeyStoreError::DecryptionFailed)
        ));
    }

    #[test]
    fn raw_rsa_signature_refuses_messages_that_do_not_fit_the_padding() {
        let key = openssl_rsa();
        key.sign_raw_pkcs1v15(&[1; 245]).unwrap();
        let err = key.sign_raw_pkcs1v15(&[1; 246]).unwrap_err();
        assert!(err.to_string().contains("at most 245"), "{err}");
    }

    #[test]
    fn unsupported_algorithm_is_named() {
        // A P-256 PKCS#8 key (id-ecPublicKey), made with `openssl genpkey`.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPV7SqvverFNJbfo8\n\
1bsNnnOD98V159Qkd/NXdjnQM46hRANCAARQvMJgSk6de+njxaysbxHBAB+KUMih\n\
WXrzaCSWryxhNduZtGl+cRhpXHrqwwO/skWIwa/9T0KigUZUcboka6aU\n\
-----END PRIVATE KEY-----\n";
        let err = SoftwareKey::from_pkcs8_pem("p256", pem).err().unwrap();
        assert!(
            err.to_string()
                .contains("unsupported key algorithm 1.2.840.10045.2.1"),
            "{err}"
        );
    }
}
