//! SCAC (`SCACAuth-*`, docs/scac.md) on the device side: what a device
//! needs to use [`crate::Auth::Scac`].
//!
//! The protocol itself — the three handshake steps, the rolling payload
//! keys, the PUBREL key updates — is `ledgermq-security`'s sans-IO state
//! machine ([`ledgermq_security::scac`]); the client only carries its
//! bytes: step 1 in CONNECT, steps 2 and 3 in AUTH 0x18, sealed QoS 2
//! payloads, and the `Np` / `Ns` user properties of PUBREL. This module
//! holds the keys around it: the device key from a key store (a file or a
//! PKCS#11 token, [`open_device_key`]) or from the provisioning bundle
//! ([`ScacCredentials`]), and the broker's public key (the bundle's
//! broker nodes, or an RSA public key file for the compatibility suite).

pub(crate) mod bundle;
mod keys;
pub(crate) mod steps;

pub use bundle::{BrokerNode, ScacCredentials};
pub use keys::{local_key, open_device_key, rsa_public_key_from_pem};
pub use ledgermq_security::scac::{
    CryptError, LocalKey, PeerKey, ScacError, Suite, AUTH_ERROR, CRYPT_ERROR,
};
