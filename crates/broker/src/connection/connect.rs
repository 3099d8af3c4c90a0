//! CONNECT → (AUTH exchange) → CONNACK: identity, authentication, session,
//! negotiated limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ledgermq_proto::{
    decode, encode, Auth, ConnAck, Connect, DecodeError, Packet, Properties, Protocol, ReasonCode,
};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};

use super::inbound::{AuthContext, Connection, Limits};
use super::outbound::Writer;
use crate::auth::{
    AuthStep, Authenticated, ClientIdentity, LoginAttempt, Refusal, SharedProtection,
};
use crate::auth_pool::PoolError;
use crate::broker::Broker;
use crate::lifecycle::Attach;
use crate::metrics::Metrics;
use crate::rules;
use crate::session::ConnLink;

pub(super) struct Accepted {
    pub conn: Connection,
    pub writer: Writer,
}

/// Answers a CONNECT that could not be decoded. A v5 client gets a CONNACK
/// with the reason code; an unsupported protocol level gets the 3.1.1
/// "unacceptable protocol version" return code, which every version of
/// MQTT understands (v5 §3.1.2.2).
pub(super) async fn refuse_undecodable<W: AsyncWrite>(
    mut wr: WriteHalf<W>,
    buf: &[u8],
    e: &DecodeError,
) {
    let protocol = match e {
        DecodeError::UnsupportedProtocolVersion(_) => Some(Protocol::V311),
        _ if peek_level(buf) == Some(5) => Some(Protocol::V5),
        _ => None,
    };
    let Some(protocol) = protocol else {
        return; // 3.1.1: close without CONNACK (§3.1.4)
    };
    let ack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: e.reason_code(),
        properties: Properties::default(),
    });
    let mut out = BytesMut::new();
    if encode(&ack, protocol, &mut out).is_ok() {
        let _ = wr.write_all(&out).await;
        let _ = wr.shutdown().await;
    }
}

/// The protocol level byte of a CONNECT at the front of `buf`, if present.
fn peek_level(buf: &[u8]) -> Option<u8> {
    let mut i = 1;
    while *buf.get(i)? & 0x80 != 0 {
        i += 1;
        if i > 4 {
            return None;
        }
    }
    let name_len = u16::from_be_bytes([*buf.get(i + 1)?, *buf.get(i + 2)?]) as usize;
    buf.get(i + 3 + name_len).copied()
}

/// Decides a CONNECT, running an enhanced-authentication exchange if the
/// client asked for one. On success the session is attached and the
/// CONNACK queued for the writer; on refusal the CONNACK is written and the
/// connection closed.
pub(super) async fn accept<R, W>(
    broker: &Arc<Broker>,
    mut connect: Connect,
    rd: &mut R,
    wr: &mut WriteHalf<W>,
    buf: &mut BytesMut,
    peer: SocketAddr,
    listener: SocketAddr,
) -> Option<Accepted>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite,
{
    let protocol = connect.protocol;
    let v5 = protocol == Protocol::V5;
    let method = connect.properties.authentication_method.clone();
    let decision = match decide(&connect, broker) {
        Ok(()) => authenticate(broker, &connect, rd, wr, buf, peer, listener).await,
        Err(None) => {
            // 3.1.1 has no reason code for it: a protocol violation closes
            // the connection without CONNACK (§4.8).
            tracing::info!(%peer, client_id = connect.client_id, "invalid CONNECT: closed");
            return None;
        }
        Err(Some(reason)) => Err(Some(Refusal::new(reason, "invalid CONNECT"))),
    };
    let mut authenticated = match decision {
        Ok(a) => a,
        Err(None) => return None, // the client gave up during the exchange
        Err(Some(refusal)) => {
            refuse(wr, protocol, peer, &connect.client_id, refusal).await;
            return None;
        }
    };
    let protection: Option<SharedProtection> = authenticated
        .protection
        .take()
        .map(|p| Arc::new(parking_lot::Mutex::new(p)));
    let assigned = assign_client_id(&mut connect, authenticated);

    let client_id: Arc<str> = connect.client_id.as_str().into();
    let props = &connect.properties;
    let max_expiry = broker.config.max_session_expiry;
    let requested_expiry =
        rules::requested_expiry(v5, connect.clean_start, props.session_expiry_interval);
    let expiry = requested_expiry.min(max_expiry);
    let mut keep_alive = connect.keep_alive;
    let mut server_keep_alive = None;
    if let Some(max_ka) = broker.config.max_keep_alive {
        if v5 && (keep_alive == 0 || keep_alive > max_ka) {
            keep_alive = max_ka;
            server_keep_alive = Some(max_ka);
        }
    }
    // Receive Maximum is an MQTT 5 property: a 3.1.1 client gets the
    // broker's in-flight limit (the writer caps the window with it).
    let limits = Limits {
        keep_alive,
        client_receive_maximum: props.receive_maximum.unwrap_or(u16::MAX),
        client_max_packet_size: props.maximum_packet_size.unwrap_or(u32::MAX),
        client_topic_alias_maximum: props.topic_alias_maximum.unwrap_or(0),
    };

    let link = Arc::new(ConnLink::new(
        protocol,
        limits.client_max_packet_size as usize,
        usize::from(
            limits
                .client_receive_maximum
                .min(broker.config.max_inflight),
        ),
    ));
    let identity = Arc::new(ClientIdentity {
        client_id: connect.client_id.clone(),
        username: connect.username.clone(),
    });
    let attach = Attach {
        client_id: &client_id,
        clean_start: connect.clean_start,
        expiry,
        link: &link,
        identity: identity.clone(),
        will: connect.will.take(),
    };
    let (session, present) = match broker.open_session(attach).await {
        Ok(opened) => opened,
        Err(reason) => {
            Metrics::add(&broker.metrics.connections_refused, 1);
            let refusal = Refusal::new(reason, "session limit reached (max_sessions)");
            refuse(wr, protocol, peer, &client_id, refusal).await;
            return None;
        }
    };
    if expiry > 0 {
        // A persistent session exists once CONNACK says so: make it durable first.
        broker.durable().await;
    }

    let mut properties = Properties::default();
    if v5 {
        properties.receive_maximum = Some(broker.config.receive_maximum);
        properties.topic_alias_maximum = Some(broker.config.topic_alias_maximum);
        // Sent only when it limits something (the protocol's own maximum
        // goes without saying).
        properties.maximum_packet_size = (broker.config.max_packet_size as usize)
            .lt(&ledgermq_proto::MAX_PACKET_SIZE)
            .then_some(broker.config.max_packet_size);
        properties.assigned_client_identifier = assigned.then(|| connect.client_id.clone());
        properties.server_keep_alive = server_keep_alive;
        properties.authentication_method = method.clone();
        if expiry != requested_expiry {
            properties.session_expiry_interval = Some(expiry);
        }
    }
    link.send(&Packet::ConnAck(ConnAck {
        session_present: present,
        reason: ReasonCode::SUCCESS,
        properties,
    }));
    tracing::debug!(%peer, client_id = &*client_id, ?protocol, present, "connected");

    let identity = (*identity).clone();
    let auth = AuthContext {
        method,
        peer,
        listener,
    };
    Some(Accepted {
        writer: Writer::new(
            broker.clone(),
            session.clone(),
            link.clone(),
            &limits,
            protection.clone(),
        ),
        conn: Connection::new(
            broker.clone(),
            session,
            link,
            identity,
            limits,
            auth,
            protection,
        ),
    })
}

/// Writes the CONNACK of a refused CONNECT (after the refusal's delay) and
/// closes.
async fn refuse<W: AsyncWrite>(
    wr: &mut WriteHalf<W>,
    protocol: Protocol,
    peer: SocketAddr,
    client_id: &str,
    refusal: Refusal,
) {
    tracing::info!(%peer, client_id, reason = %refusal.reason, detail = refusal.detail, "connection refused");
    if !refusal.delay.is_zero() {
        tokio::time::sleep(refusal.delay).await;
    }
    let ack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: refusal.reason,
        properties: Properties::default(),
    });
    let mut out = BytesMut::new();
    if encode(&ack, protocol, &mut out).is_ok() {
        let _ = wr.write_all(&out).await;
    }
    let _ = wr.shutdown().await;
}

/// Checks what can be checked before authentication. `Err(None)`: close
/// without CONNACK (3.1.1 has no code for it).
fn decide(connect: &Connect, broker: &Broker) -> Result<(), Option<ReasonCode>> {
    let v5 = connect.protocol == Protocol::V5;
    if connect.client_id.is_empty() && !v5 && !connect.clean_start {
        return Err(Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID));
    }
    if let Some(will) = &connect.will {
        if broker.topic_limits.check_name(&will.topic).is_err() {
            return Err(v5.then_some(ReasonCode::TOPIC_NAME_INVALID));
        }
    }
    Ok(())
}

/// Settles the session's client id: the authenticated one, the client's,
/// or a fresh one. Returns whether the client must be told (v5 Assigned
/// Client Identifier).
fn assign_client_id(connect: &mut Connect, authenticated: Authenticated) -> bool {
    let v5 = connect.protocol == Protocol::V5;
    if let Some(id) = authenticated.client_id {
        let assigned = v5 && id != connect.client_id;
        connect.client_id = id;
        return assigned;
    }
    if !connect.client_id.is_empty() {
        return false;
    }
    let mut raw = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut raw);
    connect.client_id = format!(
        "lmq-{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    v5
}

/// Runs the authenticator: user name and password, or an enhanced
/// exchange (CONNECT → AUTH 0x18 → AUTH 0x18 … → verdict). `Err(None)`:
/// the client closed or disconnected during the exchange.
async fn authenticate<R, W>(
    broker: &Arc<Broker>,
    connect: &Connect,
    rd: &mut R,
    wr: &mut WriteHalf<W>,
    buf: &mut BytesMut,
    peer: SocketAddr,
    listener: SocketAddr,
) -> Result<Authenticated, Option<Refusal>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite,
{
    let b = broker.clone();
    let client_id = connect.client_id.clone();
    let username = connect.username.clone();
    let password: Option<Bytes> = connect.password.clone();
    let protocol = connect.protocol;
    let Some(method) = connect.properties.authentication_method.clone() else {
        // Password hashing is deliberately slow: keep it off the async workers.
        return blocking(broker, move || {
            b.authenticator.authenticate(&LoginAttempt {
                peer,
                listener,
                protocol,
                client_id: &client_id,
                username: username.as_deref(),
                password: password.as_deref(),
            })
        })
        .await
        .map_err(Some);
    };
    let data = connect
        .properties
        .authentication_data
        .clone()
        .unwrap_or_default();
    let m = method.clone();
    let mut step = blocking(broker, move || {
        let attempt = LoginAttempt {
            peer,
            listener,
            protocol,
            client_id: &client_id,
            username: username.as_deref(),
            password: password.as_deref(),
        };
        Ok(b.authenticator.begin(&attempt, &m, &data))
    })
    .await
    .map_err(Some)?;
    let timeout = Duration::from_secs(broker.config.connect_timeout);
    loop {
        let (challenge, next) = match step {
            AuthStep::Done(verdict) => return verdict.map_err(Some),
            AuthStep::Continue { data, next } => (data, next),
        };
        let auth = Packet::Auth(Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Properties {
                authentication_method: Some(method.clone()),
                authentication_data: Some(challenge.into()),
                ..Default::default()
            },
        });
        let mut out = BytesMut::new();
        if encode(&auth, Protocol::V5, &mut out).is_err() || wr.write_all(&out).await.is_err() {
            return Err(None);
        }
        let answer = match read_packet(broker, rd, buf, timeout).await {
            Some(Packet::Auth(a)) => a,
            Some(Packet::Disconnect(_)) | None => return Err(None),
            Some(other) => {
                return Err(Some(Refusal::new(
                    ReasonCode::PROTOCOL_ERROR,
                    format!("{} during authentication", other.name()),
                )))
            }
        };
        if answer.reason != ReasonCode::CONTINUE_AUTHENTICATION
            || answer.properties.authentication_method.as_deref() != Some(method.as_str())
        {
            return Err(Some(Refusal::new(
                ReasonCode::PROTOCOL_ERROR,
                "AUTH must continue the same authentication method",
            )));
        }
        let data = answer.properties.authentication_data.unwrap_or_default();
        step = blocking(broker, move || Ok(next.answer(&data)))
            .await
            .map_err(Some)?;
    }
}

/// Runs a possibly blocking authentication step on the broker's bounded
/// authentication pool; a full queue refuses with 0x89 Server busy.
pub(super) async fn blocking<T: Send + 'static>(
    broker: &Broker,
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    match broker.auth_pool.run(f).await {
        Ok(result) => result,
        Err(PoolError::Busy) => {
            Metrics::add(&broker.metrics.connections_refused, 1);
            Err(Refusal::new(
                ReasonCode::SERVER_BUSY,
                "authentication workers busy (auth_workers, auth_queue)",
            ))
        }
        Err(PoolError::Failed) => Err(Refusal::new(
            ReasonCode::UNSPECIFIED_ERROR,
            "authentication step failed",
        )),
    }
}

/// The next packet of a client that has not been accepted yet; `None` if
/// it closed, sent garbage or took longer than `timeout`.
async fn read_packet<R: AsyncRead + Unpin>(
    broker: &Broker,
    rd: &mut R,
    buf: &mut BytesMut,
    timeout: Duration,
) -> Option<Packet> {
    let max = broker.config.max_packet_size as usize;
    tokio::time::timeout(timeout, async {
        loop {
            match decode(buf, Some(Protocol::V5), max) {
                Ok(Some(p)) => return Some(p),
                Ok(None) => {}
                Err(_) => return None,
            }
            match rd.read_buf(buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => Metrics::add(&broker.metrics.bytes_received, n as u64),
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::peek_level;

    #[test]
    fn peeks_protocol_level_of_partial_connect() {
        let v5 = [0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02];
        assert_eq!(peek_level(&v5), Some(5));
        assert_eq!(peek_level(&v5[..5]), None);
        assert_eq!(peek_level(&[]), None);
    }
}
