//! Exactly once means exactly once, across `kill -9`: both directions of
//! the QoS 2 handshake are persisted with their packet ids (MQTT 5.0
//! §4.3.3, §4.4; 3.1.1 §4.3.3, §4.4), for 3.1.1 and 5.0.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::*;

fn persistent(level: u8, id: &str) -> Connect {
    let mut c = if level == V5 {
        Connect::v5(id)
    } else {
        Connect::v3(id)
    };
    c.clean_start = false;
    if level == V5 {
        c.props.session_expiry_interval = Some(3600);
    }
    c
}

fn durable_broker() -> Option<Broker> {
    if skip_unless_ledgermq("kill -9 of the broker") {
        return None;
    }
    Broker::with(&[("persistence", "true"), ("sys-interval", "0")])
}

fn expect(c: &mut Client, what: &str, pred: impl Fn(&Packet) -> bool) -> Packet {
    match c.try_recv(WAIT) {
        Recv::Packet(p) if pred(&p) => p,
        other => panic!("client {:?}: expected {what}, got {other:?}", c.id),
    }
}

/// (a) Inbound: the broker has sent PUBREC and is killed before PUBREL.
/// After the restart the publisher resends the PUBLISH (DUP, same id): it
/// is answered with PUBREC and not delivered again; its PUBREL is
/// completed with PUBCOMP 0x00 (the id was remembered, not 0x92).
fn inbound_qos2_survives_kill_between_pubrec_and_pubrel(level: u8) {
    let Some(mut b) = durable_broker() else {
        return;
    };
    let mut sub = b.connect_ok(persistent(level, "in-sub"));
    sub.subscribe("eo/in", 2);
    let mut p = b.connect_ok(persistent(level, "in-pub"));
    p.send(&Packet::Publish(Publish {
        pkid: 7,
        ..Publish::new("eo/in", b"once", 2)
    }));
    expect(
        &mut p,
        "PUBREC",
        |x| matches!(x, Packet::PubRec(a) if a.pkid == 7 && a.reason == 0),
    );
    b.kill9();
    b.restart();

    let (mut p, ack) = b.connect(persistent(level, "in-pub"));
    assert!(ack.session_present);
    p.send(&Packet::Publish(Publish {
        dup: true,
        pkid: 7,
        ..Publish::new("eo/in", b"once", 2)
    }));
    expect(
        &mut p,
        "PUBREC again",
        |x| matches!(x, Packet::PubRec(a) if a.pkid == 7),
    );
    p.send(&Packet::PubRel(Ack::new(7)));
    expect(
        &mut p,
        "PUBCOMP 0x00",
        |x| matches!(x, Packet::PubComp(a) if a.pkid == 7 && a.reason == 0),
    );

    let (mut sub, ack) = b.connect(persistent(level, "in-sub"));
    assert!(ack.session_present);
    let m = sub.recv_publish_ack();
    assert_eq!(m.payload, b"once");
    sub.expect_nothing(QUIET);
}

#[test]
fn v5_inbound_qos2_survives_kill_between_pubrec_and_pubrel() {
    inbound_qos2_survives_kill_between_pubrec_and_pubrel(V5);
}

#[test]
fn v311_inbound_qos2_survives_kill_between_pubrec_and_pubrel() {
    inbound_qos2_survives_kill_between_pubrec_and_pubrel(V3);
}

/// (b) Outbound: the subscriber has sent PUBREC (and got PUBREL) and the
/// broker is killed before PUBCOMP. After the restart the broker resends
/// the PUBREL under the same id, not the PUBLISH. And a PUBLISH the
/// subscriber never acknowledged comes back with DUP under its first id.
fn outbound_qos2_survives_kill_after_the_subscribers_pubrec(level: u8) {
    let Some(mut b) = durable_broker() else {
        return;
    };
    let mut sub = b.connect_ok(persistent(level, "out-sub"));
    sub.subscribe("eo/out", 2);
    let mut p = b.v5("out-pub");
    assert_eq!(p.publish("eo/out", b"first", 2, false), 0);
    let first = sub.recv_publish();
    sub.send(&Packet::PubRec(Ack::new(first.pkid)));
    // The PUBREL proves the broker made "PUBREL owed" durable.
    expect(
        &mut sub,
        "PUBREL",
        |x| matches!(x, Packet::PubRel(a) if a.pkid == first.pkid),
    );
    assert_eq!(p.publish("eo/out", b"second", 2, false), 0);
    let second = sub.recv_publish();
    assert_ne!(first.pkid, second.pkid);
    b.kill9();
    b.restart();

    let (mut sub, ack) = b.connect(persistent(level, "out-sub"));
    assert!(ack.session_present);
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(expect(&mut sub, "a resend", |_| true));
    }
    assert!(
        seen.iter()
            .any(|x| matches!(x, Packet::PubRel(a) if a.pkid == first.pkid)),
        "PUBREL {} resent: {seen:?}",
        first.pkid
    );
    let resent = seen.iter().find_map(|x| match x {
        Packet::Publish(m) => Some(m.clone()),
        _ => None,
    });
    let resent = resent.unwrap_or_else(|| panic!("second PUBLISH resent: {seen:?}"));
    assert_eq!(
        (resent.pkid, resent.dup, resent.payload.as_slice()),
        (second.pkid, true, &b"second"[..])
    );
    assert!(
        !seen
            .iter()
            .any(|x| matches!(x, Packet::Publish(m) if m.payload == b"first")),
        "the first message is not sent again: {seen:?}"
    );
    sub.send(&Packet::PubComp(Ack::new(first.pkid)));
    sub.ack(&resent);
    sub.expect_nothing(QUIET);
}

#[test]
fn v5_outbound_qos2_survives_kill_after_the_subscribers_pubrec() {
    outbound_qos2_survives_kill_after_the_subscribers_pubrec(V5);
}

#[test]
fn v311_outbound_qos2_survives_kill_after_the_subscribers_pubrec() {
    outbound_qos2_survives_kill_after_the_subscribers_pubrec(V3);
}

/// A QoS 2 publisher as the spec describes one: it keeps what it has not
/// finished and, on reconnect, resends unacknowledged PUBLISHes (DUP) and
/// owed PUBRELs.
struct Publisher {
    next: u32,
    total: u32,
    /// packet id → sequence number, PUBLISH sent, no PUBREC yet.
    unacked: BTreeMap<u16, u32>,
    /// PUBREC received, PUBCOMP not yet.
    releasing: BTreeMap<u16, u32>,
    done: u32,
}

impl Publisher {
    fn pkid(seq: u32) -> u16 {
        (seq % 60_000) as u16 + 1
    }

    fn resume(&self, c: &mut Client) {
        for (&id, seq) in &self.unacked {
            c.send(&Packet::Publish(Publish {
                dup: true,
                pkid: id,
                ..Publish::new("eo/cycle", &seq.to_be_bytes(), 2)
            }));
        }
        for &id in self.releasing.keys() {
            c.send(&Packet::PubRel(Ack::new(id)));
        }
    }

    fn send_more(&mut self, c: &mut Client) {
        while self.next < self.total && self.unacked.len() + self.releasing.len() < 16 {
            let seq = self.next;
            self.next += 1;
            self.unacked.insert(Self::pkid(seq), seq);
            c.send(&Packet::Publish(Publish {
                pkid: Self::pkid(seq),
                ..Publish::new("eo/cycle", &seq.to_be_bytes(), 2)
            }));
        }
    }

    /// Handles what arrives until 5 ms of silence, or `budget` packets;
    /// false once the connection is gone.
    fn handle(&mut self, c: &mut Client, mut budget: usize) -> bool {
        while budget > 0 {
            budget -= 1;
            match c.try_recv(Duration::from_millis(5)) {
                Recv::Packet(Packet::PubRec(a)) => {
                    assert!(a.reason < 0x80, "PUBREC {a:?}");
                    if let Some(seq) = self.unacked.remove(&a.pkid) {
                        self.releasing.insert(a.pkid, seq);
                    }
                    if self.releasing.contains_key(&a.pkid) {
                        c.send(&Packet::PubRel(Ack::new(a.pkid)));
                    }
                }
                Recv::Packet(Packet::PubComp(a)) => {
                    if self.releasing.remove(&a.pkid).is_some() {
                        self.done += 1;
                    }
                }
                Recv::Packet(_) => {}
                Recv::Timeout => return true,
                Recv::Closed | Recv::Malformed(_) => return false,
            }
        }
        true
    }
}

/// A QoS 2 subscriber, method B (§4.3.3): delivers a PUBLISH the first
/// time its id is seen, and treats the id as in use until PUBREL.
#[derive(Default)]
struct Subscriber {
    awaiting_release: HashSet<u16>,
    delivered: BTreeMap<u32, u32>,
}

impl Subscriber {
    fn handle(&mut self, c: &mut Client, mut budget: usize) -> bool {
        while budget > 0 {
            budget -= 1;
            match c.try_recv(Duration::from_millis(5)) {
                Recv::Packet(Packet::Publish(m)) => {
                    assert_eq!(m.qos, 2);
                    if self.awaiting_release.insert(m.pkid) {
                        let seq = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                        *self.delivered.entry(seq).or_default() += 1;
                    }
                    c.send(&Packet::PubRec(Ack::new(m.pkid)));
                }
                Recv::Packet(Packet::PubRel(a)) => {
                    self.awaiting_release.remove(&a.pkid);
                    c.send(&Packet::PubComp(Ack::new(a.pkid)));
                }
                Recv::Packet(_) => {}
                Recv::Timeout => return true,
                Recv::Closed | Recv::Malformed(_) => return false,
            }
        }
        true
    }
}

/// Receivers count each message: exactly once, every time, over 20
/// `kill -9` cycles at arbitrary points of the handshakes.
fn exactly_once_over_20_kill_cycles(level: u8) {
    let Some(mut b) = durable_broker() else {
        return;
    };
    let (mut sub, _) = b.connect(persistent(level, "cycle-sub"));
    sub.subscribe("eo/cycle", 2);
    drop(sub);
    let mut publisher = Publisher {
        next: 0,
        total: 3000,
        unacked: BTreeMap::new(),
        releasing: BTreeMap::new(),
        done: 0,
    };
    let mut subscriber = Subscriber::default();
    let mut cycle = 0;
    let mut kills_mid_handshake = 0;
    let deadline = Instant::now() + Duration::from_secs(150);
    // Pseudo-random run lengths between kills, reproducible.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    loop {
        let (mut p, pack) = b.connect(persistent(level, "cycle-pub"));
        let (mut s, sack) = b.connect(persistent(level, "cycle-sub"));
        assert_eq!((pack.code, sack.code), (0, 0));
        assert!(
            sack.session_present && (pack.session_present || cycle == 0),
            "cycle {cycle}: sessions survive"
        );
        publisher.resume(&mut p);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let run = if cycle < 20 {
            Duration::from_millis(50 + rng % 300)
        } else {
            Duration::from_secs(30)
        };
        let until = Instant::now() + run;
        while Instant::now() < until {
            publisher.send_more(&mut p);
            if !publisher.handle(&mut p, usize::MAX) || !subscriber.handle(&mut s, usize::MAX) {
                break;
            }
            if cycle >= 20
                && publisher.done == publisher.total
                && subscriber.awaiting_release.is_empty()
            {
                // Let the last resends, if any, arrive.
                let quiet = Instant::now() + QUIET;
                while Instant::now() < quiet {
                    subscriber.handle(&mut s, usize::MAX);
                }
                break;
            }
        }
        if cycle >= 20 {
            break;
        }
        // Stop somewhere inside the handshakes: new PUBLISHes out, a few
        // PUBRECs and PUBRELs answered on either side, then kill -9.
        publisher.send_more(&mut p);
        publisher.handle(&mut p, (rng % 8) as usize);
        subscriber.handle(&mut s, ((rng >> 8) % 24) as usize);
        publisher.handle(&mut p, ((rng >> 16) % 8) as usize);
        let mid_handshake = !publisher.unacked.is_empty()
            || !publisher.releasing.is_empty()
            || !subscriber.awaiting_release.is_empty();
        kills_mid_handshake += usize::from(mid_handshake);
        assert!(Instant::now() < deadline, "cycles took too long");
        b.kill9();
        b.restart();
        cycle += 1;
    }
    eprintln!("{kills_mid_handshake} of 20 kills hit a QoS 2 handshake in progress");
    assert!(
        kills_mid_handshake >= 10,
        "the kills must interrupt handshakes: {kills_mid_handshake} of 20"
    );
    assert_eq!(publisher.done, publisher.total, "every message completed");
    let duplicated: Vec<_> = subscriber
        .delivered
        .iter()
        .filter(|(_, &n)| n != 1)
        .collect();
    assert!(
        duplicated.is_empty(),
        "delivered more than once: {duplicated:?}"
    );
    let missing: Vec<u32> = (0..publisher.total)
        .filter(|s| !subscriber.delivered.contains_key(s))
        .collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
}

#[test]
fn v5_exactly_once_over_20_kill_cycles() {
    exactly_once_over_20_kill_cycles(V5);
}

#[test]
fn v311_exactly_once_over_20_kill_cycles() {
    exactly_once_over_20_kill_cycles(V3);
}
