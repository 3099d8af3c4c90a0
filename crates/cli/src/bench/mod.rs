//! `ledgermq bench`: throughput, loss and latency of any MQTT broker.
//!
//! Every publisher and subscriber is its own TCP connection and tokio task
//! ([`client`]), framed with our own codec over buffered sockets ([`wire`]).
//! Subscribers connect and subscribe first; publishers then run for the
//! warm-up plus the measured duration, and subscribers drain until every
//! expected message has arrived or the broker has been silent for the grace
//! period. Payload stamps carry what the report needs ([`stats`]), so the
//! clients share nothing while the clock runs. With `--otp-bundles` every
//! client logs in with `LMQ-OTP-1` as a provisioned device, so a
//! ledger-mode broker can be measured too. `ledgermq bench auth` measures
//! the device logins themselves ([`auth`]), `ledgermq bench envelope` the
//! cost of end-to-end envelopes ([`envelope`]). See docs/bench.md.

mod auth;
mod client;
mod e2e;
mod envelope;
mod scac;
mod stats;
mod wire;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use ledgermq_proto::{ConnAck, Protocol, QoS};
use tokio::task::JoinHandle;

use auth::{next_packet_number, Device};
use client::{
    Expect, Progress, PublisherPlan, PublisherReport, Schedule, SubscriberReport, STAMP_LEN,
};
use stats::Histogram;
use wire::{OtpLogin, Wire};

use crate::ledger_cmd::LedgerTarget;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Publisher i publishes to bench/<run>/i, which subscriber i alone subscribes to.
    Pairs,
    /// Every subscriber subscribes to bench/<run>/# and receives every message.
    Fanout,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Pairs => "pairs",
            Mode::Fanout => "fanout",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Broker host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker MQTT port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Number of publishing connections.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Number of subscribing connections.
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// QoS of publications and subscriptions.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload size in bytes (at least 16: sequence, publisher, timestamp).
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Messages per second per publisher; 0 publishes as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Measured publishing time in seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// How publishers map to subscribers.
    #[arg(long, value_enum, default_value_t = Mode::Pairs)]
    pub mode: Mode,
    /// MQTT protocol version: 3 (3.1.1) or 5.
    #[arg(long, default_value_t = 5, value_parser = parse_protocol)]
    pub protocol: u8,
    /// Unacknowledged QoS 1/2 messages per publisher (capped by the
    /// broker's Receive Maximum).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    pub inflight: u16,
    /// Seconds of publishing before measurement starts; not counted.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Seconds subscribers wait for stragglers after publishers stop.
    #[arg(long, default_value_t = 2.0)]
    pub grace: f64,
    /// MQTT keep-alive in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(2..))]
    pub keep_alive: u16,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Log every connection in with LMQ-OTP-1 as a device of these
    /// provisioning bundles (client id = device id; one device per
    /// connection), for a broker in ledger security mode. The devices need
    /// publish and subscribe rights on bench/#.
    #[arg(long, value_name = "DIR")]
    pub otp_bundles: Option<PathBuf>,
    /// With --otp-bundles: only bundles whose file name starts with this.
    #[arg(long, default_value = auth::DEFAULT_PREFIX, requires = "otp_bundles")]
    pub otp_prefix: String,
    /// With --otp-bundles: the topics are protected by this encryption
    /// group, of which every device is a member (docs/e2e.md): each device
    /// fetches its key first, publishers seal and sign every message,
    /// subscribers decrypt (they do not verify: the broker's policy is what
    /// is measured). Needs the ledger (--rpc/--deployment or --data-dir).
    #[arg(long, value_name = "GROUP", requires = "otp_bundles")]
    pub e2e_group: Option<String>,
    #[command(flatten)]
    pub ledger: LedgerTarget,
    /// The broker's process id (same machine): its CPU time over the run is
    /// reported per delivered message.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// Measure device logins: LMQ-OTP-1 or SCAC handshakes, or TOTP logins, per second.
    Auth(auth::AuthArgs),
    /// Protected (SCAC) QoS 2 messages per second, or the same loop unprotected.
    ScacMessages(scac::MessagesArgs),
    /// End-to-end envelopes on one core: seal+sign, open+verify, verify
    /// (one by one and batched), and one key epoch for N members.
    Envelope(envelope::EnvelopeArgs),
}

fn parse_protocol(s: &str) -> Result<u8, String> {
    match s {
        "3" | "3.1.1" | "4" => Ok(3),
        "5" | "5.0" => Ok(5),
        _ => Err("expected 3 (MQTT 3.1.1) or 5 (MQTT 5.0)".into()),
    }
}

impl BenchArgs {
    fn validate(&self) -> Result<()> {
        if self.payload < STAMP_LEN {
            bail!("--payload must be at least {STAMP_LEN} bytes (it carries sequence, publisher and timestamp)");
        }
        if self.payload > 64 * 1024 * 1024 {
            bail!("--payload above 64 MiB is not supported");
        }
        if self.publishers == 0 {
            bail!("--publishers must be at least 1");
        }
        if self.mode == Mode::Pairs && self.publishers != self.subscribers {
            bail!(
                "--mode pairs needs as many subscribers as publishers (got {} and {})",
                self.publishers,
                self.subscribers
            );
        }
        for (name, value) in [
            ("--duration", self.duration),
            ("--warmup", self.warmup),
            ("--grace", self.grace),
        ] {
            if !(0.0..=86_400.0).contains(&value) {
                bail!("{name} must be between 0 and 86400 seconds");
            }
        }
        if self.duration <= 0.0 {
            bail!("--duration must be positive");
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            bail!("--rate must be 0 (as fast as possible) or a positive number");
        }
        Ok(())
    }

    fn qos(&self) -> QoS {
        QoS::from_u8(self.qos).expect("clap bounds --qos to 0..=2")
    }

    fn protocol(&self) -> Protocol {
        if self.protocol == 3 {
            Protocol::V311
        } else {
            Protocol::V5
        }
    }

    /// Subscribers receiving each published message.
    fn fan(&self) -> u64 {
        match self.mode {
            Mode::Pairs => 1,
            Mode::Fanout => self.subscribers as u64,
        }
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        Some(BenchCommand::Auth(auth_args)) => return auth::run(auth_args),
        Some(BenchCommand::ScacMessages(m)) => return scac::run_messages(m),
        Some(BenchCommand::Envelope(e)) => return envelope::run(e),
        None => {}
    }
    args.validate()?;
    let devices = match &args.otp_bundles {
        Some(dir) => {
            if args.protocol != 5 {
                bail!("--otp-bundles needs --protocol 5 (LMQ-OTP-1 uses MQTT 5 AUTH packets)");
            }
            let devices = auth::load_devices(dir, &args.otp_prefix)?;
            let needed = args.publishers + args.subscribers;
            if devices.len() < needed {
                bail!(
                    "{} has {} device bundles named {}*, but {needed} connections need one each",
                    dir.display(),
                    devices.len(),
                    args.otp_prefix
                );
            }
            Some(Arc::new(devices))
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let outcome = runtime.block_on(execute(&args, devices));
    runtime.shutdown_timeout(Duration::from_millis(200));
    let outcome = outcome?;
    if args.json {
        println!("{}", outcome.to_json(&args));
    } else {
        print!("{}", outcome.to_table(&args));
    }
    Ok(())
}

/// Totals over all clients.
struct Outcome {
    /// Window actually used by publishers (after the broker's Receive Maximum).
    window: usize,
    sent: u64,
    sent_total: u64,
    expected: u64,
    received: u64,
    duplicates: u64,
    in_window: u64,
    malformed: u64,
    unacked: u64,
    rejected: u64,
    latency: Histogram,
    /// `--broker-pid`: the broker's CPU seconds from the first publication
    /// to the last delivery.
    broker_cpu: Option<f64>,
}

/// Devices the clients log in as: subscriber i is device i, publisher i
/// device `subscribers + i`.
type Devices = Option<Arc<Vec<Device>>>;

async fn execute(args: &BenchArgs, devices: Devices) -> Result<Outcome> {
    let run_id = run_id();
    let qos = args.qos();
    let keys = match (&args.e2e_group, &args.otp_bundles) {
        (Some(group), Some(dir)) => Some(
            e2e::fetch_keys(
                dir,
                &args.otp_prefix,
                args.subscribers + args.publishers,
                group,
                &args.ledger,
                &args.host,
                args.port,
            )
            .await?,
        ),
        _ => None,
    };
    let send_times = keys
        .as_ref()
        .map(|_| Arc::new(client::SendTimes::new(args.publishers)));
    let key_of = |i: usize| {
        keys.as_ref()
            .zip(send_times.as_ref())
            .map(|(k, t)| (k[i].clone(), t.clone()))
    };
    let subscribers = connect_subscribers(args, &run_id, &devices).await?;
    let publishers = connect_publishers(args, &run_id, &devices).await?;
    let window = negotiate_window(args, &publishers)?;

    let epoch = Instant::now();
    let start = epoch + Duration::from_millis(10);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let schedule = Schedule {
        epoch,
        start,
        measure_from,
        stop_at: measure_from + Duration::from_secs_f64(args.duration),
        grace: Duration::from_secs_f64(args.grace),
        keep_alive: Duration::from_secs(args.keep_alive.into()),
    };
    let progress = Arc::new(Progress {
        publishers_done: AtomicBool::new(false),
        sent: (0..args.publishers).map(|_| AtomicU64::new(0)).collect(),
    });

    let subscriber_tasks: Vec<JoinHandle<Result<SubscriberReport>>> = subscribers
        .into_iter()
        .enumerate()
        .map(|(i, wire)| {
            let expect = match args.mode {
                Mode::Pairs => Expect::From(i),
                Mode::Fanout => Expect::All,
            };
            let progress = progress.clone();
            tokio::spawn(client::run_subscriber(
                wire,
                expect,
                args.publishers,
                schedule,
                progress,
                key_of(i),
            ))
        })
        .collect();
    let publisher_tasks: Vec<JoinHandle<Result<PublisherReport>>> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, (wire, _))| {
            let plan = PublisherPlan {
                index: i as u32,
                topic: format!("bench/{run_id}/{i}"),
                qos,
                payload_len: args.payload,
                rate: args.rate,
                window,
                keys: key_of(args.subscribers + i),
            };
            tokio::spawn(client::run_publisher(wire, plan, schedule))
        })
        .collect();

    let cpu_before = args.broker_pid.map(process_cpu_seconds).transpose()?;
    let published = join_all(publisher_tasks).await.context("publishing")?;
    for (count, report) in progress.sent.iter().zip(&published) {
        count.store(report.sent_total, Ordering::Relaxed);
    }
    progress.publishers_done.store(true, Ordering::Release);
    let received = join_all(subscriber_tasks).await.context("receiving")?;
    let mut outcome = Outcome::tally(args, window, &published, &received);
    if let (Some(pid), Some(before)) = (args.broker_pid, cpu_before) {
        outcome.broker_cpu = Some(process_cpu_seconds(pid)? - before);
    }
    Ok(outcome)
}

/// User + system CPU seconds of process `pid` so far (Linux /proc).
fn process_cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat (--broker-pid)"))?;
    // Fields after the command name, which is in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))
    };
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
    let hz = 100.0; // USER_HZ on Linux
    Ok((ticks(11)? + ticks(12)?) / hz)
}

/// Opens one client's connection: anonymously with `anonymous_id`, or as
/// device `device` of `devices`.
async fn connect_client(
    args: (String, u16, Protocol, u16),
    anonymous_id: String,
    devices: Devices,
    device: usize,
) -> Result<(Wire, ConnAck)> {
    let (host, port, protocol, keep_alive) = args;
    match devices.as_deref().map(|d| &d[device]) {
        None => Wire::connect(&host, port, anonymous_id, protocol, keep_alive, None).await,
        Some(d) => {
            let otp = OtpLogin {
                key: &d.key,
                packet_number: next_packet_number(0),
            };
            Wire::connect(&host, port, d.id.clone(), protocol, keep_alive, Some(otp)).await
        }
    }
}

/// Connects every subscriber and waits for all their SUBACKs.
async fn connect_subscribers(
    args: &BenchArgs,
    run_id: &str,
    devices: &Devices,
) -> Result<Vec<Wire>> {
    let qos = args.qos();
    let tasks = (0..args.subscribers)
        .map(|i| {
            let target = (
                args.host.clone(),
                args.port,
                args.protocol(),
                args.keep_alive,
            );
            let client_id = format!("lmqb{run_id}s{i}");
            let filter = match args.mode {
                Mode::Pairs => format!("bench/{run_id}/{i}"),
                Mode::Fanout => format!("bench/{run_id}/#"),
            };
            let devices = devices.clone();
            tokio::spawn(async move {
                let (mut wire, _) = connect_client(target, client_id, devices, i).await?;
                let granted = wire.subscribe(&filter, qos).await?;
                if granted < qos {
                    eprintln!(
                        "note: {} was granted QoS {} only",
                        wire.name(),
                        granted as u8
                    );
                }
                Ok(wire)
            })
        })
        .collect();
    join_all(tasks).await.context("setting up subscribers")
}

/// Connects every publisher, keeping each CONNACK for its limits.
async fn connect_publishers(
    args: &BenchArgs,
    run_id: &str,
    devices: &Devices,
) -> Result<Vec<(Wire, ConnAck)>> {
    let tasks = (0..args.publishers)
        .map(|i| {
            let target = (
                args.host.clone(),
                args.port,
                args.protocol(),
                args.keep_alive,
            );
            let client_id = format!("lmqb{run_id}p{i}");
            let device = args.subscribers + i;
            tokio::spawn(connect_client(target, client_id, devices.clone(), device))
        })
        .collect();
    join_all(tasks).await.context("setting up publishers")
}

/// The QoS 1/2 window: `--inflight`, capped by the broker's Receive
/// Maximum. Fails if the broker's Maximum QoS is below `--qos`.
fn negotiate_window(args: &BenchArgs, publishers: &[(Wire, ConnAck)]) -> Result<usize> {
    let mut window = usize::from(args.inflight);
    for (_, ack) in publishers {
        if let Some(max_qos) = ack.properties.maximum_qos {
            if max_qos < args.qos {
                bail!(
                    "the broker supports QoS {max_qos} at most (CONNACK Maximum QoS), not {}",
                    args.qos
                );
            }
        }
        if let Some(receive_max) = ack.properties.receive_maximum {
            window = window.min(usize::from(receive_max));
        }
    }
    if args.qos > 0 && window < usize::from(args.inflight) && !args.json {
        eprintln!(
            "note: the broker's Receive Maximum caps the in-flight window at {window} (asked {})",
            args.inflight
        );
    }
    Ok(window)
}

/// Awaits every task, returning the first error (naming the client) if any.
async fn join_all<T>(tasks: Vec<JoinHandle<Result<T>>>) -> Result<Vec<T>> {
    let mut results = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(value)) => results.push(value),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(anyhow!("benchmark client task failed: {e}"));
            }
        }
        if first_error.is_some() {
            break;
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

/// A short id that keeps topics and client ids of concurrent runs apart.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:08x}", nanos ^ std::process::id().rotate_left(20))
}

impl Outcome {
    fn tally(
        args: &BenchArgs,
        window: usize,
        published: &[PublisherReport],
        received: &[SubscriberReport],
    ) -> Outcome {
        if let Some(reason) = published.iter().find_map(|r| r.first_rejection) {
            eprintln!(
                "note: the broker rejected publications, first with reason {reason} ({})",
                wire::reason_name(reason)
            );
        }
        let sent: u64 = published.iter().map(|r| r.sent_measured).sum();
        let mut outcome = Outcome {
            window,
            sent,
            sent_total: published.iter().map(|r| r.sent_total).sum(),
            expected: sent * args.fan(),
            received: 0,
            duplicates: 0,
            in_window: 0,
            malformed: 0,
            unacked: published.iter().map(|r| r.unacked).sum(),
            rejected: published.iter().map(|r| r.rejected).sum(),
            latency: Histogram::default(),
            broker_cpu: None,
        };
        for r in received {
            outcome.received += r.unique;
            outcome.duplicates += r.duplicates;
            outcome.in_window += r.in_window;
            outcome.malformed += r.malformed;
            outcome.latency.merge(&r.latency);
        }
        outcome
    }

    fn throughput(&self, args: &BenchArgs) -> f64 {
        self.in_window as f64 / args.duration
    }

    fn loss(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    fn loss_pct(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.loss() as f64 * 100.0 / self.expected as f64
        }
    }

    fn to_table(&self, args: &BenchArgs) -> String {
        let mut out = String::new();
        let rate = if args.rate > 0.0 {
            format!("{} msg/s each", args.rate)
        } else {
            "max rate".into()
        };
        let _ = writeln!(
            out,
            "ledgermq bench → {}:{}  MQTT {}  QoS {}  {} {}→{}  {} B  {rate}  {} s (+{} s warm-up)",
            args.host,
            args.port,
            if args.protocol == 3 { "3.1.1" } else { "5.0" },
            args.qos,
            args.mode.name(),
            args.publishers,
            args.subscribers,
            args.payload,
            args.duration,
            args.warmup,
        );
        if args.otp_bundles.is_some() {
            let _ = writeln!(
                out,
                "  every client logged in with LMQ-OTP-1 as a {}* device",
                args.otp_prefix
            );
        }
        let mut row = |name: &str, value: String| {
            let _ = writeln!(out, "  {name:<13} {value}");
        };
        row(
            "sent",
            format!(
                "{} ({:.0} msg/s)",
                self.sent,
                self.sent as f64 / args.duration
            ),
        );
        row("expected", self.expected.to_string());
        row("received", self.received.to_string());
        row("throughput", format!("{:.0} msg/s", self.throughput(args)));
        row(
            "loss",
            format!("{} ({:.3} %)", self.loss(), self.loss_pct()),
        );
        row("duplicates", self.duplicates.to_string());
        match self.latency.summary_us() {
            Some([p50, p90, p99, max]) => row(
                "latency",
                format!(
                    "p50 {}  p90 {}  p99 {}  max {}",
                    human_us(p50),
                    human_us(p90),
                    human_us(p99),
                    human_us(max)
                ),
            ),
            None => row("latency", "no samples".into()),
        }
        if args.qos > 0 {
            row(
                "in-flight",
                format!(
                    "window {}, unacked at end {}, rejected {}",
                    self.window, self.unacked, self.rejected
                ),
            );
        }
        if self.malformed > 0 {
            row(
                "malformed",
                format!("{} payloads without a valid stamp", self.malformed),
            );
        }
        if let Some(cpu) = self.broker_cpu {
            row(
                "broker CPU",
                format!(
                    "{cpu:.2} s, {:.2} µs per published message",
                    self.cpu_per_message_us(cpu)
                ),
            );
        }
        if let Some(group) = &args.e2e_group {
            row("envelopes", format!("sealed under group {group}, signed"));
        }
        out
    }

    /// Broker CPU per publication, warm-up included (the CPU is counted
    /// from the first publication).
    fn cpu_per_message_us(&self, cpu: f64) -> f64 {
        cpu * 1e6 / self.sent_total.max(1) as f64
    }

    fn to_json(&self, args: &BenchArgs) -> String {
        let latency = match self.latency.summary_us() {
            Some([p50, p90, p99, max]) => format!(
                "{{\"p50\":{p50:.1},\"p90\":{p90:.1},\"p99\":{p99:.1},\"max\":{max:.1},\"samples\":{}}}",
                self.latency.len()
            ),
            None => "null".into(),
        };
        format!(
            concat!(
                "{{\"host\":{host:?},\"port\":{port},\"protocol\":{protocol},\"qos\":{qos},",
                "\"mode\":\"{mode}\",\"publishers\":{publishers},\"subscribers\":{subscribers},",
                "\"payload\":{payload},\"rate\":{rate},\"duration_s\":{duration},\"warmup_s\":{warmup},",
                "\"inflight_window\":{window},\"sent\":{sent},\"sent_including_warmup\":{sent_total},",
                "\"expected\":{expected},\"received\":{received},\"throughput\":{throughput:.1},",
                "\"send_rate\":{send_rate:.1},\"loss\":{loss},\"loss_pct\":{loss_pct:.4},",
                "\"duplicates\":{duplicates},\"malformed\":{malformed},\"unacked\":{unacked},",
                "\"rejected\":{rejected},\"latency_us\":{latency},\"login\":\"{login}\",",
                "\"e2e_group\":{group},\"broker_cpu_us_per_message\":{cpu}}}"
            ),
            group = match &args.e2e_group {
                Some(g) => format!("{g:?}"),
                None => "null".into(),
            },
            cpu = match self.broker_cpu {
                Some(c) => format!("{:.3}", self.cpu_per_message_us(c)),
                None => "null".into(),
            },
            host = args.host,
            port = args.port,
            protocol = args.protocol,
            qos = args.qos,
            mode = args.mode.name(),
            publishers = args.publishers,
            subscribers = args.subscribers,
            payload = args.payload,
            rate = args.rate,
            duration = args.duration,
            warmup = args.warmup,
            window = self.window,
            sent = self.sent,
            sent_total = self.sent_total,
            expected = self.expected,
            received = self.received,
            throughput = self.throughput(args),
            send_rate = self.sent as f64 / args.duration,
            loss = self.loss(),
            loss_pct = self.loss_pct(),
            duplicates = self.duplicates,
            malformed = self.malformed,
            unacked = self.unacked,
            rejected = self.rejected,
            latency = latency,
            login = if args.otp_bundles.is_some() {
                "lmq-otp-1"
            } else {
                "anonymous"
            },
        )
    }
}

fn human_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}
