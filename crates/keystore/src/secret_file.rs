//! Reading and writing files that hold secrets (private keys, PINs).
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
use std::path::Path;

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

/// Writes `contents` to `path` with mode 0600, atomically, never replacing
/// an existing file: `Ok(false)` if `path` already exists.
pub(crate) fn write_secret_new(path: &Path, contents: &[u8]) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".keystore-")
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| KeyStoreError::io(dir, e))?;
    let tmp_path = tmp.path().to_owned();
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| KeyStoreError::io(&tmp_path, e))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(KeyStoreError::io(path, e.error)),
    }
    sync_dir(dir)?;
    Ok(true)
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| KeyStoreError::io(dir, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| KeyStoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_written_0600_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        assert!(write_secret_new(&path, b"first").unwrap());
        assert!(!write_secret_new(&path, b"second").unwrap());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_secret(&path).unwrap().unwrap().as_str(), "first");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files left behind");
    }

    #[test]
    fn symlinked_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        write_secret_new(&target, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(read_secret(&link), Err(KeyStoreError::Io { .. })));
    }

    #[test]
    fn group_readable_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        write_secret_new(&path, b"1234").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_secret(&path).unwrap_err();
        assert!(matches!(
            err,
            KeyStoreError::InsecurePermissions { mode: 0o640, .. }
        ));
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
