//! A device's identity and OTP key, as provisioned by `ledgermq admin`.

use std::path::Path;

use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_security::OtpKey;

use crate::scac::bundle::parse_account;
use crate::ClientError;

/// Device id and OTP key, and the broker nodes the bundle lists (for the
/// audience of TOTP codes). `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct DeviceCredentials {
    pub device_id: String,
    /// The device's organisation.
    pub org: String,
    pub otp_key: OtpKey,
    /// The broker nodes of the bundle: (ledger account, organisation).
    pub brokers: Vec<([u8; 20], String)>,
}

impl DeviceCredentials {
    /// Reads a provisioning bundle (`ledgermq admin device register
    /// --bundle-out`). Only the device id, the OTP key and the broker
    /// nodes are kept; the bundle's other secrets are wiped when it is
    /// dropped here.
    pub fn from_bundle(path: &Path) -> Result<Self, ClientError> {
        let bundle = ProvisioningBundle::load(path)
            .map_err(|e| ClientError::Credentials(format!("cannot load the bundle: {e}")))?;
        let key = bundle.otp_key_bytes().map_err(|e| {
            ClientError::Credentials(format!("{}: bad OTP key: {e}", path.display()))
        })?;
        Ok(Self {
            device_id: bundle.device_id.clone(),
            org: bundle.org.clone(),
            otp_key: OtpKey::from_bytes(*key),
            brokers: bundle
                .brokers
                .iter()
                .map(|b| (b.account.0 .0, b.org.clone()))
                .collect(),
        })
    }

    /// The broker node a TOTP code is made for (its audience, a 20-byte
    /// ledger account): `account` if given (`0x` and 40 hex digits), else
    /// the bundle's only broker node of the device's own organisation — a
    /// code for one node is refused by every other, so anything else is
    /// ambiguous, and an error.
    pub fn totp_audience(&self, account: Option<&str>) -> Result<[u8; 20], ClientError> {
        if let Some(account) = account {
            let account = parse_account(account)?;
            if let Some((_, org)) = self
                .brokers
                .iter()
                .find(|(a, org)| *a == account && *org != self.org)
            {
                return Err(ClientError::Credentials(format!(
                    "broker node 0x{} belongs to organisation '{org}': the OTP key of a device of \
                     '{}' is sealed only to its own organisation's nodes, so OTP and TOTP work only \
                     there; at another organisation's node log in with --auth scac (signing key)",
                    hex::encode(account),
                    self.org
                )));
            }
            return Ok(account);
        }
        let own: Vec<&[u8; 20]> = self
            .brokers
            .iter()
            .filter(|(_, org)| *org == self.org)
            .map(|(a, _)| a)
            .collect();
        match own.as_slice() {
            [only] => Ok(**only),
            _ => Err(ClientError::Credentials(format!(
                "a TOTP code is for one broker node, and the bundle lists {} of organisation \
                 '{}' ({}): name the node with its ledger account",
                own.len(),
                self.org,
                if own.is_empty() {
                    "none".to_owned()
                } else {
                    own.iter()
                        .map(|a| format!("0x{}", hex::encode(a)))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(brokers: &[(u8, &str)]) -> DeviceCredentials {
        DeviceCredentials {
            device_id: "sensor-42".into(),
            org: "supplier".into(),
            otp_key: OtpKey::from_bytes([1; 32]),
            brokers: brokers
                .iter()
                .map(|(b, org)| ([*b; 20], org.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_audience_is_the_only_node_of_the_devices_organisation() {
        let c = credentials(&[(1, "carrier"), (2, "supplier")]);
        assert_eq!(c.totp_audience(None).unwrap(), [2; 20]);
        // A node the bundle does not list (added after provisioning) may be named.
        let given = format!("0x{}", "03".repeat(20));
        assert_eq!(c.totp_audience(Some(&given)).unwrap(), [3; 20]);
        assert!(c.totp_audience(Some("0x12")).is_err());
        // Another organisation's node never holds the OTP key: say to use SCAC.
        let foreign = format!("0x{}", "01".repeat(20));
        let err = c.totp_audience(Some(&foreign)).unwrap_err().to_string();
        assert!(
            err.contains("'carrier'") && err.contains("--auth scac"),
            "{err}"
        );
    }

    #[test]
    fn no_or_several_own_nodes_need_an_account() {
        for brokers in [
            &[(1, "carrier")][..],
            &[(1, "supplier"), (2, "supplier")][..],
        ] {
            let err = credentials(brokers).totp_audience(None).unwrap_err();
            assert!(err.to_string().contains("name the node"), "{err}");
        }
    }
}
