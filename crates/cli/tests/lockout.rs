//! Nobody can lock out somebody else (DESIGN.md §3, trust model), end to
//! end: the real `ledgermq` binary in the ledger security mode on its
//! embedded chain, attackers and devices on distinct loopback source
//! addresses (127.0.0.0/8), raw MQTT 5 and 3.1.1 packets.
//!
//! - A flood of bad logins naming a device, from another address, never
//!   keeps the device out and never reaches the ledger; a brute force from
//!   one source is slowed and then refused, on this node, and recorded.
//! - Only misuse of a device's own valid credential blacklists it on the
//!   ledger, each kind with its reason code and an evidence digest that
//!   matches the record the node logged.
//! - A one-time password is accepted once in the whole consortium.
//! - The first answer of a login does not tell whether the device exists.

mod common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::hex;
use common::network::*;
use common::{Client, Connect, Packet, Props, Recv, V3};
use ledgermq_keystore::software::SoftwareEd25519;
use ledgermq_security::scac::LocalKey;
use ledgermq_security::{totp, OtpClient, OtpKey};
use sha2::{Digest, Sha256};

const ATTACKER: u8 = 2;

// ---------------------------------------------------------------- helpers

fn impostor() -> LocalKey {
    LocalKey::Ed25519(Arc::new(SoftwareEd25519::from_seed(&[0x66; 32])))
}

/// A 3.1.1 login with a fixed password from `from`: the CONNACK code.
/// (Waits longer than a refusal's longest delay, `auth_failure_delay_max_ms`.)
fn totp_password_from(from: IpAddr, port: u16, user: &str, password: &str) -> u8 {
    let mut c = Connect::v3(user);
    c.username = Some(user.into());
    c.password = Some(password.as_bytes().to_vec());
    let mut client = Client::tcp_from(from, port, V3);
    client.send(&Packet::Connect(c));
    match client.try_recv(Duration::from_secs(15)) {
        Recv::Packet(Packet::ConnAck { code, .. }) => code,
        other => panic!("expected CONNACK from a 3.1.1 login, got {other:?}"),
    }
}

fn show(net: &Network, device: &str) -> String {
    net.admin_ok("supplier-admin", &["device", "show", device])
}

fn log(net: &Network) -> String {
    std::fs::read_to_string(net.broker.path("broker-1.log")).unwrap_or_default()
}

/// The value of `key=` in a log line (up to the next space).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..].split_whitespace().next()
}

/// The ledger's blacklist entry of `device` carries `reason` and a non-zero
/// evidence digest, which is SHA-256 of the record the node logged.
fn assert_blacklisted_with_evidence(net: &Network, device: &str, reason: u8) {
    let mut entry = String::new();
    eventually(&format!("{device}'s blacklist entry on the ledger"), || {
        entry = show(net, device);
        entry.contains("blacklisted:")
    });
    let line = entry
        .lines()
        .find(|l| l.starts_with("blacklisted:"))
        .unwrap()
        .to_owned();
    assert!(line.contains(&format!("reason={reason}")), "{line}");
    let on_ledger = field(&format!(" {line}"), "evidence").unwrap().to_owned();
    assert_ne!(on_ledger, format!("0x{}", "00".repeat(32)), "{line}");
    let logged = log(net);
    let record_line = logged
        .lines()
        .filter(|l| l.contains("evidence against the device"))
        .find(|l| l.contains(&format!("device_id=\"{device}\"")))
        .unwrap_or_else(|| panic!("no evidence record logged for {device}"));
    assert!(record_line.contains("WARN"), "{record_line}");
    let record = hex::decode(field(record_line, "record").unwrap()).unwrap();
    assert!(record.starts_with(b"LMQ-EVIDENCE-1"));
    assert_eq!(record[14], reason);
    let digest = format!("0x{}", hex::encode(Sha256::digest(&record)));
    assert_eq!(digest, on_ledger, "the ledger commits to the logged record");
    assert_eq!(field(record_line, "evidence").unwrap(), on_ledger);
}

// ------------------------------------------------------------------ tests

/// An attacker at 127.0.0.2 floods bad logins naming the sensor for a
/// minute — wrong LMQ-OTP-1 proofs, a replayed step 1, wrong TOTP codes,
/// forged SCAC steps — while the sensor logs in from 127.0.0.1 with all
/// three methods, during and after the flood: it gets in every time, the
/// attacker's source ends up refused (0x9F), and the sensor has no
/// blacklist entry on the ledger.
#[test]
fn a_minute_of_bad_logins_naming_a_device_does_not_keep_it_out() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    let port = net.port();
    let attacker = source(ATTACKER);
    let key = net.key(SENSOR);
    let wrong = net.key("supplier-humidity-sensor");
    let (device_key, broker_key) = scac_keys(&net, SENSOR);
    // A step 1 the sensor really sent (captured on the wire).
    let captured_n = fresh_packet_number();
    assert_eq!(otp_connect(port, SENSOR, &key, captured_n).code, Some(0));
    let captured = OtpClient::connect_data(SENSOR, captured_n).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let refused_by_ban = Arc::new(AtomicU32::new(0));
    let attempts = Arc::new(AtomicU32::new(0));
    let flooders: Vec<_> = (0..3)
        .map(|t| {
            let (stop, banned, attempts) = (stop.clone(), refused_by_ban.clone(), attempts.clone());
            let (wrong, captured, broker_key) =
                (wrong.clone(), captured.clone(), broker_key.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let code = match i % 4 {
                        0 => {
                            otp_connect_from(attacker, port, SENSOR, &wrong, fresh_packet_number())
                                .code
                        }
                        1 => {
                            otp_handshake_from(attacker, port, SENSOR, captured.clone(), |_| {
                                [0x42; 32]
                            })
                            .code
                        }
                        2 => Some(totp_password_from(attacker, port, SENSOR, "00000000")),
                        _ => {
                            scac_login_from(attacker, port, SENSOR, &impostor(), &broker_key, false)
                                .code
                        }
                    };
                    attempts.fetch_add(1, Ordering::Relaxed);
                    if matches!(code, Some(0x9F) | Some(0x03)) {
                        banned.fetch_add(1, Ordering::Relaxed);
                    }
                    assert_ne!(code, Some(0), "the attacker got in");
                    i += 1;
                }
            })
        })
        .collect();

    let totp_key = net.totp_key(SENSOR);
    let flood_until = Instant::now() + Duration::from_secs(60);
    let mut logins = 0;
    let login_round = |during: bool| {
        let what = if during { "during" } else { "after" };
        let hs = otp_connect(port, SENSOR, &key, fresh_packet_number());
        assert_eq!(
            hs.code,
            Some(0),
            "LMQ-OTP-1 {what} the flood;\n{}",
            net.broker.log_tail()
        );
        drop(hs);
        next_totp_step();
        let (c, code) = totp_connect(port, SENSOR, &totp_key, true);
        assert_eq!(code, 0, "TOTP {what} the flood;\n{}", net.broker.log_tail());
        drop(c);
        let scac = scac_login_from(LOCAL, port, SENSOR, &device_key, &broker_key, true);
        assert_eq!(
            scac.code,
            Some(0),
            "SCAC {what} the flood;\n{}",
            net.broker.log_tail()
        );
    };
    while Instant::now() < flood_until {
        login_round(true);
        logins += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.join().expect("a flooder failed");
    }
    login_round(false);
    let attempts = attempts.load(Ordering::Relaxed);
    let banned = refused_by_ban.load(Ordering::Relaxed);
    eprintln!("{attempts} attacks, {banned} refused by the source ban; {logins} login rounds");
    assert!(logins >= 10, "only {logins} login rounds in a minute");
    assert!(banned >= 1, "the flooding source was never refused");
    assert!(log(&net).contains("source reached the authentication failure limit"));
    let entry = show(&net, SENSOR);
    assert!(!entry.contains("blacklisted"), "{entry}");
    assert!(!log(&net).contains("evidence against the device"));
}

/// A brute force from one source: each refusal waits longer than the
/// first (100 ms doubling, capped), the limit refuses the source (0x9F,
/// also with the right key, 3.1.1: 0x03), a warn line records it — and
/// the device, from its own address, is not affected.
#[test]
fn a_brute_force_from_one_source_is_slowed_and_recorded() {
    let opts = [
        ("auth-failure-limit", "6"),
        ("auth-failure-delay-max-ms", "2000"),
    ];
    let Some(net) = Network::start(Backend::Embedded, &opts) else {
        return;
    };
    let port = net.port();
    let guesser = source(3);
    let wrong = net.key("supplier-humidity-sensor");
    let mut took = Vec::new();
    for attempt in 1..=6 {
        let started = Instant::now();
        let hs = otp_connect_from(guesser, port, SENSOR, &wrong, fresh_packet_number());
        took.push(started.elapsed());
        assert_eq!(hs.code, Some(0x87), "guess {attempt}");
    }
    eprintln!("refusals took {took:?}");
    // 100, 200, 400, 800, 1600, 2000 ms: wide margins, never a tight bound.
    assert!(took[0] >= Duration::from_millis(90), "{took:?}");
    for later in &took[4..] {
        assert!(*later > took[0] + Duration::from_millis(900), "{took:?}");
    }
    let key = net.key(SENSOR);
    let hs = otp_connect_from(guesser, port, SENSOR, &key, fresh_packet_number());
    assert_eq!(
        hs.code,
        Some(0x9F),
        "the source is refused, even with the key"
    );
    assert!(hs.challenge.is_none());
    let totp_key = net.totp_key(SENSOR);
    let code = totp(&totp_key, unix_secs(), TOTP_STEP, 8);
    assert_eq!(totp_password_from(guesser, port, SENSOR, &code), 0x03);
    // Recorded: one warn line names the source and the listener.
    let logged = log(&net);
    let line = logged
        .lines()
        .find(|l| l.contains("source reached the authentication failure limit"))
        .expect("the brute force is logged");
    assert!(
        line.contains("WARN") && line.contains("source=127.0.0.3"),
        "{line}"
    );
    assert!(
        line.contains(&format!("listener=127.0.0.1:{port}")),
        "{line}"
    );
    // The device itself is not locked out, and nothing is on the ledger.
    assert_eq!(
        otp_connect(port, SENSOR, &key, fresh_packet_number()).code,
        Some(0)
    );
    assert!(!show(&net, SENSOR).contains("blacklisted"));
}

/// Each kind of misuse of a valid credential blacklists the device on the
/// ledger with its reason code and an evidence digest of the logged
/// record: valid proofs for a used packet number (2), refused SUBSCRIBEs
/// after a verified login (6), the same key logging in from two places at
/// once (7).
#[test]
fn each_kind_of_misuse_blacklists_the_device_on_the_ledger_with_its_evidence() {
    let Some(net) = Network::start(Backend::Embedded, &[("evidence-limit", "2")]) else {
        return;
    };
    let port = net.port();

    // 2: a replayed credential only the key holder can produce.
    let cloned = "supplier-humidity-sensor";
    let key = net.key(cloned);
    let n = fresh_packet_number();
    assert_eq!(otp_connect(port, cloned, &key, n).code, Some(0));
    for _ in 0..2 {
        assert_eq!(otp_connect(port, cloned, &key, n).code, Some(0x87));
    }
    assert_eq!(
        otp_connect(port, cloned, &key, fresh_packet_number()).code,
        Some(0x8A)
    );
    assert_blacklisted_with_evidence(&net, cloned, 2);

    // 6: rights violations on its own authenticated connection.
    let nosy = "manufacturer-end-device";
    let mut c = login(&net, nosy);
    assert_eq!(c.subscribe("Configuration/raw Material", 1), 0x87);
    assert_eq!(c.subscribe("devices/#", 1), 0x87);
    c.expect_disconnect(&[0x98]);
    assert_blacklisted_with_evidence(&net, nosy, 6);

    // 7: the same key in use from two places at once.
    let twin = "supplier-admin-device";
    let key = net.key(twin);
    let first = otp_connect(port, twin, &key, fresh_packet_number());
    assert_eq!(first.code, Some(0));
    let second = otp_connect_from(source(ATTACKER), port, twin, &key, fresh_packet_number());
    assert_eq!(
        second.code,
        Some(0),
        "a takeover from another place is a login"
    );
    let third = otp_connect(port, twin, &key, fresh_packet_number());
    assert_eq!(third.code, Some(0x8A), "two places twice: banned");
    assert_blacklisted_with_evidence(&net, twin, 7);

    // Devices that did nothing are untouched.
    assert_eq!(
        otp_connect(port, SENSOR, &net.key(SENSOR), fresh_packet_number()).code,
        Some(0)
    );
}

/// A one-time password is accepted once in the whole consortium: a TOTP
/// code made for (and accepted by) the supplier's node is refused by the
/// supplier's second node on the same ledger, and an LMQ-OTP-1 step 1 and
/// proof captured at the first node, replayed to the second, fail there
/// (its challenge is its own).
#[test]
fn one_time_passwords_are_accepted_once_in_the_whole_consortium() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    let second = net.second_node();
    let (a, b) = (net.port(), second.port);

    next_totp_step();
    let code = totp(&net.totp_key(SENSOR), unix_secs(), TOTP_STEP, 8);
    assert_eq!(
        totp_password_from(LOCAL, a, SENSOR, &code),
        0,
        "accepted at A"
    );
    assert_eq!(
        totp_password_from(LOCAL, b, SENSOR, &code),
        0x04,
        "refused at B"
    );
    assert_eq!(
        totp_password_from(LOCAL, a, SENSOR, &code),
        0x04,
        "once at A"
    );
    // The device logs in at B with B's code.
    let at_b = totp(
        &net.totp_key_at(SENSOR, SECOND_NODE),
        unix_secs(),
        TOTP_STEP,
        8,
    );
    assert_eq!(
        totp_password_from(LOCAL, b, SENSOR, &at_b),
        0,
        "{}",
        second.log_tail()
    );

    let key = net.key(SENSOR);
    let n = fresh_packet_number();
    let at_a = otp_connect(a, SENSOR, &key, n);
    assert_eq!(at_a.code, Some(0));
    let (challenge, proof) = (at_a.challenge.unwrap(), at_a.proof.unwrap());
    let step1 = OtpClient::connect_data(SENSOR, n).unwrap();
    let replay = otp_handshake_from(source(ATTACKER), b, SENSOR, step1, |_| proof);
    assert_ne!(
        replay.challenge,
        Some(challenge),
        "B draws its own challenge"
    );
    assert_eq!(replay.code, Some(0x87), "the captured proof fails at B");
    // B still knows nothing against the device.
    assert_eq!(
        otp_connect(b, SENSOR, &key, fresh_packet_number()).code,
        Some(0)
    );
}

/// The first answer of a login does not tell whether the device exists:
/// for an unknown, a revoked, a banned and a registered device id with a
/// wrong secret, each from a fresh source, the same packets, lengths,
/// reason codes and properties — LMQ-OTP-1 (a 32-byte challenge, then
/// CONNACK 0x87), TOTP (0x86 / 3.1.1 0x04) and SCAC (a 128-byte step 2,
/// then CONNACK 0x87) — and the same delay.
#[test]
fn the_first_answer_of_a_login_does_not_tell_who_exists() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    let port = net.port();
    let (revoked, banned) = ("supplier-admin-device", "supplier-humidity-sensor");
    net.admin_ok("supplier-admin", &["device", "revoke", "--id", revoked]);
    net.admin_ok(
        "supplier-admin",
        &["device", "blacklist", "--id", banned, "--for", "600"],
    );
    eventually("the revocation and the ban to reach the broker", || {
        otp_connect(port, banned, &net.key(banned), fresh_packet_number()).code == Some(0x8A)
            && otp_connect(port, revoked, &net.key(revoked), fresh_packet_number()).code
                == Some(0x87)
    });
    // Unknown, revoked, banned, active, and active but of another
    // organisation (whose OTP key this node does not hold).
    let ids = [
        "nobody-registered-this",
        revoked,
        banned,
        SENSOR,
        "retailer-end-device",
    ];
    let wrong = OtpKey::from_bytes([0x5c; 32]);
    let mut last = 30;
    let mut fresh = || {
        last += 1;
        source(last)
    };

    // LMQ-OTP-1.
    let mut seen = Vec::new();
    for id in ids {
        let started = Instant::now();
        let hs = otp_connect_from(fresh(), port, id, &wrong, fresh_packet_number());
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(90),
            "{id}: no delay ({took:?})"
        );
        seen.push((hs.challenge.map(|c| c.len()), hs.code, hs.connack_props));
    }
    assert_eq!(seen[0], (Some(32), Some(0x87), Some(Props::default())));
    assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");

    // TOTP, 3.1.1 and 5.0.
    let mut seen = Vec::new();
    for id in ids {
        let v3 = totp_password_from(fresh(), port, id, "12345678");
        let mut c = Connect::v5(id);
        c.username = Some(id.into());
        c.password = Some(b"12345678".to_vec());
        let v5 = Client::connect_from(fresh(), port, c).1;
        seen.push((v3, v5.code, v5.props));
    }
    assert_eq!(seen[0], (0x04, 0x86, Props::default()));
    assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");

    // SCAC: a forged step 1 (no key of the device) for each id.
    let (_, broker_key) = scac_keys(&net, SENSOR);
    let mut seen = Vec::new();
    for id in ids {
        let p = scac_login_from(fresh(), port, id, &impostor(), &broker_key, false);
        seen.push((p.step2.map(|s| s.len()), p.code, p.connack_props));
    }
    assert_eq!(seen[0], (Some(128), Some(0x87), Some(Props::default())));
    assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
}
