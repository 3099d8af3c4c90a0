//! Property test: any packet legal for a protocol version survives
//! encode → decode unchanged, and `encoded_len` is exact.

mod common;

use bytes::{Bytes, BytesMut};
use ledgermq_proto::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

/// Where a property set sits (test-side copy of spec table 2-4, written
/// independently of the crate's).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubResp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 /é€😀]{0,10}"
}

fn topic_name() -> impl Strategy<Value = String> {
    "[a-z0-9$é]{1,5}(/[a-z0-9]{0,5}){0,3}"
}

fn filter() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,5}(/[a-z]{1,5}){0,3}",
        Just("#".to_string()),
        "[a-z]{1,4}/\\+/#"
    ]
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn flag() -> impl Strategy<Value = Option<u8>> {
    of(0u8..=1)
}

fn properties(ctx: Ctx) -> impl Strategy<Value = Properties> {
    let a = (
        flag(),
        of(any::<u32>()),
        of(text()),
        of(topic_name()),
        of(binary()),
        vec(1u32..=268_435_455, 0..3),
        of(any::<u32>()),
        of(text()),
        of(any::<u16>()),
        of(text()),
        of(binary()),
        flag(),
    );
    let b = (
        of(any::<u32>()),
        flag(),
        of(text()),
        of(text()),
        of(text()),
        of(1u16..),
        of(any::<u16>()),
        of(1u16..),
        flag(),
        flag(),
        vec((text(), text()), 0..3),
        of(1u32..),
    );
    let c = (flag(), flag(), flag());
    (a, b, c).prop_map(move |(a, b, c)| {
        let p = Properties {
            payload_format_indicator: a.0,
            message_expiry_interval: a.1,
            content_type: a.2,
            response_topic: a.3,
            correlation_data: a.4,
            subscription_identifiers: a.5,
            session_expiry_interval: a.6,
            assigned_client_identifier: a.7,
            server_keep_alive: a.8,
            authentication_method: a.9,
            authentication_data: a.10,
            request_problem_information: a.11,
            will_delay_interval: b.0,
            request_response_information: b.1,
            response_information: b.2,
            server_reference: b.3,
            reason_string: b.4,
            receive_maximum: b.5,
            topic_alias_maximum: b.6,
            topic_alias: b.7,
            maximum_qos: b.8,
            retain_available: b.9,
            user_properties: b.10,
            maximum_packet_size: b.11,
            wildcard_subscription_available: c.0,
            subscription_identifier_available: c.1,
            shared_subscription_available: c.2,
        };
        keep_allowed(p, ctx)
    })
}

/// Drops what the spec does not allow in `ctx`.
fn keep_allowed(p: Properties, ctx: Ctx) -> Properties {
    use Ctx::*;
    let msg = matches!(ctx, Publish | Will);
    let connack = ctx == ConnAck;
    let connect = ctx == Connect;
    let auth = matches!(ctx, Connect | ConnAck | Auth);
    let mut out = Properties {
        payload_format_indicator: p.payload_format_indicator.filter(|_| msg),
        message_expiry_interval: p.message_expiry_interval.filter(|_| msg),
        content_type: p.content_type.filter(|_| msg),
        response_topic: p.response_topic.filter(|_| msg),
        correlation_data: p.correlation_data.filter(|_| msg),
        subscription_identifiers: match ctx {
            Publish => p.subscription_identifiers,
            Subscribe => p.subscription_identifiers.into_iter().take(1).collect(),
            _ => Vec::new(),
        },
        session_expiry_interval: p
            .session_expiry_interval
            .filter(|_| matches!(ctx, Connect | ConnAck | Disconnect)),
        assigned_client_identifier: p.assigned_client_identifier.filter(|_| connack),
        server_keep_alive: p.server_keep_alive.filter(|_| connack),
        authentication_method: p.authentication_method.filter(|_| auth),
        authentication_data: p.authentication_data.filter(|_| auth),
        request_problem_information: p.request_problem_information.filter(|_| connect),
        will_delay_interval: p.will_delay_interval.filter(|_| ctx == Will),
        request_response_information: p.request_response_information.filter(|_| connect),
        response_information: p.response_information.filter(|_| connack),
        server_reference: p
            .server_reference
            .filter(|_| matches!(ctx, ConnAck | Disconnect)),
        reason_string: p.reason_string.filter(|_| {
            matches!(
                ctx,
                ConnAck | PubResp | SubAck | UnsubAck | Disconnect | Auth
            )
        }),
        receive_maximum: p.receive_maximum.filter(|_| connect || connack),
        topic_alias_maximum: p.topic_alias_maximum.filter(|_| connect || connack),
        topic_alias: p.topic_alias.filter(|_| ctx == Publish),
        maximum_qos: p.maximum_qos.filter(|_| connack),
        retain_available: p.retain_available.filter(|_| connack),
        user_properties: p.user_properties,
        maximum_packet_size: p.maximum_packet_size.filter(|_| connect || connack),
        wildcard_subscription_available: p.wildcard_subscription_available.filter(|_| connack),
        subscription_identifier_available: p.subscription_identifier_available.filter(|_| connack),
        shared_subscription_available: p.shared_subscription_available.filter(|_| connack),
    };
    // CONNECT and AUTH refuse Authentication Data without a method.
    if matches!(ctx, Connect | Auth) && out.authentication_method.is_none() {
        out.authentication_data = None;
    }
    out
}

fn props_for(v: Protocol, ctx: Ctx) -> BoxedStrategy<Properties> {
    match v {
        Protocol::V5 => properties(ctx).boxed(),
        Protocol::V311 => Just(Properties::default()).boxed(),
    }
}

fn reason(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    proptest::sample::select(codes).prop_map(ReasonCode)
}

fn connect(v: Protocol) -> impl Strategy<Value = Packet> {
    let will = (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        props_for(v, Ctx::Will),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    (
        any::<bool>(),
        any::<u16>(),
        text(),
        of(will),
        of(text()),
        of(binary()),
        props_for(v, Ctx::Connect),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                let password = if v == Protocol::V311 && username.is_none() {
                    None
                } else {
                    password
                };
                Packet::Connect(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                })
            },
        )
}

fn connack(v: Protocol) -> impl Strategy<Value = Packet> {
    let codes: &'static [u8] = match v {
        Protocol::V311 => &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87],
        Protocol::V5 => &[
            0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
            0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
        ],
    };
    (any::<bool>(), reason(codes), props_for(v, Ctx::ConnAck)).prop_map(
        |(sp, reason, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: sp && !reason.is_error(),
                reason,
                properties,
            })
        },
    )
}

fn publish(v: Protocol) -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        1u16..,
        props_for(v, Ctx::Publish),
        binary(),
        any::<bool>(),
    )
        .prop_map(
            move |(qos, dup, retain, topic, pid, properties, payload, alias_only)| {
                let at_most_once = qos == QoS::AtMostOnce;
                let alias_only = alias_only && properties.topic_alias.is_some();
                Packet::Publish(Publish {
                    dup: dup && !at_most_once,
                    qos,
                    retain,
                    topic: if alias_only { String::new() } else { topic },
                    packet_id: if at_most_once { 0 } else { pid },
                    properties,
                    payload,
                })
            },
        )
}

fn pub_resp(v: Protocol, codes: &'static [u8]) -> impl Strategy<Value = PubResp> {
    let codes: &'static [u8] = if v == Protocol::V311 { &[0] } else { codes };
    (1u16.., reason(codes), props_for(v, Ctx::PubResp)).prop_map(
        |(packet_id, reason, properties)| PubResp {
            packet_id,
            reason,
            properties,
        },
    )
}

fn options(v: Protocol) -> impl Strategy<Value = SubscriptionOptions> {
    let rh = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend)
    ];
    (qos(), any::<bool>(), any::<bool>(), rh).prop_map(move |(qos, nl, rap, rh)| match v {
        Protocol::V311 => SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        },
        Protocol::V5 => SubscriptionOptions {
            qos,
            no_local: nl,
            retain_as_published: rap,
            retain_handling: rh,
        },
    })
}

fn any_packet(v: Protocol) -> BoxedStrategy<Packet> {
    let acks: &'static [u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
    let rels: &'static [u8] = &[0x00, 0x92];
    let suback_codes: &'static [u8] = match v {
        Protocol::V311 => &[0x00, 0x01, 0x02, 0x80],
        Protocol::V5 => &[
            0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
        ],
    };
    let mut all = vec![
        connect(v).boxed(),
        connack(v).boxed(),
        publish(v).boxed(),
        pub_resp(v, acks).prop_map(Packet::PubAck).boxed(),
        pub_resp(v, acks).prop_map(Packet::PubRec).boxed(),
        pub_resp(v, rels).prop_map(Packet::PubRel).boxed(),
        pub_resp(v, rels).prop_map(Packet::PubComp).boxed(),
        (
            1u16..,
            props_for(v, Ctx::Subscribe),
            vec((filter(), options(v)), 1..4),
        )
            .prop_map(|(packet_id, properties, filters)| {
                Packet::Subscribe(Subscribe {
                    packet_id,
                    properties,
                    filters,
                })
            })
            .boxed(),
        (
            1u16..,
            props_for(v, Ctx::SubAck),
            vec(reason(suback_codes), 1..4),
        )
            .prop_map(|(packet_id, properties, reasons)| {
                Packet::SubAck(SubAck {
                    packet_id,
                    properties,
                    reasons,
                })
            })
            .boxed(),
        (1u16.., props_for(v, Ctx::Unsubscribe), vec(filter(), 1..4))
            .prop_map(|(packet_id, properties, filters)| {
                Packet::Unsubscribe(Unsubscribe {
                    packet_id,
                    properties,
                    filters,
                })
            })
            .boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
    ];
    match v {
        Protocol::V311 => {
            all.push(
                (1u16..)
                    .prop_map(|packet_id| {
                        Packet::UnsubAck(UnsubAck {
                            packet_id,
                            ..UnsubAck::default()
                        })
                    })
                    .boxed(),
            );
            all.push(Just(Packet::Disconnect(Disconnect::default())).boxed());
        }
        Protocol::V5 => {
            let unsuback: &'static [u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
            let disconnect: &'static [u8] = &[
                0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
                0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1,
                0xA2,
            ];
            all.push(
                (
                    1u16..,
                    properties(Ctx::UnsubAck),
                    vec(reason(unsuback), 1..4),
                )
                    .prop_map(|(packet_id, properties, reasons)| {
                        Packet::UnsubAck(UnsubAck {
                            packet_id,
                            properties,
                            reasons,
                        })
                    })
                    .boxed(),
            );
            all.push(
                (reason(disconnect), properties(Ctx::Disconnect))
                    .prop_map(|(reason, properties)| {
                        Packet::Disconnect(Disconnect { reason, properties })
                    })
                    .boxed(),
            );
            all.push(
                (reason(&[0x00, 0x18, 0x19]), properties(Ctx::Auth))
                    .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
                    .boxed(),
            );
        }
    }
    proptest::strategy::Union::new(all).boxed()
}

fn round_trip(packet: &Packet, v: Protocol) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::new();
    encode(packet, v, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(buf.len(), encoded_len(packet, v));
    let state = if matches!(packet, Packet::Connect(_)) {
        None
    } else {
        Some(v)
    };
    let decoded = decode(&mut buf, state, MAX_PACKET_SIZE);
    prop_assert_eq!(decoded, Ok(Some(packet.clone())));
    prop_assert!(buf.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_legal_v311_packet_round_trips(packet in any_packet(Protocol::V311)) {
        round_trip(&packet, Protocol::V311)?;
    }

    #[test]
    fn every_legal_v5_packet_round_trips(packet in any_packet(Protocol::V5)) {
        round_trip(&packet, Protocol::V5)?;
    }
}
