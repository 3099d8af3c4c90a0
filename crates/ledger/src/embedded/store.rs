//! The append-only block file and the data-dir lock.
//!
//! Durability is one `write` + `fdatasync` per block, never per
//! transaction: a block is acknowledged (its receipts released) only after
//! its record is on disk. A crash can therefore leave at most one torn
//! record at the end — a record whose length runs past the end of the
//! file — and that block was never acknowledged, so opening truncates it.
//! Anything else that does not check out (a checksum, the hash chain, a
//! transactions root) is corruption of acknowledged history: open fails and
//! names the block, and nothing is repaired silently.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::embedded::block::{checksum, BlockRecord, FRAME_LEN, MAX_PAYLOAD_LEN};
use crate::ledger::{LedgerError, LedgerResult};

pub(crate) const BLOCKS_FILE: &str = "blocks.dat";
const LOCK_FILE: &str = "LOCK";

/// Blocks read from a file, and what was found after the last good record.
pub(crate) struct ScannedBlocks {
    pub blocks: Vec<BlockRecord>,
    /// Bytes of the last good record's end.
    pub valid_len: u64,
    /// Bytes after `valid_len` that form an incomplete (torn) record.
    pub torn_bytes: u64,
}

/// The open, exclusively locked block file of a data dir.
pub(crate) struct BlockFile {
    file: File,
    path: PathBuf,
    _lock: File,
}

impl BlockFile {
    /// Locks `dir`, reads every block, truncates a torn tail.
    pub fn open(dir: &Path) -> LedgerResult<(Self, ScannedBlocks)> {
        // Owner-only: the directory (0700) and its files (0600) are nobody
        // else's to read or to swap.
        ledgermq_keystore::secret_file::create_private_dir(dir)
            .map_err(|e| LedgerError::Storage(e.to_string()))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .mode(0o600)
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| storage(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LedgerError::Storage(format!(
                    "ledger at {} is in use by another process (is a broker running? \
                     use --rpc http://… to reach its JSON-RPC endpoint instead)",
                    dir.display()
                )))
            }
            Err(TryLockError::Error(e)) => return Err(storage(&lock_path, e)),
        }
        let path = dir.join(BLOCKS_FILE);
        let mut file = OpenOptions::new()
            .mode(0o600)
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| storage(&path, e))?;
        let scanned = scan(&mut file, &path)?;
        if scanned.torn_bytes > 0 {
            tracing::warn!(
                file = %path.display(),
                bytes = scanned.torn_bytes,
                "dropping a torn final block record (never acknowledged)"
            );
            file.set_len(scanned.valid_len)
                .and_then(|_| file.sync_all())
                .map_err(|e| storage(&path, e))?;
        }
        file.seek(SeekFrom::Start(scanned.valid_len))
            .map_err(|e| storage(&path, e))?;
        Ok((
            Self {
                file,
                path,
                _lock: lock,
            },
            scanned,
        ))
    }

    /// Appends one framed record and makes it durable.
    pub fn append(&mut self, record: &[u8]) -> LedgerResult<()> {
        self.file
            .write_all(record)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| storage(&self.path, e))
    }
}

/// Reads the block file of `dir` without locking or changing it (`verify`).
pub(crate) fn read_blocks(dir: &Path) -> LedgerResult<ScannedBlocks> {
    let path = dir.join(BLOCKS_FILE);
    let mut file = File::open(&path).map_err(|e| storage(&path, e))?;
    scan(&mut file, &path)
}

/// Reads every complete record and checks checksums, numbering, the hash
/// chain, hashes and transactions roots.
fn scan(file: &mut File, path: &Path) -> LedgerResult<ScannedBlocks> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| storage(path, e))?;
    let mut blocks: Vec<BlockRecord> = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let number = blocks.len() as u64;
        let corrupt = |what: String| {
            LedgerError::Storage(format!(
                "block file {} is corrupt at block {number} (byte offset {offset}): {what}",
                path.display()
            ))
        };
        let rest = &bytes[offset..];
        if rest.len() < FRAME_LEN {
            break; // torn frame header
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_PAYLOAD_LEN {
            return Err(corrupt(format!("record length {len} is implausible")));
        }
        if rest.len() < FRAME_LEN + len {
            break; // torn payload
        }
        let payload = &rest[FRAME_LEN..FRAME_LEN + len];
        if checksum(payload) != rest[4..FRAME_LEN] {
            return Err(corrupt("checksum mismatch".into()));
        }
        let block = BlockRecord::decode_payload(payload).map_err(corrupt)?;
        if block.header.number != number {
            return Err(corrupt(format!(
                "record holds block number {}",
                block.header.number
            )));
        }
        let parent = blocks.last().map(|b| b.hash).unwrap_or_default();
        if block.header.parent_hash != parent {
            return Err(corrupt(format!(
                "parent hash {} does not match block {}'s hash {parent}",
                block.header.parent_hash,
                number.saturating_sub(1)
            )));
        }
        blocks.push(block);
        offset += FRAME_LEN + len;
    }
    Ok(ScannedBlocks {
        blocks,
        valid_len: offset as u64,
        torn_bytes: (bytes.len() - offset) as u64,
    })
}

fn storage(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Storage(format!("{}: {e}", path.display()))
}
