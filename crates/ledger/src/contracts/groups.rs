//! Client of the Groups contract: encryption groups, their policy and
//! members, each organisation's key service, key epochs and key exchanges.

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};

use super::bindings::Groups as G;
use super::{to_u64, ContractHandle};
use crate::{Ledger, LedgerError, LedgerResult, Signer, TxReceipt};

/// What a group requires of the payloads published on its topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protection {
    /// Plain payloads are accepted; an envelope is checked when present.
    Optional,
    /// Every payload must be an envelope (signed-only or sealed).
    Signed,
    /// Every payload must be a sealed envelope of the group.
    Sealed,
}

impl Protection {
    pub fn code(self) -> u8 {
        match self {
            Self::Optional => 0,
            Self::Signed => 1,
            Self::Sealed => 2,
        }
    }

    pub fn from_code(code: u8) -> LedgerResult<Self> {
        match code {
            0 => Ok(Self::Optional),
            1 => Ok(Self::Signed),
            2 => Ok(Self::Sealed),
            _ => Err(LedgerError::Other(format!(
                "unknown group protection {code}"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Optional => "optional",
            Self::Signed => "signed",
            Self::Sealed => "sealed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "optional" => Some(Self::Optional),
            "signed" => Some(Self::Signed),
            "sealed" => Some(Self::Sealed),
            _ => None,
        }
    }
}

/// Who verifies envelope signatures on a group's topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifyPolicy {
    /// The broker checks form, sender, sequence and epoch; subscribers
    /// verify signatures.
    Subscribers,
    /// The broker also verifies a sample of the signatures.
    Sample,
    /// The broker verifies every signature.
    Every,
}

impl VerifyPolicy {
    pub fn code(self) -> u8 {
        match self {
            Self::Subscribers => 0,
            Self::Sample => 1,
            Self::Every => 2,
        }
    }

    pub fn from_code(code: u8) -> LedgerResult<Self> {
        match code {
            0 => Ok(Self::Subscribers),
            1 => Ok(Self::Sample),
            2 => Ok(Self::Every),
            _ => Err(LedgerError::Other(format!("unknown verify policy {code}"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribers => "subscribers",
            Self::Sample => "sample",
            Self::Every => "every",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "subscribers" => Some(Self::Subscribers),
            "sample" => Some(Self::Sample),
            "every" => Some(Self::Every),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub org: String,
    pub filters: Vec<String>,
    pub protection: Protection,
    pub verify: VerifyPolicy,
    pub grace_seconds: u32,
    pub created_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupKeyEpochInfo {
    pub epoch: u64,
    pub commitment: B256,
    pub committed_at: u64,
    pub member_count: u32,
    pub recorded: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyServiceInfo {
    pub account: Address,
    pub signing_key: B256,
}

/// Typed access to a deployed Groups contract.
#[derive(Clone)]
pub struct GroupsClient {
    c: ContractHandle,
}

impl GroupsClient {
    /// A client of the Groups contract at `address`; a zero address (a
    /// deployment from before groups existed) is refused with a clear error.
    pub fn new(ledger: Arc<dyn Ledger>, address: Address) -> LedgerResult<Self> {
        if address.is_zero() {
            return Err(LedgerError::Other(
                "this deployment has no Groups contract (it predates end-to-end groups): \
                 deploy one bound to its Consortium and Registry and add its address as \
                 `groups = \"0x…\"` to the deployment file"
                    .into(),
            ));
        }
        Ok(Self {
            c: ContractHandle { ledger, address },
        })
    }

    pub fn address(&self) -> Address {
        self.c.address
    }

    // ---------------------------------------------------------- transactions

    #[allow(clippy::too_many_arguments)]
    pub async fn create_group(
        &self,
        admin: &dyn Signer,
        org_id: &str,
        name: &str,
        filters: &[String],
        protection: Protection,
        verify: VerifyPolicy,
        grace_seconds: u32,
    ) -> LedgerResult<TxReceipt> {
        let call = G::createGroupCall {
            orgId: org_id.into(),
            name: name.into(),
            filters: filters.to_vec(),
            protection: protection.code(),
            verify: verify.code(),
            graceSeconds: grace_seconds,
        };
        self.c.send(admin, call).await
    }

    pub async fn update_group(
        &self,
        admin: &dyn Signer,
        name: &str,
        filters: &[String],
        protection: Protection,
        verify: VerifyPolicy,
        grace_seconds: u32,
    ) -> LedgerResult<TxReceipt> {
        let call = G::updateGroupCall {
            name: name.into(),
            filters: filters.to_vec(),
            protection: protection.code(),
            verify: verify.code(),
            graceSeconds: grace_seconds,
        };
        self.c.send(admin, call).await
    }

    pub async fn add_member(
        &self,
        admin: &dyn Signer,
        name: &str,
        device_id: &str,
    ) -> LedgerResult<TxReceipt> {
        let call = G::addMemberCall {
            name: name.into(),
            deviceId: device_id.into(),
        };
        self.c.send(admin, call).await
    }

    pub async fn remove_member(
        &self,
        admin: &dyn Signer,
        name: &str,
        device_id: &str,
    ) -> LedgerResult<TxReceipt> {
        let call = G::removeMemberCall {
            name: name.into(),
            deviceId: device_id.into(),
        };
        self.c.send(admin, call).await
    }

    pub async fn set_key_service(
        &self,
        admin: &dyn Signer,
        org_id: &str,
        account: Address,
        signing_key: B256,
    ) -> LedgerResult<TxReceipt> {
        let call = G::setKeyServiceCall {
            orgId: org_id.into(),
            account,
            signingKey: signing_key,
        };
        self.c.send(admin, call).await
    }

    /// Commits `epoch` for `member_count` members and records the first
    /// `exchanges` (device id, member commitment); the rest follow with
    /// [`GroupsClient::record_exchanges`].
    pub async fn commit_epoch(
        &self,
        key_service: &dyn Signer,
        name: &str,
        epoch: u64,
        commitment: B256,
        member_count: u32,
        exchanges: &[(String, B256)],
    ) -> LedgerResult<TxReceipt> {
        let call = G::commitEpochCall {
            name: name.into(),
            epoch,
            commitment,
            memberCount: member_count,
            deviceIds: exchanges.iter().map(|(d, _)| d.clone()).collect(),
            exchanges: exchanges.iter().map(|(_, c)| *c).collect(),
        };
        self.c.send(key_service, call).await
    }

    pub async fn record_exchanges(
        &self,
        key_service: &dyn Signer,
        name: &str,
        epoch: u64,
        exchanges: &[(String, B256)],
    ) -> LedgerResult<TxReceipt> {
        let call = G::recordExchangesCall {
            name: name.into(),
            epoch,
            deviceIds: exchanges.iter().map(|(d, _)| d.clone()).collect(),
            exchanges: exchanges.iter().map(|(_, c)| *c).collect(),
        };
        self.c.send(key_service, call).await
    }

    // ----------------------------------------------------------------- views

    pub async fn group_count(&self) -> LedgerResult<u64> {
        to_u64(self.c.view(G::groupCountCall {}).await?, "groupCount")
    }

    pub async fn group_at(&self, index: u64) -> LedgerResult<String> {
        self.c
            .view(G::groupAtCall {
                index: U256::from(index),
            })
            .await
    }

    pub async fn get_group(&self, name: &str) -> LedgerResult<GroupInfo> {
        let r = self.c.view(G::getGroupCall { name: name.into() }).await?;
        Ok(GroupInfo {
            name: name.to_string(),
            org: r.org,
            filters: r.filters,
            protection: Protection::from_code(r.protection)?,
            verify: VerifyPolicy::from_code(r.verify)?,
            grace_seconds: r.graceSeconds,
            created_at: r.createdAt,
        })
    }

    pub async fn members(&self, name: &str) -> LedgerResult<Vec<String>> {
        self.c.view(G::membersCall { name: name.into() }).await
    }

    pub async fn is_member(&self, name: &str, device_id: &str) -> LedgerResult<bool> {
        self.c
            .view(G::isMemberCall {
                name: name.into(),
                deviceId: device_id.into(),
            })
            .await
    }

    pub async fn key_service(&self, org_id: &str) -> LedgerResult<KeyServiceInfo> {
        let r = self
            .c
            .view(G::keyServiceCall {
                orgId: org_id.into(),
            })
            .await?;
        Ok(KeyServiceInfo {
            account: r.account,
            signing_key: r.signingKey,
        })
    }

    /// Whether `account` is the registered key service of an organisation.
    pub async fn is_key_service(&self, account: Address) -> LedgerResult<bool> {
        self.c.view(G::isKeyServiceCall { account }).await
    }

    pub async fn epoch_count(&self, name: &str) -> LedgerResult<u64> {
        to_u64(
            self.c.view(G::epochCountCall { name: name.into() }).await?,
            "epochCount",
        )
    }

    pub async fn epoch_at(&self, name: &str, index: u64) -> LedgerResult<GroupKeyEpochInfo> {
        let r = self
            .c
            .view(G::epochAtCall {
                name: name.into(),
                index: U256::from(index),
            })
            .await?;
        Ok(GroupKeyEpochInfo {
            epoch: r.epoch,
            commitment: r.commitment,
            committed_at: r.committedAt,
            member_count: r.memberCount,
            recorded: r.recorded,
        })
    }

    /// The latest key epoch of `name`, if any.
    pub async fn latest_epoch(&self, name: &str) -> LedgerResult<Option<GroupKeyEpochInfo>> {
        let n = self.epoch_count(name).await?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(self.epoch_at(name, n - 1).await?))
    }

    /// Every group, in creation order.
    pub async fn list_groups(&self) -> LedgerResult<Vec<GroupInfo>> {
        let n = self.group_count().await?;
        let mut out = Vec::with_capacity(n.min(1024) as usize);
        for i in 0..n {
            let name = self.group_at(i).await?;
            out.push(self.get_group(&name).await?);
        }
        Ok(out)
    }
}
