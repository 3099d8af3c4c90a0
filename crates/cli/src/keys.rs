//! `ledgermq keys`: private keys in a key store (a directory of 0600 files
//! or a PKCS#11 token, docs/keystore.md), named by key references.
//!
//! `generate` creates a key inside the store (in a token it never leaves
//! it) and prints its public key; `public` prints the public key of an
//! existing one — hex for Ed25519/X25519 (what `ledgermq admin device keys
//! --signing-key` takes), PEM (SubjectPublicKeyInfo) for RSA (what the
//! broker's `scac_rsa_device_keys` directory and devices'
//! `--broker-rsa-key` take).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ledgermq_keystore::{KeyHandle, KeyKind, KeyRef};

#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCmd,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Generate a key inside the store; prints its public key.
    Generate {
        /// ed25519, x25519 or rsa2048.
        #[arg(long)]
        kind: KeyKind,
        /// Where: file:DIR#NAME or pkcs11:token=LABEL;pin-file=PATH;key=NAME.
        #[arg(long, value_name = "KEYREF")]
        key: String,
    },
    /// Print the public key of a stored key.
    Public {
        #[arg(long, value_name = "KEYREF")]
        key: String,
    },
}

pub fn run(args: KeysArgs) -> Result<()> {
    let (key_ref, generated) = match &args.command {
        KeysCmd::Generate { kind, key } => {
            let key_ref = KeyRef::parse(key).context("--key")?;
            let handle = key_ref
                .generate(*kind)
                .with_context(|| format!("cannot generate a {kind} key at {key_ref}"))?;
            (key_ref, Some(handle))
        }
        KeysCmd::Public { key } => (KeyRef::parse(key).context("--key")?, None),
    };
    let handle = match generated {
        Some(h) => h,
        None => key_ref
            .open()
            .with_context(|| format!("cannot open {key_ref}"))?,
    };
    print!("{}", public_text(&handle)?);
    Ok(())
}

/// The public key as the rest of ledgermq takes it.
fn public_text(handle: &KeyHandle) -> Result<String> {
    Ok(match handle {
        KeyHandle::Ed25519(k) => {
            format!("{}\n", alloy_primitives::hex::encode_prefixed(k.public()))
        }
        KeyHandle::X25519(k) => format!("{}\n", alloy_primitives::hex::encode_prefixed(k.public())),
        KeyHandle::Rsa(k) => pem("PUBLIC KEY", &k.public_key_der()),
    })
}

/// SubjectPublicKeyInfo DER as PEM.
fn pem(label: &str, der: &[u8]) -> String {
    use rsa::pkcs8::der::pem::{encode_string, LineEnding};
    encode_string(label, LineEnding::LF, der).unwrap_or_default()
}
