//! `ledgermq admin` and `ledgermq ledger` as an operator runs them: the real
//! binary against the embedded ledger (`--data-dir`) and a real anvil (`--rpc`).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::ledger::{ledgermq, ok, repo, start_anvil, ANVIL_KEY0};

fn supply_chain() -> PathBuf {
    repo().join("examples/supply-chain.toml")
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let out = ledgermq(dir, args);
    assert!(!out.status.success(), "ledgermq {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// `admin --data-dir data apply examples/supply-chain.toml` in `dir`.
fn apply_supply_chain(dir: &Path) -> String {
    ok(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "apply",
            supply_chain().to_str().unwrap(),
            "--bundles",
            "bundles",
            "--keys-dir",
            "keys",
        ],
    )
}

fn first_column(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect()
}

/// Checks what `admin list …` shows after the supply chain was applied.
fn assert_supply_chain_listed(dir: &Path, target: &[&str]) {
    let list = |what: &str| {
        let mut args = vec!["admin"];
        args.extend_from_slice(target);
        args.extend_from_slice(&["list", what]);
        ok(dir, &args)
    };
    assert_eq!(
        first_column(&list("orgs")),
        [
            "supplier",
            "manufacturer",
            "distributor",
            "retailer",
            "customer"
        ]
    );
    let topics = list("topics");
    assert_eq!(topics.lines().count(), 15, "{topics}");
    assert!(topics.contains(
        "Customer feedback\tcustomer\tsensitive=false\tpublish_open=false\tsubscribe_open=true"
    ));
    let devices = list("devices");
    assert_eq!(devices.lines().count(), 17, "{devices}");
    assert!(devices.contains("customer-end-device\tcustomer\tactive"));
    assert_eq!(list("brokers").lines().count(), 4);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn supply_chain_on_the_embedded_ledger_survives_a_restart_and_refuses_untrusted_admins() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = ["--data-dir", "data"];
    let out = apply_supply_chain(dir);
    assert!(
        out.contains("organisation customer joined the consortium"),
        "{out}"
    );
    assert!(out.contains("(41 changes)"), "{out}");
    // A second command on the same data dir sees everything; apply is idempotent.
    assert_supply_chain_listed(dir, &target);
    let again = apply_supply_chain(dir);
    assert!(again.contains("(0 changes)"), "{again}");

    let bundle = std::fs::read_to_string(dir.join("bundles/customer-end-device.json")).unwrap();
    assert!(bundle.contains("\"otp_key\"") && bundle.contains("\"brokers\""));
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir.join("bundles/customer-end-device.json")), 0o600);
        assert_eq!(mode(&dir.join("keys/supplier-admin.key")), 0o600);
        assert_eq!(mode(&dir.join("keys/broker-supplier.node.json")), 0o600);
    }
    // The OTP key is on the ledger only sealed: the bundle's key is not in the chain files.
    let otp = bundle
        .split("\"otp_key\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let raw = alloy_primitives::hex::decode(otp).unwrap();
    let blocks = std::fs::read(dir.join("data/ledger/blocks.dat")).unwrap();
    assert!(!blocks.windows(raw.len()).any(|w| w == raw.as_slice()));

    // An admin of another organisation is refused with the contract's reason.
    let err = fails(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "--account",
            "keys/retailer-admin.key",
            "device",
            "register",
            "--org",
            "supplier",
            "--id",
            "rogue",
            "--topic",
            "x/y:pub",
            "--bundle-out",
            "rogue.json",
        ],
    );
    assert!(
        err.contains("caller is not an admin of organisation supplier"),
        "{err}"
    );
    assert!(
        !dir.join("rogue.json").exists(),
        "no bundle for a refused device"
    );
    let err = fails(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "--account",
            "keys/supplier-admin.key",
            "device",
            "register",
            "--org",
            "atlantis",
            "--id",
            "d",
            "--bundle-out",
            "d.json",
        ],
    );
    assert!(err.contains("unknown organisation atlantis"), "{err}");
    let err = fails(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "--account",
            "keys/supplier-admin.key",
            "device",
            "register",
            "--org",
            "supplier",
            "--id",
            "supplier-temperature-sensor",
            "--bundle-out",
            "dup.json",
        ],
    );
    assert!(
        err.contains("device supplier-temperature-sensor is already registered"),
        "{err}"
    );

    // By hand: register, show, revoke.
    ok(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "--account",
            "keys/supplier-admin.key",
            "device",
            "register",
            "--org",
            "supplier",
            "--id",
            "supplier-gps",
            "--topic",
            "Geolocation/raw Material:pub",
            "--bundle-out",
            "supplier-gps.json",
        ],
    );
    let show = ok(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "device",
            "show",
            "supplier-gps",
        ],
    );
    assert!(
        show.contains("right: Geolocation/raw Material pub=true sub=false"),
        "{show}"
    );
    // Four broker nodes, one per organisation: only the supplier's holds the
    // supplier device's OTP key.
    assert_eq!(show.matches("otp_envelope_for:").count(), 1, "{show}");
    // A ban with the admin's stated reason: only its SHA-256 goes on the
    // ledger, and `device show` prints it.
    let because = "ticket 4711: sensor reported stolen";
    let banned = ok(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "--account",
            "keys/supplier-admin.key",
            "device",
            "blacklist",
            "--id",
            "supplier-gps",
            "--for",
            "600",
            "--evidence",
            because,
        ],
    );
    // printf %s 'ticket 4711: sensor reported stolen' | sha256sum
    let digest = "0x2191e2c2750790adfab677d094d56715b7f93600edcd9eff05ad805b70562538";
    assert!(
        banned.contains(&format!("evidence digest {digest}")),
        "{banned}"
    );
    let show = ok(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "device",
            "show",
            "supplier-gps",
        ],
    );
    assert!(show.contains("reason=5"), "{show}");
    assert!(show.contains(&format!("evidence={digest}")), "{show}");
    ok(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "--account",
            "keys/supplier-admin.key",
            "device",
            "revoke",
            "--id",
            "supplier-gps",
        ],
    );
    let devices = ok(dir, &["admin", "--data-dir", "data", "list", "devices"]);
    assert!(
        devices.contains("supplier-gps\tsupplier\trevoked"),
        "{devices}"
    );
    let verify = ok(dir, &["ledger", "verify", "--data-dir", "data"]);
    assert!(verify.starts_with("ok:"), "{verify}");
}

#[test]
fn account_new_prints_only_the_address_and_writes_a_private_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(tmp.path(), &["admin", "account", "new", "--out", "me.key"]);
    let line = out.trim();
    assert!(line.starts_with("0x") && line.len() == 42, "{out}");
    let key = std::fs::read_to_string(tmp.path().join("me.key")).unwrap();
    assert!(!out.contains(key.trim()));
    #[cfg(unix)]
    assert_eq!(mode(&tmp.path().join("me.key")), 0o600);
    let err = fails(tmp.path(), &["admin", "account", "new", "--out", "me.key"]);
    assert!(err.contains("me.key"), "{err}");
}

#[test]
fn unreachable_rpc_endpoint_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("ledger.toml"),
        "chain_id = 1\nconsortium = \"0x0000000000000000000000000000000000000001\"\nregistry = \"0x0000000000000000000000000000000000000002\"\naudit = \"0x0000000000000000000000000000000000000003\"\ndeployed_at_block = 0\n",
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let err = fails(tmp.path(), &["admin", "--rpc", &url, "list", "orgs"]);
    assert!(
        err.contains(&format!("ledger unreachable at {url}")),
        "{err}"
    );
}

#[test]
fn supply_chain_on_anvil_over_json_rpc() {
    let (_anvil, url) = start_anvil();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("funder.key"), ANVIL_KEY0).unwrap();
    let target = ["--rpc", url.as_str(), "--deployment", "net.toml"];
    let file = supply_chain();
    let mut args = vec!["admin"];
    args.extend_from_slice(&target);
    args.extend_from_slice(&[
        "--account",
        "funder.key",
        "apply",
        file.to_str().unwrap(),
        "--bundles",
        "bundles",
        "--keys-dir",
        "keys",
        "--fund",
        "1000000000000000000",
    ]);
    let out = ok(dir, &args);
    assert!(
        out.contains("organisation customer joined the consortium"),
        "{out}"
    );
    assert_supply_chain_listed(dir, &target);
    let err = fails(
        dir,
        &[
            "admin",
            "--rpc",
            &url,
            "--deployment",
            "net.toml",
            "--account",
            "keys/customer-admin.key",
            "right",
            "grant",
            "--device",
            "supplier-temperature-sensor",
            "--topic",
            "x",
            "--pub",
        ],
    );
    assert!(
        err.contains("caller is not an admin of organisation supplier"),
        "{err}"
    );

    // ledger deploy from an orgs file.
    std::fs::write(dir.join("orgs.toml"), "[[org]]\nid = \"solo\"\nname = \"Solo\"\nadmins = [\"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\"]\n").unwrap();
    let out = ok(
        dir,
        &[
            "ledger",
            "deploy",
            "--rpc",
            &url,
            "--account",
            "funder.key",
            "--orgs-file",
            "orgs.toml",
            "--out",
            "solo.toml",
        ],
    );
    assert!(out.contains("deployment written to solo.toml"), "{out}");
    let orgs = ok(
        dir,
        &[
            "admin",
            "--rpc",
            &url,
            "--deployment",
            "solo.toml",
            "list",
            "orgs",
        ],
    );
    assert_eq!(first_column(&orgs), ["solo"]);
}

/// A `ledgermq serve` process on a data dir, killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ledgermq serve` on `data` and returns it with its ledger JSON-RPC URL.
fn serve_with_ledger(dir: &Path) -> (Serve, String) {
    serve(dir, &["--ledger-rpc-listen", "127.0.0.1:0"])
}

/// `ledgermq serve --listen 127.0.0.1:0 --data-dir data ARGS` in `dir`,
/// with the URL of the ledger JSON-RPC it prints.
fn serve(dir: &Path, args: &[&str]) -> (Serve, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledgermq"))
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ledgermq serve");
    let stdout = child.stdout.take().unwrap();
    let serve = Serve(child);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("serve output");
        if let Some(addr) = line.strip_prefix("LISTENING ledger-rpc ") {
            return (serve, format!("http://{addr}"));
        }
    }
    panic!("ledgermq serve {args:?} printed no ledger-rpc line");
}

/// The ledger mode on the embedded chain serves its JSON-RPC without being
/// asked — on loopback, at a port of its own (not 8545, where anvil, geth
/// and besu listen: a client must not reach another chain by mistake).
/// The only test that uses the default port.
#[test]
fn ledger_mode_serves_its_json_rpc_on_loopback_at_a_port_of_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    apply_supply_chain(dir);
    let (_broker, url) = serve(
        dir,
        &[
            "--security",
            "ledger",
            "--persistence",
            "false",
            "--ledger-account",
            "keys/broker-supplier.key",
            "--ledger-node-keys",
            "keys/broker-supplier.node.json",
        ],
    );
    assert_eq!(url, "http://127.0.0.1:8645");
    let orgs = ok(
        dir,
        &[
            "admin",
            "--rpc",
            &url,
            "--deployment",
            "data/ledger.toml",
            "list",
            "orgs",
        ],
    );
    assert_eq!(first_column(&orgs).len(), 5, "{orgs}");
}

/// Before the contracts exist only `ledger_rpc_tx_allow` may send through
/// a running node; afterwards the consortium's admins may, as the chain
/// says at the time of each transaction.
#[test]
fn deploying_through_a_running_node_needs_an_allow_listed_deployer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let address = |name: &str| {
        ok(dir, &["admin", "account", "new", "--out", name])
            .trim()
            .to_string()
    };
    let deployer = address("deployer.key");
    let admin = address("admin.key");
    let stranger = address("stranger.key");
    std::fs::write(
        dir.join("orgs.toml"),
        format!("[[org]]\nid = \"solo\"\nname = \"Solo\"\nadmins = [\"{admin}\"]\n"),
    )
    .unwrap();
    let (_broker, url) = serve(
        dir,
        &[
            "--ledger-rpc-listen",
            "127.0.0.1:0",
            "--ledger-rpc-tx-allow",
            &deployer,
        ],
    );
    let deploy = |account: &str| {
        ledgermq(
            dir,
            &[
                "ledger",
                "deploy",
                "--rpc",
                &url,
                "--account",
                account,
                "--orgs-file",
                "orgs.toml",
                "--out",
                "solo.toml",
            ],
        )
    };
    let refused = deploy("stranger.key");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!("zero-fee transaction from {stranger} refused"))
            && err.contains("ledger_rpc_tx_allow"),
        "{err}"
    );
    assert!(!dir.join("solo.toml").exists());
    let deployed = deploy("deployer.key");
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );

    let admin_cmd = |account: &str, args: &[&str]| {
        let mut all = vec![
            "admin",
            "--rpc",
            &url,
            "--deployment",
            "solo.toml",
            "--account",
            account,
        ];
        all.extend_from_slice(args);
        ledgermq(dir, &all)
    };
    // The founding admin was never allow-listed: the consortium vouches for it.
    let added = admin_cmd(
        "admin.key",
        &["admin", "add", "--org", "solo", "--address", &stranger],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // Now an admin itself, the former stranger may send too.
    let removed = admin_cmd(
        "stranger.key",
        &["admin", "remove", "--org", "solo", "--address", &admin],
    );
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
}

/// While a broker runs on a data dir its embedded chain is locked, so the
/// admin CLI reaches the ledger through the broker's JSON-RPC endpoint:
/// the same consortium is visible and changes go through it.
#[test]
fn admin_cli_works_through_a_running_brokers_embedded_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    apply_supply_chain(dir);
    let (_broker, url) = serve_with_ledger(dir);

    let direct = fails(dir, &["admin", "--data-dir", "data", "list", "orgs"]);
    assert!(direct.contains("in use by another process"), "{direct}");

    let target = ["--rpc", url.as_str(), "--deployment", "data/ledger.toml"];
    assert_supply_chain_listed(dir, &target);
    let mut register = vec!["admin"];
    register.extend_from_slice(&target);
    register.extend_from_slice(&[
        "--account",
        "keys/supplier-admin.key",
        "device",
        "register",
        "--org",
        "supplier",
        "--id",
        "supplier-gps",
        "--topic",
        "Geolocation/raw Material:pub",
        "--bundle-out",
        "bundles/supplier-gps.json",
    ]);
    ok(dir, &register);
    let mut show = vec!["admin"];
    show.extend_from_slice(&target);
    show.extend_from_slice(&["device", "show", "supplier-gps"]);
    assert!(ok(dir, &show).contains("supplier"));
}

/// A changed byte anywhere in the embedded chain's block file is caught by
/// `ledger verify`, and a broker refuses to start on that ledger.
#[test]
fn tampered_block_file_fails_verify_and_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    apply_supply_chain(dir);
    assert!(ok(dir, &["ledger", "verify", "--data-dir", "data"]).starts_with("ok:"));
    let blocks = dir.join("data/ledger/blocks.dat");
    let mut bytes = std::fs::read(&blocks).unwrap();
    let victim = bytes.len() / 3;
    bytes[victim] ^= 0x01;
    std::fs::write(&blocks, &bytes).unwrap();

    let err = fails(dir, &["ledger", "verify", "--data-dir", "data"]);
    assert!(err.contains("block"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ledgermq"))
        .current_dir(dir)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ledger-rpc-listen",
            "127.0.0.1:0",
            "--data-dir",
            "data",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the embedded ledger") && stderr.contains("block"),
        "{stderr}"
    );
}

/// `admin group …` and `admin key-service …` on the embedded ledger: the
/// owning organisation's admin defines a group and its members; another
/// organisation's admin, an unknown or foreign device, a bad policy word
/// are refused with the reason.
#[test]
fn encryption_groups_are_managed_by_their_organisations_admin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    apply_supply_chain(dir);
    let admin = |key: &str, rest: &[&str]| -> Vec<String> {
        let mut args = vec!["admin", "--data-dir", "data", "--account"];
        let key = format!("keys/{key}-admin.key");
        args.push(&key);
        args.extend_from_slice(rest);
        args.iter().map(|s| s.to_string()).collect()
    };
    let run_ok = |args: Vec<String>| ok(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let run_fails =
        |args: Vec<String>| fails(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());

    let created = run_ok(admin(
        "supplier",
        &[
            "group",
            "create",
            "--org",
            "supplier",
            "--name",
            "hsu0001",
            "--filter",
            "Temperature/#",
            "--filter",
            "Humidity/#",
            "--verify",
            "sample",
        ],
    ));
    assert!(
        created.contains("group hsu0001 of supplier created"),
        "{created}"
    );
    run_ok(admin(
        "supplier",
        &[
            "group",
            "add",
            "--name",
            "hsu0001",
            "--device",
            "supplier-temperature-sensor",
        ],
    ));
    run_ok(admin(
        "supplier",
        &[
            "group",
            "add",
            "--name",
            "hsu0001",
            "--device",
            "supplier-humidity-sensor",
        ],
    ));

    // Refusals, each with the contract's reason.
    let err = run_fails(admin(
        "retailer",
        &[
            "group",
            "add",
            "--name",
            "hsu0001",
            "--device",
            "supplier-humidity-sensor",
        ],
    ));
    assert!(
        err.contains("not an admin of organisation supplier"),
        "{err}"
    );
    // A reader of another organisation may be a member (it reads, its own
    // subscribe right decides whether it receives); only once.
    let add_reader = || {
        admin(
            "supplier",
            &[
                "group",
                "add",
                "--name",
                "hsu0001",
                "--device",
                "manufacturer-rfid-reader",
            ],
        )
    };
    run_ok(add_reader());
    let err = run_fails(add_reader());
    assert!(err.contains("already a member of hsu0001"), "{err}");
    let err = run_fails(admin(
        "supplier",
        &[
            "group",
            "add",
            "--name",
            "hsu0001",
            "--device",
            "no-such-device",
        ],
    ));
    assert!(
        err.contains("no-such-device") || err.contains("unknown device"),
        "{err}"
    );
    let err = run_fails(admin(
        "supplier",
        &[
            "group",
            "create",
            "--org",
            "supplier",
            "--name",
            "x",
            "--filter",
            "a",
            "--protection",
            "secret",
        ],
    ));
    assert!(err.contains("not one of sealed, signed, optional"), "{err}");
    let err = run_fails(admin("supplier", &["group", "update", "--name", "hsu0001"]));
    assert!(err.contains("nothing to change"), "{err}");

    run_ok(admin(
        "supplier",
        &["group", "update", "--name", "hsu0001", "--grace", "30"],
    ));
    run_ok(admin(
        "supplier",
        &[
            "group",
            "remove",
            "--name",
            "hsu0001",
            "--device",
            "supplier-humidity-sensor",
        ],
    ));
    let show = ok(
        dir,
        &["admin", "--data-dir", "data", "group", "show", "hsu0001"],
    );
    assert!(show.contains("org: supplier"), "{show}");
    assert!(show.contains("protection: sealed"), "{show}");
    assert!(show.contains("verify: sample"), "{show}");
    assert!(
        show.contains("grace_seconds: 30"),
        "the update kept the rest: {show}"
    );
    assert!(
        show.contains("filter: Temperature/#") && show.contains("filter: Humidity/#"),
        "{show}"
    );
    assert!(
        show.contains("member: supplier-temperature-sensor"),
        "{show}"
    );
    assert!(
        !show.contains("member: supplier-humidity-sensor"),
        "removed: {show}"
    );
    let list = ok(dir, &["admin", "--data-dir", "data", "group", "list"]);
    assert_eq!(first_column(&list), ["hsu0001"], "{list}");

    // The key service: registered by the organisation's admin only.
    let key = "0x".to_string() + &"ab".repeat(32);
    let addr = ok(
        dir,
        &["admin", "account", "new", "--out", "keys/supplier-ks.key"],
    );
    let err = run_fails(admin(
        "retailer",
        &[
            "key-service",
            "set",
            "--org",
            "supplier",
            "--address",
            addr.trim(),
            "--signing-key",
            &key,
        ],
    ));
    assert!(
        err.contains("not an admin of organisation supplier"),
        "{err}"
    );
    run_ok(admin(
        "supplier",
        &[
            "key-service",
            "set",
            "--org",
            "supplier",
            "--address",
            addr.trim(),
            "--signing-key",
            &key,
        ],
    ));
    let shown = ok(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "key-service",
            "show",
            "supplier",
        ],
    );
    assert!(
        shown.to_lowercase().contains(&addr.trim().to_lowercase()),
        "{shown}"
    );
    assert!(shown.contains(&key), "{shown}");
    let err = fails(
        dir,
        &[
            "admin",
            "--data-dir",
            "data",
            "key-service",
            "show",
            "retailer",
        ],
    );
    assert!(err.contains("no key service"), "{err}");
}
