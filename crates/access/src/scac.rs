//! `SCACAuth-*` on a broker node: mutual authentication of a device and
//! this broker with their long-term keys (docs/scac.md), then rolling
//! per-message keys for QoS 2 payloads in both directions.
//!
//! The device's public key is the Ed25519 signing key the registry holds
//! for it (default suite) or `<UID>.pem` in the configured directory
//! (compatibility suite: the ledger holds no RSA keys). The broker's key
//! is a key-store handle, so it may live in a PKCS#11 token.
//!
//! Step 2 does not tell who exists: an unknown UID or a step 1 that does
//! not verify gets a decoy step 2 and fails at step 3. Every failure is
//! CONNACK 0x87 (0x8A for a banned device, told only after its step 3
//! verified), counts against its source like any failed login, and locks
//! that source (address and listener) out of SCAC for the configured time:
//! a captured or guessed step cannot be retried at will (the paper's DoS
//! rule), while the genuine device, elsewhere, is not locked out by
//! someone naming its UID.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledgermq_broker::auth::{
    AuthExchange, AuthStep, Authenticated, LoginAttempt, PayloadProtection, ProtectionError,
    Refusal,
};
use ledgermq_proto::{Protocol, ReasonCode};
use ledgermq_security::scac::{
    uid_of_step1, BrokerAwaiting, BrokerCredentials, BrokerHandshake, Channel, LocalKey, PeerKey,
    Suite, CRYPT_ERROR,
};
use ledgermq_security::{DeviceStatus, OtpDirectory as _};
use parking_lot::Mutex;

use crate::authenticator::{admissible, later_step, same_client};
use crate::failures::{BoundedMap, Source, MAX_ENTRIES};
use crate::{Access, AccessError};

/// How a broker node serves SCAC (config keys `scac_*`).
#[derive(Debug, Clone)]
pub struct ScacConfig {
    /// Enabled suites; empty disables SCAC.
    pub suites: Vec<Suite>,
    /// The broker's Ed25519 key (default suite); its public key must be the
    /// signing key registered for this node.
    pub broker_key: Option<LocalKey>,
    /// The broker's RSA-2048 key (compatibility suite).
    pub rsa_broker_key: Option<LocalKey>,
    /// Compatibility suite: the devices' RSA public keys, `<UID>.pem`.
    pub rsa_device_keys: Option<PathBuf>,
    /// How long a source is refused SCAC after a failed SCAC authentication.
    pub lockout: Duration,
}

pub(crate) struct ScacService {
    suites: Vec<Suite>,
    ed25519: Option<BrokerCredentials>,
    rsa: Option<BrokerCredentials>,
    rsa_device_keys: Option<PathBuf>,
    lockout: Duration,
    /// Source → end of its lockout.
    locked: Mutex<BoundedMap<Source, Option<Instant>>>,
}

impl ScacService {
    /// Checks the configuration against the registry: every enabled suite
    /// has its broker key, and the Ed25519 one is this node's registered key.
    pub(crate) fn new(access: &Access, config: ScacConfig) -> Result<ScacService, AccessError> {
        let bad = |m: String| Err(AccessError::Scac(m));
        let mut service = ScacService {
            suites: Vec::new(),
            ed25519: None,
            rsa: None,
            rsa_device_keys: None,
            lockout: config.lockout,
            locked: Mutex::new(BoundedMap::new(MAX_ENTRIES)),
        };
        for suite in config.suites {
            if service.suites.contains(&suite) {
                continue;
            }
            match suite {
                Suite::Default => {
                    let Some(key) = config.broker_key.clone() else {
                        return bad(format!("{suite} needs the broker's Ed25519 key"));
                    };
                    let creds = credentials(key, suite)?;
                    let registered = access
                        .directory
                        .view
                        .broker(&access.directory.account())
                        .map(|b| b.signing_key.0);
                    match (creds.public(), registered) {
                        (PeerKey::Ed25519(public), Some(registered)) if public == registered => {}
                        _ => {
                            return bad(format!(
                                "the broker's {suite} key is not the signing key registered on \
                                 the ledger for this node (account {})",
                                access.directory.account()
                            ))
                        }
                    }
                    service.ed25519 = Some(creds);
                }
                Suite::RsaCompat => {
                    let Some(key) = config.rsa_broker_key.clone() else {
                        return bad(format!(
                            "{suite} needs the broker's RSA-2048 key (scac_rsa_broker_key)"
                        ));
                    };
                    let Some(dir) = config.rsa_device_keys.clone() else {
                        return bad(format!(
                            "{suite} needs the directory of the devices' RSA public keys \
                             (scac_rsa_device_keys)"
                        ));
                    };
                    if !dir.is_dir() {
                        return bad(format!(
                            "scac_rsa_device_keys {} is not a directory",
                            dir.display()
                        ));
                    }
                    service.rsa = Some(credentials(key, suite)?);
                    service.rsa_device_keys = Some(dir);
                }
            }
            service.suites.push(suite);
        }
        Ok(service)
    }

    pub(crate) fn enabled(&self, suite: Suite) -> bool {
        self.suites.contains(&suite)
    }

    pub(crate) fn methods(&self) -> Vec<&'static str> {
        self.suites.iter().map(|s| s.method()).collect()
    }

    fn credentials(&self, suite: Suite) -> Option<&BrokerCredentials> {
        match suite {
            Suite::Default => self.ed25519.as_ref(),
            Suite::RsaCompat => self.rsa.as_ref(),
        }
    }

    fn locked_until(&self, source: &Source, now: Instant) -> Option<Instant> {
        self.locked
            .lock()
            .get(source)
            .copied()
            .flatten()
            .filter(|&t| t > now)
    }

    fn lock_out(&self, source: Source, now: Instant) {
        if self.lockout.is_zero() {
            return;
        }
        let mut locked = self.locked.lock();
        let until = locked.entry(source, now, |until| until.is_some_and(|t| t > now));
        *until = Some(now + self.lockout);
    }

    /// The device's public key for `suite`.
    fn device_key(&self, access: &Access, suite: Suite, uid: &str) -> Result<PeerKey, String> {
        match suite {
            Suite::Default => access
                .directory
                .view
                .device(uid)
                .map(|d| PeerKey::Ed25519(d.signing_key.0))
                .ok_or_else(|| format!("device {uid:?} is not registered")),
            Suite::RsaCompat => {
                let dir = self
                    .rsa_device_keys
                    .as_ref()
                    .ok_or("no RSA device key directory")?;
                let path = dir.join(format!("{uid}.pem"));
                rsa_public_key(&path)
            }
        }
    }
}

fn credentials(key: LocalKey, suite: Suite) -> Result<BrokerCredentials, AccessError> {
    let creds = BrokerCredentials::new(key)
        .map_err(|e| AccessError::Scac(format!("the broker's {suite} key: {e}")))?;
    if creds.suite() != suite {
        return Err(AccessError::Scac(format!(
            "the broker's key for {suite} is a {} key",
            creds.suite()
        )));
    }
    Ok(creds)
}

/// Reads an RSA public key (SubjectPublicKeyInfo or PKCS#1 PEM).
fn rsa_public_key(path: &std::path::Path) -> Result<PeerKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("no RSA public key {}: {e}", path.display()))?;
    PeerKey::rsa_from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Access {
    /// Step 1 (CONNECT): checks the device and its proof, answers step 2.
    pub(crate) fn scac_begin(
        self: &Arc<Self>,
        scac: &ScacService,
        attempt: &LoginAttempt<'_>,
        suite: Suite,
        step1: &[u8],
    ) -> AuthStep {
        let method = suite.method();
        let now = Instant::now();
        let uid = match uid_of_step1(suite, step1) {
            Ok(uid) => uid.to_owned(),
            Err(e) => {
                let detail = format!("{method}: {e}");
                scac.lock_out(Source::new(attempt.peer, attempt.listener), now);
                return AuthStep::Done(Err(self.unproven(
                    None,
                    attempt,
                    method,
                    ReasonCode::NOT_AUTHORIZED,
                    &detail,
                )));
            }
        };
        let source = Source::new(attempt.peer, attempt.listener);
        if let Some(until) = scac.locked_until(&source, now) {
            // Not counted again: the lockout is the answer to the failure.
            return AuthStep::Done(Err(Refusal::new(
                ReasonCode::NOT_AUTHORIZED,
                format!(
                    "{method}: source {} on listener {} is locked out for {} s after a failed \
                     authentication (it named {uid:?})",
                    attempt.peer.ip(),
                    attempt.listener,
                    until.saturating_duration_since(now).as_secs().max(1)
                ),
            )));
        }
        if let Err(refusal) = same_client(attempt, &uid) {
            return AuthStep::Done(Err(refusal));
        }
        let Some(creds) = scac.credentials(suite) else {
            return AuthStep::Done(Err(Refusal::new(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                format!("{method} is not enabled"),
            )));
        };
        // An unknown or revoked UID, or a step 1 that does not verify, gets
        // a decoy step 2 of the same shape and fails at step 3: step 2 does
        // not tell who exists. A banned device is told so after step 3.
        let key = match self.directory.status(&uid) {
            DeviceStatus::Active | DeviceStatus::Blacklisted { .. } => {
                match scac.device_key(self, suite, &uid) {
                    Ok(key) => Some(key),
                    Err(detail) => {
                        tracing::debug!(uid, method, detail, "no usable SCAC key for the device");
                        None
                    }
                }
            }
            DeviceStatus::Unknown | DeviceStatus::Revoked => None,
        };
        let started = BrokerHandshake::start_or_decoy(
            suite,
            creds,
            key.as_ref(),
            step1,
            &mut rand::rngs::OsRng,
        );
        match started {
            Ok((awaiting, step2)) => AuthStep::Continue {
                data: step2,
                next: Box::new(ScacExchange {
                    pending: Some(Pending {
                        access: self.clone(),
                        awaiting,
                        peer: attempt.peer,
                        listener: attempt.listener,
                        protocol: attempt.protocol,
                    }),
                }),
            },
            Err(e) => AuthStep::Done(Err(self.scac_failed(
                scac,
                &uid,
                attempt,
                method,
                &format!("{method}: {e}"),
            ))),
        }
    }

    /// A failed SCAC login, unproven like any other: counted against the
    /// source, which is also locked out of SCAC for `scac_lockout`.
    fn scac_failed(
        &self,
        scac: &ScacService,
        uid: &str,
        attempt: &LoginAttempt<'_>,
        method: &str,
        detail: &str,
    ) -> Refusal {
        scac.lock_out(Source::new(attempt.peer, attempt.listener), Instant::now());
        self.unproven(
            Some(uid),
            attempt,
            method,
            ReasonCode::NOT_AUTHORIZED,
            detail,
        )
    }
}

/// Step 2 sent; judges step 3.
struct ScacExchange {
    /// Taken by the answer; still here if the client walked away.
    pending: Option<Pending>,
}

struct Pending {
    access: Arc<Access>,
    awaiting: BrokerAwaiting,
    peer: SocketAddr,
    listener: SocketAddr,
    protocol: Protocol,
}

impl Drop for ScacExchange {
    /// A client that walks away from a decoy step 2 (it could not verify
    /// it: no key of the device, or a key not registered for it) failed to
    /// authenticate as surely as one whose step 3 is refused; it is
    /// counted the same way, so a source cannot make this node sign step 2
    /// after step 2 for free. A client walking away from a genuine step 2
    /// (altered in transit, say) is not counted.
    fn drop(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        if !p.awaiting.is_decoy() {
            return;
        }
        let Some(scac) = p.access.scac.get() else {
            return;
        };
        let attempt = later_step(p.peer, p.listener, p.protocol);
        let method = p.awaiting.suite().method();
        let uid = p.awaiting.uid().to_owned();
        let detail = format!("{method}: the client left after a decoy step 2");
        let _ = p.access.scac_failed(scac, &uid, &attempt, method, &detail);
    }
}

impl AuthExchange for ScacExchange {
    fn answer(mut self: Box<Self>, step3: &[u8]) -> AuthStep {
        let Some(Pending {
            access,
            awaiting,
            peer,
            listener,
            protocol,
        }) = self.pending.take()
        else {
            return AuthStep::Done(Err(Refusal::new(
                ReasonCode::PROTOCOL_ERROR,
                "SCAC step 3 answered twice",
            )));
        };
        let attempt = later_step(peer, listener, protocol);
        let Some(scac) = access.scac.get() else {
            return AuthStep::Done(Err(Refusal::new(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                "SCAC is not enabled",
            )));
        };
        let method = awaiting.suite().method();
        let uid = awaiting.uid().to_owned();
        let channel = match awaiting.finish(step3) {
            Ok(channel) => channel,
            Err(e) => {
                let detail = format!("{method}: {e}");
                return AuthStep::Done(Err(
                    access.scac_failed(scac, &uid, &attempt, method, &detail)
                ));
            }
        };
        // Banned (told only now, after the device proved its key), or
        // revoked or banned between step 1 and now.
        if let Err(e) = admissible(&access, &uid) {
            return AuthStep::Done(Err(access.proven_refusal(&uid, method, &e)));
        }
        let mut ok = match access.succeeded(&uid, method, &attempt) {
            Ok(ok) => ok,
            Err(refusal) => return AuthStep::Done(Err(refusal)),
        };
        ok.protection = Some(Box::new(ScacProtection(channel)));
        AuthStep::Done(Ok::<Authenticated, Refusal>(ok))
    }
}

/// A connection's SCAC payload keys, as the broker core drives them.
struct ScacProtection(Channel);

fn crypt(e: impl std::fmt::Display) -> ProtectionError {
    ProtectionError {
        reason_string: CRYPT_ERROR.to_owned(),
        detail: e.to_string(),
    }
}

impl PayloadProtection for ScacProtection {
    fn open(
        &mut self,
        topic: &str,
        packet_id: u16,
        payload: &[u8],
    ) -> Result<Vec<u8>, ProtectionError> {
        self.0.open(topic, packet_id, payload).map_err(crypt)
    }

    fn accept_update(
        &mut self,
        packet_id: u16,
        user_properties: &[(String, String)],
    ) -> Result<(), ProtectionError> {
        let name = self.0.rx_key_property();
        let Some((_, value)) = user_properties.iter().find(|(k, _)| k == name) else {
            return Err(crypt(format!(
                "PUBREL {packet_id} without its {name} key update"
            )));
        };
        self.0.accept_key_update(packet_id, value).map_err(crypt)
    }

    fn seal(
        &mut self,
        topic: &str,
        packet_id: u16,
        data: &[u8],
    ) -> Result<Vec<u8>, ProtectionError> {
        self.0.seal(topic, packet_id, data).map_err(crypt)
    }

    fn update(&mut self, packet_id: u16) -> Result<(String, String), ProtectionError> {
        let value = self.0.key_update(packet_id).map_err(crypt)?;
        Ok((self.0.tx_key_property().to_owned(), value))
    }
}
