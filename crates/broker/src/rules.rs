//! The session rules, as decisions without I/O: what a CONNECT does to the
//! session its client id already has, and what becomes of a will.
//!
//! The broker's lifecycle code ([`crate::lifecycle`]) asks these functions
//! and carries out the answer under its locks; the functions themselves
//! know nothing of sockets, tasks or clocks, so every rule is tested here
//! case by case, for MQTT 3.1.1 and 5.0 alike (3.1.1's Clean Session = 1 is
//! a session expiry of 0, Clean Session = 0 an expiry of "never").
//!
//! Spec references: MQTT 5.0 §3.1.2.4 (Clean Start), §3.1.2.5 (Will Flag),
//! §3.1.3.2.2 (Will Delay Interval), §3.1.4 (takeover), §4.1 (sessions);
//! MQTT 3.1.1 §3.1.2.4 and MQTT-3.1.2-6 (a clean session lasts as long as
//! its network connection).

use std::time::Duration;

/// The session a client id already has when a CONNECT arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    /// Its session expiry interval is above zero: it outlives its
    /// connection. A clean session (expiry 0) lasts only as long as its
    /// connection, so it can never be resumed, even by a takeover.
    pub persistent: bool,
}

/// What a CONNECT does with the session of its client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConnect {
    /// No session yet: create one (Session Present = 0).
    Create,
    /// Attach to the existing session (Session Present = 1). A connection
    /// still attached to it is closed (0x8E) and its will is discarded.
    Resume,
    /// End the existing session (its connection, if any, is closed with
    /// 0x8E and its will published at once) and create a new one
    /// (Session Present = 0).
    Replace,
}

pub fn on_connect(existing: Option<Existing>, clean_start: bool) -> OnConnect {
    match existing {
        None => OnConnect::Create,
        Some(e) if e.persistent && !clean_start => OnConnect::Resume,
        Some(_) => OnConnect::Replace,
    }
}

/// How a network connection ended, as far as its will is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// DISCONNECT with reason 0x00: the will is deleted.
    NormalDisconnect,
    /// DISCONNECT with reason 0x04 (Disconnect with Will Message).
    DisconnectWithWill,
    /// Network failure, keep-alive timeout, protocol error, the broker
    /// closing it (revocation, slow consumer…).
    Abnormal,
    /// The broker is shutting down: persistent sessions are restored when it
    /// starts again, so their wills are not published.
    ServerShutdown,
}

/// What becomes of a will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WillFate {
    Discard,
    PublishNow,
    /// Publish after the delay unless a new connection resumes the session
    /// first; if the session ends before, publish when it ends.
    PublishAfter(Duration),
}

/// The will of a connection that ended on its own (not taken over).
/// `session_expiry` is the interval in force at the end (a DISCONNECT may
/// have changed it); a session with expiry 0 ends with the connection.
pub fn will_on_end(end: ConnectionEnd, session_expiry: u32, will_delay: u32) -> WillFate {
    match end {
        ConnectionEnd::NormalDisconnect | ConnectionEnd::ServerShutdown => WillFate::Discard,
        ConnectionEnd::DisconnectWithWill | ConnectionEnd::Abnormal => {
            // The will is published when the delay passes or the session
            // ends, whichever comes first (§3.1.2.5, §3.1.3.2.2).
            match will_delay.min(session_expiry) {
                0 => WillFate::PublishNow,
                d => WillFate::PublishAfter(Duration::from_secs(u64::from(d))),
            }
        }
    }
}

/// The will of a connection whose client id connected again while it was
/// still attached (takeover, §3.1.4): if the new connection resumes the
/// session, the old connection's will is not published (a new connection
/// arrived before any delay could pass); if the session ends, it is
/// published at once.
pub fn will_on_takeover(outcome: OnConnect) -> WillFate {
    match outcome {
        OnConnect::Resume => WillFate::Discard,
        OnConnect::Replace | OnConnect::Create => WillFate::PublishNow,
    }
}

/// A will waiting for its delay after the connection ended, when something
/// happens to the session before the delay passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingWillEvent {
    /// A new connection resumed the session.
    Resumed,
    /// The session ended: a Clean Start connection replaced it, or it
    /// expired.
    SessionEnded,
    /// The delay passed.
    DelayPassed,
}

pub fn pending_will(event: PendingWillEvent) -> WillFate {
    match event {
        PendingWillEvent::Resumed => WillFate::Discard,
        PendingWillEvent::SessionEnded | PendingWillEvent::DelayPassed => WillFate::PublishNow,
    }
}

/// The session expiry interval a CONNECT asks for: 3.1.1 has none, Clean
/// Session = 1 means 0 and Clean Session = 0 means "never" (`u32::MAX`).
pub fn requested_expiry(v5: bool, clean_start: bool, v5_expiry: Option<u32>) -> u32 {
    match (v5, clean_start) {
        (true, _) => v5_expiry.unwrap_or(0),
        (false, true) => 0,
        (false, false) => u32::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERSISTENT: Option<Existing> = Some(Existing { persistent: true });
    const CLEAN: Option<Existing> = Some(Existing { persistent: false });

    #[test]
    fn a_new_client_id_creates_a_session() {
        assert_eq!(on_connect(None, false), OnConnect::Create);
        assert_eq!(on_connect(None, true), OnConnect::Create);
    }

    #[test]
    fn clean_start_replaces_and_otherwise_a_persistent_session_resumes() {
        assert_eq!(on_connect(PERSISTENT, false), OnConnect::Resume);
        assert_eq!(on_connect(PERSISTENT, true), OnConnect::Replace);
    }

    /// MQTT-3.1.2-6: a 3.1.1 Clean Session = 1 session (expiry 0) lasts as
    /// long as its connection; a Clean Session = 0 reconnect that takes it
    /// over gets a new session, not the old subscriptions.
    #[test]
    fn a_clean_session_is_never_resumed_even_by_a_takeover() {
        assert_eq!(on_connect(CLEAN, false), OnConnect::Replace);
        assert_eq!(on_connect(CLEAN, true), OnConnect::Replace);
        let v311_clean = requested_expiry(false, true, None);
        assert_eq!(v311_clean, 0);
        let existing = Some(Existing {
            persistent: v311_clean > 0,
        });
        assert_eq!(on_connect(existing, false), OnConnect::Replace);
    }

    #[test]
    fn takeover_that_resumes_discards_the_old_will_and_one_that_replaces_publishes_it() {
        assert_eq!(will_on_takeover(OnConnect::Resume), WillFate::Discard);
        assert_eq!(will_on_takeover(OnConnect::Replace), WillFate::PublishNow);
    }

    #[test]
    fn the_will_waits_for_the_shorter_of_its_delay_and_the_session() {
        let abnormal = ConnectionEnd::Abnormal;
        assert_eq!(will_on_end(abnormal, 0, 30), WillFate::PublishNow);
        assert_eq!(will_on_end(abnormal, 300, 0), WillFate::PublishNow);
        assert_eq!(
            will_on_end(abnormal, 300, 30),
            WillFate::PublishAfter(Duration::from_secs(30))
        );
        assert_eq!(
            will_on_end(abnormal, 10, 30),
            WillFate::PublishAfter(Duration::from_secs(10))
        );
        assert_eq!(
            will_on_end(ConnectionEnd::DisconnectWithWill, u32::MAX, 5),
            WillFate::PublishAfter(Duration::from_secs(5))
        );
    }

    #[test]
    fn a_normal_disconnect_and_a_shutdown_discard_the_will() {
        assert_eq!(
            will_on_end(ConnectionEnd::NormalDisconnect, 0, 0),
            WillFate::Discard
        );
        assert_eq!(
            will_on_end(ConnectionEnd::ServerShutdown, u32::MAX, 0),
            WillFate::Discard
        );
    }

    /// §3.1.3.2.2: the will is published when the session ends, even if
    /// its delay has not passed (a Clean Start reconnect ends it).
    #[test]
    fn a_delayed_will_is_published_when_the_session_ends_and_dropped_when_resumed() {
        assert_eq!(
            pending_will(PendingWillEvent::SessionEnded),
            WillFate::PublishNow
        );
        assert_eq!(pending_will(PendingWillEvent::Resumed), WillFate::Discard);
        assert_eq!(
            pending_will(PendingWillEvent::DelayPassed),
            WillFate::PublishNow
        );
    }

    #[test]
    fn v311_expiry_comes_from_clean_session() {
        assert_eq!(requested_expiry(false, false, Some(5)), u32::MAX);
        assert_eq!(requested_expiry(true, false, None), 0);
        assert_eq!(requested_expiry(true, true, Some(60)), 60);
    }
}
