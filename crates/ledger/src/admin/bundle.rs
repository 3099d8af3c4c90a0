//! Secret files: device provisioning bundles and broker-node key files,
//! always written with mode 0600 through a temporary file and a rename, so
//! a reader never sees a partial file and a secret is never world-readable.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

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

    pub fn to_json(&self) -> Zeroizing<String> {
        Zeroizing::new(serde_json::to_string_pretty(self).unwrap_or_default())
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

/// Writes `contents` to `path` with mode 0600 via a temporary file in the
/// same directory; refuses to replace an existing file unless `replace`.
pub fn write_secret_file(path: &Path, contents: &[u8], replace: bool) -> LedgerResult<()> {
    if !replace && path.exists() {
        return Err(LedgerError::Storage(format!(
            "{} already exists; not overwriting it",
            path.display()
        )));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("secret"),
        std::process::id()
    ));
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents).and_then(|_| f.sync_all()))
        .and_then(|_| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

fn io_err(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Storage(format!("{}: {e}", path.display()))
}
