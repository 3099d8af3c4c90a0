//! One client connection: CONNECT handshake, then a reader (this task) and
//! a writer task sharing the session.
//!
//! The reader decodes and handles inbound packets; it never writes to the
//! socket, it encodes responses into the connection's control buffer. The
//! writer alone writes: control packets first, then deliveries from the
//! session queue within the client's in-flight window, many packets per
//! syscall. Splitting the halves means a client that stops reading can
//! never stall the processing of what it sends, and the reverse.

mod connect;
mod inbound;
mod outbound;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ledgermq_proto::{decode, Disconnect, Packet, Properties, Protocol, ReasonCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::broker::Broker;
use crate::metrics::Metrics;

/// Why a connection ended, deciding whether the will is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// DISCONNECT 0x00 from the client: no will.
    Normal,
    /// DISCONNECT 0x04 from the client: publish the will.
    WithWill,
    /// The broker closes with this reason (v5: DISCONNECT sent first).
    Broker(ReasonCode, Option<String>),
    /// The network connection broke or the client closed it.
    Network,
}

/// Serves one accepted connection until it closes.
pub async fn serve<S>(broker: Arc<Broker>, stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(4096);
    let max = broker.config.max_packet_size as usize;
    let timeout = Duration::from_secs(broker.config.connect_timeout);
    // The first packet must be CONNECT, within the connect timeout.
    let first = tokio::time::timeout(timeout, async {
        loop {
            match decode(&mut buf, None, max) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => {
                    return Err(ledgermq_proto::DecodeError::Malformed("connection closed"))
                }
                Ok(n) => Metrics::add(&broker.metrics.bytes_received, n as u64),
            }
        }
    })
    .await;
    let connect = match first {
        Ok(Ok(Packet::Connect(c))) => c,
        Ok(Ok(_)) => return, // unreachable: the decoder only returns CONNECT first
        Ok(Err(e)) => {
            connect::refuse_undecodable(wr, &buf, &e).await;
            tracing::debug!(%peer, "bad CONNECT: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no CONNECT within {timeout:?}");
            return;
        }
    };
    let Some(accepted) = connect::accept(&broker, connect, wr, peer).await else {
        return;
    };
    Metrics::add(&broker.metrics.clients_connected, 1);
    Metrics::add(&broker.metrics.clients_total, 1);
    let connect::Accepted {
        mut conn,
        will,
        writer,
    } = accepted;

    let ending = conn.read_loop(&mut rd, buf).await;
    tracing::debug!(
        client_id = &*conn.session.client_id,
        ?ending,
        "connection ending"
    );

    match &ending {
        Ending::Broker(reason, text) => conn.link.close(*reason, text.clone()),
        _ => conn.link.close_silently(),
    }
    // Detach first, so nothing more is routed to a connection that is
    // going away (a shared-subscription group picks another member), then
    // let the writer flush a final DISCONNECT, but never wait on a client
    // that does not read.
    broker.close_session(&conn.session, &conn.link);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    broker
        .metrics
        .clients_connected
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    let shutting_down = matches!(ending, Ending::Broker(ReasonCode::SERVER_SHUTTING_DOWN, _));
    if let Some(will) = will {
        if ending != Ending::Normal && !shutting_down {
            broker.schedule_will(will, conn.identity.clone(), conn.session.clone());
        }
    }
}

/// A DISCONNECT packet for `protocol` (3.1.1 has no server DISCONNECT).
pub(crate) fn disconnect_packet(reason: ReasonCode, text: Option<String>) -> Packet {
    Packet::Disconnect(Disconnect {
        reason,
        properties: Properties {
            reason_string: text,
            ..Default::default()
        },
    })
}

pub(crate) fn is_v5(p: Protocol) -> bool {
    p == Protocol::V5
}
