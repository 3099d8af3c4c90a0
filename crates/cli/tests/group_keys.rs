//! Group keys end to end (docs/e2e.md): the supplier's key service — a
//! device of the supplier with a ledger account of its own — commits key
//! epochs on the ledger and publishes each member's signed, HPKE-wrapped
//! key bundle on its retained key topic; members open theirs against the
//! ledger's commitment; nobody else may read or overwrite a bundle; a
//! removed member gets no key for the next epoch. Real binary, embedded
//! ledger, real broker.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::ledgermq_bin;
use common::network::*;
use ledgermq_keystore::software::SoftwareX25519;
use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_security::envelope::KeyBundle;

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

/// The commitment `admin group show` lists for `epoch`.
fn ledger_commitment(net: &Network, epoch: u64) -> [u8; 32] {
    let show = net.admin_ok("supplier-admin", &["group", "show", GROUP]);
    let line = show
        .lines()
        .find(|l| l.starts_with(&format!("epoch: {epoch}\t")))
        .unwrap_or_else(|| panic!("no epoch {epoch} on the ledger:\n{show}"));
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

/// `member`'s retained bundle: opened with its X25519 secret, checked
/// against the key service's key and the ledger's commitment.
fn open_own_bundle(net: &Network, member: &str, epoch: u64) -> [u8; 32] {
    let mut c = login(net, member);
    assert_eq!(c.subscribe(&format!("$lmq/keys/+/{member}"), 1), 1);
    let p = c.recv_publish();
    assert!(p.retain, "a key bundle is retained");
    assert_eq!(p.topic, format!("$lmq/keys/{GROUP}/{member}"));
    let bundle = KeyBundle::parse(&p.payload).unwrap();
    assert_eq!(
        (bundle.group(), bundle.epoch(), bundle.member()),
        (GROUP, epoch, member)
    );
    let secret = ProvisioningBundle::load(&net.bundle(member))
        .unwrap()
        .agreement_secret
        .clone();
    let me = SoftwareX25519::from_bytes(&alloy_hex(&secret));
    let service = signing_public(&net.bundle(KS_DEVICE));
    let key = bundle
        .open(&service, &me, &ledger_commitment(net, epoch))
        .expect("the member opens its key and the ledger commits to it");
    c.disconnect();
    key.check()
}

fn set_up(net: &Network) {
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
    let addr = common::ledger::ok(
        &net.dir,
        &["admin", "account", "new", "--out", "keys/supplier-ks.key"],
    );
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
        .map(|m| open_own_bundle(&net, m, 1))
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
        open_own_bundle(&net, READER, 1),
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
    let fresh = open_own_bundle(&net, READER, 2);
    assert_ne!(fresh, checks[0], "a new key");
    assert_eq!(open_own_bundle(&net, SENSOR, 2), fresh);
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
    cmd.args(&net.target).args(args).output().unwrap()
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

/// The first retained message on TEMPERATURE as `device` prints it.
fn read_retained(net: &Network, device: &str) -> String {
    device_ok(
        net,
        device,
        &["sub", "--topic", TEMPERATURE, "--qos", "1", "--count", "1"],
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
    device_ok(
        &net,
        SENSOR,
        &[
            "pub",
            "--topic",
            TEMPERATURE,
            "--message",
            "21.5 C",
            "--qos",
            "1",
            "--retain",
        ],
    );
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
    device_ok(
        &net,
        SENSOR,
        &[
            "pub",
            "--topic",
            TEMPERATURE,
            "--message",
            "22.0 C",
            "--qos",
            "1",
            "--retain",
        ],
    );
    assert_eq!(read_retained(&net, READER), "22.0 C");
    assert_eq!(
        read_retained(&net, LEAVER),
        "cannot decrypt: not a member of group hsu0001 (epoch 2)"
    );
}
