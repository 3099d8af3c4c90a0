//! The embedded chain's Ethereum JSON-RPC endpoint (HTTP POST, JSON-RPC
//! 2.0, batches).
//!
//! Why: while a broker runs it holds the data-dir lock, so the admin CLI,
//! other broker nodes and auditors' tools (alloy, `cast`) reach its ledger
//! through this endpoint instead. Only the subset those tools need is
//! served (see `methods.rs`). Every input is hostile: bodies are capped at
//! [`MAX_BODY_BYTES`], batches at [`MAX_BATCH`], connections at
//! [`MAX_CONNECTIONS`], and request headers must arrive within 10 s.

mod methods;
mod render;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::embedded::EmbeddedChain;
use crate::ledger::{LedgerError, LedgerResult};

pub const MAX_BODY_BYTES: usize = 5 << 20;
pub const MAX_BATCH: usize = 1_000;
pub const MAX_CONNECTIONS: usize = 512;

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
    /// Serves Ethereum JSON-RPC on `addr` (use port 0 for any free port).
    /// Must be called inside a tokio runtime.
    pub async fn serve_rpc(self: &Arc<Self>, addr: SocketAddr) -> LedgerResult<RpcServerHandle> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| LedgerError::Unreachable {
                url: format!("http://{addr}"),
                message: format!("cannot listen: {e}"),
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| LedgerError::Other(e.to_string()))?;
        if !local_addr.ip().is_loopback() {
            tracing::warn!(%local_addr, "JSON-RPC served beyond loopback: it has no authentication");
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(self.clone(), listener, stopped));
        tracing::info!(%local_addr, "ledger JSON-RPC listening");
        Ok(RpcServerHandle {
            local_addr,
            stop,
            task: Some(task),
        })
    }
}

async fn accept_loop(
    chain: Arc<EmbeddedChain>,
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
                if connections.len() >= MAX_CONNECTIONS {
                    continue; // dropped: the client sees a closed connection
                }
                let chain = chain.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(chain.clone(), req));
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
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
    chain: Arc<EmbeddedChain>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST {
        return Ok(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "JSON-RPC wants POST\n",
        ));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large\n",
            ))
        }
    };
    let answer = methods::handle_body(&chain, &body).await;
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
