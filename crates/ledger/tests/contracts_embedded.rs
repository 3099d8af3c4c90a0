//! The contract suite on the embedded chain in-process, and the guard that
//! every function, revert reason and event of the contracts has a check.

mod backends;
#[macro_use]
mod contracts_suite;
mod rpc_support;

contract_tests!(crate::backends::embedded);

#[test]
fn every_function_reason_and_event_of_the_contracts_has_a_check() {
    contracts_suite::coverage::every_function_reason_and_event_has_a_test();
}

#[test]
fn the_coverage_guard_parses_reasons_and_matches_filled_in_parts() {
    contracts_suite::coverage::the_guard_parses_reasons_and_matches_filled_in_parts();
}
