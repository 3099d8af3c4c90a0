//! Creation code from the committed artifacts and deployment of the four
//! contracts.

use std::sync::OnceLock;

use alloy_primitives::{Address, Bytes};
use alloy_sol_types::SolConstructor;
use serde::{Deserialize, Serialize};

use super::bindings::{Audit, Consortium, Groups, Registry};
use crate::{Ledger, LedgerError, LedgerResult, Signer, TxRequest};

/// One of the four contracts of a ledgermq network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractName {
    Consortium,
    Registry,
    Audit,
    Groups,
}

impl ContractName {
    fn artifact(self) -> &'static str {
        match self {
            Self::Consortium => include_str!("../../../../contracts/artifacts/Consortium.json"),
            Self::Registry => include_str!("../../../../contracts/artifacts/Registry.json"),
            Self::Audit => include_str!("../../../../contracts/artifacts/Audit.json"),
            Self::Groups => include_str!("../../../../contracts/artifacts/Groups.json"),
        }
    }

    fn cell(self) -> &'static OnceLock<Result<Bytes, String>> {
        static CONSORTIUM: OnceLock<Result<Bytes, String>> = OnceLock::new();
        static REGISTRY: OnceLock<Result<Bytes, String>> = OnceLock::new();
        static AUDIT: OnceLock<Result<Bytes, String>> = OnceLock::new();
        static GROUPS: OnceLock<Result<Bytes, String>> = OnceLock::new();
        match self {
            Self::Consortium => &CONSORTIUM,
            Self::Registry => &REGISTRY,
            Self::Audit => &AUDIT,
            Self::Groups => &GROUPS,
        }
    }
}

#[derive(Deserialize)]
struct Artifact {
    bytecode: String,
}

/// The creation bytecode of `name` (without constructor arguments), parsed
/// from its artifact at first use.
pub fn creation_code(name: ContractName) -> LedgerResult<Bytes> {
    name.cell()
        .get_or_init(|| {
            let artifact: Artifact = serde_json::from_str(name.artifact())
                .map_err(|e| format!("artifact of {name:?} is not valid JSON: {e}"))?;
            artifact
                .bytecode
                .parse::<Bytes>()
                .map_err(|e| format!("artifact of {name:?} has invalid bytecode: {e}"))
        })
        .clone()
        .map_err(LedgerError::Other)
}

/// A founding organisation passed to the Consortium constructor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundingOrg {
    pub id: String,
    pub name: String,
    pub admins: Vec<Address>,
}

/// Where the contracts of one network live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub chain_id: u64,
    pub consortium: Address,
    pub registry: Address,
    pub audit: Address,
    /// The Groups contract (encryption groups and key epochs). Zero in a
    /// deployment file written before groups existed: such a network has no
    /// end-to-end groups until one is deployed ([`deploy_groups`]) and its
    /// address added to the file.
    #[serde(default)]
    pub groups: Address,
    /// Block of the Consortium deployment: event readers start there.
    pub deployed_at_block: u64,
}

impl Deployment {
    /// Reads a deployment file (TOML, as written by [`Deployment::to_toml`]).
    pub fn from_toml(text: &str) -> LedgerResult<Self> {
        toml::from_str(text)
            .map_err(|e| LedgerError::Other(format!("invalid deployment file: {e}")))
    }

    pub fn to_toml(&self) -> String {
        // Serialising plain integers and addresses cannot fail.
        let body = toml::to_string(self).unwrap_or_default();
        format!("# ledgermq contract deployment (written by `ledgermq ledger deploy`)\n{body}")
    }
}

/// Deploys Consortium (with `founders`), then Registry and Audit bound to
/// it, then Groups bound to both, from `deployer`.
pub async fn deploy_consortium(
    ledger: &dyn Ledger,
    deployer: &dyn Signer,
    founders: &[FoundingOrg],
) -> LedgerResult<Deployment> {
    let chain_id = ledger.chain_id().await?;
    let args = Consortium::constructorCall {
        orgIds: founders.iter().map(|o| o.id.clone()).collect(),
        names: founders.iter().map(|o| o.name.clone()).collect(),
        admins: founders.iter().map(|o| o.admins.clone()).collect(),
    };
    let (consortium, deployed_at_block) = create(
        ledger,
        deployer,
        ContractName::Consortium,
        args.abi_encode(),
    )
    .await?;
    let registry_args = Registry::constructorCall {
        consortium_: consortium,
    }
    .abi_encode();
    let (registry, _) = create(ledger, deployer, ContractName::Registry, registry_args).await?;
    let audit_args = Audit::constructorCall {
        consortium_: consortium,
    }
    .abi_encode();
    let (audit, _) = create(ledger, deployer, ContractName::Audit, audit_args).await?;
    let groups = deploy_groups(ledger, deployer, consortium, registry).await?;
    Ok(Deployment {
        chain_id,
        consortium,
        registry,
        audit,
        groups,
        deployed_at_block,
    })
}

/// Deploys a Groups contract bound to an existing Consortium and Registry
/// (a network deployed before groups existed gets one this way).
pub async fn deploy_groups(
    ledger: &dyn Ledger,
    deployer: &dyn Signer,
    consortium: Address,
    registry: Address,
) -> LedgerResult<Address> {
    let args = Groups::constructorCall {
        consortium_: consortium,
        registry_: registry,
    }
    .abi_encode();
    Ok(create(ledger, deployer, ContractName::Groups, args)
        .await?
        .0)
}

async fn create(
    ledger: &dyn Ledger,
    deployer: &dyn Signer,
    name: ContractName,
    constructor_args: Vec<u8>,
) -> LedgerResult<(Address, u64)> {
    let mut data = creation_code(name)?.to_vec();
    data.extend_from_slice(&constructor_args);
    let receipt = ledger
        .send_transaction(
            deployer,
            TxRequest {
                to: None,
                data: data.into(),
                ..TxRequest::default()
            },
        )
        .await?;
    let address = receipt.contract_address.ok_or_else(|| {
        LedgerError::Other(format!(
            "deployment of {name:?} returned no contract address"
        ))
    })?;
    Ok((address, receipt.block_number))
}
