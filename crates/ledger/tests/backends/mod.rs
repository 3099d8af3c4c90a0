//! One ledger per test binary, shared by all its `#[test]` functions: the
//! embedded chain in-process, `RpcLedger` → anvil, and `RpcLedger` → the
//! embedded chain's own JSON-RPC server.
//!
//! A backend lives in a `static` together with the tokio runtime that drives
//! it, because an `RpcLedger`'s connections belong to the runtime that opened
//! them: a per-test `#[tokio::test]` runtime would kill them for the next
//! test. Statics are never dropped, so what must not outlive the process (the
//! anvil child, the chain directory) is handed to a watchdog shell that
//! cleans up once its stdin — held open by this process — reaches EOF, i.e.
//! when the test process exits, however it exits.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use alloy_primitives::{Address, B256, U256};
use ledgermq_ledger::{
    ChainConfig, EmbeddedChain, Ledger, LocalAccount, RpcLedger, RpcServerConfig, RpcServerHandle,
    SenderPolicy, Signer, TxRequest,
};
use tokio::runtime::Runtime;

use crate::rpc_support::{Anvil, ANVIL_KEY0};

/// A ledger shared by the tests of one binary.
pub struct Backend {
    runtime: Runtime,
    pub ledger: Arc<dyn Ledger>,
    /// Pays for the accounts of [`Backend::account`] on chains that charge gas.
    pub funder: Option<Arc<LocalAccount>>,
    _chain: Option<Arc<EmbeddedChain>>,
    _server: Option<RpcServerHandle>,
    _anvil: Option<Anvil>,
    /// Its stdin is our end of the watchdog's pipe.
    _watchdog: Child,
}

impl Backend {
    /// Runs `future` to completion on the backend's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// A fresh account that can send transactions on this backend.
    pub async fn account(&self) -> LocalAccount {
        fresh_account(self.ledger.as_ref(), self.funder.as_deref()).await
    }
}

/// A random account, funded by `funder` when there is one.
pub async fn fresh_account(ledger: &dyn Ledger, funder: Option<&LocalAccount>) -> LocalAccount {
    let account = LocalAccount::random();
    if let Some(funder) = funder {
        fund(ledger, funder, account.address()).await;
    }
    account
}

async fn fund(ledger: &dyn Ledger, funder: &LocalAccount, to: Address) {
    let tx = TxRequest {
        to: Some(to),
        value: U256::from(10u64).pow(U256::from(20u64)),
        ..TxRequest::default()
    };
    ledger
        .send_transaction(funder, tx)
        .await
        .expect("fund a test account");
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Starts a shell that, at our exit, kills `pid` and removes `dir`.
fn watchdog(pid: Option<u32>, dir: Option<&Path>) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(r#"read _line; [ -n "$0" ] && kill "$0" 2>/dev/null; [ -n "$1" ] && rm -rf "$1"; exit 0"#)
        .arg(pid.map(|p| p.to_string()).unwrap_or_default())
        .arg(dir.map(|d| d.display().to_string()).unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the cleanup watchdog")
}

fn open_chain() -> (Arc<EmbeddedChain>, Child) {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let watchdog = watchdog(None, Some(&dir));
    let chain = EmbeddedChain::open(&dir, ChainConfig::default()).expect("open embedded chain");
    (chain, watchdog)
}

/// The embedded chain, in-process.
pub fn embedded() -> &'static Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let (chain, watchdog) = open_chain();
        Backend {
            runtime: runtime(),
            ledger: chain.clone(),
            funder: None,
            _chain: Some(chain),
            _server: None,
            _anvil: None,
            _watchdog: watchdog,
        }
    })
}

/// `RpcLedger` → the embedded chain's own JSON-RPC server (`serve_rpc`).
pub fn embedded_rpc() -> &'static Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let (chain, watchdog) = open_chain();
        let runtime = runtime();
        let (server, ledger) = runtime.block_on(async {
            // The suites here are about the chain and the contracts, and
            // their throwaway accounts are nobody's members: an open node.
            // Who may send is tested in embedded_rpc.rs.
            let config = RpcServerConfig {
                senders: SenderPolicy::Anyone,
                ..RpcServerConfig::default()
            };
            let server = chain
                .serve_rpc("127.0.0.1:0".parse().unwrap(), config)
                .await
                .expect("serve JSON-RPC");
            let ledger = RpcLedger::connect(&server.url())
                .await
                .expect("connect to the embedded node");
            (server, ledger)
        });
        Backend {
            runtime,
            ledger: Arc::new(ledger),
            funder: None,
            _chain: Some(chain),
            _server: Some(server),
            _anvil: None,
            _watchdog: watchdog,
        }
    })
}

/// `RpcLedger` → a real anvil; accounts are funded from anvil's first dev account.
pub fn anvil() -> &'static Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let anvil = Anvil::start();
        let watchdog = watchdog(Some(anvil.pid()), None);
        let runtime = runtime();
        let ledger = runtime.block_on(async {
            RpcLedger::connect(&anvil.url)
                .await
                .expect("connect to anvil")
        });
        let secret: B256 = ANVIL_KEY0.parse().expect("anvil key");
        Backend {
            runtime,
            ledger: Arc::new(ledger),
            funder: Some(Arc::new(
                LocalAccount::from_secret(&secret).expect("anvil key"),
            )),
            _chain: None,
            _server: None,
            _anvil: Some(anvil),
            _watchdog: watchdog,
        }
    })
}
