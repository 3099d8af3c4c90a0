//! Local secp256k1 accounts whose keys live in files on this machine.
//!
//! A key file holds the 32-byte secret as hex and nothing else, so an
//! operator can move it with ordinary tools. It is created with mode 0600
//! (never over an existing key) and the secret is
//! never printed: `Debug` shows the address only.

use std::fs;
use std::path::Path;

use alloy_primitives::{hex, Address, B256};
use k256::ecdsa::SigningKey;
use ledgermq_keystore::secret_file;

use crate::ledger::{LedgerError, LedgerResult, Signer};

/// A secp256k1 key held by this process.
pub struct LocalAccount {
    key: SigningKey,
    address: Address,
}

impl std::fmt::Debug for LocalAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAccount")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl LocalAccount {
    /// A fresh random account that exists only in memory.
    pub fn random() -> Self {
        Self::from_key(SigningKey::random(&mut rand_core::OsRng))
    }

    /// An account from a 32-byte secret (tests, deterministic dev keys).
    pub fn from_secret(secret: &B256) -> LedgerResult<Self> {
        SigningKey::from_bytes(secret.as_slice().into())
            .map(Self::from_key)
            .map_err(|_| LedgerError::Other("invalid secp256k1 secret key".into()))
    }

    /// Creates a new random key at `path` (mode 0600, written atomically by
    /// `ledgermq_keystore::secret_file`); fails if the file exists.
    pub fn create(path: &Path) -> LedgerResult<Self> {
        let account = Self::random();
        let mut text = zeroize::Zeroizing::new(hex::encode(account.key.to_bytes()));
        text.push('\n');
        match secret_file::write_new(path, text.as_bytes()) {
            Ok(true) => Ok(account),
            Ok(false) => Err(LedgerError::Storage(format!(
                "{} already exists; not replacing a key file",
                path.display()
            ))),
            Err(e) => Err(LedgerError::Storage(e.to_string())),
        }
    }

    /// Loads a key file written by [`LocalAccount::create`].
    pub fn load(path: &Path) -> LedgerResult<Self> {
        let mut text = fs::read_to_string(path).map_err(|e| io_error(path, e))?;
        let parsed = parse_secret(text.trim());
        zeroize::Zeroize::zeroize(&mut text);
        let secret = parsed.ok_or_else(|| {
            LedgerError::Other(format!(
                "{}: not a key file (expected 64 hex digits)",
                path.display()
            ))
        })?;
        Self::from_secret(&secret)
    }

    fn from_key(key: SigningKey) -> Self {
        let address = Address::from_public_key(key.verifying_key());
        Self { key, address }
    }
}

impl Signer for LocalAccount {
    fn address(&self) -> Address {
        self.address
    }

    fn sign_hash(&self, hash: &B256) -> LedgerResult<[u8; 65]> {
        let (signature, recovery) = self
            .key
            .sign_prehash_recoverable(hash.as_slice())
            .map_err(|e| LedgerError::Other(format!("signing failed: {e}")))?;
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&signature.to_bytes());
        out[64] = recovery.is_y_odd() as u8;
        Ok(out)
    }
}

fn io_error(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Storage(format!("{}: {e}", path.display()))
}

fn parse_secret(text: &str) -> Option<B256> {
    let bytes = hex::decode(text).ok()?;
    (bytes.len() == 32).then(|| B256::from_slice(&bytes))
}
