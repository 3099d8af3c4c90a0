//! `ledgermq keys generate|public` with a file key store: what is printed,
//! what is written, and the errors a user gets.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn keys(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledgermq"))
        .arg("keys")
        .args(args)
        .output()
        .expect("run ledgermq")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn generate_writes_a_private_key_file_and_prints_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keys");
    let ed = format!("file:{}#device", store.display());
    let printed = stdout(&keys(&["generate", "--kind", "ed25519", "--key", &ed]));
    let hex = printed.trim();
    assert!(hex.starts_with("0x") && hex.len() == 66, "{printed:?}");
    assert_eq!(stdout(&keys(&["public", "--key", &ed])), printed);
    let mode = std::fs::metadata(store.join("device.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let rsa = format!("file:{}#card", store.display());
    let pem = stdout(&keys(&["generate", "--kind", "rsa2048", "--key", &rsa]));
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    assert!(pem.ends_with("-----END PUBLIC KEY-----\n"), "{pem}");
    assert!(ledgermq_security::scac::PeerKey::rsa_from_pem(&pem).is_ok());
    assert_eq!(stdout(&keys(&["public", "--key", &rsa])), pem);

    // A name is never reused, and errors say what is wrong.
    let again = keys(&["generate", "--kind", "ed25519", "--key", &ed]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let missing = keys(&["public", "--key", &format!("file:{}#nope", store.display())]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    let bad = keys(&["public", "--key", "somewhere"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("key reference"));
}
