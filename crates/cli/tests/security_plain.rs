//! Plain security mode: password file (argon2id, `ledgermq passwd`) and
//! the mosquitto-like ACL file. ledgermq-only (file formats are ours);
//! reason codes per MQTT 5.0 §3.2.2.2, §3.9.3, §3.4.2.1 and 3.1.1 §3.2.2.3.

mod common;

use common::*;
use std::process::Command;

fn passwd(file: &std::path::Path, user: &str, password: &str) {
    let out = run_with_timeout(
        Command::new(ledgermq_bin())
            .args(["passwd", "--file"])
            .arg(file)
            .args(["--user", user, "--password", password]),
        std::time::Duration::from_secs(30),
    );
    assert!(out.success(), "ledgermq passwd failed: {out:?}");
}

const ACL: &str = "\
# rules for everyone, anonymous included
topic read public/#
topic readwrite open/#
topic deny open/secret

user alice
topic readwrite alice/#
topic write sensors/+/data
topic read sensors/#
topic deny sensors/vault/#

user bob
topic read alice/status
topic write sensors/vault/#

pattern readwrite devices/%u/#
pattern read clients/%c/inbox
";

/// The password file: users alice/wonderland, bob/builder, `+`/plus and
/// `#`/hash. argon2id is slow in debug builds and nextest runs every test
/// in its own process, so it is made once per ledgermq binary and kept in
/// Cargo's target tmp dir.
fn password_file() -> &'static std::path::Path {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let meta = std::fs::metadata(ledgermq_bin()).expect("ledgermq binary");
        let stamp = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join(format!("security-passwd-{stamp}-{}", meta.len()));
        if !path.exists() {
            let tmp = dir.join(format!("security-passwd-{}.tmp", unique()));
            passwd(&tmp, "alice", "wonderland");
            passwd(&tmp, "bob", "builder");
            passwd(&tmp, "+", "plus");
            passwd(&tmp, "#", "hash");
            // Atomic: concurrent test processes never see a partial file.
            std::fs::rename(&tmp, &path).unwrap();
        }
        path
    })
}

fn secured(anonymous: bool) -> Option<Broker> {
    if skip_unless_ledgermq("password file and ACL file formats") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("passwd");
    let acl = dir.path().join("acl");
    std::fs::copy(password_file(), &pw).unwrap();
    std::fs::write(&acl, ACL).unwrap();
    let b = Broker::with(&[
        ("password-file", pw.to_str().unwrap()),
        ("acl-file", acl.to_str().unwrap()),
        ("allow-anonymous", if anonymous { "true" } else { "false" }),
    ])
    .unwrap();
    // The broker may re-read its files: keep them as long as it runs.
    std::fs::copy(&acl, b.path("acl")).unwrap();
    drop(dir.keep());
    Some(b)
}

fn user(id: &str, name: &str, password: &str) -> Connect {
    Connect {
        username: Some(name.into()),
        password: Some(password.as_bytes().to_vec()),
        ..Connect::v5(id)
    }
}

fn user3(id: &str, name: &str, password: &str) -> Connect {
    Connect {
        level: V3,
        ..user(id, name, password)
    }
}

#[test]
fn passwd_writes_argon2id_entries_to_a_private_file() {
    if skip_unless_ledgermq("ledgermq passwd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    passwd(&f, "carol", "secret");
    // A password file someone made readable becomes private again.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    passwd(&f, "dave", "other");
    passwd(&f, "carol", "changed");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["pw"], "temporary files left behind");
    let text = std::fs::read_to_string(&f).unwrap();
    let mut users: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(':').next().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, vec!["carol", "dave"], "one line per user: {text}");
    assert!(
        text.lines()
            .all(|l| l.is_empty() || l.contains(":$argon2id$")),
        "{text}"
    );
    assert!(!text.contains("secret") && !text.contains("changed"));
}

/// §3.2.2.2: correct user name and password: CONNACK 0x00.
#[test]
fn correct_password_is_accepted() {
    let Some(b) = secured(false) else { return };
    let (_c, ack) = b.connect(user("a1", "alice", "wonderland"));
    assert_eq!(ack.code, 0);
}

/// §3.2.2.2: wrong password: CONNACK 0x86, then close.
#[test]
fn wrong_password_is_refused_with_0x86() {
    let Some(b) = secured(false) else { return };
    let (mut c, ack) = b.connect(user("a2", "alice", "nope"));
    assert_eq!(ack.code, 0x86);
    c.expect_closed();
}

/// 3.1.1 §3.2.2.3: wrong password: return code 4.
#[test]
fn wrong_password_is_refused_with_return_code_4_v311() {
    let Some(b) = secured(false) else { return };
    let (mut c, ack) = b.connect(user3("a3", "alice", "nope"));
    assert_eq!(ack.code, 4);
    c.expect_closed();
}

/// §3.2.2.2: unknown user: CONNACK 0x86.
#[test]
fn unknown_user_is_refused_with_0x86() {
    let Some(b) = secured(false) else { return };
    let (_c, ack) = b.connect(user("a4", "mallory", "x"));
    assert_eq!(ack.code, 0x86);
}

/// Anonymous client when anonymous access is off: refused (0x86 or 0x87).
#[test]
fn anonymous_client_is_refused_when_anonymous_disabled() {
    let Some(b) = secured(false) else { return };
    let (_c, ack) = b.connect(Connect::v5("anon"));
    assert!(
        ack.code == 0x86 || ack.code == 0x87,
        "CONNACK {:#04x}",
        ack.code
    );
}

/// 3.1.1: anonymous refused with return code 4 or 5.
#[test]
fn anonymous_v311_client_is_refused_when_anonymous_disabled() {
    let Some(b) = secured(false) else { return };
    let (_c, ack) = b.connect(Connect::v3("anon3"));
    assert!(ack.code == 4 || ack.code == 5, "CONNACK {}", ack.code);
}

/// Global `topic read` rule applies to anonymous clients.
#[test]
fn global_read_rule_applies_to_anonymous_clients() {
    let Some(b) = secured(true) else { return };
    let mut c = b.v5("anon-reader");
    assert_eq!(c.subscribe("public/news", 1), 1);
}

/// §3.9.3: SUBSCRIBE without a read rule: SUBACK 0x87.
#[test]
fn subscribe_without_read_permission_gets_suback_0x87() {
    let Some(b) = secured(true) else { return };
    let mut c = b.connect_ok(user("bob1", "bob", "builder"));
    let codes = c.subscribe_with(
        &[("alice/private", 1), ("alice/status", 1)],
        Props::default(),
    );
    assert_eq!(codes, vec![0x87, 0x01]);
}

/// 3.1.1 §3.9.3: refused SUBSCRIBE filter: return code 0x80.
#[test]
fn subscribe_without_read_permission_gets_0x80_v311() {
    let Some(b) = secured(true) else { return };
    let mut c = b.connect_ok(user3("bob3", "bob", "builder"));
    assert_eq!(c.subscribe("alice/private", 1), 0x80);
}

/// §3.8.4: a wildcard filter wider than the read rules is refused.
#[test]
fn wildcard_subscription_wider_than_read_rule_is_refused() {
    let Some(b) = secured(true) else { return };
    let mut c = b.connect_ok(user("bob2", "bob", "builder"));
    assert_eq!(c.subscribe("alice/#", 0), 0x87);
}

/// §3.4.2.1: a refused QoS 1 PUBLISH gets PUBACK 0x87 and is not delivered.
#[test]
fn unauthorized_qos1_publish_gets_puback_0x87_and_is_dropped() {
    let Some(b) = secured(true) else { return };
    let mut reader = b.connect_ok(user("alice-r", "alice", "wonderland"));
    reader.subscribe("alice/#", 1);
    let mut bob = b.connect_ok(user("bob-w", "bob", "builder"));
    assert_eq!(bob.publish("alice/inbox", b"intrusion", 1, false), 0x87);
    reader.expect_nothing(QUIET);
}

/// §3.5.2.1: a refused QoS 2 PUBLISH gets PUBREC 0x87.
#[test]
fn unauthorized_qos2_publish_gets_pubrec_0x87() {
    let Some(b) = secured(true) else { return };
    let mut bob = b.connect_ok(user("bob-q2", "bob", "builder"));
    assert_eq!(bob.publish("alice/inbox", b"x", 2, false), 0x87);
}

/// A refused QoS 0 PUBLISH is silently dropped; the connection stays.
#[test]
fn unauthorized_qos0_publish_is_dropped() {
    let Some(b) = secured(true) else { return };
    let mut reader = b.connect_ok(user("alice-r0", "alice", "wonderland"));
    reader.subscribe("alice/#", 0);
    let mut bob = b.connect_ok(user("bob-q0", "bob", "builder"));
    bob.publish("alice/inbox", b"x", 0, false);
    bob.ping();
    reader.expect_nothing(QUIET);
}

/// 3.1.1: a refused PUBLISH is acknowledged normally but not delivered.
#[test]
fn unauthorized_v311_publish_is_acked_but_dropped() {
    let Some(b) = secured(true) else { return };
    let mut reader = b.connect_ok(user("alice-r3", "alice", "wonderland"));
    reader.subscribe("alice/#", 1);
    let mut bob = b.connect_ok(user3("bob-p3", "bob", "builder"));
    assert_eq!(bob.publish("alice/inbox", b"x", 1, false), 0);
    reader.expect_nothing(QUIET);
}

/// Authorized publish within the user's section is delivered.
#[test]
fn authorized_publish_is_delivered() {
    let Some(b) = secured(true) else { return };
    let mut reader = b.connect_ok(user("alice-rd", "alice", "wonderland"));
    reader.subscribe("sensors/#", 1);
    let mut alice = b.connect_ok(user("alice-wr", "alice", "wonderland"));
    assert!(alice.publish("sensors/s1/data", b"21.5", 1, false) < 0x80);
    assert_eq!(reader.recv_publish_ack().payload, b"21.5");
}

/// A wildcard subscription never delivers what a deny rule forbids:
/// `read sensors/#` + `deny sensors/vault/#` lets alice subscribe to
/// `sensors/#`, and each delivery is checked (live and retained), so a
/// message bob may publish under `sensors/vault/` never reaches her.
#[test]
fn a_wildcard_subscription_does_not_deliver_what_a_deny_rule_forbids() {
    let Some(b) = secured(true) else { return };
    let mut bob = b.connect_ok(user("bob-vault", "bob", "builder"));
    assert!(bob.publish("sensors/vault/key", b"retained secret", 1, true) < 0x80);
    let mut alice = b.connect_ok(user("alice-wild", "alice", "wonderland"));
    assert_eq!(alice.subscribe("sensors/#", 1), 1);
    let mut alice3 = b.connect_ok(user3("alice-wild3", "alice", "wonderland"));
    assert_eq!(alice3.subscribe("sensors/#", 1), 1);
    assert!(bob.publish("sensors/vault/code", b"live secret", 1, false) < 0x80);
    let mut writer = b.connect_ok(user("alice-w2", "alice", "wonderland"));
    assert!(writer.publish("sensors/s9/data", b"public", 1, false) < 0x80);
    for c in [&mut alice, &mut alice3] {
        assert_eq!(c.recv_publish_ack().payload, b"public");
        c.expect_nothing(QUIET);
    }
}

/// `topic deny` overrides a broader grant.
#[test]
fn deny_rule_overrides_broader_grant() {
    let Some(b) = secured(true) else { return };
    let mut c = b.v5("anon-deny");
    assert_eq!(c.subscribe("open/secret", 0), 0x87);
    assert_eq!(c.subscribe("open/other", 0), 0);
}

/// `pattern … %u`: a user gets their own subtree, not another user's.
#[test]
fn username_pattern_grants_own_subtree_only() {
    let Some(b) = secured(true) else { return };
    let mut alice = b.connect_ok(user("alice-dev", "alice", "wonderland"));
    assert_eq!(alice.subscribe("devices/alice/temp", 1), 1);
    assert_eq!(alice.subscribe("devices/bob/temp", 1), 0x87);
    assert!(alice.publish("devices/alice/temp", b"x", 1, false) < 0x80);
    assert_eq!(alice.publish("devices/bob/temp", b"x", 1, false), 0x87);
}

/// `pattern … %c`: substitution of the client id.
#[test]
fn client_id_pattern_grants_own_inbox_only() {
    let Some(b) = secured(true) else { return };
    let mut c = b.connect_ok(user("unit-7", "bob", "builder"));
    assert_eq!(c.subscribe("clients/unit-7/inbox", 1), 1);
    assert_eq!(c.subscribe("clients/unit-8/inbox", 1), 0x87);
}

/// CVE-2017-7650 class: a user name containing `+` never matches `%u`.
#[test]
fn username_with_plus_never_matches_pattern() {
    let Some(b) = secured(true) else { return };
    let (mut c, ack) = b.connect(user("plus-user", "+", "plus"));
    if ack.code != 0 {
        return; // refusing such a user outright is also safe
    }
    assert!(
        c.subscribe("devices/+/#", 1) >= 0x80,
        "'+' user read every device"
    );
    assert!(c.subscribe("devices/+/x", 1) >= 0x80);
}

/// CVE-2017-7650 class: a user name `#` never matches `%u`.
#[test]
fn username_with_hash_never_matches_pattern() {
    let Some(b) = secured(true) else { return };
    let (mut c, ack) = b.connect(user("hash-user", "#", "hash"));
    if ack.code != 0 {
        return;
    }
    assert!(
        c.subscribe("devices/#", 1) >= 0x80,
        "'#' user read every device"
    );
}

/// CVE-2017-7650 class: a client id containing `+` never matches `%c`.
#[test]
fn client_id_with_wildcard_never_matches_pattern() {
    let Some(b) = secured(true) else { return };
    let (mut c, ack) = b.connect(user("+", "bob", "builder"));
    if ack.code != 0 {
        return;
    }
    assert!(
        c.subscribe("clients/+/inbox", 1) >= 0x80,
        "'+' client read every inbox"
    );
}
