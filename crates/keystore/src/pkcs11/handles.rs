//! Handles to keys inside a token: each holds the private key's object
//! handle and its public half, and performs one operation per session
//! borrowed from the [`Token`]'s pool.

use std::fmt;
use std::sync::Arc;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::{BigUint, RsaPublicKey};
use zeroize::Zeroizing;

use super::keys::{classify, strip_leading_zeroes};
use super::token::{pkcs11_error, Token};
use crate::{
    check_contributory, check_raw_pkcs1_len, Ed25519Signer, KeyHandle, KeyKind, KeyStoreError,
    Result, RsaKey, X25519Agreement,
};

/// Builds the handle for the private-key object `private`, reading the
/// public half (which is never secret) once.
pub(super) fn load(token: &Arc<Token>, name: &str, private: ObjectHandle) -> Result<KeyHandle> {
    let key = TokenKey {
        token: Arc::clone(token),
        name: name.to_owned(),
        private,
    };
    let kind = token
        .with_session(|session| classify(session, private))
        .map_err(|e| pkcs11_error("C_GetAttributeValue", e))?
        .ok_or_else(|| {
            KeyStoreError::malformed(name, "not an Ed25519, X25519 or RSA-2048 private key")
        })?;
    Ok(match kind {
        KeyKind::Ed25519 => {
            let public = key.ec_public_key()?;
            KeyHandle::Ed25519(Arc::new(Pkcs11Ed25519 { key, public }))
        }
        KeyKind::X25519 => {
            let public = key.ec_public_key()?;
            KeyHandle::X25519(Arc::new(Pkcs11X25519 { key, public }))
        }
        KeyKind::Rsa2048 => KeyHandle::Rsa(Arc::new(Pkcs11Rsa::load(key)?)),
    })
}

/// A private-key object in a token, by handle.
struct TokenKey {
    token: Arc<Token>,
    name: String,
    private: ObjectHandle,
}

impl TokenKey {
    /// Runs one operation with the private key.
    fn run<R>(
        &self,
        operation: &'static str,
        op: impl FnOnce(&Session, ObjectHandle) -> cryptoki::error::Result<R>,
    ) -> Result<R> {
        self.token
            .with_session(|session| op(session, self.private))
            .map_err(|e| match e {
                CkError::Pkcs11(RvError::MechanismInvalid, _) => {
                    KeyStoreError::MechanismUnsupported(operation)
                }
                e => pkcs11_error(operation, e),
            })
    }

    /// The 32-byte public key of an Ed25519 or X25519 pair, from the
    /// public-key object's `CKA_EC_POINT`.
    fn ec_public_key(&self) -> Result<[u8; 32]> {
        let point = self
            .token
            .with_session(|session| {
                let id = session
                    .get_attributes(self.private, &[AttributeType::Id])?
                    .into_iter()
                    .find_map(|a| match a {
                        Attribute::Id(id) => Some(id),
                        _ => None,
                    });
                let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
                match id {
                    Some(id) if !id.is_empty() => template.push(Attribute::Id(id)),
                    _ => template.push(Attribute::Label(self.name.as_bytes().to_vec())),
                }
                let Some(public) = session.find_objects(&template)?.first().copied() else {
                    return Ok(None);
                };
                Ok(session
                    .get_attributes(public, &[AttributeType::EcPoint])?
                    .into_iter()
                    .find_map(|a| match a {
                        Attribute::EcPoint(p) => Some(p),
                        _ => None,
                    }))
            })
            .map_err(|e| pkcs11_error("C_GetAttributeValue", e))?
            .ok_or_else(|| {
                KeyStoreError::malformed(&self.name, "its public-key object is missing")
            })?;
        decode_ec_point(&point)
            .ok_or_else(|| KeyStoreError::malformed(&self.name, "CKA_EC_POINT is not 32 bytes"))
    }
}

/// `CKA_EC_POINT` of a 25519 key: a DER OCTET STRING around the 32 bytes
/// (PKCS#11 3.0), or the bare 32 bytes (some tokens).
fn decode_ec_point(point: &[u8]) -> Option<[u8; 32]> {
    match point {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest.try_into().ok(),
        raw => raw.try_into().ok(),
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' in {}", self.name, self.token.describe())
    }
}

struct Pkcs11Ed25519 {
    key: TokenKey,
    public: [u8; 32],
}

impl fmt::Debug for Pkcs11Ed25519 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Pkcs11Ed25519({:?}, public {})",
            self.key,
            hex::encode(self.public)
        )
    }
}

impl Ed25519Signer for Pkcs11Ed25519 {
    fn public(&self) -> [u8; 32] {
        self.public
    }

    fn sign(&self, msg: &[u8]) -> Result<[u8; 64]> {
        let pure = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let signature = self.key.run("CKM_EDDSA", |s, k| s.sign(&pure, k, msg))?;
        signature
            .try_into()
            .map_err(|s: Vec<u8>| KeyStoreError::Pkcs11 {
                operation: "CKM_EDDSA",
                detail: format!("the token returned a {}-byte signature", s.len()),
            })
    }
}

struct Pkcs11X25519 {
    key: TokenKey,
    public: [u8; 32],
}

impl fmt::Debug for Pkcs11X25519 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Pkcs11X25519({:?}, public {})",
            self.key,
            hex::encode(self.public)
        )
    }
}

impl X25519Agreement for Pkcs11X25519 {
    fn public(&self) -> [u8; 32] {
        self.public
    }

    /// `CKM_ECDH1_DERIVE` with the null KDF into a short-lived session
    /// object whose value is read back and destroyed: the raw secret has to
    /// leave the token, because the caller runs the KDF.
    fn agree(&self, peer_public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        // Tokens differ on low-order points (SoftHSM fails the derivation
        // with a generic error); decide here, the same way for every token.
        if is_low_order(peer_public) {
            return Err(KeyStoreError::NonContributory);
        }
        let derive = Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), peer_public));
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen(32.into()),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ];
        let value = self.key.run("CKM_ECDH1_DERIVE", |s, k| {
            let secret = s.derive_key(&derive, k, &template)?;
            let value = s.get_attributes(secret, &[AttributeType::Value]);
            let destroyed = s.destroy_object(secret);
            let value = value?.into_iter().find_map(|a| match a {
                Attribute::Value(v) => Some(Zeroizing::new(v)),
                _ => None,
            });
            destroyed?;
            Ok(value)
        })?;
        let value = value.ok_or_else(|| KeyStoreError::Pkcs11 {
            operation: "CKM_ECDH1_DERIVE",
            detail: "the derived secret has no readable CKA_VALUE".into(),
        })?;
        let secret: [u8; 32] = value
            .as_slice()
            .try_into()
            .map_err(|_| KeyStoreError::Pkcs11 {
                operation: "CKM_ECDH1_DERIVE",
                detail: format!("the token derived {} bytes, not 32", value.len()),
            })?;
        let secret = Zeroizing::new(secret);
        check_contributory(&secret)?;
        Ok(secret)
    }
}

/// Whether `point` is in the small subgroup: then X25519 with any clamped
/// scalar (a multiple of the cofactor 8) gives the all-zero output.
fn is_low_order(point: &[u8; 32]) -> bool {
    let probe = x25519_dalek::x25519([0x55; 32], *point);
    probe.iter().all(|&b| b == 0)
}

struct Pkcs11Rsa {
    key: TokenKey,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    public_der: Vec<u8>,
}

impl Pkcs11Rsa {
    fn load(key: TokenKey) -> Result<Self> {
        let attrs = key
            .token
            .with_session(|s| {
                s.get_attributes(
                    key.private,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )
            })
            .map_err(|e| pkcs11_error("C_GetAttributeValue", e))?;
        let (mut modulus, mut exponent) = (None, None);
        for attr in attrs {
            match attr {
                Attribute::Modulus(n) => modulus = Some(strip_leading_zeroes(&n).to_vec()),
                Attribute::PublicExponent(e) => exponent = Some(strip_leading_zeroes(&e).to_vec()),
                _ => {}
            }
        }
        let (Some(modulus), Some(exponent)) = (modulus, exponent) else {
            return Err(KeyStoreError::malformed(
                &key.name,
                "the token does not show the RSA modulus and public exponent",
            ));
        };
        let public = RsaPublicKey::new(
            BigUint::from_bytes_be(&modulus),
            BigUint::from_bytes_be(&exponent),
        )
        .map_err(|e| KeyStoreError::malformed(&key.name, e))?;
        let public_der = public
            .to_public_key_der()
            .map_err(|e| KeyStoreError::malformed(&key.name, e))?
            .into_vec();
        Ok(Pkcs11Rsa {
            key,
            modulus,
            exponent,
            public_der,
        })
    }
}

impl fmt::Debug for Pkcs11Rsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Pkcs11Rsa({:?}, modulus {}…)",
            self.key,
            hex::encode(&self.modulus[..8])
        )
    }
}

impl RsaKey for Pkcs11Rsa {
    fn modulus(&self) -> Vec<u8> {
        self.modulus.clone()
    }

    fn public_exponent(&self) -> Vec<u8> {
        self.exponent.clone()
    }

    fn public_key_der(&self) -> Vec<u8> {
        self.public_der.clone()
    }

    fn sign_pkcs1v15_sha256(&self, msg: &[u8]) -> Result<Vec<u8>> {
        self.key.run("CKM_SHA256_RSA_PKCS", |s, k| {
            s.sign(&Mechanism::Sha256RsaPkcs, k, msg)
        })
    }

    fn sign_raw_pkcs1v15(&self, msg: &[u8]) -> Result<Vec<u8>> {
        check_raw_pkcs1_len(msg.len(), self.modulus.len())?;
        self.key
            .run("CKM_RSA_PKCS", |s, k| s.sign(&Mechanism::RsaPkcs, k, msg))
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let result = self.key.token.with_session(|s| {
            s.decrypt(&Mechanism::RsaPkcs, self.key.private, ciphertext)
                .map(Zeroizing::new)
        });
        match result {
            Ok(plaintext) => Ok(plaintext),
            // SoftHSM 2.6 reports bad padding as CKR_GENERAL_ERROR.
            Err(CkError::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::DataLenRange
                | RvError::GeneralError,
                _,
            )) => Err(KeyStoreError::DecryptionFailed),
            Err(e) => Err(pkcs11_error("CKM_RSA_PKCS decryption", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points_are_accepted_wrapped_or_bare() {
        let mut wrapped = vec![0x04, 0x20];
        wrapped.extend([9u8; 32]);
        assert_eq!(decode_ec_point(&wrapped), Some([9u8; 32]));
        assert_eq!(decode_ec_point(&[7u8; 32]), Some([7u8; 32]));
        assert_eq!(decode_ec_point(&[7u8; 33]), None);
    }

    #[test]
    fn low_order_points_are_recognised() {
        assert!(is_low_order(&[0; 32]));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(is_low_order(&one));
        assert!(!is_low_order(&x25519_dalek::X25519_BASEPOINT_BYTES));
    }
}
