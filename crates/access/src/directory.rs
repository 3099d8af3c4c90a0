//! What this broker node knows about a device, from the registry view:
//! status, blacklist (the ledger's and this node's own pending bans), the
//! OTP key opened from the HPKE envelope sealed to this node, and the
//! replay counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, Bytes};
use ledgermq_ledger::admin::open_otp_envelope;
use ledgermq_ledger::contracts::DeviceStatus as LedgerStatus;
use ledgermq_ledger::RegistryView;
use ledgermq_security::{DeviceStatus, OtpDirectory, OtpKey};
use parking_lot::Mutex;
use zeroize::Zeroizing;

use crate::counters::{AuthCounters, CounterKind};

/// Unix time in milliseconds, the clock of every `now` in this crate.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An opened OTP key, remembered with the envelope it came from so a
/// re-sealed envelope (new key) replaces it.
struct OpenedKey {
    envelope: Bytes,
    key: OtpKey,
}

pub struct DeviceDirectory {
    pub view: Arc<RegistryView>,
    account: Address,
    agreement_secret: Zeroizing<[u8; 32]>,
    keys: Mutex<HashMap<String, OpenedKey>>,
    pub counters: AuthCounters,
    /// Bans this node decided whose ledger transaction may not be in the
    /// view yet: device id → until (Unix seconds).
    local_bans: Mutex<HashMap<String, u64>>,
}

impl DeviceDirectory {
    pub fn new(
        view: Arc<RegistryView>,
        account: Address,
        agreement_secret: Zeroizing<[u8; 32]>,
        counters: AuthCounters,
    ) -> DeviceDirectory {
        DeviceDirectory {
            view,
            account,
            agreement_secret,
            keys: Mutex::new(HashMap::new()),
            counters,
            local_bans: Mutex::new(HashMap::new()),
        }
    }

    /// This broker node's account.
    pub fn account(&self) -> Address {
        self.account
    }

    /// Bans `device_id` on this node at once, until `until` (Unix seconds).
    pub fn ban_locally(&self, device_id: &str, until: u64) {
        self.local_bans.lock().insert(device_id.to_owned(), until);
    }

    /// The ledger now says whether the device is banned (our own entry
    /// arrived, or an admin lifted the ban): this node's interim ban ends.
    pub fn forget_local_ban(&self, device_id: &str) {
        self.local_bans.lock().remove(device_id);
    }

    /// The end of the device's ban (Unix seconds) if it is banned now.
    pub fn banned_until(&self, device_id: &str) -> Option<u64> {
        let now = unix_ms() / 1000;
        let ledger = self
            .view
            .blacklist_entry(device_id)
            .map(|b| b.until)
            .filter(|&until| until > now);
        let local = {
            let mut bans = self.local_bans.lock();
            match bans.get(device_id) {
                Some(&until) if until > now => Some(until),
                Some(_) => {
                    bans.remove(device_id);
                    None
                }
                None => None,
            }
        };
        ledger.max(local)
    }
}

impl OtpDirectory for DeviceDirectory {
    fn otp_key(&self, device_id: &str) -> Option<OtpKey> {
        let envelope = self.view.otp_envelope(device_id, &self.account)?;
        // A device's symmetric key belongs with its own organisation's nodes
        // only. An envelope sealed to this node by a device of another
        // organisation (a consortium from before the registry refused them)
        // is not used: the device logs in here with its signing key (SCAC).
        let same_org = match (self.view.broker(&self.account), self.view.device(device_id)) {
            (Some(node), Some(device)) => node.org == device.org,
            _ => false,
        };
        if !same_org {
            tracing::debug!(
                device_id,
                "OTP key of a device of another organisation not used: it authenticates here with SCAC"
            );
            return None;
        }
        if let Some(k) = self.keys.lock().get(device_id) {
            if k.envelope == envelope {
                return Some(k.key.clone());
            }
        }
        // An HPKE open is tens of microseconds: do it once per envelope.
        let key = match open_otp_envelope(&self.agreement_secret, device_id, &envelope) {
            Ok(bytes) => OtpKey::from_bytes(*bytes),
            Err(e) => {
                tracing::warn!(device_id, error = %e, "cannot open the device's OTP envelope");
                return None;
            }
        };
        self.keys.lock().insert(
            device_id.to_owned(),
            OpenedKey {
                envelope,
                key: key.clone(),
            },
        );
        Some(key)
    }

    fn status(&self, device_id: &str) -> DeviceStatus {
        match self.view.device(device_id).map(|d| d.status) {
            None | Some(LedgerStatus::None) => DeviceStatus::Unknown,
            Some(LedgerStatus::Revoked) => DeviceStatus::Revoked,
            Some(LedgerStatus::Active) => match self.banned_until(device_id) {
                Some(until) => DeviceStatus::Blacklisted {
                    until: until.saturating_mul(1000),
                },
                None => DeviceStatus::Active,
            },
        }
    }

    fn last_packet_number(&self, device_id: &str) -> Option<u64> {
        self.counters.last(CounterKind::OtpPacketNumber, device_id)
    }
}
