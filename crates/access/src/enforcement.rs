//! Ledger changes act on connected clients at once: a revoked or
//! blacklisted device is disconnected (MQTT 5: DISCONNECT 0x98
//! Administrative action), and a subscription the device lost the right to
//! is removed, whether the session is connected or not.

use std::sync::Arc;

use ledgermq_broker::session::Session;
use ledgermq_broker::Broker;
use ledgermq_ledger::RegistryEvent;
use ledgermq_proto::{topic, ReasonCode};
use tokio::sync::broadcast::error::RecvError;

use crate::directory::unix_ms;
use crate::status::is_own_status_filter;
use crate::Access;

/// Follows the registry's notifications until the view is dropped.
pub async fn enforce(access: Arc<Access>, broker: Arc<Broker>) {
    let mut events = access.directory.view.subscribe();
    // Sessions restored from the store may belong to devices revoked while
    // the broker was down.
    sweep_all(&access, &broker).await;
    loop {
        match events.recv().await {
            Ok(event) => apply(&access, &broker, event).await,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "registry notifications lagged; checking every session"
                );
                sweep_all(&access, &broker).await;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn apply(access: &Access, broker: &Broker, event: RegistryEvent) {
    match event {
        RegistryEvent::DeviceRevoked(id) => {
            access.status.unauth(&id, "revoked");
            if let Some(s) = broker.session(&id) {
                s.close_connection(
                    ReasonCode::ADMINISTRATIVE_ACTION,
                    "device revoked on the ledger",
                );
                prune_subscriptions(access, broker, &s).await;
            }
        }
        RegistryEvent::BlacklistLifted(id) => access.directory.forget_local_ban(&id),
        RegistryEvent::Blacklisted { id, until, .. } if until > unix_ms() / 1000 => {
            access.directory.forget_local_ban(&id);
            access.status.unauth(&id, "blacklisted");
            if let Some(s) = broker.session(&id) {
                s.close_connection(
                    ReasonCode::ADMINISTRATIVE_ACTION,
                    "device blacklisted on the ledger",
                );
            }
        }
        RegistryEvent::RightRevoked { id, .. } => {
            if let Some(s) = broker.session(&id) {
                prune_subscriptions(access, broker, &s).await;
            }
        }
        _ => {}
    }
}

/// Disconnects sessions of devices that may not be connected and prunes
/// every session's subscriptions.
async fn sweep_all(access: &Access, broker: &Broker) {
    for s in broker.sessions() {
        if !access.directory.view.is_active(&s.client_id) {
            s.close_connection(
                ReasonCode::ADMINISTRATIVE_ACTION,
                "device not authorised on the ledger",
            );
        }
        prune_subscriptions(access, broker, &s).await;
    }
}

/// Removes the subscriptions the device no longer has the right to (a
/// temporary ban does not remove rights), durably.
async fn prune_subscriptions(access: &Access, broker: &Broker, session: &Arc<Session>) {
    let id = &*session.client_id;
    let device = access.directory.view.device(id);
    let filters: Vec<String> = session.state.lock().subscriptions.keys().cloned().collect();
    let mut removed = 0;
    for filter in filters {
        let inner = match topic::parse_shared(&filter) {
            Ok(Some((_, inner))) => inner.to_owned(),
            _ => filter.clone(),
        };
        let allowed = match &device {
            Some(d) if d.status == ledgermq_ledger::contracts::DeviceStatus::Active => {
                (access.settings.status_topics && is_own_status_filter(id, &inner))
                    || d.rights.can_subscribe(&inner)
            }
            _ => false,
        };
        if !allowed && broker.remove_subscription(session, &filter) {
            tracing::info!(
                device_id = id,
                filter,
                "subscription removed: right revoked on the ledger"
            );
            removed += 1;
        }
    }
    if removed > 0 {
        broker.durable().await;
    }
}
