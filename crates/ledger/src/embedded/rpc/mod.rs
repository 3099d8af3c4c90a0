//! The embedded chain's Ethereum JSON-RPC endpoint (HTTP POST, JSON-RPC
//! 2.0, batches).
//!
//! Why: while a broker runs it holds the data-dir lock, so the admin CLI,
//! other broker nodes and auditors' tools (alloy, `cast`) reach its ledger
//! through this endpoint instead. Only the subset those tools need is
//! served (see `methods.rs`).
//!
//! The endpoint has no authentication, so every input is hostile and every
//! resource is bounded by [`RpcServerConfig`]: bodies (413 beyond), the
//! time to send headers and then the body (a slow sender is cut off),
//! batch sizes, connections, and the gas, time and threads of
//! `eth_call`/`eth_estimateGas` (`execute.rs`); transactions are accepted
//! only from consortium members and an allow-list (`admission.rs`).

mod admission;
mod execute;
mod methods;
mod render;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use admission::SenderPolicy;

use crate::embedded::EmbeddedChain;
use crate::ledger::{LedgerError, LedgerResult};
use admission::Admission;
use execute::CallPool;

/// The default gas cap of one `eth_call`: the most expensive work per gas
/// we found (a loop of `ecrecover` precompile calls, ~8 Mgas/s with revm's
/// pure-Rust k256 on the 2-core dev machine) takes about 1 s with it. It
/// is twice what deploying the Consortium contract needs (~3.6 M with four
/// founders), so `eth_estimateGas` of every ledgermq transaction fits.
/// `examples/rpc_call_cost.rs` measures it; docs/ledger.md has the table.
pub const DEFAULT_CALL_GAS_CAP: u64 = 8_000_000;

/// Limits and policy of a JSON-RPC endpoint. The defaults are what
/// `ledgermq serve` uses unless configured (docs/ledger.md).
#[derive(Debug, Clone)]
pub struct RpcServerConfig {
    /// Largest request body; larger ones get 413 and the connection closes.
    pub max_body_bytes: usize,
    /// Time a client has to send a request's headers, and then again its
    /// body (also how long an idle keep-alive connection stays open). A
    /// request that is not complete in time is cut off.
    pub read_timeout: Duration,
    /// Requests in one JSON-RPC batch.
    pub max_batch: usize,
    /// Simultaneous connections; more are closed at once.
    pub max_connections: usize,
    /// Gas limit of one `eth_call` / `eth_estimateGas` (a larger `gas` in
    /// the request is lowered to it). This is what bounds the CPU time of
    /// one call: revm has no wall clock.
    pub call_gas_cap: u64,
    /// Time a client waits for an `eth_call` / `eth_estimateGas`,
    /// including the wait for a free execution thread; then it gets an
    /// error and the result is discarded.
    pub call_timeout: Duration,
    /// Threads executing calls at once (the others wait). Default: half the
    /// cores (1 to 4), so calls can never take the whole machine.
    pub call_threads: usize,
    /// Who may send transactions.
    pub senders: SenderPolicy,
}

impl Default for RpcServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            read_timeout: Duration::from_secs(10),
            max_batch: 100,
            max_connections: 128,
            call_gas_cap: DEFAULT_CALL_GAS_CAP,
            call_timeout: Duration::from_secs(5),
            call_threads: std::thread::available_parallelism()
                .map_or(1, |n| (n.get() / 2).clamp(1, 4)),
            senders: SenderPolicy::default(),
        }
    }
}

impl RpcServerConfig {
    /// The gas limit of a call that asked for `requested`.
    fn call_gas(&self, requested: Option<u64>) -> u64 {
        requested.map_or(self.call_gas_cap, |g| g.min(self.call_gas_cap))
    }
}

/// What every connection's handler shares.
pub(super) struct Server {
    chain: Arc<EmbeddedChain>,
    config: RpcServerConfig,
    calls: CallPool,
    admission: Admission,
}

/// A running JSON-RPC server; stop it with [`RpcServerHandle::shutdown`]
/// (dropping the handle stops it too).
pub struct RpcServerHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RpcServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RpcServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR` — what `--rpc` and alloy providers take.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting, closes open connections and waits for the server.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RpcServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl EmbeddedChain {
    /// Serves Ethereum JSON-RPC on `addr` (use port 0 for any free port)
    /// with `config`'s limits and sender policy. A taken port is an error,
    /// never a reason to try another. Must be called inside a tokio runtime.
    pub async fn serve_rpc(
        self: &Arc<Self>,
        addr: SocketAddr,
        config: RpcServerConfig,
    ) -> LedgerResult<RpcServerHandle> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| LedgerError::Other(format!("cannot listen on {addr}: {e}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| LedgerError::Other(e.to_string()))?;
        if !local_addr.ip().is_loopback() {
            tracing::warn!(
                %local_addr,
                "ledger JSON-RPC served beyond loopback: it has no authentication (anyone who \
                 reaches it reads the ledger and runs calls; only transactions are restricted)"
            );
        }
        let server = Arc::new(Server {
            chain: self.clone(),
            calls: CallPool::new(config.call_threads, config.call_timeout),
            admission: Admission::new(config.senders.clone()),
            config,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(server, listener, stopped));
        tracing::info!(%local_addr, "ledger JSON-RPC listening");
        Ok(RpcServerHandle {
            local_addr,
            stop,
            task: Some(task),
        })
    }
}

async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                if connections.len() >= server.config.max_connections {
                    tracing::debug!("JSON-RPC connection limit reached: connection closed");
                    continue; // dropped: the client sees a closed connection
                }
                let server = server.clone();
                connections.spawn(async move {
                    let read_timeout = server.config.read_timeout;
                    let service = hyper::service::service_fn(move |req| handle(server.clone(), req));
                    // The header timeout also runs while a kept-alive
                    // connection waits for its next request.
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(read_timeout)
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "JSON-RPC connection ended");
                    }
                });
            }
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn handle(
    server: Arc<Server>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST {
        return Ok(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "JSON-RPC wants POST\n",
        ));
    }
    let limits = &server.config;
    let read = Limited::new(req.into_body(), limits.max_body_bytes).collect();
    let body = match tokio::time::timeout(limits.read_timeout, read).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return Ok(closing(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {} bytes\n", limits.max_body_bytes),
            ))
        }
        Ok(Err(e)) => {
            return Ok(closing(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}\n"),
            ))
        }
        Err(_) => {
            return Ok(closing(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within {} ms\n",
                    limits.read_timeout.as_millis()
                ),
            ))
        }
    };
    let answer = methods::handle_body(&server, &body).await;
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// An error answer after which the connection closes (the rest of the
/// request is never read).
fn closing(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}
