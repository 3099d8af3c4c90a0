//! Against a scripted broker: a raw socket speaking through our codec,
//! judging proofs and passwords with the reference verifiers of
//! `ledgermq-security`, and sending exactly the packets each test needs
//! (refusals, interleaved deliveries, garbage).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ledgermq_agent::{
    Auth, Client, ClientError, ClientOptions, OtpKey, PacketCounter, Protocol, QoS, ReasonCode,
};
use ledgermq_proto::{
    Auth as AuthPacket, Disconnect, Packet, Properties, PubResp, Publish, SubAck,
};
use ledgermq_security::{
    audience_key, DeviceStatus, OtpDirectory, OtpServer, TotpVerifier, AUTH_METHOD,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::peer::{listen, Peer};

const DEVICE: &str = "sensor-42";
const KEY: [u8; 32] = [0x42; 32];
/// The scripted broker's node account (the audience of TOTP codes).
const NODE: [u8; 20] = [0xaa; 20];
const WAIT: Duration = Duration::from_secs(5);

/// The broker's view of the one registered device.
struct Directory {
    last: Mutex<Option<u64>>,
}

impl OtpDirectory for Directory {
    fn otp_key(&self, device_id: &str) -> Option<OtpKey> {
        (device_id == DEVICE).then(|| OtpKey::from_bytes(KEY))
    }
    fn status(&self, device_id: &str) -> DeviceStatus {
        match device_id {
            DEVICE => DeviceStatus::Active,
            _ => DeviceStatus::Unknown,
        }
    }
    fn last_packet_number(&self, _: &str) -> Option<u64> {
        *self.last.lock().unwrap()
    }
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    since.as_millis() as u64
}

fn auth(reason: ReasonCode, data: Option<Bytes>) -> Packet {
    Packet::Auth(AuthPacket {
        reason,
        properties: Properties {
            authentication_method: Some(AUTH_METHOD.into()),
            authentication_data: data,
            ..Properties::default()
        },
    })
}

/// Steps 2 and 3 for step-1 `data`, with the reference verifier. Returns
/// the accepted packet number (recorded) or the refusal code, and the
/// packets that arrived in between.
async fn otp_exchange(
    peer: &mut Peer,
    dir: &Directory,
    data: &[u8],
) -> (Result<u64, u8>, Vec<Packet>) {
    let awaiting = match OtpServer::default().start(dir, data, now_ms(), &mut rand_core::OsRng) {
        Ok(a) => a,
        Err(e) => return (Err(e.reason_code()), Vec::new()),
    };
    let challenge = Bytes::copy_from_slice(awaiting.challenge());
    peer.write(auth(ReasonCode::CONTINUE_AUTHENTICATION, Some(challenge)))
        .await;
    let (answer, others) = peer.read_auth().await;
    assert_eq!(answer.reason, ReasonCode::CONTINUE_AUTHENTICATION);
    let proof = answer.properties.authentication_data.unwrap_or_default();
    let outcome = awaiting.finish(&proof, now_ms()).map(|ok| {
        *dir.last.lock().unwrap() = Some(ok.packet_number);
        ok.packet_number
    });
    (outcome.map_err(|e| e.reason_code()), others)
}

/// Accepts one OTP CONNECT: checks its fields and runs the exchange.
async fn otp_connect(listener: &TcpListener, dir: &Directory) -> (Peer, Result<u64, u8>) {
    let mut peer = Peer::accept(listener).await;
    let Packet::Connect(connect) = peer.read().await else {
        panic!("first packet is not CONNECT");
    };
    assert_eq!(connect.client_id, DEVICE);
    assert_eq!(connect.username, None);
    let props = connect.properties;
    assert_eq!(props.authentication_method.as_deref(), Some(AUTH_METHOD));
    let (outcome, _) = otp_exchange(&mut peer, dir, &props.authentication_data.unwrap()).await;
    let reason = outcome.err().map_or(ReasonCode::SUCCESS, ReasonCode);
    peer.connack(reason).await;
    (peer, outcome)
}

fn otp_options(addr: &str, key: [u8; 32]) -> ClientOptions {
    let mut opts = ClientOptions::new(addr, DEVICE);
    opts.auth = Auth::Otp {
        key: OtpKey::from_bytes(key),
        counter: PacketCounter::in_memory(),
    };
    opts
}

fn new_directory() -> Directory {
    Directory {
        last: Mutex::new(None),
    }
}

#[tokio::test]
async fn otp_handshake_passes_the_reference_verifier() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let dir = new_directory();
        let (mut peer, outcome) = otp_connect(&listener, &dir).await;
        assert!(outcome.expect("proof accepted") > 0);
        assert!(matches!(peer.read().await, Packet::Disconnect(_)));
    });
    let (client, connack) = Client::connect(otp_options(&addr, KEY)).await.unwrap();
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    client.disconnect().await.unwrap();
    broker.await.unwrap();
}

#[tokio::test]
async fn proof_from_the_wrong_key_is_refused_with_0x87() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let (_peer, outcome) = otp_connect(&listener, &new_directory()).await;
        assert_eq!(outcome, Err(0x87));
    });
    let err = Client::connect(otp_options(&addr, [0x24; 32]))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.reason_code(), Some(ReasonCode::NOT_AUTHORIZED));
    assert_eq!(err.to_string(), "CONNACK refused: 0x87 (Not authorized)");
    broker.await.unwrap();
}

#[tokio::test]
async fn reauthentication_succeeds_with_deliveries_interleaved() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let dir = new_directory();
        let (mut peer, first) = otp_connect(&listener, &dir).await;
        let (start, _) = peer.read_auth().await;
        assert_eq!(start.reason, ReasonCode::RE_AUTHENTICATE);
        // Deliveries before and after the challenge.
        peer.write(delivery(7, QoS::AtLeastOnce, "before")).await;
        let data = start.properties.authentication_data.unwrap();
        let (second, _) = otp_exchange(&mut peer, &dir, &data).await;
        assert!(second.unwrap() > first.unwrap(), "packet numbers increase");
        peer.write(delivery(0, QoS::AtMostOnce, "after")).await;
        peer.write(auth(ReasonCode::SUCCESS, None)).await;
        // The QoS 1 delivery is acknowledged once the device takes it.
        match peer.read().await {
            Packet::PubAck(ack) => assert_eq!(ack.packet_id, 7),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    });
    let (mut client, _) = Client::connect(otp_options(&addr, KEY)).await.unwrap();
    client.reauthenticate().await.expect("re-authenticated");
    let first = client.next_message(WAIT).await.unwrap().unwrap();
    let second = client.next_message(WAIT).await.unwrap().unwrap();
    assert_eq!(
        (&first.payload[..], first.qos),
        (&b"before"[..], QoS::AtLeastOnce)
    );
    assert_eq!(&second.payload[..], b"after");
    broker.await.unwrap();
}

fn delivery(packet_id: u16, qos: QoS, payload: &'static str) -> Packet {
    Packet::Publish(Publish {
        qos,
        packet_id,
        topic: "cmd/t".into(),
        payload: Bytes::from_static(payload.as_bytes()),
        ..Publish::default()
    })
}

#[tokio::test]
async fn refused_reauthentication_ends_the_connection_with_the_disconnect_reason() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let (mut peer, _) = otp_connect(&listener, &new_directory()).await;
        let _ = peer.read_auth().await;
        let mut refusal = Disconnect {
            reason: ReasonCode::NOT_AUTHORIZED,
            ..Disconnect::default()
        };
        refusal.properties.reason_string = Some("device revoked".into());
        peer.write(Packet::Disconnect(refusal)).await;
    });
    let (client, _) = Client::connect(otp_options(&addr, KEY)).await.unwrap();
    let err = client.reauthenticate().await.unwrap_err();
    let ClientError::Disconnected {
        reason,
        reason_string,
    } = &err
    else {
        panic!("expected Disconnected, got {err:?}");
    };
    assert_eq!(*reason, ReasonCode::NOT_AUTHORIZED);
    assert_eq!(reason_string.as_deref(), Some("device revoked"));
    let later = client.publish("t", "x", QoS::AtLeastOnce, false).await;
    assert_eq!(
        later.unwrap_err().reason_code(),
        Some(ReasonCode::NOT_AUTHORIZED)
    );
    broker.await.unwrap();
}

fn totp_options(addr: &str) -> ClientOptions {
    let mut opts = ClientOptions::new(addr, DEVICE);
    opts.protocol = Protocol::V311;
    opts.auth = Auth::Totp {
        key: OtpKey::from_bytes(KEY),
        audience: NODE,
        step_secs: 30,
        digits: 8,
    };
    opts
}

#[tokio::test]
async fn totp_login_is_device_id_and_a_code_the_reference_verifier_accepts() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        let Packet::Connect(c) = peer.read().await else {
            panic!("not CONNECT")
        };
        assert_eq!(c.protocol, Protocol::V311);
        assert_eq!(
            (c.client_id.as_str(), c.username.as_deref()),
            (DEVICE, Some(DEVICE))
        );
        let code = String::from_utf8(c.password.unwrap().to_vec()).unwrap();
        let now = now_ms() / 1000;
        // The code is for this node: made over the audience key.
        let key = audience_key(&OtpKey::from_bytes(KEY), &NODE);
        TotpVerifier::default()
            .verify(&key, &code, now, None)
            .expect("valid TOTP");
        let other = audience_key(&OtpKey::from_bytes(KEY), &[0xbb; 20]);
        assert!(TotpVerifier::default()
            .verify(&other, &code, now, None)
            .is_err());
        peer.connack(ReasonCode::SUCCESS).await;
        // Second connection: refused the 3.1.1 way (return code 5).
        let mut peer = Peer::accept(&listener).await;
        peer.read().await;
        peer.connack(ReasonCode::NOT_AUTHORIZED).await;
    });
    let (client, _) = Client::connect(totp_options(&addr)).await.unwrap();
    drop(client);
    let err = Client::connect(totp_options(&addr)).await.err().unwrap();
    assert_eq!(err.wire_code(), Some(5));
    assert_eq!(
        err.to_string(),
        "CONNACK refused: 0x05 (Not authorized; MQTT 5: 0x87)"
    );
    broker.await.unwrap();
}

/// Accepts a plain CONNECT over MQTT 5.
async fn plain_connect(listener: &TcpListener) -> Peer {
    let mut peer = Peer::accept(listener).await;
    assert!(matches!(peer.read().await, Packet::Connect(_)));
    peer.connack(ReasonCode::SUCCESS).await;
    peer
}

/// Refuses the first QoS 1 publish by PUBACK, the QoS 2 one by PUBREC,
/// one of two filters by SUBACK, and the next publish by DISCONNECT.
async fn refusing_broker(listener: TcpListener) {
    let mut peer = plain_connect(&listener).await;
    let refuse = |packet_id, reason| PubResp {
        packet_id,
        reason,
        ..PubResp::default()
    };
    let Packet::Publish(p1) = peer.read().await else {
        panic!()
    };
    peer.write(Packet::PubAck(refuse(
        p1.packet_id,
        ReasonCode::NOT_AUTHORIZED,
    )))
    .await;
    let Packet::Publish(p2) = peer.read().await else {
        panic!()
    };
    peer.write(Packet::PubRec(refuse(
        p2.packet_id,
        ReasonCode::QUOTA_EXCEEDED,
    )))
    .await;
    let Packet::Subscribe(s) = peer.read().await else {
        panic!()
    };
    peer.write(Packet::SubAck(SubAck {
        packet_id: s.packet_id,
        reasons: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::NOT_AUTHORIZED],
        ..SubAck::default()
    }))
    .await;
    let Packet::Publish(_) = peer.read().await else {
        panic!()
    };
    peer.write(Packet::Disconnect(Disconnect {
        reason: ReasonCode::NOT_AUTHORIZED,
        ..Disconnect::default()
    }))
    .await;
}

#[tokio::test]
async fn failure_codes_in_acknowledgements_are_refusals() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(refusing_broker(listener));
    let (client, _) = Client::connect(ClientOptions::new(&addr, "dev"))
        .await
        .unwrap();
    let err = client
        .publish("a", "x", QoS::AtLeastOnce, false)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "PUBACK refused: 0x87 (Not authorized)");
    let err = client
        .publish("a", "x", QoS::ExactlyOnce, false)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "PUBREC refused: 0x97 (Quota exceeded)");
    let granted = client
        .subscribe(&[("ok", QoS::AtLeastOnce), ("secret", QoS::AtLeastOnce)])
        .await;
    assert_eq!(granted.unwrap(), vec![ReasonCode(1), ReasonCode(0x87)]);
    // A broker may refuse with DISCONNECT instead of an acknowledgement.
    let err = client
        .publish("b", "x", QoS::AtLeastOnce, false)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Disconnected { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the broker sent DISCONNECT 0x87 (Not authorized)"
    );
    broker.await.unwrap();
}

#[tokio::test]
async fn silent_broker_times_out_the_handshake() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.read().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let mut opts = otp_options(&addr, KEY);
    opts.response_timeout = Duration::from_millis(300);
    let err = Client::connect(opts).await.err().unwrap();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    broker.abort();
}

#[tokio::test]
async fn malformed_challenge_is_a_protocol_error() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.read().await;
        let short = Bytes::from_static(&[0; 31]);
        peer.write(auth(ReasonCode::CONTINUE_AUTHENTICATION, Some(short)))
            .await;
    });
    let err = Client::connect(otp_options(&addr, KEY))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    broker.await.unwrap();
}

#[tokio::test]
async fn garbage_from_the_broker_ends_the_connection_with_disconnect_0x81() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let mut peer = plain_connect(&listener).await;
        // A PUBLISH with QoS 3 does not exist.
        peer.stream.write_all(&[0x36, 0x00]).await.unwrap();
        match peer.read().await {
            Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::MALFORMED_PACKET),
            other => panic!("expected DISCONNECT, got {other:?}"),
        }
    });
    let (mut client, _) = Client::connect(ClientOptions::new(&addr, "dev"))
        .await
        .unwrap();
    let err = client.next_message(WAIT).await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    broker.await.unwrap();
}

#[tokio::test]
async fn auth_without_a_reauthentication_is_a_protocol_error() {
    let (listener, addr) = listen().await;
    let broker = tokio::spawn(async move {
        let mut peer = plain_connect(&listener).await;
        peer.write(auth(ReasonCode::CONTINUE_AUTHENTICATION, None))
            .await;
        match peer.read().await {
            Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::PROTOCOL_ERROR),
            other => panic!("expected DISCONNECT, got {other:?}"),
        }
    });
    let (mut client, _) = Client::connect(ClientOptions::new(&addr, "dev"))
        .await
        .unwrap();
    let err = client.next_message(WAIT).await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
    broker.await.unwrap();
}
