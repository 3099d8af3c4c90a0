//! Device authentication against the ledger registry: `LMQ-OTP-1` over
//! MQTT 5 enhanced authentication (and re-authentication), and TOTP
//! passwords for clients without AUTH packets, each code made for this
//! node (its audience key), so it is accepted once in the whole
//! consortium: once here (the durable per-node counter), never elsewhere.
//!
//! The client id of a device is its device id: anything else is refused,
//! so one device can never take over another's session.
//!
//! What a login tells the client is only what its proof earned (step 1 and
//! wrong credentials read the same for every device id), and what it costs
//! is borne by whoever made it: a failure that proves nothing is counted
//! against its source (`failures`), a valid credential misused against its
//! device (`misuse`).

use std::sync::Arc;
use std::time::Instant;

use ledgermq_broker::auth::{
    AuthExchange, AuthStep, Authenticated, Authenticator, LoginAttempt, Refusal,
};
use ledgermq_proto::ReasonCode;
use ledgermq_security::scac::Suite;
use ledgermq_security::{
    audience_key, AwaitingProof, DeviceStatus, OtpDirectory, OtpError, OtpServer, TotpVerifier,
    AUTH_METHOD,
};

use crate::counters::CounterKind;
use crate::directory::unix_ms;
use crate::evidence::EvidenceKind;
use crate::failures::Source;
use crate::Access;

/// The method name reported for TOTP logins in status reports.
const TOTP: &str = "TOTP";

pub struct LedgerAuthenticator(pub(crate) Arc<Access>);

impl Authenticator for LedgerAuthenticator {
    fn authenticate(&self, attempt: &LoginAttempt<'_>) -> Result<Authenticated, Refusal> {
        let access = &self.0;
        if let Some(refusal) = access.source_banned(attempt) {
            return Err(refusal);
        }
        let Some(device_id) = attempt.username else {
            return Err(access.unproven(
                None,
                attempt,
                TOTP,
                ReasonCode::NOT_AUTHORIZED,
                "no device id: give it as user name with a TOTP password, or use LMQ-OTP-1",
            ));
        };
        same_client(attempt, device_id)?;
        let code = attempt
            .password
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or("");
        let verifier = TotpVerifier::new(
            access.settings.totp_step,
            access.settings.totp_digits,
            access.settings.totp_window,
        );
        let now = unix_ms() / 1000;
        // An unknown or revoked user name is answered as a wrong code,
        // after the same work: the answer does not tell who exists.
        let key = match access.directory.status(device_id) {
            DeviceStatus::Active | DeviceStatus::Blacklisted { .. } => {
                access.directory.otp_key(device_id)
            }
            DeviceStatus::Unknown | DeviceStatus::Revoked => None,
        };
        let node = access.directory.account().0 .0;
        let Some(key) = key else {
            let e = verifier.refuse_unknown(code, now, &node);
            let detail = format!("device {device_id:?} is not registered or revoked ({e})");
            return Err(access.unproven(
                Some(device_id),
                attempt,
                TOTP,
                ReasonCode(e.reason_code()),
                &detail,
            ));
        };
        // The code is for this node only: a code accepted (or captured)
        // at another node is worthless here.
        let key = audience_key(&key, &node);
        let counters = &access.directory.counters;
        let last = counters.last(CounterKind::TotpStep, device_id);
        let counter = match verifier.verify(&key, code, now, last) {
            Ok(counter) => counter,
            Err(e) => {
                if let OtpError::ReplayedTotp { .. } = e {
                    // Anyone who saw the code in transit can send it again:
                    // no evidence against the device, a failure of the source.
                    tracing::info!(
                        device_id,
                        peer = %attempt.peer,
                        "a TOTP code accepted before was presented again (captured in transit? use TLS)"
                    );
                }
                return Err(access.otp_unproven(Some(device_id), attempt, TOTP, &e));
            }
        };
        // Told only now that the code is right.
        if let Err(e) = admissible(access, device_id) {
            return Err(access.proven_refusal(device_id, TOTP, &e));
        }
        if !counters.advance(CounterKind::TotpStep, device_id, counter) {
            if counters
                .last(CounterKind::TotpStep, device_id)
                .is_some_and(|l| l >= counter)
            {
                // A concurrent login with the same code won.
                let e = OtpError::ReplayedTotp {
                    counter,
                    last_accepted: last.unwrap_or(counter),
                };
                return Err(access.otp_unproven(Some(device_id), attempt, TOTP, &e));
            }
            return Err(counters_unavailable(device_id));
        }
        access.succeeded(device_id, TOTP, attempt)
    }

    fn begin(&self, attempt: &LoginAttempt<'_>, method: &str, data: &[u8]) -> AuthStep {
        let access = &self.0;
        let scac = access.scac.get();
        let known = method == AUTH_METHOD
            || (scac.is_some_and(|s| Suite::from_method(method).is_some_and(|m| s.enabled(m))));
        if known {
            if let Some(refusal) = access.source_banned(attempt) {
                return AuthStep::Done(Err(refusal));
            }
        }
        if let (Some(scac), Some(suite)) = (scac, Suite::from_method(method)) {
            if scac.enabled(suite) {
                return access.scac_begin(scac, attempt, suite, data);
            }
        }
        if method != AUTH_METHOD {
            let mut enabled = vec![AUTH_METHOD];
            enabled.extend(scac.map(|s| s.methods()).unwrap_or_default());
            return AuthStep::Done(Err(Refusal::new(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                format!(
                    "authentication method {method:?} is not enabled (enabled: {})",
                    enabled.join(", ")
                ),
            )));
        }
        // Every well-formed step 1 is challenged (a decoy for an unknown or
        // revoked device): the device's standing is told only after its proof.
        let server = OtpServer::new(access.settings.challenge_lifetime.as_millis() as u64);
        let awaiting =
            match server.start(&access.directory, data, unix_ms(), &mut rand::rngs::OsRng) {
                Ok(a) => a,
                Err(e) => {
                    return AuthStep::Done(Err(access.otp_unproven(None, attempt, AUTH_METHOD, &e)))
                }
            };
        if let Err(refusal) = same_client(attempt, awaiting.device_id()) {
            return AuthStep::Done(Err(refusal));
        }
        AuthStep::Continue {
            data: awaiting.challenge().to_vec(),
            next: Box::new(OtpExchange {
                access: access.clone(),
                awaiting,
                peer: attempt.peer,
                listener: attempt.listener,
                protocol: attempt.protocol,
            }),
        }
    }
}

/// Step 2 sent; judges the device's proof.
struct OtpExchange {
    access: Arc<Access>,
    awaiting: AwaitingProof,
    peer: std::net::SocketAddr,
    listener: std::net::SocketAddr,
    protocol: ledgermq_proto::Protocol,
}

impl AuthExchange for OtpExchange {
    fn answer(self: Box<Self>, data: &[u8]) -> AuthStep {
        let OtpExchange {
            access,
            awaiting,
            peer,
            listener,
            protocol,
        } = *self;
        let attempt = later_step(peer, listener, protocol);
        let device_id = awaiting.device_id().to_owned();
        let packet_number = awaiting.packet_number();
        let refused = |r: Refusal| AuthStep::Done(Err(r));
        let done = match awaiting.finish(data, unix_ms()) {
            Ok(done) => done,
            Err(e @ OtpError::BlacklistedDevice { .. }) => {
                return refused(access.proven_refusal(&device_id, AUTH_METHOD, &e))
            }
            Err(e @ OtpError::ReplayedPacketNumber { .. }) => {
                return refused(access.replay(&device_id, &attempt, AUTH_METHOD, &e))
            }
            Err(e) => {
                return refused(access.otp_unproven(Some(&device_id), &attempt, AUTH_METHOD, &e))
            }
        };
        // Between step 1 and now the device may have been revoked or banned.
        if let Err(e) = admissible(&access, &device_id) {
            return refused(access.proven_refusal(&device_id, AUTH_METHOD, &e));
        }
        let counters = &access.directory.counters;
        if !counters.advance(CounterKind::OtpPacketNumber, &device_id, done.packet_number) {
            let last = counters.last(CounterKind::OtpPacketNumber, &device_id);
            if last.is_some_and(|l| l >= packet_number) {
                // A concurrent exchange with the same or a higher number
                // won: only the key holder can have run both.
                let e = OtpError::ReplayedPacketNumber {
                    last_accepted: last.unwrap_or(packet_number),
                    device_id: device_id.clone(),
                    packet_number,
                };
                return refused(access.replay(&device_id, &attempt, AUTH_METHOD, &e));
            }
            return refused(counters_unavailable(&device_id));
        }
        AuthStep::Done(access.succeeded(&device_id, AUTH_METHOD, &attempt))
    }
}

/// The accepted counter could not be made durable: refuse without blaming
/// anyone (a restart must not reopen a code the device was told is used).
fn counters_unavailable(device_id: &str) -> Refusal {
    Refusal::new(
        ReasonCode::SERVER_UNAVAILABLE,
        format!("cannot record the accepted counter of device {device_id:?}"),
    )
}

/// The attempt as a later step of an exchange knows it: its source (peer
/// and listener), against which failures are counted.
pub(crate) fn later_step(
    peer: std::net::SocketAddr,
    listener: std::net::SocketAddr,
    protocol: ledgermq_proto::Protocol,
) -> LoginAttempt<'static> {
    LoginAttempt {
        peer,
        listener,
        protocol,
        client_id: "",
        username: None,
        password: None,
    }
}

/// Refuses a device that is unknown, revoked or banned right now.
pub(crate) fn admissible(access: &Access, device_id: &str) -> Result<(), OtpError> {
    let device_id = device_id.to_owned();
    match access.directory.status(&device_id) {
        DeviceStatus::Active => Ok(()),
        DeviceStatus::Unknown => Err(OtpError::UnknownDevice { device_id }),
        DeviceStatus::Revoked => Err(OtpError::RevokedDevice { device_id }),
        DeviceStatus::Blacklisted { until } if until > unix_ms() => {
            Err(OtpError::BlacklistedDevice { device_id, until })
        }
        DeviceStatus::Blacklisted { .. } => Ok(()),
    }
}

/// A device's client id is its device id (or empty, and then assigned).
pub(crate) fn same_client(attempt: &LoginAttempt<'_>, device_id: &str) -> Result<(), Refusal> {
    if attempt.client_id.is_empty() || attempt.client_id == device_id {
        Ok(())
    } else {
        Err(Refusal::new(
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            format!(
                "client id {:?} is not the authenticated device id {device_id:?}",
                attempt.client_id
            ),
        ))
    }
}

impl Access {
    /// Refuses at once a source banned for its failed logins.
    pub(crate) fn source_banned(&self, attempt: &LoginAttempt<'_>) -> Option<Refusal> {
        let now = Instant::now();
        let until = self
            .failures
            .banned_until(&Source::new(attempt.peer, attempt.listener), now)?;
        Some(
            Refusal::new(
                ReasonCode::CONNECTION_RATE_EXCEEDED,
                format!(
                    "source {} on listener {} is refused for {} s more after repeated failed logins",
                    attempt.peer.ip(),
                    attempt.listener,
                    until.saturating_duration_since(now).as_secs().max(1)
                ),
            )
            .delayed(self.failures.ban_delay()),
        )
    }

    /// Bookkeeping of a verified login: misuse accounting (the same key
    /// from two places at once), status report. A device that this very
    /// login proved to be in two places is refused as banned.
    pub(crate) fn succeeded(
        &self,
        device_id: &str,
        method: &str,
        attempt: &LoginAttempt<'_>,
    ) -> Result<Authenticated, Refusal> {
        let live = self.is_online(device_id);
        let evidence = self.misuse.verified_login(
            device_id,
            attempt.peer.ip(),
            live,
            Instant::now(),
            unix_ms(),
        );
        if evidence.is_some() {
            self.on_evidence(evidence);
            if let Err(e) = admissible(self, device_id) {
                return Err(self.proven_refusal(device_id, method, &e));
            }
        }
        self.status.key_success(device_id, method);
        tracing::debug!(device_id, method, peer = %attempt.peer, "device authenticated");
        Ok(Authenticated {
            client_id: Some(device_id.to_owned()),
            protection: None,
        })
    }

    pub(crate) fn otp_unproven(
        &self,
        device_id: Option<&str>,
        attempt: &LoginAttempt<'_>,
        method: &str,
        e: &OtpError,
    ) -> Refusal {
        self.unproven(
            device_id,
            attempt,
            method,
            ReasonCode(e.reason_code()),
            &e.to_string(),
        )
    }

    /// A failure that proves nothing about the identity it claimed:
    /// counted against the source, delayed, and at the limit the source is
    /// banned on this node. The device it named hears of it on its status
    /// topic (throttled); nothing reaches the ledger.
    pub(crate) fn unproven(
        &self,
        device_id: Option<&str>,
        attempt: &LoginAttempt<'_>,
        method: &str,
        reason: ReasonCode,
        detail: &str,
    ) -> Refusal {
        let source = Source::new(attempt.peer, attempt.listener);
        let verdict = self.failures.record(source, Instant::now());
        if verdict.banned_now {
            tracing::warn!(
                source = %source.ip,
                listener = %source.listener,
                failures = verdict.recent,
                window_s = self.settings.failure_window.as_secs(),
                ban_s = self.settings.source_ban.as_secs(),
                last_claimed = device_id.unwrap_or(""),
                "source reached the authentication failure limit: refusing it on this node"
            );
        }
        if let Some(d) = device_id {
            if matches!(
                self.directory.status(d),
                DeviceStatus::Active | DeviceStatus::Blacklisted { .. }
            ) {
                self.status.key_fail_unproven(d, method, reason.0);
            }
        }
        Refusal::new(reason, detail).delayed(verdict.delay)
    }

    /// A refusal after the device proved its key (banned, revoked): no
    /// delay, nothing counted.
    pub(crate) fn proven_refusal(&self, device_id: &str, method: &str, e: &OtpError) -> Refusal {
        self.status.key_fail(device_id, method, e.reason_code());
        Refusal::new(ReasonCode(e.reason_code()), e.to_string())
    }

    /// A valid proof for a used packet number: only the key holder can
    /// make one, so it is evidence against the device.
    fn replay(
        &self,
        device_id: &str,
        attempt: &LoginAttempt<'_>,
        method: &str,
        e: &OtpError,
    ) -> Refusal {
        tracing::warn!(device_id, peer = %attempt.peer, error = %e, "valid proof for a used packet number: a cloned device, or one whose counter went back");
        let evidence = self.misuse.note(
            EvidenceKind::Replay,
            device_id,
            &[attempt.peer.ip()],
            Instant::now(),
            unix_ms(),
        );
        self.on_evidence(evidence);
        self.proven_refusal(device_id, method, e)
    }
}
