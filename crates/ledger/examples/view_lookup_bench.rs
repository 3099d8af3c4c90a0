//! Cost of the broker's hot-path lookups on a RegistryView.
//!
//!     cargo run --release -p ledgermq-ledger --example view_lookup_bench
//!
//! Registers 1,000 devices with 10 exact rights and 2 wildcard rights each
//! on a fresh embedded chain, builds the view from the events, then times
//! 10M `can_publish` and 10M `can_subscribe` calls (hits and misses mixed).

use std::hint::black_box;
use std::time::Instant;

use alloy_primitives::B256;
use ledgermq_ledger::contracts::{deploy_consortium, FoundingOrg, RegistryClient};
use ledgermq_ledger::{ChainConfig, EmbeddedChain, LocalAccount, RegistryView, Signer};

const DEVICES: usize = 1_000;
const LOOKUPS: usize = 10_000_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("lmq-view-bench-{}", std::process::id()));
    let ledger = EmbeddedChain::open(&dir, ChainConfig::default())?;
    let admin = std::sync::Arc::new(LocalAccount::random());
    let founders = vec![FoundingOrg {
        id: "org".into(),
        name: "Org".into(),
        admins: vec![admin.address()],
    }];
    let d = deploy_consortium(ledger.as_ref(), admin.as_ref(), &founders).await?;
    let registry = RegistryClient::new(ledger.clone(), d.registry);
    let mut tasks = Vec::new();
    for i in 0..DEVICES {
        let (registry, admin) = (registry.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("device-{i}");
            let k = B256::with_last_byte(1);
            registry
                .register_device(admin.as_ref(), "org", &id, k, k)
                .await?;
            for t in 0..10 {
                registry
                    .grant_right(
                        admin.as_ref(),
                        &id,
                        &format!("site/{i}/sensor/{t}"),
                        true,
                        false,
                    )
                    .await?;
            }
            registry
                .grant_right(
                    admin.as_ref(),
                    &id,
                    &format!("site/{i}/config/+"),
                    false,
                    true,
                )
                .await?;
            registry
                .grant_right(admin.as_ref(), &id, "broadcast/#", false, true)
                .await?;
            Ok::<(), ledgermq_ledger::LedgerError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let view = RegistryView::builder(ledger.clone(), d).build().await?;
    println!(
        "view built: {} devices at block {}",
        view.snapshot().devices.len(),
        view.last_block()
    );

    let ids: Vec<String> = (0..DEVICES).map(|i| format!("device-{i}")).collect();
    let topics: Vec<String> = (0..DEVICES)
        .map(|i| format!("site/{i}/sensor/{}", i % 12))
        .collect();
    let filters: Vec<String> = (0..DEVICES).map(|i| format!("site/{i}/config/x")).collect();

    let started = Instant::now();
    let mut allowed = 0usize;
    for n in 0..LOOKUPS {
        let i = n % DEVICES;
        allowed += view.can_publish(black_box(&ids[i]), black_box(&topics[i])) as usize;
    }
    let per = started.elapsed().as_nanos() as f64 / LOOKUPS as f64;
    println!("can_publish:   {LOOKUPS} lookups, {per:.1} ns each ({allowed} allowed)");

    let started = Instant::now();
    allowed = 0;
    for n in 0..LOOKUPS {
        let i = n % DEVICES;
        allowed += view.can_subscribe(black_box(&ids[i]), black_box(&filters[i])) as usize;
    }
    let per = started.elapsed().as_nanos() as f64 / LOOKUPS as f64;
    println!(
        "can_subscribe: {LOOKUPS} lookups, {per:.1} ns each ({allowed} allowed, wildcard match)"
    );
    drop(view);
    drop(ledger);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
