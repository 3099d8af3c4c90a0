//! The connection loop: read, handle, write, until the connection ends.
//!
//! What makes the loop stop reading from its client (and only from its
//! client): the client not reading our answers (`OUT_BACKLOG_LIMIT`),
//! acknowledgements waiting for the store beyond Receive Maximum, the
//! store's backlog over `max_store_backlog_bytes`, and a subscriber whose
//! queue this client's messages filled while it keeps taking them, only
//! more slowly (backpressure: no acknowledged message is dropped for it).
//! A subscriber that holds its deliveries back (window full, socket not
//! taking bytes) and takes nothing for [`STUCK_AFTER`] with a full queue
//! holds nobody back: it is disconnected with 0x97 (see
//! [`crate::session::ConnLink::is_stuck`]), so one stuck client cannot
//! stall publishers or anyone else. A subscriber the broker has not got to
//! write to yet (idle until a burst filled its queue) is not stuck.

use std::time::Duration;

use bytes::BytesMut;
use ledgermq_proto::{decode, ReasonCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::inbound::Connection;
use super::outbound::Writer;
use super::Ending;
use crate::metrics::Metrics;
use crate::session::{Session, STUCK_AFTER};

/// Encoded bytes waiting for a slow client above which we stop reading
/// from it: a client must read our answers to be heard.
const OUT_BACKLOG_LIMIT: usize = 256 * 1024;

/// How long a publisher waits for a slow (not stuck) subscriber to make
/// room before that subscriber is disconnected as a slow consumer (0x97);
/// its session keeps the messages.
const SLOW_CONSUMER_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until `s` has room, its subscriber is gone, or gives up on it
/// (stuck, or slow for [`SLOW_CONSUMER_TIMEOUT`]) and disconnects it.
async fn room_in(s: &Session, limit: usize, since: Instant, metrics: &Metrics) {
    loop {
        let notified = s.room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if s.has_room(limit) {
            return;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(STUCK_AFTER / 2) => {
                // Disconnected meanwhile (as too slow, by this or another
                // publisher, or by itself): nothing to wait for.
                if s.subscriber_detached() {
                    return;
                }
                if s.subscriber_stuck() || since.elapsed() >= SLOW_CONSUMER_TIMEOUT {
                    // Counted once, by whoever closes it first.
                    if s.close_connection(ReasonCode::QUOTA_EXCEEDED, "subscriber too slow: queue full") {
                        Metrics::add(&metrics.slow_subscribers, 1);
                    }
                    return;
                }
            }
        }
    }
}

/// Serves an accepted connection until it ends, and says why.
pub(super) async fn run<R, W>(
    conn: &mut Connection,
    writer: &mut Writer,
    rd: &mut R,
    wr: &mut W,
    mut buf: BytesMut,
) -> Ending
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let broker = conn.broker().clone();
    let link = conn.link.clone();
    let session = conn.session.clone();
    let max = broker.config.max_packet_size as usize;
    let ack_limit = usize::from(broker.config.receive_maximum);
    // §3.1.2.10: close after one and a half keep-alive periods of silence.
    let idle =
        (conn.keep_alive() > 0).then(|| Duration::from_millis(u64::from(conn.keep_alive()) * 1500));
    let far = Duration::from_secs(365 * 24 * 3600);
    let keep_alive = tokio::time::sleep(idle.unwrap_or(far));
    tokio::pin!(keep_alive);
    let mut congested_since: Option<Instant> = None;

    loop {
        // Handle everything already received, holding the session's
        // handling lock so a takeover waits for the batch to finish.
        if !buf.is_empty() && conn.congested().is_none() {
            let _handling = session.handling.lock().await;
            while !link.is_closing()
                && conn.acks_waiting() < ack_limit
                && conn.congested().is_none()
            {
                match decode(&mut buf, Some(link.protocol), max) {
                    Ok(Some(packet)) => {
                        if let Err(ending) = conn.handle(packet).await {
                            return ending;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(client_id = &*session.client_id, "decode error: {e}");
                        return Ending::Broker(e.reason_code(), Some(e.to_string()));
                    }
                }
            }
        }
        if std::mem::take(&mut conn.acknowledged) {
            link.progressed(); // once per batch, not per acknowledgement
        }
        if std::mem::take(&mut conn.routed) {
            // Let the subscribers we just woke write their deliveries before
            // we write our acknowledgements: delivery latency is what counts
            // (Mosquitto orders it the same way).
            tokio::task::yield_now().await;
        }
        if link.is_closing() {
            return match link.close.lock().take() {
                Some((reason, text)) => Ending::Broker(reason, text),
                None => Ending::Network,
            };
        }
        writer.gather();

        let store_full = !broker.store_has_room();
        let congested = conn.congested().cloned();
        if congested.is_some() && congested_since.is_none() {
            congested_since = Some(Instant::now());
        }
        let can_read = writer.pending() < OUT_BACKLOG_LIMIT
            && !store_full
            && congested.is_none()
            && conn.acks_waiting() < ack_limit;
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(8192);
        }
        let has_output = writer.pending() > 0;
        let write = async {
            let n = wr.write(&writer.out[writer.written..]).await?;
            if n == writer.pending() {
                wr.flush().await?; // TLS: push the records out
            }
            Ok::<usize, std::io::Error>(n)
        };
        let limit = broker.config.max_queued_messages;
        let room = async {
            match &congested {
                Some(s) => {
                    let since = congested_since.unwrap_or_else(Instant::now);
                    room_in(s, limit, since, &broker.metrics).await
                }
                None => std::future::pending().await,
            }
        };
        let store_room = async {
            if store_full {
                broker.store_room().await
            } else {
                std::future::pending().await
            }
        };

        tokio::select! {
            r = rd.read_buf(&mut buf), if can_read => match r {
                Ok(0) | Err(_) => return Ending::Network,
                Ok(n) => {
                    Metrics::add(&broker.metrics.bytes_received, n as u64);
                    if let Some(d) = idle {
                        keep_alive.as_mut().reset(Instant::now() + d);
                    }
                }
            },
            w = write, if has_output => match w {
                Ok(0) | Err(_) => return Ending::Network,
                Ok(n) => writer.advance(n),
            },
            _ = link.notify.notified() => {}
            _ = store_room => {}
            _ = room => {
                conn.uncongest_first();
                congested_since = None;
            }
            _ = &mut keep_alive, if idle.is_some() => {
                return Ending::Broker(ReasonCode::KEEP_ALIVE_TIMEOUT, Some("keep alive timeout".into()));
            }
        }
    }
}
