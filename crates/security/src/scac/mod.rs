//! `SCACAuth-*`: mutual authentication and rolling payload keys for MQTT 5,
//! after Buetas Sanjuan et al., "MQTT Security: A Cryptographic Smart Card
//! Approach" (IEEE Access 2020).
//!
//! Sans-IO like the rest of this crate: the broker and the device client
//! feed in the bytes of CONNECT / AUTH authentication data and PUBREL user
//! properties and get back bytes to send or a typed refusal. Handshake
//! states are distinct types ([`ClientHandshake`] → [`Channel`],
//! [`BrokerHandshake`] → [`BrokerAwaiting`] → [`Channel`]), so a step cannot
//! be processed twice or out of order.
//!
//! Two suites ([`Suite`]): the default one (Ed25519 over the whole
//! transcript, ephemeral X25519 + HKDF, ChaCha20-Poly1305 with a one-way key
//! ratchet) and a compatibility suite byte-compatible with the paper's Java
//! Card applet, off by default because it inherits the paper's weaknesses.
//! `docs/scac.md` has the byte layouts, the PUBREL-loss rule and the test
//! vectors.
//!
//! Private keys are reached only through [`keys::Ed25519Signer`] and
//! [`keys::RsaKey`], so they can live in a PKCS#11 token.

mod channel;
mod compat;
mod default_suite;
mod error;
mod handshake;
pub mod keys;
pub mod softcard;

use std::sync::Arc;

pub use channel::{Channel, Direction, Epochs, Role};
pub use error::{CryptError, Party, ScacError};
pub use handshake::{
    uid_of_step1, BrokerAwaiting, BrokerCredentials, BrokerHandshake, ClientHandshake,
};
pub use keys::{Ed25519Signer, RsaKey};

/// PUBREL user property carrying the next publisher key (client → broker).
pub const PUBLISHER_KEY_PROPERTY: &str = "Np";
/// PUBREL user property carrying the next subscriber key (broker → client).
pub const SUBSCRIBER_KEY_PROPERTY: &str = "Ns";
/// Reason string of the client's DISCONNECT 0x80 after a refused handshake.
pub const AUTH_ERROR: &str = "Auth Error";
/// Reason string of the DISCONNECT 0x80 after a refused payload or key update.
pub const CRYPT_ERROR: &str = "Crypt Error";
/// MQTT 5 reason code 0x18, Continue authentication (the AUTH packets).
pub const CONTINUE_AUTHENTICATION: u8 = 0x18;
/// MQTT 5 reason code 0x87, Not authorized (CONNACK on any refusal).
pub const NOT_AUTHORIZED: u8 = 0x87;
/// MQTT 5 reason code 0x80, Unspecified error (the DISCONNECTs).
pub const UNSPECIFIED_ERROR: u8 = 0x80;

/// A SCAC cipher suite, named by its MQTT Authentication Method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// `SCACAuth-Ed25519-256-ChaCha20Poly1305-256`.
    Default,
    /// `SCACAuth-RSAPKCS1-2048-AES-128`, the paper's applet (off by default).
    RsaCompat,
}

impl Suite {
    /// Every suite, default first.
    pub const ALL: [Suite; 2] = [Suite::Default, Suite::RsaCompat];

    /// The Authentication Method name.
    pub fn method(self) -> &'static str {
        match self {
            Suite::Default => "SCACAuth-Ed25519-256-ChaCha20Poly1305-256",
            Suite::RsaCompat => "SCACAuth-RSAPKCS1-2048-AES-128",
        }
    }

    /// The suite an Authentication Method names (exact, case-sensitive).
    pub fn from_method(method: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.method() == method)
    }

    /// Checks that `uid` is a valid UID for this suite: 1–64 bytes of UTF-8
    /// (default), exactly 8 ASCII bytes (compatibility).
    pub fn check_uid(self, uid: &[u8]) -> Result<&str, ScacError> {
        match self {
            Suite::Default => {
                if uid.is_empty() || uid.len() > default_suite::MAX_UID_LEN {
                    return Err(ScacError::InvalidUid("must be 1-64 bytes"));
                }
                std::str::from_utf8(uid).map_err(|_| ScacError::InvalidUid("must be UTF-8"))
            }
            Suite::RsaCompat => {
                if uid.len() != compat::UID_LEN || !uid.is_ascii() {
                    return Err(ScacError::InvalidUid("must be exactly 8 ASCII bytes"));
                }
                std::str::from_utf8(uid).map_err(|_| ScacError::InvalidUid("must be ASCII"))
            }
        }
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method())
    }
}

/// A peer's long-term public key, as registered on the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerKey {
    /// Ed25519 public key (RFC 8032 encoding), default suite.
    Ed25519([u8; 32]),
    /// RSA-2048 public key: modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl PeerKey {
    /// An RSA public key from PEM: SubjectPublicKeyInfo (`BEGIN PUBLIC
    /// KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`). The compatibility suite's
    /// keys travel this way (the ledger registry holds only Ed25519 keys).
    pub fn rsa_from_pem(pem: &str) -> Result<PeerKey, ScacError> {
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::traits::PublicKeyParts as _;
        let key = rsa::RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
            .map_err(|_| ScacError::BadPublicKey {
                party: Party::Broker,
                reason: "not an RSA public key in PEM (SubjectPublicKeyInfo or PKCS#1)",
            })?;
        if key.size() != 256 {
            return Err(ScacError::BadPublicKey {
                party: Party::Broker,
                reason: "not an RSA-2048 key (SCAC needs 2048 bits)",
            });
        }
        Ok(PeerKey::Rsa {
            n: key.n().to_bytes_be(),
            e: key.e().to_bytes_be(),
        })
    }
}

/// A handle on one of our own private keys (it may live in a token).
#[derive(Debug, Clone)]
pub enum LocalKey {
    Ed25519(Arc<dyn Ed25519Signer>),
    Rsa(Arc<dyn RsaKey>),
}

impl LocalKey {
    /// The matching public key (asks the key store).
    pub fn public(&self) -> PeerKey {
        match self {
            LocalKey::Ed25519(k) => PeerKey::Ed25519(k.public()),
            LocalKey::Rsa(k) => PeerKey::Rsa {
                n: k.modulus(),
                e: k.public_exponent(),
            },
        }
    }
}
