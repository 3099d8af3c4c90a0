//! The contract suite through the JSON-RPC backend against a real anvil.

mod backends;
#[macro_use]
mod contracts_suite;
mod rpc_support;

contract_tests!(crate::backends::anvil);
