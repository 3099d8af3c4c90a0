//! The SCAC end-to-end fixture: a consortium on the broker's embedded
//! ledger, the broker in the ledger security mode, and a device speaking
//! SCAC by hand with the sans-IO client of `ledgermq-security`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::common::ledger::ledgermq;
use crate::common::{Ack, Broker, Client, Connect, Packet, Props, Publish, Recv, V5};
use alloy_primitives::hex;
use ledgermq_keystore::software::SoftwareEd25519;
use ledgermq_keystore::Ed25519Signer;
use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_security::scac::keys::InMemoryRsa;
use ledgermq_security::scac::{Channel, ClientHandshake, LocalKey, PeerKey, Suite, CRYPT_ERROR};

pub const SENSOR: &str = "sensor-1";
pub const READER: &str = "reader-1";
/// The compatibility suite's UID is exactly 8 bytes.
pub const CARD: &str = "CLIENTE1";
pub const TOPIC: &str = "plant/line1/temperature";
pub const COMPAT: &str = "SCACAuth-RSAPKCS1-2048-AES-128";

// Fixed RSA-2048 test keys (the primes of crates/security/tests/scac_common).
pub const DEVICE_RSA_P: &str = "da2efe2f6f8fcb68e847c30d9c97d199168573d00250956fd80780c23e620e176a100445d21fc8a1f44299a1729c8f5b19f10f5bbb5a2c569b909837f97746c1795e316b6dbd0ed4b60c7d604a41f35fb363322ee274d8361f6faed68f5b8e8c40f17783f178c2fe0a5e5d0a3cd26c55869c304982d68366253cf21d9c988091";
pub const DEVICE_RSA_Q: &str = "b98e2d38b769002123b5e5821167aff1cbfbe9f25f8cc7de7740cc7c6741d97a7b1012ef8be66c66b2b48c10dee3f29952f9f8db83c665d2b606cac90dd8b8d0c7794c38c59f6286dacdea1d9195d2fac385fa2b7174826f56520110d12ac32d998ef35a6f5a5bf16d79a7cb23f037357d3bd0b2bbfd2bb54ed9cb3ab6dbd485";
pub const BROKER_RSA_P: &str = "e34b58ee44d1e74afe58026246fbff5b7cea49f6981cd408c6e6f7166aa8f47a8604a686ea0898cfdfeb080c2a6bc7fd9b5d410c5883a9fc3282b61ee1c03f135e10ed463db0a85d1a6479c9c298d94d5ead949ca595d53bfd091dbf34fad903f717d09fe72025ab493c7c3c902cdfcaad9a53b75b83b9120badcafdeb96368d";
pub const BROKER_RSA_Q: &str = "ca76817f2a10efd3b59e050b2526d9f32a8aba7dd3d190bc0d57be20a3e60b9596c177d5b6c3da0fbce0be4446b2cf0a306e30c258590117272dd7171c3cb449c01e23f73f491d46778b283b7c909118015a8ec50c112018c6fd47a6fd662077b7e2f60b272f42b614fbd1b4102724361d430b6b1e02fa8862df1355ba4b8921";

pub const CONSORTIUM: &str = r#"
[[org]]
id = "acme"
name = "Acme"
admins = ["acme-admin"]
founding = true

[[broker]]
name = "acme-broker"
org = "acme"

[[topic]]
name = "plant/#"
org = "acme"

[[device]]
id = "sensor-1"
org = "acme"
rights = ["plant/#:pub,sub"]

[[device]]
id = "reader-1"
org = "acme"
rights = ["plant/#:pub,sub"]

[[device]]
id = "CLIENTE1"
org = "acme"
rights = ["plant/#:pub,sub"]
"#;

// ---------------------------------------------------------------- fixture

pub struct Net {
    pub broker: Broker,
    pub dir: PathBuf,
}

pub fn rsa_key(p: &str, q: &str) -> rsa::RsaPrivateKey {
    let n = |h: &str| rsa::BigUint::from_bytes_be(&hex::decode(h).unwrap());
    rsa::RsaPrivateKey::from_p_q(n(p), n(q), rsa::BigUint::from(65_537u32)).unwrap()
}

pub fn private_dir(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes the broker's RSA key as a key store file and the card's public
/// key where the broker looks for device RSA keys; returns the options.
pub fn compat_keys(dir: &Path) -> Vec<(String, String)> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use std::os::unix::fs::PermissionsExt;
    let keys = dir.join("scac-keys");
    private_dir(&keys, 0o700);
    let pem = rsa_key(BROKER_RSA_P, BROKER_RSA_Q)
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
    let file = keys.join("broker-rsa.pem");
    std::fs::write(&file, pem.as_bytes()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The card's key too, for `ledgermq device --device-key file:…#card`,
    // and the broker's public key for `--broker-rsa-key`.
    let card = keys.join("card.pem");
    let pem = rsa_key(DEVICE_RSA_P, DEVICE_RSA_Q)
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap();
    std::fs::write(&card, pem.as_bytes()).unwrap();
    std::fs::set_permissions(&card, std::fs::Permissions::from_mode(0o600)).unwrap();
    let broker_public = rsa_key(BROKER_RSA_P, BROKER_RSA_Q)
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    std::fs::write(dir.join("broker-rsa.pub.pem"), broker_public).unwrap();
    let devices = dir.join("rsa-devices");
    private_dir(&devices, 0o755);
    let public = rsa_key(DEVICE_RSA_P, DEVICE_RSA_Q)
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    std::fs::write(devices.join(format!("{CARD}.pem")), public).unwrap();
    vec![
        (
            "scac-suites".into(),
            format!("{},{COMPAT}", Suite::Default.method()),
        ),
        (
            "scac-rsa-broker-key".into(),
            format!("file:{}#broker-rsa", keys.display()),
        ),
        ("scac-rsa-device-keys".into(), devices.display().to_string()),
    ]
}

impl Net {
    /// The consortium above on the broker's embedded ledger, the broker in
    /// the ledger security mode with `opts`; `compat` also enables the
    /// compatibility suite with the fixed RSA keys.
    pub fn start(opts: &[(&str, &str)], compat: bool) -> Option<Net> {
        Net::start_with(opts, compat, |_| Vec::new())
    }

    /// [`Net::start`], with `extra` run in the broker's directory once the
    /// consortium is applied (the broker is not running yet); it returns
    /// more options.
    pub fn start_with(
        opts: &[(&str, &str)],
        compat: bool,
        extra: impl FnOnce(&Path) -> Vec<(String, String)>,
    ) -> Option<Net> {
        let mut all = vec![("security", "ledger"), ("ledger-poll-interval-ms", "50")];
        all.extend_from_slice(opts);
        let mut dir = PathBuf::new();
        let broker = Broker::with_setup(&all, |d| {
            dir = d.to_path_buf();
            std::fs::write(d.join("consortium.toml"), CONSORTIUM).unwrap();
            let args = [
                "admin",
                "--data-dir",
                "data",
                "apply",
                "consortium.toml",
                "--bundles",
                "bundles",
                "--keys-dir",
                "keys",
            ];
            let out = ledgermq(d, &args);
            assert!(
                out.status.success(),
                "apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = |p: &str| d.join(p).display().to_string();
            let mut o = vec![
                ("ledger-account".into(), path("keys/acme-broker.key")),
                (
                    "ledger-node-keys".into(),
                    path("keys/acme-broker.node.json"),
                ),
            ];
            if compat {
                o.extend(compat_keys(d));
            }
            o.extend(extra(d));
            o
        })?;
        Some(Net { broker, dir })
    }

    pub fn port(&self) -> u16 {
        self.broker.port
    }

    pub fn bundle(&self, device: &str) -> ProvisioningBundle {
        ProvisioningBundle::load(&self.dir.join("bundles").join(format!("{device}.json")))
            .expect("bundle")
    }

    /// The device's Ed25519 key from its provisioning bundle.
    pub fn device_key(&self, device: &str) -> LocalKey {
        let seed: [u8; 32] = hex::decode(&self.bundle(device).signing_secret)
            .unwrap()
            .try_into()
            .unwrap();
        let key: Arc<dyn Ed25519Signer> = Arc::new(SoftwareEd25519::from_seed(&seed));
        LocalKey::Ed25519(key)
    }

    /// The broker's registered Ed25519 key, as the bundle gives it.
    pub fn broker_key(&self, device: &str) -> PeerKey {
        PeerKey::Ed25519(self.bundle(device).brokers[0].signing_key.0)
    }

    /// A default-suite handshake of `device` with its bundle's keys.
    pub fn handshake(&self, device: &str, opts: Options) -> Handshake {
        handshake(
            self.port(),
            Suite::Default,
            device,
            &self.device_key(device),
            &self.broker_key(device),
            opts,
        )
    }

    pub fn connect(&self, device: &str) -> Scac {
        self.handshake(device, Options::default())
            .connected(&self.broker)
    }

    /// [`Net::connect`] from source address `from`.
    pub fn connect_from(&self, from: std::net::IpAddr, device: &str) -> Scac {
        let opts = Options {
            from: Some(from),
            ..Options::default()
        };
        self.handshake(device, opts).connected(&self.broker)
    }
}

pub fn card_key() -> LocalKey {
    let p = hex::decode(DEVICE_RSA_P).unwrap();
    let q = hex::decode(DEVICE_RSA_Q).unwrap();
    LocalKey::Rsa(Arc::new(InMemoryRsa::from_primes(&p, &q).unwrap()))
}

pub fn broker_rsa_public() -> PeerKey {
    use rsa::traits::PublicKeyParts;
    let k = rsa_key(BROKER_RSA_P, BROKER_RSA_Q);
    PeerKey::Rsa {
        n: k.n().to_bytes_be(),
        e: k.e().to_bytes_be(),
    }
}

// --------------------------------------------------------- SCAC by hand

/// Changes a handshake step in flight.
pub type Tamper = Box<dyn Fn(Vec<u8>) -> Vec<u8>>;

#[derive(Default)]
pub struct Options {
    /// Connect from this loopback source address [default: 127.0.0.1].
    pub from: Option<std::net::IpAddr>,
    /// Persistent session (expiry 300 s, clean start off).
    pub persistent: bool,
    /// Sent instead of our own step 1.
    pub step1: Option<Vec<u8>>,
    /// Applied to step 3 before it is sent.
    pub tamper3: Option<Tamper>,
    /// Sent instead of our own step 3, without checking step 2.
    pub step3: Option<Vec<u8>>,
    /// Applied to step 2 as received.
    pub tamper2: Option<Tamper>,
}

/// What happened to a SCAC CONNECT.
pub struct Handshake {
    pub client: Client,
    /// CONNACK reason code; `None` if there was none.
    pub code: Option<u8>,
    pub session_present: bool,
    pub connack_method: Option<String>,
    pub step1: Vec<u8>,
    pub step3: Option<Vec<u8>>,
    pub channel: Option<Channel>,
    /// The client refused step 2 (and said "Auth Error").
    pub refused_step2: bool,
}

impl Handshake {
    pub fn connected(self, broker: &Broker) -> Scac {
        assert_eq!(
            self.code,
            Some(0),
            "SCAC connect failed;\n{}",
            broker.log_tail()
        );
        Scac {
            client: self.client,
            channel: self.channel.expect("channel"),
        }
    }
}

pub fn handshake(
    port: u16,
    suite: Suite,
    uid: &str,
    key: &LocalKey,
    broker: &PeerKey,
    opts: Options,
) -> Handshake {
    let (client_hs, own_step1) = ClientHandshake::start(suite, uid, key, broker).unwrap();
    let step1 = opts.step1.clone().unwrap_or(own_step1);
    let method = suite.method();
    let mut c = Connect::v5(uid);
    c.props.authentication_method = Some(method.into());
    c.props.authentication_data = Some(step1.clone());
    if opts.persistent {
        c.clean_start = false;
        c.props.session_expiry_interval = Some(300);
    }
    let from = opts.from.unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let mut client = Client::tcp_from(from, port, V5);
    client.id = uid.into();
    client.send(&Packet::Connect(c));
    let mut hs = Handshake {
        client,
        code: None,
        session_present: false,
        connack_method: None,
        step1,
        step3: None,
        channel: None,
        refused_step2: false,
    };
    let mut client_hs = Some(client_hs);
    loop {
        match hs.client.try_recv(Duration::from_secs(15)) {
            Recv::Packet(Packet::Auth {
                reason: 0x18,
                props,
            }) => {
                assert_eq!(props.authentication_method.as_deref(), Some(method));
                let mut step2 = props.authentication_data.expect("step 2");
                if let Some(t) = &opts.tamper2 {
                    step2 = t(step2);
                }
                if let Some(step3) = &opts.step3 {
                    // An attacker replaying a captured step 3 checks nothing.
                    hs.step3 = Some(step3.clone());
                    hs.client.send(&Packet::Auth {
                        reason: 0x18,
                        props: Props {
                            authentication_method: Some(method.into()),
                            authentication_data: Some(step3.clone()),
                            ..Props::default()
                        },
                    });
                    continue;
                }
                let state = client_hs.take().expect("one step 2");
                let (step3, channel) = match state.on_step2(&step2) {
                    Ok(done) => done,
                    Err(_) => {
                        // The paper's client answer to a bad step 2.
                        hs.refused_step2 = true;
                        hs.client.send(&Packet::Disconnect {
                            reason: 0x80,
                            props: Props {
                                reason_string: Some("Auth Error".into()),
                                ..Props::default()
                            },
                        });
                        return hs;
                    }
                };
                let mut step3 = step3;
                if let Some(t) = &opts.tamper3 {
                    step3 = t(step3);
                }
                hs.step3 = Some(step3.clone());
                hs.channel = Some(channel);
                hs.client.send(&Packet::Auth {
                    reason: 0x18,
                    props: Props {
                        authentication_method: Some(method.into()),
                        authentication_data: Some(step3),
                        ..Props::default()
                    },
                });
            }
            Recv::Packet(Packet::ConnAck {
                code,
                session_present,
                props,
            }) => {
                hs.code = Some(code);
                hs.session_present = session_present;
                hs.connack_method = props.authentication_method;
                return hs;
            }
            Recv::Closed => return hs,
            other => panic!("unexpected answer to a SCAC CONNECT: {other:?}"),
        }
    }
}

/// A connected SCAC device and its payload keys.
pub struct Scac {
    pub client: Client,
    pub channel: Channel,
}

impl Scac {
    /// Sends a sealed QoS 2 PUBLISH; returns the PUBREC's reason code.
    pub fn publish_sealed(&mut self, topic: &str, data: &[u8]) -> (u16, Vec<u8>, u8) {
        let pkid = self.client.pkid();
        let payload = self.channel.seal(topic, pkid, data).unwrap();
        let mut p = Publish::new(topic, &payload, 2);
        p.pkid = pkid;
        self.client.send(&Packet::Publish(p));
        let rec = self.client.recv_matching(
            "PUBREC",
            |p| matches!(p, Packet::PubRec(a) if a.pkid == pkid),
        );
        let Packet::PubRec(rec) = rec else {
            unreachable!()
        };
        (pkid, payload, rec.reason)
    }

    /// PUBREL with the next publisher key; returns the PUBCOMP's code.
    pub fn release(&mut self, pkid: u16) -> u8 {
        let update = self.channel.key_update(pkid).unwrap();
        let mut rel = Ack::new(pkid);
        rel.props.user_properties = vec![(self.channel.tx_key_property().into(), update)];
        self.client.send(&Packet::PubRel(rel));
        let comp = self.client.recv_matching(
            "PUBCOMP",
            |p| matches!(p, Packet::PubComp(a) if a.pkid == pkid),
        );
        let Packet::PubComp(comp) = comp else {
            unreachable!()
        };
        comp.reason
    }

    /// A whole protected QoS 2 publication.
    pub fn publish(&mut self, topic: &str, data: &[u8]) {
        let (pkid, _, rec) = self.publish_sealed(topic, data);
        assert!(rec < 0x80, "PUBREC {rec:#04x}");
        assert_eq!(self.release(pkid), 0);
    }

    /// Receives a protected QoS 2 PUBLISH up to its PUBREL (not answered).
    pub fn receive_until_pubrel(&mut self) -> (Publish, Vec<u8>, Ack) {
        let p = self
            .client
            .recv_matching("PUBLISH", |p| matches!(p, Packet::Publish(_)));
        let Packet::Publish(p) = p else {
            unreachable!()
        };
        assert_eq!(p.qos, 2);
        let data = self.channel.open(&p.topic, p.pkid, &p.payload).unwrap();
        self.client.send(&Packet::PubRec(Ack::new(p.pkid)));
        let rel = self.client.recv_matching(
            "PUBREL",
            |x| matches!(x, Packet::PubRel(a) if a.pkid == p.pkid),
        );
        let Packet::PubRel(rel) = rel else {
            unreachable!()
        };
        (p, data, rel)
    }

    /// Checks the broker's key update and completes.
    pub fn complete(&mut self, rel: &Ack) {
        let name = self.channel.rx_key_property();
        let (_, value) = rel
            .props
            .user_properties
            .iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("PUBREL without {name}: {rel:?}"));
        self.channel.accept_key_update(rel.pkid, value).unwrap();
        self.client.send(&Packet::PubComp(Ack::new(rel.pkid)));
    }

    /// Receives one protected message completely; returns its data.
    pub fn receive(&mut self) -> Vec<u8> {
        let (_, data, rel) = self.receive_until_pubrel();
        self.complete(&rel);
        data
    }

    pub fn subscribe(&mut self, filter: &str) {
        assert_eq!(self.client.subscribe(filter, 2), 2);
    }

    /// Expects the broker to close with DISCONNECT 0x80 "Crypt Error".
    pub fn expect_crypt_error(mut self) {
        let packets = self.client.expect_closed();
        let found = packets.iter().any(|p| {
            matches!(p, Packet::Disconnect { reason: 0x80, props }
                if props.reason_string.as_deref() == Some(CRYPT_ERROR))
        });
        assert!(found, "no DISCONNECT 0x80 \"Crypt Error\" in {packets:?}");
    }
}

pub fn flip(at: usize) -> Tamper {
    Box::new(move |mut b: Vec<u8>| {
        let i = at.min(b.len() - 1);
        b[i] ^= 0x01;
        b
    })
}
