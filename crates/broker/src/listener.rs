//! TCP and TLS listeners: accept, apply the connection limit, hand the
//! stream to a connection task.

use std::io::BufReader;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::broker::Broker;
use crate::connection;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    #[error("no private key found in {0}")]
    NoKey(String),
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds a TLS acceptor from PEM files.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsConfigError> {
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(BufReader::new)
            .map_err(|source| TlsConfigError::Read {
                path: p.display().to_string(),
                source,
            })
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsConfigError::Read {
            path: cert.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate(cert.display().to_string()));
    }
    let key_der = rustls_pemfile::private_key(&mut open(key)?)
        .map_err(|source| TlsConfigError::Read {
            path: key.display().to_string(),
            source,
        })?
        .ok_or_else(|| TlsConfigError::NoKey(key.display().to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until `stop` turns true.
pub async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limit: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; closing new connection");
            Metrics::add(&broker.metrics.connections_refused, 1);
            drop(stream);
            continue;
        };
        let Some(slot) = AddressSlot::take(&broker, peer.ip()) else {
            tracing::debug!(%peer, "too many connections from this address; closing");
            Metrics::add(&broker.metrics.connections_refused, 1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            serve_stream(broker.clone(), stream, peer, tls).await;
            drop(slot);
            drop(permit);
        });
    }
}

/// One connection counted against `max_connections_per_address`.
struct AddressSlot {
    broker: Option<Arc<Broker>>,
    ip: IpAddr,
}

impl AddressSlot {
    fn take(broker: &Arc<Broker>, ip: IpAddr) -> Option<AddressSlot> {
        let limit = broker.config.max_connections_per_address;
        if limit == 0 {
            return Some(AddressSlot { broker: None, ip });
        }
        let mut counts = broker.per_address.lock();
        let n = counts.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            broker: Some(broker.clone()),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(broker) = &self.broker else {
            return;
        };
        let mut counts = broker.per_address.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

async fn serve_stream(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    match tls {
        None => connection::serve(broker, stream, peer, local).await,
        Some(acceptor) => {
            let timeout = Duration::from_secs(broker.config.connect_timeout);
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => connection::serve(broker, tls_stream, peer, local).await,
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}
