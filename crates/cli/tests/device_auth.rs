//! The ledger security mode end to end: the real `ledgermq` binary serving
//! with `--security ledger`, the supply chain of examples/supply-chain.toml
//! applied with the real admin CLI, devices speaking LMQ-OTP-1 and TOTP on
//! real sockets. Every scenario runs on both ledger backends: the broker's
//! own embedded chain, and anvil over JSON-RPC.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ledger::{ledgermq, ok};
use common::network::*;
use common::{Client, Connect, Packet, Props, Publish, Recv, QUIET};
use ledgermq_security::{totp, OtpClient, AUTH_METHOD};

// ------------------------------------------------------------- scenarios

/// 1 and 2: the supplier admin registers a device and gets its bundle; an
/// account that is no admin is refused with the contract's message.
fn registration_by_the_org_admin_succeeds_and_by_an_unknown_admin_is_refused(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    let out = net.admin_ok(
        "supplier-admin",
        &[
            "device",
            "register",
            "--org",
            "supplier",
            "--id",
            "supplier-scale",
            "--topic",
            "Temperature/raw Material:pub",
            "--bundle-out",
            "bundles/supplier-scale.json",
        ],
    );
    assert!(out.contains("registered device supplier-scale"), "{out}");
    // The new device connects as soon as the broker's view has the block.
    let key = net.key("supplier-scale");
    eventually("the new device to be admitted", || {
        otp_connect(net.port(), "supplier-scale", &key, fresh_packet_number()).code == Some(0)
    });

    ok(
        &net.dir,
        &["admin", "account", "new", "--out", "keys/intruder.key"],
    );
    let out = net.admin(
        "intruder",
        &[
            "device",
            "register",
            "--org",
            "supplier",
            "--id",
            "rogue",
            "--bundle-out",
            "rogue.json",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not an admin of organisation supplier"),
        "{err}"
    );
    assert!(
        !net.dir.join("rogue.json").exists(),
        "no bundle for a refused registration"
    );
    let hs = otp_connect(net.port(), "rogue", &key, fresh_packet_number());
    assert_eq!(hs.code, Some(0x87));
}

/// 3: the supplier temperature sensor connects with challenge + hashed OTP.
fn sensor_connects_with_challenge_and_hashed_otp(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    let mut c = login(&net, SENSOR);
    assert_eq!(c.subscribe("Configuration/raw Material", 1), 1);
    c.disconnect();
    // A client id other than the device id is refused: no session takeover.
    let key = net.key(SENSOR);
    let n = fresh_packet_number();
    let step1 = OtpClient::connect_data(SENSOR, n).unwrap();
    let hs = otp_handshake(net.port(), "someone-else", step1, |ch| {
        OtpClient::proof(&key, ch, SENSOR, n)
    });
    assert_eq!(hs.code, Some(0x85));
    // An empty client id gets the device id.
    let n = fresh_packet_number();
    let step1 = OtpClient::connect_data(SENSOR, n).unwrap();
    let hs = otp_handshake(net.port(), "", step1, |ch| {
        OtpClient::proof(&key, ch, SENSOR, n)
    });
    assert_eq!(hs.code, Some(0));
}

/// 4: a wrong hashed OTP (here: another device's key) is refused with 0x87.
fn wrong_hashed_otp_is_refused(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    let other = net.key("supplier-humidity-sensor");
    let hs = otp_connect(net.port(), SENSOR, &other, fresh_packet_number());
    assert!(hs.challenge.is_some(), "a registered device is challenged");
    assert_eq!(hs.code, Some(0x87));
    // An unknown method is 0x8C.
    let mut c = Connect::v5(SENSOR);
    c.props.authentication_method = Some("SCRAM-SHA-1".into());
    let (_, ack) = Client::connect(net.port(), c);
    assert_eq!(ack.code, 0x8C);
    // Without any credentials: 0x87 (v5) / 0x05 (3.1.1).
    let (_, ack) = Client::connect(net.port(), Connect::v5(SENSOR));
    assert_eq!(ack.code, 0x87);
    let (_, ack) = Client::connect(net.port(), Connect::v3(SENSOR));
    assert_eq!(ack.code, 0x05);
}

/// 5: an unregistered device is challenged like any other (step 1 does
/// not tell who exists) and refused after its proof, as a wrong proof.
fn unregistered_device_is_refused(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    let key = net.key(SENSOR);
    let hs = otp_connect(net.port(), "not-registered", &key, fresh_packet_number());
    assert!(hs.challenge.is_some(), "a challenge for every device id");
    assert_eq!(hs.code, Some(0x87));
    let (_, code) = totp_connect(net.port(), "not-registered", &net.totp_key(SENSOR), true);
    assert_eq!(code, 0x04, "an unknown user name reads as a wrong code");
}

/// 6: a replayed CONNECT (same packet number) and a captured AUTH proof
/// replayed on a new connection are refused.
fn replayed_connect_and_captured_auth_are_refused(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    let key = net.key(SENSOR);
    let n = fresh_packet_number();
    let first = otp_connect(net.port(), SENSOR, &key, n);
    assert_eq!(first.code, Some(0));
    let captured = first.proof.unwrap();
    drop(first.client);
    // Same packet number: challenged (step 1 tells nothing), refused after
    // the proof.
    let replay = otp_connect(net.port(), SENSOR, &key, n);
    assert!(replay.challenge.is_some());
    assert_eq!(replay.code, Some(0x87));
    // A higher packet number but the captured proof: the challenge is new.
    let step1 = OtpClient::connect_data(SENSOR, n + 1).unwrap();
    let replay = otp_handshake(net.port(), SENSOR, step1, |_| captured);
    assert_eq!(replay.code, Some(0x87));
    // A TOTP code works once.
    let key = net.totp_key(SENSOR);
    next_totp_step();
    let (_, code) = totp_connect(net.port(), SENSOR, &key, true);
    assert_eq!(code, 0, "{}", net.broker.log_tail());
    let (_, code) = totp_connect(net.port(), SENSOR, &key, true);
    assert_eq!(code, 0x04, "a used TOTP code is refused");
}

/// 7: the sensor publishes on Temperature/raw Material and exactly the
/// manufacturer, retailer and customer end devices receive it.
fn sensor_data_reaches_exactly_the_authorised_end_devices(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    let readers = [
        "manufacturer-end-device",
        "retailer-end-device",
        "customer-end-device",
    ];
    let mut subscribers: Vec<Client> = readers
        .iter()
        .map(|d| {
            let mut c = login(&net, d);
            assert_eq!(c.subscribe(TEMPERATURE, 1), 1, "{d} may subscribe");
            c
        })
        .collect();
    let mut others: Vec<Client> = [
        "supplier-humidity-sensor",
        "distributor-gps",
        "retailer-admin-device",
    ]
    .iter()
    .map(|d| {
        let mut c = login(&net, d);
        assert_eq!(c.subscribe(TEMPERATURE, 1), 0x87, "{d} may not subscribe");
        assert_eq!(
            c.subscribe("Temperature/+", 1),
            0x87,
            "{d}: no wildcard widening"
        );
        assert_eq!(c.subscribe("#", 1), 0x87);
        c
    })
    .collect();
    let mut sensor = login(&net, SENSOR);
    assert_eq!(sensor.publish(TEMPERATURE, b"21.5", 1, false), 0);
    for c in &mut subscribers {
        let p = c.recv_publish();
        assert_eq!(
            (p.topic.as_str(), p.payload.as_slice()),
            (TEMPERATURE, &b"21.5"[..])
        );
    }
    for c in &mut others {
        c.expect_nothing(QUIET);
    }
}

/// 8: the manufacturer end device publishing on Temperature/raw Material
/// gets PUBACK 0x87 and is disconnected with 0x87.
fn unauthorised_publish_is_refused_and_disconnected(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    let mut reader = login(&net, "customer-end-device");
    assert_eq!(reader.subscribe(TEMPERATURE, 1), 1);
    let mut c = login(&net, "manufacturer-end-device");
    let mut p = Publish::new(TEMPERATURE, b"forged", 1);
    p.pkid = 7;
    c.send(&Packet::Publish(p));
    let seen = c.expect_closed();
    assert!(
        matches!(seen.first(), Some(Packet::PubAck(a)) if a.reason == 0x87),
        "{seen:?}"
    );
    assert!(
        matches!(seen.last(), Some(Packet::Disconnect { reason: 0x87, .. })),
        "{seen:?}"
    );
    reader.expect_nothing(QUIET);
}

/// A refused QoS 0 publish disconnects even when refused QoS 1/2
/// publishes do not (disconnect-on-refused-publish false).
fn refusal_policy_is_configurable_but_qos0_refusals_always_disconnect(b: Backend) {
    let opts = [("disconnect-on-refused-publish", "false")];
    let Some(net) = Network::start(b, &opts) else {
        return;
    };
    // (A device of the node's organisation: plain QoS 2, no SCAC payload channel.)
    let mut c = login(&net, "supplier-humidity-sensor");
    assert_eq!(c.publish(TEMPERATURE, b"x", 1, false), 0x87);
    assert_eq!(c.publish(TEMPERATURE, b"x", 2, false), 0x87);
    c.ping();
    c.send(&Packet::Publish(Publish::new(TEMPERATURE, b"x", 0)));
    c.expect_disconnect(&[0x87]);
}

/// Brute force: failed logins naming a device ban their *source* on this
/// node (0x9F), not the device, and nothing reaches the ledger; evidence
/// of a misused valid credential (here valid proofs for used packet
/// numbers) blacklists the device on the ledger, and a second broker node
/// reading the same ledger refuses it too (0x8A).
fn brute_force_bans_the_source_here_and_evidence_bans_the_device_everywhere(b: Backend) {
    let opts = [
        ("auth-failure-limit", "3"),
        ("auth-failure-delay-max-ms", "200"),
        ("evidence-limit", "2"),
    ];
    let Some(net) = Network::start(b, &opts) else {
        return;
    };
    let attacker = source(2);
    let wrong = net.key("supplier-humidity-sensor");
    for attempt in 1..=3 {
        let hs = otp_connect_from(attacker, net.port(), SENSOR, &wrong, fresh_packet_number());
        assert_eq!(hs.code, Some(0x87), "attempt {attempt}");
    }
    // The source is refused now, even with the right key…
    let key = net.key(SENSOR);
    let hs = otp_connect_from(attacker, net.port(), SENSOR, &key, fresh_packet_number());
    assert_eq!(hs.code, Some(0x9F), "connection rate exceeded");
    assert!(hs.challenge.is_none());
    // …but the device, from its own address, is not.
    let hs = otp_connect(net.port(), SENSOR, &key, fresh_packet_number());
    assert_eq!(hs.code, Some(0), "{}", net.broker.log_tail());
    let show = net.admin_ok("supplier-admin", &["device", "show", SENSOR]);
    assert!(!show.contains("blacklisted"), "{show}");

    // Valid proofs for a used packet number: only the key holder makes them.
    let n = fresh_packet_number();
    assert_eq!(otp_connect(net.port(), SENSOR, &key, n).code, Some(0));
    for _ in 0..2 {
        assert_eq!(otp_connect(net.port(), SENSOR, &key, n).code, Some(0x87));
    }
    // Banned at once on this node…
    let hs = otp_connect(net.port(), SENSOR, &key, fresh_packet_number());
    assert_eq!(hs.code, Some(0x8A));
    // …and on the ledger, with the replay reason and the evidence digest.
    eventually("the blacklist entry on the ledger", || {
        let out = net.admin_ok("supplier-admin", &["device", "show", SENSOR]);
        out.contains("blacklisted") && out.contains("reason=2")
    });
    let second = net.second_node();
    let hs = otp_connect(second.port, SENSOR, &key, fresh_packet_number());
    assert_eq!(hs.code, Some(0x8A), "{}", second.log_tail());
    let at_second = net.totp_key_at(SENSOR, SECOND_NODE);
    let (_, code) = totp_connect(second.port, SENSOR, &at_second, true);
    assert_eq!(code, 0x05, "3.1.1 has no 'banned': not authorized");
    // Other devices are unaffected.
    let hs = otp_connect(
        second.port,
        "supplier-humidity-sensor",
        &wrong,
        fresh_packet_number(),
    );
    assert_eq!(hs.code, Some(0));
    // The admin lifts the ban: the device is back on every node.
    net.admin_ok("supplier-admin", &["device", "unblacklist", "--id", SENSOR]);
    eventually("the lifted ban to reach the second node", || {
        otp_connect(second.port, SENSOR, &key, fresh_packet_number()).code == Some(0)
    });
}

/// Revocation and a ban act on live sessions: DISCONNECT 0x98 at once;
/// a lost right removes the subscription without a reconnect.
fn ledger_changes_act_on_live_sessions(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    let mut sensor = login(&net, SENSOR);
    let mut reader = login(&net, "retailer-end-device");
    assert_eq!(reader.subscribe(TEMPERATURE, 1), 1);
    assert_eq!(reader.subscribe("Humidity/raw Material", 1), 1);
    net.admin_ok(
        "retailer-admin",
        &[
            "right",
            "revoke",
            "--device",
            "retailer-end-device",
            "--topic",
            TEMPERATURE,
        ],
    );
    // Once the view has the block, the sensor's data no longer reaches it.
    eventually("the subscription to be removed", || {
        sensor.publish(TEMPERATURE, b"probe", 1, false) == 0x10
    });
    let mut humidity = login(&net, "supplier-humidity-sensor");
    assert_eq!(
        humidity.publish("Humidity/raw Material", b"40", 1, false),
        0
    );
    // (Probes published before the removal may arrive first.)
    reader.recv_matching(
        "the humidity reading",
        |p| matches!(p, Packet::Publish(p) if p.topic == "Humidity/raw Material"),
    );
    // A publish right lost on the ledger stops the next PUBLISH, even to the
    // topic the device has just been allowed to publish to.
    net.admin_ok(
        "supplier-admin",
        &[
            "right",
            "revoke",
            "--device",
            "supplier-humidity-sensor",
            "--topic",
            "Humidity/raw Material",
        ],
    );
    eventually("the publish right to be gone", || {
        humidity.publish("Humidity/raw Material", b"41", 1, false) == 0x87
    });
    humidity.expect_disconnect(&[0x87]);

    net.admin_ok("supplier-admin", &["device", "revoke", "--id", SENSOR]);
    sensor.expect_disconnect(&[0x98]);
    let hs = otp_connect(net.port(), SENSOR, &net.key(SENSOR), fresh_packet_number());
    assert_eq!(hs.code, Some(0x87));

    net.admin_ok(
        "retailer-admin",
        &[
            "device",
            "blacklist",
            "--id",
            "retailer-end-device",
            "--for",
            "600",
        ],
    );
    reader.expect_disconnect(&[0x98]);
    // The retailer's device logs in here with its signing key (SCAC): told
    // it is banned once it has proved who it is.
    let (code, _) = scac_connect(&net, net.port(), "broker-supplier", "retailer-end-device");
    assert_eq!(code, Some(0x8A));
}

/// Re-authentication (AUTH 0x19) on a live connection, right and wrong.
fn reauthentication_works_and_a_wrong_proof_disconnects(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    let key = net.key(SENSOR);
    let mut c = login(&net, SENSOR);
    for (round, good) in [(1, true), (2, false)] {
        let n = fresh_packet_number();
        c.send(&Packet::Auth {
            reason: 0x19,
            props: Props {
                authentication_method: Some(AUTH_METHOD.into()),
                authentication_data: Some(OtpClient::connect_data(SENSOR, n).unwrap()),
                ..Props::default()
            },
        });
        let challenge = match c.recv() {
            Packet::Auth {
                reason: 0x18,
                props,
            } => props.authentication_data.unwrap(),
            other => panic!("round {round}: expected AUTH 0x18, got {other:?}"),
        };
        let challenge = OtpClient::challenge(&challenge).unwrap();
        let mut proof = OtpClient::proof(&key, &challenge, SENSOR, n);
        if !good {
            proof[0] ^= 1;
        }
        c.send(&Packet::Auth {
            reason: 0x18,
            props: Props {
                authentication_method: Some(AUTH_METHOD.into()),
                authentication_data: Some(proof.to_vec()),
                ..Props::default()
            },
        });
        if good {
            match c.recv() {
                Packet::Auth { reason: 0x00, .. } => {}
                other => panic!("expected AUTH 0x00, got {other:?}"),
            }
            assert_eq!(c.publish(TEMPERATURE, b"after re-auth", 1, false), 0x10);
        } else {
            c.expect_disconnect(&[0x87]);
        }
    }
}

/// Status topics tell a 3.1.1 device (no reason codes) what happened.
fn status_topics_report_refusals_to_311_devices(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    // A 3.1.1 device logs in with TOTP at its own organisation's node.
    let dev = "supplier-humidity-sensor";
    let key = net.totp_key(dev);
    next_totp_step();
    let (mut c, code) = totp_connect(net.port(), dev, &key, false);
    assert_eq!(code, 0);
    // (`+/+/error`: the topic of the report has the levels of the topic.)
    for t in [
        "unauth",
        "forbidden",
        "key/success",
        "key/fail",
        "+/error",
        "+/+/error",
    ] {
        let granted = c.subscribe(&format!("devices/{dev}/{t}"), 1);
        assert_eq!(granted, 1, "own status topic {t}");
    }
    assert_eq!(c.subscribe("devices/retailer-end-device/key/fail", 1), 0x80);
    assert_eq!(c.subscribe("devices/#", 1), 0x80);
    // Each refused filter → forbidden, naming it.
    assert_eq!(c.subscribe("Configuration/Manufactory", 1), 0x80);
    let reports: Vec<String> = (0..3)
        .map(|_| {
            let p = c.recv_publish_ack();
            assert_eq!(p.topic, format!("devices/{dev}/forbidden"));
            String::from_utf8_lossy(&p.payload).into_owned()
        })
        .collect();
    assert!(
        reports[0].contains("devices/retailer-end-device/key/fail"),
        "{reports:?}"
    );
    assert!(reports[1].contains("devices/#"), "{reports:?}");
    assert!(
        reports[2].contains("Configuration/Manufactory"),
        "{reports:?}"
    );
    // Someone fails to log in as the device → key/fail.
    let wrong = net.key(SENSOR);
    assert_eq!(
        otp_connect(net.port(), dev, &wrong, fresh_packet_number()).code,
        Some(0x87)
    );
    let p = c.recv_publish_ack();
    assert_eq!(p.topic, format!("devices/{dev}/key/fail"));
    // A refused publish → <topic>/error, delivered after the reconnect
    // (the refusal disconnects; 3.1.1 had a PUBACK without a code).
    assert_eq!(c.publish(TEMPERATURE, b"x", 1, false), 0);
    c.expect_closed();
    next_totp_step();
    let (mut c, code) = totp_connect(net.port(), dev, &key, false);
    assert_eq!(code, 0);
    let mut topics: Vec<String> = (0..2)
        .map(|_| match c.try_recv(Duration::from_secs(5)) {
            Recv::Packet(Packet::Publish(p)) => {
                c.ack(&p);
                p.topic
            }
            other => panic!(
                "expected a status report, got {other:?}\n{}",
                net.broker.log_tail()
            ),
        })
        .collect();
    topics.sort();
    assert_eq!(
        topics,
        [
            format!("devices/{dev}/{TEMPERATURE}/error"),
            format!("devices/{dev}/key/success"),
        ]
    );
    // Devices may not forge status reports.
    let mut forger = login(&net, SENSOR);
    assert_eq!(
        forger.publish(&format!("devices/{dev}/unauth"), b"{}", 1, false),
        0x87
    );
}

/// CVE-2017-7650 class: a client id or user name with wildcards never
/// widens a right, it is simply not a registered device.
fn wildcard_identities_never_widen_rights(b: Backend) {
    // Eight refused logins from one source: no source ban, short delays.
    let opts = [
        ("auth-failure-limit", "0"),
        ("auth-failure-delay-max-ms", "100"),
    ];
    let Some(net) = Network::start(b, &opts) else {
        return;
    };
    let key = net.key(SENSOR);
    let totp_key = net.totp_key(SENSOR);
    for id in ["#", "+", "supplier-temperature-sensor/#", "+/+"] {
        let hs = otp_connect(net.port(), id, &key, fresh_packet_number());
        assert_eq!(hs.code, Some(0x87), "client id {id:?}");
        let mut c = Connect::v3(id);
        c.username = Some(id.into());
        c.password = Some(totp(&totp_key, unix_secs(), TOTP_STEP, 8).into_bytes());
        let (_, ack) = Client::connect(net.port(), c);
        assert_eq!(ack.code, 0x04, "user name {id:?}: as a wrong code");
    }
    // User name of one device, client id of another: refused.
    let mut c = Connect::v3("customer-end-device");
    c.username = Some(SENSOR.into());
    c.password = Some(totp(&totp_key, unix_secs(), TOTP_STEP, 8).into_bytes());
    let (_, ack) = Client::connect(net.port(), c);
    assert_eq!(ack.code, 0x02, "identifier rejected");
}

/// The walk-through of docs/device-auth.md with `ledgermq device`.
fn device_owner_walkthrough_from_a_shell(b: Backend) {
    let Some(net) = Network::start(b, &[]) else {
        return;
    };
    let broker = format!("127.0.0.1:{}", net.port());
    let device = |bundle: &str, args: &[&str]| -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ledgermq"));
        cmd.current_dir(&net.dir)
            .args(["device", "--bundle", &format!("bundles/{bundle}.json")])
            .args(["--broker", &broker, "--totp-step", "2"])
            .args(args);
        cmd
    };
    let run = |bundle: &str, args: &[&str]| device(bundle, args).output().unwrap();
    // Devices of other organisations hold no OTP key here: they log in to
    // the supplier's node with their signing key (SCAC), naming the node.
    let node = format!(
        "0x{}",
        alloy_primitives::hex::encode(net.node_account("broker-supplier"))
    );
    let scac = ["--auth", "scac", "--broker-account", node.as_str()];

    let sub_args = [
        &scac[..],
        &["sub", "--topic", TEMPERATURE, "--qos", "1", "--count", "1"],
    ]
    .concat();
    let mut sub = device("customer-end-device", &sub_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Publish until the subscriber has its message and exits.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let out = run(
            SENSOR,
            &[
                "pub",
                "--topic",
                TEMPERATURE,
                "--message",
                "21.5",
                "--qos",
                "1",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(status) = sub.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the subscriber got nothing");
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = sub.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "21.5\n");

    let forged = [
        &scac[..],
        &[
            "pub",
            "--topic",
            TEMPERATURE,
            "--message",
            "forged",
            "--qos",
            "1",
        ],
    ]
    .concat();
    let out = run("manufacturer-end-device", &forged);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0x87"),
        "{out:?}"
    );

    // TOTP names its node: another organisation's node is refused before
    // anything is sent, with the way that works there.
    let out = run(
        "customer-end-device",
        &["--auth", "totp", "--broker-account", &node, "connect"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--auth scac"),
        "{out:?}"
    );

    next_totp_step();
    let out = run(SENSOR, &["--auth", "totp", "connect"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("CONNECTED {SENSOR}")
    );

    net.admin_ok(
        "supplier-admin",
        &[
            "device",
            "register",
            "--org",
            "supplier",
            "--id",
            "supplier-scale",
            "--topic",
            "Temperature/raw Material:pub",
            "--bundle-out",
            "bundles/supplier-scale.json",
        ],
    );
    eventually("the new device to connect", || {
        run("supplier-scale", &["connect"]).status.success()
    });
    net.admin_ok(
        "supplier-admin",
        &["device", "revoke", "--id", "supplier-scale"],
    );
    eventually("the revoked device to be refused", || {
        let out = run("supplier-scale", &["connect"]);
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("0x87")
    });
}

/// Accepted packet numbers and TOTP steps survive a restart: a used one
/// stays used.
fn replay_counters_survive_a_restart(b: Backend) {
    let Some(mut net) = Network::start(b, &[("persistence", "true")]) else {
        return;
    };
    let key = net.key(SENSOR);
    let n = fresh_packet_number();
    assert_eq!(otp_connect(net.port(), SENSOR, &key, n).code, Some(0));
    next_totp_step();
    let code = totp(&net.totp_key(SENSOR), unix_secs(), TOTP_STEP, 8);
    let login = |port: u16| {
        let mut c = Connect::v3(SENSOR);
        c.username = Some(SENSOR.into());
        c.password = Some(code.clone().into_bytes());
        Client::connect(port, c).1.code
    };
    assert_eq!(login(net.port()), 0);
    net.broker.restart();
    assert_eq!(otp_connect(net.port(), SENSOR, &key, n).code, Some(0x87));
    assert_eq!(
        login(net.port()),
        0x04,
        "the TOTP code was used before the restart"
    );
    assert_eq!(otp_connect(net.port(), SENSOR, &key, n + 1).code, Some(0));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let counters = net.broker.data_dir().join("auth-counters.redb");
        let mode = std::fs::metadata(&counters).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the replay counters are the owner's only");
    }
}

/// With its ledger unreachable a broker keeps deciding from the registry
/// it has read, and a ban it decides on evidence holds on this node
/// meanwhile.
#[test]
fn a_broker_keeps_serving_when_its_ledger_goes_down() {
    let opts = [("evidence-limit", "2")];
    let Some(mut net) = Network::start(Backend::Anvil, &opts) else {
        return;
    };
    let mut reader = login(&net, "customer-end-device");
    assert_eq!(reader.subscribe(TEMPERATURE, 1), 1);
    drop(net.anvil.take()); // the ledger is gone
    let mut sensor = login(&net, SENSOR);
    assert_eq!(sensor.publish(TEMPERATURE, b"20.1", 1, false), 0);
    assert_eq!(reader.recv_publish().payload, b"20.1");
    let mut c = login(&net, "manufacturer-end-device");
    assert_eq!(c.publish(TEMPERATURE, b"x", 1, false), 0x87);
    // Evidence: valid proofs of a supplier device for a used packet number.
    let device = "supplier-humidity-sensor";
    let key = net.key(device);
    let n = fresh_packet_number();
    assert_eq!(otp_connect(net.port(), device, &key, n).code, Some(0));
    for _ in 0..2 {
        assert_eq!(otp_connect(net.port(), device, &key, n).code, Some(0x87));
    }
    let hs = otp_connect(net.port(), device, &key, fresh_packet_number());
    assert_eq!(
        hs.code,
        Some(0x8A),
        "banned locally while the ledger is down"
    );
    eventually("the broker to retry the blacklist entry", || {
        let log = std::fs::read_to_string(net.broker.path("broker-1.log")).unwrap_or_default();
        log.contains("cannot record the blacklist entry yet")
    });
}

/// `ledgermq bench auth` logs provisioned devices in with both methods and
/// counts every login (no timing is asserted: speed lives in the bench).
#[test]
fn bench_auth_logs_devices_in_with_otp_and_totp() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    let bundles = net.dir.join("bundles");
    let port = net.port().to_string();
    // The supplier's devices logging in at the supplier's node (the only
    // nodes that hold their OTP keys): their codes are for that node.
    let node = format!(
        "0x{}",
        alloy_primitives::hex::encode(net.node_account("broker-supplier"))
    );
    let bench = |method: &str| -> String {
        ok(
            &net.dir,
            &[
                "bench",
                "auth",
                "--port",
                &port,
                "--bundles",
                bundles.to_str().unwrap(),
                "--prefix",
                "supplier-",
                "--method",
                method,
                "--duration",
                "1",
                "--concurrency",
                "1",
                "--totp-step",
                "2",
                "--broker-account",
                &node,
                "--json",
            ],
        )
    };
    let field = |json: &str, key: &str| -> u64 {
        let at = json
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key} in {json}"));
        let rest = &json[at + key.len() + 3..];
        rest[..rest.find([',', '}']).unwrap()].parse().unwrap()
    };
    let otp = bench("otp");
    assert!(field(&otp, "logins") >= 1, "{otp}");
    assert_eq!(field(&otp, "failures"), 0, "{otp}");
    next_totp_step();
    let totp = bench("totp");
    // Every supplier device logs in once.
    let devices = field(&totp, "devices");
    assert!(devices >= 1, "{totp}");
    assert_eq!(field(&totp, "logins"), devices, "{totp}");
    assert_eq!(field(&totp, "failures"), 0, "{totp}");
    // No bundles: a clear error, not a run that measures nothing.
    let missing = net.dir.join("no-bundles");
    std::fs::create_dir_all(&missing).unwrap();
    let out = ledgermq(
        &net.dir,
        &[
            "bench",
            "auth",
            "--port",
            &port,
            "--bundles",
            missing.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no provisioning bundles"));
}

macro_rules! on_both_ledgers {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() { super::$name(super::Backend::Embedded) } )*
        }
        mod anvil {
            $( #[test] fn $name() { super::$name(super::Backend::Anvil) } )*
        }
    };
}

on_both_ledgers!(
    registration_by_the_org_admin_succeeds_and_by_an_unknown_admin_is_refused,
    sensor_connects_with_challenge_and_hashed_otp,
    wrong_hashed_otp_is_refused,
    unregistered_device_is_refused,
    replayed_connect_and_captured_auth_are_refused,
    sensor_data_reaches_exactly_the_authorised_end_devices,
    unauthorised_publish_is_refused_and_disconnected,
    refusal_policy_is_configurable_but_qos0_refusals_always_disconnect,
    brute_force_bans_the_source_here_and_evidence_bans_the_device_everywhere,
    ledger_changes_act_on_live_sessions,
    reauthentication_works_and_a_wrong_proof_disconnects,
    status_topics_report_refusals_to_311_devices,
    wildcard_identities_never_widen_rights,
    device_owner_walkthrough_from_a_shell,
    replay_counters_survive_a_restart,
);

#[test]
fn ledger_mode_refuses_to_start_without_node_keys_or_with_a_foreign_account() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    apply_supply_chain(dir, None);
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--data-dir",
            "data",
            "--listen",
            "127.0.0.1:0",
            "--ledger-rpc-listen",
            "127.0.0.1:0",
            "--security",
            "ledger",
        ];
        args.extend_from_slice(extra);
        let out = ledgermq(dir, &args);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = serve(&[]);
    assert!(err.contains("ledger_account and ledger_node_keys"), "{err}");
    ok(dir, &["admin", "account", "new", "--out", "stranger.key"]);
    let err = serve(&[
        "--ledger-account",
        "stranger.key",
        "--ledger-node-keys",
        "keys/broker-supplier.node.json",
    ]);
    assert!(err.contains("is for account"), "{err}");
}
