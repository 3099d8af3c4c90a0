//! Group keys end to end (docs/e2e.md): the supplier's key service — a
//! device of the supplier with a ledger account of its own — commits key
//! epochs on the ledger and publishes each member's signed, HPKE-wrapped
//! key bundle on its retained key topic; members open theirs against the
//! ledger's commitment; nobody else may read or overwrite a bundle; a
//! removed member gets no key for the next epoch. Devices seal and open
//! through `ledgermq device pub/sub`; the paper's experiment (devices
//! 1111–1114, two groups) runs under a loopback packet capture; forged,
//! replayed, stale, misdirected and plain payloads are refused and
//! counted. Real binary, embedded ledger, real broker.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::ledgermq_bin;
use common::network::*;
use ledgermq_keystore::software::SoftwareEd25519;
use ledgermq_keystore::software::SoftwareX25519;
use ledgermq_ledger::admin::{BrokerNodeFile, ProvisioningBundle};
use ledgermq_security::envelope::KeyBundle;
use ledgermq_security::{Envelope, GroupKey, Publisher};
use rand_core::OsRng;

const GROUP: &str = "hsu0001";
const KS_DEVICE: &str = "supplier-keys";
const READER: &str = "manufacturer-end-device";
const LEAVER: &str = "retailer-end-device";
/// A member with no right on the group's topics: it gets no key.
const NO_RIGHT: &str = "supplier-humidity-sensor";

/// The key service, running; its stdout lines arrive on `lines`.
struct KeyService {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl KeyService {
    fn start(net: &Network, once: bool) -> KeyService {
        let mut cmd = Command::new(ledgermq_bin());
        cmd.current_dir(&net.dir)
            .args(["device", "--bundle"])
            .arg(net.bundle(KS_DEVICE))
            .args(["--broker", &format!("127.0.0.1:{}", net.port())])
            .arg("key-service")
            .args(&net.target)
            .args(["--account", "keys/supplier-ks.key"]);
        if once {
            cmd.arg("--once");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("key-service: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        KeyService { child, lines }
    }

    fn next_line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the key service printed no line for {what}"))
    }
}

impl Drop for KeyService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The commitment `admin group show` lists for `group` at `epoch`.
fn ledger_commitment(net: &Network, group: &str, epoch: u64) -> [u8; 32] {
    let show = net.admin_ok("supplier-admin", &["group", "show", group]);
    let line = show
        .lines()
        .find(|l| l.starts_with(&format!("epoch: {epoch}\t")))
        .unwrap_or_else(|| panic!("no epoch {epoch} of {group} on the ledger:\n{show}"));
    let hex = line
        .split('\t')
        .find_map(|f| f.strip_prefix("commitment=0x"))
        .unwrap();
    alloy_hex(hex)
}

fn alloy_hex(hex: &str) -> [u8; 32] {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn signing_public(bundle: &Path) -> [u8; 32] {
    ProvisioningBundle::load(bundle).unwrap().signing_public.0
}

/// `member`'s retained bundle of `group`: opened with its X25519 secret,
/// checked against the key service's key and the ledger's commitment.
fn open_own_bundle(net: &Network, member: &str, group: &str, epoch: u64) -> GroupKey {
    let mut c = login(net, member);
    assert_eq!(c.subscribe(&format!("$lmq/keys/{group}/{member}"), 1), 1);
    let p = c.recv_publish();
    assert!(p.retain, "a key bundle is retained");
    assert_eq!(p.topic, format!("$lmq/keys/{group}/{member}"));
    let bundle = KeyBundle::parse(&p.payload).unwrap();
    assert_eq!(
        (bundle.group(), bundle.epoch(), bundle.member()),
        (group, epoch, member)
    );
    let secret = ProvisioningBundle::load(&net.bundle(member))
        .unwrap()
        .agreement_secret
        .clone();
    let me = SoftwareX25519::from_bytes(&alloy_hex(&secret));
    let service = signing_public(&net.bundle(KS_DEVICE));
    let key = bundle
        .open(&service, &me, &ledger_commitment(net, group, epoch))
        .expect("the member opens its key and the ledger commits to it");
    c.disconnect();
    key
}

fn set_up(net: &Network) {
    register_key_service(net);
    net.admin_ok(
        "supplier-admin",
        &[
            "group",
            "create",
            "--org",
            "supplier",
            "--name",
            GROUP,
            "--filter",
            "Temperature/#",
        ],
    );
    for m in [SENSOR, READER, LEAVER, NO_RIGHT] {
        net.admin_ok(
            "supplier-admin",
            &["group", "add", "--name", GROUP, "--device", m],
        );
    }
}

/// The supplier's key service: its device, its ledger account, both
/// registered with `admin key-service set`.
fn register_key_service(net: &Network) {
    let out = net.admin_ok(
        "supplier-admin",
        &[
            "device",
            "register",
            "--org",
            "supplier",
            "--id",
            KS_DEVICE,
            "--bundle-out",
            &format!("bundles/{KS_DEVICE}.json"),
        ],
    );
    assert!(out.contains("registered device"), "{out}");
    let mut args = vec!["admin".to_string()];
    if let Some((_, url)) = &net.anvil {
        // anvil charges gas: the key service's account pays for its epochs.
        args.extend(
            [
                "--rpc",
                url,
                "--deployment",
                "net.toml",
                "--account",
                "funder.key",
            ]
            .map(String::from),
        );
    }
    args.extend(["account", "new", "--out", "keys/supplier-ks.key"].map(String::from));
    if net.anvil.is_some() {
        args.extend(["--fund", "1000000000000000000"].map(String::from));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let addr = common::ledger::ok(&net.dir, &args);
    let public = signing_public(&net.bundle(KS_DEVICE));
    let key: String = public.iter().map(|b| format!("{b:02x}")).collect();
    net.admin_ok(
        "supplier-admin",
        &[
            "key-service",
            "set",
            "--org",
            "supplier",
            "--address",
            addr.trim(),
            "--signing-key",
            &format!("0x{key}"),
        ],
    );
}

#[test]
fn the_key_service_distributes_epoch_keys_only_to_members_and_rotates_on_removal() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    set_up(&net);
    let ks = KeyService::start(&net, false);
    let line = ks.next_line("the first epoch");
    assert!(
        line.starts_with(&format!("group {GROUP} epoch 1: 3 member(s), 0 left")),
        "{line}"
    );
    let show = net.admin_ok("supplier-admin", &["group", "show", GROUP]);
    assert!(
        show.contains("members=3\tkey_exchanges=3"),
        "one key exchange per member: {show}"
    );

    // Each member opens its own bundle; all hold the same key.
    let checks: Vec<[u8; 32]> = [SENSOR, READER, LEAVER]
        .iter()
        .map(|m| open_own_bundle(&net, m, GROUP, 1).check())
        .collect();
    assert!(checks.windows(2).all(|w| w[0] == w[1]));

    // A member with no right on the group's topics got none.
    let mut c = login(&net, NO_RIGHT);
    assert_eq!(c.subscribe(&format!("$lmq/keys/+/{NO_RIGHT}"), 1), 1);
    c.expect_nothing(Duration::from_millis(500));
    c.disconnect();

    // Nobody reads another's bundles or writes one: not a member, not the
    // broker's other devices, not a member on its own topic.
    let mut reader = login(&net, READER);
    assert_eq!(reader.subscribe(&format!("$lmq/keys/+/{LEAVER}"), 1), 0x87);
    assert_eq!(reader.subscribe("$lmq/#", 1), 0x87);
    assert_eq!(reader.subscribe("$lmq/keys/+/+", 1), 0x87);
    assert_eq!(
        reader.publish(&format!("$lmq/keys/{GROUP}/{READER}"), b"forged", 1, true),
        0x87
    );
    reader.disconnect();
    let mut sensor = login(&net, SENSOR);
    assert_eq!(
        sensor.publish(&format!("$lmq/keys/{GROUP}/{READER}"), b"forged", 1, true),
        0x87,
        "a device of the group's organisation that is not its key service"
    );
    sensor.disconnect();
    assert_eq!(
        open_own_bundle(&net, READER, GROUP, 1).check(),
        checks[0],
        "the bundle is intact"
    );

    // Removal rotates, within seconds, without anyone acting.
    net.admin_ok(
        "supplier-admin",
        &["group", "remove", "--name", GROUP, "--device", LEAVER],
    );
    let line = ks.next_line("the rotation");
    assert!(
        line.starts_with(&format!("group {GROUP} epoch 2: 2 member(s), 1 left")),
        "{line}"
    );
    let fresh = open_own_bundle(&net, READER, GROUP, 2).check();
    assert_ne!(fresh, checks[0], "a new key");
    assert_eq!(open_own_bundle(&net, SENSOR, GROUP, 2).check(), fresh);
    // The removed member's bundle is gone, and the ledger shows it got no
    // key exchange for epoch 2.
    let mut gone = login(&net, LEAVER);
    assert_eq!(gone.subscribe(&format!("$lmq/keys/+/{LEAVER}"), 1), 1);
    gone.expect_nothing(Duration::from_millis(500));
    gone.disconnect();
    let show = net.admin_ok("supplier-admin", &["group", "show", GROUP]);
    assert!(
        show.contains("epoch: 2\t") && show.contains("members=2\tkey_exchanges=2"),
        "{show}"
    );
}

#[test]
fn a_key_service_that_is_not_registered_is_refused_with_the_fix() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    set_up(&net);
    // Another account than the registered one.
    common::ledger::ok(
        &net.dir,
        &["admin", "account", "new", "--out", "keys/other.key"],
    );
    let out = Command::new(ledgermq_bin())
        .current_dir(&net.dir)
        .args(["device", "--bundle"])
        .arg(net.bundle(KS_DEVICE))
        .args(["--broker", &format!("127.0.0.1:{}", net.port())])
        .arg("key-service")
        .args(&net.target)
        .args(["--account", "keys/other.key", "--once"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the key service registered for supplier is account"),
        "{err}"
    );
    assert!(
        err.contains("ledgermq admin key-service set --org supplier"),
        "{err}"
    );
}

/// `ledgermq device … pub/sub` with the trusted ledger given: `device`
/// logged in at the supplier's node (OTP for the supplier's own devices,
/// SCAC against that node for the others).
fn device_cmd(net: &Network, device: &str, args: &[&str]) -> std::process::Output {
    device_command(net, device, args).output().unwrap()
}

/// `ledgermq device` for `device` at the supplier's node, logging in the
/// way its organisation may there, with the ledger endpoint.
fn device_command(net: &Network, device: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(ledgermq_bin());
    cmd.current_dir(&net.dir)
        .args(["device", "--bundle"])
        .arg(net.bundle(device))
        .args(["--broker", &format!("127.0.0.1:{}", net.port())]);
    if org_of(net, device) != "supplier" {
        let account: String = net
            .node_account("broker-supplier")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        cmd.args([
            "--auth",
            "scac",
            "--broker-account",
            &format!("0x{account}"),
        ]);
    }
    cmd.args(&net.target).args(args);
    cmd
}

fn device_ok(net: &Network, device: &str, args: &[&str]) -> String {
    let out = device_cmd(net, device, args);
    assert!(
        out.status.success(),
        "{device} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        net.broker.log_tail()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `device` publishes `message` retained at QoS 1 with its CLI (sealed
/// or signed as the topic's groups require).
fn publish_retained(net: &Network, device: &str, topic: &str, message: &str) {
    device_ok(
        net,
        device,
        &[
            "pub",
            "--topic",
            topic,
            "--message",
            message,
            "--qos",
            "1",
            "--retain",
        ],
    );
}

/// The first retained message on TEMPERATURE as `device` prints it.
fn read_retained(net: &Network, device: &str) -> String {
    read_retained_on(net, device, TEMPERATURE)
}

/// The first retained message on `topic` as `device` prints it.
fn read_retained_on(net: &Network, device: &str, topic: &str) -> String {
    device_ok(
        net,
        device,
        &["sub", "--topic", topic, "--qos", "1", "--count", "1"],
    )
    .trim()
    .to_string()
}

#[test]
fn sealed_payloads_are_read_by_members_only_and_the_broker_never_sees_them() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    set_up(&net);
    let ks = KeyService::start(&net, false);
    ks.next_line("the first epoch");

    // A plain payload on the sealed group's topic is refused.
    let mut plain = login(&net, SENSOR);
    assert_eq!(plain.publish(TEMPERATURE, b"21.5 C", 1, false), 0x99);
    plain.disconnect();

    // Sealed by the sensor's CLI, opened by a member of another organisation.
    publish_retained(&net, SENSOR, TEMPERATURE, "21.5 C");
    assert_eq!(read_retained(&net, READER), "21.5 C");
    // A subscriber with the subscribe right but no membership gets
    // ciphertext and says so.
    assert_eq!(
        read_retained(&net, "customer-end-device"),
        "cannot decrypt: not a member of group hsu0001 (epoch 1)"
    );
    // What the broker relays is an envelope, not the reading.
    let mut raw = login(&net, "customer-end-device");
    assert_eq!(raw.subscribe(TEMPERATURE, 1), 1);
    let p = raw.recv_publish();
    assert!(p.payload.starts_with(b"LMQE"));
    assert!(!p.payload.windows(6).any(|w| w == b"21.5 C"));
    raw.disconnect();

    // After a removal the removed member cannot read the next message; the
    // others can.
    net.admin_ok(
        "supplier-admin",
        &["group", "remove", "--name", GROUP, "--device", LEAVER],
    );
    ks.next_line("the rotation");
    publish_retained(&net, SENSOR, TEMPERATURE, "22.0 C");
    assert_eq!(read_retained(&net, READER), "22.0 C");
    assert_eq!(
        read_retained(&net, LEAVER),
        "cannot decrypt: not a member of group hsu0001 (epoch 2)"
    );
}

/// `tcpdump` on the loopback interface, capturing one TCP port to a file.
struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    /// Starts capturing `port`, or says why it cannot (`scripts/test`
    /// installs tcpdump; in CI a missing one fails the test).
    fn start(dir: &Path, port: u16) -> Option<Capture> {
        let tcpdump = ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(tcpdump) = tcpdump else {
            assert!(
                std::env::var_os("CI").is_none(),
                "tcpdump is missing: scripts/test installs it"
            );
            eprintln!("SKIP: tcpdump not installed (scripts/test installs it)");
            return None;
        };
        let file = dir.join("loopback.pcap");
        // --immediate-mode: each packet handed over as it arrives (not in
        // blocks, which SIGINT would discard unread); -U: and written to
        // the file at once. -Z root: run as root,
        // Debian's tcpdump would drop to its own user before opening the
        // file (as another user, scripts/test gives it the capabilities).
        let mut cmd = Command::new(tcpdump);
        cmd.args(["-i", "lo", "--immediate-mode", "-U", "-s", "0"]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-Z", "root"]);
        }
        let mut child = cmd
            .arg("-w")
            .arg(&file)
            .arg(format!("tcp port {port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let _ = err.read_line(&mut line);
        assert!(
            line.contains("listening on lo"),
            "tcpdump did not start capturing: {line}"
        );
        // Keep draining its stderr so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                eprintln!("tcpdump: {l}");
            }
        });
        eprintln!("capturing tcp port {port}");
        Some(Capture { child, file })
    }

    /// Stops the capture and returns the bytes of the capture file.
    fn stop(mut self) -> Vec<u8> {
        // What is still in flight on the loopback reaches the file first.
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively, with its bytes.
fn files_under(dir: &Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
}

/// Registers `id` under `org` with the given rights on the supplier's
/// topics, by that organisation's admin.
fn register(net: &Network, org: &str, id: &str, rights: &[(&str, &str)]) {
    let admin = format!("{org}-admin");
    let out = net.admin_ok(
        &admin,
        &[
            "device",
            "register",
            "--org",
            org,
            "--id",
            id,
            "--bundle-out",
            &format!("bundles/{id}.json"),
        ],
    );
    assert!(out.contains("registered device"), "{out}");
    for (topic, right) in rights {
        net.admin_ok(
            &admin,
            &["right", "grant", "--device", id, "--topic", topic, right],
        );
    }
}

fn create_group(net: &Network, name: &str, filter: &str, extra: &[&str], members: &[&str]) {
    let mut args = vec![
        "group", "create", "--org", "supplier", "--name", name, "--filter", filter,
    ];
    args.extend_from_slice(extra);
    net.admin_ok("supplier-admin", &args);
    for m in members {
        net.admin_ok(
            "supplier-admin",
            &["group", "add", "--name", name, "--device", m],
        );
    }
}

const HUMIDITY: &str = "Humidity/raw Material";

/// The service-agent paper's experiment (../shared/papers): devices
/// 1111–1114, groups hsu0001 (temperature) and hsu0002 (humidity), 1113 a
/// member of both. 1111 publishes to both; 1112 reads hsu0001 only, 1113
/// reads both, 1114 (subscribe rights, no membership) receives ciphertext
/// and says so; the key exchanges are on the ledger. A capture of the
/// loopback interface during the whole run, and every file the broker and
/// the ledger wrote, hold neither reading nor either group key.
#[test]
fn the_papers_experiment_members_read_their_groups_and_nothing_leaks() {
    papers_experiment(Backend::Embedded);
}

/// The same on anvil, the ledger reached over JSON-RPC as a consortium
/// chain would be (the key service pays gas from a funded account).
#[test]
fn the_papers_experiment_on_anvil() {
    papers_experiment(Backend::Anvil);
}

fn papers_experiment(backend: Backend) {
    let Some(mut net) = Network::start(backend, &[("persistence", "true")]) else {
        return;
    };
    let capture = Capture::start(&net.dir, net.port());
    register_key_service(&net);
    register(
        &net,
        "supplier",
        "1111",
        &[(TEMPERATURE, "--pub"), (HUMIDITY, "--pub")],
    );
    for id in ["1112", "1113", "1114"] {
        register(
            &net,
            "manufacturer",
            id,
            &[(TEMPERATURE, "--sub"), (HUMIDITY, "--sub")],
        );
    }
    create_group(
        &net,
        "hsu0001",
        "Temperature/#",
        &[],
        &["1111", "1112", "1113"],
    );
    create_group(&net, "hsu0002", "Humidity/#", &[], &["1111", "1113"]);
    let ks = KeyService::start(&net, false);
    let mut lines = [ks.next_line("an epoch"), ks.next_line("the other epoch")];
    lines.sort();
    assert!(
        lines[0].starts_with("group hsu0001 epoch 1: 3 member(s), 0 left")
            && lines[1].starts_with("group hsu0002 epoch 1: 2 member(s), 0 left"),
        "{lines:?}"
    );

    let nonce = std::process::id();
    let temperature = format!("1111 temperature 21.5 C #{nonce}");
    let humidity = format!("1111 humidity 43 % #{nonce}");
    for (topic, reading) in [(TEMPERATURE, &temperature), (HUMIDITY, &humidity)] {
        publish_retained(&net, "1111", topic, reading);
    }
    assert_eq!(read_retained_on(&net, "1112", TEMPERATURE), temperature);
    assert_eq!(
        read_retained_on(&net, "1112", HUMIDITY),
        "cannot decrypt: not a member of group hsu0002 (epoch 1)"
    );
    assert_eq!(read_retained_on(&net, "1113", TEMPERATURE), temperature);
    assert_eq!(read_retained_on(&net, "1113", HUMIDITY), humidity);
    assert_eq!(
        read_retained_on(&net, "1114", TEMPERATURE),
        "cannot decrypt: not a member of group hsu0001 (epoch 1)"
    );
    assert_eq!(
        read_retained_on(&net, "1114", HUMIDITY),
        "cannot decrypt: not a member of group hsu0002 (epoch 1)"
    );

    // The key exchanges, one per member, are on the ledger.
    for (group, members) in [("hsu0001", 3), ("hsu0002", 2)] {
        let show = net.admin_ok("supplier-admin", &["group", "show", group]);
        assert!(
            show.contains("epoch: 1\t")
                && show.contains(&format!("members={members}\tkey_exchanges={members}")),
            "{group}: {show}"
        );
    }
    let keys = [
        open_own_bundle(&net, "1113", "hsu0001", 1),
        open_own_bundle(&net, "1113", "hsu0002", 1),
    ];
    drop(ks);

    // Nothing in clear on the wire or on disk.
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("the temperature reading", temperature.clone().into_bytes()),
        ("the humidity reading", humidity.clone().into_bytes()),
        ("the hsu0001 key", keys[0].secret_bytes().to_vec()),
        ("the hsu0002 key", keys[1].secret_bytes().to_vec()),
    ];
    if let Some(capture) = capture {
        let wire = capture.stop();
        // The capture saw the run: topics and envelopes travel in clear.
        assert!(
            contains(&wire, TEMPERATURE.as_bytes()),
            "capture holds no topic ({} bytes)",
            wire.len()
        );
        assert!(contains(&wire, b"LMQE"), "no envelope captured");
        assert!(contains(&wire, b"$lmq/keys/hsu0002/1113"));
        for (what, bytes) in &secrets {
            assert!(
                !contains(&wire, bytes),
                "{what} crossed the loopback in clear"
            );
        }
        eprintln!("capture: {} bytes, no plaintext", wire.len());
    }
    net.broker.terminate();
    let mut files = Vec::new();
    files_under(&net.dir, &mut files);
    let retained_store = files.iter().any(|(_, b)| contains(b, b"LMQE"));
    assert!(retained_store, "the broker's store holds the envelopes");
    for (path, bytes) in &files {
        for (what, secret) in &secrets {
            assert!(!contains(bytes, secret), "{what} is in {}", path.display());
        }
    }
    eprintln!(
        "{} files under the data directory, no plaintext",
        files.len()
    );
}

/// Another organisation's broker operator signing under the sensor's name
/// with everything its node holds.
fn operator_as_sensor(net: &Network) -> Publisher {
    let foreign =
        BrokerNodeFile::load(&net.dir.join("keys/broker-manufacturer.node.json")).unwrap();
    let key = foreign.signing_secret_bytes().unwrap();
    Publisher::new(SENSOR, Arc::new(SoftwareEd25519::from_seed(&key))).unwrap()
}

/// A fresh envelope sequence: microseconds since the epoch.
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// `ledgermq_payloads_refused_total{reason=…}` on the metrics endpoint.
fn refused(net: &Network, reason: &str) -> u64 {
    let port = net.broker.metrics_port.expect("metrics endpoint");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut s, &mut body).unwrap();
    let key = format!("ledgermq_payloads_refused_total{{reason=\"{reason}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

/// With the broker verifying every signature: a replayed envelope, a
/// forged signature, an envelope signed with another key under the
/// sender's name, one made for another topic, one of a group that does
/// not protect the topic, a plain payload and, after a rotation and its
/// grace period, a stale epoch are each refused with their reason code
/// and counted; the envelope of the previous epoch published within the
/// grace period is delivered (no message lost across a rotation), and
/// subscribers get exactly what was accepted.
#[test]
fn forged_replayed_stale_misdirected_and_plain_payloads_are_refused_and_counted() {
    let Some(net) = Network::start(Backend::Embedded, &[("metrics-listen", "127.0.0.1:0")]) else {
        return;
    };
    set_up(&net);
    net.admin_ok(
        "supplier-admin",
        &[
            "group", "update", "--name", GROUP, "--verify", "every", "--grace", "2",
        ],
    );
    net.admin_ok(
        "supplier-admin",
        &[
            "right", "grant", "--device", SENSOR, "--topic", HUMIDITY, "--pub",
        ],
    );
    create_group(
        &net,
        "hsu0002",
        "Humidity/#",
        &["--verify", "every"],
        &[SENSOR],
    );
    let ks = KeyService::start(&net, false);
    let _ = (ks.next_line("an epoch"), ks.next_line("the other epoch"));
    let k1 = open_own_bundle(&net, SENSOR, GROUP, 1);
    let humidity_key = open_own_bundle(&net, SENSOR, "hsu0002", 1);
    let seed = ProvisioningBundle::load(&net.bundle(SENSOR))
        .unwrap()
        .signing_secret
        .clone();
    let me = Publisher::new(
        SENSOR,
        Arc::new(SoftwareEd25519::from_seed(&alloy_hex(&seed))),
    )
    .unwrap();
    let impostor = operator_as_sensor(&net);
    let mut sequence = unix_micros();
    let mut seal = |who: &Publisher, topic: &str, key: &GroupKey, text: &str| {
        sequence += 1;
        who.seal(topic, key, sequence, text.as_bytes(), &mut OsRng)
            .unwrap()
    };

    let mut watcher = login(&net, READER);
    assert_eq!(watcher.subscribe(TEMPERATURE, 1), 1);
    let mut sensor = login(&net, SENSOR);
    let mut accepted = Vec::new();

    let good = seal(&me, TEMPERATURE, &k1, "21.5 C");
    assert_eq!(sensor.publish(TEMPERATURE, &good, 1, false), 0x00);
    accepted.push(good.clone());
    assert_eq!(
        sensor.publish(TEMPERATURE, &good, 1, false),
        0x87,
        "replayed"
    );
    let mut forged = seal(&me, TEMPERATURE, &k1, "99.9 C");
    *forged.last_mut().unwrap() ^= 1;
    assert_eq!(
        sensor.publish(TEMPERATURE, &forged, 1, false),
        0x87,
        "forged"
    );
    let fake = seal(&impostor, TEMPERATURE, &k1, "99.9 C");
    assert_eq!(
        sensor.publish(TEMPERATURE, &fake, 1, false),
        0x87,
        "impostor"
    );
    // Made for the temperature topic, published on the humidity one (whose
    // group it names): the signature covers the topic.
    let misdirected = seal(&me, TEMPERATURE, &humidity_key, "43 %");
    assert_eq!(
        sensor.publish(HUMIDITY, &misdirected, 1, false),
        0x87,
        "other topic"
    );
    let wrong_group = seal(&me, HUMIDITY, &k1, "43 %");
    assert_eq!(
        sensor.publish(HUMIDITY, &wrong_group, 1, false),
        0x99,
        "wrong group"
    );
    assert_eq!(
        sensor.publish(TEMPERATURE, b"21.5 C", 1, false),
        0x99,
        "plain"
    );

    // A rotation: the previous epoch stays good for the grace period.
    net.admin_ok(
        "supplier-admin",
        &["group", "remove", "--name", GROUP, "--device", LEAVER],
    );
    ks.next_line("the rotation");
    // (Fetching the bundle logs the sensor in again: a takeover.)
    let k2 = open_own_bundle(&net, SENSOR, GROUP, 2);
    let mut sensor = login(&net, SENSOR);
    let in_grace = seal(&me, TEMPERATURE, &k1, "21.6 C");
    assert_eq!(
        sensor.publish(TEMPERATURE, &in_grace, 1, false),
        0x00,
        "in grace"
    );
    accepted.push(in_grace);
    let fresh = seal(&me, TEMPERATURE, &k2, "21.7 C");
    assert_eq!(sensor.publish(TEMPERATURE, &fresh, 1, false), 0x00);
    accepted.push(fresh);
    // Past the grace period (2 s after the block of the rotation, whose
    // timestamp has a one-second resolution).
    std::thread::sleep(Duration::from_secs(4));
    let stale = seal(&me, TEMPERATURE, &k1, "21.8 C");
    assert_eq!(
        sensor.publish(TEMPERATURE, &stale, 1, false),
        0x87,
        "stale epoch"
    );
    sensor.disconnect();

    let delivered: Vec<Vec<u8>> = (0..accepted.len())
        .map(|_| watcher.recv_publish().payload)
        .collect();
    assert_eq!(delivered, accepted, "exactly what was accepted, in order");
    watcher.expect_nothing(Duration::from_millis(300));
    let opened = Envelope::parse(&delivered[1])
        .unwrap()
        .open(TEMPERATURE, &k1)
        .unwrap();
    assert_eq!(&opened[..], b"21.6 C");

    for (reason, n) in [
        ("replayed", 1),
        ("bad_signature", 3),
        ("wrong_group", 1),
        ("not_envelope", 1),
        ("stale_epoch", 1),
        ("malformed", 0),
    ] {
        assert_eq!(refused(&net, reason), n, "{reason}");
    }
}

/// `ledgermq bench envelope` runs every loop and reports sizes that add up
/// (the numbers themselves go in docs/bench.md, not in a test).
#[test]
fn the_envelope_bench_reports_each_operation_and_the_epoch_size() {
    let out = Command::new(ledgermq_bin())
        .args(["bench", "envelope", "--duration", "0.05", "--members", "10"])
        .args(["--batch", "8", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| -> f64 {
        let at = json
            .find(&format!("\"{name}\":"))
            .unwrap_or_else(|| panic!("{name}: {json}"));
        let rest = &json[at + name.len() + 3..];
        rest[..rest.find([',', '}']).unwrap()].parse().unwrap()
    };
    for name in [
        "seal_sign_per_s",
        "open_verify_per_s",
        "verify_per_s",
        "verify_batch_per_s",
    ] {
        assert!(field(name) > 0.0, "{name}: {json}");
    }
    assert_eq!(field("members"), 10.0);
    assert_eq!(field("epoch_bytes"), 10.0 * field("bundle_bytes"));
}

/// A running `ledgermq device … sub`, its output lines collected.
struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
    errors: Arc<std::sync::Mutex<String>>,
}

impl Subscriber {
    fn start(net: &Network, device: &str, topic: &str, count: u64) -> Subscriber {
        Subscriber::start_qos(net, device, topic, count, "1")
    }

    fn start_qos(net: &Network, device: &str, topic: &str, count: u64, qos: &str) -> Subscriber {
        let count = count.to_string();
        let mut child = device_command(
            net,
            device,
            &["sub", "--topic", topic, "--qos", qos, "--count", &count],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let errors = Arc::new(std::sync::Mutex::new(String::new()));
        let (err, sink) = (child.stderr.take().unwrap(), errors.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Subscriber {
            child,
            lines,
            errors,
        }
    }

    fn next_line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "no line for {what}; stderr:\n{}",
                    self.errors.lock().unwrap()
                )
            })
    }

    /// Waits for the process to exit on its --count; its stderr.
    fn finish(mut self) -> String {
        let status = self.child.wait().unwrap();
        let errors = self.errors.lock().unwrap().clone();
        assert!(status.success(), "{errors}");
        errors
    }
}

/// A member removed while a publisher streams: every message reaches the
/// remaining member, in order, across the rotation (the publisher moves to
/// the new epoch as soon as the ledger shows it and its bundle arrives);
/// the removed member reads the messages of the old epoch and none of the
/// new one.
#[test]
fn no_message_is_lost_across_a_rotation_and_the_removed_member_reads_none_after_it() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    set_up(&net);
    let ks = KeyService::start(&net, false);
    ks.next_line("the first epoch");
    // A retained first message: once a subscriber prints it, it is
    // subscribed.
    publish_retained(&net, SENSOR, TEMPERATURE, "ready");
    const N: u64 = 40;
    let reader = Subscriber::start(&net, READER, TEMPERATURE, N + 1);
    let leaver = Subscriber::start(&net, LEAVER, TEMPERATURE, N + 1);
    assert_eq!(reader.next_line("the retained message"), "ready");
    assert_eq!(leaver.next_line("the retained message"), "ready");

    let mut publisher = device_command(
        &net,
        SENSOR,
        &["pub", "--topic", TEMPERATURE, "--lines", "--qos", "1"],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    let mut input = publisher.stdin.take().unwrap();
    for i in 1..=N {
        std::io::Write::write_all(&mut input, format!("reading {i}\n").as_bytes()).unwrap();
        if i == N / 2 {
            net.admin_ok(
                "supplier-admin",
                &["group", "remove", "--name", GROUP, "--device", LEAVER],
            );
            ks.next_line("the rotation");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(input);
    assert!(publisher.wait().unwrap().success());

    let read: Vec<String> = (1..=N)
        .map(|i| reader.next_line(&format!("reading {i}")))
        .collect();
    let expected: Vec<String> = (1..=N).map(|i| format!("reading {i}")).collect();
    assert_eq!(
        read, expected,
        "every message, in order, across the rotation"
    );
    reader.finish();

    let after: Vec<String> = (1..=N)
        .map(|i| leaver.next_line(&format!("message {i}")))
        .collect();
    leaver.finish();
    let first_hidden = after
        .iter()
        .position(|l| l.starts_with("cannot decrypt"))
        .expect("the removed member cannot read the new epoch");
    assert!(first_hidden >= (N / 2) as usize, "{after:?}");
    assert_eq!(&after[..first_hidden], &expected[..first_hidden]);
    for line in &after[first_hidden..] {
        assert_eq!(
            line,
            "cannot decrypt: not a member of group hsu0001 (epoch 2)"
        );
    }
}

/// Another organisation's broker operator, even holding the group key,
/// cannot make an envelope a member accepts: under `verify subscribers`
/// the broker passes it on, and the member's `device sub` refuses it
/// (the signature is not the sensor's registered key) and goes on.
#[test]
fn an_envelope_signed_by_another_operator_is_refused_by_the_subscriber() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    set_up(&net);
    net.admin_ok(
        "supplier-admin",
        &[
            "group",
            "update",
            "--name",
            GROUP,
            "--verify",
            "subscribers",
        ],
    );
    let ks = KeyService::start(&net, false);
    ks.next_line("the first epoch");
    publish_retained(&net, SENSOR, TEMPERATURE, "21.5 C");
    let reader = Subscriber::start(&net, READER, TEMPERATURE, 2);
    assert_eq!(reader.next_line("the retained message"), "21.5 C");

    let key = open_own_bundle(&net, SENSOR, GROUP, 1);
    let forged = operator_as_sensor(&net)
        .seal(TEMPERATURE, &key, unix_micros(), b"-40.0 C", &mut OsRng)
        .unwrap();
    let mut sensor = login(&net, SENSOR);
    assert_eq!(
        sensor.publish(TEMPERATURE, &forged, 1, false),
        0x00,
        "the broker leaves signatures to subscribers"
    );
    sensor.disconnect();
    device_ok(
        &net,
        SENSOR,
        &[
            "pub",
            "--topic",
            TEMPERATURE,
            "--message",
            "21.6 C",
            "--qos",
            "1",
        ],
    );
    assert_eq!(reader.next_line("the genuine message"), "21.6 C");
    let errors = reader.finish();
    assert!(
        errors.contains("refused a message on Temperature/raw Material"),
        "{errors}"
    );
}

/// SCAC protects the hop, the envelope the data: a sealed reading
/// published at QoS 2 over a SCAC connection (its payload encrypted under
/// the rolling link keys, which the broker removes and applies again for
/// the subscriber's link) is still an envelope at the broker, checked as
/// one, and opened by the member at the far end.
#[test]
fn scac_links_and_end_to_end_envelopes_compose() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    set_up(&net);
    let ks = KeyService::start(&net, false);
    ks.next_line("the first epoch");
    let reader = Subscriber::start_qos(&net, READER, TEMPERATURE, 1, "2");
    // The reader is subscribed once it has its key (the retained bundle
    // arrives on the subscription made first); give it a moment to make
    // the data subscription too, then publish until it has read one.
    let account: String = net
        .node_account("broker-supplier")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let broker_account = format!("0x{account}");
    let mut got = None;
    for attempt in 0..20 {
        let out = Command::new(ledgermq_bin())
            .current_dir(&net.dir)
            .args(["device", "--bundle"])
            .arg(net.bundle(SENSOR))
            .args(["--broker", &format!("127.0.0.1:{}", net.port())])
            .args(["--auth", "scac", "--broker-account", &broker_account])
            .args(&net.target)
            .args(["pub", "--topic", TEMPERATURE, "--qos", "2"])
            .args(["--message", &format!("21.5 C #{attempt}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Ok(line) = reader.lines.recv_timeout(Duration::from_millis(500)) {
            got = Some(line);
            break;
        }
    }
    let line = got.expect("the reader read a reading");
    assert!(line.starts_with("21.5 C #"), "{line}");
    reader.finish();
}

/// Rotation without anyone touching the group: a member's device revoked
/// by its own organisation's admin, then another member's last right on
/// the group's topics revoked, each rotates the key within seconds; the
/// ledger shows who got a key exchange of each epoch.
#[test]
fn revoking_a_member_device_or_its_right_rotates_the_key() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    set_up(&net);
    let ks = KeyService::start(&net, false);
    let line = ks.next_line("the first epoch");
    assert!(line.contains("epoch 1: 3 member(s)"), "{line}");

    net.admin_ok("retailer-admin", &["device", "revoke", "--id", LEAVER]);
    let line = ks.next_line("the rotation after the revocation");
    assert!(line.contains("epoch 2: 2 member(s), 1 left"), "{line}");

    net.admin_ok(
        "manufacturer-admin",
        &[
            "right",
            "revoke",
            "--device",
            READER,
            "--topic",
            TEMPERATURE,
        ],
    );
    let line = ks.next_line("the rotation after the right was revoked");
    assert!(line.contains("epoch 3: 1 member(s), 1 left"), "{line}");

    let show = net.admin_ok("supplier-admin", &["group", "show", GROUP]);
    for (epoch, members) in [(1, 3), (2, 2), (3, 1)] {
        let line = show
            .lines()
            .find(|l| l.starts_with(&format!("epoch: {epoch}\t")))
            .unwrap_or_else(|| panic!("no epoch {epoch}:\n{show}"));
        assert!(
            line.contains(&format!("members={members}\tkey_exchanges={members}")),
            "{line}"
        );
    }
    // The reader, still a member of the group, has no bundle of epoch 3.
    let mut reader = login(&net, READER);
    assert_eq!(
        reader.subscribe(&format!("$lmq/keys/{GROUP}/{READER}"), 1),
        1
    );
    reader.expect_nothing(Duration::from_millis(500));
    reader.disconnect();
}
