//! Replay protection state: the last accepted `LMQ-OTP-1` packet number
//! and TOTP counter of each device.
//!
//! A value only ever grows, by compare-and-set: two exchanges that passed
//! their first check together cannot both be accepted with the same number.
//! With a file, an accepted value is durable before the device is told it
//! is in (so a restart does not reopen a used code); writes from concurrent
//! handshakes are grouped into one commit by a writer thread.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;

use parking_lot::Mutex;
use redb::{Database, ReadableTable, TableDefinition};

const TABLE: TableDefinition<&str, u64> = TableDefinition::new("auth_counters");

/// Which counter of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterKind {
    OtpPacketNumber,
    TotpStep,
}

impl CounterKind {
    fn key(self, device_id: &str) -> String {
        match self {
            CounterKind::OtpPacketNumber => format!("otp/{device_id}"),
            CounterKind::TotpStep => format!("totp/{device_id}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("auth counters store {path}: {message}")]
pub struct CountersError {
    path: String,
    message: String,
}

type Write = (String, u64, mpsc::SyncSender<bool>);

pub struct AuthCounters {
    values: Mutex<HashMap<String, u64>>,
    writer: Option<Mutex<mpsc::Sender<Write>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuthCounters {
    /// Counters kept in memory only.
    pub fn in_memory() -> AuthCounters {
        AuthCounters {
            values: Mutex::new(HashMap::new()),
            writer: None,
            thread: None,
        }
    }

    /// Counters kept in a redb file, loaded now.
    pub fn open(path: &Path) -> Result<AuthCounters, CountersError> {
        let err = |e: &dyn std::fmt::Display| CountersError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        // Owner-only (0600): the file says which devices log in and when.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(&e))?
        };
        let db = Database::builder().create_file(file).map_err(|e| err(&e))?;
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(TABLE).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        let mut values = HashMap::new();
        {
            let read = db.begin_read().map_err(|e| err(&e))?;
            let table = read.open_table(TABLE).map_err(|e| err(&e))?;
            for row in table.iter().map_err(|e| err(&e))? {
                let (k, v) = row.map_err(|e| err(&e))?;
                values.insert(k.value().to_owned(), v.value());
            }
        }
        let (tx, rx) = mpsc::channel::<Write>();
        let display = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("ledgermq-auth-counters".into())
            .spawn(move || write_loop(db, rx, display))
            .map_err(|e| err(&e))?;
        Ok(AuthCounters {
            values: Mutex::new(values),
            writer: Some(Mutex::new(tx)),
            thread: Some(thread),
        })
    }

    pub fn last(&self, kind: CounterKind, device_id: &str) -> Option<u64> {
        self.values.lock().get(&kind.key(device_id)).copied()
    }

    /// Records `value` if it is above the stored one, durably when backed
    /// by a file; returns false if it is not above (a replay, or a
    /// concurrent exchange won) or could not be made durable. Blocks
    /// until the write is committed.
    pub fn advance(&self, kind: CounterKind, device_id: &str, value: u64) -> bool {
        let key = kind.key(device_id);
        {
            let mut values = self.values.lock();
            match values.get(&key) {
                Some(&last) if value <= last => return false,
                _ => {
                    values.insert(key.clone(), value);
                }
            }
        }
        let Some(writer) = &self.writer else {
            return true;
        };
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if writer.lock().send((key, value, done_tx)).is_err() {
            return false;
        }
        done_rx.recv().unwrap_or(false)
    }
}

impl Drop for AuthCounters {
    /// Lets the writer finish what is queued and close the file.
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Commits queued writes, as many per transaction as are waiting.
fn write_loop(db: Database, rx: mpsc::Receiver<Write>, path: String) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let ok = match commit(&db, &batch) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(path, error = %e, "cannot persist authentication counters");
                false
            }
        };
        for (_, _, done) in batch {
            let _ = done.send(ok);
        }
    }
}

fn commit(db: &Database, batch: &[Write]) -> Result<(), Box<redb::Error>> {
    let txn = db.begin_write().map_err(|e| Box::new(e.into()))?;
    {
        let mut table = txn.open_table(TABLE).map_err(|e| Box::new(e.into()))?;
        for (key, value, _) in batch {
            // Grouped writes may arrive out of order: keep the maximum.
            let current = table
                .get(key.as_str())
                .map_err(|e| Box::new(e.into()))?
                .map(|g| g.value());
            if current.is_none_or(|c| c < *value) {
                table
                    .insert(key.as_str(), *value)
                    .map_err(|e| Box::new(e.into()))?;
            }
        }
    }
    txn.commit().map_err(|e| Box::new(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_only_grow_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.redb");
        {
            let c = AuthCounters::open(&path).unwrap();
            assert_eq!(c.last(CounterKind::OtpPacketNumber, "d"), None);
            assert!(c.advance(CounterKind::OtpPacketNumber, "d", 5));
            assert!(!c.advance(CounterKind::OtpPacketNumber, "d", 5));
            assert!(!c.advance(CounterKind::OtpPacketNumber, "d", 4));
            assert!(c.advance(CounterKind::TotpStep, "d", 2));
            assert!(c.advance(CounterKind::OtpPacketNumber, "d", 9));
        }
        let c = AuthCounters::open(&path).unwrap();
        assert_eq!(c.last(CounterKind::OtpPacketNumber, "d"), Some(9));
        assert_eq!(c.last(CounterKind::TotpStep, "d"), Some(2));
        assert!(!c.advance(CounterKind::TotpStep, "d", 2));
    }

    #[test]
    fn memory_counters_refuse_replays() {
        let c = AuthCounters::in_memory();
        assert!(c.advance(CounterKind::TotpStep, "x", 1));
        assert!(!c.advance(CounterKind::TotpStep, "x", 1));
        assert_eq!(c.last(CounterKind::OtpPacketNumber, "x"), None);
    }
}
