//! Keys as files: one unencrypted PKCS#8 PEM file per key, `<name>.pem`.
//!
//! The protection is the file system's: the directory is 0700, every key
//! file 0600 and written atomically (see [`crate::secret_file`]). A key
//! file that group or others can read is refused rather than used, because
//! it has to be assumed copied; a directory that they can write is refused
//! because they could swap a key for their own. The files are the format
//! `openssl genpkey` writes, so keys can be made or inspected with OpenSSL.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::secret_file::{create_private_dir, read_secret, write_new};
use crate::software::SoftwareKey;
use crate::{validate_key_name, KeyHandle, KeyInfo, KeyKind, KeyStore, KeyStoreError, Result};

const KEY_FILE_EXTENSION: &str = "pem";

/// A directory of PKCS#8 PEM key files.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    /// The key directory `dir`. It need not exist yet: the first
    /// [`KeyStore::generate`] creates it (mode 0700, with parents), so a
    /// mistyped path is not silently created by merely opening a key.
    /// Refuses an existing directory that group or others may write to.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let store = FileKeyStore { dir: dir.into() };
        match fs::metadata(&store.dir) {
            Ok(_) => store.check_dir()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(KeyStoreError::io(&store.dir, e)),
        }
        Ok(store)
    }

    fn check_dir(&self) -> Result<()> {
        let meta = fs::metadata(&self.dir).map_err(|e| KeyStoreError::io(&self.dir, e))?;
        if !meta.is_dir() {
            return Err(KeyStoreError::io(
                &self.dir,
                io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
            ));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(KeyStoreError::InsecureDirectory {
                path: self.dir.clone(),
                mode,
            });
        }
        Ok(())
    }

    /// The key directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) the key `name`.
    pub fn key_path(&self, name: &str) -> Result<PathBuf> {
        validate_key_name(name)?;
        Ok(self.dir.join(format!("{name}.{KEY_FILE_EXTENSION}")))
    }

    fn read_key(&self, name: &str) -> Result<SoftwareKey> {
        let path = self.key_path(name)?;
        let pem = read_secret(&path)?.ok_or_else(|| KeyStoreError::KeyNotFound {
            name: name.to_owned(),
            store: self.describe(),
        })?;
        SoftwareKey::from_pkcs8_pem(name, &pem)
    }
}

impl KeyStore for FileKeyStore {
    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }

    fn generate(&self, name: &str, kind: KeyKind) -> Result<KeyHandle> {
        let path = self.key_path(name)?;
        if path.exists() {
            // Checked first so RSA generation is not wasted; the no-clobber
            // write below is what actually guarantees it.
            return Err(KeyStoreError::KeyExists {
                name: name.to_owned(),
                store: self.describe(),
            });
        }
        create_private_dir(&self.dir)?;
        self.check_dir()?;
        let key = SoftwareKey::generate(kind)?;
        let pem = key.to_pkcs8_pem()?;
        if !write_new(&path, pem.as_bytes())? {
            return Err(KeyStoreError::KeyExists {
                name: name.to_owned(),
                store: self.describe(),
            });
        }
        Ok(key.into_handle())
    }

    fn open(&self, name: &str) -> Result<KeyHandle> {
        Ok(self.read_key(name)?.into_handle())
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeyStoreError::io(&self.dir, e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| KeyStoreError::io(&self.dir, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name
                .to_str()
                .and_then(|f| f.strip_suffix(&format!(".{KEY_FILE_EXTENSION}")))
            else {
                continue;
            };
            // Temporary files start with a dot and are not valid names.
            if validate_key_name(name).is_err() {
                continue;
            }
            let kind = self.read_key(name)?.kind();
            keys.push(KeyInfo {
                name: name.to_owned(),
                kind,
            });
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn store() -> (tempfile::TempDir, FileKeyStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileKeyStore::open(tmp.path().join("keys")).unwrap();
        (tmp, store)
    }

    #[test]
    fn directory_is_created_0700_by_the_first_key_not_by_opening() {
        let (_tmp, store) = store();
        assert!(!store.dir().exists());
        assert!(matches!(
            store.open("k"),
            Err(KeyStoreError::KeyNotFound { .. })
        ));
        assert_eq!(store.list().unwrap(), []);
        assert!(!store.dir().exists(), "opening created the directory");
        store.generate("k", KeyKind::X25519).unwrap();
        assert_eq!(mode_of(store.dir()), 0o700);
    }

    #[test]
    fn directory_writable_by_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = FileKeyStore::open(tmp.path()).unwrap_err();
        assert!(
            matches!(err, KeyStoreError::InsecureDirectory { mode: 0o777, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 700"), "{err}");
    }

    #[test]
    fn generated_keys_are_0600_pem_files_that_reopen_to_the_same_key() {
        let (_tmp, store) = store();
        for (name, kind) in [
            ("ed", KeyKind::Ed25519),
            ("x", KeyKind::X25519),
            ("rsa", KeyKind::Rsa2048),
        ] {
            let generated = store.generate(name, kind).unwrap();
            assert_eq!(generated.kind(), kind);
            let path = store.key_path(name).unwrap();
            assert_eq!(mode_of(&path), 0o600, "{name}");
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
            let reopened = store.open(name).unwrap();
            assert_eq!(public_bytes(&generated), public_bytes(&reopened), "{name}");
        }
    }

    fn public_bytes(key: &KeyHandle) -> Vec<u8> {
        match key {
            KeyHandle::Ed25519(k) => k.public().to_vec(),
            KeyHandle::X25519(k) => k.public().to_vec(),
            KeyHandle::Rsa(k) => k.public_key_der(),
        }
    }

    #[test]
    fn world_readable_key_file_is_refused_naming_the_file_and_the_fix() {
        let (_tmp, store) = store();
        store.generate("device-1", KeyKind::Ed25519).unwrap();
        let path = store.key_path("device-1").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.open("device-1").unwrap_err();
        assert!(matches!(
            err,
            KeyStoreError::InsecurePermissions { mode: 0o644, .. }
        ));
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
        assert!(store.list().is_err(), "list must not skip an exposed key");
    }

    #[test]
    fn generate_never_replaces_an_existing_key() {
        let (_tmp, store) = store();
        let first = store.generate("k", KeyKind::Ed25519).unwrap();
        let err = store.generate("k", KeyKind::X25519).unwrap_err();
        assert!(matches!(err, KeyStoreError::KeyExists { .. }), "{err}");
        assert_eq!(
            public_bytes(&store.open("k").unwrap()),
            public_bytes(&first)
        );
    }

    #[test]
    fn concurrent_generation_of_one_name_has_exactly_one_winner_and_no_leftovers() {
        let (_tmp, store) = store();
        let store = Arc::new(store);
        let barrier = Arc::new(Barrier::new(8));
        let winners: Vec<_> = (0..8)
            .map(|_| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    store.generate("race", KeyKind::Ed25519).ok()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(winners.len(), 1);
        assert_eq!(
            public_bytes(&store.open("race").unwrap()),
            public_bytes(&winners[0])
        );
        let files: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, ["race.pem"], "temporary files left behind");
    }

    #[test]
    fn opening_with_the_wrong_kind_names_both_kinds() {
        let (_tmp, store) = store();
        store.generate("signer", KeyKind::Ed25519).unwrap();
        let err = store.open_x25519("signer").unwrap_err();
        assert!(
            matches!(
                err,
                KeyStoreError::WrongKind {
                    expected: KeyKind::X25519,
                    actual: KeyKind::Ed25519,
                    ..
                }
            ),
            "{err}"
        );
        store.open_ed25519("signer").unwrap();
    }

    #[test]
    fn invalid_names_are_refused_before_touching_the_disk() {
        let (_tmp, store) = store();
        for bad in ["../escape", ".hidden", "a/b", ""] {
            let err = store.generate(bad, KeyKind::Ed25519).unwrap_err();
            assert!(
                matches!(err, KeyStoreError::InvalidName { .. }),
                "{bad:?}: {err}"
            );
            assert!(matches!(
                store.open(bad),
                Err(KeyStoreError::InvalidName { .. })
            ));
        }
        assert!(!store.dir().exists(), "a refused name touched the disk");
    }

    #[test]
    fn missing_key_is_not_found_naming_the_directory() {
        let (_tmp, store) = store();
        let err = store.open("nope").unwrap_err();
        assert!(matches!(err, KeyStoreError::KeyNotFound { .. }));
        assert!(
            err.to_string().contains(&store.dir().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn list_is_sorted_and_ignores_other_files() {
        let (_tmp, store) = store();
        store.generate("b", KeyKind::X25519).unwrap();
        store.generate("a", KeyKind::Ed25519).unwrap();
        fs::write(store.dir().join("README"), "not a key").unwrap();
        fs::write(store.dir().join(".keystore-abc.tmp"), "partial").unwrap();
        assert_eq!(
            store.list().unwrap(),
            [
                KeyInfo {
                    name: "a".into(),
                    kind: KeyKind::Ed25519
                },
                KeyInfo {
                    name: "b".into(),
                    kind: KeyKind::X25519
                },
            ]
        );
    }

    #[test]
    fn file_keys_sign_like_the_software_keys_they_are() {
        let (_tmp, store) = store();
        let key = store.generate("s", KeyKind::Ed25519).unwrap();
        let KeyHandle::Ed25519(key) = key else {
            panic!("not Ed25519")
        };
        let sig = key.sign(b"hello").unwrap();
        let public = ed25519_dalek::VerifyingKey::from_bytes(&key.public()).unwrap();
        public
            .verify_strict(b"hello", &ed25519_dalek::Signature::from_bytes(&sig))
            .unwrap();
    }

    #[test]
    fn garbage_key_file_is_malformed_not_a_panic() {
        let (_tmp, store) = store();
        create_private_dir(store.dir()).unwrap();
        let path = store.key_path("junk").unwrap();
        write_new(
            &path,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = store.open("junk").unwrap_err();
        assert!(matches!(err, KeyStoreError::MalformedKey { .. }), "{err}");
    }
}
