//! The administrator's workflow on top of the contract clients: device
//! provisioning with key generation and OTP envelopes (to the device's own
//! organisation's broker nodes only), resealing and key rotation, and declarative set-up of a whole consortium
//! ([`apply`]).
//!
//! Secrets (device keys, OTP keys, broker-node keys) only ever go to files
//! written with mode 0600; the ledger receives public keys and HPKE
//! envelopes.

pub mod apply;
mod bundle;
mod seal;

use std::path::Path;
use std::sync::Arc;

use alloy_primitives::Address;

use crate::contracts::{BrokerInfo, ConsortiumClient, Deployment, RegistryClient};
use crate::{Ledger, LedgerError, LedgerResult, Signer};

pub use bundle::{BrokerNodeFile, BundleBroker, ProvisioningBundle};
pub use seal::{agreement_public, open_otp_envelope, seal_otp_key, BrokerNodeKeys, DeviceSecrets};

/// A right to request for a device: `topic:pub`, `topic:sub` or `topic:pub,sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRight {
    pub topic: String,
    pub publish: bool,
    pub subscribe: bool,
}

impl std::str::FromStr for TopicRight {
    type Err = String;

    /// Parses `TOPIC:pub`, `TOPIC:sub` or `TOPIC:pub,sub` (the last `:` splits,
    /// so topics may contain colons).
    fn from_str(s: &str) -> Result<Self, String> {
        let (topic, modes) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected TOPIC:pub, TOPIC:sub or TOPIC:pub,sub"))?;
        let (mut publish, mut subscribe) = (false, false);
        for m in modes.split(',') {
            match m.trim() {
                "pub" | "publish" => publish = true,
                "sub" | "subscribe" => subscribe = true,
                other => {
                    return Err(format!(
                        "{s:?}: unknown right {other:?} (use pub and/or sub)"
                    ))
                }
            }
        }
        if topic.is_empty() {
            return Err(format!("{s:?}: empty topic"));
        }
        Ok(Self {
            topic: topic.to_string(),
            publish,
            subscribe,
        })
    }
}

/// What [`AdminClient::reseal`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResealReport {
    /// Envelopes stored (new own nodes, or every own node after rotation).
    pub sealed: usize,
    /// Envelopes deleted from nodes of other organisations: (node, its org).
    /// Their operators could open them: rotate the key.
    pub cleared_foreign: Vec<(Address, String)>,
    /// Envelopes deleted from nodes that are no longer registered.
    pub cleared_removed: usize,
    /// Whether the OTP key was replaced (the bundle file was rewritten).
    pub rotated: bool,
}

/// Administrative operations of one network.
#[derive(Clone)]
pub struct AdminClient {
    pub deployment: Deployment,
    pub consortium: ConsortiumClient,
    pub registry: RegistryClient,
}

impl AdminClient {
    pub fn new(ledger: Arc<dyn Ledger>, deployment: Deployment) -> Self {
        Self {
            deployment,
            consortium: ConsortiumClient::new(ledger.clone(), deployment.consortium),
            registry: RegistryClient::new(ledger, deployment.registry),
        }
    }

    /// Fails with "unknown organisation X" unless `org` exists.
    pub async fn require_org(&self, org: &str) -> LedgerResult<()> {
        if self.consortium.is_org(org).await? {
            Ok(())
        } else {
            Err(LedgerError::Other(format!("unknown organisation {org}")))
        }
    }

    /// Registers a broker node: its account and the public halves of `keys`.
    pub async fn add_broker_node(
        &self,
        admin: &dyn Signer,
        org: &str,
        account: Address,
        keys: &BrokerNodeKeys,
    ) -> LedgerResult<()> {
        self.require_org(org).await?;
        self.consortium
            .add_broker(
                admin,
                org,
                account,
                keys.signing_public.into(),
                keys.agreement_public.into(),
            )
            .await?;
        Ok(())
    }

    /// Provisions a device: generates its Ed25519, X25519 and OTP keys,
    /// writes the bundle to `bundle_out` (0600) *before* touching the ledger
    /// so keys are never lost, registers the public keys, grants `rights`
    /// and stores the OTP key sealed to every broker node of `org` (never to
    /// another organisation's: it could act as the device). On a failed
    /// registration the bundle file is removed again.
    pub async fn register_device(
        &self,
        admin: &dyn Signer,
        org: &str,
        device_id: &str,
        rights: &[TopicRight],
        bundle_out: &Path,
    ) -> LedgerResult<ProvisioningBundle> {
        self.require_org(org).await?;
        if bundle_out.exists() {
            return Err(LedgerError::Storage(format!(
                "{} already exists; not overwriting a provisioning bundle",
                bundle_out.display()
            )));
        }
        let brokers = self.consortium.list_brokers().await?;
        let secrets = DeviceSecrets::generate();
        let bundle = ProvisioningBundle::new(
            device_id,
            org,
            &secrets,
            brokers.iter().map(BundleBroker::from).collect(),
            self.deployment,
        );
        bundle.write_new(bundle_out)?;
        let registered = self
            .registry
            .register_device(
                admin,
                org,
                device_id,
                secrets.signing_public_b256(),
                secrets.agreement_public_b256(),
            )
            .await;
        if let Err(e) = registered {
            let _ = std::fs::remove_file(bundle_out);
            return Err(e);
        }
        for r in rights {
            self.registry
                .grant_right(admin, device_id, &r.topic, r.publish, r.subscribe)
                .await?;
        }
        // Only the device's own organisation's nodes get its symmetric key.
        let own: Vec<BrokerInfo> = brokers.into_iter().filter(|b| b.org == org).collect();
        self.seal_to(admin, device_id, &secrets.otp_key, &own)
            .await?;
        Ok(bundle)
    }

    /// Brings the OTP envelopes of the device of the bundle at `path` in
    /// line with the trust model: its key sealed to every broker node of its
    /// own organisation, and to no other. Envelopes held by nodes of other
    /// organisations (consortia provisioned before the registry refused
    /// them) or by nodes no longer registered are deleted from the ledger.
    ///
    /// A foreign node that held an envelope could open it: its operator
    /// knows the key and could act as the device until the key changes.
    /// With `rotate`, the device gets a fresh OTP key: the bundle file is
    /// rewritten first (so the key is never lost), then every own node's
    /// envelope is replaced. The device must be given the new bundle.
    pub async fn reseal(
        &self,
        admin: &dyn Signer,
        bundle_path: &Path,
        rotate: bool,
    ) -> LedgerResult<ResealReport> {
        let mut bundle = ProvisioningBundle::load(bundle_path)?;
        let device = self.registry.get_device(&bundle.device_id).await?;
        if device.org != bundle.org {
            return Err(LedgerError::Other(format!(
                "{}: the bundle says organisation {} but the registry says {}",
                bundle_path.display(),
                bundle.org,
                device.org
            )));
        }
        let have = self
            .registry
            .otp_envelope_brokers(&bundle.device_id)
            .await?;
        let brokers = self.consortium.list_brokers().await?;
        let mut report = ResealReport::default();
        for account in &have {
            let holder = brokers.iter().find(|b| b.account == *account);
            if holder.is_some_and(|b| b.org == bundle.org) {
                continue;
            }
            self.registry
                .clear_otp_envelope(admin, &bundle.device_id, *account)
                .await?;
            match holder {
                Some(b) => report.cleared_foreign.push((b.account, b.org.clone())),
                None => report.cleared_removed += 1,
            }
        }
        let own: Vec<BrokerInfo> = brokers
            .into_iter()
            .filter(|b| b.org == bundle.org)
            .collect();
        let targets: Vec<BrokerInfo> = if rotate {
            bundle.rotate_otp_key();
            bundle.write_replace(bundle_path)?;
            report.rotated = true;
            own
        } else {
            own.into_iter()
                .filter(|b| !have.contains(&b.account))
                .collect()
        };
        let otp = bundle.otp_key_bytes()?;
        self.seal_to(admin, &bundle.device_id, &otp, &targets)
            .await?;
        report.sealed = targets.len();
        Ok(report)
    }

    async fn seal_to(
        &self,
        admin: &dyn Signer,
        device_id: &str,
        otp: &[u8; 32],
        brokers: &[BrokerInfo],
    ) -> LedgerResult<()> {
        for b in brokers {
            let envelope = seal_otp_key(&b.agreement_key, device_id, otp)?;
            self.registry
                .set_otp_envelope(admin, device_id, b.account, &envelope)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::TopicRight;

    #[test]
    fn topic_rights_parse_from_the_cli_form() {
        let r: TopicRight = "a/b:pub,sub".parse().unwrap();
        assert!(r.publish && r.subscribe && r.topic == "a/b");
        let r: TopicRight = "urn:x/y:sub".parse().unwrap();
        assert_eq!(
            (r.topic.as_str(), r.publish, r.subscribe),
            ("urn:x/y", false, true)
        );
        assert!("a/b".parse::<TopicRight>().is_err());
        assert!("a/b:write".parse::<TopicRight>().is_err());
        assert!(":pub".parse::<TopicRight>().is_err());
    }
}
