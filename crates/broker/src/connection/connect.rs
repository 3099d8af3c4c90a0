//! CONNECT → CONNACK: identity, authentication, session, negotiated limits.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ledgermq_proto::{
    encode, topic, ConnAck, Connect, DecodeError, Packet, Properties, Protocol, ReasonCode, Will,
};
use rand::RngCore;
use tokio::io::{AsyncWrite, AsyncWriteExt, WriteHalf};

use super::inbound::{Connection, Limits};
use super::outbound::Writer;
use crate::auth::ClientIdentity;
use crate::broker::Broker;
use crate::session::ConnLink;

pub(super) struct Accepted {
    pub conn: Connection,
    pub writer: Writer,
    pub will: Option<Will>,
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

/// Decides a CONNECT. On success the session is attached and the CONNACK
/// queued for the writer; on refusal the CONNACK is written and the
/// connection closed.
pub(super) async fn accept<W>(
    broker: &Arc<Broker>,
    mut connect: Connect,
    wr: &mut WriteHalf<W>,
    peer: SocketAddr,
) -> Option<Accepted>
where
    W: AsyncWrite,
{
    let protocol = connect.protocol;
    let v5 = protocol == Protocol::V5;
    let refuse = |reason: ReasonCode| {
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason,
            properties: Properties::default(),
        })
    };
    let decision = decide(broker, &mut connect).await;
    let assigned = match decision {
        Ok(a) => a,
        Err(reason) => {
            tracing::info!(%peer, client_id = connect.client_id, %reason, "connection refused");
            let mut out = BytesMut::new();
            if encode(&refuse(reason), protocol, &mut out).is_ok() {
                let _ = wr.write_all(&out).await;
            }
            let _ = wr.shutdown().await;
            return None;
        }
    };

    let client_id: Arc<str> = connect.client_id.as_str().into();
    let props = &connect.properties;
    let max_expiry = broker.config.max_session_expiry;
    let requested_expiry = match protocol {
        Protocol::V5 => props.session_expiry_interval.unwrap_or(0),
        Protocol::V311 if connect.clean_start => 0,
        Protocol::V311 => u32::MAX,
    };
    let expiry = requested_expiry.min(max_expiry);
    let mut keep_alive = connect.keep_alive;
    let mut server_keep_alive = None;
    if let Some(max_ka) = broker.config.max_keep_alive {
        if v5 && (keep_alive == 0 || keep_alive > max_ka) {
            keep_alive = max_ka;
            server_keep_alive = Some(max_ka);
        }
    }
    let limits = Limits {
        keep_alive,
        client_receive_maximum: props.receive_maximum.unwrap_or(u16::MAX),
        client_max_packet_size: props.maximum_packet_size.unwrap_or(u32::MAX),
        client_topic_alias_maximum: props.topic_alias_maximum.unwrap_or(0),
    };

    let link = Arc::new(ConnLink::new(protocol));
    let (session, present) = broker.open_session(&client_id, connect.clean_start, expiry, &link);
    if expiry > 0 {
        // A persistent session exists once CONNACK says so: make it durable first.
        broker.durable().await;
    }

    let mut properties = Properties::default();
    if v5 {
        properties.receive_maximum = Some(broker.config.receive_maximum);
        properties.topic_alias_maximum = Some(broker.config.topic_alias_maximum);
        properties.maximum_packet_size = Some(broker.config.max_packet_size);
        properties.assigned_client_identifier = assigned.then(|| connect.client_id.clone());
        properties.server_keep_alive = server_keep_alive;
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

    let identity = ClientIdentity {
        client_id: connect.client_id.clone(),
        username: connect.username.clone(),
    };
    Some(Accepted {
        writer: Writer::new(broker.clone(), session.clone(), link.clone(), &limits),
        conn: Connection::new(broker.clone(), session, link, identity, limits),
        will: connect.will.take(),
    })
}

/// Checks identity and credentials; returns whether the client id was
/// assigned by the broker.
async fn decide(broker: &Arc<Broker>, connect: &mut Connect) -> Result<bool, ReasonCode> {
    let v5 = connect.protocol == Protocol::V5;
    if connect.properties.authentication_method.is_some() {
        // No enhanced authentication method is enabled in this mode.
        return Err(ReasonCode::BAD_AUTHENTICATION_METHOD);
    }
    let mut assigned = false;
    if connect.client_id.is_empty() {
        if !v5 && !connect.clean_start {
            return Err(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
        let mut raw = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut raw);
        connect.client_id = format!(
            "lmq-{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        assigned = v5;
    }
    if let Some(will) = &connect.will {
        if topic::validate_name(&will.topic).is_err() {
            return Err(ReasonCode::TOPIC_NAME_INVALID);
        }
    }
    let b = broker.clone();
    let client_id = connect.client_id.clone();
    let username = connect.username.clone();
    let password: Option<Bytes> = connect.password.clone();
    // Password hashing is deliberately slow: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        b.authenticator
            .authenticate(&client_id, username.as_deref(), password.as_deref())
    })
    .await
    .map_err(|_| ReasonCode::UNSPECIFIED_ERROR)??;
    Ok(assigned)
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
