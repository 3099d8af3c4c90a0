//! Transactions per second through the in-process `Ledger` API of the
//! embedded chain, with concurrent senders.
//!
//! `cargo run --release -p ledgermq-ledger --example embedded_tps -- [SENDERS] [TXS_PER_SENDER] [ACCOUNTS]`
//!
//! Each sender is a task sending `increment()` to one Counter contract
//! (see `tests/conformance/mod.rs`) and waiting for inclusion before its
//! next send; senders share `ACCOUNTS` accounts round-robin (1 = every
//! sender uses the same account, exercising chain-assigned nonces).

use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::hex;
use ledgermq_ledger::{ChainConfig, EmbeddedChain, Ledger, LocalAccount, TxRequest};

/// `Counter` from tests/conformance/mod.rs.
const COUNTER_CREATION: &str = "6080604052348015600e575f5ffd5b506101f98061001c5f395ff3fe608060405234801561000f575f5ffd5b506004361061003f575f3560e01c806306661abd146100435780631003e2d21461005d578063d09de08a14610072575b5f5ffd5b61004b5f5481565b60405190815260200160405180910390f35b61007061006b366004610187565b61007a565b005b610070610138565b5f81116100c35760405162461bcd60e51b81526020600482015260126024820152716e206d75737420626520706f73697469766560701b60448201526064015b60405180910390fd5b6103e88111156100e957604051630fa6ad5f60e11b8152600481018290526024016100ba565b805f5f8282546100f9919061019e565b90915550505f5460405190815233907f38ac789ed44572701765277c4d0970f2db1c1a571ed39e84358095ae4eaa54209060200160405180910390a250565b60015f5f828254610149919061019e565b90915550505f5460405190815233907f38ac789ed44572701765277c4d0970f2db1c1a571ed39e84358095ae4eaa54209060200160405180910390a2565b5f60208284031215610197575f5ffd5b5035919050565b808201808211156101bd57634e487b7160e01b5f52601160045260245ffd5b9291505056fea264697066735822122063f74c7233539690b618b560613db4214511062cefd12a3f657c1866ec4c40ea64736f6c63430008250033";
const INCREMENT: [u8; 4] = hex!("d09de08a");

fn arg(index: usize, default: usize) -> usize {
    std::env::args()
        .nth(index)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let senders = arg(1, 256).max(1);
    let per_sender = arg(2, 100).max(1);
    let accounts = arg(3, senders).clamp(1, senders);
    let dir = tempfile::tempdir()?;
    let chain = EmbeddedChain::open(dir.path(), ChainConfig::default())?;
    let keys: Vec<Arc<LocalAccount>> = (0..accounts)
        .map(|_| Arc::new(LocalAccount::random()))
        .collect();
    let counter = chain
        .send_transaction(
            keys[0].as_ref(),
            TxRequest {
                data: hex::decode(COUNTER_CREATION)?.into(),
                ..Default::default()
            },
        )
        .await?
        .contract_address
        .ok_or("no contract address")?;
    let first_block = chain.block_number().await?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..senders {
        let (chain, key) = (chain.clone(), keys[i % accounts].clone());
        tasks.spawn(async move {
            for _ in 0..per_sender {
                let tx = TxRequest {
                    to: Some(counter),
                    data: INCREMENT.to_vec().into(),
                    gas: Some(100_000),
                    ..Default::default()
                };
                chain.send_transaction(key.as_ref(), tx).await?;
            }
            Ok::<_, ledgermq_ledger::LedgerError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = senders * per_sender;
    let blocks = chain.block_number().await? - first_block;
    println!(
        "{total} transactions from {senders} senders ({accounts} accounts) in {elapsed:.2} s: \
         {:.0} tx/s, {blocks} blocks ({:.0} tx/block)",
        total as f64 / elapsed,
        total as f64 / blocks.max(1) as f64
    );
    drop(chain);
    let verify_started = Instant::now();
    let report = ledgermq_ledger::verify(dir.path())?;
    println!(
        "verify: {} blocks, {} transactions in {:.2} s",
        report.blocks,
        report.transactions,
        verify_started.elapsed().as_secs_f64()
    );
    Ok(())
}
