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
//!
//! Every transport (TCP, TLS) ends up in [`serve`]: one connection code.

mod connect;
mod inbound;
mod outbound;
mod pump;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ledgermq_proto::{decode, Disconnect, Packet, Properties, Protocol, ReasonCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::broker::Broker;
use crate::metrics::Metrics;
use crate::rules::ConnectionEnd;

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

impl Ending {
    fn as_end(&self) -> ConnectionEnd {
        match self {
            Ending::Normal => ConnectionEnd::NormalDisconnect,
            Ending::WithWill => ConnectionEnd::DisconnectWithWill,
            Ending::Broker(ReasonCode::SERVER_SHUTTING_DOWN, _) => ConnectionEnd::ServerShutdown,
            Ending::Broker(..) | Ending::Network => ConnectionEnd::Abnormal,
        }
    }
}

/// Bytes this connection holds while it is still reading its CONNECT,
/// counted against `max_pending_connect_bytes` for all such connections.
struct ConnectBytes<'a> {
    broker: &'a Broker,
    held: usize,
}

impl ConnectBytes<'_> {
    /// Counts `n` more bytes; false if the budget of every pending CONNECT
    /// together would be exceeded (the connection is then closed).
    fn add(&mut self, n: usize) -> bool {
        let before = self.broker.connect_bytes.fetch_add(n, Ordering::AcqRel);
        self.held += n;
        before + n <= self.broker.config.max_pending_connect_bytes
    }
}

impl Drop for ConnectBytes<'_> {
    fn drop(&mut self) {
        self.broker
            .connect_bytes
            .fetch_sub(self.held, Ordering::AcqRel);
    }
}

/// Serves one accepted connection until it closes. `local` is the address
/// of the listener it arrived on.
pub async fn serve<S>(broker: Arc<Broker>, stream: S, peer: SocketAddr, local: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(1024);
    let max = broker.config.max_packet_size as usize;
    let timeout = Duration::from_secs(broker.config.connect_timeout);
    let mut pending = ConnectBytes {
        broker: &broker,
        held: 0,
    };
    // The first packet must be CONNECT, whole, within the connect timeout
    // (a client sending it byte by byte does not get longer).
    let first = tokio::time::timeout(timeout, async {
        loop {
            match decode(&mut buf, None, max) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => return Err(Some(e)),
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Err(None),
                Ok(n) => {
                    Metrics::add(&broker.metrics.bytes_received, n as u64);
                    if !pending.add(n) {
                        Metrics::add(&broker.metrics.connections_refused, 1);
                        tracing::warn!(%peer, "too many bytes in pending CONNECTs (max_pending_connect_bytes): closing");
                        return Err(None);
                    }
                }
            }
        }
    })
    .await;
    let connect = match first {
        Ok(Ok(Packet::Connect(c))) => c,
        Ok(Ok(_)) => return, // unreachable: the decoder only returns CONNECT first
        Ok(Err(Some(e))) => {
            connect::refuse_undecodable(wr, &buf, &e).await;
            tracing::debug!(%peer, "bad CONNECT: {e}");
            return;
        }
        Ok(Err(None)) => return,
        Err(_) => {
            tracing::debug!(%peer, "no CONNECT within {timeout:?}");
            return;
        }
    };
    let accepted = connect::accept(&broker, connect, &mut rd, &mut wr, &mut buf, peer, local).await;
    drop(pending);
    let Some(accepted) = accepted else {
        return;
    };
    Metrics::add(&broker.metrics.clients_connected, 1);
    Metrics::add(&broker.metrics.clients_total, 1);
    let connect::Accepted {
        mut conn,
        mut writer,
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
    broker.close_session(&conn.session, &conn.link, ending.as_end());
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
        .fetch_sub(1, Ordering::Relaxed);
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
