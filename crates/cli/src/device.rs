//! `ledgermq device …`: act as a provisioned device — connect, publish,
//! subscribe — authenticating with `LMQ-OTP-1` or TOTP exactly as device
//! firmware built on `ledgermq-agent` does. Meant for operators checking a
//! registration and for scripts and tests: stdout carries only the result
//! (`CONNECTED <id>`, or the received payloads), and every refusal by the
//! broker exits non-zero with its reason code on stderr.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgAction, Args, Subcommand, ValueEnum};
use ledgermq_agent::{
    describe_reason, Auth, Client, ClientError, ClientOptions, DeviceCredentials, PacketCounter,
    Protocol, QoS,
};
use ledgermq_security::totp::{DEFAULT_DIGITS, DEFAULT_STEP_SECS};

#[derive(Args)]
pub struct DeviceArgs {
    /// The device's provisioning bundle (written by `admin device register`).
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// The broker's MQTT listener.
    #[arg(long, value_name = "HOST:PORT")]
    broker: String,
    /// `otp`: LMQ-OTP-1 challenge/response (MQTT 5 only); `totp`: user name
    /// = device id, password = TOTP.
    #[arg(long, value_enum, default_value_t = AuthKind::Otp)]
    auth: AuthKind,
    /// MQTT version: 5 or 3.1.1 [default: 5 with otp, 3.1.1 with totp].
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
    #[command(subcommand)]
    action: DeviceAction,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuthKind {
    Otp,
    Totp,
}

#[derive(Subcommand)]
enum DeviceAction {
    /// Authenticate, print `CONNECTED <device-id>`, disconnect.
    Connect,
    /// Publish one message and wait for the broker's acknowledgement.
    Pub(PubArgs),
    /// Subscribe and print each received payload on its own line.
    Sub(SubArgs),
}

#[derive(Args)]
struct PubArgs {
    #[arg(long)]
    topic: String,
    #[arg(long)]
    message: String,
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

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "5" | "5.0" => Ok(Protocol::V5),
        "3.1.1" | "311" => Ok(Protocol::V311),
        other => Err(format!("unknown MQTT version {other:?} (use 5 or 3.1.1)")),
    }
}

pub fn run(args: DeviceArgs) -> Result<()> {
    let protocol = args.protocol()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args, protocol))
}

impl DeviceArgs {
    fn protocol(&self) -> Result<Protocol> {
        match (self.auth, self.protocol) {
            (AuthKind::Otp, Some(Protocol::V311)) => bail!(
                "--auth otp needs MQTT 5 (LMQ-OTP-1 is MQTT 5 enhanced authentication); \
                 use --auth totp for MQTT 3.1.1"
            ),
            (_, Some(protocol)) => Ok(protocol),
            (AuthKind::Otp, None) => Ok(Protocol::V5),
            (AuthKind::Totp, None) => Ok(Protocol::V311),
        }
    }

    fn client_options(
        &self,
        creds: &DeviceCredentials,
        protocol: Protocol,
    ) -> Result<ClientOptions> {
        let mut opts = ClientOptions::new(self.broker.clone(), creds.device_id.clone());
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
                step_secs: self.totp_step,
                digits: self.totp_digits,
            },
        };
        Ok(opts)
    }
}

async fn run_async(args: DeviceArgs, protocol: Protocol) -> Result<()> {
    let creds = DeviceCredentials::from_bundle(&args.bundle)?;
    let opts = args.client_options(&creds, protocol)?;
    let (client, _) = Client::connect(opts)
        .await
        .map_err(|e| failed("connection", e))?;
    match args.action {
        DeviceAction::Connect => {
            println!("CONNECTED {}", creds.device_id);
            disconnect(client).await
        }
        DeviceAction::Pub(p) => publish(client, p).await,
        DeviceAction::Sub(s) => subscribe(client, s).await,
    }
}

/// `<what> refused: 0x87 (Not authorized)` when the broker said no; the
/// error itself (connection trouble, timeouts) otherwise.
fn failed(what: &str, err: ClientError) -> anyhow::Error {
    match (&err, err.reason_text()) {
        (ClientError::Disconnected { .. }, Some(reason)) => {
            anyhow!("{what} refused: {reason} (the broker closed the connection)")
        }
        (_, Some(reason)) => anyhow!("{what} refused: {reason}"),
        (_, None) => anyhow::Error::new(err).context(format!("{what} failed")),
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

async fn publish(client: Client, args: PubArgs) -> Result<()> {
    let what = format!("publish to {}", args.topic);
    let qos = qos(args.qos);
    client
        .publish(&args.topic, args.message.into_bytes(), qos, args.retain)
        .await
        .map_err(|e| failed(&what, e))?;
    if qos == QoS::AtMostOnce {
        // QoS 0 has no acknowledgement; a refusal is a DISCONNECT, which
        // the broker sends before it answers a later PINGREQ.
        client.ping().await.map_err(|e| failed(&what, e))?;
    }
    disconnect(client).await
}

async fn subscribe(mut client: Client, args: SubArgs) -> Result<()> {
    let qos = qos(args.qos);
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
    while args.count.is_none_or(|count| received < count) {
        tokio::select! {
            message = client.next_message(Duration::from_secs(3600)) => {
                let Some(message) = message.map_err(|e| failed("subscription", e))? else {
                    continue;
                };
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", String::from_utf8_lossy(&message.payload))
                    .and_then(|()| out.flush())
                    .context("cannot write to stdout")?;
                received += 1;
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
        assert!(
            text.starts_with("publish to t refused: 0x8a (Banned)"),
            "{text}"
        );
    }
}
