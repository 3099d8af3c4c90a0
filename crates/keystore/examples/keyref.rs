//! Generate, inspect and use a key named by a key reference.
//!
//! ```text
//! cargo run -p ledgermq-keystore --example keyref -- generate ed25519 KEYREF
//! cargo run -p ledgermq-keystore --example keyref -- public KEYREF
//! cargo run -p ledgermq-keystore --example keyref -- sign KEYREF MESSAGE
//! ```
//!
//! KEYREF is `file:DIR#NAME` or `pkcs11:token=LABEL;pin-file=PATH;key=NAME`
//! (see docs/keystore.md). `sign` prints an Ed25519 signature, or an RSA
//! PKCS#1 v1.5 SHA-256 signature, in hex.

use std::process::ExitCode;

use ledgermq_keystore::{KeyHandle, KeyKind, KeyRef};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["generate", kind, key_ref] => {
            let kind: KeyKind = kind.parse()?;
            let key = parse(key_ref)?.generate(kind).map_err(|e| e.to_string())?;
            println!("generated {kind} key {}", public_hex(&key));
        }
        ["public", key_ref] => {
            let key = parse(key_ref)?.open().map_err(|e| e.to_string())?;
            println!("{} {}", key.kind(), public_hex(&key));
        }
        ["sign", key_ref, message] => {
            let signature = match parse(key_ref)?.open().map_err(|e| e.to_string())? {
                KeyHandle::Ed25519(key) => key.sign(message.as_bytes()).map(|s| s.to_vec()),
                KeyHandle::Rsa(key) => key.sign_pkcs1v15_sha256(message.as_bytes()),
                KeyHandle::X25519(_) => return Err("an X25519 key cannot sign".into()),
            };
            println!("{}", hex::encode(signature.map_err(|e| e.to_string())?));
        }
        _ => {
            return Err("usage: keyref generate ed25519|x25519|rsa2048 KEYREF \
                        | public KEYREF | sign KEYREF MESSAGE"
                .into())
        }
    }
    Ok(())
}

fn parse(text: &str) -> Result<KeyRef, String> {
    KeyRef::parse(text).map_err(|e| e.to_string())
}

/// The public key in hex (RSA: the DER SubjectPublicKeyInfo).
fn public_hex(key: &KeyHandle) -> String {
    match key {
        KeyHandle::Ed25519(k) => hex::encode(k.public()),
        KeyHandle::X25519(k) => hex::encode(k.public()),
        KeyHandle::Rsa(k) => hex::encode(k.public_key_der()),
    }
}
