//! SCAC mutual authentication and rolling payload keys end to end: the real
//! `ledgermq` binary in the ledger security mode (embedded ledger), devices
//! registered with the real admin CLI, and a device speaking SCAC on a real
//! socket with the sans-IO client of `ledgermq-security` — so every byte it
//! sends can be altered, replayed or withheld.

mod common;
mod scac_common;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::hex;
use common::{Ack, Packet, Props, Publish};
use ledgermq_keystore::software::SoftwareEd25519;
use ledgermq_keystore::Ed25519Signer;
use ledgermq_security::scac::keys::InMemoryRsa;
use ledgermq_security::scac::{LocalKey, Suite};
use scac_common::*;

// ---------------------------------------------------------------- tests

/// Both sides prove their keys; QoS 2 payloads are sealed device → broker
/// and broker → device under keys that change with every message, and the
/// broker routes the plaintext; QoS 0/1 pass as they are.
#[test]
fn default_suite_authenticates_both_sides_and_rolls_payload_keys() {
    let Some(net) = Net::start(&[], false) else {
        return;
    };
    let mut reader = net.connect(READER);
    reader.subscribe("plant/#");
    let hs = net.handshake(SENSOR, Options::default());
    assert_eq!(
        hs.connack_method.as_deref(),
        Some(Suite::Default.method()),
        "CONNACK names the method"
    );
    let mut sensor = hs.connected(&net.broker);
    for i in 0..4 {
        let reading = format!("21.{i}");
        sensor.publish(TOPIC, reading.as_bytes());
        assert_eq!(reader.receive(), reading.as_bytes());
    }
    // Four key updates in each direction.
    assert_eq!(sensor.channel.epochs().tx, 4);
    assert_eq!(reader.channel.epochs().rx, 4);
    // The reader publishes too: its own keys, independent of the sensor's.
    reader.publish("plant/line1/ack", b"seen");
    assert_eq!(reader.receive(), b"seen");
    // QoS 1 is not protected (docs/scac.md).
    assert_eq!(sensor.client.publish(TOPIC, b"plain", 1, false), 0);
    let p = reader.client.recv_publish_ack();
    assert_eq!((p.qos, p.payload.as_slice()), (1, &b"plain"[..]));
}

/// Spoofing: a device key other than the registered one gets a decoy step
/// 2 (the broker does not tell whether it knows the device or the key),
/// which the impostor cannot verify; walking away counts as a failure and
/// locks the impostor's *source* out of SCAC for `scac_lockout` seconds —
/// even with the right key — while the genuine device elsewhere, and
/// anyone else, are not locked out by someone naming its UID.
#[test]
fn wrong_device_key_is_refused_and_locks_its_source_out() {
    let Some(net) = Net::start(&[("scac-lockout", "2")], false) else {
        return;
    };
    let impostor: Arc<dyn Ed25519Signer> = Arc::new(SoftwareEd25519::from_seed(&[7; 32]));
    let attacker: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut hs = handshake(
        net.port(),
        Suite::Default,
        SENSOR,
        &LocalKey::Ed25519(impostor),
        &net.broker_key(SENSOR),
        Options {
            from: Some(attacker),
            ..Options::default()
        },
    );
    assert!(hs.refused_step2, "a decoy step 2 for a forged step 1");
    assert_eq!(hs.code, None);
    hs.client.expect_closed();
    let locked = net.handshake(
        SENSOR,
        Options {
            from: Some(attacker),
            ..Options::default()
        },
    );
    assert_eq!(locked.code, Some(0x87), "the source is locked out");
    assert!(locked.step3.is_none(), "refused at step 1");
    // The genuine device, from its own address, and other devices connect.
    net.connect(SENSOR);
    net.connect(READER);
    std::thread::sleep(Duration::from_millis(2_500));
    net.connect_from(attacker, SENSOR);
}

/// Man in the middle: any altered byte of step 3 is refused with 0x87; an
/// altered step 2 is refused by the device ("Auth Error"), and the broker
/// lets it go without counting a failure.
#[test]
fn altered_handshake_steps_are_refused() {
    let opts = [
        ("scac-lockout", "0"),
        ("auth-failure-limit", "0"),
        ("auth-failure-delay-max-ms", "0"),
    ];
    let Some(net) = Net::start(&opts, false) else {
        return;
    };
    for at in [0, 31, 63, 64, 95] {
        let hs = net.handshake(
            SENSOR,
            Options {
                tamper3: Some(flip(at)),
                ..Options::default()
            },
        );
        assert_eq!(hs.code, Some(0x87), "step 3 altered at byte {at}");
    }
    for at in [0, 40, 100, 127] {
        let hs = net.handshake(
            SENSOR,
            Options {
                tamper2: Some(flip(at)),
                ..Options::default()
            },
        );
        assert!(hs.refused_step2, "step 2 altered at byte {at} was accepted");
        let mut client = hs.client;
        client.expect_closed();
    }
    net.connect(SENSOR);
}

/// Replay: a captured step 1 gets a fresh step 2 that the attacker cannot
/// answer, and a captured step 3 does not answer it (0x87).
#[test]
fn replayed_steps_are_refused() {
    let Some(net) = Net::start(&[("scac-lockout", "0")], false) else {
        return;
    };
    let first = net.handshake(SENSOR, Options::default());
    assert_eq!(first.code, Some(0));
    let (step1, step3) = (first.step1.clone(), first.step3.clone().unwrap());
    first.client.disconnect();
    let replay = net.handshake(
        SENSOR,
        Options {
            step1: Some(step1),
            step3: Some(step3),
            ..Options::default()
        },
    );
    assert_eq!(replay.code, Some(0x87));
}

/// A captured protected PUBLISH replayed on a new connection, a payload
/// sealed for another device's connection, and a PUBREL without its key
/// update each end the connection with DISCONNECT 0x80 "Crypt Error".
#[test]
fn replayed_misdirected_or_unkeyed_payloads_are_crypt_errors() {
    let Some(net) = Net::start(&[], false) else {
        return;
    };
    let mut sensor = net.connect(SENSOR);
    let (pkid, captured, rec) = sensor.publish_sealed(TOPIC, b"21.5");
    assert!(rec < 0x80);
    assert_eq!(sensor.release(pkid), 0);
    sensor.client.disconnect();

    let mut again = net.connect(SENSOR);
    let mut p = Publish::new(TOPIC, &captured, 2);
    p.pkid = pkid;
    again.client.send(&Packet::Publish(p));
    again.expect_crypt_error();

    // Sealed by the sensor's connection, sent on the reader's.
    let mut sensor = net.connect(SENSOR);
    let mut reader = net.connect(READER);
    let foreign = sensor.channel.seal(TOPIC, 7, b"forged").unwrap();
    let mut p = Publish::new(TOPIC, &foreign, 2);
    p.pkid = 7;
    reader.client.send(&Packet::Publish(p));
    reader.expect_crypt_error();

    // A PUBREL without Np.
    let (pkid, _, _) = sensor.publish_sealed(TOPIC, b"21.6");
    sensor.client.send(&Packet::PubRel(Ack::new(pkid)));
    sensor.expect_crypt_error();
}

/// A PUBREL lost with its connection, in both directions: the next
/// connection runs a new handshake, the PUBREL is sent again with a key
/// update made under the new keys, and both sides stay in step.
#[test]
fn a_lost_pubrel_is_resent_under_the_new_keys_in_both_directions() {
    let Some(net) = Net::start(&[], false) else {
        return;
    };
    let persistent = |device: &str| {
        net.handshake(
            device,
            Options {
                persistent: true,
                ..Options::default()
            },
        )
    };
    let mut reader = persistent(READER).connected(&net.broker);
    reader.subscribe("plant/#");

    // Device → broker: PUBREC received, PUBREL never sent.
    let mut sensor = persistent(SENSOR).connected(&net.broker);
    let (pkid, _, rec) = sensor.publish_sealed(TOPIC, b"first");
    assert!(rec < 0x80);
    sensor.client.drop_connection();
    let hs = persistent(SENSOR);
    assert!(hs.session_present);
    let mut sensor = hs.connected(&net.broker);
    assert_eq!(sensor.release(pkid), 0, "PUBREL of the lost exchange");

    // Broker → device: the reader takes the PUBLISH and PUBREL, then its
    // connection dies before it can use the PUBREL's Ns.
    let (p, data, _lost_rel) = reader.receive_until_pubrel();
    assert_eq!(data, b"first");
    reader.client.drop_connection();
    let hs = persistent(READER);
    assert!(hs.session_present);
    let mut reader = hs.connected(&net.broker);
    let rel = reader.client.recv_matching(
        "the PUBREL again",
        |x| matches!(x, Packet::PubRel(a) if a.pkid == p.pkid),
    );
    let Packet::PubRel(rel) = rel else {
        unreachable!()
    };
    reader.complete(&rel);

    // Both directions carry on under their keys.
    sensor.publish(TOPIC, b"second");
    assert_eq!(reader.receive(), b"second");
    assert_eq!(sensor.channel.epochs().tx, 2);
    assert_eq!(reader.channel.epochs().rx, 2);
}

/// The compatibility suite is off by default (0x8C); enabled, the paper's
/// RSA/AES card protocol authenticates and protects both directions.
#[test]
fn compatibility_suite_is_off_by_default_and_works_when_enabled() {
    let Some(net) = Net::start(&[], false) else {
        return;
    };
    let hs = handshake(
        net.port(),
        Suite::RsaCompat,
        CARD,
        &card_key(),
        &broker_rsa_public(),
        Options::default(),
    );
    assert_eq!(hs.code, Some(0x8C), "{COMPAT} must be off by default");
    drop(net);

    let Some(net) = Net::start(&[], true) else {
        return;
    };
    let hs = handshake(
        net.port(),
        Suite::RsaCompat,
        CARD,
        &card_key(),
        &broker_rsa_public(),
        Options::default(),
    );
    let mut card = hs.connected(&net.broker);
    card.subscribe("plant/#");
    for reading in ["19.5", "19.7", "20.1"] {
        card.publish(TOPIC, reading.as_bytes());
        assert_eq!(card.receive(), reading.as_bytes());
    }
    // The default suite keeps working next to it.
    let mut reader = net.connect(READER);
    reader.subscribe("plant/#");
    card.publish(TOPIC, b"20.3");
    assert_eq!(card.receive(), b"20.3");
    assert_eq!(reader.receive(), b"20.3");
    // A wrong card key gets a decoy step 2 the card cannot verify.
    let other = InMemoryRsa::from_primes(
        &hex::decode(BROKER_RSA_P).unwrap(),
        &hex::decode(BROKER_RSA_Q).unwrap(),
    )
    .unwrap();
    let hs = handshake(
        net.port(),
        Suite::RsaCompat,
        CARD,
        &LocalKey::Rsa(Arc::new(other)),
        &broker_rsa_public(),
        Options::default(),
    );
    assert!(hs.refused_step2, "the decoy step 2 does not verify");
}

/// Re-authentication would need new payload keys mid-stream: refused.
#[test]
fn reauthentication_is_refused_on_a_protected_connection() {
    let Some(net) = Net::start(&[], false) else {
        return;
    };
    let mut sensor = net.connect(SENSOR);
    sensor.client.send(&Packet::Auth {
        reason: 0x19,
        props: Props {
            authentication_method: Some(Suite::Default.method().into()),
            authentication_data: Some(vec![0; 8]),
            ..Props::default()
        },
    });
    sensor.client.expect_disconnect(&[0x8C]);
}

/// A device owner drives both suites from a shell with `ledgermq device
/// --auth scac`: connect, a QoS 2 subscriber and publisher, refusals.
#[test]
fn device_cli_drives_both_suites() {
    let Some(net) = Net::start(&[], true) else {
        return;
    };
    let broker = format!("127.0.0.1:{}", net.port());
    let device = |bundle: &str, args: &[&str]| -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ledgermq"));
        cmd.current_dir(&net.dir)
            .args(["device", "--bundle", &format!("bundles/{bundle}.json")])
            .args(["--broker", &broker, "--auth", "scac"])
            .args(args);
        cmd
    };
    let run = |bundle: &str, args: &[&str]| device(bundle, args).output().unwrap();
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        ok(&run(SENSOR, &["connect"])).trim(),
        format!("CONNECTED {SENSOR}")
    );

    let mut sub = device(
        READER,
        &["sub", "--topic", "plant/#", "--qos", "2", "--count", "1"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        ok(&run(
            SENSOR,
            &["pub", "--topic", TOPIC, "--message", "23.5", "--qos", "2"],
        ));
        if sub.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the subscriber got nothing"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = sub.wait_with_output().unwrap();
    assert_eq!(ok(&out), "23.5\n");

    // The compatibility suite: the card's RSA key from a file key store.
    let card_key = format!("file:{}#card", net.dir.join("scac-keys").display());
    let compat = [
        "--scac-suite",
        COMPAT,
        "--device-key",
        &card_key,
        "--broker-rsa-key",
        "broker-rsa.pub.pem",
    ];
    let mut args = compat.to_vec();
    args.extend(["pub", "--topic", TOPIC, "--message", "23.6", "--qos", "2"]);
    ok(&run(CARD, &args));

    // A device key that is not the registered one: refused with 0x87.
    let mut args = compat.to_vec();
    args[3] = "file:/nonexistent#card";
    args.push("connect");
    let out = run(CARD, &args);
    assert!(!out.status.success());
    let other = std::process::Command::new(env!("CARGO_BIN_EXE_ledgermq"))
        .current_dir(&net.dir)
        .args(["keys", "generate", "--kind", "ed25519", "--key"])
        .arg(format!(
            "file:{}#other",
            net.dir.join("other-keys").display()
        ))
        .output()
        .unwrap();
    ok(&other);
    let other_key = format!("file:{}#other", net.dir.join("other-keys").display());
    // The broker answers a decoy step 2 (it does not tell whether it knows
    // the device or the key): the device refuses it.
    let out = run(SENSOR, &["--device-key", &other_key, "connect"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Auth Error"), "{err}");
    assert!(
        err.contains("does not know this device or this key"),
        "{err}"
    );
}
