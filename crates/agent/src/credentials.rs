//! A device's identity and OTP key, as provisioned by `ledgermq admin`.

use std::path::Path;

use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_security::OtpKey;

use crate::ClientError;

/// Device id and OTP key. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct DeviceCredentials {
    pub device_id: String,
    pub otp_key: OtpKey,
}

impl DeviceCredentials {
    /// Reads a provisioning bundle (`ledgermq admin device register
    /// --bundle-out`). Only the device id and the OTP key are kept; the
    /// bundle's other secrets are wiped when it is dropped here.
    pub fn from_bundle(path: &Path) -> Result<Self, ClientError> {
        let bundle = ProvisioningBundle::load(path)
            .map_err(|e| ClientError::Credentials(format!("cannot load the bundle: {e}")))?;
        let key = bundle.otp_key_bytes().map_err(|e| {
            ClientError::Credentials(format!("{}: bad OTP key: {e}", path.display()))
        })?;
        Ok(Self {
            device_id: bundle.device_id.clone(),
            otp_key: OtpKey::from_bytes(*key),
        })
    }
}
