//! One client connection: CONNECT handshake, then one task that reads,
//! handles and writes.
//!
//! Handlers ([`inbound`]) encode their answers into the connection's
//! control buffer; routers put deliveries into the session queue and wake
//! the task; [`outbound`] turns both into bytes, many packets per syscall.
//! The loop ([`pump`]) reads and writes independently (a client that stops
//! reading does not stop us reading, and the reverse), and one task per
//! connection means a PUBLISH costs at most one cross-task wake-up (the
//! subscriber's), which keeps latency low on few cores.

mod connect;
mod inbound;
mod outbound;
mod pump;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ledgermq_proto::{decode, Disconnect, Packet, Properties, Protocol, ReasonCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
pub async fn serve<S>(broker: Arc<Broker>, stream: S, peer: SocketAddr, local: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
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
    let Some(accepted) =
        connect::accept(&broker, connect, &mut rd, &mut wr, &mut buf, peer, local).await
    else {
        return;
    };
    Metrics::add(&broker.metrics.clients_connected, 1);
    Metrics::add(&broker.metrics.clients_total, 1);
    let connect::Accepted {
        mut conn,
        mut writer,
        will,
    } = accepted;

    let ending = pump::run(&mut conn, &mut writer, &mut rd, &mut wr, buf).await;
    tracing::debug!(
        client_id = &*conn.session.client_id,
        ?ending,
        "connection ending"
    );
    // Detach first, so nothing more is routed to a connection that is
    // going away (a shared-subscription group picks another member), then
    // flush what is owed and a final DISCONNECT, but never wait long on a
    // client that does not read.
    conn.link.close_silently();
    broker.close_session(&conn.session, &conn.link);
    writer.gather();
    if let Ending::Broker(reason, text) = &ending {
        writer.push_disconnect(*reason, text.clone());
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = wr.write_all(&writer.out[writer.written..]).await;
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    })
    .await;
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
