//! Session lifecycle: a CONNECT attaching to (or replacing) the session of
//! its client id, a connection ending, a session expiring, a will coming
//! due. The decisions are [`crate::rules`]; this file carries them out.
//!
//! Serialisation per client id: a CONNECT first takes the existing
//! session's [`Session::handling`] lock, which the connection attached to
//! it holds while it handles a batch of packets. So the old connection has
//! finished the packet it was handling (a SUBSCRIBE lands on the session it
//! was meant for, before the takeover) and handles no more (its link is
//! closing), and two CONNECTs with one client id take over one after the
//! other. Under the lock, the sessions map and then the session state are
//! locked (always in that order) while the session changes hands.
//!
//! Wills are kept in the session, not in the connection task: the will of
//! the attached connection, and a will whose connection ended and whose
//! delay is running. Whoever ends a session or takes it over decides their
//! fate; they are published after every lock is released (publishing
//! routes into sessions, possibly this one).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledgermq_proto::{ReasonCode, Will};

use crate::auth::ClientIdentity;
use crate::broker::Broker;
use crate::message::unix_now;
use crate::rules::{self, ConnectionEnd, Existing, OnConnect, PendingWillEvent, WillFate};
use crate::session::{ConnLink, PendingWill, Session, SessionState};
use crate::store::{SessionMeta, StoreOp};
use crate::timers::Timer;

/// A CONNECT that was authenticated and now wants its session.
pub struct Attach<'a> {
    pub client_id: &'a Arc<str>,
    pub clean_start: bool,
    /// The session expiry interval granted (already capped).
    pub expiry: u32,
    pub link: &'a Arc<ConnLink>,
    pub identity: Arc<ClientIdentity>,
    pub will: Option<Will>,
}

/// Wills to publish once the locks are released.
type Wills = Vec<(Will, ClientIdentity)>;

impl Broker {
    /// Attaches a new connection to the session of its client id, creating,
    /// resuming or replacing it as the session rules say, and closing any
    /// connection still attached (0x8E Session taken over). Returns the
    /// session and the CONNACK Session Present flag, or the CONNACK reason
    /// when the session limit is reached.
    pub async fn open_session(&self, a: Attach<'_>) -> Result<(Arc<Session>, bool), ReasonCode> {
        let mut wills = Wills::new();
        let opened = loop {
            let current = self.session(a.client_id);
            let _handling = match &current {
                Some(s) => Some(s.handling.lock().await),
                None => None,
            };
            let mut map = self.sessions.lock();
            let still = map.get(a.client_id);
            let unchanged = match (&current, still) {
                (Some(c), Some(s)) => Arc::ptr_eq(c, s),
                (None, None) => true,
                _ => false,
            };
            if !unchanged {
                continue; // another CONNECT of this client id got in first
            }
            let outcome = match &current {
                None if map.len() >= self.config.max_sessions => {
                    break Err(ReasonCode::QUOTA_EXCEEDED);
                }
                None => OnConnect::Create,
                Some(old) => self.take_over(old, a.clean_start, &mut wills),
            };
            let session = match (outcome, current.clone()) {
                (OnConnect::Resume, Some(old)) => old,
                (_, old) => {
                    if let Some(old) = old {
                        map.remove(a.client_id);
                        let mut st = old.state.lock();
                        wills.extend(self.end_session_locked(&old, &mut st));
                    }
                    let s = Arc::new(Session::new(a.client_id.clone(), a.link.protocol, a.expiry));
                    map.insert(a.client_id.clone(), s.clone());
                    s
                }
            };
            drop(map);
            self.attach(&session, &a, outcome == OnConnect::Resume);
            break Ok((session, outcome == OnConnect::Resume));
        };
        for (will, who) in wills {
            self.publish_will(will, &who);
        }
        opened
    }

    /// The existing session's side of a takeover: its connection is closed,
    /// its wills are judged, its timers stop. Returns what the CONNECT does.
    fn take_over(&self, old: &Arc<Session>, clean_start: bool, wills: &mut Wills) -> OnConnect {
        let mut st = old.state.lock();
        let existing = Existing {
            persistent: st.is_persistent() && !st.ended,
        };
        let outcome = rules::on_connect(Some(existing), clean_start);
        if let Some(c) = st.conn.take() {
            c.close(ReasonCode::SESSION_TAKEN_OVER, None);
        }
        old.room.notify_waiters();
        let who = identity_of(&st, &old.client_id);
        if let Some(will) = st.will.take() {
            if rules::will_on_takeover(outcome) == WillFate::PublishNow {
                wills.push((will, who));
            }
        }
        let event = match outcome {
            OnConnect::Resume => PendingWillEvent::Resumed,
            _ => PendingWillEvent::SessionEnded,
        };
        if let Some(p) = st.pending_will.take() {
            if rules::pending_will(event) == WillFate::PublishNow {
                wills.push((p.will, p.who));
            }
        }
        for key in [st.will_timer.take(), st.expiry_timer.take()]
            .into_iter()
            .flatten()
        {
            self.timers.cancel(key);
        }
        outcome
    }

    /// Gives the session to the new connection.
    fn attach(&self, session: &Arc<Session>, a: &Attach<'_>, resumed: bool) {
        let mut st = session.state.lock();
        let was_persistent = resumed && st.is_persistent();
        st.protocol = a.link.protocol;
        st.expiry_interval = a.expiry;
        st.conn = Some(a.link.clone());
        st.identity = Some(a.identity.clone());
        st.will = a.will.clone();
        st.disconnected_at = None;
        session.generation.fetch_add(1, Ordering::AcqRel);
        session.online.store(true, Ordering::Relaxed);
        if a.expiry > 0 {
            self.store_op(StoreOp::PutSession {
                client_id: a.client_id.clone(),
                meta: SessionMeta {
                    protocol: a.link.protocol,
                    expiry_interval: a.expiry,
                    disconnected_at: 0,
                    username: a.identity.username.clone(),
                },
            });
        } else if was_persistent {
            // Resumed by a connection that wants it to end with itself.
            self.store_op(StoreOp::DeleteSession {
                client_id: a.client_id.clone(),
            });
            forget_store_keys(&mut st);
        }
    }

    /// Detaches `link` from `session` when its connection ends, and carries
    /// out the will and expiry rules. Does nothing if the session was
    /// taken over meanwhile (the takeover decided).
    pub fn close_session(&self, session: &Arc<Session>, link: &Arc<ConnLink>, end: ConnectionEnd) {
        let mut wills = Wills::new();
        {
            let mut map = self.sessions.lock();
            let mut st = session.state.lock();
            if !st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, link)) {
                return;
            }
            st.conn = None;
            session.online.store(false, Ordering::Relaxed);
            // Publishers held back by this subscriber go on.
            session.room.notify_waiters();
            let now = Instant::now();
            st.disconnected_at = Some(now);
            let who = identity_of(&st, &session.client_id);
            let expiry = st.expiry_interval;
            let generation = session.generation.load(Ordering::Acquire);
            if let Some(will) = st.will.take() {
                let delay = will.properties.will_delay_interval.unwrap_or(0);
                match rules::will_on_end(end, expiry, delay) {
                    WillFate::Discard => {}
                    WillFate::PublishNow => wills.push((will, who.clone())),
                    WillFate::PublishAfter(d) => {
                        st.pending_will = Some(PendingWill {
                            will,
                            who: who.clone(),
                            generation,
                        });
                        st.will_timer = Some(self.timers.schedule(
                            now + d,
                            Timer::Will {
                                client_id: session.client_id.clone(),
                                generation,
                            },
                        ));
                    }
                }
            }
            if expiry == 0 {
                if map
                    .get(&session.client_id)
                    .is_some_and(|s| Arc::ptr_eq(s, session))
                {
                    map.remove(&session.client_id);
                }
                wills.extend(self.end_session_locked(session, &mut st));
            } else {
                self.store_op(StoreOp::PutSession {
                    client_id: session.client_id.clone(),
                    meta: SessionMeta {
                        protocol: st.protocol,
                        expiry_interval: expiry,
                        disconnected_at: unix_now(),
                        username: who.username.clone(),
                    },
                });
                if expiry != u32::MAX {
                    let at = now + Duration::from_secs(u64::from(expiry));
                    st.expiry_timer = Some(self.timers.schedule(
                        at,
                        Timer::SessionExpiry {
                            client_id: session.client_id.clone(),
                            generation,
                        },
                    ));
                }
            }
        }
        for (will, who) in wills {
            self.publish_will(will, &who);
        }
    }

    /// Ends a session: its subscriptions leave the router, its messages and
    /// store records are dropped, its timers stop. Returns its delayed will,
    /// which is due now that the session ends (§3.1.3.2.2). The caller
    /// removes it from the map.
    fn end_session_locked(
        &self,
        session: &Arc<Session>,
        st: &mut SessionState,
    ) -> Option<(Will, ClientIdentity)> {
        if st.ended {
            return None;
        }
        st.ended = true;
        for filter in st.subscriptions.keys() {
            self.router.unsubscribe(filter, session);
        }
        let had_records = st.is_persistent() || !stored_seqs(st).is_empty();
        st.subscriptions.clear();
        st.clear_messages();
        for key in [st.will_timer.take(), st.expiry_timer.take()]
            .into_iter()
            .flatten()
        {
            self.timers.cancel(key);
        }
        if had_records {
            self.store_op(StoreOp::DeleteSession {
                client_id: session.client_id.clone(),
            });
        }
        let pending = st.pending_will.take()?;
        (rules::pending_will(PendingWillEvent::SessionEnded) == WillFate::PublishNow)
            .then_some((pending.will, pending.who))
    }

    /// Carries out every timer due at `now`: delayed wills, expired sessions.
    pub fn run_timers(&self, now: Instant) {
        for timer in self.timers.take_due(now) {
            let mut wills = Wills::new();
            match timer {
                Timer::Will {
                    client_id,
                    generation,
                } => {
                    if let Some(s) = self.session(&client_id) {
                        let mut st = s.state.lock();
                        let due = st.conn.is_none()
                            && st
                                .pending_will
                                .as_ref()
                                .is_some_and(|p| p.generation == generation);
                        if due {
                            st.will_timer = None;
                            if let Some(p) = st.pending_will.take() {
                                if rules::pending_will(PendingWillEvent::DelayPassed)
                                    == WillFate::PublishNow
                                {
                                    wills.push((p.will, p.who));
                                }
                            }
                        }
                    }
                }
                Timer::SessionExpiry {
                    client_id,
                    generation,
                } => {
                    let mut map = self.sessions.lock();
                    if let Some(s) = map.get(&client_id).cloned() {
                        let mut st = s.state.lock();
                        if st.conn.is_none() && s.generation.load(Ordering::Acquire) == generation {
                            st.expiry_timer = None;
                            map.remove(&client_id);
                            wills.extend(self.end_session_locked(&s, &mut st));
                        }
                    }
                }
            }
            for (will, who) in wills {
                self.publish_will(will, &who);
            }
        }
    }
}

/// Who the session's client was, for its will.
fn identity_of(st: &SessionState, client_id: &str) -> ClientIdentity {
    st.identity
        .as_deref()
        .cloned()
        .unwrap_or_else(|| ClientIdentity {
            client_id: client_id.to_owned(),
            username: None,
        })
}

/// Store keys of everything the session still holds.
fn stored_seqs(st: &SessionState) -> Vec<u64> {
    st.queue
        .iter()
        .filter_map(|d| d.store_seq)
        .chain(st.inflight.iter().filter_map(|i| i.store_seq))
        .collect()
}

/// The session's records were deleted: what it holds is memory only now.
fn forget_store_keys(st: &mut SessionState) {
    for d in st.queue.iter_mut() {
        d.store_seq = None;
    }
    for i in st.inflight.iter_mut() {
        i.store_seq = None;
        if let crate::session::Outgoing::Publish { delivery, .. } = &mut i.out {
            delivery.store_seq = None;
        }
    }
    st.staged_durable = st.staged.len();
}
