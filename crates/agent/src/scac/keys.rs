//! Device keys from a key store, and broker public keys from files.
//!
//! SCAC reaches private keys only through `ledgermq-keystore`'s handles,
//! so a key in a PEM file or inside a PKCS#11 token serves as a
//! [`LocalKey`] as it is: the private key never leaves its store.

use ledgermq_keystore::{KeyHandle, KeyRef};
use ledgermq_security::scac::{LocalKey, PeerKey};

use crate::ClientError;

/// Opens the device key named by a key reference: `file:DIR#NAME` or
/// `pkcs11:token=LABEL;pin-file=PATH;key=NAME` (docs/keystore.md).
/// Blocking (a token is opened and logged in): call it before connecting,
/// off the async runtime. Errors name the key, never a PIN.
pub fn open_device_key(key_ref: &str) -> Result<LocalKey, ClientError> {
    let key_ref = KeyRef::parse(key_ref).map_err(|e| ClientError::Credentials(e.to_string()))?;
    let handle = key_ref
        .open()
        .map_err(|e| ClientError::Credentials(format!("device key '{}': {e}", key_ref.name())))?;
    local_key(handle)
}

/// A key store's handle as a SCAC device (or broker) key. X25519 keys
/// cannot sign: refused.
pub fn local_key(handle: KeyHandle) -> Result<LocalKey, ClientError> {
    match handle {
        KeyHandle::Ed25519(key) => Ok(LocalKey::Ed25519(key)),
        KeyHandle::Rsa(key) => Ok(LocalKey::Rsa(key)),
        KeyHandle::X25519(_) => Err(ClientError::Credentials(
            "an X25519 key cannot sign: SCAC needs an Ed25519 or RSA-2048 key".into(),
        )),
    }
}

/// The broker's RSA-2048 public key for the compatibility suite, from a
/// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`, what
/// `openssl pkey -pubout` writes).
pub fn rsa_public_key_from_pem(pem: &str) -> Result<PeerKey, ClientError> {
    PeerKey::rsa_from_pem(pem).map_err(|e| ClientError::Credentials(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ledgermq_keystore::software::{SoftwareEd25519, SoftwareX25519};
    use ledgermq_keystore::{FileKeyStore, KeyKind, KeyStore as _};

    use super::*;

    #[test]
    fn x25519_keys_cannot_be_scac_keys() {
        let x25519 = KeyHandle::X25519(Arc::new(SoftwareX25519::from_bytes(&[7; 32])));
        assert!(matches!(
            local_key(x25519),
            Err(ClientError::Credentials(_))
        ));
        let ed25519 = KeyHandle::Ed25519(Arc::new(SoftwareEd25519::from_seed(&[7; 32])));
        assert!(matches!(local_key(ed25519), Ok(LocalKey::Ed25519(_))));
    }

    #[test]
    fn a_file_key_reference_opens_the_key_generated_there() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let store = FileKeyStore::open(keys.clone()).unwrap();
        let KeyHandle::Ed25519(generated) = store.generate("device", KeyKind::Ed25519).unwrap()
        else {
            panic!("not Ed25519");
        };
        let opened = open_device_key(&format!("file:{}#device", keys.display())).unwrap();
        assert_eq!(opened.public(), PeerKey::Ed25519(generated.public()));
    }

    #[test]
    fn key_references_that_do_not_parse_are_credential_errors() {
        let err = open_device_key("pkcs11:token=t;pin=1234").unwrap_err();
        assert!(matches!(err, ClientError::Credentials(_)), "{err:?}");
        assert!(!err.to_string().contains("1234"), "{err}");
    }

    #[test]
    fn a_missing_file_key_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_device_key(&format!("file:{}#device", dir.path().display())).unwrap_err();
        assert!(err.to_string().contains("'device'"), "{err}");
    }

    #[test]
    fn broker_rsa_key_is_read_from_a_subject_public_key_info_pem() {
        use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
        let mut n = vec![0xC5; 256];
        n[255] = 0x01;
        let key = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&n),
            rsa::BigUint::from(65_537u32),
        )
        .unwrap();
        let pem = key.to_public_key_pem(LineEnding::LF).unwrap();
        let parsed = rsa_public_key_from_pem(&pem).unwrap();
        assert_eq!(
            parsed,
            PeerKey::Rsa {
                n,
                e: vec![1, 0, 1]
            }
        );
    }

    #[test]
    fn broker_rsa_key_must_be_a_public_key_pem() {
        let err =
            rsa_public_key_from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
        assert!(matches!(err, Err(ClientError::Credentials(_))));
    }
}
