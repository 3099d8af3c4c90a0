//! The embedded chain survives restarts, `kill -9` and torn writes, and
//! refuses tampered history.

mod conformance;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use alloy_primitives::{Address, B256};
use ledgermq_ledger::{verify, ChainConfig, EmbeddedChain, Ledger, LocalAccount, TxRequest};

const BLOCKS: &str = "blocks.dat";

async fn increment(chain: &EmbeddedChain, from: &LocalAccount, counter: Address) -> u64 {
    chain
        .send_transaction(
            from,
            TxRequest {
                to: Some(counter),
                data: conformance::INCREMENT.to_vec().into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .block_number
}

/// Byte offsets where each record of the block file starts.
fn record_offsets(dir: &Path) -> Vec<usize> {
    let bytes = std::fs::read(dir.join(BLOCKS)).unwrap();
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + 12 <= bytes.len() {
        offsets.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 12 + len;
    }
    offsets
}

#[tokio::test]
async fn restart_keeps_state_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let key = LocalAccount::random();
    let (counter, head, block2) = {
        let chain = EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap();
        let counter = conformance::deploy_counter(chain.as_ref(), &key).await;
        for _ in 0..3 {
            increment(&chain, &key, counter).await;
        }
        let block2 = chain.block(2).await.unwrap().unwrap();
        (counter, chain.head(), block2)
    };
    let chain = EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap();
    assert_eq!(chain.head(), head);
    assert_eq!(chain.block(2).await.unwrap().unwrap(), block2);
    assert_eq!(conformance::count(chain.as_ref(), counter).await, 3);
    // The nonce continues where it was.
    increment(&chain, &key, counter).await;
    assert_eq!(conformance::count(chain.as_ref(), counter).await, 4);
    drop(chain);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.transactions, 5);
    assert_eq!(report.blocks, head.number + 2);
    assert_eq!(report.torn_tail_bytes, 0);
    assert_ne!(report.state_digest, B256::ZERO);
}

#[tokio::test]
async fn reopening_under_another_chain_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap());
    let other = ChainConfig {
        chain_id: 7,
        ..Default::default()
    };
    let err = EmbeddedChain::open(dir.path(), other).unwrap_err();
    assert!(err.to_string().contains("chain id"), "{err}");
}

#[tokio::test]
async fn a_torn_final_record_is_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = LocalAccount::random();
    let (counter, head) = {
        let chain = EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap();
        let counter = conformance::deploy_counter(chain.as_ref(), &key).await;
        increment(&chain, &key, counter).await;
        increment(&chain, &key, counter).await;
        (counter, chain.head())
    };
    // Simulate a write cut short by a crash: the last record loses its tail.
    let path = dir.path().join(BLOCKS);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    assert_eq!(
        verify(dir.path()).unwrap().torn_tail_bytes,
        len - 7 - *record_offsets(dir.path()).last().unwrap() as u64
    );
    let chain = EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap();
    assert_eq!(chain.head().number, head.number - 1);
    assert_eq!(conformance::count(chain.as_ref(), counter).await, 1);
    // The chain goes on from there, and the result verifies.
    increment(&chain, &key, counter).await;
    drop(chain);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.torn_tail_bytes, 0);
    assert_eq!(report.head_number, head.number);
}

#[tokio::test]
async fn a_changed_byte_in_an_early_block_fails_open_and_verify_naming_the_block() {
    let dir = tempfile::tempdir().unwrap();
    let key = LocalAccount::random();
    {
        let chain = EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap();
        let counter = conformance::deploy_counter(chain.as_ref(), &key).await;
        for _ in 0..3 {
            increment(&chain, &key, counter).await;
        }
    }
    let offsets = record_offsets(dir.path());
    assert!(offsets.len() >= 5);
    let path = dir.path().join(BLOCKS);
    let mut bytes = std::fs::read(&path).unwrap();
    let victim = offsets[2] + 12 + 100; // inside block 2's payload
    bytes[victim] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = verify(dir.path()).unwrap_err().to_string();
    assert!(err.contains("block 2"), "{err}");
    let err = EmbeddedChain::open(dir.path(), ChainConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("block 2") && err.contains("corrupt"), "{err}");
}

/// Not a test by itself: the writer that `a_killed_writer_…` kills.
#[tokio::test]
async fn kill_target_writer() {
    let Ok(dir) = std::env::var("LEDGERMQ_KILL_TARGET_DIR") else {
        return;
    };
    let chain = EmbeddedChain::open(Path::new(&dir), ChainConfig::default()).unwrap();
    let key = LocalAccount::random();
    let counter = conformance::deploy_counter(chain.as_ref(), &key).await;
    println!("counter {counter}");
    for acked in 1.. {
        increment(&chain, &key, counter).await;
        println!("acked {acked}");
    }
}

#[tokio::test]
async fn a_killed_writer_reopens_at_its_last_acknowledged_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_target_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LEDGERMQ_KILL_TARGET_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut counter = None;
    let mut acked = 0u64;
    while acked < 40 {
        let line = lines.next().expect("writer output").unwrap();
        // libtest may put "test kill_target_writer ... " before the first line.
        if let Some((_, address)) = line.split_once("counter ") {
            counter = Some(address.trim().parse::<Address>().unwrap());
        } else if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().unwrap();
        }
    }
    child.kill().unwrap(); // SIGKILL: no clean shutdown
    child.wait().unwrap();
    let chain = EmbeddedChain::open(dir.path(), ChainConfig::default()).unwrap();
    let count = conformance::count(chain.as_ref(), counter.unwrap()).await;
    assert!(count >= acked, "acknowledged {acked}, found {count}");
    drop(chain);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.transactions, count + 1);
}
