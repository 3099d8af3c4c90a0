//! Client of the Consortium contract: organisations, admins, broker nodes,
//! proposals.

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolEvent;

use super::bindings::Consortium as C;
use super::{to_u64, ContractHandle};
use crate::{Ledger, LedgerError, LedgerResult, Signer, TxReceipt};

/// An organisation as `getOrg` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgInfo {
    pub id: String,
    pub name: String,
    pub admins: Vec<Address>,
    pub brokers: Vec<Address>,
    pub added_at: u64,
}

/// A broker node as `getBroker` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub account: Address,
    pub org: String,
    pub signing_key: B256,
    pub agreement_key: B256,
    pub added_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalStatus {
    None,
    Pending,
    Executed,
    Cancelled,
    Expired,
}

impl ProposalStatus {
    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Pending,
            2 => Self::Executed,
            3 => Self::Cancelled,
            4 => Self::Expired,
            _ => Self::None,
        }
    }
}

/// A proposal to add an organisation, as `getProposal` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalInfo {
    pub id: U256,
    pub org_id: String,
    pub name: String,
    pub admins: Vec<Address>,
    pub proposer: Address,
    pub proposer_org: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub approvals: u32,
    pub status: ProposalStatus,
}

/// Typed access to a deployed Consortium contract.
#[derive(Clone)]
pub struct ConsortiumClient {
    c: ContractHandle,
}

impl ConsortiumClient {
    pub fn new(ledger: Arc<dyn Ledger>, address: Address) -> Self {
        Self {
            c: ContractHandle { ledger, address },
        }
    }

    pub fn address(&self) -> Address {
        self.c.address
    }

    // ---------------------------------------------------------- transactions

    /// Proposes a new organisation; returns the proposal id (from the
    /// `OrganisationProposed` event) and the receipt.
    pub async fn propose(
        &self,
        admin: &dyn Signer,
        org_id: &str,
        name: &str,
        admins: &[Address],
        ttl_seconds: u64,
    ) -> LedgerResult<(U256, TxReceipt)> {
        let call = C::proposeCall {
            orgId: org_id.into(),
            name: name.into(),
            admins: admins.to_vec(),
            ttlSeconds: ttl_seconds,
        };
        let receipt = self.c.send(admin, call).await?;
        let id = receipt
            .logs
            .iter()
            .filter(|l| l.address == self.c.address)
            .find_map(|l| C::OrganisationProposed::decode_raw_log(&l.topics, &l.data).ok())
            .map(|e| e.proposalId)
            .ok_or_else(|| {
                LedgerError::Other("propose emitted no OrganisationProposed event".into())
            })?;
        Ok((id, receipt))
    }

    pub async fn approve(&self, admin: &dyn Signer, proposal_id: U256) -> LedgerResult<TxReceipt> {
        self.c
            .send(
                admin,
                C::approveCall {
                    proposalId: proposal_id,
                },
            )
            .await
    }

    pub async fn cancel(&self, admin: &dyn Signer, proposal_id: U256) -> LedgerResult<TxReceipt> {
        self.c
            .send(
                admin,
                C::cancelCall {
                    proposalId: proposal_id,
                },
            )
            .await
    }

    pub async fn add_admin(
        &self,
        admin: &dyn Signer,
        org_id: &str,
        account: Address,
    ) -> LedgerResult<TxReceipt> {
        let call = C::addAdminCall {
            orgId: org_id.into(),
            account,
        };
        self.c.send(admin, call).await
    }

    pub async fn remove_admin(
        &self,
        admin: &dyn Signer,
        org_id: &str,
        account: Address,
    ) -> LedgerResult<TxReceipt> {
        let call = C::removeAdminCall {
            orgId: org_id.into(),
            account,
        };
        self.c.send(admin, call).await
    }

    pub async fn add_broker(
        &self,
        admin: &dyn Signer,
        org_id: &str,
        account: Address,
        signing_key: B256,
        agreement_key: B256,
    ) -> LedgerResult<TxReceipt> {
        let call = C::addBrokerCall {
            orgId: org_id.into(),
            account,
            signingKey: signing_key,
            agreementKey: agreement_key,
        };
        self.c.send(admin, call).await
    }

    pub async fn remove_broker(
        &self,
        admin: &dyn Signer,
        account: Address,
    ) -> LedgerResult<TxReceipt> {
        self.c.send(admin, C::removeBrokerCall { account }).await
    }

    pub async fn replace_broker(
        &self,
        admin: &dyn Signer,
        old: Address,
        new: Address,
        signing_key: B256,
        agreement_key: B256,
    ) -> LedgerResult<TxReceipt> {
        let call = C::replaceBrokerCall {
            oldAccount: old,
            newAccount: new,
            signingKey: signing_key,
            agreementKey: agreement_key,
        };
        self.c.send(admin, call).await
    }

    // ----------------------------------------------------------------- views

    pub async fn org_count(&self) -> LedgerResult<u64> {
        to_u64(self.c.view(C::orgCountCall {}).await?, "orgCount")
    }

    pub async fn org_id_at(&self, index: u64) -> LedgerResult<String> {
        self.c
            .view(C::orgIdAtCall {
                index: U256::from(index),
            })
            .await
    }

    pub async fn is_org(&self, org_id: &str) -> LedgerResult<bool> {
        self.c
            .view(C::isOrgCall {
                orgId: org_id.into(),
            })
            .await
    }

    pub async fn get_org(&self, org_id: &str) -> LedgerResult<OrgInfo> {
        let r = self
            .c
            .view(C::getOrgCall {
                orgId: org_id.into(),
            })
            .await?;
        Ok(OrgInfo {
            id: org_id.to_string(),
            name: r.name,
            admins: r.admins,
            brokers: r.brokerAccounts,
            added_at: r.addedAt,
        })
    }

    pub async fn is_admin(&self, org_id: &str, account: Address) -> LedgerResult<bool> {
        self.c
            .view(C::isAdminCall {
                orgId: org_id.into(),
                account,
            })
            .await
    }

    /// The organisation `account` administers; empty when none.
    pub async fn org_of_admin(&self, account: Address) -> LedgerResult<String> {
        self.c.view(C::orgOfAdminCall { account }).await
    }

    pub async fn is_broker(&self, account: Address) -> LedgerResult<bool> {
        self.c.view(C::isBrokerCall { account }).await
    }

    /// The organisation operating broker node `account`; "" if it is none.
    pub async fn org_of_broker(&self, account: Address) -> LedgerResult<String> {
        self.c.view(C::orgOfBrokerCall { account }).await
    }

    pub async fn broker_count(&self) -> LedgerResult<u64> {
        to_u64(self.c.view(C::brokerCountCall {}).await?, "brokerCount")
    }

    pub async fn broker_at(&self, index: u64) -> LedgerResult<Address> {
        self.c
            .view(C::brokerAtCall {
                index: U256::from(index),
            })
            .await
    }

    pub async fn get_broker(&self, account: Address) -> LedgerResult<BrokerInfo> {
        let r = self.c.view(C::getBrokerCall { account }).await?;
        Ok(BrokerInfo {
            account,
            org: r.orgId,
            signing_key: r.signingKey,
            agreement_key: r.agreementKey,
            added_at: r.addedAt,
        })
    }

    pub async fn proposal_count(&self) -> LedgerResult<u64> {
        to_u64(self.c.view(C::proposalCountCall {}).await?, "proposalCount")
    }

    pub async fn get_proposal(&self, proposal_id: U256) -> LedgerResult<ProposalInfo> {
        let r = self
            .c
            .view(C::getProposalCall {
                proposalId: proposal_id,
            })
            .await?;
        Ok(ProposalInfo {
            id: proposal_id,
            org_id: r.orgId,
            name: r.name,
            admins: r.admins,
            proposer: r.proposer,
            proposer_org: r.proposerOrg,
            created_at: r.createdAt,
            expires_at: r.expiresAt,
            approvals: r.approvals,
            status: ProposalStatus::from_code(r.status),
        })
    }

    pub async fn has_approved(&self, proposal_id: U256, org_id: &str) -> LedgerResult<bool> {
        let call = C::hasApprovedCall {
            proposalId: proposal_id,
            orgId: org_id.into(),
        };
        self.c.view(call).await
    }

    pub async fn approvals_needed(&self) -> LedgerResult<u64> {
        to_u64(
            self.c.view(C::approvalsNeededCall {}).await?,
            "approvalsNeeded",
        )
    }

    // ---------------------------------------------------------- list helpers

    /// Every organisation, in creation order.
    pub async fn list_orgs(&self) -> LedgerResult<Vec<OrgInfo>> {
        let mut out = Vec::new();
        for i in 0..self.org_count().await? {
            let id = self.org_id_at(i).await?;
            out.push(self.get_org(&id).await?);
        }
        Ok(out)
    }

    /// Every broker node, in registration order.
    pub async fn list_brokers(&self) -> LedgerResult<Vec<BrokerInfo>> {
        let mut out = Vec::new();
        for i in 0..self.broker_count().await? {
            let account = self.broker_at(i).await?;
            out.push(self.get_broker(account).await?);
        }
        Ok(out)
    }

    /// Every proposal, oldest first (ids start at 0).
    pub async fn list_proposals(&self) -> LedgerResult<Vec<ProposalInfo>> {
        let mut out = Vec::new();
        for id in 0..self.proposal_count().await? {
            out.push(self.get_proposal(U256::from(id)).await?);
        }
        Ok(out)
    }
}
