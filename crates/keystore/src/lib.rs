//! ledgermq key stores: where device and broker private keys live.
//!
//! Protocols (SCAC mutual authentication, payload envelopes) need a handful
//! of private-key operations — an Ed25519 signature, an X25519 agreement, an
//! RSA-2048 signature or decryption for the smart-card compatibility suite —
//! and must not care whether the key is a file on disk or an object inside a
//! token that will never hand it out. So a [`KeyStore`] opens and generates
//! *named* keys and returns handles that implement only those operations:
//! [`Ed25519Signer`], [`X25519Agreement`] and [`RsaKey`]. The traits are
//! object-safe and `Send + Sync`, so a protocol holds an
//! `Arc<dyn Ed25519Signer>` and never learns where the key is.
//!
//! Two stores:
//! - [`FileKeyStore`]: one PKCS#8 PEM file per key, mode 0600, written
//!   atomically; refuses key files that group or others can access.
//! - [`Pkcs11KeyStore`]: keys generated inside a PKCS#11 token (HSM, smart
//!   card, SoftHSM2) as sensitive, non-extractable token objects.
//!
//! A [`KeyRef`] names a key in either store in one string, for command-line
//! flags: `file:DIR#NAME` or `pkcs11:token=LABEL;pin-file=PATH;key=NAME`.
//!
//! This crate owns key storage and the primitive operations on stored keys.
//! It does not know about MQTT, the ledger or any protocol's transcript
//! layout; protocols adapt these traits to their own needs.
#![forbid(unsafe_code)]

mod error;
mod file;
mod key_ref;
mod pkcs11;
pub mod secret_file;
pub mod software;

use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

pub use error::KeyStoreError;
pub use file::FileKeyStore;
pub use key_ref::{KeyRef, PinSource, StoreRef};
pub use pkcs11::{find_softhsm_module, Pin, Pkcs11Config, Pkcs11KeyStore, PKCS11_MODULE_ENV};

/// Shorthand for results of this crate.
pub type Result<T, E = KeyStoreError> = std::result::Result<T, E>;

/// The kinds of key a store can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// Ed25519 signing key (pure EdDSA, RFC 8032).
    Ed25519,
    /// X25519 key-agreement key (RFC 7748).
    X25519,
    /// RSA-2048 key, public exponent 65537 (PKCS#1 v1.5 signatures and decryption).
    Rsa2048,
}

impl KeyKind {
    /// All kinds, in a stable order.
    pub const ALL: [KeyKind; 3] = [KeyKind::Ed25519, KeyKind::X25519, KeyKind::Rsa2048];
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Ed25519 => "Ed25519",
            KeyKind::X25519 => "X25519",
            KeyKind::Rsa2048 => "RSA-2048",
        })
    }
}

/// Parses `ed25519`, `x25519` or `rsa2048` (also `rsa-2048`), any case.
impl std::str::FromStr for KeyKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Ok(KeyKind::Ed25519),
            "x25519" => Ok(KeyKind::X25519),
            "rsa2048" | "rsa-2048" => Ok(KeyKind::Rsa2048),
            _ => Err(format!(
                "unknown key kind '{s}' (expected ed25519, x25519 or rsa2048)"
            )),
        }
    }
}

/// A key a store holds: its name and kind (what [`KeyStore::list`] returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: String,
    pub kind: KeyKind,
}

/// An Ed25519 private key, wherever it lives.
pub trait Ed25519Signer: Send + Sync + fmt::Debug {
    /// The 32-byte public key (RFC 8032 encoding).
    fn public(&self) -> [u8; 32];
    /// A pure-EdDSA (RFC 8032 Ed25519, no context, no pre-hash) signature of `msg`.
    fn sign(&self, msg: &[u8]) -> Result<[u8; 64]>;
}

/// An X25519 private key, wherever it lives.
pub trait X25519Agreement: Send + Sync + fmt::Debug {
    /// The 32-byte public key (RFC 7748 u-coordinate).
    fn public(&self) -> [u8; 32];
    /// The raw 32-byte X25519 shared secret with `peer_public` (no KDF
    /// applied: run it through HKDF before use). A low-order peer key, which
    /// would give the all-zero secret, is refused with
    /// [`KeyStoreError::NonContributory`].
    fn agree(&self, peer_public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>>;
}

/// An RSA private key (2048 bits, e = 65537), wherever it lives.
pub trait RsaKey: Send + Sync + fmt::Debug {
    /// The modulus n, big-endian, without leading zeroes (256 bytes for RSA-2048).
    fn modulus(&self) -> Vec<u8>;
    /// The public exponent e, big-endian, without leading zeroes (`[1, 0, 1]`).
    fn public_exponent(&self) -> Vec<u8>;
    /// The public key as a DER SubjectPublicKeyInfo (RFC 5280, rsaEncryption).
    fn public_key_der(&self) -> Vec<u8>;
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `msg` (the store hashes).
    fn sign_pkcs1v15_sha256(&self, msg: &[u8]) -> Result<Vec<u8>>;
    /// RSASSA-PKCS1-v1_5 signature of `msg` as given: no hashing and no
    /// DigestInfo, just the type-1 padding and the private-key operation
    /// (PKCS#11 `CKM_RSA_PKCS` sign; Java Card `ALG_RSA_PKCS` encryption
    /// with the private key). `msg` is at most 245 bytes for RSA-2048.
    fn sign_raw_pkcs1v15(&self, msg: &[u8]) -> Result<Vec<u8>>;
    /// RSAES-PKCS1-v1_5 decryption. Fails with
    /// [`KeyStoreError::DecryptionFailed`] on any padding error.
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

/// An opened key: one of the three handle traits.
#[derive(Debug, Clone)]
pub enum KeyHandle {
    Ed25519(Arc<dyn Ed25519Signer>),
    X25519(Arc<dyn X25519Agreement>),
    Rsa(Arc<dyn RsaKey>),
}

impl KeyHandle {
    pub fn kind(&self) -> KeyKind {
        match self {
            KeyHandle::Ed25519(_) => KeyKind::Ed25519,
            KeyHandle::X25519(_) => KeyKind::X25519,
            KeyHandle::Rsa(_) => KeyKind::Rsa2048,
        }
    }
}

/// Named private keys, generated and used in place.
///
/// Names are 1–64 characters from `[A-Za-z0-9._-]`, not starting with a dot
/// (they become file names and token labels).
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// Where the keys are, for messages: "directory /etc/ledgermq/keys",
    /// "token 'ledgermq'".
    fn describe(&self) -> String;

    /// Generates a new key named `name` of `kind` inside the store.
    /// Refuses with [`KeyStoreError::KeyExists`] if the name is taken.
    fn generate(&self, name: &str, kind: KeyKind) -> Result<KeyHandle>;

    /// Opens the key named `name`, whatever its kind.
    fn open(&self, name: &str) -> Result<KeyHandle>;

    /// Every key of a known kind in the store, sorted by name.
    fn list(&self) -> Result<Vec<KeyInfo>>;

    /// Opens `name` and checks that it is an Ed25519 key.
    fn open_ed25519(&self, name: &str) -> Result<Arc<dyn Ed25519Signer>> {
        match self.open(name)? {
            KeyHandle::Ed25519(key) => Ok(key),
            other => Err(wrong_kind(name, KeyKind::Ed25519, other.kind())),
        }
    }

    /// Opens `name` and checks that it is an X25519 key.
    fn open_x25519(&self, name: &str) -> Result<Arc<dyn X25519Agreement>> {
        match self.open(name)? {
            KeyHandle::X25519(key) => Ok(key),
            other => Err(wrong_kind(name, KeyKind::X25519, other.kind())),
        }
    }

    /// Opens `name` and checks that it is an RSA key.
    fn open_rsa(&self, name: &str) -> Result<Arc<dyn RsaKey>> {
        match self.open(name)? {
            KeyHandle::Rsa(key) => Ok(key),
            other => Err(wrong_kind(name, KeyKind::Rsa2048, other.kind())),
        }
    }
}

fn wrong_kind(name: &str, expected: KeyKind, actual: KeyKind) -> KeyStoreError {
    KeyStoreError::WrongKind {
        name: name.to_owned(),
        expected,
        actual,
    }
}

/// Checks a key name: 1–64 of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn validate_key_name(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || name.starts_with('.') || !name.chars().all(allowed) {
        return Err(KeyStoreError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// RSASSA-PKCS1-v1_5 needs 11 bytes of padding around the message.
pub(crate) fn check_raw_pkcs1_len(msg_len: usize, modulus_len: usize) -> Result<()> {
    let max = modulus_len.saturating_sub(11);
    if msg_len > max {
        return Err(KeyStoreError::Crypto {
            operation: "RSA raw PKCS#1 v1.5 signature",
            detail: format!("message is {msg_len} bytes; at most {max} fit this key"),
        });
    }
    Ok(())
}

/// A raw X25519 output of all zeroes means a low-order peer point.
pub(crate) fn check_contributory(secret: &[u8; 32]) -> Result<()> {
    // Constant-time enough: OR of all bytes, one comparison at the end.
    if secret.iter().fold(0u8, |acc, b| acc | b) == 0 {
        return Err(KeyStoreError::NonContributory);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_that_could_escape_a_directory_are_refused() {
        for bad in ["", ".hidden", "../x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(validate_key_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["device-1", "broker.node_2", "A", &"x".repeat(64)] {
            validate_key_name(good).unwrap();
        }
    }

    #[test]
    fn handle_traits_are_object_safe_and_thread_safe() {
        fn assert_send_sync<T: Send + Sync + ?Sized>() {}
        assert_send_sync::<dyn KeyStore>();
        assert_send_sync::<dyn Ed25519Signer>();
        assert_send_sync::<dyn X25519Agreement>();
        assert_send_sync::<dyn RsaKey>();
        assert_send_sync::<KeyHandle>();
        assert_send_sync::<FileKeyStore>();
        assert_send_sync::<Pkcs11KeyStore>();
    }

    #[test]
    fn key_kinds_parse_from_their_names() {
        for kind in KeyKind::ALL {
            assert_eq!(kind.to_string().parse::<KeyKind>(), Ok(kind));
        }
        assert_eq!("rsa2048".parse::<KeyKind>(), Ok(KeyKind::Rsa2048));
        assert!("p256"
            .parse::<KeyKind>()
            .unwrap_err()
            .contains("expected ed25519"));
    }

    #[test]
    fn wrong_kind_message_names_both_kinds() {
        let e = wrong_kind("device-1", KeyKind::Ed25519, KeyKind::Rsa2048);
        assert_eq!(
            e.to_string(),
            "key 'device-1' is an RSA-2048 key, not Ed25519"
        );
    }
}
