//! SCAC in the benches: the devices' keys and the broker's public key
//! (`--suite`, `--scac-device-key`, `--scac-broker-key`,
//! `--scac-broker-rsa-pem`), the SCAC login `ledgermq bench auth --method
//! scac` loops over, and `ledgermq bench scac-messages`: protected QoS 2
//! messages per second against plain QoS 2 on the same broker.
//!
//! `scac-messages` runs `--pairs` publisher/subscriber pairs of devices, each
//! publisher sending QoS 2 messages one at a time (PUBLISH → PUBREC →
//! PUBREL → PUBCOMP, as the paper's card does) to its own subscriber for
//! `--duration` seconds. With `--protect scac` both log in with SCAC and
//! every payload is sealed and opened under rolling keys, every PUBREL
//! carries `Np` / `Ns`; with `--protect none` the same devices log in with
//! `LMQ-OTP-1` and the same loop runs with payloads as they are.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use ledgermq_keystore::software::SoftwareEd25519;
use ledgermq_keystore::{Ed25519Signer, KeyHandle, KeyRef};
use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_proto::{Packet, Properties, PubResp, Publish, QoS, ReasonCode, Subscribe};
use ledgermq_security::scac::{Channel, LocalKey, PeerKey, Suite};
use tokio::net::TcpStream;

use super::auth::{next_packet_number, Conn, Device, LOGIN_TIMEOUT};
use super::join_all;
use super::stats::Histogram;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteArg {
    /// SCACAuth-Ed25519-256-ChaCha20Poly1305-256.
    Default,
    /// SCACAuth-RSAPKCS1-2048-AES-128 (8-byte device ids, RSA keys).
    Compat,
}

impl SuiteArg {
    pub fn suite(self) -> Suite {
        match self {
            SuiteArg::Default => Suite::Default,
            SuiteArg::Compat => Suite::RsaCompat,
        }
    }
}

/// Where the SCAC keys come from.
#[derive(Debug, Clone, clap::Args)]
pub struct ScacKeyArgs {
    /// SCAC suite.
    #[arg(long, value_enum, default_value_t = SuiteArg::Default)]
    pub suite: SuiteArg,
    /// One private key every device uses (file:DIR#NAME or pkcs11:…);
    /// default: each bundle's Ed25519 key (default suite only).
    #[arg(long, value_name = "KEYREF")]
    pub scac_device_key: Option<String>,
    /// The broker's Ed25519 public key, hex; default: from the bundle.
    #[arg(long, value_name = "HEX")]
    pub scac_broker_key: Option<alloy_primitives::B256>,
    /// Compatibility suite: the broker's RSA public key (PEM).
    #[arg(long, value_name = "FILE")]
    pub scac_broker_rsa_pem: Option<PathBuf>,
}

/// A device as SCAC sees it.
pub struct ScacDevice {
    pub id: String,
    pub key: LocalKey,
    pub broker: PeerKey,
    pub suite: Suite,
}

/// The SCAC identities of the bundles `dir/<prefix>*.json`.
pub fn load_scac_devices(
    dir: &std::path::Path,
    prefix: &str,
    keys: &ScacKeyArgs,
) -> Result<Vec<ScacDevice>> {
    let suite = keys.suite.suite();
    let shared_key = match &keys.scac_device_key {
        Some(reference) => {
            let key_ref = KeyRef::parse(reference).context("--scac-device-key")?;
            let handle = key_ref
                .open()
                .with_context(|| format!("cannot open {key_ref}"))?;
            Some(match (suite, handle) {
                (Suite::Default, KeyHandle::Ed25519(k)) => LocalKey::Ed25519(k),
                (Suite::RsaCompat, KeyHandle::Rsa(k)) => LocalKey::Rsa(k),
                (_, other) => bail!(
                    "--scac-device-key is a {} key, wrong for {suite}",
                    other.kind()
                ),
            })
        }
        None if suite == Suite::RsaCompat => {
            bail!("the compatibility suite needs --scac-device-key (an RSA-2048 key)")
        }
        None => None,
    };
    let shared_broker = match (suite, keys.scac_broker_key, &keys.scac_broker_rsa_pem) {
        (Suite::Default, Some(k), _) => Some(PeerKey::Ed25519(k.0)),
        (Suite::RsaCompat, _, Some(pem)) => Some(rsa_public_pem(pem)?),
        (Suite::RsaCompat, _, None) => {
            bail!("the compatibility suite needs --scac-broker-rsa-pem")
        }
        (Suite::Default, None, _) => None,
    };
    let mut paths = super::auth::bundle_paths(dir, prefix)?;
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let bundle = ProvisioningBundle::load(path)
                .with_context(|| format!("cannot load the bundle {}", path.display()))?;
            let key = match &shared_key {
                Some(k) => k.clone(),
                None => {
                    let seed: [u8; 32] = alloy_primitives::hex::decode(&bundle.signing_secret)
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(|| anyhow!("bad signing secret in {}", path.display()))?;
                    let signer: Arc<dyn Ed25519Signer> =
                        Arc::new(SoftwareEd25519::from_seed(&seed));
                    LocalKey::Ed25519(signer)
                }
            };
            let broker = match &shared_broker {
                Some(b) => b.clone(),
                None => {
                    let b = bundle
                        .brokers
                        .iter()
                        .find(|b| b.org == bundle.org)
                        .or_else(|| bundle.brokers.first())
                        .ok_or_else(|| anyhow!("{} names no broker", path.display()))?;
                    PeerKey::Ed25519(b.signing_key.0)
                }
            };
            suite
                .check_uid(bundle.device_id.as_bytes())
                .map_err(|e| anyhow!("device {:?}: {e}", bundle.device_id))?;
            Ok(ScacDevice {
                id: bundle.device_id.clone(),
                key,
                broker,
                suite,
            })
        })
        .collect()
}

fn rsa_public_pem(path: &std::path::Path) -> Result<PeerKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    PeerKey::rsa_from_pem(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

// ------------------------------------------------------------ messages

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protect {
    /// SCAC login, sealed payloads, key updates in every PUBREL.
    Scac,
    /// LMQ-OTP-1 login, payloads as they are (the baseline).
    None,
}

#[derive(Debug, Clone, clap::Args)]
pub struct MessagesArgs {
    /// Broker host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker MQTT port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Directory of the devices' provisioning bundles.
    #[arg(long, value_name = "DIR")]
    pub bundles: PathBuf,
    /// Only bundles whose file name starts with this (2 × --pairs needed).
    #[arg(long, default_value = super::auth::DEFAULT_PREFIX)]
    pub prefix: String,
    /// scac: protected payloads; none: the same loop with LMQ-OTP-1 logins.
    #[arg(long, value_enum, default_value_t = Protect::Scac)]
    pub protect: Protect,
    /// Publisher/subscriber pairs running at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pairs: u32,
    /// Payload bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[command(flatten)]
    pub keys: ScacKeyArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One side of a pair: its connection and, with SCAC, its keys.
struct Side {
    conn: Conn,
    stream: TcpStream,
    channel: Option<Channel>,
}

pub fn run_messages(args: MessagesArgs) -> Result<()> {
    if !(args.duration > 0.0 && args.duration <= 86_400.0) {
        bail!("--duration must be between 0 and 86400 seconds");
    }
    let pairs = args.pairs as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let outcome = runtime.block_on(async {
        let addr = tokio::net::lookup_host((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("cannot resolve {}", args.host))?
            .next()
            .ok_or_else(|| anyhow!("{} has no address", args.host))?;
        let mut sides = Vec::with_capacity(2 * pairs);
        match args.protect {
            Protect::Scac => {
                let devices = load_scac_devices(&args.bundles, &args.prefix, &args.keys)?;
                if devices.len() < 2 * pairs {
                    bail!(
                        "{} pairs need {} devices, found {}",
                        pairs,
                        2 * pairs,
                        devices.len()
                    );
                }
                for d in devices.into_iter().take(2 * pairs) {
                    let mut conn = Conn::new(ledgermq_proto::Protocol::V5);
                    let (stream, channel) = conn.scac_login(addr, &d).await?;
                    sides.push(Side {
                        conn,
                        stream,
                        channel: Some(channel),
                    });
                }
            }
            Protect::None => {
                let devices = super::auth::load_devices(&args.bundles, &args.prefix)?;
                if devices.len() < 2 * pairs {
                    bail!(
                        "{} pairs need {} devices, found {}",
                        pairs,
                        2 * pairs,
                        devices.len()
                    );
                }
                for d in devices.iter().take(2 * pairs) {
                    sides.push(otp_side(addr, d).await?);
                }
            }
        }
        let run = super::run_id();
        let payload = Bytes::from(vec![b'x'; args.payload]);
        let stop_at = Instant::now() + Duration::from_secs_f64(args.duration);
        let mut tasks = Vec::new();
        let mut sides = sides.into_iter();
        for i in 0..pairs {
            let (Some(mut publisher), Some(mut subscriber)) = (sides.next(), sides.next()) else {
                break;
            };
            let topic = format!("bench/{run}/{i}");
            subscribe(&mut subscriber, &topic).await?;
            let payload = payload.clone();
            tasks.push(tokio::spawn(async move {
                pair(&mut publisher, &mut subscriber, &topic, payload, stop_at).await
            }));
        }
        let started = Instant::now();
        let reports = join_all(tasks).await?;
        let elapsed = started.elapsed();
        let mut latency = Histogram::default();
        let mut messages = 0u64;
        for (n, h) in reports {
            messages += n;
            latency.merge(&h);
        }
        Ok::<_, anyhow::Error>((messages, elapsed, latency))
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
    let (messages, elapsed, latency) = outcome?;
    let rate = messages as f64 / elapsed.as_secs_f64();
    let [p50, _, p99, _] = latency.summary_us().unwrap_or_default();
    let protect = match args.protect {
        Protect::Scac => args.keys.suite.suite().method(),
        Protect::None => "none (LMQ-OTP-1 login)",
    };
    if args.json {
        println!(
            "{{\"protect\":{protect:?},\"pairs\":{},\"payload\":{},\"messages\":{messages},\"elapsed_s\":{:.3},\"rate\":{rate:.1},\"latency_us\":{{\"p50\":{:.1},\"p99\":{:.1}}}}}",
            args.pairs,
            args.payload,
            elapsed.as_secs_f64(),
            p50,
            p99
        );
    } else {
        println!(
            "ledgermq bench scac-messages → {}:{}  protection {protect}  {} pairs, QoS 2 one at a time, {} B",
            args.host, args.port, args.pairs, args.payload
        );
        println!(
            "  messages      {messages} in {:.2} s ({rate:.0}/s)",
            elapsed.as_secs_f64()
        );
        println!(
            "  latency       p50 {}  p99 {}  (PUBLISH to the subscriber's data)",
            super::human_us(p50),
            super::human_us(p99)
        );
    }
    Ok(())
}

async fn otp_side(addr: SocketAddr, device: &Device) -> Result<Side> {
    let mut conn = Conn::new(ledgermq_proto::Protocol::V5);
    let stream = conn.otp_login(addr, device, next_packet_number(0)).await?;
    Ok(Side {
        conn,
        stream,
        channel: None,
    })
}

async fn subscribe(side: &mut Side, topic: &str) -> Result<()> {
    let sub = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![(
            topic.to_owned(),
            ledgermq_proto::SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                ..Default::default()
            },
        )],
        properties: Properties::default(),
    });
    side.conn.send(&mut side.stream, &sub).await?;
    match side.conn.receive(&mut side.stream, deadline()).await? {
        Packet::SubAck(ack) if ack.reasons.first() == Some(&ReasonCode(2)) => Ok(()),
        Packet::SubAck(ack) => bail!("SUBACK {:?} for {topic}", ack.reasons),
        other => bail!("{} instead of SUBACK", other.name()),
    }
}

fn deadline() -> Instant {
    Instant::now() + LOGIN_TIMEOUT
}

fn resp(packet_id: u16, user_properties: Vec<(String, String)>) -> PubResp {
    PubResp {
        packet_id,
        reason: ReasonCode::SUCCESS,
        properties: Properties {
            user_properties,
            ..Default::default()
        },
    }
}

/// The publisher sends one QoS 2 message at a time until `stop_at`; the
/// subscriber takes each through its own QoS 2 exchange with the broker.
async fn pair(
    publisher: &mut Side,
    subscriber: &mut Side,
    topic: &str,
    payload: Bytes,
    stop_at: Instant,
) -> Result<(u64, Histogram)> {
    let mut latency = Histogram::default();
    let mut delivered = 0u64;
    let mut packet_id: u16 = 0;
    while Instant::now() < stop_at {
        packet_id = packet_id % u16::MAX + 1;
        let started = Instant::now();
        // Publisher → broker.
        let body = match &mut publisher.channel {
            Some(c) => Bytes::from(c.seal(topic, packet_id, &payload)?),
            None => payload.clone(),
        };
        let publish = Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: topic.to_owned(),
            packet_id,
            payload: body,
            ..Publish::default()
        });
        publisher.conn.send(&mut publisher.stream, &publish).await?;
        expect(publisher, "PUBREC").await?;
        let update = match &mut publisher.channel {
            Some(c) => vec![(c.tx_key_property().to_owned(), c.key_update(packet_id)?)],
            None => Vec::new(),
        };
        let rel = Packet::PubRel(resp(packet_id, update));
        publisher.conn.send(&mut publisher.stream, &rel).await?;
        expect(publisher, "PUBCOMP").await?;
        // Broker → subscriber.
        let p = match subscriber
            .conn
            .receive(&mut subscriber.stream, deadline())
            .await?
        {
            Packet::Publish(p) => p,
            other => bail!("subscriber: {} instead of PUBLISH", other.name()),
        };
        let data = match &mut subscriber.channel {
            Some(c) => Bytes::from(c.open(&p.topic, p.packet_id, &p.payload)?),
            None => p.payload.clone(),
        };
        if data != payload {
            bail!("subscriber: the data differs from what was published");
        }
        latency.record(started.elapsed().as_nanos() as u64);
        let rec = Packet::PubRec(resp(p.packet_id, Vec::new()));
        subscriber.conn.send(&mut subscriber.stream, &rec).await?;
        match subscriber
            .conn
            .receive(&mut subscriber.stream, deadline())
            .await?
        {
            Packet::PubRel(rel) => {
                if let Some(c) = &mut subscriber.channel {
                    let name = c.rx_key_property();
                    let value = rel
                        .properties
                        .user_properties
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| anyhow!("PUBREL without {name}"))?;
                    c.accept_key_update(rel.packet_id, &value)?;
                }
                let comp = Packet::PubComp(resp(rel.packet_id, Vec::new()));
                subscriber.conn.send(&mut subscriber.stream, &comp).await?;
            }
            other => bail!("subscriber: {} instead of PUBREL", other.name()),
        }
        delivered += 1;
    }
    Ok((delivered, latency))
}

async fn expect(side: &mut Side, what: &str) -> Result<()> {
    let packet = side.conn.receive(&mut side.stream, deadline()).await?;
    let (name, ack) = match &packet {
        Packet::PubRec(a) => ("PUBREC", a),
        Packet::PubComp(a) => ("PUBCOMP", a),
        other => bail!("publisher: {} instead of {what}", other.name()),
    };
    if name != what || ack.reason.is_error() {
        bail!("publisher: {name} {} instead of {what}", ack.reason);
    }
    Ok(())
}
