//! Prometheus exposition of the broker's counters on `GET /metrics`.
//!
//! The same numbers as the `$SYS` topics, for monitoring systems that
//! scrape HTTP rather than subscribe over MQTT.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::PayloadRefusal;
use crate::broker::Broker;
use crate::metrics::Metrics;

/// Scrapers are few; more connections than this are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// The exposition text (Prometheus text format 0.0.4).
pub fn render(broker: &Broker) -> String {
    let m = &broker.metrics;
    let rows: [(&str, &str, &str, u64); 15] = [
        (
            "ledgermq_clients_connected",
            "gauge",
            "Connected clients.",
            Metrics::get(&m.clients_connected),
        ),
        (
            "ledgermq_connections_total",
            "counter",
            "Connections accepted (CONNACK 0x00).",
            Metrics::get(&m.clients_total),
        ),
        (
            "ledgermq_sessions",
            "gauge",
            "Sessions held, online and offline.",
            broker.session_count() as u64,
        ),
        (
            "ledgermq_subscriptions",
            "gauge",
            "Subscriptions in the subscription tree.",
            broker.router.subscription_count() as u64,
        ),
        (
            "ledgermq_retained_messages",
            "gauge",
            "Retained messages.",
            broker.retained.len() as u64,
        ),
        (
            "ledgermq_messages_received_total",
            "counter",
            "PUBLISH packets received from clients.",
            Metrics::get(&m.messages_received),
        ),
        (
            "ledgermq_messages_sent_total",
            "counter",
            "PUBLISH packets sent to clients.",
            Metrics::get(&m.messages_sent),
        ),
        (
            "ledgermq_messages_dropped_total",
            "counter",
            "Deliveries dropped: full queue, expiry, too large for the client.",
            Metrics::get(&m.messages_dropped),
        ),
        (
            "ledgermq_slow_subscribers_total",
            "counter",
            "Connected subscribers disconnected (0x97) because their queue was full.",
            Metrics::get(&m.slow_subscribers),
        ),
        (
            "ledgermq_retained_refused_total",
            "counter",
            "Retained PUBLISHes not retained: max_retained_messages or max_retained_bytes.",
            Metrics::get(&m.retained_refused),
        ),
        (
            "ledgermq_connections_refused_total",
            "counter",
            "Connections refused by a limit before or during CONNECT.",
            Metrics::get(&m.connections_refused),
        ),
        (
            "ledgermq_retained_bytes",
            "gauge",
            "Bytes of retained messages, as counted against max_retained_bytes.",
            broker.retained.bytes() as u64,
        ),
        (
            "ledgermq_bytes_received_total",
            "counter",
            "Bytes read from clients.",
            Metrics::get(&m.bytes_received),
        ),
        (
            "ledgermq_bytes_sent_total",
            "counter",
            "Bytes written to clients.",
            Metrics::get(&m.bytes_sent),
        ),
        (
            "ledgermq_uptime_seconds",
            "gauge",
            "Seconds since the broker started.",
            broker.started.elapsed().as_secs(),
        ),
    ];
    let mut out = String::with_capacity(2048);
    for (name, kind, help, value) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let name = "ledgermq_payloads_refused_total";
    let _ = writeln!(
        out,
        "# HELP {name} PUBLISHes refused on protected topics (end-to-end envelopes), by reason.\n# TYPE {name} counter"
    );
    for refusal in PayloadRefusal::ALL {
        let value = Metrics::get(&m.payloads_refused[refusal.index()]);
        let _ = writeln!(out, "{name}{{reason=\"{}\"}} {value}", refusal.label());
    }
    out
}

/// Serves `/metrics` on `listener` until `stop` turns true.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                if connections.len() >= MAX_CONNECTIONS {
                    continue;
                }
                let broker = broker.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| respond(broker.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    connections.abort_all();
}

async fn respond(
    broker: Arc<Broker>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render(&broker),
        ),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics\n".to_owned(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    Ok(response)
}
