//! Pkcs11KeyStore against a real SoftHSM2 token.
//!
//! PKCS#11 modules are initialised once per process and SoftHSM2 reads
//! `SOFTHSM2_CONF` only then, so each test runs in a process of its own:
//! the test function creates a temporary configuration and token directory,
//! initialises a token with `softhsm2-util`, and re-runs this test binary
//! for just that test with `SOFTHSM2_CONF` pointing there. Tests are thus
//! independent and safe to run in parallel.
//!
//! Without SoftHSM2 the tests fail, saying to run
//! `scripts/install-test-deps-hsm`; with `LEDGERMQ_SKIP_HSM=1` they pass
//! after printing that they were skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use ed25519_dalek::{Signature, VerifyingKey};
use ledgermq_keystore::software::SoftwareX25519;
use ledgermq_keystore::{
    find_softhsm_module, Ed25519Signer, KeyHandle, KeyInfo, KeyKind, KeyRef, KeyStore,
    KeyStoreError, Pin, Pkcs11Config, Pkcs11KeyStore, RsaKey, X25519Agreement,
};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::{Pkcs1v15Encrypt, Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest as _, Sha256};

const CHILD_ENV: &str = "LEDGERMQ_HSM_TEST_DIR";
const SKIP_ENV: &str = "LEDGERMQ_SKIP_HSM";
const TOKEN_LABEL: &str = "ledgermq-test";
const USER_PIN: &str = "246810";
const SO_PIN: &str = "13579111";

/// The token a test runs against (in the child process).
struct TestToken {
    dir: PathBuf,
    module: PathBuf,
}

impl TestToken {
    fn config(&self) -> Pkcs11Config {
        self.config_with_pin(USER_PIN)
    }

    fn config_with_pin(&self, pin: &str) -> Pkcs11Config {
        Pkcs11Config {
            module: self.module.clone(),
            token_label: TOKEN_LABEL.into(),
            pin: Pin::new(pin),
        }
    }

    fn store(&self) -> Pkcs11KeyStore {
        Pkcs11KeyStore::open(&self.config()).unwrap()
    }
}

/// Defines a test that runs `$body` in its own process with its own token.
macro_rules! hsm_test {
    ($(#[doc = $doc:literal])* fn $name:ident($token:ident) $body:block) => {
        $(#[doc = $doc])*
        #[test]
        fn $name() {
            run_with_own_token(stringify!($name), |$token: &TestToken| $body);
        }
    };
}

fn run_with_own_token(test: &str, body: fn(&TestToken)) {
    let module = find_softhsm_module();
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let module = module.expect("the parent found the module");
        return body(&TestToken {
            dir: dir.into(),
            module,
        });
    }
    let installed = module.as_deref().is_some_and(Path::is_file)
        && Command::new("softhsm2-util")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !installed {
        if std::env::var(SKIP_ENV).as_deref() == Ok("1") {
            eprintln!("{test}: skipped: SoftHSM2 is not installed and {SKIP_ENV}=1");
            return;
        }
        panic!(
            "SoftHSM2 (softhsm2-util and libsofthsm2.so) is not installed: run \
             scripts/install-test-deps-hsm, or set {SKIP_ENV}=1 to skip the PKCS#11 tests"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let conf = init_token(dir.path());
    let output = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, dir.path())
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown by the test harness on failure or with --nocapture.
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} failed in its own process ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
}

/// Writes a SoftHSM2 configuration under `dir` and initialises one token.
fn init_token(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", TOKEN_LABEL])
        .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "softhsm2-util --init-token failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    conf
}

fn ed25519(handle: KeyHandle) -> Arc<dyn Ed25519Signer> {
    match handle {
        KeyHandle::Ed25519(k) => k,
        other => panic!("expected Ed25519, got {:?}", other.kind()),
    }
}

fn rsa(handle: KeyHandle) -> Arc<dyn RsaKey> {
    match handle {
        KeyHandle::Rsa(k) => k,
        other => panic!("expected RSA, got {:?}", other.kind()),
    }
}

fn verify_ed25519(key: &dyn Ed25519Signer, msg: &[u8], sig: &[u8; 64]) {
    VerifyingKey::from_bytes(&key.public())
        .unwrap()
        .verify_strict(msg, &Signature::from_bytes(sig))
        .expect("Ed25519 signature verifies");
}

fn rsa_public(key: &dyn RsaKey) -> RsaPublicKey {
    RsaPublicKey::from_public_key_der(&key.public_key_der()).unwrap()
}

hsm_test! {
    fn ed25519_key_generated_in_the_token_signs_verifiably(token) {
        let store = token.store();
        let key = ed25519(store.generate("device-1", KeyKind::Ed25519).unwrap());
        for msg in [&b""[..], b"SCACAuth transcript", &[0xa5; 1000]] {
            let sig = key.sign(msg).unwrap();
            verify_ed25519(key.as_ref(), msg, &sig);
        }
    }
}

hsm_test! {
    fn rsa_2048_signs_pkcs1v15_sha256_verifiably(token) {
        let key = rsa(token.store().generate("card", KeyKind::Rsa2048).unwrap());
        assert_eq!(key.modulus().len(), 256);
        assert_eq!(key.public_exponent(), [1, 0, 1]);
        let msg = b"challenge from the broker";
        let sig = key.sign_pkcs1v15_sha256(msg).unwrap();
        rsa_public(key.as_ref())
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), &sig)
            .expect("RSA signature verifies");
    }
}

hsm_test! {
    fn rsa_raw_pkcs1v15_signature_is_the_java_card_alg_rsa_pkcs_operation(token) {
        let key = rsa(token.store().generate("card", KeyKind::Rsa2048).unwrap());
        let public = rsa_public(key.as_ref());
        // What the applet signs: arbitrary bytes, no DigestInfo.
        for msg in [&b"nonce||id"[..], &[0x42; 245]] {
            let sig = key.sign_raw_pkcs1v15(msg).unwrap();
            public
                .verify(Pkcs1v15Sign::new_unprefixed(), msg, &sig)
                .expect("raw PKCS#1 v1.5 signature verifies");
        }
        let err = key.sign_raw_pkcs1v15(&[0; 246]).unwrap_err();
        assert!(err.to_string().contains("at most 245"), "{err}");
    }
}

hsm_test! {
    fn rsa_decrypts_what_its_public_key_encrypted_and_refuses_garbage(token) {
        let key = rsa(token.store().generate("card", KeyKind::Rsa2048).unwrap());
        let secret = b"session key material";
        let ciphertext = rsa_public(key.as_ref())
            .encrypt(&mut rand_core::OsRng, Pkcs1v15Encrypt, secret)
            .unwrap();
        assert_eq!(key.decrypt_pkcs1v15(&ciphertext).unwrap().as_slice(), secret);
        let err = key.decrypt_pkcs1v15(&[0x5a; 256]).unwrap_err();
        assert!(matches!(err, KeyStoreError::DecryptionFailed), "{err}");
        // The handle keeps working after a failed operation.
        assert_eq!(key.decrypt_pkcs1v15(&ciphertext).unwrap().as_slice(), secret);
    }
}

hsm_test! {
    fn private_keys_are_sensitive_and_their_value_cannot_be_read(token) {
        let store = token.store();
        store.generate("ed", KeyKind::Ed25519).unwrap();
        store.generate("rsa", KeyKind::Rsa2048).unwrap();
        store.generate("kx", KeyKind::X25519).unwrap();

        // Look at the objects with plain PKCS#11, as any other application could.
        let ctx = Pkcs11::new(&token.module).unwrap();
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::CryptokiAlreadyInitialized,
                _,
            )) => {}
            Err(e) => panic!("{e}"),
        }
        let slot = ctx.get_slots_with_initialized_token().unwrap()[0];
        let session = ctx.open_ro_session(slot).unwrap();
        let _ = session.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())));
        for name in ["ed", "rsa", "kx"] {
            let private = session
                .find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Label(name.as_bytes().to_vec()),
                ])
                .unwrap()[0];
            let info = session
                .get_attribute_info(private, &[AttributeType::Value, AttributeType::PrivateExponent])
                .unwrap();
            for i in info {
                assert!(
                    matches!(i, AttributeInfo::Sensitive | AttributeInfo::TypeInvalid),
                    "{name}: secret attribute readable: {i:?}"
                );
            }
            let attrs = session
                .get_attributes(
                    private,
                    &[
                        AttributeType::Token,
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::NeverExtractable,
                        AttributeType::Value,
                    ],
                )
                .unwrap();
            assert_eq!(
                attrs,
                [
                    Attribute::Token(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::NeverExtractable(true),
                ],
                "{name}"
            );
        }
        // And the token refuses to make them extractable afterwards.
        let private = session
            .find_objects(&[Attribute::Label(b"ed".to_vec()), Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .unwrap()[0];
        assert!(session.update_attributes(private, &[Attribute::Extractable(true)]).is_err());
        assert!(token.dir.join("tokens").is_dir());
    }
}

hsm_test! {
    fn keys_reopen_from_a_second_store_after_the_first_is_gone(token) {
        let (ed_public, rsa_modulus) = {
            let store = token.store();
            let ed = ed25519(store.generate("device-1", KeyKind::Ed25519).unwrap());
            let rsa = rsa(store.generate("card", KeyKind::Rsa2048).unwrap());
            (ed.public(), rsa.modulus())
        }; // store and handles dropped: the process is logged out.

        let second = token.store();
        let ed = second.open_ed25519("device-1").unwrap();
        assert_eq!(ed.public(), ed_public);
        let sig = ed.sign(b"again").unwrap();
        verify_ed25519(ed.as_ref(), b"again", &sig);
        assert_eq!(second.open_rsa("card").unwrap().modulus(), rsa_modulus);

        // A third store while the second is logged in shares the log-in.
        let third = token.store();
        assert_eq!(third.open_ed25519("device-1").unwrap().public(), ed_public);
    }
}

hsm_test! {
    fn wrong_pin_and_unknown_token_are_refused_by_name(token) {
        let err = Pkcs11KeyStore::open(&token.config_with_pin("000000")).unwrap_err();
        assert!(matches!(err, KeyStoreError::PinIncorrect), "{err}");
        let mut config = token.config();
        config.token_label = "no-such-token".into();
        let err = Pkcs11KeyStore::open(&config).unwrap_err();
        assert!(matches!(err, KeyStoreError::TokenNotFound(_)), "{err}");
        assert_eq!(err.to_string(), "token 'no-such-token' not found");
    }
}

hsm_test! {
    fn names_are_unique_missing_keys_are_not_found_and_kinds_are_checked(token) {
        let store = token.store();
        store.generate("k", KeyKind::Ed25519).unwrap();
        let err = store.generate("k", KeyKind::Rsa2048).unwrap_err();
        assert!(matches!(err, KeyStoreError::KeyExists { .. }), "{err}");
        assert_eq!(err.to_string(), "key 'k' already exists in token 'ledgermq-test'");
        let err = store.open("missing").unwrap_err();
        assert_eq!(err.to_string(), "key 'missing' not found in token 'ledgermq-test'");
        let err = store.open_rsa("k").unwrap_err();
        assert!(matches!(err, KeyStoreError::WrongKind { .. }), "{err}");
        assert!(matches!(
            store.generate("../k", KeyKind::Ed25519),
            Err(KeyStoreError::InvalidName { .. })
        ));
    }
}

hsm_test! {
    fn list_names_every_key_with_its_kind(token) {
        let store = token.store();
        store.generate("b-rsa", KeyKind::Rsa2048).unwrap();
        store.generate("a-ed", KeyKind::Ed25519).unwrap();
        store.generate("c-x", KeyKind::X25519).unwrap();
        assert_eq!(
            store.list().unwrap(),
            [
                KeyInfo { name: "a-ed".into(), kind: KeyKind::Ed25519 },
                KeyInfo { name: "b-rsa".into(), kind: KeyKind::Rsa2048 },
                KeyInfo { name: "c-x".into(), kind: KeyKind::X25519 },
            ]
        );
    }
}

hsm_test! {
    fn x25519_agreement_matches_the_software_computation(token) {
        let store = token.store();
        let key = match store.generate("kx", KeyKind::X25519).unwrap() {
            KeyHandle::X25519(k) => k,
            other => panic!("expected X25519, got {:?}", other.kind()),
        };
        let peer = SoftwareX25519::generate();
        let in_token = key.agree(&peer.public()).unwrap();
        let in_software = peer.agree(&key.public()).unwrap();
        assert_eq!(*in_token, *in_software);
        assert!(matches!(key.agree(&[0; 32]), Err(KeyStoreError::NonContributory)));
        assert_eq!(store.open_x25519("kx").unwrap().public(), key.public());
    }
}

hsm_test! {
    fn one_handle_signs_from_many_threads_at_once(token) {
        let key = ed25519(token.store().generate("shared", KeyKind::Ed25519).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let key = Arc::clone(&key);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let msg = format!("thread {t} message {i}");
                        let sig = key.sign(msg.as_bytes()).unwrap();
                        verify_ed25519(key.as_ref(), msg.as_bytes(), &sig);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}

hsm_test! {
    fn key_ref_with_a_pin_file_generates_and_opens_a_token_key(token) {
        let pin_file = token.dir.join("pin");
        std::fs::write(&pin_file, format!("{USER_PIN}\n")).unwrap();
        std::fs::set_permissions(&pin_file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let text = format!(
            "pkcs11:module={};token={TOKEN_LABEL};pin-file={};key=broker",
            token.module.display(),
            pin_file.display()
        );
        let key_ref = KeyRef::parse(&text).unwrap();
        let generated = ed25519(key_ref.generate(KeyKind::Ed25519).unwrap());
        let opened = ed25519(key_ref.open().unwrap());
        assert_eq!(generated.public(), opened.public());
    }
}
