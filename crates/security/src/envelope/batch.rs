//! Verifying many envelopes at once: a broker's fast path.
//!
//! Ed25519 batch verification (ed25519-dalek `verify_batch`, one random
//! linear combination of all equations) is 2–3 times cheaper per signature
//! than one `verify_strict` each. It is not the same predicate, so this
//! function closes the gaps it can close cheaply and names the one it
//! cannot:
//!
//! - a weak (small-order) public key and a small-order `R` are refused
//!   first, exactly as `verify_strict` refuses them; a non-canonical `s`
//!   fails the batch like the single check;
//! - when the batch equation fails, every envelope is re-checked with
//!   [`Envelope::verify`], so the failures reported are exactly the
//!   envelopes `verify_strict` refuses;
//! - remaining difference: a signature whose `R` (or a key whose point)
//!   carries a small torsion component satisfies the cofactorless single
//!   equation never but the batch equation with probability up to 1/2.
//!   Only the holder of the private key can make such a signature (it must
//!   be computed with the key), so it can never forge anyone else's
//!   envelope; it lets a registered device get an envelope past a batching
//!   broker that strict verifiers (subscribers, auditors) will refuse, which
//!   is evidence against that device. Callers that need exact strict
//!   semantics call [`Envelope::verify`] per envelope.

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, VerifyingKey};

use super::{Envelope, EnvelopeError};

/// Verifies each `(topic, envelope, sender public key)`. `Ok` if every
/// signature verifies; otherwise the index and error of each one that does
/// not (by `verify_strict`), in input order.
pub fn verify_batch(
    items: &[(&str, &Envelope<'_>, &[u8; 32])],
) -> Result<(), Vec<(usize, EnvelopeError)>> {
    let mut failures = Vec::new();
    let mut indices = Vec::with_capacity(items.len());
    let mut messages = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    for (i, (topic, envelope, public)) in items.iter().enumerate() {
        match prepare(topic, envelope, public) {
            Ok((message, signature, key)) => {
                indices.push(i);
                messages.push(message);
                signatures.push(signature);
                keys.push(key);
            }
            Err(e) => failures.push((i, e)),
        }
    }
    let slices: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    if !indices.is_empty() && ed25519_dalek::verify_batch(&slices, &signatures, &keys).is_err() {
        for (k, &i) in indices.iter().enumerate() {
            if keys[k].verify_strict(slices[k], &signatures[k]).is_err() {
                failures.push((i, EnvelopeError::BadSignature { what: "envelope" }));
            }
        }
        failures.sort_by_key(|(i, _)| *i);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// The signed message, signature and key of one envelope, after the checks
/// `verify_strict` makes that the batch equation does not.
fn prepare(
    topic: &str,
    envelope: &Envelope<'_>,
    public: &[u8; 32],
) -> Result<(Vec<u8>, Signature, VerifyingKey), EnvelopeError> {
    let key = VerifyingKey::from_bytes(public)
        .map_err(|_| EnvelopeError::BadPublicKey { what: "envelope" })?;
    let signature = Signature::from_bytes(envelope.signature());
    let bad = || EnvelopeError::BadSignature { what: "envelope" };
    if key.is_weak() {
        return Err(bad());
    }
    let r = CompressedEdwardsY(*signature.r_bytes())
        .decompress()
        .ok_or_else(bad)?;
    if r.is_small_order() {
        return Err(bad());
    }
    Ok((envelope.signed_message(topic)?, signature, key))
}
