//! A whole broker in process, driven by arbitrary client behaviour: the
//! generator and the invariants are the ones of the stable property test
//! `crates/broker/tests/broker_model.rs` (no panic, nothing acknowledged
//! lost, nothing growing without bound).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/broker/tests/scenario/mod.rs"]
mod scenario;

fuzz_target!(|data: &[u8]| {
    scenario::run(&scenario::Scenario::from_bytes(data));
});
