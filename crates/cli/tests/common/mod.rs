//! Test harness: a broker per test on an ephemeral port, a raw MQTT client
//! for byte-level checks, and runners for third-party clients
//! (mosquitto_pub/mosquitto_sub, paho-mqtt scripts).
//!
//! `LEDGERMQ_TEST_BROKER=mosquitto` runs the same tests against Mosquitto,
//! which proves they check the MQTT specification and not our own quirks.
//! Tests of ledgermq-only features skip themselves there.
//!
//! Every wait has a timeout: a broken broker fails a test, never hangs it.

#![allow(dead_code)]

pub mod ledger;
pub mod network;
pub mod wire;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use wire::{sub_opts, Ack, Connect, Packet, Props, Publish, Will, V3, V5};

/// Default wait for something that must happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// Default wait when checking that something does NOT happen.
pub const QUIET: Duration = Duration::from_millis(700);

// ------------------------------------------------------------------ broker

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Ledgermq,
    Mosquitto,
}

pub fn broker_kind() -> BrokerKind {
    match std::env::var("LEDGERMQ_TEST_BROKER").as_deref() {
        Ok("mosquitto") => BrokerKind::Mosquitto,
        Ok("") | Ok("ledgermq") | Err(_) => BrokerKind::Ledgermq,
        Ok(other) => panic!("LEDGERMQ_TEST_BROKER={other}: expected ledgermq or mosquitto"),
    }
}

pub fn is_mosquitto() -> bool {
    broker_kind() == BrokerKind::Mosquitto
}

/// Returns true (and says so) when the test must be skipped because it
/// checks a ledgermq-only feature and the suite runs against mosquitto.
pub fn skip_unless_ledgermq(what: &str) -> bool {
    if is_mosquitto() {
        eprintln!("SKIP under mosquitto: {what} is ledgermq-specific");
        true
    } else {
        false
    }
}

/// Returns true (and says so) under mosquitto for a check where Mosquitto
/// 2.0 is known to deviate from the specification; the test then stops
/// before that check.
pub fn mosquitto_deviates(what: &str) -> bool {
    if is_mosquitto() {
        eprintln!("SKIP check under mosquitto (known deviation): {what}");
        true
    } else {
        false
    }
}

pub fn ledgermq_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LEDGERMQ_BIN") {
        return PathBuf::from(p);
    }
    match option_env!("CARGO_BIN_EXE_ledgermq") {
        Some(p) => PathBuf::from(p),
        None => panic!("set LEDGERMQ_BIN to the ledgermq binary"),
    }
}

/// A broker process owned by one test; killed on drop.
pub struct Broker {
    kind: BrokerKind,
    child: Option<Child>,
    pub port: u16,
    pub tls_port: Option<u16>,
    /// Port of the Prometheus endpoint, when `metrics-listen` was given.
    pub metrics_port: Option<u16>,
    opts: Vec<(String, String)>,
    /// Holds the data dir, config and logs; survives restarts.
    pub dir: Arc<tempfile::TempDir>,
    starts: u32,
}

/// Maps a ledgermq option to a mosquitto.conf line, when mosquitto has one.
fn mosquitto_line(key: &str, value: &str) -> Option<String> {
    let k = match key {
        "max-packet-size" => "max_packet_size",
        "max-keep-alive" => "max_keepalive",
        "topic-alias-maximum" => "max_topic_alias",
        "max-queued-messages" => "max_queued_messages",
        "receive-maximum" => "max_inflight_messages",
        "max-inflight" => "max_inflight_messages",
        "sys-interval" => "sys_interval",
        "allow-anonymous" => "allow_anonymous",
        "persistence" if value == "false" => return Some(String::new()),
        _ => return None,
    };
    Some(format!("{k} {value}"))
}

impl Broker {
    /// A broker with default settings (persistence off for speed and
    /// isolation unless a test asks for it).
    pub fn start() -> Broker {
        Broker::with(&[]).expect("default broker always starts")
    }

    /// A broker with `--key value` options. Under mosquitto, returns None
    /// (the test skips) when an option has no mosquitto equivalent.
    pub fn with(opts: &[(&str, &str)]) -> Option<Broker> {
        Broker::with_setup(opts, |_| Vec::new())
    }

    /// Like [`Broker::with`], after running `setup` in the broker's fresh
    /// directory (e.g. to create its ledger); `setup` returns more options.
    /// ledgermq-only: under mosquitto a setup that returns options skips.
    pub fn with_setup(
        opts: &[(&str, &str)],
        setup: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> Option<Broker> {
        let kind = broker_kind();
        let opts: Vec<(String, String)> = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if kind == BrokerKind::Mosquitto {
            for (k, v) in &opts {
                if mosquitto_line(k, v).is_none() {
                    eprintln!("SKIP under mosquitto: option --{k} {v} has no mosquitto equivalent");
                    return None;
                }
            }
        }
        let dir = Arc::new(
            tempfile::Builder::new()
                .prefix("lmq-test-")
                .tempdir()
                .expect("tempdir"),
        );
        let extra = setup(dir.path());
        if kind == BrokerKind::Mosquitto && !extra.is_empty() {
            eprintln!("SKIP under mosquitto: needs a ledgermq set-up");
            return None;
        }
        let mut opts = opts;
        opts.extend(extra);
        let mut b = Broker {
            kind,
            child: None,
            port: 0,
            tls_port: None,
            metrics_port: None,
            opts,
            dir,
            starts: 0,
        };
        b.launch();
        Some(b)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("broker-{}.log", self.starts))
    }

    fn launch(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        match self.kind {
            BrokerKind::Ledgermq => self.launch_ledgermq(log),
            BrokerKind::Mosquitto => self.launch_mosquitto(log),
        }
    }

    /// Whether serve would open its embedded ledger's JSON-RPC on the
    /// default port: the ledger mode on its own embedded chain. Plain
    /// brokers start no ledger at all.
    fn serves_ledger_rpc_by_default(&self) -> bool {
        let opt = |key: &str| {
            self.opts
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        opt("security") == Some("ledger")
            && opt("ledger-rpc-listen").is_none()
            && opt("ledger-rpc").is_none()
            && opt("embedded-ledger") != Some("false")
    }

    fn launch_ledgermq(&mut self, log: std::fs::File) {
        std::fs::create_dir_all(self.data_dir()).unwrap();
        let mut cmd = Command::new(ledgermq_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir());
        let mut has_persistence = false;
        for (k, v) in &self.opts {
            has_persistence |= k == "persistence";
            cmd.arg(format!("--{k}")).arg(v);
        }
        if !has_persistence {
            cmd.arg("--persistence").arg("false");
        }
        if self.serves_ledger_rpc_by_default() {
            // Every test has its own broker: never the default port.
            cmd.arg("--ledger-rpc-listen").arg("127.0.0.1:0");
        }
        let want_tls = self.opts.iter().any(|(k, _)| k == "tls-listen");
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "debug");
        }
        cmd.stdout(Stdio::piped()).stderr(log).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn ledgermq");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the broker never blocks on stdout.
                    continue;
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let want_metrics = self.opts.iter().any(|(k, _)| k == "metrics-listen");
        let (mut port, mut tls_port, mut metrics_port) = (None, None, None);
        while port.is_none()
            || (want_tls && tls_port.is_none())
            || (want_metrics && metrics_port.is_none())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!(
                    "ledgermq printed no LISTENING line within 20 s (args {:?});\n{}",
                    self.opts,
                    self.log_tail()
                ),
            };
            let mut parts = line.split_whitespace();
            if parts.next() != Some("LISTENING") {
                continue;
            }
            let proto = parts.next().unwrap_or("");
            let addr: std::net::SocketAddr = parts
                .next()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            match proto {
                "mqtt" => port = Some(addr.port()),
                "mqtts" => tls_port = Some(addr.port()),
                "metrics" => metrics_port = Some(addr.port()),
                _ => {}
            }
        }
        self.port = port.unwrap();
        self.tls_port = tls_port;
        self.metrics_port = metrics_port;
    }

    fn launch_mosquitto(&mut self, _log: std::fs::File) {
        // Mosquitto cannot print its port: take a free one outside the
        // ephemeral range and retry if another test won the race.
        for _attempt in 0..10 {
            let port = free_port_outside_ephemeral_range();
            let mut conf =
                format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n");
            for (k, v) in &self.opts {
                if k == "allow-anonymous" {
                    conf = conf.replace("allow_anonymous true\n", "");
                }
                let line = mosquitto_line(k, v).unwrap();
                if !line.is_empty() {
                    conf.push_str(&line);
                    conf.push('\n');
                }
            }
            let conf_path = self.dir.path().join("mosquitto.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let log = std::fs::File::create(self.log_path()).expect("log file");
            let child = Command::new("mosquitto")
                .arg("-c")
                .arg(&conf_path)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn mosquitto");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                if log.contains(" running") {
                    self.port = port;
                    return;
                }
                if let Some(_st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    break; // most likely "Address already in use": retry
                }
                assert!(
                    Instant::now() < deadline,
                    "mosquitto did not start:\n{}",
                    self.log_tail()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            self.child = None;
        }
        panic!("mosquitto failed to start 10 times:\n{}", self.log_tail());
    }

    /// Last lines of the broker's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        format!(
            "--- broker log ({}) ---\n{}",
            self.log_path().display(),
            lines[start..].join("\n")
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit (graceful shutdown).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("broker did not exit within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same data dir (new port).
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    // Raw-client shorthands.

    pub fn v5(&self, id: &str) -> Client {
        Client::connect_ok(self.port, Connect::v5(id))
    }

    pub fn v3(&self, id: &str) -> Client {
        Client::connect_ok(self.port, Connect::v3(id))
    }

    pub fn connect(&self, c: Connect) -> (Client, ConnAck) {
        Client::connect(self.port, c)
    }

    pub fn connect_ok(&self, c: Connect) -> Client {
        Client::connect_ok(self.port, c)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.kill9();
    }
}

/// A bindable port in 20000..32000, below Linux's ephemeral range, so that
/// outgoing client sockets never grab it between our check and the bind.
pub fn free_port_outside_ephemeral_range() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let seed = std::process::id()
            .wrapping_mul(2654435761)
            .wrapping_add(n.wrapping_mul(40503));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let port = 20000 + ((seed ^ nanos) % 12000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// -------------------------------------------------------------- raw client

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: u8,
    pub props: Props,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Recv {
    Packet(Packet),
    Timeout,
    Closed,
    /// The broker sent bytes our strict decoder rejects.
    Malformed(String),
}

/// A minimal blocking MQTT client that does exactly what the test says.
pub struct Client {
    pub stream: TcpStream,
    pub level: u8,
    buf: Vec<u8>,
    pending: VecDeque<Packet>,
    next_pkid: u16,
    pub id: String,
}

impl Client {
    pub fn tcp(port: u16, level: u8) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("TCP connect to broker");
        Client::over(stream, level)
    }

    /// A connection to the broker on 127.0.0.1 from source address `from`
    /// (any of 127.0.0.0/8: loopback accepts them all), so a test can have
    /// clients at distinct sources.
    pub fn tcp_from(from: std::net::IpAddr, port: u16, level: u8) -> Client {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket
            .bind(&std::net::SocketAddr::new(from, 0).into())
            .unwrap_or_else(|e| panic!("bind {from}: {e}"));
        let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        socket
            .connect_timeout(&to.into(), WAIT)
            .expect("TCP connect to broker");
        Client::over(socket.into(), level)
    }

    fn over(stream: TcpStream, level: u8) -> Client {
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            level,
            buf: Vec::new(),
            pending: VecDeque::new(),
            next_pkid: 0,
            id: String::new(),
        }
    }

    /// Sends CONNECT and returns the CONNACK, whatever its code.
    pub fn connect(port: u16, c: Connect) -> (Client, ConnAck) {
        Client::connect_from(std::net::Ipv4Addr::LOCALHOST.into(), port, c)
    }

    /// [`Client::connect`] from source address `from` (127.0.0.0/8).
    pub fn connect_from(from: std::net::IpAddr, port: u16, c: Connect) -> (Client, ConnAck) {
        let level = if c.level == V5 { V5 } else { V3 };
        let mut cl = Client::tcp_from(from, port, level);
        cl.id = c.client_id.clone();
        cl.send(&Packet::Connect(c));
        match cl.recv() {
            Packet::ConnAck {
                session_present,
                code,
                props,
            } => {
                if let Some(id) = &props.assigned_client_identifier {
                    cl.id = id.clone();
                }
                (
                    cl,
                    ConnAck {
                        session_present,
                        code,
                        props,
                    },
                )
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects and asserts success.
    pub fn connect_ok(port: u16, c: Connect) -> Client {
        let (cl, ack) = Client::connect(port, c);
        assert_eq!(ack.code, 0, "CONNACK refused: {ack:?}");
        cl
    }

    pub fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.wrapping_add(1);
        if self.next_pkid == 0 {
            self.next_pkid = 1;
        }
        self.next_pkid
    }

    pub fn send(&mut self, p: &Packet) {
        let bytes = wire::encode(p, self.level);
        self.send_bytes(&bytes);
    }

    /// Writes raw bytes; a write error (broker already closed) is ignored:
    /// the following read observes the close.
    pub fn send_bytes(&mut self, b: &[u8]) {
        let _ = self.stream.write_all(b);
    }

    /// Next packet (queued ones first), or what happened instead.
    pub fn try_recv(&mut self, timeout: Duration) -> Recv {
        if let Some(p) = self.pending.pop_front() {
            return Recv::Packet(p);
        }
        self.read_packet(timeout)
    }

    fn read_packet(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        loop {
            match wire::decode(&self.buf, self.level) {
                Ok(Some((p, used))) => {
                    self.buf.drain(..used);
                    return Recv::Packet(p);
                }
                Ok(None) => {}
                Err(e) => return Recv::Malformed(e),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Recv::Timeout;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Recv::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Recv::Timeout
                }
                Err(_) => return Recv::Closed,
            }
        }
    }

    /// The next packet; panics on timeout or close.
    pub fn recv(&mut self) -> Packet {
        match self.try_recv(WAIT) {
            Recv::Packet(p) => p,
            other => panic!("client {:?}: expected a packet, got {other:?}", self.id),
        }
    }

    /// Waits for a packet matching `pred`, keeping the others queued.
    pub fn recv_matching(&mut self, what: &str, pred: impl Fn(&Packet) -> bool) -> Packet {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = Instant::now() + WAIT;
        let mut skipped = VecDeque::new();
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_packet(left) {
                Recv::Packet(p) if pred(&p) => break p,
                Recv::Packet(p) => skipped.push_back(p),
                other => panic!(
                    "client {:?}: waiting for {what}, got {other:?} (skipped {skipped:?})",
                    self.id
                ),
            }
        };
        self.pending.extend(skipped);
        result
    }

    pub fn recv_publish(&mut self) -> Publish {
        match self.recv() {
            Packet::Publish(p) => p,
            other => panic!("client {:?}: expected PUBLISH, got {other:?}", self.id),
        }
    }

    /// Asserts that nothing arrives for `d` (PINGRESP excepted).
    pub fn expect_nothing(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.try_recv(left) {
                Recv::Timeout => return,
                Recv::Packet(Packet::PingResp) => continue,
                other => panic!("client {:?}: expected nothing, got {other:?}", self.id),
            }
        }
    }

    /// Asserts the broker closes the connection, returning what it sent
    /// before closing (e.g. a DISCONNECT).
    pub fn expect_closed(&mut self) -> Vec<Packet> {
        self.expect_closed_within(WAIT)
    }

    pub fn expect_closed_within(&mut self, wait: Duration) -> Vec<Packet> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_recv(left) {
                Recv::Closed => return seen,
                Recv::Packet(p) => seen.push(p),
                Recv::Timeout => panic!(
                    "client {:?}: broker did not close the connection; saw {seen:?}",
                    self.id
                ),
                Recv::Malformed(e) => {
                    panic!("client {:?}: malformed bytes from broker: {e}", self.id)
                }
            }
        }
    }

    /// Asserts the broker closes the connection; on MQTT 5 it must first
    /// send DISCONNECT with one of `reasons` (the spec says SHOULD, we hold
    /// ledgermq to it; an empty `reasons` accepts a bare close).
    pub fn expect_disconnect(&mut self, reasons: &[u8]) {
        let seen = self.expect_closed();
        let disconnect = seen.iter().find_map(|p| match p {
            Packet::Disconnect { reason, .. } => Some(*reason),
            _ => None,
        });
        // Mosquitto skips this SHOULD; ledgermq is held to it.
        if self.level == V5 && !reasons.is_empty() && !(is_mosquitto() && disconnect.is_none()) {
            match disconnect {
                Some(r) => assert!(
                    reasons.contains(&r),
                    "DISCONNECT reason 0x{r:02X}, expected one of {:02X?}",
                    reasons
                ),
                None => panic!(
                    "connection closed without DISCONNECT (expected {reasons:02X?}); saw {seen:?}"
                ),
            }
        }
    }

    pub fn subscribe(&mut self, filter: &str, qos: u8) -> u8 {
        self.subscribe_with(&[(filter, qos)], Props::default())[0]
    }

    /// SUBSCRIBE with raw option bytes and properties; returns SUBACK codes.
    pub fn subscribe_with(&mut self, filters: &[(&str, u8)], props: Props) -> Vec<u8> {
        let pkid = self.pkid();
        let filters = filters.iter().map(|(f, o)| (f.to_string(), *o)).collect();
        self.send(&Packet::Subscribe {
            pkid,
            props,
            filters,
        });
        match self.recv_matching("SUBACK", |p| matches!(p, Packet::SubAck { .. })) {
            Packet::SubAck {
                pkid: got, codes, ..
            } => {
                assert_eq!(got, pkid, "SUBACK packet id");
                codes
            }
            _ => unreachable!(),
        }
    }

    pub fn unsubscribe(&mut self, filters: &[&str]) -> Vec<u8> {
        let pkid = self.pkid();
        let filters = filters.iter().map(|f| f.to_string()).collect();
        self.send(&Packet::Unsubscribe {
            pkid,
            props: Props::default(),
            filters,
        });
        match self.recv_matching("UNSUBACK", |p| matches!(p, Packet::UnsubAck { .. })) {
            Packet::UnsubAck {
                pkid: got, codes, ..
            } => {
                assert_eq!(got, pkid, "UNSUBACK packet id");
                codes
            }
            _ => unreachable!(),
        }
    }

    /// Publishes and completes the QoS handshake; returns the reason code
    /// of the PUBACK/PUBREC (0 for QoS 0).
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> u8 {
        let mut p = Publish::new(topic, payload, qos);
        p.retain = retain;
        self.publish_packet(p)
    }

    pub fn publish_packet(&mut self, mut p: Publish) -> u8 {
        if p.qos > 0 && p.pkid == 0 {
            p.pkid = self.pkid();
        }
        let (qos, pkid) = (p.qos, p.pkid);
        self.send(&Packet::Publish(p));
        match qos {
            0 => 0,
            1 => match self.recv_matching(
                "PUBACK",
                |p| matches!(p, Packet::PubAck(a) if a.pkid == pkid),
            ) {
                Packet::PubAck(a) => a.reason,
                _ => unreachable!(),
            },
            _ => {
                let rec = match self.recv_matching(
                    "PUBREC",
                    |p| matches!(p, Packet::PubRec(a) if a.pkid == pkid),
                ) {
                    Packet::PubRec(a) => a,
                    _ => unreachable!(),
                };
                if rec.reason >= 0x80 {
                    return rec.reason;
                }
                self.send(&Packet::PubRel(Ack::new(pkid)));
                self.recv_matching(
                    "PUBCOMP",
                    |p| matches!(p, Packet::PubComp(a) if a.pkid == pkid),
                );
                rec.reason
            }
        }
    }

    /// Acknowledges a received PUBLISH as a well-behaved client would.
    pub fn ack(&mut self, p: &Publish) {
        match p.qos {
            0 => {}
            1 => self.send(&Packet::PubAck(Ack::new(p.pkid))),
            _ => {
                self.send(&Packet::PubRec(Ack::new(p.pkid)));
                self.recv_matching(
                    "PUBREL",
                    |x| matches!(x, Packet::PubRel(a) if a.pkid == p.pkid),
                );
                self.send(&Packet::PubComp(Ack::new(p.pkid)));
            }
        }
    }

    /// Receives one PUBLISH and acknowledges it.
    pub fn recv_publish_ack(&mut self) -> Publish {
        let p = self.recv_matching("PUBLISH", |p| matches!(p, Packet::Publish(_)));
        let Packet::Publish(p) = p else {
            unreachable!()
        };
        self.ack(&p);
        p
    }

    /// Round trip that proves the broker has processed everything sent so far.
    pub fn ping(&mut self) {
        self.send(&Packet::PingReq);
        self.recv_matching("PINGRESP", |p| matches!(p, Packet::PingResp));
    }

    /// Normal DISCONNECT (reason 0x00), then close.
    pub fn disconnect(mut self) {
        self.send(&Packet::Disconnect {
            reason: 0,
            props: Props::default(),
        });
        let _ = self.stream.shutdown(Shutdown::Write);
        // Wait for the broker to close its side so the disconnect is processed.
        let _ = self.try_recv(Duration::from_secs(2));
    }

    /// Drops the TCP connection without DISCONNECT (abnormal close).
    pub fn drop_connection(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Publishes one message from a short-lived v5 client.
pub fn publish_once(port: u16, topic: &str, payload: &[u8], qos: u8, retain: bool) {
    let mut c = Client::connect_ok(port, Connect::v5(&format!("pub-{}", unique())));
    c.publish(topic, payload, qos, retain);
    c.disconnect();
}

/// A process-unique suffix for client ids and topics.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

// --------------------------------------------------- third-party programs

#[derive(Debug)]
pub struct Output {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.map(|s| s.success()).unwrap_or(false)
    }
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(str::to_string).collect()
    }
}

/// Runs a command, killing it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
    }
}

/// `mosquitto_pub -h 127.0.0.1 -p PORT ARGS…`, asserting success.
pub fn mosquitto_pub(port: u16, args: &[&str]) -> Output {
    let out = run_with_timeout(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
        Duration::from_secs(10),
    );
    assert!(out.success(), "mosquitto_pub {args:?} failed: {out:?}");
    out
}

/// A mosquitto_sub running in the background, ready (SUBACK received)
/// when returned.
pub struct BackgroundSub {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl BackgroundSub {
    /// Starts `mosquitto_sub -d` and waits for its SUBACK. `args` should
    /// include `-C N` and `-W SECS` so it ends by itself.
    pub fn start(port: u16, args: &[&str]) -> BackgroundSub {
        // stdbuf: mosquitto_sub's stdout is block-buffered on a pipe, and
        // we must see "received SUBACK" as soon as it happens.
        let mut child = Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-d",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto_sub");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains("received SUBACK") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!("mosquitto_sub {args:?} got no SUBACK");
                }
            }
        }
        BackgroundSub { child, lines: rx }
    }

    /// Waits for the process to exit and returns the message lines
    /// (debug lines removed).
    pub fn finish(mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut msgs = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if !(l.starts_with("Client ") || l.starts_with("Subscribed")) {
                        msgs.push(l);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("mosquitto_sub did not finish; got {msgs:?}");
                }
            }
        }
        let _ = self.child.wait();
        msgs
    }
}

impl Drop for BackgroundSub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn paho_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("paho")
}

/// Runs `python3 tests/paho/SCRIPT --port PORT ARGS…` and asserts exit 0,
/// showing its output on failure.
pub fn run_paho(script: &str, port: u16, args: &[&str]) -> Output {
    let path = paho_dir().join(script);
    let out = run_with_timeout(
        Command::new("python3")
            .arg(&path)
            .arg("--port")
            .arg(port.to_string())
            .args(args),
        Duration::from_secs(30),
    );
    assert!(
        out.success(),
        "{script} failed (status {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}
