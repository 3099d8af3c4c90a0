//! The ledger security mode fixture shared by device_auth.rs and
//! lockout.rs: the supply chain of examples/supply-chain.toml applied with
//! the real admin CLI, the supplier's broker node serving with `--security
//! ledger` on the embedded chain or anvil, a second node on the same
//! ledger (a second node of the supplier), and devices speaking LMQ-OTP-1 and TOTP by hand — from any
//! loopback source address (127.0.0.0/8), so a test can tell its attacker
//! and its device apart.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::ledger::{ledgermq, ok, repo, start_anvil, Anvil, ANVIL_KEY0};
use super::{Broker, Client, Connect, Packet, Props, Recv, V5};
use std::sync::Arc;

use alloy_primitives::hex;
use ledgermq_keystore::software::SoftwareEd25519;
use ledgermq_keystore::Ed25519Signer;
use ledgermq_ledger::admin::{BrokerNodeFile, ProvisioningBundle};
use ledgermq_security::scac::{ClientHandshake, LocalKey, PeerKey, Suite};
use ledgermq_security::{audience_key, totp, OtpClient, OtpKey, AUTH_METHOD};

pub const SENSOR: &str = "supplier-temperature-sensor";
/// The node [`Network::second_node`] starts.
pub const SECOND_NODE: &str = "broker-supplier-2";
pub const TEMPERATURE: &str = "Temperature/raw Material";
/// Short TOTP steps keep the tests quick; every login needs a new step.
pub const TOTP_STEP: u64 = 2;

// ---------------------------------------------------------------- fixture

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Anvil,
}

/// A consortium with the supply chain applied and one broker node
/// (the supplier's) serving in the ledger security mode.
pub struct Network {
    pub backend: Backend,
    pub broker: Broker,
    /// Where the admin CLI runs: keys/, bundles/, and the deployment.
    pub dir: PathBuf,
    /// `--rpc URL --deployment FILE` or `--data-dir DIR` for `ledgermq admin`.
    pub target: Vec<String>,
    pub anvil: Option<(Anvil, String)>,
}

impl Network {
    pub fn start(backend: Backend, opts: &[(&str, &str)]) -> Option<Network> {
        let anvil = (backend == Backend::Anvil).then(start_anvil);
        let url = anvil.as_ref().map(|(_, u)| u.clone());
        let mut opts: Vec<(&str, &str)> = opts.to_vec();
        opts.extend([
            ("security", "ledger"),
            ("ledger-poll-interval-ms", "50"),
            ("totp-step", "2"),
        ]);
        let mut dir = PathBuf::new();
        let broker = Broker::with_setup(&opts, |d| {
            dir = d.to_path_buf();
            apply_supply_chain(d, url.as_deref());
            node_options(d, "broker-supplier", url.as_deref())
        })?;
        let target = match &url {
            Some(u) => vec![
                "--rpc".into(),
                u.clone(),
                "--deployment".into(),
                "net.toml".into(),
            ],
            None => {
                // The broker runs the chain: the admin CLI talks to its JSON-RPC.
                let rpc = ledger_rpc_of(&broker);
                vec![
                    "--rpc".into(),
                    rpc,
                    "--deployment".into(),
                    "data/ledger.toml".into(),
                ]
            }
        };
        Some(Network {
            backend,
            broker,
            dir,
            target,
            anvil,
        })
    }

    pub fn port(&self) -> u16 {
        self.broker.port
    }

    pub fn bundle(&self, device: &str) -> PathBuf {
        self.dir.join("bundles").join(format!("{device}.json"))
    }

    pub fn key(&self, device: &str) -> OtpKey {
        otp_key_of(&self.bundle(device))
    }

    /// The ledger account of broker node `name` (`keys/<name>.node.json`).
    pub fn node_account(&self, name: &str) -> [u8; 20] {
        let path = self.dir.join(format!("keys/{name}.node.json"));
        BrokerNodeFile::load(&path).expect("node keys").account.0 .0
    }

    /// The device's TOTP key for the node under test (broker-supplier).
    pub fn totp_key(&self, device: &str) -> OtpKey {
        self.totp_key_at(device, "broker-supplier")
    }

    /// The device's TOTP key for broker node `name`: its codes are
    /// accepted there only.
    pub fn totp_key_at(&self, device: &str, name: &str) -> OtpKey {
        audience_key(&self.key(device), &self.node_account(name))
    }

    /// Runs `ledgermq admin <target> --account keys/<admin>.key <args>`.
    pub fn admin(&self, admin: &str, args: &[&str]) -> Output {
        let account = format!("keys/{admin}.key");
        let mut all: Vec<&str> = vec!["admin"];
        all.extend(self.target.iter().map(String::as_str));
        all.extend(["--account", &account]);
        all.extend_from_slice(args);
        ledgermq(&self.dir, &all)
    }

    pub fn admin_ok(&self, admin: &str, args: &[&str]) -> String {
        let out = self.admin(admin, args);
        assert!(
            out.status.success(),
            "admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A second broker node of the supplier on the same ledger
    /// (`broker-supplier-2`: registered, and the supplier's devices' OTP
    /// keys resealed to it, as an admin adding a node does).
    pub fn second_node(&self) -> Broker {
        let url = match &self.anvil {
            Some((_, u)) => u.clone(),
            None => self.target[1].clone(),
        };
        let dir = self.dir.clone();
        self.admin_ok(
            "supplier-admin",
            &["broker", "add", "--org", "supplier", "--name", SECOND_NODE],
        );
        let mut bundles: Vec<String> = std::fs::read_dir(dir.join("bundles"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("supplier-") && n.ends_with(".json"))
            .map(|n| format!("bundles/{n}"))
            .collect();
        bundles.sort();
        let mut args = vec!["reseal"];
        args.extend(bundles.iter().map(String::as_str));
        self.admin_ok("supplier-admin", &args);
        Broker::with_setup(
            &[
                ("security", "ledger"),
                ("ledger-poll-interval-ms", "50"),
                ("totp-step", "2"),
            ],
            |_| {
                let mut o = node_options(&dir, SECOND_NODE, Some(&url));
                let deployment = match self.backend {
                    Backend::Anvil => dir.join("net.toml"),
                    Backend::Embedded => dir.join("data/ledger.toml"),
                };
                o.retain(|(k, _)| k != "ledger-deployment");
                o.push(("ledger-deployment".into(), deployment.display().to_string()));
                o
            },
        )
        .expect("ledgermq only")
    }
}

pub fn apply_supply_chain(dir: &Path, url: Option<&str>) {
    let file = repo().join("examples/supply-chain.toml");
    let file = file.to_str().unwrap();
    let common = ["apply", file, "--bundles", "bundles", "--keys-dir", "keys"];
    match url {
        None => {
            let mut args = vec!["admin", "--data-dir", "data"];
            args.extend(common);
            ok(dir, &args);
        }
        Some(url) => {
            std::fs::write(dir.join("funder.key"), ANVIL_KEY0).unwrap();
            let mut args = vec!["admin", "--rpc", url, "--deployment", "net.toml"];
            args.extend(["--account", "funder.key"]);
            args.extend(common);
            args.extend(["--fund", "1000000000000000000"]);
            ok(dir, &args);
        }
    }
}

/// `serve` options that make a broker node of `name` on the ledger.
pub fn node_options(dir: &Path, name: &str, url: Option<&str>) -> Vec<(String, String)> {
    let path = |p: &str| dir.join(p).display().to_string();
    let mut o = vec![
        (
            "ledger-account".to_string(),
            path(&format!("keys/{name}.key")),
        ),
        (
            "ledger-node-keys".to_string(),
            path(&format!("keys/{name}.node.json")),
        ),
    ];
    if let Some(url) = url {
        o.push(("ledger-rpc".into(), url.into()));
        o.push(("ledger-deployment".into(), path("net.toml")));
        o.push(("embedded-ledger".into(), "false".into()));
    }
    o
}

/// The embedded ledger's JSON-RPC URL, from the broker's stdout log.
pub fn ledger_rpc_of(broker: &Broker) -> String {
    let log = std::fs::read_to_string(broker.path("broker-1.log")).unwrap_or_default();
    let addr = log
        .lines()
        .find_map(|l| l.split("embedded ledger serving JSON-RPC addr=").nth(1))
        .unwrap_or_else(|| panic!("no ledger-rpc address in the log:\n{}", broker.log_tail()));
    format!("http://{}", addr.trim())
}

pub fn otp_key_of(bundle: &Path) -> OtpKey {
    let b = ProvisioningBundle::load(bundle).expect("bundle");
    OtpKey::from_bytes(*b.otp_key_bytes().unwrap())
}

pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A packet number above every earlier one (microseconds since the epoch).
pub fn fresh_packet_number() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

// ----------------------------------------------------- LMQ-OTP-1 by hand

/// What happened to an LMQ-OTP-1 CONNECT.
pub struct Handshake {
    pub client: Client,
    /// CONNACK reason code; `None` if the broker closed without one.
    pub code: Option<u8>,
    /// The CONNACK's properties (reason string and all).
    pub connack_props: Option<Props>,
    pub challenge: Option<[u8; 32]>,
    pub proof: Option<[u8; 32]>,
}

/// The address of the tests' devices; attackers use others of 127.0.0.0/8.
pub const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A loopback source address other than 127.0.0.1.
pub fn source(last: u8) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, last))
}

/// CONNECT with step 1; if challenged, answers with `answer(challenge)`.
pub fn otp_handshake(
    port: u16,
    client_id: &str,
    step1: Vec<u8>,
    answer: impl Fn(&[u8; 32]) -> [u8; 32],
) -> Handshake {
    otp_handshake_from(LOCAL, port, client_id, step1, answer)
}

/// [`otp_handshake`] from source address `from`.
pub fn otp_handshake_from(
    from: IpAddr,
    port: u16,
    client_id: &str,
    step1: Vec<u8>,
    answer: impl Fn(&[u8; 32]) -> [u8; 32],
) -> Handshake {
    let mut c = Connect::v5(client_id);
    c.props.authentication_method = Some(AUTH_METHOD.into());
    c.props.authentication_data = Some(step1);
    let mut client = Client::tcp_from(from, port, V5);
    client.id = client_id.into();
    client.send(&Packet::Connect(c));
    let mut hs = Handshake {
        client,
        code: None,
        connack_props: None,
        challenge: None,
        proof: None,
    };
    loop {
        match hs.client.try_recv(Duration::from_secs(15)) {
            Recv::Packet(Packet::Auth {
                reason: 0x18,
                props,
            }) => {
                assert_eq!(props.authentication_method.as_deref(), Some(AUTH_METHOD));
                let data = props.authentication_data.expect("challenge");
                let challenge = OtpClient::challenge(&data).expect("32-byte challenge");
                let proof = answer(&challenge);
                hs.challenge = Some(challenge);
                hs.proof = Some(proof);
                hs.client.send(&Packet::Auth {
                    reason: 0x18,
                    props: Props {
                        authentication_method: Some(AUTH_METHOD.into()),
                        authentication_data: Some(proof.to_vec()),
                        ..Props::default()
                    },
                });
            }
            Recv::Packet(Packet::ConnAck { code, props, .. }) => {
                hs.code = Some(code);
                hs.connack_props = Some(props);
                return hs;
            }
            Recv::Closed => return hs,
            other => panic!("unexpected answer to an LMQ-OTP-1 CONNECT: {other:?}"),
        }
    }
}

/// The correct handshake of `device` with packet number `n`.
pub fn otp_connect(port: u16, device: &str, key: &OtpKey, n: u64) -> Handshake {
    otp_connect_from(LOCAL, port, device, key, n)
}

/// [`otp_connect`] from source address `from`.
pub fn otp_connect_from(from: IpAddr, port: u16, device: &str, key: &OtpKey, n: u64) -> Handshake {
    let step1 = OtpClient::connect_data(device, n).unwrap();
    otp_handshake_from(from, port, device, step1, |ch| {
        OtpClient::proof(key, ch, device, n)
    })
}

/// The organisation of `device`, from its provisioning bundle.
pub fn org_of(net: &Network, device: &str) -> String {
    ProvisioningBundle::load(&net.bundle(device))
        .expect("bundle")
        .org
        .clone()
}

/// `device` logged in at the node under test (the supplier's) the way the
/// trust model allows: LMQ-OTP-1 for the supplier's own devices, SCAC with
/// the device's signing key for every other organisation's (this node holds
/// no OTP key of theirs).
pub fn login(net: &Network, device: &str) -> Client {
    if org_of(net, device) == "supplier" {
        otp_client(net, device)
    } else {
        scac_client(net, net.port(), "broker-supplier", device)
    }
}

/// `device` logged in at broker node `node` (listening on `port`) with the
/// default SCAC suite: its Ed25519 key against the node's registered one.
pub fn scac_client(net: &Network, port: u16, node: &str, device: &str) -> Client {
    let (code, client) = scac_connect(net, port, node, device);
    assert_eq!(
        code,
        Some(0),
        "{device} should connect with SCAC;\n{}",
        net.broker.log_tail()
    );
    client
}

/// A SCAC login of `device` at node `node`: the CONNACK code (`None` when
/// the broker closed the connection) and the client.
pub fn scac_connect(net: &Network, port: u16, node: &str, device: &str) -> (Option<u8>, Client) {
    let (key, _) = scac_keys(net, device);
    scac_connect_with(net, port, node, device, &key)
}

/// [`scac_connect`] claiming to be `device` with the Ed25519 key `seed`.
pub fn scac_connect_as(
    net: &Network,
    port: u16,
    node: &str,
    device: &str,
    seed: &[u8; 32],
) -> (Option<u8>, Client) {
    let key = LocalKey::Ed25519(Arc::new(SoftwareEd25519::from_seed(seed)));
    scac_connect_with(net, port, node, device, &key)
}

fn scac_connect_with(
    net: &Network,
    port: u16,
    node: &str,
    device: &str,
    key: &LocalKey,
) -> (Option<u8>, Client) {
    let node_keys =
        BrokerNodeFile::load(&net.dir.join(format!("keys/{node}.node.json"))).expect("node keys");
    let peer = PeerKey::Ed25519(node_keys.signing_public.0);
    let probe = scac_login_from(LOCAL, port, device, key, &peer, true);
    let mut client = probe.client;
    client.id = device.into();
    (probe.code, client)
}

/// What a SCAC CONNECT got.
pub struct ScacProbe {
    pub client: Client,
    pub step2: Option<Vec<u8>>,
    pub code: Option<u8>,
    pub connack_props: Option<Props>,
}

/// A default-suite SCAC login of `uid` from `from`. `genuine`: answer step
/// 2 as the real client does; otherwise (or if step 2 does not verify)
/// send 96 zero bytes as step 3, as a prober would.
pub fn scac_login_from(
    from: IpAddr,
    port: u16,
    uid: &str,
    key: &LocalKey,
    broker: &PeerKey,
    genuine: bool,
) -> ScacProbe {
    let (hs, step1) = ClientHandshake::start(Suite::Default, uid, key, broker).unwrap();
    let method = Suite::Default.method();
    let mut c = Connect::v5(uid);
    c.props.authentication_method = Some(method.into());
    c.props.authentication_data = Some(step1);
    let mut client = Client::tcp_from(from, port, V5);
    client.send(&Packet::Connect(c));
    let mut hs = Some(hs);
    let mut step2_seen = None;
    loop {
        match client.try_recv(Duration::from_secs(15)) {
            Recv::Packet(Packet::Auth {
                reason: 0x18,
                props,
            }) => {
                let step2 = props.authentication_data.unwrap_or_default();
                let own = hs.take().filter(|_| genuine).map(|h| h.on_step2(&step2));
                let step3 = match own {
                    Some(Ok((step3, _))) => step3,
                    _ => vec![0; 96],
                };
                step2_seen = Some(step2);
                client.send(&Packet::Auth {
                    reason: 0x18,
                    props: Props {
                        authentication_method: Some(method.into()),
                        authentication_data: Some(step3),
                        ..Props::default()
                    },
                });
            }
            Recv::Packet(Packet::ConnAck { code, props, .. }) => {
                return ScacProbe {
                    client,
                    step2: step2_seen,
                    code: Some(code),
                    connack_props: Some(props),
                }
            }
            Recv::Closed => {
                return ScacProbe {
                    client,
                    step2: step2_seen,
                    code: None,
                    connack_props: None,
                }
            }
            other => panic!("unexpected answer to a SCAC CONNECT: {other:?}"),
        }
    }
}

/// The device's Ed25519 key and its organisation's broker node key, from
/// its bundle.
pub fn scac_keys(net: &Network, device: &str) -> (LocalKey, PeerKey) {
    let b = ProvisioningBundle::load(&net.bundle(device)).unwrap();
    let seed: [u8; 32] = hex::decode(&b.signing_secret).unwrap().try_into().unwrap();
    let key: Arc<dyn Ed25519Signer> = Arc::new(SoftwareEd25519::from_seed(&seed));
    let node = b.brokers.iter().find(|n| n.org == "supplier").unwrap();
    (LocalKey::Ed25519(key), PeerKey::Ed25519(node.signing_key.0))
}

pub fn otp_client(net: &Network, device: &str) -> Client {
    let hs = otp_connect(net.port(), device, &net.key(device), fresh_packet_number());
    assert_eq!(
        hs.code,
        Some(0),
        "{device} should connect;\n{}",
        net.broker.log_tail()
    );
    hs.client
}

/// A 3.1.1 TOTP login of `device` with the code of the current step under
/// `key`, its audience key for the node ([`Network::totp_key`]).
pub fn totp_connect(port: u16, device: &str, key: &OtpKey, clean: bool) -> (Client, u8) {
    totp_connect_from(LOCAL, port, device, key, clean)
}

/// [`totp_connect`] from source address `from`.
pub fn totp_connect_from(
    from: IpAddr,
    port: u16,
    device: &str,
    key: &OtpKey,
    clean: bool,
) -> (Client, u8) {
    let code = totp(key, unix_secs(), TOTP_STEP, 8);
    let mut c = Connect::v3(device);
    c.clean_start = clean;
    c.username = Some(device.into());
    c.password = Some(code.into_bytes());
    let (client, ack) = Client::connect_from(from, port, c);
    (client, ack.code)
}

/// Sleeps into the next TOTP step, so a new code exists.
pub fn next_totp_step() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let step_ms = TOTP_STEP * 1000;
    let into = (now.as_millis() as u64) % step_ms;
    std::thread::sleep(Duration::from_millis(step_ms - into + 50));
}

/// Waits until `f` holds (the registry view follows the ledger by polling).
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}
