//! `ledgermq serve` and `ledgermq passwd`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use ledgermq_access::{AccessSettings, LedgerSecurity, ScacConfig, ViewOptions};
use ledgermq_broker::auth::PasswordFile;
use ledgermq_broker::config::SecurityMode;
use ledgermq_broker::Config;
use ledgermq_keystore::software::SoftwareEd25519;
use ledgermq_keystore::{Ed25519Signer, KeyHandle, KeyRef};
use ledgermq_ledger::admin::BrokerNodeFile;
use ledgermq_ledger::contracts::Deployment;
use ledgermq_ledger::{
    ChainConfig, EmbeddedChain, Ledger, LocalAccount, RpcLedger, RpcOptions, RpcServerConfig,
    RpcServerHandle, SenderPolicy,
};

use ledgermq_security::scac::{LocalKey, Suite};

use crate::ledger_cmd::{CHAIN_SUBDIR, DEPLOYMENT_FILE};

/// Every key of the config file, as a flag; a flag overrides the file.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML config file (keys documented in docs/configuration.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Plain MQTT listener address [default: 127.0.0.1:1883].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory for persistent state [default: ./ledgermq-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep sessions, retained and un-acknowledged messages across restarts [default: true].
    #[arg(long)]
    persistence: Option<bool>,
    /// TLS listener address (needs --tls-cert and --tls-key).
    #[arg(long)]
    tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS listener.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Password file (`ledgermq passwd` writes it).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Topic ACL file.
    #[arg(long)]
    acl_file: Option<PathBuf>,
    /// Accept clients without a user name [default: true without a password file].
    #[arg(long)]
    allow_anonymous: Option<bool>,
    /// Largest packet accepted or sent, bytes [default: 1048576].
    #[arg(long)]
    max_packet_size: Option<u32>,
    /// Receive Maximum announced to clients [default: 1024].
    #[arg(long)]
    receive_maximum: Option<u16>,
    /// QoS 1/2 messages in flight towards one client [default: 1024].
    #[arg(long)]
    max_inflight: Option<u16>,
    /// Messages queued per session beyond those in flight [default: 10000].
    #[arg(long)]
    max_queued_messages: Option<usize>,
    /// Subscriptions one session may hold [default: 10000].
    #[arg(long)]
    max_subscriptions: Option<usize>,
    /// Sessions the broker keeps, connected or not [default: 1000000].
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Levels a topic name or filter may have, 1-65536 [default: 128].
    #[arg(long)]
    max_topic_levels: Option<usize>,
    /// Bytes a topic name or filter may have, 1-65535 [default: 4096].
    #[arg(long)]
    max_topic_length: Option<usize>,
    /// Retained messages the broker keeps [default: 100000].
    #[arg(long)]
    max_retained_messages: Option<usize>,
    /// Bytes of retained messages the broker keeps [default: 268435456].
    #[arg(long)]
    max_retained_bytes: Option<u64>,
    /// Topic Alias Maximum announced to MQTT 5 clients [default: 64].
    #[arg(long)]
    topic_alias_maximum: Option<u16>,
    /// Upper bound on a requested session expiry interval, seconds.
    #[arg(long)]
    max_session_expiry: Option<u32>,
    /// Upper bound on client keep-alive, seconds (MQTT 5 Server Keep Alive).
    #[arg(long)]
    max_keep_alive: Option<u16>,
    /// Seconds a new connection has to send CONNECT [default: 10].
    #[arg(long)]
    connect_timeout: Option<u64>,
    /// Seconds between $SYS publications, 0 to disable [default: 10].
    #[arg(long)]
    sys_interval: Option<u64>,
    /// Prometheus endpoint address (GET /metrics) [default: off].
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Maximum simultaneous connections [default: 100000].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Maximum simultaneous connections from one IP address, 0 = no limit [default: 0].
    #[arg(long)]
    max_connections_per_address: Option<usize>,
    /// Bytes all connections still reading their CONNECT may hold [default: 67108864].
    #[arg(long)]
    max_pending_connect_bytes: Option<usize>,
    /// Threads verifying passwords and authentication steps [default: one per CPU core].
    #[arg(long)]
    auth_workers: Option<usize>,
    /// Authentications that may wait for a worker; more get 0x89 Server busy [default: 256].
    #[arg(long)]
    auth_queue: Option<usize>,
    /// Store backlog in bytes above which connections stop reading [default: 67108864].
    #[arg(long)]
    max_store_backlog_bytes: Option<usize>,
    /// Threads serving connections [default: one per CPU core].
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Run the embedded ledger node in this process [default: when its
    /// JSON-RPC is configured, and in ledger mode without --ledger-rpc].
    #[arg(long)]
    embedded_ledger: Option<bool>,
    /// Embedded ledger JSON-RPC address [default: 127.0.0.1:8645 in ledger
    /// mode, none in plain mode]. No authentication: keep it on loopback.
    #[arg(long)]
    ledger_rpc_listen: Option<SocketAddr>,
    /// Accounts that may send transactions through the embedded ledger's
    /// JSON-RPC besides the consortium's admins and broker nodes, comma-separated.
    #[arg(long, value_name = "ADDRESSES")]
    ledger_rpc_tx_allow: Option<String>,
    /// Gas limit of one eth_call/eth_estimateGas on that endpoint [default: 8000000].
    #[arg(long)]
    ledger_rpc_call_gas_cap: Option<u64>,
    /// Time limit of one eth_call/eth_estimateGas there, ms [default: 5000].
    #[arg(long)]
    ledger_rpc_call_timeout_ms: Option<u64>,
    /// Security mode: plain or ledger [default: plain].
    #[arg(long)]
    security: Option<SecurityMode>,
    /// Ledger mode: JSON-RPC URL of the ledger [default: the embedded ledger].
    #[arg(long)]
    ledger_rpc: Option<String>,
    /// Ledger mode: accept a plain http:// --ledger-rpc on a non-loopback address
    /// (anyone on the path could forge the registry; warned at every start).
    #[arg(long)]
    ledger_rpc_insecure: Option<bool>,
    /// Ledger mode: blocks an event must be buried under before it is applied [default: 0].
    #[arg(long)]
    ledger_finality_depth: Option<u64>,
    /// Ledger mode: deployment file [default: DATA_DIR/ledger.toml].
    #[arg(long)]
    ledger_deployment: Option<PathBuf>,
    /// Ledger mode: this broker node's account key file.
    #[arg(long)]
    ledger_account: Option<PathBuf>,
    /// Ledger mode: this broker node's key file (<name>.node.json).
    #[arg(long)]
    ledger_node_keys: Option<PathBuf>,
    /// Ledger mode: registry polling interval, ms [default: 200].
    #[arg(long)]
    ledger_poll_interval_ms: Option<u64>,
    /// LMQ-OTP-1 challenge lifetime, seconds [default: 30].
    #[arg(long)]
    otp_challenge_lifetime: Option<u64>,
    /// TOTP time step, seconds [default: 30].
    #[arg(long)]
    totp_step: Option<u64>,
    /// TOTP digits, 6-9 [default: 8].
    #[arg(long)]
    totp_digits: Option<u32>,
    /// TOTP clock skew accepted, in steps [default: 1].
    #[arg(long)]
    totp_window: Option<u64>,
    /// Failed logins from one source that refuse it on this node, 0 = never [default: 5].
    #[arg(long)]
    auth_failure_limit: Option<u32>,
    /// Window for counting a source's failed logins, seconds [default: 60].
    #[arg(long)]
    auth_failure_window: Option<u64>,
    /// How long a source at the failure limit is refused, seconds [default: 300].
    #[arg(long)]
    auth_source_ban: Option<u64>,
    /// Misuse events of a device's valid credential that blacklist it on
    /// the ledger, 0 = never [default: 5].
    #[arg(long)]
    evidence_limit: Option<u32>,
    /// Window for counting misuse events, seconds [default: 60].
    #[arg(long)]
    evidence_window: Option<u64>,
    /// Blacklist duration decided by this node, seconds [default: 3600].
    #[arg(long)]
    blacklist_duration: Option<u64>,
    /// Longest delay before answering a failed authentication, ms [default: 5000].
    #[arg(long)]
    auth_failure_delay_max_ms: Option<u64>,
    /// Close the connection after a refused PUBLISH [default: true].
    #[arg(long)]
    disconnect_on_refused_publish: Option<bool>,
    /// Publish devices/<id>/... status reports [default: true].
    #[arg(long)]
    status_topics: Option<bool>,
    /// Enabled SCACAuth-* methods, comma-separated; "none" disables SCAC
    /// [default: SCACAuth-Ed25519-256-ChaCha20Poly1305-256].
    #[arg(long, value_name = "METHODS")]
    scac_suites: Option<String>,
    /// The broker's Ed25519 SCAC key (file:DIR#NAME or pkcs11:...)
    /// [default: the signing key of --ledger-node-keys].
    #[arg(long, value_name = "KEYREF")]
    scac_broker_key: Option<String>,
    /// The broker's RSA-2048 key for the SCAC compatibility suite.
    #[arg(long, value_name = "KEYREF")]
    scac_rsa_broker_key: Option<String>,
    /// SCAC compatibility suite: directory of device RSA public keys (<UID>.pem).
    #[arg(long, value_name = "DIR")]
    scac_rsa_device_keys: Option<PathBuf>,
    /// Seconds a source is refused SCAC after a failed SCAC authentication [default: 30].
    #[arg(long)]
    scac_lockout: Option<u64>,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { c.$field = v; } )* };
        }
        macro_rules! set_opt {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { c.$field = Some(v); } )* };
        }
        set!(
            listen,
            data_dir,
            persistence,
            max_packet_size,
            receive_maximum,
            max_inflight,
            max_queued_messages,
            max_subscriptions,
            max_sessions,
            max_topic_levels,
            max_topic_length,
            max_retained_messages,
            max_retained_bytes,
            max_connections_per_address,
            max_pending_connect_bytes,
            auth_queue,
            max_store_backlog_bytes,
            topic_alias_maximum,
            max_session_expiry,
            connect_timeout,
            sys_interval,
            max_connections,
            ledger_rpc_call_gas_cap,
            ledger_rpc_call_timeout_ms,
            security,
            ledger_poll_interval_ms,
            ledger_rpc_insecure,
            ledger_finality_depth,
            otp_challenge_lifetime,
            totp_step,
            totp_digits,
            totp_window,
            auth_failure_limit,
            auth_failure_window,
            auth_source_ban,
            evidence_limit,
            evidence_window,
            blacklist_duration,
            auth_failure_delay_max_ms,
            disconnect_on_refused_publish,
            status_topics,
            scac_lockout
        );
        if let Some(list) = self.ledger_rpc_tx_allow {
            c.ledger_rpc_tx_allow = list
                .split(',')
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect();
        }
        if let Some(list) = self.scac_suites {
            c.scac_suites = match list.trim() {
                "none" | "" => Vec::new(),
                list => list.split(',').map(|m| m.trim().to_owned()).collect(),
            };
        }
        set_opt!(
            tls_listen,
            tls_cert,
            tls_key,
            password_file,
            acl_file,
            allow_anonymous,
            metrics_listen,
            max_keep_alive,
            worker_threads,
            auth_workers,
            embedded_ledger,
            ledger_rpc_listen,
            ledger_rpc,
            ledger_deployment,
            ledger_account,
            ledger_node_keys,
            scac_broker_key,
            scac_rsa_broker_key,
            scac_rsa_device_keys
        );
        Ok(c)
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = args.into_config()?;
    config.validate()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = builder
        .enable_all()
        .thread_name("ledgermq")
        .build()
        .context("cannot start the async runtime")?;
    // Owner-only before anything lands in it: the data dir holds the replay
    // counters, sessions and (SCAC) decrypted payloads (docs/persistence.md).
    if config.persistence || config.runs_embedded_ledger() {
        create_data_dir(&config.data_dir)?;
    }
    runtime.block_on(async move {
        // The ledger first: replaying its history may take a moment, and
        // a broker should not accept clients before its ledger is there.
        let ledger = match config.runs_embedded_ledger() {
            true => Some(LedgerNode::start(&config).await?),
            false => None,
        };
        let security = match config.security {
            SecurityMode::Plain => None,
            SecurityMode::Ledger => {
                let chain = ledger.as_ref().map(|l| l.chain.clone());
                Some(ledger_security(&config, chain).await?)
            }
        };
        let running = match &security {
            None => ledgermq_broker::start(config).await?,
            Some(s) => ledgermq_broker::start_with(config, s.security()).await?,
        };
        let _enforcement = security.as_ref().map(|s| s.attach(&running.broker));
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "LISTENING mqtt {}", running.mqtt_addr)?;
            if let Some(a) = running.tls_addr {
                writeln!(out, "LISTENING mqtts {a}")?;
            }
            if let Some(a) = running.metrics_addr {
                writeln!(out, "LISTENING metrics {a}")?;
            }
            if let Some(rpc) = ledger.as_ref().and_then(|l| l.rpc.as_ref()) {
                writeln!(out, "LISTENING ledger-rpc {}", rpc.local_addr())?;
            }
            out.flush()?;
        }
        tracing::info!(addr = %running.mqtt_addr, "ledgermq broker listening");
        wait_for_signal().await;
        tracing::info!("shutting down");
        running.shutdown().await;
        if let Some(rpc) = ledger.and_then(|l| l.rpc) {
            rpc.shutdown().await;
        }
        anyhow::Ok(())
    })
}

/// Joins the consortium as a broker node: reads the registry from the
/// configured ledger and checks this node's keys against it.
async fn ledger_security(
    config: &Config,
    embedded: Option<Arc<EmbeddedChain>>,
) -> anyhow::Result<LedgerSecurity> {
    let ledger: Arc<dyn Ledger> = match (&config.ledger_rpc, embedded) {
        (Some(url), _) => Arc::new(
            RpcLedger::connect_with(
                url,
                RpcOptions {
                    allow_insecure_http: config.ledger_rpc_insecure,
                    ..RpcOptions::default()
                },
            )
            .await
            .with_context(|| format!("cannot reach the ledger at {url}"))?,
        ),
        (None, Some(chain)) => chain,
        (None, None) => {
            anyhow::bail!("security = ledger needs --ledger-rpc or the embedded ledger")
        }
    };
    let deployment_file = config
        .ledger_deployment
        .clone()
        .unwrap_or_else(|| config.data_dir.join(DEPLOYMENT_FILE));
    let text = std::fs::read_to_string(&deployment_file).with_context(|| {
        format!(
            "cannot read the deployment file {} (run `ledgermq ledger deploy` first)",
            deployment_file.display()
        )
    })?;
    let deployment = Deployment::from_toml(&text)
        .with_context(|| format!("in {}", deployment_file.display()))?;
    let account_file = config
        .ledger_account
        .as_deref()
        .context("ledger_account is not set")?;
    let account = LocalAccount::load(account_file)
        .with_context(|| format!("cannot load the broker account {}", account_file.display()))?;
    let node_file = config
        .ledger_node_keys
        .as_deref()
        .context("ledger_node_keys is not set")?;
    let node = BrokerNodeFile::load(node_file)
        .with_context(|| format!("cannot load the broker node keys {}", node_file.display()))?;
    let settings = AccessSettings {
        challenge_lifetime: Duration::from_secs(config.otp_challenge_lifetime),
        totp_step: config.totp_step,
        totp_digits: config.totp_digits,
        totp_window: config.totp_window,
        failure_limit: config.auth_failure_limit,
        failure_window: Duration::from_secs(config.auth_failure_window),
        source_ban: Duration::from_secs(config.auth_source_ban),
        evidence_limit: config.evidence_limit,
        evidence_window: Duration::from_secs(config.evidence_window),
        blacklist_duration: Duration::from_secs(config.blacklist_duration),
        failure_delay_max: Duration::from_millis(config.auth_failure_delay_max_ms),
        disconnect_on_refused_publish: config.disconnect_on_refused_publish,
        status_topics: config.status_topics,
        counters_file: config
            .persistence
            .then(|| config.data_dir.join("auth-counters.redb")),
    };
    if config.persistence {
        create_data_dir(&config.data_dir)?;
    }
    let poll = Duration::from_millis(config.ledger_poll_interval_ms);
    let view = ViewOptions {
        poll_interval: poll,
        finality_depth: config.ledger_finality_depth,
    };
    let security = LedgerSecurity::start(ledger, deployment, account, &node, settings, view)
        .await
        .context("cannot start the ledger security mode")?;
    let scac = scac_config(config, &node)?;
    let methods: Vec<&str> = scac.suites.iter().map(|s| s.method()).collect();
    security
        .enable_scac(scac)
        .context("cannot enable SCAC authentication")?;
    if !methods.is_empty() {
        tracing::info!(methods = methods.join(", "), "SCAC authentication enabled");
    }
    tracing::info!(
        account = %node.account,
        org = node.org,
        block = security.view().last_block(),
        "ledger security mode: registry loaded"
    );
    Ok(security)
}

/// The embedded ledger running inside the broker process, and its
/// JSON-RPC endpoint when one is configured (`Config::ledger_rpc_endpoint`).
struct LedgerNode {
    chain: Arc<EmbeddedChain>,
    rpc: Option<RpcServerHandle>,
}

impl LedgerNode {
    async fn start(config: &Config) -> anyhow::Result<LedgerNode> {
        let dir = config.data_dir.join(CHAIN_SUBDIR);
        let chain = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || EmbeddedChain::open(&dir, ChainConfig::default())
        })
        .await
        .context("opening the embedded ledger")?
        .with_context(|| format!("cannot open the embedded ledger in {}", dir.display()))?;
        let Some(addr) = config.ledger_rpc_endpoint() else {
            return Ok(LedgerNode { chain, rpc: None });
        };
        let rpc = chain
            .serve_rpc(addr, rpc_server_config(config)?)
            .await
            .context(
                "cannot serve the embedded ledger's JSON-RPC \
                 (set ledger_rpc_listen / --ledger-rpc-listen to a free address)",
            )?;
        tracing::info!(addr = %rpc.local_addr(), "embedded ledger serving JSON-RPC");
        Ok(LedgerNode {
            chain,
            rpc: Some(rpc),
        })
    }
}

/// The JSON-RPC endpoint's limits and sender policy from the config.
fn rpc_server_config(config: &Config) -> anyhow::Result<RpcServerConfig> {
    let mut allow = Vec::new();
    for account in &config.ledger_rpc_tx_allow {
        let address: Address = account
            .parse()
            .with_context(|| format!("ledger_rpc_tx_allow: {account:?} is not an address"))?;
        allow.push(address);
    }
    Ok(RpcServerConfig {
        call_gas_cap: config.ledger_rpc_call_gas_cap,
        call_timeout: Duration::from_millis(config.ledger_rpc_call_timeout_ms),
        senders: SenderPolicy::Consortium { allow },
        ..RpcServerConfig::default()
    })
}

/// Creates the data dir with mode 0700 if it does not exist yet (an
/// existing one keeps its mode).
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    ledgermq_keystore::secret_file::create_private_dir(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[derive(Args, Debug)]
pub struct PasswdArgs {
    /// Password file to create or update.
    #[arg(long)]
    file: PathBuf,
    /// User name.
    #[arg(long)]
    user: String,
    /// Password (prefer --password-stdin in scripts that log commands).
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

pub fn passwd(args: PasswdArgs) -> anyhow::Result<()> {
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
        (None, false) => anyhow::bail!("give --password or --password-stdin"),
    };
    let existing = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", args.file.display())),
    };
    let text =
        PasswordFile::upsert(&existing, &args.user, &password).map_err(anyhow::Error::msg)?;
    // 0600 and atomic: a crash never leaves a half-written password file.
    ledgermq_keystore::secret_file::write_replace(&args.file, text.as_bytes())
        .with_context(|| format!("cannot write {}", args.file.display()))?;
    Ok(())
}

/// SCAC settings from the config: suites by method name, and the broker's
/// keys (the node key file's signing key unless `scac_broker_key` names one).
fn scac_config(config: &Config, node: &BrokerNodeFile) -> anyhow::Result<ScacConfig> {
    let mut suites = Vec::new();
    for method in &config.scac_suites {
        let Some(suite) = Suite::from_method(method) else {
            let known: Vec<&str> = Suite::ALL.iter().map(|s| s.method()).collect();
            anyhow::bail!(
                "unknown SCAC suite {method:?} in scac_suites (known: {})",
                known.join(", ")
            );
        };
        suites.push(suite);
    }
    let open = |what: &str, reference: &str| -> anyhow::Result<KeyHandle> {
        let key_ref = KeyRef::parse(reference).with_context(|| what.to_string())?;
        key_ref
            .open()
            .with_context(|| format!("cannot open {what} {key_ref}"))
    };
    let broker_key = match (&config.scac_broker_key, suites.contains(&Suite::Default)) {
        (_, false) => None,
        (Some(reference), true) => match open("scac_broker_key", reference)? {
            KeyHandle::Ed25519(key) => Some(LocalKey::Ed25519(key)),
            other => anyhow::bail!("scac_broker_key is a {} key, not Ed25519", other.kind()),
        },
        (None, true) => {
            let seed = node.signing_secret_bytes()?;
            let key: Arc<dyn Ed25519Signer> = Arc::new(SoftwareEd25519::from_seed(&seed));
            Some(LocalKey::Ed25519(key))
        }
    };
    let rsa_broker_key = match (
        &config.scac_rsa_broker_key,
        suites.contains(&Suite::RsaCompat),
    ) {
        (Some(reference), true) => match open("scac_rsa_broker_key", reference)? {
            KeyHandle::Rsa(key) => Some(LocalKey::Rsa(key)),
            other => anyhow::bail!(
                "scac_rsa_broker_key is a {} key, not RSA-2048",
                other.kind()
            ),
        },
        _ => None,
    };
    Ok(ScacConfig {
        suites,
        broker_key,
        rsa_broker_key,
        rsa_device_keys: config.scac_rsa_device_keys.clone(),
        lockout: Duration::from_secs(config.scac_lockout),
    })
}
