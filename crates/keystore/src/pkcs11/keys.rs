//! Key objects inside a token: how they are generated, found and recognised.
//!
//! A key named `n` is a private-key object with `CKA_LABEL = n` and its
//! public-key object with the same label and `CKA_ID` (see [`key_id`]).
//! Private keys are generated with `CKA_TOKEN`, `CKA_PRIVATE`,
//! `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`: the token keeps them and
//! performs the operations; handles only hold object handles and the public
//! key (see `handles.rs`).

use std::sync::Arc;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use sha2::{Digest as _, Sha256};

use super::handles::load;
use super::token::{pkcs11_error, Token};
use crate::{KeyHandle, KeyKind, KeyStoreError, Result};

/// DER `OBJECT IDENTIFIER 1.3.101.112` (id-Ed25519, RFC 8410).
const EC_PARAMS_ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER `PrintableString "edwards25519"`, the PKCS#11 3.0 curve-name form.
const EC_PARAMS_ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";
/// DER `OBJECT IDENTIFIER 1.3.101.110` (id-X25519, RFC 8410).
const EC_PARAMS_X25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x6e];
/// DER `PrintableString "curve25519"`, the PKCS#11 3.0 curve-name form.
const EC_PARAMS_X25519_NAME: &[u8] = b"\x13\x0acurve25519";
const RSA_MODULUS_BYTES: usize = 256;
const RSA_PUBLIC_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];

/// `CKA_ID` of the key named `name`: the first 16 bytes of SHA-256(name).
/// Stable, so other PKCS#11 tools can find the pair by id as well as label.
pub(crate) fn key_id(name: &str) -> Vec<u8> {
    Sha256::digest(name.as_bytes())[..16].to_vec()
}

/// The private-key object labelled `name`, if there is exactly one.
pub(crate) fn find_private_key(
    session: &Session,
    name: &str,
) -> cryptoki::error::Result<Vec<ObjectHandle>> {
    session.find_objects(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Label(name.as_bytes().to_vec()),
    ])
}

/// What a private-key object is, from its attributes: `None` for kinds this
/// crate does not handle (P-256, Ed448, RSA of another size…).
pub(crate) fn classify(
    session: &Session,
    private: ObjectHandle,
) -> cryptoki::error::Result<Option<KeyKind>> {
    let attrs = session.get_attributes(
        private,
        &[
            AttributeType::KeyType,
            AttributeType::EcParams,
            AttributeType::Modulus,
        ],
    )?;
    let mut key_type = None;
    let mut ec_params = None;
    let mut modulus = None;
    for attr in attrs {
        match attr {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(p) => ec_params = Some(p),
            Attribute::Modulus(m) => modulus = Some(m),
            _ => {}
        }
    }
    let curve = ec_params.as_deref();
    Ok(match key_type {
        Some(t) if t == KeyType::RSA => modulus
            .filter(|m| strip_leading_zeroes(m).len() == RSA_MODULUS_BYTES)
            .map(|_| KeyKind::Rsa2048),
        Some(t) if t == KeyType::EC_EDWARDS => match curve {
            Some(EC_PARAMS_ED25519_OID | EC_PARAMS_ED25519_NAME) => Some(KeyKind::Ed25519),
            // SoftHSM 2.6 has no CKM_EC_MONTGOMERY_KEY_PAIR_GEN and files
            // X25519 keys as CKK_EC_EDWARDS (see `generate`).
            Some(EC_PARAMS_X25519_OID | EC_PARAMS_X25519_NAME) => Some(KeyKind::X25519),
            _ => None,
        },
        Some(t) if t == KeyType::EC_MONTGOMERY => match curve {
            Some(EC_PARAMS_X25519_OID | EC_PARAMS_X25519_NAME) => Some(KeyKind::X25519),
            _ => None,
        },
        _ => None,
    })
}

/// Generates the key pair `name` of `kind` in the token.
pub(crate) fn generate(token: &Arc<Token>, name: &str, kind: KeyKind) -> Result<KeyHandle> {
    let common = |private: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Label(name.as_bytes().to_vec()),
            Attribute::Id(key_id(name)),
        ]
    };
    let secret = |usage: &[Attribute]| {
        let mut t = common(true);
        t.extend([Attribute::Sensitive(true), Attribute::Extractable(false)]);
        t.extend_from_slice(usage);
        t
    };
    let public = |extra: &[Attribute]| {
        let mut t = common(false);
        t.extend_from_slice(extra);
        t
    };
    let (mechanism, curves): (Mechanism, &[&[u8]]) = match kind {
        KeyKind::Ed25519 => (
            Mechanism::EccEdwardsKeyPairGen,
            &[EC_PARAMS_ED25519_OID, EC_PARAMS_ED25519_NAME],
        ),
        KeyKind::X25519 => (
            x25519_generation_mechanism(token)?,
            &[EC_PARAMS_X25519_OID, EC_PARAMS_X25519_NAME],
        ),
        KeyKind::Rsa2048 => (Mechanism::RsaPkcsKeyPairGen, &[]),
    };
    let (public_template, private_template) = match kind {
        KeyKind::Ed25519 => (
            public(&[Attribute::Verify(true)]),
            secret(&[Attribute::Sign(true)]),
        ),
        KeyKind::X25519 => (public(&[]), secret(&[Attribute::Derive(true)])),
        KeyKind::Rsa2048 => (
            public(&[
                Attribute::ModulusBits((RSA_MODULUS_BYTES as u64 * 8).into()),
                Attribute::PublicExponent(RSA_PUBLIC_EXPONENT.to_vec()),
                Attribute::Verify(true),
                Attribute::Encrypt(true),
            ]),
            secret(&[Attribute::Sign(true), Attribute::Decrypt(true)]),
        ),
    };

    let result = token.with_session(|session| {
        if !find_private_key(session, name)?.is_empty() {
            return Ok(None);
        }
        let private = if curves.is_empty() {
            session
                .generate_key_pair(&mechanism, &public_template, &private_template)?
                .1
        } else {
            generate_on_curve(
                session,
                &mechanism,
                curves,
                &public_template,
                &private_template,
            )?
        };
        Ok(Some(private))
    });
    let private = match result {
        Ok(Some(private)) => private,
        Ok(None) => {
            return Err(KeyStoreError::KeyExists {
                name: name.to_owned(),
                store: token.describe(),
            })
        }
        Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => {
            return Err(KeyStoreError::MechanismUnsupported(mechanism_name(
                mechanism.mechanism_type(),
            )))
        }
        Err(e) => return Err(pkcs11_error("C_GenerateKeyPair", e)),
    };
    load(token, name, private)
}

/// Tries each encoding of the curve in turn: tokens differ in which
/// `CKA_EC_PARAMS` form (OID or curve name) they accept.
fn generate_on_curve(
    session: &Session,
    mechanism: &Mechanism,
    curves: &[&[u8]],
    public_template: &[Attribute],
    private_template: &[Attribute],
) -> cryptoki::error::Result<ObjectHandle> {
    let mut last_error = None;
    for curve in curves {
        let mut template = public_template.to_vec();
        template.push(Attribute::EcParams(curve.to_vec()));
        match session.generate_key_pair(mechanism, &template, private_template) {
            Ok((_, private)) => return Ok(private),
            Err(
                e @ CkError::Pkcs11(
                    RvError::CurveNotSupported
                    | RvError::DomainParamsInvalid
                    | RvError::AttributeValueInvalid
                    | RvError::TemplateInconsistent,
                    _,
                ),
            ) => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or(CkError::InvalidValue))
}

/// `CKM_EC_MONTGOMERY_KEY_PAIR_GEN` (PKCS#11 3.0) if the token has it; else
/// `CKM_EC_EDWARDS_KEY_PAIR_GEN` on the X25519 curve, which is how SoftHSM
/// 2.6 makes X25519 keys, if the token can derive with `CKM_ECDH1_DERIVE`.
fn x25519_generation_mechanism(token: &Token) -> Result<Mechanism<'static>> {
    if token.supports(MechanismType::ECC_MONTGOMERY_KEY_PAIR_GEN)? {
        return Ok(Mechanism::EccMontgomeryKeyPairGen);
    }
    if token.supports(MechanismType::ECC_EDWARDS_KEY_PAIR_GEN)?
        && token.supports(MechanismType::ECDH1_DERIVE)?
    {
        return Ok(Mechanism::EccEdwardsKeyPairGen);
    }
    Err(KeyStoreError::MechanismUnsupported(
        "CKM_EC_MONTGOMERY_KEY_PAIR_GEN (X25519)",
    ))
}

fn mechanism_name(mechanism: MechanismType) -> &'static str {
    match mechanism {
        MechanismType::ECC_EDWARDS_KEY_PAIR_GEN => "CKM_EC_EDWARDS_KEY_PAIR_GEN (Ed25519)",
        MechanismType::ECC_MONTGOMERY_KEY_PAIR_GEN => "CKM_EC_MONTGOMERY_KEY_PAIR_GEN (X25519)",
        MechanismType::RSA_PKCS_KEY_PAIR_GEN => "CKM_RSA_PKCS_KEY_PAIR_GEN",
        MechanismType::EDDSA => "CKM_EDDSA",
        MechanismType::ECDH1_DERIVE => "CKM_ECDH1_DERIVE",
        MechanismType::SHA256_RSA_PKCS => "CKM_SHA256_RSA_PKCS",
        MechanismType::RSA_PKCS => "CKM_RSA_PKCS",
        _ => "a required mechanism",
    }
}

/// Opens the key named `name` in the token.
pub(crate) fn open(token: &Arc<Token>, name: &str) -> Result<KeyHandle> {
    let found = token
        .with_session(|session| find_private_key(session, name))
        .map_err(|e| pkcs11_error("C_FindObjects", e))?;
    match found.as_slice() {
        [] => Err(KeyStoreError::KeyNotFound {
            name: name.to_owned(),
            store: token.describe(),
        }),
        [private] => load(token, name, *private),
        more => Err(KeyStoreError::malformed(
            name,
            format!(
                "{} private keys carry this label in {}",
                more.len(),
                token.describe()
            ),
        )),
    }
}

pub(super) fn strip_leading_zeroes(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_stable_and_distinct() {
        assert_eq!(key_id("device-1"), key_id("device-1"));
        assert_ne!(key_id("device-1"), key_id("device-2"));
        assert_eq!(key_id("x").len(), 16);
    }
}
