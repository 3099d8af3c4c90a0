//! MQTT 5.0 features: subscription identifiers, No Local, property
//! passthrough for request/response (MQTT 5.0 §3.3.2.3, §3.8.2.1.2,
//! §3.8.3.1, §4.10).

mod common;

use common::*;

fn sub_id(id: u32) -> Props {
    Props {
        subscription_identifiers: vec![id],
        ..Props::default()
    }
}

/// [MQTT-3.3.4-3]: a message matching a subscription with an identifier
/// carries that identifier.
#[test]
fn subscription_identifier_is_delivered_with_message() {
    let b = Broker::start();
    let mut c = b.v5("sid");
    c.subscribe_with(&[("sid/t", 1)], sub_id(42));
    publish_once(b.port, "sid/t", b"x", 1, false);
    assert_eq!(
        c.recv_publish_ack().props.subscription_identifiers,
        vec![42]
    );
}

/// [MQTT-3.3.4-3]/[MQTT-3.3.4-5]: overlapping subscriptions: every
/// matching identifier reaches the client (in one or several copies).
#[test]
fn overlapping_subscriptions_deliver_all_subscription_identifiers() {
    let b = Broker::start();
    let mut c = b.v5("sids");
    c.subscribe_with(&[("sids/+", 1)], sub_id(1));
    c.subscribe_with(&[("sids/#", 1)], sub_id(2));
    publish_once(b.port, "sids/t", b"x", 1, false);
    let mut ids = c.recv_publish_ack().props.subscription_identifiers;
    while let Recv::Packet(Packet::Publish(p)) = c.try_recv(QUIET) {
        c.ack(&p);
        ids.extend(p.props.subscription_identifiers);
    }
    ids.sort();
    assert_eq!(ids, vec![1, 2]);
}

/// §3.8.2.1.2: resubscribing with a new identifier replaces the old one.
#[test]
fn resubscribe_replaces_subscription_identifier() {
    let b = Broker::start();
    let mut c = b.v5("sid-re");
    c.subscribe_with(&[("sidre/t", 1)], sub_id(5));
    c.subscribe_with(&[("sidre/t", 1)], sub_id(6));
    publish_once(b.port, "sidre/t", b"x", 1, false);
    assert_eq!(c.recv_publish_ack().props.subscription_identifiers, vec![6]);
}

/// §3.8.2.1.2: a subscription without identifier gets messages without one.
#[test]
fn subscription_without_identifier_gets_none() {
    let b = Broker::start();
    let mut c = b.v5("sid-none");
    c.subscribe("sidnone/t", 1);
    publish_once(b.port, "sidnone/t", b"x", 1, false);
    assert!(c
        .recv_publish_ack()
        .props
        .subscription_identifiers
        .is_empty());
}

/// §3.8.2.1.2: Subscription Identifier 0 is a Protocol Error.
#[test]
fn subscription_identifier_zero_is_protocol_error() {
    let b = Broker::start();
    let mut c = b.v5("sid0");
    let pkid = c.pkid();
    c.send(&Packet::Subscribe {
        pkid,
        props: sub_id(0),
        filters: vec![("sid0/t".into(), 0)],
    });
    c.expect_disconnect(&[0x81, 0x82]);
}

/// [MQTT-3.3.4-6]: a client may not send a Subscription Identifier in PUBLISH.
#[test]
fn subscription_identifier_in_client_publish_is_protocol_error() {
    let b = Broker::start();
    let mut c = b.v5("sidpub");
    c.send(&Packet::Publish(Publish {
        props: sub_id(3),
        ..Publish::new("sidpub/t", b"x", 0)
    }));
    if mosquitto_deviates("mosquitto 2.0.11 ignores a Subscription Identifier in client PUBLISH") {
        return;
    }
    c.expect_disconnect(&[0x81, 0x82]);
}

/// [MQTT-3.8.3-3]: No Local: the client's own messages are not sent back.
#[test]
fn no_local_prevents_receiving_own_messages() {
    let b = Broker::start();
    let mut c = b.v5("nolocal");
    c.subscribe_with(&[("nl/t", sub_opts(1, true, false, 0))], Props::default());
    c.publish("nl/t", b"mine", 1, false);
    c.expect_nothing(QUIET);
    publish_once(b.port, "nl/t", b"theirs", 1, false);
    assert_eq!(c.recv_publish_ack().payload, b"theirs");
}

/// [MQTT-3.3.2-17], [MQTT-3.3.2-18]: user properties are forwarded
/// unaltered and in order, including repeated keys.
#[test]
fn user_properties_are_forwarded_in_order() {
    let b = Broker::start();
    let mut sub = b.v5("up-sub");
    sub.subscribe("up/t", 1);
    let up: Vec<(String, String)> = [("b", "1"), ("a", "2"), ("b", "3"), ("ünï", "çødé")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut p = b.v5("up-pub");
    p.publish_packet(Publish {
        props: Props {
            user_properties: up.clone(),
            ..Props::default()
        },
        ..Publish::new("up/t", b"x", 1)
    });
    assert_eq!(sub.recv_publish_ack().props.user_properties, up);
}

/// [MQTT-3.3.2-15], [MQTT-3.3.2-16], §4.10: Response Topic and
/// Correlation Data reach the subscriber unaltered.
#[test]
fn response_topic_and_correlation_data_are_forwarded() {
    let b = Broker::start();
    let mut sub = b.v5("rr-sub");
    sub.subscribe("rr/req", 1);
    let mut p = b.v5("rr-pub");
    p.publish_packet(Publish {
        props: Props {
            response_topic: Some("rr/resp/42".into()),
            correlation_data: Some(vec![0, 1, 2, 255]),
            ..Props::default()
        },
        ..Publish::new("rr/req", b"q", 1)
    });
    let m = sub.recv_publish_ack();
    assert_eq!(m.props.response_topic.as_deref(), Some("rr/resp/42"));
    assert_eq!(m.props.correlation_data, Some(vec![0, 1, 2, 255]));
}

/// §4.10: a full request/response exchange through the broker.
#[test]
fn request_response_round_trip() {
    let b = Broker::start();
    let mut responder = b.v5("responder");
    responder.subscribe("svc/req", 1);
    let mut requester = b.v5("requester");
    requester.subscribe("svc/resp/requester", 1);
    requester.publish_packet(Publish {
        props: Props {
            response_topic: Some("svc/resp/requester".into()),
            correlation_data: Some(b"id-7".to_vec()),
            ..Props::default()
        },
        ..Publish::new("svc/req", b"ping", 1)
    });
    let req = responder.recv_publish_ack();
    responder.publish_packet(Publish {
        props: Props {
            correlation_data: req.props.correlation_data.clone(),
            ..Props::default()
        },
        ..Publish::new(req.props.response_topic.as_deref().unwrap(), b"pong", 1)
    });
    let resp = requester.recv_publish_ack();
    assert_eq!(
        (
            resp.payload.as_slice(),
            resp.props.correlation_data.as_deref()
        ),
        (&b"pong"[..], Some(&b"id-7"[..]))
    );
}

/// [MQTT-3.3.2-4], [MQTT-3.3.2-20]: Payload Format Indicator and Content
/// Type are forwarded unaltered.
#[test]
fn payload_format_indicator_and_content_type_are_forwarded() {
    let b = Broker::start();
    let mut sub = b.v5("pfi-sub");
    sub.subscribe("pfi/t", 1);
    let mut p = b.v5("pfi-pub");
    p.publish_packet(Publish {
        props: Props {
            payload_format_indicator: Some(1),
            content_type: Some("text/plain; charset=utf-8".into()),
            ..Props::default()
        },
        ..Publish::new("pfi/t", "héllo".as_bytes(), 1)
    });
    let m = sub.recv_publish_ack();
    assert_eq!(m.props.payload_format_indicator, Some(1));
    assert_eq!(
        m.props.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(m.payload, "héllo".as_bytes());
}

/// §3.3.2.3: properties of a v5 publish are not sent to 3.1.1
/// subscribers, who still get topic and payload.
#[test]
fn v5_message_reaches_v311_subscriber() {
    let b = Broker::start();
    let mut sub = b.v3("mixed-3");
    sub.subscribe("mixed/t", 1);
    let mut p = b.v5("mixed-5");
    p.publish_packet(Publish {
        props: Props {
            user_properties: vec![("k".into(), "v".into())],
            ..Props::default()
        },
        ..Publish::new("mixed/t", b"cross", 1)
    });
    let m = sub.recv_publish_ack();
    assert_eq!(
        (m.topic.as_str(), m.payload.as_slice()),
        ("mixed/t", &b"cross"[..])
    );
}

/// A 3.1.1 publisher reaches a v5 subscriber.
#[test]
fn v311_message_reaches_v5_subscriber() {
    let b = Broker::start();
    let mut sub = b.v5("mixed-5s");
    sub.subscribe("mixed2/t", 2);
    let mut p = b.v3("mixed-3p");
    p.publish("mixed2/t", b"old-client", 2, false);
    let m = sub.recv_publish_ack();
    assert_eq!((m.payload.as_slice(), m.qos), (&b"old-client"[..], 2));
}
