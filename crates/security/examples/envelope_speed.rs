//! Throughput of end-to-end envelopes on one core, 100-byte payloads.
//!
//! `cargo run -p ledgermq-security --release --example envelope_speed`
//!
//! Prints envelopes per second for: seal + sign (publisher), parse +
//! verify (broker, one `verify_strict` each), parse + verify + open
//! (subscriber), and `verify_batch` at a few batch sizes (broker fast path).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledgermq_keystore::software::SoftwareEd25519;
use ledgermq_security::envelope::{verify_batch, Envelope, GroupKey, Publisher};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;

const TOPIC: &str = "plant-7/telemetry/temp";
const PAYLOAD: [u8; 100] = [0x5a; 100];
const RUN: Duration = Duration::from_millis(1500);

/// Calls `f` (which handles `per_call` envelopes) until `RUN` has passed;
/// returns envelopes per second.
fn rate(per_call: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..10 {
        f();
    }
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < RUN {
        f();
        calls += 1;
    }
    (calls as f64 * per_call as f64) / start.elapsed().as_secs_f64()
}

fn main() {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let key = GroupKey::generate("plant-7/telemetry", 1, &mut rng).unwrap();
    let publishers: Vec<Publisher> = (0..256u16)
        .map(|i| {
            let seed: [u8; 32] = std::array::from_fn(|j| (i as u8) ^ (j as u8) ^ ((i >> 8) as u8));
            Publisher::new(
                &format!("sensor-{i}"),
                Arc::new(SoftwareEd25519::from_seed(&seed)),
            )
            .unwrap()
        })
        .collect();
    let publics: Vec<[u8; 32]> = publishers.iter().map(Publisher::public).collect();
    let envelopes: Vec<Vec<u8>> = publishers
        .iter()
        .map(|p| p.seal(TOPIC, &key, 1, &PAYLOAD, &mut rng).unwrap())
        .collect();
    println!(
        "100-byte payload, sealed envelope {} bytes, one core",
        envelopes[0].len()
    );

    let mut seq = 0u64;
    let seal = rate(1, || {
        seq += 1;
        black_box(
            publishers[0]
                .seal(TOPIC, &key, seq, &PAYLOAD, &mut rng)
                .unwrap(),
        );
    });
    println!("seal + sign                 {seal:>9.0} /s");

    let mut i = 0usize;
    let verify = rate(1, || {
        i = (i + 1) % envelopes.len();
        let env = Envelope::parse(&envelopes[i]).unwrap();
        env.verify(TOPIC, &publics[i]).unwrap();
        black_box(env);
    });
    println!("parse + verify              {verify:>9.0} /s");

    let open = rate(1, || {
        i = (i + 1) % envelopes.len();
        let env = Envelope::parse(&envelopes[i]).unwrap();
        black_box(env.open_verified(TOPIC, &publics[i], &key).unwrap());
    });
    println!("parse + verify + open       {open:>9.0} /s");

    let sign_only = rate(1, || {
        seq += 1;
        black_box(publishers[0].sign(TOPIC, seq, &PAYLOAD).unwrap());
    });
    println!("sign (signed-only)          {sign_only:>9.0} /s");

    for batch in [8usize, 16, 64, 256] {
        let mut start = 0usize;
        let r = rate(batch, || {
            start = (start + batch) % envelopes.len();
            let end = (start + batch).min(envelopes.len());
            let begin = end - batch;
            let envs: Vec<Envelope> = envelopes[begin..end]
                .iter()
                .map(|b| Envelope::parse(b).unwrap())
                .collect();
            let items: Vec<_> = envs
                .iter()
                .zip(&publics[begin..end])
                .map(|(e, p)| (TOPIC, e, p))
                .collect();
            verify_batch(&items).unwrap();
        });
        println!(
            "parse + verify_batch({batch:>3})   {r:>9.0} /s  ({:.2}x single)",
            r / verify
        );
    }
}
