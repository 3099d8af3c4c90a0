//! ledgermq-broker: the MQTT 3.1.1 / 5.0 broker core.
//!
//! Owns sessions, the subscription tree, QoS 0/1/2 flows, retained
//! messages, wills, persistence and listeners. It does not decide who may
//! connect, publish or subscribe: it asks the [`auth::Authenticator`] and
//! [`auth::Authorizer`] traits, whose plain implementations (password file,
//! ACL file) live in [`auth`].
//!
//! Layout, one concept per file: [`broker`] (shared state and routing),
//! [`rules`] (the session rules as decisions without I/O), [`lifecycle`]
//! (CONNECT, takeover, disconnect, expiry, wills), [`session`] (per-client
//! state), [`router`] (subscription trie), [`retained`], [`timers`]
//! (delayed wills and expiries), [`store`] (redb persistence),
//! `connection/` (handshake, reader, writer), [`auth_pool`] (bounded
//! authentication work), [`listener`] (TCP/TLS), [`sys`] (`$SYS` topics).
//!
//! Every limit a client could push against is in [`config::Config`] and
//! docs/configuration.md ("Limits"): topic depth and length, sessions,
//! subscriptions, queues, retained messages, connections per address,
//! pending CONNECT bytes, authentication workers, the store's backlog.

pub mod auth;
pub mod auth_pool;
pub mod broker;
pub mod config;
mod connection;
mod inline_stack;
pub mod lifecycle;
pub mod listener;
pub mod message;
pub mod metrics;
pub mod metrics_http;
pub mod retained;
pub mod router;
pub mod rules;
pub mod session;
pub mod store;
pub mod sys;
pub mod timers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ledgermq_proto::ReasonCode;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

pub use broker::Broker;
pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    AuthFile(#[from] auth::AuthFileError),
    #[error(transparent)]
    Tls(#[from] listener::TlsConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A broker that is accepting connections.
pub struct RunningBroker {
    pub broker: Arc<Broker>,
    pub mqtt_addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    store_thread: Option<std::thread::JoinHandle<()>>,
    housekeeping: tokio::task::JoinHandle<()>,
}

/// Who decides authentication and authorisation for a broker.
pub struct Security {
    pub authenticator: Box<dyn auth::Authenticator>,
    pub authorizer: Box<dyn auth::Authorizer>,
}

impl Security {
    /// The plain mode: the config's password and ACL files, or anonymous
    /// access to everything.
    pub fn plain(config: &Config) -> Result<Security, StartError> {
        let authenticator: Box<dyn auth::Authenticator> = match &config.password_file {
            Some(p) => Box::new(auth::PasswordFile::load(p, config.anonymous_allowed())?),
            None => Box::new(auth::AllowAnonymous(config.anonymous_allowed())),
        };
        let authorizer: Box<dyn auth::Authorizer> = match &config.acl_file {
            Some(p) => Box::new(auth::AclFile::load(p)?),
            None => Box::new(auth::AllowAll),
        };
        Ok(Security {
            authenticator,
            authorizer,
        })
    }
}

/// Creates `dir` (and its parents) readable by its owner only (0700) if it
/// does not exist; an existing directory keeps its mode (as
/// `ledgermq_keystore::secret_file::create_private_dir`, which the broker
/// core does not depend on). The data directory holds sessions, messages
/// and, in the ledger mode, the node's counters (docs/persistence.md).
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Makes an existing file readable and writable by its owner only (0600).
pub fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Serves one client connection over any byte stream (TCP, TLS, a
/// WebSocket adapter, an in-memory pipe in tests) until it closes: the one
/// connection code under every transport. `peer` is the client's address,
/// `local` the listener's.
pub async fn serve_connection<S>(
    broker: Arc<Broker>,
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    connection::serve(broker, stream, peer, local).await
}

/// Starts a broker in the plain security mode.
pub async fn start(config: Config) -> Result<RunningBroker, StartError> {
    let security = Security::plain(&config)?;
    start_with(config, security).await
}

/// Opens the store, restores state, binds the listeners and starts serving,
/// asking `security` for every authentication and authorisation decision.
pub async fn start_with(config: Config, security: Security) -> Result<RunningBroker, StartError> {
    config.validate()?;
    let Security {
        authenticator,
        authorizer,
    } = security;
    let tls = match (&config.tls_listen, &config.tls_cert, &config.tls_key) {
        (Some(_), Some(c), Some(k)) => Some(listener::tls_acceptor(c, k)?),
        _ => None,
    };
    let (store, loaded, store_thread) = if config.persistence {
        private_dir(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let path = config.data_dir.join("broker.redb");
        let (s, l, h) = store::Store::open(&path)?;
        // The store holds messages (in the SCAC mode, opened payloads):
        // owner only.
        private_file(&path).map_err(|source| StartError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
        (Some(s), Some(l), Some(h))
    } else {
        (None, None, None)
    };
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    };
    let mqtt = bind(config.listen).await?;
    let tls_listener = match config.tls_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let broker = Arc::new(Broker::new(config, store, authenticator, authorizer));
    if let Some(l) = loaded {
        broker.restore(l);
    }
    let mqtt_addr = mqtt.local_addr().map_err(|source| StartError::Bind {
        addr: broker.config.listen,
        source,
    })?;
    let tls_addr = tls_listener.as_ref().and_then(|l| l.local_addr().ok());
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    let (stop, stop_rx) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(broker.config.max_connections));
    tokio::spawn(listener::accept_loop(
        broker.clone(),
        mqtt,
        None,
        limit.clone(),
        stop_rx.clone(),
    ));
    if let (Some(l), Some(acceptor)) = (tls_listener, tls) {
        tokio::spawn(listener::accept_loop(
            broker.clone(),
            l,
            Some(acceptor),
            limit,
            stop_rx.clone(),
        ));
    }
    if let Some(l) = metrics_listener {
        tokio::spawn(metrics_http::serve(broker.clone(), l, stop_rx.clone()));
    }
    let housekeeping = tokio::spawn(sys::housekeeping(broker.clone()));
    Ok(RunningBroker {
        broker,
        mqtt_addr,
        tls_addr,
        metrics_addr,
        stop,
        store_thread,
        housekeeping,
    })
}

impl RunningBroker {
    /// Stops accepting, tells MQTT 5 clients the server is shutting down,
    /// and waits for the store to write everything queued.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.housekeeping.abort();
        self.broker.disconnect_all(ReasonCode::SERVER_SHUTTING_DOWN);
        // Give connections a moment to flush their DISCONNECTs and detach.
        for _ in 0..50 {
            if metrics::Metrics::get(&self.broker.metrics.clients_connected) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let done = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = done;
        self.broker.after_durable(move || {
            let _ = tx.send(());
        });
        let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        // The store thread ends when the last handle (inside the broker) is
        // dropped; it has already committed everything we waited for.
        drop(self.store_thread.take());
    }
}
