//! A device's SCAC identity as provisioned by `ledgermq admin`: its
//! Ed25519 signing key and the broker nodes' public keys, both in the
//! provisioning bundle.

use std::path::Path;
use std::sync::Arc;

use ledgermq_keystore::software::SoftwareEd25519;
use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_security::scac::{LocalKey, PeerKey};
use zeroize::Zeroizing;

use crate::ClientError;

/// A broker node a bundle lists, as SCAC needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerNode {
    /// The node's ledger account.
    pub account: [u8; 20],
    pub org: String,
    /// Its Ed25519 public key: what its SCAC step 2 must verify under.
    pub signing_key: [u8; 32],
}

impl BrokerNode {
    /// `0x` and 40 lower-case hex digits.
    pub fn account_hex(&self) -> String {
        format!("0x{}", hex::encode(self.account))
    }

    /// The key to pass as [`crate::Auth::Scac`]'s `broker_key`.
    pub fn peer_key(&self) -> PeerKey {
        PeerKey::Ed25519(self.signing_key)
    }
}

/// What a bundle holds for the default SCAC suite. `Debug` shows public
/// keys only.
#[derive(Debug, Clone)]
pub struct ScacCredentials {
    /// Also the SCAC UID and the MQTT Client ID.
    pub device_id: String,
    pub org: String,
    /// The device's Ed25519 signing key, held in memory. Its public key is
    /// the one registered on the ledger for the device.
    pub device_key: LocalKey,
    pub brokers: Vec<BrokerNode>,
}

impl ScacCredentials {
    /// Reads a provisioning bundle and checks that its signing secret
    /// matches the public key it was registered with.
    pub fn from_bundle(path: &Path) -> Result<Self, ClientError> {
        let bundle = ProvisioningBundle::load(path)
            .map_err(|e| ClientError::Credentials(format!("cannot load the bundle: {e}")))?;
        let bad = |what: &str| {
            ClientError::Credentials(format!("{}: bad signing secret: {what}", path.display()))
        };
        let secret =
            Zeroizing::new(hex::decode(&bundle.signing_secret).map_err(|_| bad("not hex"))?);
        let seed: &[u8; 32] = secret
            .as_slice()
            .try_into()
            .map_err(|_| bad("not 32 bytes"))?;
        let device_key = LocalKey::Ed25519(Arc::new(SoftwareEd25519::from_seed(seed)));
        if device_key.public() != PeerKey::Ed25519(bundle.signing_public.0) {
            return Err(bad("it does not match signing_public"));
        }
        let brokers = bundle
            .brokers
            .iter()
            .map(|b| BrokerNode {
                account: b.account.0 .0,
                org: b.org.clone(),
                signing_key: b.signing_key.0,
            })
            .collect();
        Ok(Self {
            device_id: bundle.device_id.clone(),
            org: bundle.org.clone(),
            device_key,
            brokers,
        })
    }

    /// The broker node to authenticate: the one with `account` if given;
    /// otherwise the only one listed, or else the only one of the device's
    /// organisation. Anything else is ambiguous, and an error.
    pub fn broker(&self, account: Option<&str>) -> Result<&BrokerNode, ClientError> {
        if let Some(account) = account {
            let wanted = parse_account(account)?;
            return self
                .brokers
                .iter()
                .find(|b| b.account == wanted)
                .ok_or_else(|| {
                    ClientError::Credentials(format!(
                        "the bundle lists no broker node {account} (it lists {})",
                        list(&self.brokers)
                    ))
                });
        }
        if let [only] = self.brokers.as_slice() {
            return Ok(only);
        }
        if self.brokers.is_empty() {
            return Err(ClientError::Credentials(
                "the bundle lists no broker node".into(),
            ));
        }
        let own: Vec<&BrokerNode> = self.brokers.iter().filter(|b| b.org == self.org).collect();
        match own.as_slice() {
            [only] => Ok(only),
            _ => Err(ClientError::Credentials(format!(
                "the bundle lists {} broker nodes, {} of them of organisation '{}': \
                 name the one to authenticate ({})",
                self.brokers.len(),
                own.len(),
                self.org,
                list(&self.brokers)
            ))),
        }
    }
}

fn list(brokers: &[BrokerNode]) -> String {
    let names: Vec<String> = brokers
        .iter()
        .map(|b| format!("{} of '{}'", b.account_hex(), b.org))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

pub(crate) fn parse_account(text: &str) -> Result<[u8; 20], ClientError> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    hex::decode(digits)
        .ok()
        .and_then(|bytes| <[u8; 20]>::try_from(bytes).ok())
        .ok_or_else(|| {
            ClientError::Credentials(format!(
                "{text:?} is not an account address (0x and 40 hex digits)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use ledgermq_keystore::Ed25519Signer as _;

    use super::*;

    /// A provisioning bundle as `admin device register` writes it, with
    /// the Ed25519 seed `seed` and broker nodes `(account byte, org, key)`.
    fn bundle_json(seed: u8, public: [u8; 32], brokers: &[(u8, &str, [u8; 32])]) -> String {
        let hex32 = |b: [u8; 32]| format!("0x{}", hex::encode(b));
        let brokers: Vec<String> = brokers
            .iter()
            .map(|(account, org, key)| {
                format!(
                    r#"{{"account":"0x{}","org":"{org}","signing_key":"{}","agreement_key":"{}"}}"#,
                    hex::encode([*account; 20]),
                    hex32(*key),
                    hex32([9; 32])
                )
            })
            .collect();
        let zero = format!("0x{}", "00".repeat(20));
        format!(
            r#"{{"version":1,"device_id":"sensor-42","org":"supplier",
            "signing_secret":"{}","signing_public":"{}",
            "agreement_secret":"{}","agreement_public":"{}","otp_key":"{}",
            "brokers":[{}],
            "contracts":{{"chain_id":1,"consortium":"{zero}","registry":"{zero}","audit":"{zero}","deployed_at_block":0}}}}"#,
            hex::encode([seed; 32]),
            hex32(public),
            hex::encode([3; 32]),
            hex32([4; 32]),
            hex::encode([5; 32]),
            brokers.join(",")
        )
    }

    #[test]
    fn a_bundle_gives_the_signing_key_and_the_broker_nodes() {
        let public = SoftwareEd25519::from_seed(&[0x11; 32]).public();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sensor-42.json");
        let json = bundle_json(0x11, public, &[(1, "carrier", [0x22; 32])]);
        std::fs::write(&path, json).unwrap();
        let creds = ScacCredentials::from_bundle(&path).unwrap();
        assert_eq!(creds.device_id, "sensor-42");
        assert_eq!(creds.device_key.public(), PeerKey::Ed25519(public));
        let broker = creds.broker(None).unwrap();
        assert_eq!(broker.peer_key(), PeerKey::Ed25519([0x22; 32]));
        assert_eq!(broker.account_hex(), format!("0x{}", "01".repeat(20)));
        // A secret that does not match the registered public key is refused.
        std::fs::write(&path, bundle_json(0x12, public, &[])).unwrap();
        let err = ScacCredentials::from_bundle(&path).unwrap_err().to_string();
        assert!(err.contains("does not match signing_public"), "{err}");
    }

    fn node(byte: u8, org: &str) -> BrokerNode {
        BrokerNode {
            account: [byte; 20],
            org: org.into(),
            signing_key: [byte; 32],
        }
    }

    fn credentials(brokers: Vec<BrokerNode>) -> ScacCredentials {
        ScacCredentials {
            device_id: "sensor-42".into(),
            org: "supplier".into(),
            device_key: LocalKey::Ed25519(Arc::new(SoftwareEd25519::from_seed(&[1; 32]))),
            brokers,
        }
    }

    #[test]
    fn the_only_broker_node_is_the_default() {
        let creds = credentials(vec![node(1, "carrier")]);
        assert_eq!(creds.broker(None).unwrap().account, [1; 20]);
    }

    #[test]
    fn among_several_nodes_the_device_organisation_decides() {
        let creds = credentials(vec![node(1, "carrier"), node(2, "supplier")]);
        assert_eq!(creds.broker(None).unwrap().org, "supplier");
    }

    #[test]
    fn an_ambiguous_choice_is_an_error_listing_the_accounts() {
        let creds = credentials(vec![node(1, "carrier"), node(2, "customer")]);
        let err = creds.broker(None).unwrap_err().to_string();
        assert!(
            err.contains("0 of them of organisation 'supplier'"),
            "{err}"
        );
        assert!(err.contains(&format!("0x{}", "01".repeat(20))), "{err}");
        let two_own = credentials(vec![node(1, "supplier"), node(2, "supplier")]);
        assert!(two_own.broker(None).is_err());
    }

    #[test]
    fn an_account_picks_its_node_in_any_case() {
        let creds = credentials(vec![node(0xab, "carrier"), node(2, "supplier")]);
        let account = format!("0X{}", "AB".repeat(20));
        assert_eq!(creds.broker(Some(&account)).unwrap().org, "carrier");
        let missing = creds.broker(Some(&format!("0x{}", "03".repeat(20))));
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("lists no broker node"));
        assert!(creds.broker(Some("0x1234")).is_err());
    }
}
