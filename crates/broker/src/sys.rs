//! `$SYS/broker/…` statistics, published retained at start-up and every
//! `sys_interval` seconds.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::metrics::Metrics;

pub fn publish_stats(broker: &Broker) {
    let m = &broker.metrics;
    let stats: [(&str, String); 11] = [
        ("version", format!("ledgermq {}", env!("CARGO_PKG_VERSION"))),
        (
            "uptime",
            format!("{} seconds", broker.started.elapsed().as_secs()),
        ),
        (
            "clients/connected",
            Metrics::get(&m.clients_connected).to_string(),
        ),
        ("clients/total", Metrics::get(&m.clients_total).to_string()),
        (
            "messages/received",
            Metrics::get(&m.messages_received).to_string(),
        ),
        ("messages/sent", Metrics::get(&m.messages_sent).to_string()),
        (
            "messages/dropped",
            Metrics::get(&m.messages_dropped).to_string(),
        ),
        (
            "subscriptions/count",
            broker.router.subscription_count().to_string(),
        ),
        ("retained messages/count", broker.retained.len().to_string()),
        (
            "bytes/received",
            Metrics::get(&m.bytes_received).to_string(),
        ),
        ("bytes/sent", Metrics::get(&m.bytes_sent).to_string()),
    ];
    for (name, value) in stats {
        broker.publish_internal(&format!("$SYS/broker/{name}"), value);
    }
}

/// Housekeeping: timers (delayed wills, session expiry) as they come due,
/// retained-message expiry and `$SYS` publications every second.
pub async fn housekeeping(broker: Arc<Broker>) {
    let sys_every = broker.config.sys_interval;
    if sys_every > 0 {
        publish_stats(&broker);
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seconds = 0u64;
    loop {
        let changed = broker.timers.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let next = broker.timers.next_deadline();
        let timer = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {
                seconds += 1;
                let now = std::time::Instant::now();
                broker.run_timers(now);
                broker.sweep_retained(now);
                if sys_every > 0 && seconds.is_multiple_of(sys_every) {
                    publish_stats(&broker);
                }
            }
            _ = timer => broker.run_timers(std::time::Instant::now()),
            _ = changed => {}
        }
    }
}
