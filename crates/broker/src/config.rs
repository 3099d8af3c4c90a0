//! Broker configuration: one TOML file, every key documented here and
//! overridable by a `ledgermq serve` flag of the same name (`max_packet_size`
//! ↔ `--max-packet-size`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Plain MQTT listener address.
    pub listen: SocketAddr,
    /// Where sessions, subscriptions, retained and in-flight messages are kept.
    pub data_dir: PathBuf,
    /// Keep sessions, retained and un-acknowledged QoS 1/2 messages across
    /// restarts (stored in `data_dir/broker.redb`).
    pub persistence: bool,
    /// Optional TLS listener address; needs `tls_cert` and `tls_key`.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for the TLS listener.
    pub tls_key: Option<PathBuf>,
    /// Password file: one `username:$argon2id$…` line per user (create lines
    /// with `ledgermq passwd`). When set, clients must log in unless
    /// `allow_anonymous` is true.
    pub password_file: Option<PathBuf>,
    /// Topic ACL file (see docs/security-plain.md). When set, every publish
    /// and subscribe is checked against it.
    pub acl_file: Option<PathBuf>,
    /// Accept clients without a user name. Defaults to true, and to false
    /// when a password file is given and this key is not set explicitly.
    pub allow_anonymous: Option<bool>,
    /// Largest packet accepted from or sent to a client, in bytes.
    pub max_packet_size: u32,
    /// Receive Maximum the broker announces: QoS 1/2 publishes a client may
    /// have unacknowledged towards the broker (exceeding it: DISCONNECT 0x93).
    pub receive_maximum: u16,
    /// QoS 1/2 messages the broker keeps in flight towards one client (the
    /// client's own Receive Maximum lowers it).
    pub max_inflight: u16,
    /// Messages queued for one session beyond those in flight (slow or
    /// offline subscribers). A full queue drops QoS 0 messages first; a
    /// connected subscriber whose queue is full of QoS 1/2 messages holds
    /// its publishers back while it keeps taking messages, and is
    /// disconnected (MQTT 5: DISCONNECT 0x97 Quota exceeded) once it takes
    /// nothing for 100 ms, its session keeping the queue; an offline
    /// session's full queue refuses new messages. Drops are counted in
    /// `$SYS/broker/messages/dropped`.
    pub max_queued_messages: usize,
    /// Subscriptions one session may hold (more: SUBACK 0x97 Quota exceeded).
    pub max_subscriptions: usize,
    /// Sessions the broker keeps, connected or not. A CONNECT that would
    /// create one more is refused (CONNACK 0x97 Quota exceeded; 3.1.1:
    /// 0x03 Server unavailable).
    pub max_sessions: usize,
    /// Levels a topic name or filter may have (1–65,536). A filter over it
    /// gets SUBACK 0x8F (3.1.1: 0x80); a topic name over it closes the
    /// connection (MQTT 5: DISCONNECT 0x90); a will topic over it gets
    /// CONNACK 0x90 (3.1.1: the connection is closed).
    pub max_topic_levels: usize,
    /// Bytes a topic name or filter may have (1–65,535), with the same
    /// answers as `max_topic_levels`.
    pub max_topic_length: usize,
    /// Retained messages the broker keeps. A retained PUBLISH to a new topic
    /// beyond it is refused (MQTT 5 QoS 1/2: PUBACK/PUBREC 0x97 Quota
    /// exceeded; QoS 0 and 3.1.1: delivered but not retained).
    pub max_retained_messages: usize,
    /// Bytes of retained messages (topic, payload, properties) the broker
    /// keeps; over it, as `max_retained_messages`.
    pub max_retained_bytes: u64,
    /// Topic Alias Maximum the broker announces to MQTT 5 clients.
    pub topic_alias_maximum: u16,
    /// Upper bound on the session expiry interval a client may request (s).
    pub max_session_expiry: u32,
    /// If set, the broker overrides client keep-alives longer than this (s)
    /// and tells MQTT 5 clients with Server Keep Alive.
    pub max_keep_alive: Option<u16>,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout: u64,
    /// Interval of `$SYS` statistics publications in seconds (0 disables).
    pub sys_interval: u64,
    /// Address of the Prometheus endpoint (`GET /metrics`); off when unset.
    pub metrics_listen: Option<SocketAddr>,
    /// Maximum simultaneous client connections.
    pub max_connections: usize,
    /// Maximum simultaneous connections from one IP address (0: no limit).
    /// Connections over it are closed at once.
    pub max_connections_per_address: usize,
    /// Bytes all connections that have not finished their CONNECT may hold
    /// in their buffers together; a connection that would go over it is
    /// closed. Bounds the memory of slow or oversized CONNECT floods.
    pub max_pending_connect_bytes: usize,
    /// Threads that verify passwords and run authentication steps (argon2
    /// is deliberately slow); unset means one per CPU core in the plain
    /// mode and 32 in the ledger mode (whose steps hash no password and
    /// mostly wait for the replay counters to be durable).
    pub auth_workers: Option<usize>,
    /// Authentications that may wait for a free worker; one more is refused
    /// at once with CONNACK 0x89 Server busy (3.1.1: 0x03 Server
    /// unavailable).
    pub auth_queue: usize,
    /// Bytes of writes queued for the store before connections stop reading
    /// from their clients until the store catches up (acknowledgements wait,
    /// memory does not grow).
    pub max_store_backlog_bytes: usize,
    /// Threads serving connections; unset means one per CPU core.
    pub worker_threads: Option<usize>,
    /// Run the embedded ledger (a single-node EVM chain in
    /// `data_dir/ledger`) inside this process. Unset: yes when its
    /// JSON-RPC endpoint is configured (`ledger_rpc_listen`), and in the
    /// ledger security mode unless `ledger_rpc` points at another ledger;
    /// no otherwise (a plain broker never reads the ledger). Read by
    /// `ledgermq serve`, not by the broker core.
    pub embedded_ledger: Option<bool>,
    /// Where the embedded ledger answers Ethereum JSON-RPC (admin CLI,
    /// other broker nodes, auditors' tools). Unset: in the ledger security
    /// mode [`DEFAULT_LEDGER_RPC_LISTEN`] (loopback, a port of its own so a
    /// client cannot silently reach another chain on anvil's/geth's 8545);
    /// in the plain mode no endpoint. A taken port is a start-up error. The
    /// endpoint has no authentication: an address beyond loopback must be
    /// configured here and is logged as a warning.
    pub ledger_rpc_listen: Option<SocketAddr>,
    /// Accounts (`0x…` addresses) that may send transactions through the
    /// embedded ledger's JSON-RPC besides the admins and broker nodes of
    /// the consortium on the chain, e.g. the deployer before the contracts
    /// exist. Everyone else's transactions are refused.
    pub ledger_rpc_tx_allow: Vec<String>,
    /// Gas limit of one `eth_call`/`eth_estimateGas` on the embedded
    /// ledger's JSON-RPC; it bounds the CPU time of one call
    /// (docs/ledger.md has the measured worst case).
    pub ledger_rpc_call_gas_cap: u64,
    /// Time a JSON-RPC client waits for an `eth_call`/`eth_estimateGas`
    /// before it gets an error (ms).
    pub ledger_rpc_call_timeout_ms: u64,

    // ----- security mode (read by `ledgermq serve`, see docs/device-auth.md)
    /// `plain` (password and ACL files) or `ledger` (devices, rights and
    /// blacklist from the consortium ledger; OTP/TOTP authentication).
    pub security: SecurityMode,
    /// Ledger mode: JSON-RPC URL of the ledger to read (another node's
    /// embedded chain, or any EVM chain). Unset: this node's embedded chain.
    pub ledger_rpc: Option<String>,
    /// Ledger mode: accept a plain `http://` `ledger_rpc` on a non-loopback
    /// address. Anyone on the path could then feed this node a forged
    /// registry; a warning is logged at every start.
    pub ledger_rpc_insecure: bool,
    /// Ledger mode: blocks a ledger event must be buried under before the
    /// registry view applies it (0 for chains with instant finality, such as
    /// QBFT, Clique with one signer, or the embedded chain).
    pub ledger_finality_depth: u64,
    /// Ledger mode: the contracts' deployment file; unset means
    /// `data_dir/ledger.toml` (written by `ledgermq ledger deploy`).
    pub ledger_deployment: Option<PathBuf>,
    /// Ledger mode: this broker node's account key file (secp256k1, as
    /// written by `ledgermq admin apply` / `admin account new`).
    pub ledger_account: Option<PathBuf>,
    /// Ledger mode: this broker node's key file (`<name>.node.json`),
    /// whose X25519 secret opens the devices' OTP key envelopes.
    pub ledger_node_keys: Option<PathBuf>,
    /// Ledger mode: how often the registry view asks for new blocks (ms).
    pub ledger_poll_interval_ms: u64,
    /// Lifetime of an `LMQ-OTP-1` challenge (s).
    pub otp_challenge_lifetime: u64,
    /// TOTP time step (s), digits (6–9) and accepted clock skew (steps).
    pub totp_step: u64,
    pub totp_digits: u32,
    pub totp_window: u64,
    /// Failed authentications from one source (client address and
    /// listener) within `auth_failure_window` seconds that refuse the
    /// source on this node for `auth_source_ban` seconds (0 = never; the
    /// delays still grow). Never counted per device, never on the ledger.
    pub auth_failure_limit: u32,
    pub auth_failure_window: u64,
    /// How long a source that reached `auth_failure_limit` is refused (s).
    pub auth_source_ban: u64,
    /// Misuse events of one kind by a device's own valid credential
    /// (replayed proof, rights violations, key in use from two places)
    /// within `evidence_window` seconds that blacklist the device on the
    /// ledger (0 = never).
    pub evidence_limit: u32,
    pub evidence_window: u64,
    /// Duration of a blacklist entry this node decides (s).
    pub blacklist_duration: u64,
    /// Longest delay before a failed authentication is answered (ms).
    pub auth_failure_delay_max_ms: u64,
    /// Close the connection of a device whose PUBLISH is refused (QoS 0
    /// refusals always close it).
    pub disconnect_on_refused_publish: bool,
    /// Publish `devices/<id>/…` status reports for devices.
    pub status_topics: bool,

    // ----- SCAC mutual authentication (ledger mode, see docs/scac.md)
    /// Enabled `SCACAuth-*` methods; empty disables SCAC. The compatibility
    /// suite `SCACAuth-RSAPKCS1-2048-AES-128` is off unless listed here.
    pub scac_suites: Vec<String>,
    /// The broker's Ed25519 key for the default suite, as a key reference
    /// (`file:DIR#NAME` or `pkcs11:…`, docs/keystore.md). Unset: the
    /// signing key of `ledger_node_keys`. Its public key must be the one
    /// registered for this broker node.
    pub scac_broker_key: Option<String>,
    /// The broker's RSA-2048 key for the compatibility suite (key reference).
    pub scac_rsa_broker_key: Option<String>,
    /// Compatibility suite: directory of the devices' RSA public keys,
    /// `<UID>.pem` (SubjectPublicKeyInfo PEM); the ledger only holds
    /// Ed25519 and X25519 device keys.
    pub scac_rsa_device_keys: Option<PathBuf>,
    /// After a failed SCAC authentication, new SCAC attempts from the same
    /// source (address and listener) are refused for this many seconds
    /// (0 = never).
    pub scac_lockout: u64,
}

/// Where the embedded ledger serves JSON-RPC in the ledger security mode
/// unless `ledger_rpc_listen` says otherwise.
pub const DEFAULT_LEDGER_RPC_LISTEN: &str = "127.0.0.1:8645";

/// The SCAC suite enabled by default (docs/scac.md).
pub const DEFAULT_SCAC_SUITE: &str = "SCACAuth-Ed25519-256-ChaCha20Poly1305-256";

/// Who decides authentication and authorisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    #[default]
    Plain,
    Ledger,
}

impl std::str::FromStr for SecurityMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(SecurityMode::Plain),
            "ledger" => Ok(SecurityMode::Ledger),
            other => Err(format!("unknown security mode {other:?} (plain or ledger)")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:1883".parse().expect("valid literal"),
            data_dir: PathBuf::from("ledgermq-data"),
            persistence: true,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            password_file: None,
            acl_file: None,
            allow_anonymous: None,
            max_packet_size: 1024 * 1024,
            receive_maximum: 1024,
            max_inflight: 1024,
            max_queued_messages: 10_000,
            max_subscriptions: 10_000,
            max_sessions: 1_000_000,
            max_topic_levels: 128,
            max_topic_length: 4096,
            max_retained_messages: 100_000,
            max_retained_bytes: 256 * 1024 * 1024,
            topic_alias_maximum: 64,
            max_session_expiry: u32::MAX,
            max_keep_alive: None,
            connect_timeout: 10,
            sys_interval: 10,
            metrics_listen: None,
            max_connections: 100_000,
            max_connections_per_address: 0,
            max_pending_connect_bytes: 64 * 1024 * 1024,
            auth_workers: None,
            auth_queue: 256,
            max_store_backlog_bytes: 64 * 1024 * 1024,
            worker_threads: None,
            embedded_ledger: None,
            ledger_rpc_listen: None,
            ledger_rpc_tx_allow: Vec::new(),
            ledger_rpc_call_gas_cap: 8_000_000,
            ledger_rpc_call_timeout_ms: 5_000,
            security: SecurityMode::Plain,
            ledger_rpc: None,
            ledger_deployment: None,
            ledger_account: None,
            ledger_node_keys: None,
            ledger_poll_interval_ms: 200,
            ledger_rpc_insecure: false,
            ledger_finality_depth: 0,
            otp_challenge_lifetime: 30,
            totp_step: 30,
            totp_digits: 8,
            totp_window: 1,
            auth_failure_limit: 5,
            auth_failure_window: 60,
            auth_source_ban: 300,
            evidence_limit: 5,
            evidence_window: 60,
            blacklist_duration: 3600,
            auth_failure_delay_max_ms: 5000,
            disconnect_on_refused_publish: true,
            status_topics: true,
            scac_suites: vec![DEFAULT_SCAC_SUITE.to_owned()],
            scac_broker_key: None,
            scac_rsa_broker_key: None,
            scac_rsa_device_keys: None,
            scac_lockout: 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Checks combinations a type cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.tls_listen.is_some() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return bad("tls_listen needs tls_cert and tls_key");
        }
        if self.receive_maximum == 0 || self.max_inflight == 0 {
            return bad("receive_maximum and max_inflight must be at least 1");
        }
        if self.worker_threads == Some(0) {
            return bad("worker_threads must be at least 1");
        }
        if self.max_packet_size < 64 {
            return bad("max_packet_size must be at least 64 bytes");
        }
        if !(1..=ledgermq_proto::topic::MAX_LEVELS).contains(&self.max_topic_levels)
            || !(1..=ledgermq_proto::topic::MAX_LENGTH).contains(&self.max_topic_length)
        {
            return bad("max_topic_levels must be 1 to 65536 and max_topic_length 1 to 65535");
        }
        if self.max_sessions == 0 || self.auth_workers == Some(0) || self.max_queued_messages == 0 {
            return bad("max_sessions, max_queued_messages and auth_workers must be at least 1");
        }
        if self.security == SecurityMode::Ledger {
            if self.ledger_account.is_none() || self.ledger_node_keys.is_none() {
                return bad("security = \"ledger\" needs ledger_account and ledger_node_keys (the broker node's key files)");
            }
            if self.ledger_rpc.is_none() && !self.runs_embedded_ledger() {
                return bad("security = \"ledger\" needs ledger_rpc or the embedded ledger");
            }
            if self.password_file.is_some() || self.acl_file.is_some() {
                return bad("password_file and acl_file belong to the plain security mode");
            }
        }
        self.validate_ledger_rpc()?;
        if self.totp_step == 0 || !(6..=9).contains(&self.totp_digits) {
            return bad("totp_step must be at least 1 and totp_digits 6 to 9");
        }
        if self.otp_challenge_lifetime == 0 || self.ledger_poll_interval_ms == 0 {
            return bad("otp_challenge_lifetime and ledger_poll_interval_ms must be at least 1");
        }
        Ok(())
    }

    fn validate_ledger_rpc(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.embedded_ledger == Some(false) && self.ledger_rpc_listen.is_some() {
            return bad("ledger_rpc_listen serves the embedded ledger, which embedded_ledger = false turns off".into());
        }
        if self.embedded_ledger == Some(true)
            && self.security == SecurityMode::Plain
            && self.ledger_rpc_listen.is_none()
        {
            return bad(
                "embedded_ledger = true in the plain security mode needs ledger_rpc_listen: \
                 a plain broker never reads the ledger, so its embedded chain is only of use \
                 through its JSON-RPC endpoint"
                    .into(),
            );
        }
        for account in &self.ledger_rpc_tx_allow {
            let hex = account.strip_prefix("0x").unwrap_or("");
            if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad(format!(
                    "ledger_rpc_tx_allow: {account:?} is not an account address (0x and 40 hex digits)"
                ));
            }
        }
        if self.ledger_rpc_call_gas_cap < 21_000 || self.ledger_rpc_call_timeout_ms == 0 {
            return bad("ledger_rpc_call_gas_cap must be at least 21000 and ledger_rpc_call_timeout_ms at least 1".into());
        }
        Ok(())
    }

    /// Whether `ledgermq serve` runs the embedded ledger node.
    pub fn runs_embedded_ledger(&self) -> bool {
        self.embedded_ledger.unwrap_or(
            self.ledger_rpc_listen.is_some()
                || (self.security == SecurityMode::Ledger && self.ledger_rpc.is_none()),
        )
    }

    /// Where `ledgermq serve` serves the embedded ledger's JSON-RPC, if at
    /// all: the configured address, else loopback in the ledger mode.
    pub fn ledger_rpc_endpoint(&self) -> Option<SocketAddr> {
        if !self.runs_embedded_ledger() {
            return None;
        }
        match (self.ledger_rpc_listen, self.security) {
            (Some(addr), _) => Some(addr),
            (None, SecurityMode::Ledger) => {
                Some(DEFAULT_LEDGER_RPC_LISTEN.parse().expect("valid literal"))
            }
            (None, SecurityMode::Plain) => None,
        }
    }

    /// The topic size limits every name and filter is checked against.
    pub fn topic_limits(&self) -> ledgermq_proto::topic::TopicLimits {
        ledgermq_proto::topic::TopicLimits {
            max_levels: self.max_topic_levels,
            max_length: self.max_topic_length,
        }
    }

    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.password_file.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_config_parses_to_the_defaults() {
        let text = include_str!("../../../examples/ledgermq.toml");
        let parsed: Config = toml::from_str(text).expect("example parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Config>("listne = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
    }

    #[test]
    fn tls_listener_needs_cert_and_key() {
        let c = Config {
            tls_listen: Some("127.0.0.1:8883".parse().unwrap()),
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_embedded_ledger_and_its_endpoint_run_only_when_needed_or_asked() {
        let plain = Config::default();
        assert!(!plain.runs_embedded_ledger());
        assert_eq!(plain.ledger_rpc_endpoint(), None);
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let explicit = Config {
            ledger_rpc_listen: Some(listen),
            ..Config::default()
        };
        assert!(explicit.runs_embedded_ledger());
        assert_eq!(explicit.ledger_rpc_endpoint(), Some(listen));
        let ledger = Config {
            security: SecurityMode::Ledger,
            ..Config::default()
        };
        let default = ledger.ledger_rpc_endpoint().unwrap();
        assert!(default.ip().is_loopback());
        assert_ne!(default.port(), 8545, "anvil's, geth's and besu's port");
        let remote = Config {
            ledger_rpc: Some("http://node:8645".into()),
            ..ledger.clone()
        };
        assert!(!remote.runs_embedded_ledger());
        assert_eq!(remote.ledger_rpc_endpoint(), None);
    }

    #[test]
    fn contradictory_ledger_rpc_settings_are_refused() {
        let off_but_listening = Config {
            embedded_ledger: Some(false),
            ledger_rpc_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Config::default()
        };
        let err = off_but_listening.validate().unwrap_err().to_string();
        assert!(err.contains("ledger_rpc_listen"), "{err}");
        let unserved = Config {
            embedded_ledger: Some(true),
            ..Config::default()
        };
        let err = unserved.validate().unwrap_err().to_string();
        assert!(err.contains("needs ledger_rpc_listen"), "{err}");
        let bad_account = Config {
            ledger_rpc_tx_allow: vec!["0x12".into()],
            ..Config::default()
        };
        let err = bad_account.validate().unwrap_err().to_string();
        assert!(err.contains("\"0x12\""), "{err}");
        let good = Config {
            ledger_rpc_tx_allow: vec!["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".into()],
            ..Config::default()
        };
        good.validate().unwrap();
    }

    #[test]
    fn password_file_turns_anonymous_off_unless_asked() {
        let mut c = Config {
            password_file: Some("p".into()),
            ..Config::default()
        };
        assert!(!c.anonymous_allowed());
        c.allow_anonymous = Some(true);
        assert!(c.anonymous_allowed());
        assert!(Config::default().anonymous_allowed());
    }
}
