//! `ledgermq bench --e2e-group G`: the same scenarios on topics an
//! encryption group protects (docs/e2e.md), to measure what each of the
//! broker's verification policies costs.
//!
//! Before the run, every device fetches its key bundle of the group's
//! latest epoch on a connection of its own (`$lmq/keys/<G>/<device>`,
//! retained, published by the organisation's key service) and checks it
//! against the ledger. During the run each publisher's payloads (the
//! 16-byte stamp and its padding) are sealed under that key and signed with
//! its device key on a thread of its own, ahead of the send path, so the
//! broker sees the same arrival pattern as with plain payloads; the send
//! time goes in a table the subscribers read (a sealed payload cannot carry
//! it). Each is a real envelope the broker checks as its policy says. A
//! subscriber decrypts it to read the stamp but does not verify the
//! signature, so the load generator's own cost stays small next to the
//! broker's (a real subscriber verifies: `ledgermq bench envelope` says
//! what that costs).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use ledgermq_agent::e2e::DeviceE2e;
use ledgermq_ledger::admin::ProvisioningBundle;
use ledgermq_ledger::view::Snapshot;
use ledgermq_ledger::RegistryView;
use ledgermq_proto::{Packet, Protocol, QoS};
use ledgermq_security::{Envelope, GroupKey, Publisher};
use rand_core::OsRng;

use super::auth::{bundle_paths, next_packet_number};
use super::wire::{OtpLogin, Wire};
use crate::ledger_cmd::{ledger_error, LedgerTarget};

/// One device's means to seal and open: its signing key and the group key.
#[derive(Clone)]
pub struct DeviceKeys {
    publisher: Publisher,
    key: GroupKey,
}

impl DeviceKeys {
    /// `plaintext` sealed for `topic` with sequence `sequence`.
    pub fn seal(&self, topic: &str, sequence: u64, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.publisher
            .seal(topic, &self.key, sequence, plaintext, &mut OsRng)
            .map_err(|e| anyhow!("cannot seal: {e}"))
    }

    /// The plaintext of a sealed envelope (not verified: see the module
    /// documentation), or `None` if it is not one under this key.
    pub fn open(&self, topic: &str, payload: &[u8]) -> Option<Vec<u8>> {
        let envelope = Envelope::parse(payload).ok()?;
        envelope.open(topic, &self.key).ok().map(|p| p.to_vec())
    }
}

/// The keys of the first `count` devices of `dir/<prefix>*.json` (the
/// order `load_devices` uses), each fetched from the broker at
/// `host:port` and checked against the ledger of `target`.
pub async fn fetch_keys(
    dir: &Path,
    prefix: &str,
    count: usize,
    group: &str,
    target: &LedgerTarget,
    host: &str,
    port: u16,
) -> Result<Vec<DeviceKeys>> {
    let paths = bundle_paths(dir, prefix)?;
    let first = ProvisioningBundle::load(&paths[0]).map_err(ledger_error)?;
    let deployment = target.deployment_or(first.contracts)?;
    let ledger = target.open().await?;
    let view = RegistryView::builder(ledger, deployment)
        .build()
        .await
        .map_err(ledger_error)?;
    let snapshot = view.snapshot();
    let epoch = snapshot
        .groups
        .get(group)
        .and_then(|g| g.latest_epoch())
        .map(|e| e.epoch)
        .ok_or_else(|| {
            anyhow!(
                "group {group} has no key epoch on the ledger yet (is its key service running?)"
            )
        })?;
    let mut keys = Vec::with_capacity(count);
    for path in paths.iter().take(count) {
        keys.push(
            fetch_one(path, group, epoch, &snapshot, host, port)
                .await
                .with_context(|| format!("key of {}", path.display()))?,
        );
    }
    Ok(keys)
}

async fn fetch_one(
    path: &Path,
    group: &str,
    epoch: u64,
    snapshot: &Snapshot,
    host: &str,
    port: u16,
) -> Result<DeviceKeys> {
    let bundle = ProvisioningBundle::load(path).map_err(ledger_error)?;
    let mut device = DeviceE2e::from_bundle(path)?;
    let otp = bundle.otp_key_bytes().map_err(ledger_error)?;
    let key = ledgermq_security::OtpKey::from_bytes(*otp);
    let login = OtpLogin {
        key: &key,
        packet_number: next_packet_number(0),
    };
    let (mut wire, _) = Wire::connect(
        host,
        port,
        bundle.device_id.clone(),
        Protocol::V5,
        30,
        Some(login),
    )
    .await?;
    let topic = format!("$lmq/keys/{group}/{}", bundle.device_id);
    wire.subscribe(&topic, QoS::AtMostOnce).await?;
    let Packet::Publish(p) = wire
        .first(
            "its key bundle",
            |p| matches!(p, Packet::Publish(p) if p.topic == topic),
        )
        .await?
    else {
        unreachable!("filtered above")
    };
    wire.close(std::time::Duration::from_secs(1)).await;
    device.take_bundle(snapshot, &p.payload)?;
    let key = device
        .key(group, epoch)
        .ok_or_else(|| anyhow!("its bundle is not of epoch {epoch}, the latest"))?
        .clone();
    Ok(DeviceKeys {
        publisher: device.publisher().clone(),
        key,
    })
}
