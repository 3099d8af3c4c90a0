//! `ledgermq device …`: act as a provisioned device — connect, publish,
//! subscribe — authenticating with `LMQ-OTP-1`, TOTP or SCAC exactly as
//! device firmware built on `ledgermq-agent` does, or print the TOTP
//! password a standard client should send (`device totp`). Meant for
//! operators checking a registration and for scripts and tests: stdout
//! carries only the result (`CONNECTED <id>`, the received payloads, the
//! code), and every refusal by the broker exits non-zero with its reason
//! code on stderr.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::hex;
use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgAction, Args, Subcommand, ValueEnum};
use ledgermq_agent::scac::{self, PeerKey, ScacCredentials, Suite};
use ledgermq_agent::{
    describe_reason, Auth, Client, ClientError, ClientOptions, DeviceCredentials, Message,
    PacketCounter, Protocol, QoS,
};
use ledgermq_security::totp::{DEFAULT_DIGITS, DEFAULT_STEP_SECS};
use std::sync::Arc;

use bytes::Bytes;
use ledgermq_agent::e2e::{DeviceE2e, E2eError, Opened};
use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_ledger::RegistryView;

use crate::ledger_cmd::{ledger_error, LedgerTarget};

mod key_service;

#[derive(Args)]
pub struct DeviceArgs {
    /// The device's provisioning bundle (written by `admin device register`).
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// The broker's MQTT listener (not needed by `totp`).
    #[arg(long, value_name = "HOST:PORT")]
    broker: Option<String>,
    /// `otp`: LMQ-OTP-1 challenge/response (MQTT 5 only); `totp`: user name
    /// = device id, password = TOTP; `scac`: SCAC mutual authentication
    /// (MQTT 5 only), after which QoS 2 payloads are encrypted under
    /// rolling keys both ways. QoS 0 and 1 payloads are NOT protected: use
    /// `--qos 2` for data that must stay confidential.
    #[arg(long, value_enum, default_value_t = AuthKind::Otp)]
    auth: AuthKind,
    /// SCAC suite (Authentication Method): SCACAuth-Ed25519-256-ChaCha20Poly1305-256,
    /// or SCACAuth-RSAPKCS1-2048-AES-128 for the paper's smart cards (RSA
    /// keys, 8-character device ids; off on brokers by default)
    /// [default: SCACAuth-Ed25519-256-ChaCha20Poly1305-256].
    #[arg(long, value_name = "METHOD", value_parser = parse_suite)]
    scac_suite: Option<Suite>,
    /// SCAC: the device's private key, `file:DIR#NAME` or
    /// `pkcs11:token=LABEL;pin-file=PATH;key=NAME` (docs/keystore.md); its
    /// public key must be the one the broker knows: the device's signing
    /// key on the ledger (RSA suite: the broker's `<device id>.pem`)
    /// [default: the bundle's signing key; required with the RSA suite].
    #[arg(long, value_name = "KEYREF")]
    device_key: Option<String>,
    /// SCAC: the broker node's Ed25519 public key, 64 hex digits
    /// [default: from the bundle's broker nodes: the only one, else the
    /// one of the device's organisation].
    #[arg(long, value_name = "HEX", conflicts_with_all = ["broker_rsa_key", "broker_account"])]
    broker_key: Option<String>,
    /// SCAC: pick the broker node from the bundle by its ledger account.
    /// TOTP: the broker node the code is for (a code is refused by every
    /// other node) [default: the bundle's only node of the device's
    /// organisation].
    #[arg(long, value_name = "0x…", conflicts_with = "broker_rsa_key")]
    broker_account: Option<String>,
    /// SCAC, RSA suite: the broker's RSA-2048 public key, a
    /// SubjectPublicKeyInfo PEM file (`-----BEGIN PUBLIC KEY-----`).
    #[arg(long, value_name = "PEM-FILE")]
    broker_rsa_key: Option<PathBuf>,
    /// MQTT version: 5 or 3.1.1 [default: 5 with otp and scac, 3.1.1 with totp].
    #[arg(long, value_name = "VERSION", value_parser = parse_protocol)]
    protocol: Option<Protocol>,
    /// TOTP time step in seconds (must match the broker's).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_STEP_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    totp_step: u64,
    /// TOTP digits, 6-9 (must match the broker's).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DIGITS,
          value_parser = clap::value_parser!(u32).range(6..=9))]
    totp_digits: u32,
    /// OTP packet counter state file [default: the bundle path + `.state`].
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Keep-alive in seconds (0: none).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    keep_alive: u16,
    /// MQTT 5 Session Expiry Interval in seconds (MQTT 3.1.1 has none:
    /// there `--clean-start false` alone keeps the session).
    #[arg(long, value_name = "SECS")]
    session_expiry: Option<u32>,
    /// Clean start (MQTT 3.1.1: clean session); `false` resumes the
    /// device's session and its queued messages (with MQTT 5, give
    /// `--session-expiry` too: the session otherwise ends at disconnect).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    clean_start: bool,
    /// The ledger this device trusts (`--rpc URL` or `--data-dir DIR`): with
    /// it, `pub` seals or signs payloads on topics a group protects and
    /// `sub` verifies and decrypts envelopes, with the group keys fetched
    /// from the device's key topics (docs/e2e.md) [default: none; payloads
    /// travel as given].
    #[command(flatten)]
    ledger: LedgerTarget,
    #[command(subcommand)]
    action: DeviceAction,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuthKind {
    Otp,
    Totp,
    Scac,
}

#[derive(Subcommand)]
enum DeviceAction {
    /// Authenticate, print `CONNECTED <device-id>`, disconnect.
    Connect,
    /// Publish one message and wait for the broker's acknowledgement.
    Pub(PubArgs),
    /// Subscribe and print each received payload on its own line.
    Sub(SubArgs),
    /// Run as the key service of the device's organisation (docs/e2e.md):
    /// rotate each group's key whenever who may read it changes, and
    /// publish the members' key bundles on their retained key topics.
    KeyService(key_service::KeyServiceArgs),
    /// Print the current TOTP password for the broker node (user name =
    /// the device id), for a standard MQTT client, e.g. `mosquitto_pub -u
    /// ID -P "$(ledgermq device --bundle B totp)"`. It opens one login
    /// within its `--totp-step`-second step, at that node only.
    Totp,
}

#[derive(Args)]
struct PubArgs {
    #[arg(long)]
    topic: String,
    /// The payload (one message).
    #[arg(long, required_unless_present = "lines", conflicts_with = "lines")]
    message: Option<String>,
    /// Publish each line read from standard input as a message, until end
    /// of input, on one connection (like `mosquitto_pub -l`); on a
    /// protected topic each is sealed under the group's current key epoch,
    /// which may change during the run.
    #[arg(long)]
    lines: bool,
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    #[arg(long)]
    retain: bool,
}

#[derive(Args)]
struct SubArgs {
    /// Topic filter (repeatable).
    #[arg(long = "topic", value_name = "FILTER", required = true)]
    topics: Vec<String>,
    /// Maximum QoS of the subscriptions.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Exit after this many messages [default: run until interrupted].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
}

fn parse_suite(s: &str) -> Result<Suite, String> {
    Suite::from_method(s).ok_or_else(|| {
        let known: Vec<&str> = Suite::ALL.iter().map(|s| s.method()).collect();
        format!("unknown SCAC suite {s:?} (known: {})", known.join(", "))
    })
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "5" | "5.0" => Ok(Protocol::V5),
        "3.1.1" | "311" => Ok(Protocol::V311),
        other => Err(format!("unknown MQTT version {other:?} (use 5 or 3.1.1)")),
    }
}

pub fn run(args: DeviceArgs) -> Result<()> {
    if let DeviceAction::Totp = args.action {
        return print_totp(&args);
    }
    let protocol = args.protocol()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let creds = DeviceCredentials::from_bundle(&args.bundle)?;
    if args.broker.is_none() {
        bail!("give the broker's MQTT listener with --broker HOST:PORT");
    }
    // Before the runtime: a SCAC key in a token is opened (and logged in to) here.
    let opts = args.client_options(&creds, protocol)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(
        args.action,
        opts,
        creds.device_id,
        &args.bundle,
        &args.ledger,
    ))
}

impl DeviceArgs {
    fn protocol(&self) -> Result<Protocol> {
        self.check_scac_flags()?;
        match (self.auth, self.protocol) {
            (AuthKind::Otp, Some(Protocol::V311)) => bail!(
                "--auth otp needs MQTT 5 (LMQ-OTP-1 is MQTT 5 enhanced authentication); \
                 use --auth totp for MQTT 3.1.1"
            ),
            (AuthKind::Scac, Some(Protocol::V311)) => {
                bail!("--auth scac needs --protocol 5 (SCAC is MQTT 5 enhanced authentication)")
            }
            (_, Some(protocol)) => Ok(protocol),
            (AuthKind::Otp | AuthKind::Scac, None) => Ok(Protocol::V5),
            (AuthKind::Totp, None) => Ok(Protocol::V311),
        }
    }

    /// The SCAC flags mean nothing to the other methods: say so rather
    /// than ignore them.
    fn check_scac_flags(&self) -> Result<()> {
        let given = [
            ("--scac-suite", self.scac_suite.is_some()),
            ("--device-key", self.device_key.is_some()),
            ("--broker-key", self.broker_key.is_some()),
            (
                "--broker-account",
                self.broker_account.is_some() && self.auth != AuthKind::Totp,
            ),
            ("--broker-rsa-key", self.broker_rsa_key.is_some()),
        ];
        match given.iter().find(|(_, set)| *set) {
            Some(("--broker-account", _)) if self.auth != AuthKind::Scac => {
                bail!("--broker-account only applies to --auth scac and --auth totp")
            }
            Some((flag, _)) if self.auth != AuthKind::Scac => {
                bail!("{flag} only applies to --auth scac")
            }
            _ => Ok(()),
        }
    }

    fn client_options(
        &self,
        creds: &DeviceCredentials,
        protocol: Protocol,
    ) -> Result<ClientOptions> {
        let broker = self.broker.clone().unwrap_or_default();
        let mut opts = ClientOptions::new(broker, creds.device_id.clone());
        opts.protocol = protocol;
        opts.keep_alive = self.keep_alive;
        opts.clean_start = self.clean_start;
        opts.session_expiry = self.session_expiry;
        if protocol == Protocol::V311 && self.session_expiry.is_some() {
            eprintln!("warning: --session-expiry has no effect with MQTT 3.1.1");
        }
        opts.auth = match self.auth {
            AuthKind::Otp => {
                let state = self
                    .state
                    .clone()
                    .unwrap_or_else(|| PacketCounter::default_path(&self.bundle));
                Auth::otp(creds, PacketCounter::open(state)?)
            }
            AuthKind::Totp => Auth::Totp {
                key: creds.otp_key.clone(),
                audience: self.totp_audience(creds)?,
                step_secs: self.totp_step,
                digits: self.totp_digits,
            },
            AuthKind::Scac => self.scac_auth()?,
        };
        Ok(opts)
    }

    /// The suite, the device key (a key reference or the bundle's signing
    /// key) and the broker's public key (given, or from the bundle).
    fn scac_auth(&self) -> Result<Auth> {
        let suite = self.scac_suite.unwrap_or(Suite::Default);
        self.check_scac_key_flags(suite)?;
        // Loaded only when it is needed: the RSA suite with explicit keys
        // works with any bundle.
        let bundle = || ScacCredentials::from_bundle(&self.bundle);
        let device_key = match &self.device_key {
            Some(key_ref) => scac::open_device_key(key_ref)?,
            None => bundle()?.device_key,
        };
        let broker_key = match (suite, &self.broker_rsa_key) {
            (Suite::RsaCompat, Some(path)) => read_rsa_public_key(path)?,
            _ => self.ed25519_broker_key(bundle)?,
        };
        Ok(Auth::Scac {
            suite,
            device_key,
            broker_key,
        })
    }

    /// Which keys the suite needs, checked before any key is opened.
    fn check_scac_key_flags(&self, suite: Suite) -> Result<()> {
        match suite {
            Suite::Default if self.broker_rsa_key.is_some() => bail!(
                "--broker-rsa-key is for SCACAuth-RSAPKCS1-2048-AES-128; use --broker-key HEX"
            ),
            Suite::Default => Ok(()),
            Suite::RsaCompat if self.device_key.is_none() => {
                bail!("{suite} needs the device's RSA-2048 key: give --device-key KEYREF")
            }
            Suite::RsaCompat if self.broker_key.is_some() || self.broker_account.is_some() => {
                bail!("{suite} needs the broker's RSA key: use --broker-rsa-key PEM-FILE")
            }
            Suite::RsaCompat if self.broker_rsa_key.is_none() => {
                bail!("{suite} needs the broker's RSA public key: give --broker-rsa-key PEM-FILE")
            }
            Suite::RsaCompat => Ok(()),
        }
    }

    fn ed25519_broker_key(
        &self,
        bundle: impl FnOnce() -> Result<ScacCredentials, ClientError>,
    ) -> Result<PeerKey> {
        if let Some(text) = &self.broker_key {
            let key = hex::decode(text.trim_start_matches("0x"))
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| anyhow!("--broker-key must be 32 bytes in hex (64 digits)"))?;
            return Ok(PeerKey::Ed25519(key));
        }
        let bundle = bundle()?;
        let broker = bundle
            .broker(self.broker_account.as_deref())
            .with_context(|| {
                "cannot tell which broker node to authenticate: \
             give --broker-account 0x… (a node of the bundle) or --broker-key HEX"
            })?;
        Ok(broker.peer_key())
    }
}

impl DeviceArgs {
    /// The broker node a TOTP code is for.
    fn totp_audience(&self, creds: &DeviceCredentials) -> Result<[u8; 20]> {
        creds.totp_audience(self.broker_account.as_deref()).context(
            "cannot tell which broker node the TOTP code is for: give --broker-account 0x…",
        )
    }
}

/// `device totp`: the code on stdout, what it is for on stderr.
fn print_totp(args: &DeviceArgs) -> Result<()> {
    let given = [
        ("--scac-suite", args.scac_suite.is_some()),
        ("--device-key", args.device_key.is_some()),
        ("--broker-key", args.broker_key.is_some()),
        ("--broker-rsa-key", args.broker_rsa_key.is_some()),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
        bail!("{flag} does not apply to `device totp`");
    }
    let creds = DeviceCredentials::from_bundle(&args.bundle)?;
    let audience = args.totp_audience(&creds)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let key = ledgermq_security::audience_key(&creds.otp_key, &audience);
    let code = ledgermq_security::totp(&key, now, args.totp_step, args.totp_digits);
    let left = args.totp_step - now % args.totp_step;
    println!("{code}");
    eprintln!(
        "TOTP password of {} for broker node 0x{} (user name {}), valid for one login, \
         {left} s left in this step",
        creds.device_id,
        hex::encode(audience),
        creds.device_id
    );
    Ok(())
}

fn read_rsa_public_key(path: &Path) -> Result<PeerKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    scac::rsa_public_key_from_pem(&pem).with_context(|| path.display().to_string())
}

async fn run_async(
    action: DeviceAction,
    opts: ClientOptions,
    device_id: String,
    bundle: &Path,
    ledger: &LedgerTarget,
) -> Result<()> {
    let e2e = match &action {
        DeviceAction::Pub(_) | DeviceAction::Sub(_)
            if ledger.rpc.is_some() || ledger.data_dir.is_some() =>
        {
            Some(E2e::open(ledger, bundle).await?)
        }
        _ => None,
    };
    let (client, _) = Client::connect(opts)
        .await
        .map_err(|e| failed("connection", e))?;
    match action {
        DeviceAction::Connect => {
            println!("CONNECTED {device_id}");
            disconnect(client).await
        }
        DeviceAction::Pub(p) => publish(client, p, e2e).await,
        DeviceAction::Sub(s) => subscribe(client, s, e2e).await,
        DeviceAction::KeyService(k) => key_service::run(client, k, ledger, bundle).await,
        DeviceAction::Totp => bail!("`device totp` prints a code; it does not connect"),
    }
}

/// End-to-end payloads for `pub`/`sub`: the registry view of the trusted
/// ledger, the device's keys, the group keys received.
struct E2e {
    view: Arc<RegistryView>,
    device: DeviceE2e,
    /// Bundles that arrived before the ledger view showed their epoch.
    pending: Vec<Bytes>,
}

/// How long `pub` waits for the key of a protected topic's group.
const KEY_WAIT: Duration = Duration::from_secs(10);
/// Data messages a subscriber holds back while a key is on its way.
const MAX_HELD: usize = 10_000;

impl E2e {
    async fn open(target: &LedgerTarget, bundle_path: &Path) -> Result<E2e> {
        let bundle = ProvisioningBundle::load(bundle_path).map_err(ledger_error)?;
        let device = DeviceE2e::from_bundle(bundle_path)?;
        let deployment = target.deployment_or(bundle.contracts)?;
        let ledger = target.open().await?;
        let view = RegistryView::builder(ledger, deployment)
            .build()
            .await
            .map_err(ledger_error)?;
        view.follow();
        Ok(E2e {
            view,
            device,
            pending: Vec::new(),
        })
    }

    /// Subscribes to the device's key topics.
    async fn subscribe_keys(&self, client: &Client) -> Result<()> {
        let filter = self.device.key_filter();
        let granted = client
            .subscribe(&[(filter.as_str(), QoS::AtLeastOnce)])
            .await
            .map_err(|e| failed(&format!("subscription to {filter}"), e))?;
        if granted[0].is_error() {
            bail!(
                "subscription to {filter} refused: {}",
                describe_reason(granted[0])
            );
        }
        Ok(())
    }

    /// Takes a key bundle; one for an epoch the view does not show yet is
    /// kept and tried again later.
    fn take_bundle(&mut self, payload: Bytes) {
        match self.device.take_bundle(&self.view.snapshot(), &payload) {
            Ok(_) => {}
            Err(E2eError::AheadOfLedger(_)) => {
                if self.pending.len() < 64 {
                    self.pending.push(payload);
                }
            }
            Err(e) => eprintln!("warning: {e}"),
        }
    }

    fn retry_pending(&mut self) {
        for payload in std::mem::take(&mut self.pending) {
            self.take_bundle(payload);
        }
    }
}

/// `<what> refused: 0x87 (Not authorized)` when the broker said no,
/// `<what>: disconnected: 0x80 (Unspecified error) "Crypt Error"` when it
/// ended the connection; for a SCAC failure found here, the DISCONNECT
/// this client sent; the error itself (connection trouble, timeouts)
/// otherwise.
fn failed(what: &str, err: ClientError) -> anyhow::Error {
    match (&err, err.reason_text()) {
        (
            ClientError::Disconnected {
                reason,
                reason_string,
            },
            _,
        ) => {
            let mut text = format!("{what}: disconnected: {}", describe_reason(*reason));
            if let Some(s) = reason_string {
                text.push_str(&format!(" {s:?}"));
            }
            anyhow!(text)
        }
        (_, Some(reason)) => anyhow!("{what} refused: {reason}"),
        (_, None) => match err.sent_reason_string() {
            Some(sent) => anyhow!("{what} failed: {err} (sent DISCONNECT 0x80 {sent:?})"),
            None => anyhow::Error::new(err).context(format!("{what} failed")),
        },
    }
}

fn qos(level: u8) -> QoS {
    QoS::from_u8(level).unwrap_or(QoS::AtMostOnce)
}

async fn disconnect(client: Client) -> Result<()> {
    client
        .disconnect()
        .await
        .map_err(|e| failed("disconnect", e))
}

async fn publish(mut client: Client, args: PubArgs, mut e2e: Option<E2e>) -> Result<()> {
    let what = format!("publish to {}", args.topic);
    let qos = qos(args.qos);
    if let Some(e2e) = &e2e {
        e2e.subscribe_keys(&client).await?;
    }
    let mut lines = match &args.message {
        Some(message) => {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(message.clone());
            rx
        }
        None => stdin_lines(),
    };
    loop {
        // Key bundles that arrive while waiting for input are taken at once.
        let message = tokio::select! {
            line = lines.recv() => match line {
                Some(line) => line,
                None => break,
            },
            m = client.next_message(Duration::from_secs(3600)), if e2e.is_some() => {
                if let (Some(m), Some(e2e)) = (m.map_err(|e| failed(&what, e))?, e2e.as_mut()) {
                    if e2e.device.is_key_topic(&m.topic) {
                        e2e.take_bundle(m.payload);
                    }
                }
                continue;
            }
        };
        let payload = match &mut e2e {
            None => message.into_bytes(),
            Some(e2e) => seal(&mut client, e2e, &args.topic, message.as_bytes(), &what).await?,
        };
        client
            .publish(&args.topic, payload, qos, args.retain)
            .await
            .map_err(|e| failed(&what, e))?;
    }
    if qos == QoS::AtMostOnce {
        // QoS 0 has no acknowledgement; a refusal is a DISCONNECT, which
        // the broker sends before it answers a later PINGREQ.
        client.ping().await.map_err(|e| failed(&what, e))?;
    }
    disconnect(client).await
}

/// Standard input, line by line, from a thread of its own.
fn stdin_lines() -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `message` as the envelope the topic's groups require, under the latest
/// epoch the ledger shows, waiting up to [`KEY_WAIT`] for its key bundle.
async fn seal(
    client: &mut Client,
    e2e: &mut E2e,
    topic: &str,
    message: &[u8],
    what: &str,
) -> Result<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + KEY_WAIT;
    loop {
        e2e.retry_pending();
        match e2e.device.protect(&e2e.view.snapshot(), topic, message) {
            Ok(p) => return Ok(p),
            Err(e @ (E2eError::NoKey { .. } | E2eError::NoEpoch { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tracing::debug!("waiting for the group key: {e}");
            }
            Err(e) => bail!("{what}: {e}"),
        }
        let wait = Duration::from_millis(200);
        if let Some(m) = client
            .next_message(wait)
            .await
            .map_err(|e| failed(what, e))?
        {
            if e2e.device.is_key_topic(&m.topic) {
                e2e.take_bundle(m.payload);
            }
        }
    }
}

async fn subscribe(mut client: Client, args: SubArgs, mut e2e: Option<E2e>) -> Result<()> {
    let qos = qos(args.qos);
    if let Some(e2e) = &e2e {
        // First: the retained bundles arrive before the data.
        e2e.subscribe_keys(&client).await?;
    }
    let filters: Vec<(&str, QoS)> = args.topics.iter().map(|t| (t.as_str(), qos)).collect();
    let granted = client
        .subscribe(&filters)
        .await
        .map_err(|e| failed(&format!("subscription to {}", args.topics.join(" ")), e))?;
    if let Some(((filter, _), reason)) = filters.iter().zip(&granted).find(|(_, r)| r.is_error()) {
        bail!(
            "subscription to {filter} refused: {}",
            describe_reason(*reason)
        );
    }
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut received = 0u64;
    // Data messages not printed yet, in arrival order: one sealed under an
    // epoch whose key is on its way (the key service publishes each
    // member's bundle after committing the epoch, so a publisher can be
    // quicker than this member's bundle) waits for it, up to KEY_WAIT, and
    // the messages after it wait behind it.
    let mut held: VecDeque<(tokio::time::Instant, Message)> = VecDeque::new();
    while args.count.is_none_or(|count| received < count) {
        tokio::select! {
            message = client.next_message(Duration::from_millis(200)) => {
                let message = message.map_err(|e| failed("subscription", e))?;
                match (message, &mut e2e) {
                    (None, Some(e2e)) => e2e.retry_pending(),
                    (None, None) => continue,
                    (Some(m), Some(e2e)) if e2e.device.is_key_topic(&m.topic) => {
                        e2e.take_bundle(m.payload);
                    }
                    (Some(m), _) => {
                        held.push_back((tokio::time::Instant::now(), m));
                    }
                }
                while let Some((since, message)) = held.front() {
                    if args.count.is_some_and(|count| received >= count) {
                        break;
                    }
                    let line = match &mut e2e {
                        None => Some(String::from_utf8_lossy(&message.payload).into_owned()),
                        Some(e2e) => {
                            e2e.retry_pending();
                            let snapshot = e2e.view.snapshot();
                            match e2e.device.open(&snapshot, &message.topic, &message.payload) {
                                Ok(Opened::CannotDecrypt { group, epoch, member: true })
                                    if e2e.device.awaits_key(&group, epoch)
                                        && since.elapsed() < KEY_WAIT
                                        && held.len() <= MAX_HELD =>
                                {
                                    break;
                                }
                                Ok(opened) => Some(opened.describe()),
                                Err(e) => {
                                    eprintln!("refused a message on {}: {e}", message.topic);
                                    None
                                }
                            }
                        }
                    };
                    held.pop_front();
                    if let Some(line) = line {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "{line}")
                            .and_then(|()| out.flush())
                            .context("cannot write to stdout")?;
                        received += 1;
                    }
                }
            }
            _ = &mut interrupted => break,
        }
    }
    disconnect(client).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use ledgermq_agent::ReasonCode;
    use ledgermq_ledger::contracts::Deployment;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        device: DeviceArgs,
    }

    fn parse(args: &[&str]) -> DeviceArgs {
        let base = ["device", "--bundle", "d.json", "--broker", "127.0.0.1:1883"];
        let all = base.iter().chain(args).copied();
        Cli::try_parse_from(all).map(|c| c.device).unwrap()
    }

    #[test]
    fn otp_defaults_to_mqtt_5_and_totp_to_mqtt_311() {
        assert_eq!(parse(&["connect"]).protocol().unwrap(), Protocol::V5);
        let totp = parse(&["--auth", "totp", "connect"]);
        assert_eq!(totp.protocol().unwrap(), Protocol::V311);
        let totp5 = parse(&["--auth", "totp", "--protocol", "5", "connect"]);
        assert_eq!(totp5.protocol().unwrap(), Protocol::V5);
    }

    #[test]
    fn otp_over_mqtt_311_is_a_cli_error() {
        let args = parse(&["--auth", "otp", "--protocol", "3.1.1", "connect"]);
        let err = args.protocol().unwrap_err().to_string();
        assert!(err.contains("--auth otp needs MQTT 5"), "{err}");
    }

    #[test]
    fn clean_start_takes_an_explicit_false() {
        assert!(parse(&["connect"]).clean_start);
        assert!(!parse(&["--clean-start", "false", "connect"]).clean_start);
    }

    #[test]
    fn refusals_print_the_reason_code_in_lowercase_hex() {
        let refused = ClientError::Refused {
            packet: "CONNACK",
            reason: ReasonCode::NOT_AUTHORIZED,
            protocol: Protocol::V5,
        };
        assert_eq!(
            failed("connection", refused).to_string(),
            "connection refused: 0x87 (Not authorized)"
        );
        let banned = ClientError::Disconnected {
            reason: ReasonCode::BANNED,
            reason_string: None,
        };
        let text = failed("publish to t", banned).to_string();
        assert_eq!(text, "publish to t: disconnected: 0x8a (Banned)");
    }

    #[test]
    fn a_broker_crypt_error_prints_reason_code_and_reason_string() {
        let crypt = ClientError::Disconnected {
            reason: ReasonCode::UNSPECIFIED_ERROR,
            reason_string: Some("Crypt Error".into()),
        };
        assert_eq!(
            failed("publish to t", crypt).to_string(),
            "publish to t: disconnected: 0x80 (Unspecified error) \"Crypt Error\""
        );
    }

    #[test]
    fn a_scac_failure_here_names_the_disconnect_this_client_sent() {
        let err = ClientError::Crypt(scac::CryptError::StaleKeyUpdate);
        let text = failed("subscription", err).to_string();
        assert!(
            text.starts_with("subscription failed: SCAC payload protection failed"),
            "{text}"
        );
        assert!(
            text.ends_with("(sent DISCONNECT 0x80 \"Crypt Error\")"),
            "{text}"
        );
    }

    #[test]
    fn scac_defaults_to_mqtt_5_and_refuses_mqtt_311() {
        let scac = parse(&["--auth", "scac", "connect"]);
        assert_eq!(scac.protocol().unwrap(), Protocol::V5);
        let v311 = parse(&["--auth", "scac", "--protocol", "3.1.1", "connect"]);
        let err = v311.protocol().unwrap_err().to_string();
        assert!(err.contains("--auth scac needs --protocol 5"), "{err}");
    }

    #[test]
    fn broker_account_names_the_totp_audience_too() {
        let account = format!("0x{}", "01".repeat(20));
        let totp = parse(&["--auth", "totp", "--broker-account", &account, "connect"]);
        assert!(totp.protocol().is_ok());
        let otp = parse(&["--broker-account", &account, "connect"]);
        let err = otp.protocol().unwrap_err().to_string();
        assert!(err.contains("--auth scac and --auth totp"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let bundle = write_bundle(dir.path(), &[(1, "carrier"), (2, "supplier")]);
        let args = parse_with_bundle(&bundle, &["--auth", "totp", "connect"]);
        let creds = DeviceCredentials::from_bundle(&bundle).unwrap();
        assert_eq!(args.totp_audience(&creds).unwrap(), [2; 20]);
        let args = parse_with_bundle(
            &bundle,
            &["--auth", "totp", "--broker-account", &account, "connect"],
        );
        let err = args.totp_audience(&creds).unwrap_err();
        assert!(format!("{err:#}").contains("--auth scac"), "{err:#}");
        let own = format!("0x{}", "02".repeat(20));
        let args = parse_with_bundle(
            &bundle,
            &["--auth", "totp", "--broker-account", &own, "connect"],
        );
        assert_eq!(args.totp_audience(&creds).unwrap(), [2; 20]);
        // `device totp` needs no --broker.
        let base = ["device", "--bundle", bundle.to_str().unwrap(), "totp"];
        let args = Cli::try_parse_from(base).map(|c| c.device).unwrap();
        assert!(print_totp(&args).is_ok());
    }

    #[test]
    fn scac_flags_without_auth_scac_are_an_error() {
        let args = parse(&["--device-key", "file:k#d", "connect"]);
        let err = args.protocol().unwrap_err().to_string();
        assert_eq!(err, "--device-key only applies to --auth scac");
    }

    #[test]
    fn scac_suites_are_named_by_their_method() {
        let compat = [
            "--auth",
            "scac",
            "--scac-suite",
            "SCACAuth-RSAPKCS1-2048-AES-128",
        ];
        let args = parse(&[&compat[..], &["connect"]].concat());
        assert_eq!(args.scac_suite, Some(Suite::RsaCompat));
        let base = [
            "device", "--bundle", "d.json", "--broker", "h:1", "--auth", "scac",
        ];
        let unknown = Cli::try_parse_from(base.iter().chain(&["--scac-suite", "SCAC", "connect"]));
        let err = unknown.err().unwrap().to_string();
        assert!(
            err.contains("SCACAuth-Ed25519-256-ChaCha20Poly1305-256"),
            "{err}"
        );
    }

    #[test]
    fn the_compatibility_suite_needs_rsa_keys_given_explicitly() {
        let compat = [
            "--auth",
            "scac",
            "--scac-suite",
            "SCACAuth-RSAPKCS1-2048-AES-128",
        ];
        let no_key = parse(&[&compat[..], &["connect"]].concat());
        let err = no_key.scac_auth().unwrap_err().to_string();
        assert!(err.contains("give --device-key KEYREF"), "{err}");
        let with_key = [&compat[..], &["--device-key", "file:k#card"]].concat();
        let no_broker = parse(&[&with_key[..], &["connect"]].concat());
        let err = no_broker.scac_auth().unwrap_err().to_string();
        assert!(err.contains("give --broker-rsa-key PEM-FILE"), "{err}");
        let ed25519_broker = parse(&[&with_key[..], &["--broker-key", "00", "connect"]].concat());
        let err = ed25519_broker.scac_auth().unwrap_err().to_string();
        assert!(err.contains("use --broker-rsa-key PEM-FILE"), "{err}");
        let rsa_for_default = ["--auth", "scac", "--broker-rsa-key", "b.pem", "connect"];
        let err = parse(&rsa_for_default).scac_auth().unwrap_err().to_string();
        assert!(err.contains("use --broker-key HEX"), "{err}");
    }

    fn write_bundle(dir: &Path, brokers: &[(u8, &str)]) -> PathBuf {
        use alloy_primitives::{Address, B256};
        use ledgermq_ledger::admin::{BundleBroker, DeviceSecrets, ProvisioningBundle};
        let brokers = brokers
            .iter()
            .map(|&(byte, org)| BundleBroker {
                account: Address::repeat_byte(byte),
                org: org.into(),
                signing_key: B256::repeat_byte(byte),
                agreement_key: B256::repeat_byte(0x99),
            })
            .collect();
        let deployment = Deployment {
            chain_id: 1,
            consortium: Address::ZERO,
            registry: Address::ZERO,
            audit: Address::ZERO,
            groups: Address::ZERO,
            deployed_at_block: 0,
        };
        let secrets = DeviceSecrets::generate();
        let bundle =
            ProvisioningBundle::new("sensor-42", "supplier", &secrets, brokers, deployment);
        let path = dir.join("sensor-42.json");
        std::fs::write(&path, bundle.to_json().as_bytes()).unwrap();
        path
    }

    fn parse_with_bundle(bundle: &Path, args: &[&str]) -> DeviceArgs {
        let base = [
            "device",
            "--bundle",
            bundle.to_str().unwrap(),
            "--broker",
            "h:1",
        ];
        Cli::try_parse_from(base.iter().chain(args).copied())
            .map(|c| c.device)
            .unwrap()
    }

    fn broker_key_of(args: &DeviceArgs) -> Result<PeerKey> {
        match args.scac_auth()? {
            Auth::Scac { broker_key, .. } => Ok(broker_key),
            other => panic!("not SCAC: {other:?}"),
        }
    }

    #[test]
    fn the_default_suite_takes_its_keys_from_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = write_bundle(dir.path(), &[(1, "carrier"), (2, "supplier")]);
        let args = parse_with_bundle(&bundle, &["--auth", "scac", "connect"]);
        assert_eq!(broker_key_of(&args).unwrap(), PeerKey::Ed25519([2; 32]));
        let pick = [
            "--auth",
            "scac",
            "--broker-account",
            &format!("0x{}", "01".repeat(20)),
        ];
        let args = parse_with_bundle(&bundle, &[&pick[..], &["connect"]].concat());
        assert_eq!(broker_key_of(&args).unwrap(), PeerKey::Ed25519([1; 32]));
        let given = [
            "--auth",
            "scac",
            "--broker-key",
            &"ab".repeat(32),
            "connect",
        ];
        let args = parse_with_bundle(&bundle, &given);
        assert_eq!(broker_key_of(&args).unwrap(), PeerKey::Ed25519([0xab; 32]));
        let short = ["--auth", "scac", "--broker-key", "abcd", "connect"];
        let err = broker_key_of(&parse_with_bundle(&bundle, &short)).unwrap_err();
        assert!(err.to_string().contains("64 digits"), "{err}");
    }

    #[test]
    fn an_ambiguous_broker_choice_asks_for_broker_account_or_broker_key() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = write_bundle(dir.path(), &[(1, "carrier"), (2, "customer")]);
        let args = parse_with_bundle(&bundle, &["--auth", "scac", "connect"]);
        let err = format!("{:#}", broker_key_of(&args).unwrap_err());
        assert!(
            err.contains("--broker-account 0x… (a node of the bundle) or --broker-key HEX"),
            "{err}"
        );
        assert!(err.contains(&format!("0x{}", "02".repeat(20))), "{err}");
    }
}
