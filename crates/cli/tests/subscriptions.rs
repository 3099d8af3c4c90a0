//! Subscriptions, topic filters, wildcards, `$` topics, SUBACK/UNSUBACK
//! codes (MQTT 5.0 §3.8–3.11, §4.7; 3.1.1 §3.8–3.11, §4.7).

mod common;

use common::*;

/// Publishes each topic (QoS 1) and returns the topics `sub` receives.
fn delivered(b: &Broker, sub: &mut Client, topics: &[&str]) -> Vec<String> {
    let mut p = b.v5(&format!("pub-{}", unique()));
    for t in topics {
        p.publish(t, t.as_bytes(), 1, false);
    }
    // A marker on a topic every test subscribes to closes the batch.
    p.publish("marker", b"", 1, false);
    let mut got = Vec::new();
    loop {
        let m = sub.recv_publish_ack();
        if m.topic == "marker" {
            return got;
        }
        got.push(m.topic);
    }
}

fn subscriber(b: &Broker, filters: &[&str]) -> Client {
    let mut c = b.v5(&format!("sub-{}", unique()));
    for f in filters.iter().chain(["marker"].iter()) {
        assert_eq!(c.subscribe(f, 1), 1, "SUBACK for {f}");
    }
    c
}

/// [MQTT-3.9.3-1]: SUBACK grants the requested QoS, one code per filter in order.
#[test]
fn suback_grants_requested_qos_per_filter_in_order() {
    let b = Broker::start();
    let mut c = b.v5("grant");
    let codes = c.subscribe_with(&[("g/0", 0), ("g/1", 1), ("g/2", 2)], Props::default());
    assert_eq!(codes, vec![0, 1, 2]);
}

/// 3.1.1 [MQTT-3.9.3-1].
#[test]
fn suback_grants_requested_qos_v311() {
    let b = Broker::start();
    let mut c = b.v3("grant3");
    let codes = c.subscribe_with(&[("g/0", 0), ("g/1", 1), ("g/2", 2)], Props::default());
    assert_eq!(codes, vec![0, 1, 2]);
}

/// §4.7.1.3: `+` matches exactly one level.
#[test]
fn plus_wildcard_matches_exactly_one_level() {
    let b = Broker::start();
    let mut s = subscriber(&b, &["a/+/c"]);
    assert_eq!(
        delivered(&b, &mut s, &["a/b/c", "a/b/c/d", "a/c", "a/x/c"]),
        vec!["a/b/c", "a/x/c"]
    );
}

/// §4.7.1.3: `+` matches an empty level.
#[test]
fn plus_wildcard_matches_empty_level() {
    let b = Broker::start();
    let mut s = subscriber(&b, &["a/+/c"]);
    assert_eq!(delivered(&b, &mut s, &["a//c"]), vec!["a//c"]);
}

/// [MQTT-4.7.1-2]: `#` matches the parent level and any number of children.
#[test]
fn hash_wildcard_matches_parent_and_all_descendants() {
    let b = Broker::start();
    let mut s = subscriber(&b, &["sport/#"]);
    assert_eq!(
        delivered(
            &b,
            &mut s,
            &["sport", "sport/tennis", "sport/tennis/player1", "sports"]
        ),
        vec!["sport", "sport/tennis", "sport/tennis/player1"]
    );
}

/// §4.7.1.2: `#` alone matches every non-`$` topic.
#[test]
fn hash_alone_matches_every_topic() {
    let b = Broker::start();
    let mut c = b.v5("all");
    c.subscribe("#", 1);
    let mut p = b.v5("all-pub");
    p.publish("x", b"1", 1, false);
    p.publish("/leading/slash", b"2", 1, false);
    assert_eq!(c.recv_publish_ack().topic, "x");
    assert_eq!(c.recv_publish_ack().topic, "/leading/slash");
}

/// §4.7.3: topics are case sensitive.
#[test]
fn topic_matching_is_case_sensitive() {
    let b = Broker::start();
    let mut s = subscriber(&b, &["Case/Topic"]);
    assert_eq!(
        delivered(&b, &mut s, &["case/topic", "Case/Topic"]),
        vec!["Case/Topic"]
    );
}

/// §4.7.3: a leading `/` makes a distinct (empty) first level.
#[test]
fn leading_slash_is_a_distinct_level() {
    let b = Broker::start();
    let mut s = subscriber(&b, &["+/a"]);
    assert_eq!(delivered(&b, &mut s, &["/a", "x/a"]), vec!["/a", "x/a"]);
    let mut s2 = subscriber(&b, &["a/b"]);
    assert_eq!(delivered(&b, &mut s2, &["/a/b", "a/b"]), vec!["a/b"]);
}

/// [MQTT-4.7.2-1]: `#` and `+` at the first level do not match topics
/// beginning with `$`.
#[test]
fn wildcards_do_not_match_dollar_topics() {
    let b = Broker::start();
    let mut wild = b.v5("wild");
    wild.subscribe("#", 1);
    wild.subscribe("+/x", 1);
    let mut dollar = b.v5("dollar");
    dollar.subscribe("$test/+", 1);
    let mut p = b.v5("dollar-pub");
    p.publish("$test/x", b"d", 1, false);
    assert_eq!(dollar.recv_publish_ack().topic, "$test/x");
    wild.expect_nothing(QUIET);
}

/// [MQTT-3.8.4-3]: subscribing again with the same filter replaces the
/// subscription (new QoS, no duplicate delivery).
#[test]
fn resubscribe_replaces_existing_subscription() {
    let b = Broker::start();
    let mut c = b.v5("resub");
    assert_eq!(c.subscribe("re/t", 0), 0);
    assert_eq!(c.subscribe("re/t", 1), 1);
    publish_once(b.port, "re/t", b"x", 1, false);
    assert_eq!(c.recv_publish_ack().qos, 1);
    c.expect_nothing(QUIET);
}

/// [MQTT-3.10.4-1]/[MQTT-3.10.4-4]: after UNSUBSCRIBE (acked with the same
/// id) no more messages are delivered for that filter.
#[test]
fn unsubscribe_stops_delivery() {
    let b = Broker::start();
    let mut c = b.v5("unsub");
    c.subscribe("un/t", 1);
    assert_eq!(c.unsubscribe(&["un/t"]), vec![0x00]);
    publish_once(b.port, "un/t", b"x", 1, false);
    c.expect_nothing(QUIET);
}

/// 3.1.1 [MQTT-3.10.4-4]: UNSUBACK has no payload, delivery stops.
#[test]
fn unsubscribe_stops_delivery_v311() {
    let b = Broker::start();
    let mut c = b.v3("unsub3");
    c.subscribe("un3/t", 1);
    assert_eq!(c.unsubscribe(&["un3/t"]), Vec::<u8>::new());
    publish_once(b.port, "un3/t", b"x", 1, false);
    c.expect_nothing(QUIET);
}

/// §3.11.3: UNSUBACK 0x11 when no such subscription existed.
#[test]
fn unsuback_reports_no_subscription_existed_0x11() {
    let b = Broker::start();
    let mut c = b.v5("unsub-none");
    c.subscribe("exists", 0);
    assert_eq!(
        c.unsubscribe(&["never/subscribed", "exists"]),
        vec![0x11, 0x00]
    );
}

/// [MQTT-4.7.1-1]..§4.7.1: filters with misplaced wildcards are refused
/// per filter (SUBACK 0x8F); the valid filter in the same SUBSCRIBE is granted.
#[test]
fn invalid_topic_filter_gets_suback_0x8f() {
    let b = Broker::start();
    let mut c = b.v5("badfilter");
    let pkid = c.pkid();
    c.send(&Packet::Subscribe {
        pkid,
        props: Props::default(),
        filters: vec![
            ("a/#/b".into(), 0),
            ("ok/t".into(), 1),
            ("a+/b".into(), 0),
            ("sport#".into(), 0),
        ],
    });
    match c.try_recv(WAIT) {
        Recv::Packet(Packet::SubAck { codes, .. }) => {
            assert_eq!(codes, vec![0x8F, 0x01, 0x8F, 0x8F])
        }
        // Mosquitto treats an invalid filter as a malformed packet.
        Recv::Packet(Packet::Disconnect { .. }) | Recv::Closed
            if mosquitto_deviates("invalid filter closes") => {}
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// 3.1.1 §3.9.3: a refused filter gets return code 0x80 (failure).
#[test]
fn invalid_topic_filter_gets_suback_0x80_v311() {
    let b = Broker::start();
    let mut c = b.v3("badfilter3");
    let pkid = c.pkid();
    c.send(&Packet::Subscribe {
        pkid,
        props: Props::default(),
        filters: vec![("a/#/b".into(), 0), ("ok".into(), 0)],
    });
    match c.try_recv(WAIT) {
        Recv::Packet(Packet::SubAck { codes, .. }) => assert_eq!(codes, vec![0x80, 0x00]),
        Recv::Closed if mosquitto_deviates("invalid filter closes") => {}
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// [MQTT-3.3.4-2]: with overlapping subscriptions the message is delivered
/// respecting the maximum QoS of the matching subscriptions.
#[test]
fn overlapping_subscriptions_deliver_with_maximum_qos() {
    let b = Broker::start();
    let mut c = b.v5("overlap");
    c.subscribe("ov/+", 0);
    c.subscribe("ov/#", 1);
    publish_once(b.port, "ov/t", b"x", 1, false);
    let first = c.recv_publish_ack();
    let mut qos = vec![first.qos];
    while let Recv::Packet(Packet::Publish(p)) = c.try_recv(QUIET) {
        c.ack(&p);
        qos.push(p.qos);
    }
    assert!(qos.len() <= 2, "more copies than subscriptions: {qos:?}");
    assert_eq!(qos.iter().max(), Some(&1), "{qos:?}");
}

/// §4.7.3: topic names may contain spaces and any UTF-8.
#[test]
fn topics_with_spaces_and_unicode_are_matched_exactly() {
    let b = Broker::start();
    let mut s = subscriber(&b, &["room 1/température/+"]);
    assert_eq!(
        delivered(&b, &mut s, &["room 1/température/°C"]),
        vec!["room 1/température/°C"]
    );
}

/// [MQTT-3.3.1-?]/§4.5: a client receives its own message when subscribed
/// (No Local not set).
#[test]
fn client_receives_own_publication_without_no_local() {
    let b = Broker::start();
    let mut c = b.v5("self");
    c.subscribe("self/t", 1);
    c.publish("self/t", b"me", 1, false);
    assert_eq!(c.recv_publish_ack().payload, b"me");
}
