//! What the ledger security mode can be tuned with (config keys of
//! `ledgermq serve`, see docs/configuration.md).

use std::path::PathBuf;
use std::time::Duration;

/// Tunables of the ledger security mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSettings {
    /// Lifetime of an `LMQ-OTP-1` challenge.
    pub challenge_lifetime: Duration,
    /// TOTP time step, seconds.
    pub totp_step: u64,
    /// TOTP digits (6–9).
    pub totp_digits: u32,
    /// TOTP steps of clock skew accepted on either side.
    pub totp_window: u64,
    /// Unproven authentication failures from one source (address and
    /// listener) within `failure_window` that ban the source on this node
    /// for `source_ban` (0 = never ban; the delays still grow).
    pub failure_limit: u32,
    pub failure_window: Duration,
    /// How long a source that reached `failure_limit` is refused.
    pub source_ban: Duration,
    /// Events of one kind of misuse of a device's valid credential
    /// (replayed proof, rights violations, key in use from two places)
    /// within `evidence_window` that blacklist the device on the ledger,
    /// with the evidence digest (0 = never).
    pub evidence_limit: u32,
    pub evidence_window: Duration,
    /// How long a blacklist entry decided by this broker lasts.
    pub blacklist_duration: Duration,
    /// Longest delay before answering a failed authentication.
    pub failure_delay_max: Duration,
    /// Close the connection of a device whose PUBLISH is refused (QoS 0
    /// refusals always close it: there is no other way to tell the device).
    pub disconnect_on_refused_publish: bool,
    /// Publish `devices/<id>/…` status reports (docs/device-auth.md).
    pub status_topics: bool,
    /// Where accepted packet numbers and TOTP counters are kept across
    /// restarts (`None`: memory only).
    pub counters_file: Option<PathBuf>,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            challenge_lifetime: Duration::from_secs(30),
            totp_step: 30,
            totp_digits: 8,
            totp_window: 1,
            failure_limit: 5,
            failure_window: Duration::from_secs(60),
            source_ban: Duration::from_secs(300),
            evidence_limit: 5,
            evidence_window: Duration::from_secs(60),
            blacklist_duration: Duration::from_secs(3600),
            failure_delay_max: Duration::from_secs(5),
            disconnect_on_refused_publish: true,
            status_topics: true,
            counters_file: None,
        }
    }
}
