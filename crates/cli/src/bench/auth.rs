//! `ledgermq bench auth`: how many devices a broker in ledger security mode
//! can log in per second.
//!
//! `--method otp`: C workers, each owning its own share of the devices, loop
//! for the duration: TCP connect, the full `LMQ-OTP-1` exchange (CONNECT
//! with step 1 → AUTH 0x18 challenge → AUTH 0x18 proof → CONNACK 0x00),
//! DISCONNECT, and wait for the broker to close, so the next round starts
//! on a clean slate. A worker uses one device at a time, so a device never
//! has two exchanges in flight, and its packet numbers strictly increase,
//! across runs too (Unix microseconds).
//!
//! `--method totp`: an MQTT 3.1.1 login (user name = device id, password =
//! the current TOTP for the broker node measured, `--broker-account`) of
//! every device once, C at a time. The broker accepts a TOTP code once per
//! device (replay protection), so a device can log in once per time step:
//! the run measures over the devices there are.
//!
//! The latency of a login is from the TCP connect to the CONNACK; the rate
//! counts whole rounds (with the DISCONNECT) over the wall-clock time.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_proto::{
    decode, encode, Auth, Connect, Disconnect, Packet, Properties, Protocol, ReasonCode,
    MAX_PACKET_SIZE,
};
use ledgermq_security::scac::{Channel, ClientHandshake};
use ledgermq_security::{totp, OtpClient, OtpKey, AUTH_METHOD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::join_all;
use super::scac::{load_scac_devices, ScacDevice, ScacKeyArgs};
use super::stats::Histogram;
use super::wire::reason_name;

/// Bundles the bench uses unless told otherwise: `bench-auth-*.json`.
pub const DEFAULT_PREFIX: &str = "bench-auth-";
/// Bound on one login, and on the broker closing after DISCONNECT.
pub(super) const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed round, so a broken broker is not hammered.
const FAILURE_PAUSE: Duration = Duration::from_millis(20);

/// A provisioned device: its id and its OTP key.
pub struct Device {
    pub id: String,
    pub key: OtpKey,
    /// The bundle's only broker node of the device's organisation, the
    /// default audience of its TOTP codes.
    pub own_node: Option<[u8; 20]>,
}

/// Loads the provisioning bundles in `dir` whose file name starts with
/// `prefix` and ends with `.json`, sorted by file name.
pub fn load_devices(dir: &Path, prefix: &str) -> Result<Vec<Device>> {
    let paths = bundle_paths(dir, prefix)?;
    paths
        .iter()
        .map(|path| {
            let bundle = ProvisioningBundle::load(path)
                .with_context(|| format!("cannot load the bundle {}", path.display()))?;
            let key = bundle
                .otp_key_bytes()
                .with_context(|| format!("bad OTP key in {}", path.display()))?;
            let own: Vec<[u8; 20]> = bundle
                .brokers
                .iter()
                .filter(|b| b.org == bundle.org)
                .map(|b| b.account.0 .0)
                .collect();
            Ok(Device {
                id: bundle.device_id.clone(),
                key: OtpKey::from_bytes(*key),
                own_node: match own.as_slice() {
                    [only] => Some(*only),
                    _ => None,
                },
            })
        })
        .collect()
}

/// The bundles `dir/<prefix>*.json`, sorted by file name; at least one.
pub fn bundle_paths(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the bundle directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".json"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!(
            "no provisioning bundles {prefix}*.json in {}",
            dir.display()
        );
    }
    Ok(paths)
}

/// The next `LMQ-OTP-1` packet number of a device whose last one was
/// `prev`: the current Unix time in microseconds, or `prev + 1` if that is
/// not above `prev`. It increases across runs without any stored counter.
pub fn next_packet_number(prev: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    now.max(prev + 1)
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// MQTT 5 enhanced authentication with LMQ-OTP-1, looped for --duration.
    Otp,
    /// MQTT 3.1.1 user name = device id, password = TOTP; each device once.
    Totp,
    /// SCAC mutual authentication (--suite), looped for --duration.
    Scac,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Otp => "otp",
            Method::Totp => "totp",
            Method::Scac => "scac",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// Broker host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker MQTT port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Directory of the devices' provisioning bundles (`admin apply --bundles`).
    #[arg(long, value_name = "DIR")]
    pub bundles: PathBuf,
    /// Only bundles whose file name starts with this.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// otp: LMQ-OTP-1 handshakes in a loop; totp: one TOTP login per device.
    #[arg(long, value_enum, default_value_t = Method::Otp)]
    pub method: Method,
    /// otp: seconds of looping. totp: upper bound on the run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Logins in progress at once (otp: each worker owns its own devices).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// TOTP time step of the broker, seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub totp_step: u64,
    /// TOTP digits of the broker.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(6..=9))]
    pub totp_digits: u32,
    /// TOTP: the ledger account of the broker node measured (each code is
    /// for one node) [default: each bundle's only node of its organisation].
    #[arg(long, value_name = "0x…")]
    pub broker_account: Option<alloy_primitives::Address>,
    /// Threads of the load generator; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub scac: ScacKeyArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: AuthArgs) -> Result<()> {
    if !(args.duration > 0.0 && args.duration <= 86_400.0) {
        bail!("--duration must be between 0 and 86400 seconds");
    }
    let devices = match args.method {
        Method::Scac => Devices::Scac(load_scac_devices(&args.bundles, &args.prefix, &args.scac)?),
        _ => Devices::Otp(load_devices(&args.bundles, &args.prefix)?),
    };
    let concurrency = args.concurrency as usize;
    if args.method != Method::Totp && devices.len() < concurrency {
        bail!(
            "--concurrency {concurrency} needs as many devices, but {} has {} bundles named {}*",
            args.bundles.display(),
            devices.len(),
            args.prefix
        );
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        builder.worker_threads(args.threads);
    }
    let runtime = builder
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

/// What one worker did.
#[derive(Default)]
struct WorkerReport {
    logins: u64,
    failures: u64,
    first_failure: Option<String>,
    latency: Histogram,
}

impl WorkerReport {
    fn failed(&mut self, e: anyhow::Error) {
        self.failures += 1;
        self.first_failure.get_or_insert_with(|| format!("{e:#}"));
    }
}

struct Outcome {
    devices: usize,
    concurrency: usize,
    elapsed: Duration,
    report: WorkerReport,
}

/// The devices of a run, with what their method needs.
enum Devices {
    Otp(Vec<Device>),
    Scac(Vec<ScacDevice>),
}

impl Devices {
    fn len(&self) -> usize {
        match self {
            Devices::Otp(d) => d.len(),
            Devices::Scac(d) => d.len(),
        }
    }
}

/// Splits `devices` into `n` shares: worker w owns w, w + n, w + 2n, ...
fn shares<T>(devices: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut shares: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (i, d) in devices.into_iter().enumerate() {
        shares[i % n].push(d);
    }
    shares
}

/// The devices one looping worker logs in, in turn.
enum Share {
    /// With each device's last packet number.
    Otp(Vec<Device>, Vec<u64>),
    Scac(Vec<ScacDevice>),
}

impl Share {
    fn len(&self) -> usize {
        match self {
            Share::Otp(d, _) => d.len(),
            Share::Scac(d) => d.len(),
        }
    }

    /// The whole login of device `i`: the stream once CONNACK 0x00 arrived.
    async fn login(&mut self, conn: &mut Conn, addr: SocketAddr, i: usize) -> Result<TcpStream> {
        match self {
            Share::Otp(devices, last) => {
                let packet_number = next_packet_number(last[i]);
                last[i] = packet_number;
                conn.otp_login(addr, &devices[i], packet_number).await
            }
            Share::Scac(devices) => Ok(conn.scac_login(addr, &devices[i]).await?.0),
        }
    }
}

async fn execute(args: &AuthArgs, devices: Devices) -> Result<Outcome> {
    let addr = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot resolve {}", args.host))?
        .next()
        .ok_or_else(|| anyhow!("{} has no address", args.host))?;
    let device_count = devices.len();
    let concurrency = args.concurrency as usize;
    let start = Instant::now();
    let stop_at = start + Duration::from_secs_f64(args.duration);
    let tasks = match (args.method, devices) {
        (Method::Totp, Devices::Scac(_)) => bail!("TOTP logins need OTP keys"),
        (Method::Otp | Method::Scac, Devices::Scac(devices)) => shares(devices, concurrency)
            .into_iter()
            .map(|share| tokio::spawn(login_worker(addr, Share::Scac(share), stop_at)))
            .collect(),
        (Method::Otp | Method::Scac, Devices::Otp(devices)) => shares(devices, concurrency)
            .into_iter()
            .map(|share| {
                let last = vec![0; share.len()];
                tokio::spawn(login_worker(addr, Share::Otp(share, last), stop_at))
            })
            .collect(),
        (Method::Totp, Devices::Otp(devices)) => {
            let devices: Vec<(Device, OtpKey)> = devices
                .into_iter()
                .map(|d| {
                    let node = args
                        .broker_account
                        .map(|a| a.0 .0)
                        .or(d.own_node)
                        .ok_or_else(|| {
                            anyhow!(
                                "cannot tell which broker node the TOTP codes of {} are for: \
                                 give --broker-account 0x…",
                                d.id
                            )
                        })?;
                    let key = ledgermq_security::audience_key(&d.key, &node);
                    Ok((d, key))
                })
                .collect::<Result<_>>()?;
            let devices = Arc::new(devices);
            let next = Arc::new(AtomicUsize::new(0));
            let (step, digits) = (args.totp_step, args.totp_digits);
            (0..concurrency.min(device_count))
                .map(|_| {
                    let (devices, next) = (devices.clone(), next.clone());
                    tokio::spawn(totp_worker(addr, devices, next, stop_at, step, digits))
                })
                .collect()
        }
    };
    let reports = join_all(tasks).await?;
    let elapsed = start.elapsed();
    let mut report = WorkerReport::default();
    for r in reports {
        report.logins += r.logins;
        report.failures += r.failures;
        if report.first_failure.is_none() {
            report.first_failure = r.first_failure;
        }
        report.latency.merge(&r.latency);
    }
    Ok(Outcome {
        devices: device_count,
        concurrency,
        elapsed,
        report,
    })
}

/// Loops over the share's devices until `stop_at`: login, DISCONNECT.
async fn login_worker(
    addr: SocketAddr,
    mut share: Share,
    stop_at: Instant,
) -> Result<WorkerReport> {
    let mut report = WorkerReport::default();
    let mut conn = Conn::new(Protocol::V5);
    let mut turn = 0;
    while Instant::now() < stop_at {
        let i = turn % share.len();
        turn += 1;
        let started = Instant::now();
        match share.login(&mut conn, addr, i).await {
            Ok(stream) => {
                report.latency.record(started.elapsed().as_nanos() as u64);
                report.logins += 1;
                conn.disconnect(stream).await;
            }
            Err(e) => {
                report.failed(e);
                tokio::time::sleep(FAILURE_PAUSE).await;
            }
        }
    }
    Ok(report)
}

async fn totp_worker(
    addr: SocketAddr,
    devices: Arc<Vec<(Device, OtpKey)>>,
    next: Arc<AtomicUsize>,
    stop_at: Instant,
    step: u64,
    digits: u32,
) -> Result<WorkerReport> {
    let mut report = WorkerReport::default();
    let mut conn = Conn::new(Protocol::V311);
    while Instant::now() < stop_at {
        let Some((device, key)) = devices.get(next.fetch_add(1, Ordering::Relaxed)) else {
            break;
        };
        let started = Instant::now();
        let code = totp(key, unix_secs(), step, digits);
        match conn.totp_login(addr, device, code).await {
            Ok(stream) => {
                report.latency.record(started.elapsed().as_nanos() as u64);
                report.logins += 1;
                conn.disconnect(stream).await;
            }
            Err(e) => report.failed(e),
        }
    }
    Ok(report)
}

/// A worker's buffers, reused from one connection to the next: a login
/// allocates nothing but the packets' own fields.
pub(super) struct Conn {
    protocol: Protocol,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

impl Conn {
    pub(super) fn new(protocol: Protocol) -> Conn {
        Conn {
            protocol,
            rbuf: BytesMut::with_capacity(4096),
            wbuf: BytesMut::with_capacity(1024),
        }
    }

    async fn open(&mut self, addr: SocketAddr) -> Result<TcpStream> {
        self.rbuf.clear();
        self.wbuf.clear();
        let stream = tokio::time::timeout(LOGIN_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("timed out connecting to {addr}"))?
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn connect_packet(&self, client_id: &str) -> Connect {
        Connect {
            protocol: self.protocol,
            clean_start: true,
            keep_alive: 30,
            client_id: client_id.to_owned(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }
    }

    /// The full `LMQ-OTP-1` exchange; the stream once CONNACK 0x00 arrived.
    pub(super) async fn otp_login(
        &mut self,
        addr: SocketAddr,
        device: &Device,
        packet_number: u64,
    ) -> Result<TcpStream> {
        let mut stream = self.open(addr).await?;
        let deadline = Instant::now() + LOGIN_TIMEOUT;
        let mut connect = self.connect_packet(&device.id);
        connect.properties.authentication_method = Some(AUTH_METHOD.into());
        connect.properties.authentication_data =
            Some(OtpClient::connect_data(&device.id, packet_number)?.into());
        self.send(&mut stream, &Packet::Connect(connect)).await?;
        let challenge = match self.receive(&mut stream, deadline).await? {
            Packet::Auth(auth) => {
                let p = &auth.properties;
                if auth.reason != ReasonCode::CONTINUE_AUTHENTICATION
                    || p.authentication_method.as_deref() != Some(AUTH_METHOD)
                {
                    bail!(
                        "{}: AUTH {} with method {:?} instead of a challenge",
                        device.id,
                        auth.reason,
                        p.authentication_method
                    );
                }
                p.authentication_data
                    .as_deref()
                    .and_then(OtpClient::challenge)
                    .ok_or_else(|| anyhow!("{}: the challenge is not 32 bytes", device.id))?
            }
            Packet::ConnAck(ack) => bail!(
                "{}: refused at step 1: CONNACK {} ({})",
                device.id,
                ack.reason,
                reason_name(ack.reason)
            ),
            other => bail!("{}: {} instead of AUTH", device.id, other.name()),
        };
        let proof = OtpClient::proof(&device.key, &challenge, &device.id, packet_number);
        let answer = Packet::Auth(Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Properties {
                authentication_method: Some(AUTH_METHOD.into()),
                authentication_data: Some(proof.to_vec().into()),
                ..Default::default()
            },
        });
        self.send(&mut stream, &answer).await?;
        self.expect_connack(&mut stream, deadline, &device.id)
            .await?;
        Ok(stream)
    }

    /// The full SCAC exchange (CONNECT step 1 → AUTH step 2 → AUTH step 3
    /// → CONNACK 0x00); the stream and the payload keys.
    pub(super) async fn scac_login(
        &mut self,
        addr: SocketAddr,
        device: &ScacDevice,
    ) -> Result<(TcpStream, Channel)> {
        let method = device.suite.method();
        let (handshake, step1) =
            ClientHandshake::start(device.suite, &device.id, &device.key, &device.broker)
                .map_err(|e| anyhow!("{}: step 1: {e}", device.id))?;
        let mut stream = self.open(addr).await?;
        let deadline = Instant::now() + LOGIN_TIMEOUT;
        let mut connect = self.connect_packet(&device.id);
        connect.properties.authentication_method = Some(method.into());
        connect.properties.authentication_data = Some(step1.into());
        self.send(&mut stream, &Packet::Connect(connect)).await?;
        let step2 = match self.receive(&mut stream, deadline).await? {
            Packet::Auth(auth) if auth.reason == ReasonCode::CONTINUE_AUTHENTICATION => auth
                .properties
                .authentication_data
                .ok_or_else(|| anyhow!("{}: step 2 without data", device.id))?,
            Packet::ConnAck(ack) => bail!(
                "{}: refused at step 1: CONNACK {} ({})",
                device.id,
                ack.reason,
                reason_name(ack.reason)
            ),
            other => bail!("{}: {} instead of AUTH", device.id, other.name()),
        };
        let (step3, channel) = handshake
            .on_step2(&step2)
            .map_err(|e| anyhow!("{}: the broker's step 2 does not verify: {e}", device.id))?;
        let answer = Packet::Auth(Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Properties {
                authentication_method: Some(method.into()),
                authentication_data: Some(step3.into()),
                ..Default::default()
            },
        });
        self.send(&mut stream, &answer).await?;
        self.expect_connack(&mut stream, deadline, &device.id)
            .await?;
        Ok((stream, channel))
    }

    /// An MQTT 3.1.1 login with a TOTP password.
    async fn totp_login(
        &mut self,
        addr: SocketAddr,
        device: &Device,
        code: String,
    ) -> Result<TcpStream> {
        let mut stream = self.open(addr).await?;
        let deadline = Instant::now() + LOGIN_TIMEOUT;
        let mut connect = self.connect_packet(&device.id);
        connect.username = Some(device.id.clone());
        connect.password = Some(code.into_bytes().into());
        self.send(&mut stream, &Packet::Connect(connect)).await?;
        self.expect_connack(&mut stream, deadline, &device.id)
            .await?;
        Ok(stream)
    }

    async fn expect_connack(
        &mut self,
        stream: &mut TcpStream,
        deadline: Instant,
        device_id: &str,
    ) -> Result<()> {
        match self.receive(stream, deadline).await? {
            Packet::ConnAck(ack) if ack.reason == ReasonCode::SUCCESS => Ok(()),
            Packet::ConnAck(ack) => bail!(
                "{device_id}: refused: CONNACK {} ({})",
                ack.reason,
                reason_name(ack.reason)
            ),
            other => bail!("{device_id}: {} instead of CONNACK", other.name()),
        }
    }

    pub(super) async fn send(&mut self, stream: &mut TcpStream, packet: &Packet) -> Result<()> {
        self.wbuf.clear();
        encode(packet, self.protocol, &mut self.wbuf)
            .map_err(|e| anyhow!("cannot encode {}: {e}", packet.name()))?;
        stream
            .write_all(&self.wbuf)
            .await
            .context("write to the broker failed")
    }

    /// The next packet from the broker, within `deadline`.
    pub(super) async fn receive(
        &mut self,
        stream: &mut TcpStream,
        deadline: Instant,
    ) -> Result<Packet> {
        loop {
            if let Some(packet) = decode(&mut self.rbuf, Some(self.protocol), MAX_PACKET_SIZE)
                .map_err(|e| anyhow!("bad packet from the broker: {e}"))?
            {
                return Ok(packet);
            }
            let n = tokio::time::timeout_at(deadline.into(), stream.read_buf(&mut self.rbuf))
                .await
                .map_err(|_| anyhow!("no answer from the broker within {LOGIN_TIMEOUT:?}"))?
                .context("read from the broker failed")?;
            if n == 0 {
                bail!("the broker closed the connection");
            }
        }
    }

    /// Sends DISCONNECT and waits (briefly) for the broker to close first,
    /// so TIME_WAIT stays on the broker's side and the load generator does
    /// not run out of ephemeral ports.
    async fn disconnect(&mut self, mut stream: TcpStream) {
        if self
            .send(&mut stream, &Packet::Disconnect(Disconnect::default()))
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            loop {
                self.rbuf.clear();
                match stream.read_buf(&mut self.rbuf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.report.logins as f64 / self.elapsed.as_secs_f64()
    }

    fn to_table(&self, args: &AuthArgs) -> String {
        let mut out = String::new();
        let what = match args.method {
            Method::Otp => format!("{AUTH_METHOD} handshakes (MQTT 5)"),
            Method::Totp => "TOTP logins (MQTT 3.1.1), each device once".into(),
            Method::Scac => format!("{} handshakes (MQTT 5)", args.scac.suite.suite().method()),
        };
        let _ = writeln!(
            out,
            "ledgermq bench auth → {}:{}  {what}  {} devices  concurrency {}",
            args.host, args.port, self.devices, self.concurrency
        );
        let mut row = |name: &str, value: String| {
            let _ = writeln!(out, "  {name:<13} {value}");
        };
        row(
            "logins",
            format!(
                "{} in {:.2} s ({:.0}/s)",
                self.report.logins,
                self.elapsed.as_secs_f64(),
                self.rate()
            ),
        );
        row("failures", self.report.failures.to_string());
        match self.report.latency.summary_us() {
            Some([p50, p90, p99, max]) => row(
                "latency",
                format!(
                    "p50 {}  p90 {}  p99 {}  max {}",
                    super::human_us(p50),
                    super::human_us(p90),
                    super::human_us(p99),
                    super::human_us(max)
                ),
            ),
            None => row("latency", "no samples".into()),
        }
        if let Some(e) = &self.report.first_failure {
            row("first error", e.clone());
        }
        out
    }

    fn to_json(&self, args: &AuthArgs) -> String {
        let latency = match self.report.latency.summary_us() {
            Some([p50, p90, p99, max]) => format!(
                "{{\"p50\":{p50:.1},\"p90\":{p90:.1},\"p99\":{p99:.1},\"max\":{max:.1},\"samples\":{}}}",
                self.report.latency.len()
            ),
            None => "null".into(),
        };
        let first_failure = match &self.report.first_failure {
            Some(e) => format!("{e:?}"),
            None => "null".into(),
        };
        format!(
            concat!(
                "{{\"host\":{host:?},\"port\":{port},\"method\":\"{method}\",\"devices\":{devices},",
                "\"concurrency\":{concurrency},\"duration_s\":{duration},\"elapsed_s\":{elapsed:.3},",
                "\"logins\":{logins},\"failures\":{failures},\"rate\":{rate:.1},",
                "\"latency_us\":{latency},\"first_failure\":{first_failure}}}"
            ),
            host = args.host,
            port = args.port,
            method = args.method.name(),
            devices = self.devices,
            concurrency = self.concurrency,
            duration = args.duration,
            elapsed = self.elapsed.as_secs_f64(),
            logins = self.report.logins,
            failures = self.report.failures,
            rate = self.rate(),
            latency = latency,
            first_failure = first_failure,
        )
    }
}
