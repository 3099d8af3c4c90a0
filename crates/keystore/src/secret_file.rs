//! Reading and writing files that hold secrets: private keys, PINs, and —
//! through [`write_new`] and [`write_replace`] — every other secret file
//! ledgermq writes (account keys, provisioning bundles, broker-node key
//! files, password files, packet-counter state). It lives here, in the
//! crate with the lightest dependencies that every writer can use (the
//! ledger, agent and cli crates all depend on this one; `security` depends
//! on it too, so the writer could not live there without a cycle).
//!
//! Reading checks the mode of the *opened* file (fstat, not a second path
//! lookup) and refuses anything group or others could access: a key that
//! has been readable by others must be treated as leaked, and saying so
//! loudly beats using it. Writing goes through a 0600 temporary file in the
//! same directory, fsync, then a no-clobber link into place and an fsync of
//! the directory, so a crash leaves either no key or the whole key.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::{KeyStoreError, Result};

/// Largest secret file we read: a PEM RSA-4096 key is about 3.3 KiB.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a secret file, refusing it unless only its owner can access it.
/// `Ok(None)` when the file does not exist.
pub(crate) fn read_secret(path: &Path) -> Result<Option<Zeroizing<String>>> {
    // O_NOFOLLOW: a symlinked path is refused rather than followed to a
    // file the permission check below did not mean to vouch for.
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(KeyStoreError::io(path, e)),
    };
    let meta = file.metadata().map_err(|e| KeyStoreError::io(path, e))?;
    if !meta.is_file() {
        return Err(KeyStoreError::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyStoreError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(KeyStoreError::io(
            path,
            io::Error::new(io::ErrorKind::InvalidData, "file too large for a secret"),
        ));
    }
    let mut text = Zeroizing::new(String::with_capacity(meta.len() as usize));
    (&mut file)
        .take(MAX_SECRET_FILE)
        .read_to_string(&mut text)
        .map_err(|e| KeyStoreError::io(path, e))?;
    Ok(Some(text))
}

/// A file-system failure while writing a secret, with the path it
/// happened on (the file, its temporary sibling or its directory).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct SecretFileError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl SecretFileError {
    fn new(path: &Path, source: io::Error) -> Self {
        Self {
            path: path.to_owned(),
            source,
        }
    }
}

impl From<SecretFileError> for KeyStoreError {
    fn from(e: SecretFileError) -> Self {
        KeyStoreError::io(e.path, e.source)
    }
}

impl From<SecretFileError> for io::Error {
    fn from(e: SecretFileError) -> Self {
        io::Error::new(e.source.kind(), e.to_string())
    }
}

/// Writes `contents` to `path` with mode 0600, atomically, never replacing
/// an existing file: `Ok(false)` if `path` already exists. Missing parent
/// directories are created with mode 0700.
pub fn write_new(path: &Path, contents: &[u8]) -> Result<bool, SecretFileError> {
    let tmp = write_temp(path, contents)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(SecretFileError::new(path, e.error)),
    }
    sync_dir(parent_of(path))?;
    Ok(true)
}

/// Writes `contents` to `path` with mode 0600, atomically replacing what
/// was there: a reader (or the next run after a crash) sees the old file or
/// the new one, never a mix, and the new one is 0600 whatever the old
/// one's mode was. Missing parent directories are created with mode 0700.
pub fn write_replace(path: &Path, contents: &[u8]) -> Result<(), SecretFileError> {
    let tmp = write_temp(path, contents)?;
    tmp.persist(path)
        .map_err(|e| SecretFileError::new(path, e.error))?;
    sync_dir(parent_of(path))
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist; an
/// existing directory keeps its mode.
pub fn create_private_dir(dir: &Path) -> Result<(), SecretFileError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| SecretFileError::new(dir, e))
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `contents` in a 0600 temporary file beside `path`, named unpredictably
/// (`.NAME.XXXXXX.tmp`), synced; removed again if it is dropped unpersisted.
fn write_temp(path: &Path, contents: &[u8]) -> Result<tempfile::NamedTempFile, SecretFileError> {
    let dir = parent_of(path);
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secret".into());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| SecretFileError::new(dir, e))?;
    let tmp_path = tmp.path().to_owned();
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| SecretFileError::new(&tmp_path, e))?;
    Ok(tmp)
}

fn sync_dir(dir: &Path) -> Result<(), SecretFileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SecretFileError::new(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_written_0600_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        assert!(write_new(&path, b"first").unwrap());
        assert!(!write_new(&path, b"second").unwrap());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_secret(&path).unwrap().unwrap().as_str(), "first");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind");
    }

    #[test]
    fn replaced_secret_is_0600_whatever_the_old_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwords");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_replace(&path, b"new").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["passwords"], "temporary files left behind");
    }

    #[test]
    fn missing_parent_directories_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/secret");
        assert!(write_new(&path, b"x").unwrap());
        for d in ["a", "a/b"] {
            let mode = fs::metadata(dir.path().join(d))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o700, "{d}");
        }
    }

    #[test]
    fn symlinked_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        write_new(&target, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(read_secret(&link), Err(KeyStoreError::Io { .. })));
    }

    #[test]
    fn group_readable_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        write_new(&path, b"1234").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_secret(&path).unwrap_err();
        assert!(matches!(
            err,
            KeyStoreError::InsecurePermissions { mode: 0o640, .. }
        ));
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
