//! Shared by the rpc_/contracts_/view_/admin_ tests: a real anvil process on
//! a free port, funded test accounts and a secp256k1 test signer.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use k256::ecdsa::SigningKey;
use ledgermq_ledger::{Ledger, LedgerError, LedgerResult, RpcLedger, Signer, TxRequest};

/// anvil's first dev account (well-known, funded with 10,000 ETH).
pub const ANVIL_KEY0: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// The anvil executable installed by scripts/install-test-deps-ledger.
///
/// `node_modules/.bin/anvil` is a node script that runs the platform
/// package's binary as its child: killing the script would orphan the real
/// anvil, so the binary is started directly when it can be found.
pub fn anvil_binary() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let packages = root.join("tools/anvil/node_modules/@foundry-rs");
    let native = std::fs::read_dir(&packages)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("anvil-"))
        .map(|e| e.path().join("bin/anvil"))
        .find(|bin| bin.is_file());
    if let Some(bin) = native {
        return bin;
    }
    let bin = root.join("tools/anvil/node_modules/.bin/anvil");
    assert!(
        bin.exists(),
        "anvil is not installed: run scripts/install-test-deps-ledger (expected {})",
        bin.display()
    );
    bin
}

/// A running anvil, killed on drop.
pub struct Anvil {
    child: Child,
    pub url: String,
    pub port: u16,
}

impl Anvil {
    pub fn start() -> Anvil {
        let bin = anvil_binary();
        for _ in 0..10 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args([
                    "--port",
                    &port.to_string(),
                    "--hardfork",
                    "cancun",
                    "--silent",
                ])
                .args(["--host", "127.0.0.1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn anvil");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Anvil {
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                        port,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("could not start anvil on a free port");
    }
}

impl Anvil {
    /// Process id of the anvil child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A secp256k1 key for tests.
pub struct TestKey {
    key: SigningKey,
    address: Address,
}

impl TestKey {
    pub fn from_hex(hex: &str) -> TestKey {
        let bytes = alloy_primitives::hex::decode(hex).expect("hex key");
        let key = SigningKey::from_slice(&bytes).expect("valid key");
        let address = Address::from_public_key(key.verifying_key());
        TestKey { key, address }
    }

    pub fn random() -> TestKey {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let address = Address::from_public_key(key.verifying_key());
        TestKey { key, address }
    }

    pub fn secret_hex(&self) -> String {
        alloy_primitives::hex::encode(self.key.to_bytes())
    }
}

impl Signer for TestKey {
    fn address(&self) -> Address {
        self.address
    }

    fn sign_hash(&self, hash: &B256) -> LedgerResult<[u8; 65]> {
        let (sig, rec) = self
            .key
            .sign_prehash_recoverable(hash.as_slice())
            .map_err(|e| LedgerError::Other(e.to_string()))?;
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = rec.is_y_odd() as u8;
        Ok(out)
    }
}

/// Sends 100 ETH from anvil's first account to each of `to`.
pub async fn fund(ledger: &dyn Ledger, to: &[Address]) {
    let funder = TestKey::from_hex(ANVIL_KEY0);
    for a in to {
        let tx = TxRequest {
            to: Some(*a),
            value: U256::from(100u64) * U256::from(10u64).pow(U256::from(18u64)),
            ..TxRequest::default()
        };
        ledger
            .send_transaction(&funder, tx)
            .await
            .expect("fund account");
    }
}

/// An anvil and an `RpcLedger` connected to it.
pub async fn anvil_ledger() -> (Anvil, Arc<dyn Ledger>) {
    let anvil = Anvil::start();
    let ledger = RpcLedger::connect(&anvil.url)
        .await
        .expect("connect to anvil");
    (anvil, Arc::new(ledger))
}

/// `n` fresh accounts funded on `ledger` (a no-op funding on chains without fees is harmless).
pub async fn funded_keys(ledger: &dyn Ledger, n: usize) -> Vec<TestKey> {
    let keys: Vec<TestKey> = (0..n).map(|_| TestKey::random()).collect();
    let addrs: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    fund(ledger, &addrs).await;
    keys
}
