//! `ledgermq bench envelope`: what end-to-end protection costs a device, a
//! broker and a key service, on one core (docs/bench.md).
//!
//! Each loop runs on the calling thread for `--duration` seconds over the
//! real `ledgermq-security` envelope code (the one `ledgermq_agent::e2e`,
//! the broker's checks and the key service use):
//!
//! - `seal+sign`: a sealed envelope of a `--payload`-byte reading, what a
//!   publisher does per message (XChaCha20-Poly1305, then Ed25519);
//! - `open+verify`: parse, verify the signature, decrypt, what a subscriber
//!   does;
//! - `sign` / `verify`: a signed-only envelope, and the signature check
//!   alone, which is what a broker with `verify every` does per message;
//! - `verify batch`: the same signatures verified `--batch` at a time;
//! - `epoch`: one key epoch for `--members` members (fresh key, one HPKE
//!   wrap and one signed bundle per member, the commitments), the key
//!   service's work per rotation before the ledger transaction, and the
//!   size of what it publishes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ledgermq_keystore::software::{SoftwareEd25519, SoftwareX25519};
use ledgermq_keystore::X25519Agreement;
use ledgermq_security::envelope::{verify_batch, EpochDistribution};
use ledgermq_security::{Envelope, GroupKey, Publisher};
use rand_core::OsRng;

const TOPIC: &str = "Temperature/raw Material";

#[derive(Debug, Clone, clap::Args)]
pub struct EnvelopeArgs {
    /// Plaintext bytes per envelope.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Seconds per loop.
    #[arg(long, default_value_t = 2.0)]
    pub duration: f64,
    /// Members of the group whose epoch is made.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub members: u32,
    /// Signatures per batch in the batch-verification loop.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..=4096))]
    pub batch: u32,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `f` over and over for `d`; returns operations per second (each call
/// does `per_call` operations).
fn rate(d: Duration, per_call: u64, mut f: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < d {
        f(calls);
        calls += 1;
    }
    (calls * per_call) as f64 / start.elapsed().as_secs_f64()
}

pub fn run(args: EnvelopeArgs) -> Result<()> {
    if !(args.duration > 0.0 && args.duration <= 3600.0) {
        bail!("--duration must be between 0 and 3600 seconds");
    }
    if args.payload > 256 * 1024 {
        bail!("--payload above 256 KiB is not an envelope a broker takes");
    }
    let d = Duration::from_secs_f64(args.duration);
    let signer = Arc::new(SoftwareEd25519::generate());
    let public = ledgermq_keystore::Ed25519Signer::public(signer.as_ref());
    let me = Publisher::new("1111", signer.clone())?;
    let key = GroupKey::generate("hsu0001", 1, &mut OsRng)?;
    let reading = vec![0x5a; args.payload];

    let seal = rate(d, 1, |i| {
        std::hint::black_box(me.seal(TOPIC, &key, i + 1, &reading, &mut OsRng).unwrap());
    });
    let sealed = me.seal(TOPIC, &key, 1, &reading, &mut OsRng)?;
    let open = rate(d, 1, |_| {
        let e = Envelope::parse(&sealed).unwrap();
        std::hint::black_box(e.open_verified(TOPIC, &public, &key).unwrap());
    });
    let sign = rate(d, 1, |i| {
        std::hint::black_box(me.sign(TOPIC, i + 1, &reading).unwrap());
    });
    let verify = rate(d, 1, |_| {
        let e = Envelope::parse(&sealed).unwrap();
        e.verify(TOPIC, &public).unwrap();
    });
    let batch: Vec<Vec<u8>> = (0..u64::from(args.batch))
        .map(|i| me.seal(TOPIC, &key, i + 1, &reading, &mut OsRng))
        .collect::<Result<_, _>>()?;
    let batched = rate(d, u64::from(args.batch), |_| {
        let parsed: Vec<Envelope<'_>> = batch.iter().map(|b| Envelope::parse(b).unwrap()).collect();
        let items: Vec<(&str, &Envelope<'_>, &[u8; 32])> =
            parsed.iter().map(|e| (TOPIC, e, &public)).collect();
        verify_batch(&items).unwrap();
    });

    // One epoch for --members members, each with its own X25519 key.
    let names: Vec<String> = (0..args.members)
        .map(|i| format!("member-{i:05}"))
        .collect();
    let members: Vec<(&str, [u8; 32])> = names
        .iter()
        .map(|n| (n.as_str(), SoftwareX25519::generate().public()))
        .collect();
    let service = SoftwareEd25519::generate();
    let start = Instant::now();
    let epoch_key = GroupKey::generate("hsu0001", 2, &mut OsRng)?;
    let distribution = EpochDistribution::new(&epoch_key, &members, &service, &mut OsRng)?;
    let epoch_time = start.elapsed();
    let bundle_bytes: usize = distribution.members.iter().map(|m| m.bundle.len()).sum();
    let bundle_len = distribution.members[0].bundle.len();

    // (name, JSON key, operations per second, who pays it)
    let rows = [
        ("seal+sign", "seal_sign", seal, "a publisher, per message"),
        (
            "open+verify",
            "open_verify",
            open,
            "a subscriber, per message",
        ),
        (
            "sign (signed-only)",
            "sign",
            sign,
            "a signed-only publisher",
        ),
        ("verify", "verify", verify, "a broker with verify every"),
        ("verify batch", "verify_batch", batched, "the same, batched"),
    ];
    if args.json {
        let mut out = String::from("{");
        for (_, key, r, _) in rows {
            out.push_str(&format!("\"{key}_per_s\":{r:.0},"));
        }
        out.push_str(&format!(
            "\"payload\":{},\"batch\":{},\"members\":{},\"epoch_ms\":{:.1},\"epoch_bytes\":{bundle_bytes},\"bundle_bytes\":{bundle_len}}}",
            args.payload,
            args.batch,
            args.members,
            epoch_time.as_secs_f64() * 1e3
        ));
        println!("{out}");
        return Ok(());
    }
    println!("envelopes of {} plaintext bytes, one core:", args.payload);
    for (name, _, r, what) in rows {
        println!("  {name:<20} {r:>10.0} /s   {what}");
    }
    println!(
        "  (verify batch: {} signatures per batch, {:.2}x verify one by one)",
        args.batch,
        batched / verify
    );
    println!(
        "epoch for {} members: {:.1} ms to make (key, {} HPKE wraps, signed bundles, commitments); \
         {} bytes of retained bundles ({} per member); on the ledger: one 32-byte commitment \
         and one key-exchange event per member",
        args.members,
        epoch_time.as_secs_f64() * 1e3,
        args.members,
        bundle_bytes,
        bundle_len
    );
    Ok(())
}
