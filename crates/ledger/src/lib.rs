//! ledgermq-ledger: where the consortium's security state lives.
//!
//! Everything else in ledgermq talks to a ledger through the [`Ledger`]
//! trait; two backends implement it: the embedded single-node chain
//! (in-process revm, persisted under the data dir, and serving Ethereum
//! JSON-RPC while the broker runs) and any EVM JSON-RPC endpoint (anvil in
//! tests, a consortium chain such as Besu QBFT in production).
//!
//! Must not know about MQTT.

mod account;
mod ledger;

pub mod admin;
pub mod contracts;
pub mod embedded;
pub mod rpc;
pub mod view;

pub use account::LocalAccount;
pub use embedded::{
    verify, ChainConfig, EmbeddedChain, RpcServerConfig, RpcServerHandle, SenderPolicy,
    VerifyReport,
};
pub use ledger::*;
pub use rpc::{RpcLedger, RpcOptions};
pub use view::{RegistryEvent, RegistryView, RegistryViewBuilder};
