//! The envelope itself: the PUBLISH payload of a protected topic, parsed
//! without copying, verified by anyone who knows the sender's public key,
//! opened only by holders of the epoch's group key.
//!
//! Order of checks on receipt: [`Envelope::parse`] (layout, limits; no
//! allocation from a declared length), then the signature
//! ([`Envelope::verify`], what a broker does, plus [`Envelope::check_sender`]
//! and [`Envelope::check_sequence`] against its replay counter), then, at a
//! subscriber, decryption ([`Envelope::open_verified`]). The signature is
//! over the ciphertext, so checking it needs no key; the topic is bound into
//! both the signature and the AEAD, so an envelope moved to another topic
//! fails both.

use std::sync::Arc;

use chacha20poly1305::aead::{AeadInPlace as _, KeyInit as _};
use chacha20poly1305::XChaCha20Poly1305;
use ed25519_dalek::{Signature, VerifyingKey};
use ledgermq_keystore::Ed25519Signer;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::codec::{check_id, put_short, put_topic, Reader};
use super::group_key::put_group_epoch;
use super::{EnvelopeError, GroupKey, MAX_BODY_LEN, MAX_GROUP_LEN, MAX_SENDER_LEN};

/// First four bytes of every envelope.
pub const ENVELOPE_MAGIC: &[u8; 4] = b"LMQE";
/// The envelope layout version defined here.
pub const ENVELOPE_VERSION: u8 = 0x01;
/// Length of the XChaCha20-Poly1305 nonce of a sealed envelope.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag at the end of a sealed body.
pub const TAG_LEN: usize = 16;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

const WHAT: &str = "envelope";
const SIGNATURE_TAG: &[u8] = b"LMQ-ENV-1 sig";
const AAD_TAG: &[u8] = b"LMQ-ENV-1 aad";
const KIND_SEALED: u8 = 0x01;
const KIND_SIGNED: u8 = 0x02;

/// What an envelope protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvelopeKind {
    /// 0x01: encrypted under the group key of an epoch, and signed.
    Sealed,
    /// 0x02: plaintext, signed (no group, epoch 0).
    Signed,
}

impl EnvelopeKind {
    fn name(self) -> &'static str {
        match self {
            EnvelopeKind::Sealed => "sealed",
            EnvelopeKind::Signed => "signed-only",
        }
    }
}

/// A parsed envelope, borrowing the payload it was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    bytes: &'a [u8],
    kind: EnvelopeKind,
    group: &'a str,
    epoch: u64,
    sender: &'a str,
    sequence: u64,
    nonce: Option<&'a [u8; NONCE_LEN]>,
    header_len: usize,
    body: &'a [u8],
    signature: &'a [u8; SIGNATURE_LEN],
}

impl<'a> Envelope<'a> {
    /// Parses an envelope. Checks the whole layout and every limit; checks
    /// no signature and decrypts nothing.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        if bytes.get(..ENVELOPE_MAGIC.len()) != Some(ENVELOPE_MAGIC.as_slice()) {
            return Err(EnvelopeError::NotAnEnvelope { what: WHAT });
        }
        let mut r = Reader::new(&bytes[ENVELOPE_MAGIC.len()..], WHAT);
        let version = r.u8("version")?;
        if version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion {
                what: WHAT,
                version,
            });
        }
        let kind = match r.u8("kind")? {
            KIND_SEALED => EnvelopeKind::Sealed,
            KIND_SIGNED => EnvelopeKind::Signed,
            kind => return Err(EnvelopeError::UnknownKind { kind }),
        };
        let sealed = kind == EnvelopeKind::Sealed;
        let group = if sealed {
            r.short_str(1, MAX_GROUP_LEN, "group: not 1-64 bytes of UTF-8")?
        } else {
            r.short_str(0, 0, "group: must be empty in a signed-only envelope")?
        };
        let epoch = r.u64("epoch")?;
        if sealed && epoch == 0 {
            return Err(r.malformed("epoch 0 in a sealed envelope"));
        }
        if !sealed && epoch != 0 {
            return Err(r.malformed("epoch must be 0 in a signed-only envelope"));
        }
        let sender = r.short_str(1, MAX_SENDER_LEN, "sender: not 1-128 bytes of UTF-8")?;
        let sequence = r.u64("sequence")?;
        if sequence == 0 {
            return Err(r.malformed("sequence 0"));
        }
        let nonce = if sealed {
            Some(r.array::<NONCE_LEN>("nonce")?)
        } else {
            None
        };
        let header_len = bytes.len() - r.remaining();
        let body_len = r.u32("body length")?;
        // Compared with the slice before anything is sliced or allocated.
        let body_len = usize::try_from(body_len)
            .ok()
            .filter(|&len| len <= MAX_BODY_LEN)
            .ok_or_else(|| r.malformed("body longer than 256 MiB"))?;
        if sealed && body_len < TAG_LEN {
            return Err(r.malformed("sealed body shorter than its tag"));
        }
        if r.remaining() != body_len.saturating_add(SIGNATURE_LEN) {
            return Err(r.malformed("body length does not match the payload length"));
        }
        let body = r.take(body_len, "body")?;
        let signature = r.array::<SIGNATURE_LEN>("signature")?;
        r.finish()?;
        Ok(Envelope {
            bytes,
            kind,
            group,
            epoch,
            sender,
            sequence,
            nonce,
            header_len,
            body,
            signature,
        })
    }

    pub fn kind(&self) -> EnvelopeKind {
        self.kind
    }

    /// The group whose key seals the envelope (`None` if signed-only).
    pub fn group(&self) -> Option<&'a str> {
        (self.kind == EnvelopeKind::Sealed).then_some(self.group)
    }

    /// The key epoch (`None` if signed-only).
    pub fn epoch(&self) -> Option<u64> {
        (self.kind == EnvelopeKind::Sealed).then_some(self.epoch)
    }

    /// The sender's device id (not yet verified: see [`Self::verify`]).
    pub fn sender(&self) -> &'a str {
        self.sender
    }

    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    pub fn nonce(&self) -> Option<&'a [u8; NONCE_LEN]> {
        self.nonce
    }

    /// Ciphertext ‖ tag if sealed, the plaintext if signed-only.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Length of [`Self::body`]; the plaintext of a sealed envelope is 16 bytes shorter.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    pub fn signature(&self) -> &'a [u8; SIGNATURE_LEN] {
        self.signature
    }

    /// The whole envelope.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Magic through nonce (sealed) or through sequence (signed-only).
    pub fn header(&self) -> &'a [u8] {
        &self.bytes[..self.header_len]
    }

    /// `"LMQ-ENV-1 sig" ‖ u16 BE topic_len ‖ topic ‖ every byte before the signature`.
    pub(super) fn signed_message(&self, topic: &str) -> Result<Vec<u8>, EnvelopeError> {
        let signed = &self.bytes[..self.bytes.len() - SIGNATURE_LEN];
        let mut msg = Vec::with_capacity(SIGNATURE_TAG.len() + 2 + topic.len() + signed.len());
        msg.extend_from_slice(SIGNATURE_TAG);
        put_topic(&mut msg, topic)?;
        msg.extend_from_slice(signed);
        Ok(msg)
    }

    /// Checks the signature (Ed25519, `verify_strict`) for `topic` under the
    /// sender's registered public key.
    pub fn verify(&self, topic: &str, sender_public: &[u8; 32]) -> Result<(), EnvelopeError> {
        let key = VerifyingKey::from_bytes(sender_public)
            .map_err(|_| EnvelopeError::BadPublicKey { what: WHAT })?;
        key.verify_strict(
            &self.signed_message(topic)?,
            &Signature::from_bytes(self.signature),
        )
        .map_err(|_| EnvelopeError::BadSignature { what: WHAT })
    }

    /// Refuses an envelope whose sender is not the authenticated client.
    pub fn check_sender(&self, publisher: &str) -> Result<(), EnvelopeError> {
        if self.sender == publisher {
            Ok(())
        } else {
            Err(EnvelopeError::SenderMismatch {
                envelope: self.sender.to_owned(),
                publisher: publisher.to_owned(),
            })
        }
    }

    /// Refuses a sequence number not above the last one accepted from the
    /// sender (the caller records this one once it accepts the envelope).
    pub fn check_sequence(&self, last_accepted: u64) -> Result<(), EnvelopeError> {
        if self.sequence > last_accepted {
            Ok(())
        } else {
            Err(EnvelopeError::Replayed {
                sender: self.sender.to_owned(),
                sequence: self.sequence,
                last_accepted,
            })
        }
    }

    /// Decrypts a sealed envelope for `topic` **without checking the
    /// signature**: the AEAD proves only that a holder of the group key
    /// wrote it. Use [`Self::open_verified`] unless the signature was just
    /// checked.
    pub fn open(&self, topic: &str, key: &GroupKey) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let nonce = self.sealed_nonce()?;
        if key.group() != self.group || key.epoch() != self.epoch {
            return Err(EnvelopeError::WrongGroupKey {
                envelope_group: self.group.to_owned(),
                envelope_epoch: self.epoch,
                key_group: key.group().to_owned(),
                key_epoch: key.epoch(),
            });
        }
        let decrypt_failed = || EnvelopeError::Decrypt {
            group: self.group.to_owned(),
            epoch: self.epoch,
        };
        let (ciphertext, tag) = self.body.split_at(self.body.len() - TAG_LEN);
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        XChaCha20Poly1305::new(key.envelope_key().into())
            .decrypt_in_place_detached(
                nonce.into(),
                &aad(topic, self.header())?,
                plaintext.as_mut_slice(),
                tag.into(),
            )
            .map_err(|_| decrypt_failed())?;
        Ok(plaintext)
    }

    /// Checks the signature, then decrypts: what a subscriber does.
    pub fn open_verified(
        &self,
        topic: &str,
        sender_public: &[u8; 32],
        key: &GroupKey,
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        self.sealed_nonce()?;
        self.verify(topic, sender_public)?;
        self.open(topic, key)
    }

    /// Checks the signature of a signed-only envelope and returns its plaintext.
    pub fn open_signed(
        &self,
        topic: &str,
        sender_public: &[u8; 32],
    ) -> Result<&'a [u8], EnvelopeError> {
        if self.kind != EnvelopeKind::Signed {
            return Err(self.wrong_kind(EnvelopeKind::Signed));
        }
        self.verify(topic, sender_public)?;
        Ok(self.body)
    }

    fn sealed_nonce(&self) -> Result<&'a [u8; NONCE_LEN], EnvelopeError> {
        self.nonce
            .ok_or_else(|| self.wrong_kind(EnvelopeKind::Sealed))
    }

    fn wrong_kind(&self, expected: EnvelopeKind) -> EnvelopeError {
        EnvelopeError::WrongKind {
            expected: expected.name(),
            got: self.kind.name(),
        }
    }
}

/// `"LMQ-ENV-1 aad" ‖ u16 BE topic_len ‖ topic ‖ header`.
fn aad(topic: &str, header: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut aad = Vec::with_capacity(AAD_TAG.len() + 2 + topic.len() + header.len());
    aad.extend_from_slice(AAD_TAG);
    put_topic(&mut aad, topic)?;
    aad.extend_from_slice(header);
    Ok(aad)
}

/// A device that publishes envelopes: its id and its Ed25519 key, which may
/// live in a token. The caller keeps the sequence counter (durably: a
/// reused sequence number is refused by brokers as a replay).
#[derive(Debug, Clone)]
pub struct Publisher {
    device_id: String,
    signer: Arc<dyn Ed25519Signer>,
}

impl Publisher {
    /// A publisher with device id `device_id` (1–128 bytes).
    pub fn new(device_id: &str, signer: Arc<dyn Ed25519Signer>) -> Result<Self, EnvelopeError> {
        check_id("sender", device_id, 1, MAX_SENDER_LEN)?;
        Ok(Publisher {
            device_id: device_id.to_owned(),
            signer,
        })
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The public key subscribers and brokers verify with.
    pub fn public(&self) -> [u8; 32] {
        self.signer.public()
    }

    /// A sealed envelope of `plaintext` for `topic` under `key`, with a
    /// fresh random nonce.
    pub fn seal<R: RngCore + CryptoRng>(
        &self,
        topic: &str,
        key: &GroupKey,
        sequence: u64,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        self.seal_with_nonce(topic, key, sequence, &nonce, plaintext)
    }

    /// [`seal`](Self::seal) with a chosen nonce: for published test vectors
    /// only. Reusing a nonce under one key breaks the encryption.
    #[doc(hidden)]
    pub fn seal_with_nonce(
        &self,
        topic: &str,
        key: &GroupKey,
        sequence: u64,
        nonce: &[u8; NONCE_LEN],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let body_len = body_len(
            plaintext.len().saturating_add(TAG_LEN),
            MAX_BODY_LEN - TAG_LEN,
            plaintext,
        )?;
        let mut out = self.start(topic, EnvelopeKind::Sealed, sequence, plaintext.len())?;
        put_group_epoch(&mut out.bytes, key.group(), key.epoch());
        self.put_sender_sequence(&mut out.bytes, sequence);
        out.bytes.extend_from_slice(nonce);
        let header = &out.bytes[out.prefix_len..];
        let aad = aad(topic, header)?;
        out.bytes.extend_from_slice(&body_len.to_be_bytes());
        let plaintext_at = out.bytes.len();
        out.bytes.extend_from_slice(plaintext);
        let tag = XChaCha20Poly1305::new(key.envelope_key().into())
            .encrypt_in_place_detached(nonce.into(), &aad, &mut out.bytes[plaintext_at..])
            .map_err(|_| EnvelopeError::InvalidField {
                field: "plaintext",
                len: plaintext.len(),
                min: 0,
                max: MAX_BODY_LEN - TAG_LEN,
            })?;
        out.bytes.extend_from_slice(&tag);
        self.finish(out)
    }

    /// A signed-only envelope of `plaintext` for `topic`.
    pub fn sign(
        &self,
        topic: &str,
        sequence: u64,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let body_len = body_len(plaintext.len(), MAX_BODY_LEN, plaintext)?;
        let mut out = self.start(topic, EnvelopeKind::Signed, sequence, plaintext.len())?;
        out.bytes.push(0); // no group
        out.bytes.extend_from_slice(&0u64.to_be_bytes()); // no epoch
        self.put_sender_sequence(&mut out.bytes, sequence);
        out.bytes.extend_from_slice(&body_len.to_be_bytes());
        out.bytes.extend_from_slice(plaintext);
        self.finish(out)
    }

    /// The signature prefix followed by magic, version and kind, in one
    /// buffer sized for the whole envelope, so signing needs no second copy.
    fn start(
        &self,
        topic: &str,
        kind: EnvelopeKind,
        sequence: u64,
        plaintext_len: usize,
    ) -> Result<Unsigned, EnvelopeError> {
        if sequence == 0 {
            return Err(EnvelopeError::ZeroSequence);
        }
        let capacity = SIGNATURE_TAG.len()
            + 2
            + topic.len()
            + 6
            + 1
            + MAX_GROUP_LEN
            + 8
            + 1
            + self.device_id.len()
            + 8
            + NONCE_LEN
            + 4
            + plaintext_len
            + TAG_LEN
            + SIGNATURE_LEN;
        let mut bytes = Vec::with_capacity(capacity);
        bytes.extend_from_slice(SIGNATURE_TAG);
        put_topic(&mut bytes, topic)?;
        let prefix_len = bytes.len();
        bytes.extend_from_slice(ENVELOPE_MAGIC);
        bytes.push(ENVELOPE_VERSION);
        bytes.push(match kind {
            EnvelopeKind::Sealed => KIND_SEALED,
            EnvelopeKind::Signed => KIND_SIGNED,
        });
        Ok(Unsigned { bytes, prefix_len })
    }

    fn put_sender_sequence(&self, out: &mut Vec<u8>, sequence: u64) {
        put_short(out, &self.device_id);
        out.extend_from_slice(&sequence.to_be_bytes());
    }

    /// Signs prefix ‖ envelope, drops the prefix, appends the signature.
    fn finish(&self, mut out: Unsigned) -> Result<Vec<u8>, EnvelopeError> {
        let signature = self
            .signer
            .sign(&out.bytes)
            .map_err(|e| EnvelopeError::key("Ed25519 signature", e))?;
        out.bytes.drain(..out.prefix_len);
        out.bytes.extend_from_slice(&signature);
        Ok(out.bytes)
    }
}

/// An envelope being built behind its signature prefix.
struct Unsigned {
    bytes: Vec<u8>,
    prefix_len: usize,
}

/// The `u32` body length, if `plaintext` fits under `max`.
fn body_len(len: usize, max: usize, plaintext: &[u8]) -> Result<u32, EnvelopeError> {
    u32::try_from(len)
        .ok()
        .filter(|_| plaintext.len() <= max)
        .ok_or(EnvelopeError::InvalidField {
            field: "plaintext",
            len: plaintext.len(),
            min: 0,
            max,
        })
}
