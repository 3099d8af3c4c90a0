//! Handshake throughput of the default suite (client and broker together).
//! Run optimised: `cargo test --release -p ledgermq-security --test scac_perf -- --ignored --nocapture`.

mod scac_common;

use std::time::Instant;

use ledgermq_security::scac::Suite;
use scac_common::*;

#[test]
#[ignore = "timing; run with --release"]
fn default_suite_handshakes_per_second() {
    let p = parties(Suite::Default);
    let n = 2_000;
    let start = Instant::now();
    for _ in 0..n {
        handshake(&p);
    }
    let rate = f64::from(n) / start.elapsed().as_secs_f64();
    println!("{rate:.0} default-suite handshakes/s on one core (client + broker)");
}
