//! `LMQ-OTP-1` packet numbers.
//!
//! The broker refuses any packet number that is not above the last one it
//! accepted from the device, forever, so a device must never reuse one:
//! not after a restart, not after its clock was set back. The next number
//! is `max(unix time in µs, last + 1)`: the clock keeps numbers ahead of
//! what a freshly provisioned or reset device may have used, the stored
//! `last` covers clocks that go backwards. The state file is written
//! (temporary file, fsync, rename) *before* a number is handed out, so a
//! crash can skip numbers but never repeat one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ClientError;

/// Source of strictly increasing packet numbers for one device.
#[derive(Debug)]
pub struct PacketCounter {
    /// `None`: numbers only increase within this process.
    state_file: Option<PathBuf>,
    last: u64,
}

impl PacketCounter {
    /// Counter without a state file: strictly increasing within this
    /// process, and across runs only as long as the clock does not go back.
    pub fn in_memory() -> Self {
        Self {
            state_file: None,
            last: 0,
        }
    }

    /// Counter persisted in `path`, which is created on first use.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ClientError> {
        let path = path.into();
        let last = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                state_error(
                    &path,
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "not a packet counter (expected one decimal number)",
                    ),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(state_error(&path, e)),
        };
        Ok(Self {
            state_file: Some(path),
            last,
        })
    }

    /// The default state file of a provisioning bundle: its path with
    /// `.state` appended (`device.json` → `device.json.state`).
    pub fn default_path(bundle: &Path) -> PathBuf {
        let mut name = bundle.as_os_str().to_owned();
        name.push(".state");
        PathBuf::from(name)
    }

    /// The last number handed out (or read from the state file); 0 if none.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The state file, if any.
    pub fn state_file(&self) -> Option<&Path> {
        self.state_file.as_deref()
    }

    /// The next packet number, durably recorded before it is returned.
    /// Does blocking file I/O (a small write and an fsync).
    pub fn next_number(&mut self) -> Result<u64, ClientError> {
        let candidate = unix_micros().max(self.last.saturating_add(1));
        if candidate == self.last {
            // u64::MAX µs is half a million years away; refusing beats wrapping.
            return Err(ClientError::Options("packet numbers are exhausted".into()));
        }
        if let Some(path) = &self.state_file {
            write_state(path, candidate).map_err(|e| state_error(path, e))?;
        }
        self.last = candidate;
        Ok(candidate)
    }
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn state_error(path: &Path, e: io::Error) -> ClientError {
    ClientError::PacketCounter {
        path: path.to_owned(),
        source: Arc::new(e),
    }
}

/// Replaces the state file atomically (`ledgermq_keystore::secret_file`:
/// 0600, unpredictable temporary name, fsync, rename, directory fsync): a
/// reader, or the next run after a crash, sees either the old number or the
/// new one, never a torn write.
fn write_state(path: &Path, value: u64) -> io::Result<()> {
    ledgermq_keystore::secret_file::write_replace(path, format!("{value}\n").as_bytes())
        .map_err(|e| e.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_strictly_increase_even_within_one_microsecond() {
        let mut counter = PacketCounter::in_memory();
        let mut previous = counter.next_number().unwrap();
        for _ in 0..1000 {
            let n = counter.next_number().unwrap();
            assert!(n > previous, "{n} after {previous}");
            previous = n;
        }
        assert_eq!(counter.last(), previous);
    }

    #[test]
    fn numbers_follow_the_clock_in_microseconds() {
        let before = unix_micros();
        let n = PacketCounter::in_memory().next_number().unwrap();
        assert!(n >= before && n <= unix_micros());
    }

    #[test]
    fn reopened_counter_continues_above_the_last_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.json.state");
        let mut counter = PacketCounter::open(&path).unwrap();
        let first = counter.next_number().unwrap();
        let second = counter.next_number().unwrap();
        drop(counter);
        let mut reopened = PacketCounter::open(&path).unwrap();
        assert_eq!(reopened.last(), second);
        assert!(reopened.next_number().unwrap() > second);
        assert!(second > first);
    }

    #[test]
    fn stored_number_ahead_of_the_clock_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let future = unix_micros() + 3_600_000_000;
        fs::write(&path, format!("{future}\n")).unwrap();
        let mut counter = PacketCounter::open(&path).unwrap();
        assert_eq!(counter.next_number().unwrap(), future + 1);
        assert_eq!(PacketCounter::open(&path).unwrap().last(), future + 1);
    }

    #[cfg(unix)]
    #[test]
    fn state_file_is_private_to_the_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        PacketCounter::open(&path).unwrap().next_number().unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"], "temporary files left behind");
    }

    #[test]
    fn corrupt_state_file_is_refused_rather_than_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        fs::write(&path, "not a number").unwrap();
        let err = PacketCounter::open(&path).unwrap_err();
        assert!(matches!(err, ClientError::PacketCounter { .. }), "{err}");
    }

    #[test]
    fn default_state_file_is_the_bundle_path_with_state_appended() {
        assert_eq!(
            PacketCounter::default_path(Path::new("/etc/dev/sensor-1.json")),
            PathBuf::from("/etc/dev/sensor-1.json.state")
        );
    }
}
