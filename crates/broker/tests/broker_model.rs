//! The broker-level fuzz generator, on stable Rust, for a bounded number of
//! cases in CI: arbitrary client behaviour against a whole broker in
//! process, checking that nothing panics, nothing acknowledged is lost and
//! nothing grows without bound (see `scenario/mod.rs`; the libFuzzer target
//! is `fuzz/fuzz_targets/broker.rs`).

mod scenario;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_clients_never_break_the_broker(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        scenario::run(&scenario::Scenario::from_bytes(&bytes));
    }
}

/// Scenarios worth keeping: each once reached a path the random ones rarely do.
#[test]
fn hand_picked_scenarios() {
    use scenario::{Op, Scenario};
    let takeover_with_qos2_in_flight = Scenario {
        ops: vec![
            Op::Connect {
                slot: 0,
                id: 0,
                v5: true,
                clean: false,
                expiry: 60,
                will: true,
            },
            Op::Subscribe {
                slot: 0,
                filter: 0,
                qos: 2,
            },
            Op::Publish {
                slot: 0,
                topic: 0,
                qos: 2,
                retain: true,
            },
            Op::Connect {
                slot: 1,
                id: 0,
                v5: false,
                clean: false,
                expiry: 0,
                will: true,
            },
            Op::Publish {
                slot: 1,
                topic: 1,
                qos: 1,
                retain: false,
            },
            Op::Connect {
                slot: 2,
                id: 0,
                v5: true,
                clean: true,
                expiry: 0,
                will: false,
            },
            Op::Raw {
                slot: 2,
                bytes: vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x7f],
            },
            Op::Pump,
        ],
    };
    scenario::run(&takeover_with_qos2_in_flight);
}
