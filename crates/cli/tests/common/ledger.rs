//! The ledger side of the integration tests: the `ledgermq` CLI run in a
//! directory (admin, keys, device commands) and a real anvil chain.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::ledgermq_bin;

/// anvil's first pre-funded account (its well-known development key).
pub const ANVIL_KEY0: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `ledgermq ARGS` in `dir`.
pub fn ledgermq(dir: &Path, args: &[&str]) -> Output {
    Command::new(ledgermq_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run ledgermq")
}

/// Runs `ledgermq ARGS` in `dir`, asserts success and returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = ledgermq(dir, args);
    assert!(
        out.status.success(),
        "ledgermq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running anvil, killed on drop.
pub struct Anvil(Child);

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The platform's anvil executable. `node_modules/.bin/anvil` is a node
/// wrapper whose child would outlive a kill of the wrapper, so start the
/// native binary directly.
pub fn anvil_binary() -> PathBuf {
    let packages = repo().join("tools/anvil/node_modules/@foundry-rs");
    std::fs::read_dir(&packages)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("anvil-"))
        .map(|e| e.path().join("bin/anvil"))
        .find(|bin| bin.is_file())
        .unwrap_or_else(|| {
            panic!(
                "anvil is not installed in {}: run scripts/install-test-deps-ledger",
                packages.display()
            )
        })
}

/// Starts anvil on a free loopback port; returns it and its JSON-RPC URL.
pub fn start_anvil() -> (Anvil, String) {
    let bin = anvil_binary();
    for _ in 0..10 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--hardfork", "cancun"])
            .args(["--silent", "--host", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn anvil");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (Anvil(child), format!("http://127.0.0.1:{port}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not start anvil");
}
