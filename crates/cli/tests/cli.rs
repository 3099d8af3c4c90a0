//! The `ledgermq serve` process contract: LISTENING lines, config file,
//! graceful stop on SIGTERM, the data dir's mode.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `ledgermq serve` process started with raw arguments in `dir`, its
/// stdout lines collected; killed on drop.
struct Serve {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: std::path::PathBuf,
}

impl Serve {
    fn start(dir: &Path, args: &[&str]) -> Serve {
        let log = dir.join("serve.log");
        let mut child = Command::new(ledgermq_bin())
            .current_dir(dir)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn ledgermq serve");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Serve { child, lines, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The TCP ports this process listens on, from /proc: the sockets among
    /// its file descriptors that are in the LISTEN state.
    fn listening_ports(&self) -> Vec<u16> {
        let pid = self.child.id();
        let mut inodes = Vec::new();
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
            let Ok(target) = std::fs::read_link(fd.unwrap().path()) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.push(inode.to_owned());
            }
        }
        let mut ports = Vec::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                // local_address is cols[1] (ADDR:PORT in hex), st cols[3], inode cols[9]
                if cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                    let port = cols[1].rsplit(':').next().unwrap();
                    ports.push(u16::from_str_radix(port, 16).unwrap());
                }
            }
        }
        ports.sort_unstable();
        ports
    }

    /// Every LISTENING line, once the MQTT one has been printed and no
    /// other followed within `QUIET` (they are printed in one go).
    fn listening(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while !seen
            .iter()
            .any(|l: &String| l.starts_with("LISTENING mqtt "))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no LISTENING mqtt line; got {seen:?}"),
            }
        }
        while let Ok(line) = self.lines.recv_timeout(QUIET) {
            seen.push(line);
        }
        seen.retain(|l| l.starts_with("LISTENING "));
        seen
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The data dir holds sessions, queued messages (decrypted ones in the
/// SCAC mode) and replay counters: `serve` creates it owner-only.
#[cfg(unix)]
#[test]
fn serve_creates_its_data_dir_owner_only() {
    if skip_unless_ledgermq("the data dir") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        tmp.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "new/data"],
    );
    serve.listening();
    assert_eq!(mode(&tmp.path().join("new/data")), 0o700);
    assert_eq!(mode(&tmp.path().join("new")), 0o700);
}

#[test]
fn sigterm_stops_broker_with_success_status() {
    let mut b = Broker::start();
    let _c = b.v5("connected-during-stop");
    let st = b.terminate();
    assert!(st.success(), "exit status {st}");
}

/// v5 clients get DISCONNECT 0x8B (Server shutting down) on graceful stop.
#[test]
fn graceful_stop_sends_server_shutting_down_to_v5_clients() {
    if skip_unless_ledgermq("shutdown DISCONNECT") {
        return;
    }
    let mut b = Broker::start();
    let mut c = b.v5("told");
    b.terminate();
    c.expect_disconnect(&[0x8B]);
}

#[test]
fn serve_prints_one_listening_line_per_listener() {
    if skip_unless_ledgermq("LISTENING lines") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(ledgermq_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--persistence",
            "false",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("no LISTENING line");
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "{line:?}");
    assert_eq!(&parts[..2], &["LISTENING", "mqtt"]);
    let addr: std::net::SocketAddr = parts[2].parse().unwrap();
    assert_ne!(addr.port(), 0);
}

#[test]
fn config_file_settings_reach_connack() {
    if skip_unless_ledgermq("TOML config") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ledgermq.toml");
    std::fs::write(
        &conf,
        "max_packet_size = 4321\ntopic_alias_maximum = 3\nreceive_maximum = 9\n",
    )
    .unwrap();
    let b = Broker::with(&[("config", conf.to_str().unwrap())]).unwrap();
    let (_c, ack) = b.connect(Connect::v5("conf"));
    assert_eq!(ack.props.maximum_packet_size, Some(4321));
    assert_eq!(ack.props.topic_alias_maximum, Some(3));
    assert_eq!(ack.props.receive_maximum, Some(9));
}

#[test]
fn flag_overrides_config_file() {
    if skip_unless_ledgermq("TOML config") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ledgermq.toml");
    std::fs::write(&conf, "receive_maximum = 9\n").unwrap();
    let b = Broker::with(&[("config", conf.to_str().unwrap()), ("receive-maximum", "5")]).unwrap();
    let (_c, ack) = b.connect(Connect::v5("conf-override"));
    assert_eq!(ack.props.receive_maximum, Some(5));
}

#[test]
fn unknown_config_key_is_an_error() {
    if skip_unless_ledgermq("TOML config") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.toml");
    std::fs::write(&conf, "no_such_key = 1\n").unwrap();
    let out = run_with_timeout(
        Command::new(ledgermq_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--persistence",
                "false",
                "--config",
            ])
            .arg(&conf)
            .arg("--data-dir")
            .arg(dir.path()),
        Duration::from_secs(20),
    );
    assert!(
        out.status.is_some(),
        "broker started despite an unknown config key"
    );
    assert!(!out.success());
}

/// A plain broker never reads the ledger: it opens no chain and serves no
/// JSON-RPC unless `ledger_rpc_listen` asks for it.
#[cfg(target_os = "linux")]
#[test]
fn plain_serve_starts_no_ledger_and_listens_only_for_mqtt() {
    if skip_unless_ledgermq("the embedded ledger") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        tmp.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "data"],
    );
    let lines = serve.listening();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let mqtt: std::net::SocketAddr = lines[0]["LISTENING mqtt ".len()..].parse().unwrap();
    assert_eq!(serve.listening_ports(), [mqtt.port()]);
    assert!(
        !tmp.path().join("data/ledger").exists(),
        "a plain broker opens no chain"
    );
}

/// An explicit address is a request: the plain broker then serves it.
#[cfg(target_os = "linux")]
#[test]
fn plain_serve_serves_the_ledger_rpc_when_asked() {
    if skip_unless_ledgermq("the embedded ledger") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        tmp.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--ledger-rpc-listen",
            "127.0.0.1:0",
            "--data-dir",
            "data",
        ],
    );
    let lines = serve.listening();
    let rpc = lines
        .iter()
        .find_map(|l| l.strip_prefix("LISTENING ledger-rpc "))
        .unwrap_or_else(|| panic!("no ledger-rpc line in {lines:?}"));
    let rpc: std::net::SocketAddr = rpc.parse().unwrap();
    assert!(rpc.ip().is_loopback());
    assert!(serve.listening_ports().contains(&rpc.port()));
    assert!(!serve.log().contains("beyond loopback"), "{}", serve.log());
}

/// Beyond loopback only when configured, and never silently.
#[test]
fn a_ledger_rpc_address_beyond_loopback_is_served_with_a_warning() {
    if skip_unless_ledgermq("the embedded ledger") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        tmp.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--ledger-rpc-listen",
            "0.0.0.0:0",
            "--data-dir",
            "data",
        ],
    );
    let lines = serve.listening();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("LISTENING ledger-rpc 0.0.0.0:")),
        "{lines:?}"
    );
    let log = serve.log();
    assert!(
        log.contains("beyond loopback") && log.contains("no authentication"),
        "{log}"
    );
}

/// A taken port stops the start-up with a clear error; there is no fallback
/// to another port, so a client never talks to some other chain there.
#[test]
fn a_taken_ledger_rpc_port_is_a_start_up_error() {
    if skip_unless_ledgermq("the embedded ledger") {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = run_with_timeout(
        Command::new(ledgermq_bin()).current_dir(tmp.path()).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ledger-rpc-listen",
            &addr,
            "--data-dir",
            "data",
        ]),
        Duration::from_secs(30),
    );
    assert!(out.status.is_some(), "serve kept running on a taken port");
    assert!(!out.success());
    assert!(!out.stdout.contains("LISTENING"), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("cannot serve the embedded ledger's JSON-RPC")
            && out.stderr.contains(&format!("cannot listen on {addr}"))
            && out.stderr.contains("in use"),
        "{}",
        out.stderr
    );
}

#[test]
fn contradictory_ledger_rpc_flags_are_refused() {
    if skip_unless_ledgermq("the embedded ledger") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = run_with_timeout(
        Command::new(ledgermq_bin()).current_dir(tmp.path()).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--embedded-ledger",
            "false",
            "--ledger-rpc-listen",
            "127.0.0.1:0",
        ]),
        Duration::from_secs(30),
    );
    assert!(!out.success());
    assert!(
        out.stderr.contains("embedded_ledger = false"),
        "{}",
        out.stderr
    );
}
