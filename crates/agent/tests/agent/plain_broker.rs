//! Against the real broker in plain mode (no password file: anonymous
//! clients allowed, no enhanced-authentication method enabled).

use std::time::Duration;

use ledgermq_agent::{
    Auth, Client, ClientError, ClientOptions, OtpKey, PacketCounter, Protocol, QoS, ReasonCode,
};
use ledgermq_broker::{start, Config, RunningBroker};

const WAIT: Duration = Duration::from_secs(5);

async fn plain_broker() -> RunningBroker {
    start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        persistence: false,
        sys_interval: 0,
        ..Config::default()
    })
    .await
    .expect("broker starts")
}

fn options(broker: &RunningBroker, device_id: &str, protocol: Protocol) -> ClientOptions {
    let mut opts = ClientOptions::new(broker.mqtt_addr.to_string(), device_id);
    opts.protocol = protocol;
    opts
}

async fn connect(broker: &RunningBroker, device_id: &str, protocol: Protocol) -> Client {
    let (client, connack) = Client::connect(options(broker, device_id, protocol))
        .await
        .expect("plain broker accepts anonymous devices");
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    client
}

#[tokio::test]
async fn connects_without_authentication_and_disconnects_cleanly() {
    let broker = plain_broker().await;
    let (client, connack) = Client::connect(options(&broker, "dev-1", Protocol::V5))
        .await
        .unwrap();
    assert_eq!(connack.reason, ReasonCode::SUCCESS);
    assert!(!connack.session_present);
    assert_eq!(client.device_id(), "dev-1");
    client.ping().await.unwrap();
    client.disconnect().await.unwrap();
    broker.shutdown().await;
}

async fn round_trip(protocol: Protocol) {
    let broker = plain_broker().await;
    let mut subscriber = connect(&broker, "sub", protocol).await;
    let publisher = connect(&broker, "pub", protocol).await;
    let granted = subscriber.subscribe(&[("rt/#", QoS::ExactlyOnce)]).await;
    assert_eq!(granted.unwrap(), vec![ReasonCode::GRANTED_QOS_2]);

    let levels = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    for qos in levels {
        let topic = format!("rt/q{}", qos as u8);
        let reason = publisher.publish(&topic, topic.clone(), qos, false).await;
        assert_eq!(reason.unwrap(), ReasonCode::SUCCESS, "{qos:?}");
    }
    for qos in levels {
        let msg = subscriber
            .next_message(WAIT)
            .await
            .unwrap()
            .expect("delivered");
        assert_eq!(msg.topic, format!("rt/q{}", qos as u8));
        assert_eq!(&msg.payload[..], msg.topic.as_bytes());
        assert_eq!(msg.qos, qos);
        assert!(!msg.retain);
    }
    assert!(subscriber
        .next_message(Duration::from_millis(200))
        .await
        .unwrap()
        .is_none());
    publisher.disconnect().await.unwrap();
    subscriber.disconnect().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn qos_0_1_2_round_trip_over_mqtt_5() {
    round_trip(Protocol::V5).await;
}

#[tokio::test]
async fn qos_0_1_2_round_trip_over_mqtt_311() {
    round_trip(Protocol::V311).await;
}

#[tokio::test]
async fn publish_without_subscribers_is_acknowledged_with_0x10() {
    let broker = plain_broker().await;
    let client = connect(&broker, "lonely", Protocol::V5).await;
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let reason = client.publish("nobody/listens", "x", qos, false).await;
        assert_eq!(reason.unwrap(), ReasonCode::NO_MATCHING_SUBSCRIBERS);
    }
    client.disconnect().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn otp_connect_to_a_plain_broker_is_refused_with_0x8c() {
    let broker = plain_broker().await;
    let mut opts = options(&broker, "sensor-42", Protocol::V5);
    opts.auth = Auth::Otp {
        key: OtpKey::from_bytes([7; 32]),
        counter: PacketCounter::in_memory(),
    };
    let err = Client::connect(opts).await.err().expect("refused");
    assert!(
        matches!(
            err,
            ClientError::Refused {
                packet: "CONNACK",
                reason: ReasonCode::BAD_AUTHENTICATION_METHOD,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "CONNACK refused: 0x8c (Bad authentication method)"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn persistent_311_session_keeps_messages_while_the_device_is_offline() {
    let broker = plain_broker().await;
    let persistent = |broker: &RunningBroker| {
        let mut opts = options(broker, "keeper", Protocol::V311);
        opts.clean_start = false;
        opts
    };
    let (keeper, _) = Client::connect(persistent(&broker)).await.unwrap();
    keeper
        .subscribe(&[("keep/t", QoS::AtLeastOnce)])
        .await
        .unwrap();
    keeper.disconnect().await.unwrap();

    let publisher = connect(&broker, "pub", Protocol::V311).await;
    let sent = publisher.publish("keep/t", "while away", QoS::AtLeastOnce, false);
    assert_eq!(sent.await.unwrap(), ReasonCode::SUCCESS);

    let (mut keeper, connack) = Client::connect(persistent(&broker)).await.unwrap();
    assert!(connack.session_present);
    let msg = keeper.next_message(WAIT).await.unwrap().expect("kept");
    assert_eq!(&msg.payload[..], b"while away");
    keeper.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn keep_alive_pings_hold_an_idle_connection_open() {
    let broker = plain_broker().await;
    let mut opts = options(&broker, "idle", Protocol::V5);
    opts.keep_alive = 1; // the broker closes after 1.5 s of silence
    let (client, _) = Client::connect(opts).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let reason = client.publish("idle/t", "still here", QoS::AtLeastOnce, false);
    assert_eq!(reason.await.unwrap(), ReasonCode::NO_MATCHING_SUBSCRIBERS);
    client.disconnect().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn broker_shutdown_reaches_the_device_as_disconnect_0x8b() {
    let broker = plain_broker().await;
    let mut client = connect(&broker, "dev", Protocol::V5).await;
    broker.shutdown().await;
    let err = client.next_message(WAIT).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Disconnected {
                reason: ReasonCode::SERVER_SHUTTING_DOWN,
                ..
            }
        ),
        "{err:?}"
    );
    // Later requests report the same end.
    let again = client.publish("t", "x", QoS::AtLeastOnce, false).await;
    assert_eq!(again.unwrap_err().reason_code(), Some(ReasonCode(0x8B)));
}

#[tokio::test]
async fn unreachable_broker_is_an_error_naming_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = Client::connect(ClientOptions::new(addr.clone(), "dev"))
        .await
        .err()
        .expect("nothing listens");
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr), "{err}");
}

#[tokio::test]
async fn invalid_topics_fail_the_request_not_the_connection() {
    let broker = plain_broker().await;
    let client = connect(&broker, "dev", Protocol::V5).await;
    let err = client.publish("a/+", "x", QoS::AtMostOnce, false).await;
    assert!(matches!(err, Err(ClientError::Request(_))), "{err:?}");
    let err = client.subscribe(&[("a/#/b", QoS::AtMostOnce)]).await;
    assert!(matches!(err, Err(ClientError::Request(_))), "{err:?}");
    client.ping().await.expect("connection still up");
    client.disconnect().await.unwrap();
    broker.shutdown().await;
}
