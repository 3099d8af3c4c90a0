//! The trust model end to end (docs/trust.md): a broker node of one
//! organisation holds nothing that lets its operator act as another
//! organisation's device, and a node reads the registry only from a ledger
//! endpoint it may trust.

mod common;

use std::sync::Arc;

use common::ledger::ledgermq;
use common::network::*;
use common::Broker;
use ledgermq_ledger::admin::{open_otp_envelope, BrokerNodeFile};
use ledgermq_ledger::contracts::{Deployment, RegistryClient};
use ledgermq_ledger::{Ledger, LedgerError, LocalAccount, RpcLedger};
use ledgermq_security::OtpKey;

/// The manufacturer runs a broker node in the same consortium as the
/// supplier. Everything its operator has — its node's keys, its admin's
/// account, the whole ledger — does not let it log in as the supplier's
/// sensor, by any method, at its own node or at the supplier's.
#[test]
fn a_node_of_another_organisation_cannot_act_as_a_device() {
    let Some(net) = Network::start(Backend::Embedded, &[]) else {
        return;
    };
    let rpc = net.target[1].clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ledger: Arc<dyn Ledger> = Arc::new(rt.block_on(RpcLedger::connect(&rpc)).unwrap());
    let deployment =
        Deployment::from_toml(&std::fs::read_to_string(net.dir.join("data/ledger.toml")).unwrap())
            .unwrap();
    let registry = RegistryClient::new(ledger, deployment.registry);
    let foreign =
        BrokerNodeFile::load(&net.dir.join("keys/broker-manufacturer.node.json")).unwrap();
    let own = BrokerNodeFile::load(&net.dir.join("keys/broker-supplier.node.json")).unwrap();

    // 1. The ledger holds the sensor's OTP key sealed to the supplier's node
    //    only; the manufacturer's node secret opens none of its envelopes.
    let holders = rt.block_on(registry.otp_envelope_brokers(SENSOR)).unwrap();
    assert_eq!(holders, vec![own.account], "only the supplier's node");
    let secret = foreign.agreement_secret_bytes().unwrap();
    for holder in &holders {
        let env = rt.block_on(registry.otp_envelope(SENSOR, *holder)).unwrap();
        assert!(open_otp_envelope(&secret, SENSOR, &env).is_err());
    }

    // 2. Neither the manufacturer's admin nor, misled, the supplier's can
    //    give the manufacturer's node an envelope.
    let manufacturer_admin =
        LocalAccount::load(&net.dir.join("keys/manufacturer-admin.key")).unwrap();
    let supplier_admin = LocalAccount::load(&net.dir.join("keys/supplier-admin.key")).unwrap();
    let err = rt
        .block_on(registry.set_otp_envelope(&manufacturer_admin, SENSOR, foreign.account, b"x"))
        .unwrap_err();
    assert_eq!(
        err,
        LedgerError::Reverted("caller is not an admin of organisation supplier".into())
    );
    let err = rt
        .block_on(registry.set_otp_envelope(&supplier_admin, SENSOR, foreign.account, b"x"))
        .unwrap_err();
    assert_eq!(
        err,
        LedgerError::Reverted("broker node belongs to another organisation".into())
    );

    // 3. At the manufacturer's own node the sensor's OTP and TOTP do not
    //    work, even with the right key: that node does not have it. A TOTP
    //    code made for the manufacturer's node from the real key is refused
    //    too. The sensor does log in there with its signing key (SCAC).
    let theirs = net_node(&net, "broker-manufacturer");
    let key = net.key(SENSOR);
    assert_eq!(
        otp_connect(theirs.port, SENSOR, &key, fresh_packet_number()).code,
        Some(0x87),
        "{}",
        theirs.log_tail()
    );
    next_totp_step();
    let (_, code) = totp_connect(
        theirs.port,
        SENSOR,
        &net.totp_key_at(SENSOR, "broker-manufacturer"),
        true,
    );
    assert_eq!(code, 0x04);
    let (code, _) = scac_connect(&net, theirs.port, "broker-manufacturer", SENSOR);
    assert_eq!(code, Some(0), "{}", theirs.log_tail());

    // 4. What the operator could try at the supplier's node: OTP with a key
    //    derived from anything it holds (its node's secrets), and SCAC with
    //    its node's signing key under the sensor's name. All refused, and
    //    the sensor still logs in.
    let guesses = [
        foreign.agreement_secret_bytes().unwrap(),
        foreign.signing_secret_bytes().unwrap(),
    ];
    for guess in &guesses {
        let k = OtpKey::from_bytes(**guess);
        let hs = otp_connect(net.port(), SENSOR, &k, fresh_packet_number());
        assert_eq!(hs.code, Some(0x87));
    }
    let (code, _) = scac_connect_as(
        &net,
        net.port(),
        "broker-supplier",
        SENSOR,
        &foreign.signing_secret_bytes().unwrap(),
    );
    assert_ne!(code, Some(0), "the operator's key is not the sensor's");
    let hs = otp_connect_from(source(7), net.port(), SENSOR, &key, fresh_packet_number());
    assert_eq!(hs.code, Some(0), "{}", net.broker.log_tail());
}

/// A node started on another organisation's keys, on the same ledger.
fn net_node(net: &Network, name: &str) -> Broker {
    let rpc = net.target[1].clone();
    let dir = net.dir.clone();
    Broker::with_setup(
        &[
            ("security", "ledger"),
            ("ledger-poll-interval-ms", "50"),
            ("totp-step", "2"),
        ],
        |_| {
            let mut o = node_options(&dir, name, Some(&rpc));
            o.retain(|(k, _)| k != "ledger-deployment");
            o.push((
                "ledger-deployment".into(),
                dir.join("data/ledger.toml").display().to_string(),
            ));
            o
        },
    )
    .expect("ledgermq only")
}

/// Plain http:// to a ledger that is not on this machine is refused by
/// `serve` and by the admin CLI unless the insecure option is given; with
/// it, the endpoint is used (here it is unreachable, so the error changes).
#[test]
fn plain_http_to_a_remote_ledger_needs_the_insecure_option() {
    let dir = tempfile::tempdir().unwrap();
    // TEST-NET-1 (RFC 5737): not loopback, and nobody answers.
    let remote = "http://192.0.2.1:8545";
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--security",
            "ledger",
            "--ledger-rpc",
            remote,
            "--embedded-ledger",
            "false",
            "--data-dir",
            "data",
            // (Read only after the ledger is reached.)
            "--ledger-account",
            "missing.key",
            "--ledger-node-keys",
            "missing.node.json",
        ];
        args.extend_from_slice(extra);
        ledgermq(dir.path(), &args)
    };
    let out = serve(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plain http://") && err.contains("--ledger-rpc-insecure"),
        "{err}"
    );
    let out = serve(&["--ledger-rpc-insecure", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("plain http://"),
        "accepted with the option: {err}"
    );
    let log = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert!(log.contains("INSECURE"), "a warning at start: {log}");

    let out = ledgermq(dir.path(), &["admin", "--rpc", remote, "list", "orgs"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plain http://") && err.contains("--rpc-insecure"),
        "{err}"
    );
    let out = ledgermq(
        dir.path(),
        &["admin", "--rpc", remote, "--rpc-insecure", "list", "orgs"],
    );
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("plain http://"));
}
