//! SCAC with the private keys inside a PKCS#11 token (SoftHSM2), for the
//! broker and for the devices: the keys are generated in the token and
//! never leave it; the broker process and the device (this test) each open
//! the token by reference.
//!
//! One test in this binary: SoftHSM reads `SOFTHSM2_CONF` once per process,
//! so the variable is set before anything loads the module and the broker
//! process inherits it.

mod common;
mod scac_common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use alloy_primitives::hex;
use ledgermq_keystore::{find_softhsm_module, KeyHandle, KeyKind, KeyRef};
use ledgermq_security::scac::{LocalKey, PeerKey, Suite};
use scac_common::*;

const TOKEN: &str = "ledgermq-scac";
const USER_PIN: &str = "246810";

/// A fresh token in `dir`; `SOFTHSM2_CONF` points at it from now on.
fn init_token(dir: &Path) -> std::path::PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    // Only this test runs in this process, before any PKCS#11 module is loaded.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", TOKEN])
        .args(["--so-pin", "13579111", "--pin", USER_PIN])
        .output()
        .expect("softhsm2-util: run scripts/install-test-deps-hsm");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pin = dir.join("user.pin");
    std::fs::write(&pin, USER_PIN).unwrap();
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    pin
}

#[test]
fn scac_with_broker_and_device_keys_inside_softhsm() {
    if std::env::var_os("LEDGERMQ_SKIP_HSM").is_some() {
        eprintln!("SKIP: LEDGERMQ_SKIP_HSM is set");
        return;
    }
    let module = find_softhsm_module()
        .expect("SoftHSM2 is not installed: run scripts/install-test-deps-hsm");
    let tmp = tempfile::tempdir().unwrap();
    let pin = init_token(tmp.path());
    let reference = |key: &str| {
        format!(
            "pkcs11:token={TOKEN};pin-file={};key={key};module={}",
            pin.display(),
            module.display()
        )
    };
    let generate = |key: &str, kind: KeyKind| {
        KeyRef::parse(&reference(key))
            .unwrap()
            .generate(kind)
            .unwrap()
    };
    let KeyHandle::Ed25519(sensor_key) = generate("sensor-scac", KeyKind::Ed25519) else {
        panic!("not an Ed25519 handle")
    };
    let KeyHandle::Rsa(card_key) = generate("card-scac", KeyKind::Rsa2048) else {
        panic!("not an RSA handle")
    };
    let KeyHandle::Rsa(broker_rsa) = generate("broker-rsa", KeyKind::Rsa2048) else {
        panic!("not an RSA handle")
    };
    let card_public_der = card_key.public_key_der();
    let sensor_public = sensor_key.public();

    let net = Net::start_with(&[], false, |d| {
        // The sensor's signing key now lives in the token: register it.
        let out = ledgermq(
            d,
            &[
                "admin",
                "--data-dir",
                "data",
                "--account",
                "keys/acme-admin.key",
                "device",
                "keys",
                "--id",
                SENSOR,
                "--signing-key",
                &hex::encode_prefixed(sensor_public),
            ],
        );
        assert!(
            out.status.success(),
            "admin device keys: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let devices = d.join("rsa-devices");
        std::fs::create_dir_all(&devices).unwrap();
        let pem = {
            use rsa::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
            rsa::RsaPublicKey::from_public_key_der(&card_public_der)
                .unwrap()
                .to_public_key_pem(LineEnding::LF)
                .unwrap()
        };
        std::fs::write(devices.join(format!("{CARD}.pem")), pem).unwrap();
        vec![
            (
                "scac-suites".into(),
                format!("{},{COMPAT}", Suite::Default.method()),
            ),
            ("scac-rsa-broker-key".into(), reference("broker-rsa")),
            ("scac-rsa-device-keys".into(), devices.display().to_string()),
        ]
    })
    .expect("ledgermq only");

    // Default suite: the device signs inside the token.
    let mut reader = net.connect(READER);
    reader.subscribe("plant/#");
    let mut sensor = handshake(
        net.port(),
        Suite::Default,
        SENSOR,
        &LocalKey::Ed25519(sensor_key),
        &net.broker_key(SENSOR),
        Options::default(),
    )
    .connected(&net.broker);
    sensor.publish(TOPIC, b"22.0");
    assert_eq!(reader.receive(), b"22.0");

    // Compatibility suite: both RSA keys in the token (the broker process
    // opens its own).
    let broker_public = PeerKey::Rsa {
        n: broker_rsa.modulus(),
        e: broker_rsa.public_exponent(),
    };
    let mut card = handshake(
        net.port(),
        Suite::RsaCompat,
        CARD,
        &LocalKey::Rsa(card_key),
        &broker_public,
        Options::default(),
    )
    .connected(&net.broker);
    card.subscribe("plant/#");
    card.publish(TOPIC, b"22.1");
    assert_eq!(card.receive(), b"22.1");
    assert_eq!(reader.receive(), b"22.1");

    // The key from the provisioning bundle was replaced on the ledger: the
    // broker answers a decoy step 2, which that key cannot verify. (Last:
    // the failure locks this source out for `scac_lockout`.)
    let old = net.handshake(SENSOR, Options::default());
    assert!(old.refused_step2, "the bundle's old key is not accepted");
}
