//! The JSON-RPC backend against the embedded chain's own JSON-RPC server
//! (what `--rpc` reaches when a broker is running): the `Ledger`
//! conformance suite and the whole contract suite go through `RpcLedger` →
//! HTTP → `EmbeddedChain`.

mod backends;
#[macro_use]
mod conformance;
#[macro_use]
mod contracts_suite;
mod rpc_support;

conformance_tests!(crate::backends::embedded_rpc);
contract_tests!(crate::backends::embedded_rpc);
