//! One set of matching rules everywhere: `proto::topic::matches`, the
//! subscription trie and the retained trie all agree with a tiny
//! reference matcher written straight from MQTT 5.0 §4.7, over random
//! filters and topics (wildcards, empty levels, `$` topics).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ledgermq_broker::message::Message;
use ledgermq_broker::retained::RetainedStore;
use ledgermq_broker::router::{Checks, Router};
use ledgermq_broker::session::Session;
use ledgermq_proto::{topic, Properties, Protocol, QoS, SubscriptionOptions};
use proptest::prelude::*;

/// §4.7: `#` matches the parent and any number of levels, `+` exactly one
/// level, a leading wildcard never matches a topic starting with `$`.
fn reference(filter: &[&str], topic: &[&str], depth: usize, dollar: bool) -> bool {
    let wildcard_ok = !(depth == 0 && dollar);
    match filter.split_first() {
        None => topic.is_empty(),
        Some((&"#", _)) => wildcard_ok,
        Some((&"+", rest)) => {
            wildcard_ok && !topic.is_empty() && reference(rest, &topic[1..], depth + 1, dollar)
        }
        Some((literal, rest)) => {
            topic.first() == Some(literal) && reference(rest, &topic[1..], depth + 1, dollar)
        }
    }
}

fn reference_matches(filter: &str, name: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = name.split('/').collect();
    reference(&f, &t, 0, name.starts_with('$'))
}

fn name_level() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just(""), Just("$x"), Just("$SYS")].prop_map(String::from)
}

fn topic_name() -> impl Strategy<Value = String> {
    prop::collection::vec(name_level(), 1..5).prop_map(|l| l.join("/"))
}

fn topic_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![
        3 => name_level(),
        2 => Just("+".to_string()),
    ];
    (prop::collection::vec(level, 0..4), any::<bool>())
        .prop_map(|(mut l, hash)| {
            if hash || l.is_empty() {
                l.push("#".into());
            }
            l.join("/")
        })
        .prop_filter("a valid filter", |f| topic::validate_filter(f).is_ok())
}

/// Every topic name of 1 to 4 levels over the alphabet of [`name_level`].
fn every_short_name() -> Vec<String> {
    let levels = ["a", "b", "", "$x", "$SYS"];
    let mut all = Vec::new();
    let mut previous: Vec<String> = levels.iter().map(|l| l.to_string()).collect();
    all.extend(previous.iter().cloned());
    for _ in 1..4 {
        let next: Vec<String> = previous
            .iter()
            .flat_map(|p| levels.iter().map(move |l| format!("{p}/{l}")))
            .collect();
        all.extend(next.iter().cloned());
        previous = next;
    }
    all
}

fn retained(name: &str) -> Arc<Message> {
    Arc::new(Message {
        topic: name.into(),
        payload: Bytes::from_static(b"v"),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: Properties::default(),
        expires_at: None,
        publisher: "p".into(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_matcher_agrees_with_the_reference(
        filters in prop::collection::vec(topic_filter(), 1..8),
        names in prop::collection::vec(topic_name(), 1..8),
    ) {
        let router = Router::default();
        let retained_store = RetainedStore::default();
        for (i, f) in filters.iter().enumerate() {
            prop_assert!(topic::validate_filter(f).is_ok(), "{f}");
            let s = Arc::new(Session::new(i.to_string().into(), Protocol::V5, 0));
            router.subscribe(f, &s, SubscriptionOptions::default(), None);
        }
        for n in &names {
            retained_store.set(retained(n));
        }
        for n in &names {
            let want: BTreeSet<usize> = filters
                .iter()
                .enumerate()
                .filter(|(_, f)| reference_matches(f, n))
                .map(|(i, _)| i)
                .collect();
            let by_proto: BTreeSet<usize> = filters
                .iter()
                .enumerate()
                .filter(|(_, f)| topic::matches(f, n))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(&by_proto, &want, "proto::topic::matches on {}", n);
            let mut out = Vec::new();
            router.matches(n, Checks::Never, &mut out);
            let by_router: BTreeSet<usize> =
                out.iter().map(|m| m.session.client_id.parse().unwrap()).collect();
            prop_assert_eq!(&by_router, &want, "router on {}", n);
        }
        for f in &filters {
            let want: BTreeSet<&str> = names
                .iter()
                .filter(|n| reference_matches(f, n))
                .map(String::as_str)
                .collect();
            let found = retained_store.matching(f, Instant::now());
            let by_retained: BTreeSet<&str> = found.iter().map(|m| m.topic.as_str()).collect();
            prop_assert_eq!(by_retained, want, "retained store for {}", f);
        }
    }

    /// `covers` and `intersects` against the reference, by enumeration of
    /// every name over the same small alphabet.
    #[test]
    fn covers_and_intersects_agree_with_the_reference(a in topic_filter(), b in topic_filter()) {
        // Filters here have at most 4 levels before a `#`, so names of up
        // to 4 levels tell every difference apart.
        let universe = every_short_name();
        let matched_by = |f: &str| -> BTreeSet<&str> {
            universe
                .iter()
                .filter(|n| reference_matches(f, n))
                .map(String::as_str)
                .collect()
        };
        let (ma, mb) = (matched_by(&a), matched_by(&b));
        if topic::covers(&a, &b) {
            prop_assert!(mb.is_subset(&ma), "covers({a}, {b}) but {:?} escapes", mb.difference(&ma).next());
        }
        if !ma.is_disjoint(&mb) {
            prop_assert!(topic::intersects(&a, &b), "{a} and {b} share a name but do not intersect");
        }
        if !topic::intersects(&a, &b) {
            prop_assert!(ma.is_disjoint(&mb));
        }
    }
}
