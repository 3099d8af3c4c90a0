//! Client of the Registry contract: devices, topics, rights, OTP envelopes,
//! blacklist.

use std::sync::Arc;

use alloy_primitives::{Address, Bytes, B256, U256};

use super::bindings::Registry as R;
use super::{to_u64, ContractHandle};
use crate::{Ledger, LedgerResult, Signer, TxReceipt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    None,
    Active,
    Revoked,
}

impl DeviceStatus {
    pub(crate) fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Active,
            2 => Self::Revoked,
            _ => Self::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub id: String,
    pub org: String,
    pub signing_key: B256,
    pub agreement_key: B256,
    pub registered_at: u64,
    pub status: DeviceStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub topic: String,
    pub org: String,
    pub sensitive: bool,
    pub publish_open: bool,
    pub subscribe_open: bool,
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RightInfo {
    pub topic: String,
    pub publish: bool,
    pub subscribe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlacklistInfo {
    pub until: u64,
    pub reason: u8,
    pub by: Address,
    pub since: u64,
    pub active: bool,
    /// Digest of the reporter's evidence record (zero: none given).
    pub evidence: B256,
}

/// Typed access to a deployed Registry contract.
#[derive(Clone)]
pub struct RegistryClient {
    c: ContractHandle,
}

impl RegistryClient {
    pub fn new(ledger: Arc<dyn Ledger>, address: Address) -> Self {
        Self {
            c: ContractHandle { ledger, address },
        }
    }

    pub fn address(&self) -> Address {
        self.c.address
    }

    // ---------------------------------------------------------- transactions

    pub async fn register_device(
        &self,
        admin: &dyn Signer,
        org_id: &str,
        device_id: &str,
        signing_key: B256,
        agreement_key: B256,
    ) -> LedgerResult<TxReceipt> {
        let call = R::registerDeviceCall {
            orgId: org_id.into(),
            deviceId: device_id.into(),
            signingKey: signing_key,
            agreementKey: agreement_key,
        };
        self.c.send(admin, call).await
    }

    pub async fn update_device_keys(
        &self,
        admin: &dyn Signer,
        device_id: &str,
        signing_key: B256,
        agreement_key: B256,
    ) -> LedgerResult<TxReceipt> {
        let call = R::updateDeviceKeysCall {
            deviceId: device_id.into(),
            signingKey: signing_key,
            agreementKey: agreement_key,
        };
        self.c.send(admin, call).await
    }

    pub async fn revoke_device(
        &self,
        admin: &dyn Signer,
        device_id: &str,
    ) -> LedgerResult<TxReceipt> {
        self.c
            .send(
                admin,
                R::revokeDeviceCall {
                    deviceId: device_id.into(),
                },
            )
            .await
    }

    pub async fn create_topic(
        &self,
        admin: &dyn Signer,
        org_id: &str,
        topic: &str,
        sensitive: bool,
        publish_open: bool,
        subscribe_open: bool,
    ) -> LedgerResult<TxReceipt> {
        let call = R::createTopicCall {
            orgId: org_id.into(),
            topic: topic.into(),
            sensitive,
            publishOpen: publish_open,
            subscribeOpen: subscribe_open,
        };
        self.c.send(admin, call).await
    }

    pub async fn set_topic_flags(
        &self,
        admin: &dyn Signer,
        topic: &str,
        sensitive: bool,
        publish_open: bool,
        subscribe_open: bool,
    ) -> LedgerResult<TxReceipt> {
        let call = R::setTopicFlagsCall {
            topic: topic.into(),
            sensitive,
            publishOpen: publish_open,
            subscribeOpen: subscribe_open,
        };
        self.c.send(admin, call).await
    }

    pub async fn grant_right(
        &self,
        admin: &dyn Signer,
        device_id: &str,
        topic: &str,
        publish: bool,
        subscribe: bool,
    ) -> LedgerResult<TxReceipt> {
        let call = R::grantRightCall {
            deviceId: device_id.into(),
            topic: topic.into(),
            canPublish: publish,
            canSubscribe: subscribe,
        };
        self.c.send(admin, call).await
    }

    pub async fn revoke_right(
        &self,
        admin: &dyn Signer,
        device_id: &str,
        topic: &str,
    ) -> LedgerResult<TxReceipt> {
        let call = R::revokeRightCall {
            deviceId: device_id.into(),
            topic: topic.into(),
        };
        self.c.send(admin, call).await
    }

    pub async fn set_otp_envelope(
        &self,
        admin: &dyn Signer,
        device_id: &str,
        broker: Address,
        envelope: &[u8],
    ) -> LedgerResult<TxReceipt> {
        let call = R::setOtpEnvelopeCall {
            deviceId: device_id.into(),
            brokerAccount: broker,
            envelope: Bytes::copy_from_slice(envelope),
        };
        self.c.send(admin, call).await
    }

    pub async fn clear_otp_envelope(
        &self,
        admin: &dyn Signer,
        device_id: &str,
        broker: Address,
    ) -> LedgerResult<TxReceipt> {
        let call = R::clearOtpEnvelopeCall {
            deviceId: device_id.into(),
            brokerAccount: broker,
        };
        self.c.send(admin, call).await
    }

    /// Bans `device_id` until `until` (unix seconds; `u64::MAX` =
    /// indefinitely). `evidence` is the digest of the evidence record; a
    /// broker node must give one (non-zero), an admin may pass zero.
    pub async fn blacklist_device(
        &self,
        caller: &dyn Signer,
        device_id: &str,
        until: u64,
        reason: u8,
        evidence: B256,
    ) -> LedgerResult<TxReceipt> {
        let call = R::blacklistDeviceCall {
            deviceId: device_id.into(),
            until,
            reason,
            evidence,
        };
        self.c.send(caller, call).await
    }

    pub async fn lift_blacklist(
        &self,
        admin: &dyn Signer,
        device_id: &str,
    ) -> LedgerResult<TxReceipt> {
        self.c
            .send(
                admin,
                R::liftBlacklistCall {
                    deviceId: device_id.into(),
                },
            )
            .await
    }

    // ----------------------------------------------------------------- views

    pub async fn consortium(&self) -> LedgerResult<Address> {
        self.c.view(R::consortiumCall {}).await
    }

    pub async fn device_count(&self) -> LedgerResult<u64> {
        to_u64(self.c.view(R::deviceCountCall {}).await?, "deviceCount")
    }

    pub async fn device_id_at(&self, index: u64) -> LedgerResult<String> {
        self.c
            .view(R::deviceIdAtCall {
                index: U256::from(index),
            })
            .await
    }

    pub async fn get_device(&self, device_id: &str) -> LedgerResult<DeviceInfo> {
        let r = self
            .c
            .view(R::getDeviceCall {
                deviceId: device_id.into(),
            })
            .await?;
        Ok(DeviceInfo {
            id: device_id.to_string(),
            org: r.org,
            signing_key: r.signingKey,
            agreement_key: r.agreementKey,
            registered_at: r.registeredAt,
            status: DeviceStatus::from_code(r.status),
        })
    }

    pub async fn topic_count(&self) -> LedgerResult<u64> {
        to_u64(self.c.view(R::topicCountCall {}).await?, "topicCount")
    }

    pub async fn topic_at(&self, index: u64) -> LedgerResult<String> {
        self.c
            .view(R::topicAtCall {
                index: U256::from(index),
            })
            .await
    }

    pub async fn is_topic(&self, topic: &str) -> LedgerResult<bool> {
        self.c
            .view(R::isTopicCall {
                topic: topic.into(),
            })
            .await
    }

    pub async fn get_topic(&self, topic: &str) -> LedgerResult<TopicInfo> {
        let r = self
            .c
            .view(R::getTopicCall {
                topic: topic.into(),
            })
            .await?;
        Ok(TopicInfo {
            topic: topic.to_string(),
            org: r.org,
            sensitive: r.sensitive,
            publish_open: r.publishOpen,
            subscribe_open: r.subscribeOpen,
            created_at: r.createdAt,
        })
    }

    pub async fn right_count(&self, device_id: &str) -> LedgerResult<u64> {
        let n = self
            .c
            .view(R::rightCountCall {
                deviceId: device_id.into(),
            })
            .await?;
        to_u64(n, "rightCount")
    }

    pub async fn right_at(&self, device_id: &str, index: u64) -> LedgerResult<RightInfo> {
        let call = R::rightAtCall {
            deviceId: device_id.into(),
            index: U256::from(index),
        };
        let r = self.c.view(call).await?;
        Ok(RightInfo {
            topic: r.topic,
            publish: r.canPublish,
            subscribe: r.canSubscribe,
        })
    }

    /// The right of `device_id` on exactly `topic` (both false when none).
    pub async fn get_right(&self, device_id: &str, topic: &str) -> LedgerResult<(bool, bool)> {
        let r = self
            .c
            .view(R::getRightCall {
                deviceId: device_id.into(),
                topic: topic.into(),
            })
            .await?;
        Ok((r.canPublish, r.canSubscribe))
    }

    pub async fn otp_envelope_brokers(&self, device_id: &str) -> LedgerResult<Vec<Address>> {
        self.c
            .view(R::otpEnvelopeBrokersCall {
                deviceId: device_id.into(),
            })
            .await
    }

    pub async fn otp_envelope(&self, device_id: &str, broker: Address) -> LedgerResult<Bytes> {
        let call = R::otpEnvelopeCall {
            deviceId: device_id.into(),
            brokerAccount: broker,
        };
        self.c.view(call).await
    }

    pub async fn get_blacklist(&self, device_id: &str) -> LedgerResult<BlacklistInfo> {
        let r = self
            .c
            .view(R::getBlacklistCall {
                deviceId: device_id.into(),
            })
            .await?;
        Ok(BlacklistInfo {
            until: r.until,
            reason: r.reason,
            by: r.by,
            since: r.since,
            active: r.active,
            evidence: r.evidence,
        })
    }

    pub async fn is_blacklisted(&self, device_id: &str) -> LedgerResult<bool> {
        self.c
            .view(R::isBlacklistedCall {
                deviceId: device_id.into(),
            })
            .await
    }

    // ---------------------------------------------------------- list helpers

    /// Every device ever registered (revoked ones included), oldest first.
    pub async fn list_devices(&self) -> LedgerResult<Vec<DeviceInfo>> {
        let mut out = Vec::new();
        for i in 0..self.device_count().await? {
            let id = self.device_id_at(i).await?;
            out.push(self.get_device(&id).await?);
        }
        Ok(out)
    }

    /// Every topic, in creation order.
    pub async fn list_topics(&self) -> LedgerResult<Vec<TopicInfo>> {
        let mut out = Vec::new();
        for i in 0..self.topic_count().await? {
            let topic = self.topic_at(i).await?;
            out.push(self.get_topic(&topic).await?);
        }
        Ok(out)
    }

    /// Every right `device_id` holds.
    pub async fn list_rights(&self, device_id: &str) -> LedgerResult<Vec<RightInfo>> {
        let mut out = Vec::new();
        for i in 0..self.right_count(device_id).await? {
            out.push(self.right_at(device_id, i).await?);
        }
        Ok(out)
    }
}
