//! The device's half of a SCAC handshake as MQTT packets: step 1 in
//! CONNECT, step 3 in answer to the broker's step 2 AUTH 0x18, and the
//! DISCONNECT 0x80 with which the device refuses a broker. The
//! cryptography is `ledgermq-security`'s; this file only checks the
//! packets around it.

use bytes::Bytes;
use ledgermq_proto::{Auth as AuthPacket, Disconnect, Packet, Properties, ReasonCode};
use ledgermq_security::scac::{Channel, ClientHandshake, LocalKey, PeerKey, ScacError, Suite};

use crate::ClientError;

/// A started handshake: the state awaiting step 2 and the bytes of step 1.
pub(crate) struct ScacStart {
    pub(crate) handshake: ClientHandshake,
    pub(crate) step1: Bytes,
}

/// Builds step 1 for `uid`. Signs with the device key, which may sit in
/// a token: runs off the async runtime's threads. Nothing is sent yet, so
/// a failure (unusable broker key, key store error) is about the device's
/// credentials: [`ClientError::Credentials`].
pub(crate) async fn start(
    suite: Suite,
    uid: &str,
    device_key: &LocalKey,
    broker_key: &PeerKey,
) -> Result<ScacStart, ClientError> {
    let (uid, device_key, broker_key) = (uid.to_owned(), device_key.clone(), broker_key.clone());
    let (handshake, step1) =
        off_runtime(move || ClientHandshake::start(suite, &uid, &device_key, &broker_key))
            .await?
            .map_err(|e| {
                ClientError::Credentials(format!("cannot start the SCAC handshake: {e}"))
            })?;
    Ok(ScacStart {
        handshake,
        step1: Bytes::from(step1),
    })
}

/// Checks the broker's step 2 and returns the step 3 AUTH and the payload
/// channel. A step 2 that does not verify is [`ClientError::Scac`]: send
/// [`refusal`] with "Auth Error". A packet that is not a SCAC step 2 at
/// all is a protocol error.
pub(crate) async fn answer_step2(
    handshake: ClientHandshake,
    step2: &AuthPacket,
) -> Result<(Packet, Channel), ClientError> {
    let method = handshake.suite().method();
    if step2.reason != ReasonCode::CONTINUE_AUTHENTICATION {
        return Err(ClientError::Protocol(format!(
            "expected AUTH 0x18 with SCAC step 2, got AUTH 0x{:02x}",
            step2.reason.0
        )));
    }
    let named = step2.properties.authentication_method.as_deref();
    if named != Some(method) {
        return Err(ClientError::Protocol(format!(
            "AUTH names authentication method {named:?}, not {method}"
        )));
    }
    let data = step2
        .properties
        .authentication_data
        .clone()
        .unwrap_or_default();
    let (step3, channel) = off_runtime(move || handshake.on_step2(&data))
        .await?
        .map_err(ClientError::Scac)?;
    Ok((auth_packet(method, Bytes::from(step3)), channel))
}

/// What a CONNACK 0x00 without step 2 means: the broker never proved
/// who it is, so the device must not trust the connection.
pub(crate) fn skipped_step2() -> ClientError {
    ClientError::Scac(ScacError::Malformed {
        step: 2,
        reason: "absent: the broker sent CONNACK 0x00 without proving its identity",
    })
}

/// DISCONNECT 0x80 (Unspecified error) with `reason_string`: "Auth Error"
/// or "Crypt Error".
pub(crate) fn refusal(reason_string: &str) -> Packet {
    Packet::Disconnect(Disconnect {
        reason: ReasonCode::UNSPECIFIED_ERROR,
        properties: Properties {
            reason_string: Some(reason_string.into()),
            ..Properties::default()
        },
    })
}

fn auth_packet(method: &str, data: Bytes) -> Packet {
    Packet::Auth(AuthPacket {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some(method.into()),
            authentication_data: Some(data),
            ..Properties::default()
        },
    })
}

/// Private-key operations may be calls into a PKCS#11 token.
async fn off_runtime<T: Send + 'static>(
    op: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| ClientError::io(std::io::Error::other(e)))
}
