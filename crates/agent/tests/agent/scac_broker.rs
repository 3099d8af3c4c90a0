//! SCAC against a scripted broker: the broker's side runs the reference
//! state machine of `ledgermq-security` (`BrokerHandshake`, `Channel`), so
//! these tests check that the client puts the right bytes in the right
//! packets — step 1 in CONNECT, steps 2 and 3 in AUTH 0x18, sealed QoS 2
//! payloads, `Np` / `Ns` in PUBREL — and that it refuses, with the
//! DISCONNECT docs/scac.md prescribes, a broker that does not prove itself
//! or sends a payload or key update that does not verify.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ledgermq_agent::scac::{LocalKey, PeerKey, ScacError, Suite};
use ledgermq_agent::{Auth, Client, ClientError, ClientOptions, QoS, ReasonCode};
use ledgermq_proto::{Auth as AuthPacket, Disconnect, Packet, Properties, PubResp, Publish};
use ledgermq_security::scac::keys::{InMemoryEd25519, InMemoryRsa};
use ledgermq_security::scac::{BrokerCredentials, BrokerHandshake, Channel, Party};
use tokio::net::TcpListener;

use crate::peer::{listen, Peer};

const DEVICE: &str = "sensor-42";
const WAIT: Duration = Duration::from_secs(5);

fn ed25519(seed: u8) -> LocalKey {
    LocalKey::Ed25519(Arc::new(InMemoryEd25519::from_seed(&[seed; 32])))
}

/// The device and broker keys of the published test vectors (docs/scac.md).
fn device_key() -> LocalKey {
    ed25519(0x11)
}

fn broker_key() -> LocalKey {
    ed25519(0x22)
}

fn scac_options(addr: &str) -> ClientOptions {
    let mut opts = ClientOptions::new(addr, DEVICE);
    opts.auth = Auth::Scac {
        suite: Suite::Default,
        device_key: device_key(),
        broker_key: broker_key().public(),
    };
    opts
}

fn scac_auth(suite: Suite, data: Vec<u8>) -> Packet {
    Packet::Auth(AuthPacket {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some(suite.method().into()),
            authentication_data: Some(Bytes::from(data)),
            ..Properties::default()
        },
    })
}

/// Reads a SCAC CONNECT and answers it with step 2 made by `broker`
/// (passed through `forge`); returns the peer, the broker's state and
/// the suite.
async fn scac_step2(
    listener: &TcpListener,
    uid: &str,
    broker: LocalKey,
    device: PeerKey,
    forge: impl FnOnce(&mut Vec<u8>),
) -> (Peer, ledgermq_security::scac::BrokerAwaiting, Suite) {
    let mut peer = Peer::accept(listener).await;
    let Packet::Connect(connect) = peer.read().await else {
        panic!("first packet is not CONNECT");
    };
    assert_eq!(connect.client_id, uid, "the Client ID is the UID");
    let props = connect.properties;
    let suite = Suite::from_method(props.authentication_method.as_deref().unwrap()).unwrap();
    let step1 = props.authentication_data.unwrap();
    let credentials = BrokerCredentials::new(broker).unwrap();
    let (awaiting, mut step2) =
        BrokerHandshake::start(suite, &credentials, &device, &step1).expect("step 1 verifies");
    assert_eq!(awaiting.uid(), uid);
    forge(&mut step2);
    peer.write(scac_auth(suite, step2)).await;
    (peer, awaiting, suite)
}

/// The whole handshake, as the broker: returns its payload channel.
async fn scac_accept(
    listener: &TcpListener,
    uid: &str,
    broker: LocalKey,
    device: PeerKey,
) -> (Peer, Channel) {
    let (mut peer, awaiting, suite) = scac_step2(listener, uid, broker, device, |_| {}).await;
    let (step3, _) = peer.read_auth().await;
    assert_eq!(step3.reason, ReasonCode::CONTINUE_AUTHENTICATION);
    let method = step3.properties.authentication_method.as_deref();
    assert_eq!(method, Some(suite.method()), "step 3 repeats the method");
    let channel = awaiting
        .finish(&step3.properties.authentication_data.unwrap())
        .expect("step 3 verifies");
    peer.connack(ReasonCode::SUCCESS).await;
    (peer, channel)
}

fn user_property<'a>(props: &'a Properties, name: &str) -> Option<&'a str> {
    let mut values = props.user_properties.iter().filter(|(n, _)| n == name);
    let value = values.next().map(|(_, v)| v.as_str());
    assert!(values.next().is_none(), "{name} appears twice");
    value
}

fn ack(packet_id: u16) -> PubResp {
    PubResp {
        packet_id,
        ..PubResp::default()
    }
}

fn sealed_delivery(channel: &mut Channel, packet_id: u16, data: &[u8]) -> Packet {
    let payload = channel.seal("plant/cmd", packet_id, data).unwrap();
    Packet::Publish(Publish {
        qos: QoS::ExactlyOnce,
        packet_id,
        topic: "plant/cmd".into(),
        payload: payload.into(),
        ..Publish::default()
    })
}

fn pubrel_with(packet_id: u16, key_update: Option<(&str, String)>) -> Packet {
    let mut pubrel = ack(packet_id);
    if let Some((name, value)) = key_update {
        pubrel.properties.user_properties.push((name.into(), value));
    }
    Packet::PubRel(pubrel)
}

/// The broker's end of one QoS 2 publish from the device: opens it,
/// checks `Np` and completes it; returns the data.
async fn receive_sealed(peer: &mut Peer, channel: &mut Channel) -> Vec<u8> {
    let Packet::Publish(publish) = peer.read().await else {
        panic!("expected PUBLISH");
    };
    assert_eq!(publish.qos, QoS::ExactlyOnce);
    assert!(publish.properties.topic_alias.is_none());
    let data = channel
        .open(&publish.topic, publish.packet_id, &publish.payload)
        .expect("the payload opens under the current publisher key");
    peer.write(Packet::PubRec(ack(publish.packet_id))).await;
    let Packet::PubRel(pubrel) = peer.read().await else {
        panic!("expected PUBREL");
    };
    let np = user_property(&pubrel.properties, "Np").expect("PUBREL carries Np");
    channel.accept_key_update(pubrel.packet_id, np).unwrap();
    peer.write(Packet::PubComp(ack(pubrel.packet_id))).await;
    data
}

/// The broker's end of one QoS 2 delivery: seals it, and once the device
/// took it (PUBREC), announces the next subscriber key.
async fn deliver_sealed(peer: &mut Peer, channel: &mut Channel, packet_id: u16, data: &[u8]) {
    peer.write(sealed_delivery(channel, packet_id, data)).await;
    match peer.read().await {
        Packet::PubRec(rec) => assert_eq!(rec.packet_id, packet_id),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    let ns = channel.key_update(packet_id).unwrap();
    peer.write(pubrel_with(packet_id, Some(("Ns", ns)))).await;
    match read_answering_pings(peer).await {
        Packet::PubComp(comp) => {
            assert_eq!(
                (comp.packet_id, comp.reason),
                (packet_id, ReasonCode::SUCCESS)
            )
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

/// The next packet that is not a PINGREQ (those are answered).
async fn read_answering_pings(peer: &mut Peer) -> Packet {
    loop {
        match peer.read().await {
            Packet::PingReq => peer.write(Packet::PingResp).await,
            other => return other,
        }
    }
}

/// Reads until the client's DISCONNECT; returns its reason string.
async fn client_refusal(peer: &mut Peer) -> Option<String> {
    loop {
        match peer.try_read().await {
            Some(Packet::Disconnect(d)) => {
                assert_eq!(d.reason, ReasonCode::UNSPECIFIED_ERROR);
                return d.properties.reason_string;
            }
            Some(_) => {}
            None => panic!("the client closed without DISCONNECT"),
        }
    }
}

#[tokio::test]
async fn qos2_publishes_are_sealed_and_each_pubrel_announces_the_next_key() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let (mut peer, mut channel) =
            scac_accept(&listener, DEVICE, broker_key(), device_key().public()).await;
        assert_eq!(receive_sealed(&mut peer, &mut channel).await, b"21.5");
        assert_eq!(receive_sealed(&mut peer, &mut channel).await, b"22.0");
        assert_eq!(channel.epochs().rx, 2, "two key updates accepted");
        // QoS 1 is not protected.
        let Packet::Publish(plain) = peer.read().await else {
            panic!("expected PUBLISH");
        };
        assert_eq!(&plain.payload[..], b"plain");
        peer.write(Packet::PubAck(ack(plain.packet_id))).await;
        assert!(matches!(peer.read().await, Packet::Disconnect(_)));
    });
    let (client, connack) = Client::connect(scac_options(&addr)).await.unwrap();
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    for value in ["21.5", "22.0"] {
        let code = client.publish("plant/temp", value, QoS::ExactlyOnce, false);
        assert_eq!(code.await.unwrap(), ReasonCode::SUCCESS);
    }
    client
        .publish("plant/temp", "plain", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    client.disconnect().await.unwrap();
    broker.await.unwrap();
}

#[tokio::test]
async fn qos2_deliveries_arrive_decrypted_and_each_ns_is_checked() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let (mut peer, mut channel) =
            scac_accept(&listener, DEVICE, broker_key(), device_key().public()).await;
        deliver_sealed(&mut peer, &mut channel, 5, b"setpoint 19").await;
        deliver_sealed(&mut peer, &mut channel, 6, b"setpoint 20").await;
        assert_eq!(channel.epochs().tx, 2);
        let last = read_answering_pings(&mut peer).await;
        assert!(matches!(last, Packet::Disconnect(_)), "{last:?}");
    });
    let (mut client, _) = Client::connect(scac_options(&addr)).await.unwrap();
    for expected in ["setpoint 19", "setpoint 20"] {
        let message = client.next_message(WAIT).await.unwrap().unwrap();
        assert_eq!(
            (&message.payload[..], message.qos),
            (expected.as_bytes(), QoS::ExactlyOnce)
        );
    }
    // Once PINGRESP arrives, the broker's last PUBREL has been answered.
    client.ping().await.unwrap();
    client.disconnect().await.unwrap();
    broker.await.unwrap();
}

#[tokio::test]
async fn a_tampered_delivery_ends_the_connection_with_crypt_error() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let (mut peer, mut channel) =
            scac_accept(&listener, DEVICE, broker_key(), device_key().public()).await;
        let Packet::Publish(mut publish) = sealed_delivery(&mut channel, 1, b"open valve") else {
            unreachable!()
        };
        let mut payload = publish.payload.to_vec();
        *payload.last_mut().unwrap() ^= 1;
        publish.payload = payload.into();
        peer.write(Packet::Publish(publish)).await;
        assert_eq!(
            client_refusal(&mut peer).await.as_deref(),
            Some("Crypt Error")
        );
    });
    let (mut client, _) = Client::connect(scac_options(&addr)).await.unwrap();
    let err = client.next_message(WAIT).await.unwrap_err();
    assert!(matches!(err, ClientError::Crypt(_)), "{err:?}");
    assert_eq!(err.sent_reason_string(), Some("Crypt Error"));
    broker.await.unwrap();
}

#[tokio::test]
async fn a_pubrel_without_ns_is_a_crypt_error() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let (mut peer, mut channel) =
            scac_accept(&listener, DEVICE, broker_key(), device_key().public()).await;
        peer.write(sealed_delivery(&mut channel, 3, b"x")).await;
        assert!(matches!(peer.read().await, Packet::PubRec(_)));
        peer.write(pubrel_with(3, None)).await;
        assert_eq!(
            client_refusal(&mut peer).await.as_deref(),
            Some("Crypt Error")
        );
    });
    let (mut client, _) = Client::connect(scac_options(&addr)).await.unwrap();
    let message = client.next_message(WAIT).await.unwrap().unwrap();
    assert_eq!(&message.payload[..], b"x");
    let err = client.next_message(WAIT).await.unwrap_err();
    assert!(matches!(err, ClientError::Crypt(_)), "{err:?}");
    broker.await.unwrap();
}

#[tokio::test]
async fn a_forged_step2_gets_disconnect_auth_error() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let flip_signature = |step2: &mut Vec<u8>| *step2.last_mut().unwrap() ^= 1;
        let (mut peer, _, _) = scac_step2(
            &listener,
            DEVICE,
            broker_key(),
            device_key().public(),
            flip_signature,
        )
        .await;
        assert_eq!(
            client_refusal(&mut peer).await.as_deref(),
            Some("Auth Error")
        );
    });
    let err = Client::connect(scac_options(&addr)).await.err().unwrap();
    assert!(
        matches!(
            err,
            ClientError::Scac(ScacError::BadProof {
                step: 2,
                signer: Party::Broker
            })
        ),
        "{err:?}"
    );
    broker.await.unwrap();
}

#[tokio::test]
async fn connack_without_step2_is_refused_as_an_unproven_broker() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        assert!(matches!(peer.read().await, Packet::Connect(_)));
        peer.connack(ReasonCode::SUCCESS).await;
        assert_eq!(
            client_refusal(&mut peer).await.as_deref(),
            Some("Auth Error")
        );
    });
    let err = Client::connect(scac_options(&addr)).await.err().unwrap();
    assert!(matches!(err, ClientError::Scac(_)), "{err:?}");
    broker.await.unwrap();
}

#[tokio::test]
async fn a_refused_step3_is_connack_0x87() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let (mut peer, _, _) = scac_step2(
            &listener,
            DEVICE,
            broker_key(),
            device_key().public(),
            |_| {},
        )
        .await;
        let _ = peer.read_auth().await;
        peer.connack(ReasonCode::NOT_AUTHORIZED).await;
    });
    let err = Client::connect(scac_options(&addr)).await.err().unwrap();
    assert_eq!(err.to_string(), "CONNACK refused: 0x87 (Not authorized)");
    broker.await.unwrap();
}

#[tokio::test]
async fn the_broker_crypt_error_disconnect_is_reported_with_its_reason_string() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let (mut peer, _) =
            scac_accept(&listener, DEVICE, broker_key(), device_key().public()).await;
        assert!(matches!(peer.read().await, Packet::Publish(_)));
        let mut refusal = Disconnect {
            reason: ReasonCode::UNSPECIFIED_ERROR,
            ..Disconnect::default()
        };
        refusal.properties.reason_string = Some("Crypt Error".into());
        peer.write(Packet::Disconnect(refusal)).await;
    });
    let (client, _) = Client::connect(scac_options(&addr)).await.unwrap();
    let err = client
        .publish("plant/temp", "21.5", QoS::ExactlyOnce, false)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the broker sent DISCONNECT 0x80 (Unspecified error): \"Crypt Error\""
    );
    broker.await.unwrap();
}

#[tokio::test]
async fn scac_has_no_reauthentication() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let (mut peer, _) =
            scac_accept(&listener, DEVICE, broker_key(), device_key().public()).await;
        assert!(matches!(peer.read().await, Packet::Disconnect(_)));
    });
    let (client, _) = Client::connect(scac_options(&addr)).await.unwrap();
    let err = client.reauthenticate().await.unwrap_err();
    assert!(matches!(err, ClientError::Request(_)), "{err:?}");
    assert!(err.to_string().contains("reconnect"), "{err}");
    client.disconnect().await.unwrap();
    broker.await.unwrap();
}

#[tokio::test]
async fn a_silent_broker_times_out_waiting_for_step2() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.read().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let mut opts = scac_options(&addr);
    opts.response_timeout = Duration::from_millis(300);
    let err = Client::connect(opts).await.err().unwrap();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    broker.abort();
}

/// RSA-2048 keys of the compatibility suite's test vectors (docs/scac.md).
fn rsa(p: &str, q: &str) -> LocalKey {
    let p = hex(p);
    let q = hex(q);
    LocalKey::Rsa(Arc::new(InMemoryRsa::from_primes(&p, &q).unwrap()))
}

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

const DEVICE_P: &str = "
da2efe2f6f8fcb68e847c30d9c97d199168573d00250956fd80780c23e620e17
6a100445d21fc8a1f44299a1729c8f5b19f10f5bbb5a2c569b909837f97746c1
795e316b6dbd0ed4b60c7d604a41f35fb363322ee274d8361f6faed68f5b8e8c
40f17783f178c2fe0a5e5d0a3cd26c55869c304982d68366253cf21d9c988091";
const DEVICE_Q: &str = "
b98e2d38b769002123b5e5821167aff1cbfbe9f25f8cc7de7740cc7c6741d97a
7b1012ef8be66c66b2b48c10dee3f29952f9f8db83c665d2b606cac90dd8b8d0
c7794c38c59f6286dacdea1d9195d2fac385fa2b7174826f56520110d12ac32d
998ef35a6f5a5bf16d79a7cb23f037357d3bd0b2bbfd2bb54ed9cb3ab6dbd485";
const BROKER_P: &str = "
e34b58ee44d1e74afe58026246fbff5b7cea49f6981cd408c6e6f7166aa8f47a
8604a686ea0898cfdfeb080c2a6bc7fd9b5d410c5883a9fc3282b61ee1c03f13
5e10ed463db0a85d1a6479c9c298d94d5ead949ca595d53bfd091dbf34fad903
f717d09fe72025ab493c7c3c902cdfcaad9a53b75b83b9120badcafdeb96368d";
const BROKER_Q: &str = "
ca76817f2a10efd3b59e050b2526d9f32a8aba7dd3d190bc0d57be20a3e60b95
96c177d5b6c3da0fbce0be4446b2cf0a306e30c258590117272dd7171c3cb449
c01e23f73f491d46778b283b7c909118015a8ec50c112018c6fd47a6fd662077
b7e2f60b272f42b614fbd1b4102724361d430b6b1e02fa8862df1355ba4b8921";

#[tokio::test]
async fn the_compatibility_suite_runs_handshake_payloads_and_key_updates() {
    const UID: &str = "CLIENTE1";
    let device = rsa(DEVICE_P, DEVICE_Q);
    let broker = rsa(BROKER_P, BROKER_Q);
    let (listener, addr) = listen().await;
    let device_public = device.public();
    let broker_private = broker.clone();
    let script = tokio::spawn(async move {
        let (mut peer, mut channel) =
            scac_accept(&listener, UID, broker_private, device_public).await;
        assert_eq!(receive_sealed(&mut peer, &mut channel).await, b"21.5 C");
        deliver_sealed(&mut peer, &mut channel, 2, b"setpoint 19").await;
        let last = read_answering_pings(&mut peer).await;
        assert!(matches!(last, Packet::Disconnect(_)), "{last:?}");
    });
    let mut opts = ClientOptions::new(&addr, UID);
    opts.auth = Auth::Scac {
        suite: Suite::RsaCompat,
        device_key: device,
        broker_key: broker.public(),
    };
    let (mut client, _) = Client::connect(opts).await.unwrap();
    client
        .publish("sensors/temp", "21.5 C", QoS::ExactlyOnce, false)
        .await
        .unwrap();
    let message = client.next_message(WAIT).await.unwrap().unwrap();
    assert_eq!(&message.payload[..], b"setpoint 19");
    client.ping().await.unwrap();
    client.disconnect().await.unwrap();
    script.await.unwrap();
}
