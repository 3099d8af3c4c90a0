//! Secret files: device provisioning bundles and broker-node key files,
//! always written by the one secret-file writer
//! (`ledgermq_keystore::secret_file`: mode 0600, an unpredictable temporary
//! file, fsync, no-clobber link), so a reader never sees a partial file and
//! a secret is never readable by others.

use std::fs;
use std::path::Path;

use ledgermq_keystore::secret_file;

use alloy_primitives::{hex, Address, B256};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::seal::{BrokerNodeKeys, DeviceSecrets};
use crate::contracts::{BrokerInfo, Deployment};
use crate::{LedgerError, LedgerResult};

/// A broker node as a device needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleBroker {
    pub account: Address,
    pub org: String,
    pub signing_key: B256,
    pub agreement_key: B256,
}

impl From<&BrokerInfo> for BundleBroker {
    fn from(b: &BrokerInfo) -> Self {
        Self {
            account: b.account,
            org: b.org.clone(),
            signing_key: b.signing_key,
            agreement_key: b.agreement_key,
        }
    }
}

/// Everything a device needs to join: its identity, its secrets, the broker
/// nodes and the contracts. Holds secrets: mode 0600, never logged.
#[derive(Clone, Serialize, Deserialize)]
pub struct ProvisioningBundle {
    pub version: u32,
    pub device_id: String,
    pub org: String,
    /// Ed25519 signing key seed, hex.
    pub signing_secret: String,
    pub signing_public: B256,
    /// X25519 secret, hex.
    pub agreement_secret: String,
    pub agreement_public: B256,
    /// 32-byte OTP key, hex.
    pub otp_key: String,
    pub brokers: Vec<BundleBroker>,
    pub contracts: Deployment,
}

impl std::fmt::Debug for ProvisioningBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisioningBundle")
            .field("device_id", &self.device_id)
            .field("org", &self.org)
            .finish_non_exhaustive()
    }
}

impl Drop for ProvisioningBundle {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.signing_secret.zeroize();
        self.agreement_secret.zeroize();
        self.otp_key.zeroize();
    }
}

impl ProvisioningBundle {
    pub fn new(
        device_id: &str,
        org: &str,
        secrets: &DeviceSecrets,
        brokers: Vec<BundleBroker>,
        contracts: Deployment,
    ) -> Self {
        Self {
            version: 1,
            device_id: device_id.to_string(),
            org: org.to_string(),
            signing_secret: hex::encode(secrets.signing_secret.as_slice()),
            signing_public: secrets.signing_public_b256(),
            agreement_secret: hex::encode(secrets.agreement_secret.as_slice()),
            agreement_public: secrets.agreement_public_b256(),
            otp_key: hex::encode(secrets.otp_key.as_slice()),
            brokers,
            contracts,
        }
    }

    pub fn load(path: &Path) -> LedgerResult<Self> {
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| io_err(path, e))?);
        serde_json::from_str(&text).map_err(|e| {
            LedgerError::Other(format!(
                "{}: not a provisioning bundle: {e}",
                path.display()
            ))
        })
    }

    /// The OTP key, checked to be 32 bytes.
    pub fn otp_key_bytes(&self) -> LedgerResult<Zeroizing<[u8; 32]>> {
        secret32(&self.otp_key, "OTP key")
    }

    /// The device's X25519 secret (opens its group-key wraps).
    pub fn agreement_secret_bytes(&self) -> LedgerResult<Zeroizing<[u8; 32]>> {
        secret32(&self.agreement_secret, "agreement secret")
    }

    pub fn to_json(&self) -> Zeroizing<String> {
        Zeroizing::new(serde_json::to_string_pretty(self).unwrap_or_default())
    }

    /// Writes the bundle to a new file `path` (0600); never replaces one.
    pub fn write_new(&self, path: &Path) -> LedgerResult<()> {
        write_new_secret(path, self.to_json().as_bytes())
    }

    /// Replaces the bundle at `path` atomically (0600).
    pub fn write_replace(&self, path: &Path) -> LedgerResult<()> {
        secret_file::write_replace(path, self.to_json().as_bytes())
            .map_err(|e| LedgerError::Storage(e.to_string()))
    }

    /// Gives the device a fresh random OTP key (the old one is zeroed); the
    /// signing and agreement keys stay.
    pub fn rotate_otp_key(&mut self) {
        use zeroize::Zeroize;
        let fresh = DeviceSecrets::generate();
        self.otp_key.zeroize();
        self.otp_key = hex::encode(fresh.otp_key.as_slice());
    }
}

/// A broker node's key file (`<name>.node.json`): the node's Ed25519 and
/// X25519 secrets. Its secp256k1 account lives in a separate key file.
#[derive(Clone, Serialize, Deserialize)]
pub struct BrokerNodeFile {
    pub account: Address,
    pub org: String,
    pub signing_secret: String,
    pub signing_public: B256,
    pub agreement_secret: String,
    pub agreement_public: B256,
}

impl Drop for BrokerNodeFile {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.signing_secret.zeroize();
        self.agreement_secret.zeroize();
    }
}

impl BrokerNodeFile {
    pub fn new(account: Address, org: &str, keys: &BrokerNodeKeys) -> Self {
        Self {
            account,
            org: org.to_string(),
            signing_secret: hex::encode(keys.signing_secret.as_slice()),
            signing_public: B256::from(keys.signing_public),
            agreement_secret: hex::encode(keys.agreement_secret.as_slice()),
            agreement_public: B256::from(keys.agreement_public),
        }
    }

    pub fn load(path: &Path) -> LedgerResult<Self> {
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| io_err(path, e))?);
        serde_json::from_str(&text).map_err(|e| {
            LedgerError::Other(format!(
                "{}: not a broker node key file: {e}",
                path.display()
            ))
        })
    }

    pub fn agreement_secret_bytes(&self) -> LedgerResult<Zeroizing<[u8; 32]>> {
        secret32(&self.agreement_secret, "agreement secret")
    }

    /// The node's Ed25519 signing key seed (SCAC's default suite).
    pub fn signing_secret_bytes(&self) -> LedgerResult<Zeroizing<[u8; 32]>> {
        secret32(&self.signing_secret, "signing secret")
    }

    pub fn to_json(&self) -> Zeroizing<String> {
        Zeroizing::new(serde_json::to_string_pretty(self).unwrap_or_default())
    }

    /// Writes the key file to a new file `path` (0600); never replaces one.
    pub fn write_new(&self, path: &Path) -> LedgerResult<()> {
        write_new_secret(path, self.to_json().as_bytes())
    }
}

fn secret32(text: &str, what: &str) -> LedgerResult<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(
        hex::decode(text).map_err(|_| LedgerError::Other(format!("{what} is not hex")))?,
    );
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| LedgerError::Other(format!("{what} must be 32 bytes")))?;
    Ok(Zeroizing::new(arr))
}

/// Writes a new secret file (mode 0600, atomically, through
/// `ledgermq_keystore::secret_file`); never replaces an existing file.
fn write_new_secret(path: &Path, contents: &[u8]) -> LedgerResult<()> {
    match secret_file::write_new(path, contents) {
        Ok(true) => Ok(()),
        Ok(false) => Err(LedgerError::Storage(format!(
            "{} already exists; not overwriting it",
            path.display()
        ))),
        Err(e) => Err(LedgerError::Storage(e.to_string())),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Storage(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_key_file_is_written_0600_once_and_leaves_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.node.json");
        let node = BrokerNodeFile::new(Address::ZERO, "org", &BrokerNodeKeys::generate());
        node.write_new(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = node.write_new(&path).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["broker.node.json"], "temporary files left behind");
        let loaded = BrokerNodeFile::load(&path).unwrap();
        assert_eq!(loaded.agreement_public, node.agreement_public);
    }
}
