//! One error type for every store, so callers can match on the meaning
//! ("PIN incorrect", "key not found") without knowing which store they hold.

use std::path::PathBuf;

use crate::KeyKind;

/// Why a key-store operation failed. The `Display` text is meant for an
/// operator: it names the key, the token or the file, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// No key of that name in the store (`store` is e.g. "token 'ledgermq'").
    #[error("key '{name}' not found in {store}")]
    KeyNotFound { name: String, store: String },

    /// `generate` refuses to replace an existing key.
    #[error("key '{name}' already exists in {store}")]
    KeyExists { name: String, store: String },

    /// The key exists but is of another kind than the caller asked for.
    #[error("key '{name}' is an {actual} key, not {expected}")]
    WrongKind {
        name: String,
        expected: KeyKind,
        actual: KeyKind,
    },

    /// Key names are file names and token labels: 1–64 of `[A-Za-z0-9._-]`,
    /// not starting with a dot.
    #[error("invalid key name '{name}': use 1-64 characters from A-Z a-z 0-9 . _ - (not starting with '.')")]
    InvalidName { name: String },

    /// A secret file (key or PIN) that group or others may read or write.
    #[error("{} has mode {mode:03o}: secret files must not be accessible by group or others (chmod 600)", path.display())]
    InsecurePermissions { path: PathBuf, mode: u32 },

    /// A key directory that group or others may write to: they could swap
    /// a key file for their own.
    #[error("key directory {} has mode {mode:03o}: it must not be writable by group or others (chmod 700)", path.display())]
    InsecureDirectory { path: PathBuf, mode: u32 },

    /// A key reference (`file:…` or `pkcs11:…`) that does not parse. The
    /// reason never repeats a PIN.
    #[error("invalid key reference: {0}")]
    InvalidKeyRef(String),

    /// A key file or token object that cannot be understood.
    #[error("key '{name}' is malformed: {reason}")]
    MalformedKey { name: String, reason: String },

    /// File-system failure, with the path it happened on.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The PIN could not be read from where the configuration says.
    #[error("PIN unavailable: {0}")]
    PinUnavailable(String),

    /// The PKCS#11 module (shared library) could not be loaded or initialised.
    #[error("PKCS#11 module {} could not be used: {reason}", path.display())]
    ModuleUnavailable { path: PathBuf, reason: String },

    /// No slot holds an initialised token with that label.
    #[error("token '{0}' not found")]
    TokenNotFound(String),

    #[error("PIN incorrect")]
    PinIncorrect,

    #[error(
        "PIN locked: the token refuses further log-ins until the security officer resets the PIN"
    )]
    PinLocked,

    /// The token lacks a mechanism we need (e.g. `CKM_EDDSA`).
    #[error("the token does not support {0}")]
    MechanismUnsupported(&'static str),

    /// X25519 with a low-order peer point: the shared secret would be all
    /// zeroes, so the peer could force a known key. Always refused.
    #[error("peer X25519 public key is of low order (all-zero shared secret)")]
    NonContributory,

    /// RSA decryption failed (bad padding, wrong key or wrong length). The
    /// reason is deliberately not more precise.
    #[error("RSA decryption failed")]
    DecryptionFailed,

    /// Any other PKCS#11 failure: the function and the CKR_ code.
    #[error("PKCS#11 {operation} failed: {detail}")]
    Pkcs11 {
        operation: &'static str,
        detail: String,
    },

    /// A software cryptography failure (should not happen with valid keys).
    #[error("{operation} failed: {detail}")]
    Crypto {
        operation: &'static str,
        detail: String,
    },
}

impl KeyStoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        KeyStoreError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(name: &str, reason: impl std::fmt::Display) -> Self {
        KeyStoreError::MalformedKey {
            name: name.to_owned(),
            reason: reason.to_string(),
        }
    }
}
