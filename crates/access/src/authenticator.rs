//! Device authentication against the ledger registry: `LMQ-OTP-1` over
//! MQTT 5 enhanced authentication (and re-authentication), and TOTP
//! passwords for clients without AUTH packets.
//!
//! The client id of a device is its device id: anything else is refused,
//! so one device can never take over another's session.

use std::sync::Arc;
use std::time::Instant;

use ledgermq_broker::auth::{
    AuthExchange, AuthStep, Authenticated, Authenticator, LoginAttempt, Refusal,
};
use ledgermq_proto::ReasonCode;
use ledgermq_security::scac::Suite;
use ledgermq_security::{
    AwaitingProof, DeviceStatus, OtpDirectory, OtpError, OtpServer, TotpVerifier, AUTH_METHOD,
};

use crate::counters::CounterKind;
use crate::directory::unix_ms;
use crate::Access;

/// The method name reported for TOTP logins in status reports.
const TOTP: &str = "TOTP";

pub struct LedgerAuthenticator(pub(crate) Arc<Access>);

impl Authenticator for LedgerAuthenticator {
    fn authenticate(&self, attempt: &LoginAttempt<'_>) -> Result<Authenticated, Refusal> {
        let access = &self.0;
        let Some(device_id) = attempt.username else {
            return Err(access.failed(
                None,
                attempt,
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
        let status = access.directory.status(device_id);
        let key = match status {
            DeviceStatus::Active | DeviceStatus::Blacklisted { .. } => {
                access.directory.otp_key(device_id)
            }
            DeviceStatus::Unknown | DeviceStatus::Revoked => None,
        };
        let Some(key) = key else {
            let e = verifier.refuse_unknown(code, now, &access.directory.account().0 .0);
            let detail = format!("device {device_id:?} is not registered or revoked ({e})");
            return Err(access.failed(
                Some(device_id),
                attempt,
                ReasonCode(e.reason_code()),
                &detail,
            ));
        };
        let last = access
            .directory
            .counters
            .last(CounterKind::TotpStep, device_id);
        let counter = verifier
            .verify(&key, code, now, last)
            .map_err(|e| access.otp_failed(Some(device_id), attempt, TOTP, &e))?;
        // Told only now that the code is right.
        if let Err(e) = admissible(access, device_id) {
            return Err(access.otp_failed(Some(device_id), attempt, TOTP, &e));
        }
        if !access
            .directory
            .counters
            .advance(CounterKind::TotpStep, device_id, counter)
        {
            let e = OtpError::ReplayedTotp {
                counter,
                last_accepted: last.unwrap_or(counter),
            };
            return Err(access.otp_failed(Some(device_id), attempt, TOTP, &e));
        }
        Ok(access.succeeded(device_id, TOTP))
    }

    fn begin(&self, attempt: &LoginAttempt<'_>, method: &str, data: &[u8]) -> AuthStep {
        let access = &self.0;
        let scac = access.scac.get();
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
                    return AuthStep::Done(Err(access.otp_failed(None, attempt, AUTH_METHOD, &e)))
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
        let done = match awaiting.finish(data, unix_ms()) {
            Ok(done) => done,
            Err(e) => {
                return AuthStep::Done(Err(access.otp_failed(
                    Some(&device_id),
                    &attempt,
                    AUTH_METHOD,
                    &e,
                )))
            }
        };
        // Between step 1 and now the device may have been revoked or banned.
        if let Err(e) = admissible(&access, &device_id) {
            return AuthStep::Done(Err(access.otp_failed(
                Some(&device_id),
                &attempt,
                AUTH_METHOD,
                &e,
            )));
        }
        let counters = &access.directory.counters;
        if !counters.advance(CounterKind::OtpPacketNumber, &device_id, done.packet_number) {
            let e = OtpError::ReplayedPacketNumber {
                last_accepted: counters
                    .last(CounterKind::OtpPacketNumber, &device_id)
                    .unwrap_or(done.packet_number),
                device_id: device_id.clone(),
                packet_number: done.packet_number,
            };
            return AuthStep::Done(Err(access.otp_failed(
                Some(&device_id),
                &attempt,
                AUTH_METHOD,
                &e,
            )));
        }
        AuthStep::Done(Ok(access.succeeded(&device_id, AUTH_METHOD)))
    }
}

/// The attempt as a later step of an exchange knows it: failures are
/// counted per peer address (and per device, named by the exchange).
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
    /// Bookkeeping of a success: failure history wiped, status report.
    pub(crate) fn succeeded(&self, device_id: &str, method: &str) -> Authenticated {
        self.failures.succeeded(device_id);
        self.status.key_success(device_id, method);
        tracing::debug!(device_id, method, "device authenticated");
        Authenticated {
            client_id: Some(device_id.to_owned()),
            protection: None,
        }
    }

    pub(crate) fn otp_failed(
        &self,
        device_id: Option<&str>,
        attempt: &LoginAttempt<'_>,
        method: &str,
        e: &OtpError,
    ) -> Refusal {
        let reason = ReasonCode(e.reason_code());
        if let Some(d) = device_id {
            self.status.key_fail(d, method, reason.0);
        }
        self.failed(device_id, attempt, reason, &e.to_string())
    }

    /// Counts a failure, decides the delay and, at the limit, the ban.
    pub(crate) fn failed(
        &self,
        device_id: Option<&str>,
        attempt: &LoginAttempt<'_>,
        reason: ReasonCode,
        detail: &str,
    ) -> Refusal {
        let verdict = self
            .failures
            .record(device_id, attempt.peer.ip(), Instant::now());
        // Only a registered, active device can be blacklisted on the ledger;
        // one that is already banned stays banned.
        if let Some(d) = device_id.filter(|_| verdict.limit_reached) {
            if self.directory.status(d) == DeviceStatus::Active {
                let last_ms = unix_ms();
                let window_ms = self.settings.failure_window.as_millis() as u64;
                self.blacklist(&crate::evidence::Evidence {
                    kind: crate::evidence::EvidenceKind::AuthFailures,
                    device_id: d.to_owned(),
                    node: self.directory.account().0 .0,
                    count: self.settings.failure_limit,
                    first_ms: last_ms.saturating_sub(window_ms),
                    last_ms,
                    sources: vec![attempt.peer.ip()],
                });
            }
        }
        Refusal::new(reason, detail).delayed(verdict.delay)
    }
}
