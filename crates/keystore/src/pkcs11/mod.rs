//! Keys inside a PKCS#11 token: a hardware security module, a smart card,
//! or SoftHSM2 for tests and development.
//!
//! Keys are generated *in* the token as sensitive, non-extractable objects;
//! the process only ever holds object handles. What a token can do depends
//! on the token: SoftHSM 2.6 signs with Ed25519 (`CKM_EDDSA`) and RSA, and
//! makes X25519 keys only through its `CKM_EC_EDWARDS_KEY_PAIR_GEN` quirk
//! (see `docs/keystore.md`). A missing mechanism is reported as
//! [`KeyStoreError::MechanismUnsupported`], naming it.

mod handles;
mod keys;
mod token;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::secret_file::read_secret;
use crate::{validate_key_name, KeyHandle, KeyInfo, KeyKind, KeyStore, KeyStoreError, Result};
use token::{pkcs11_error, Token};

/// Environment variable naming the PKCS#11 module to use when none is given.
pub const PKCS11_MODULE_ENV: &str = "LEDGERMQ_PKCS11_MODULE";

/// A token's user PIN. Never printed (`Debug` shows `Pin(<redacted>)`) and
/// zeroised on drop.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    pub fn new(pin: impl Into<String>) -> Self {
        Pin(Zeroizing::new(pin.into()))
    }

    /// Reads the PIN from a file that only its owner can access (mode 0600
    /// or stricter); one trailing newline is ignored.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = match read_secret(path) {
            Ok(Some(text)) => text,
            Ok(None) => {
                return Err(KeyStoreError::PinUnavailable(format!(
                    "{} does not exist",
                    path.display()
                )))
            }
            Err(e @ KeyStoreError::InsecurePermissions { .. }) => return Err(e),
            Err(e) => return Err(KeyStoreError::PinUnavailable(e.to_string())),
        };
        let pin = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        if pin.is_empty() {
            return Err(KeyStoreError::PinUnavailable(format!(
                "{} is empty",
                path.display()
            )));
        }
        Ok(Pin::new(pin))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// Where a [`Pkcs11KeyStore`] finds its token.
#[derive(Debug, Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label (`softhsm2-util --init-token --label …`).
    pub token_label: String,
    /// The user PIN.
    pub pin: Pin,
}

/// Named keys in a PKCS#11 token, used through a logged-in user session.
///
/// Cheap to clone; handles keep the token open after the store is dropped.
/// All stores and handles of one process share one initialised module, and
/// PKCS#11 log-in is per process and token: a second store opened on a
/// token this process is already logged in to does not re-check its PIN.
#[derive(Debug, Clone)]
pub struct Pkcs11KeyStore {
    token: Arc<Token>,
}

impl Pkcs11KeyStore {
    /// Loads the module, finds the token labelled `config.token_label` and
    /// logs in as the user.
    pub fn open(config: &Pkcs11Config) -> Result<Self> {
        let token = Token::open(&config.module, &config.token_label, &config.pin)?;
        Ok(Pkcs11KeyStore {
            token: Arc::new(token),
        })
    }

    pub fn token_label(&self) -> &str {
        self.token.label()
    }
}

impl KeyStore for Pkcs11KeyStore {
    fn describe(&self) -> String {
        self.token.describe()
    }

    fn generate(&self, name: &str, kind: KeyKind) -> Result<KeyHandle> {
        validate_key_name(name)?;
        keys::generate(&self.token, name, kind)
    }

    fn open(&self, name: &str) -> Result<KeyHandle> {
        validate_key_name(name)?;
        keys::open(&self.token, name)
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        let mut found = self
            .token
            .with_session(|session| {
                let objects = session.find_objects(&[cryptoki::object::Attribute::Class(
                    cryptoki::object::ObjectClass::PRIVATE_KEY,
                )])?;
                let mut found = Vec::new();
                for object in objects {
                    let label = session
                        .get_attributes(object, &[cryptoki::object::AttributeType::Label])?
                        .into_iter()
                        .find_map(|a| match a {
                            cryptoki::object::Attribute::Label(l) => String::from_utf8(l).ok(),
                            _ => None,
                        });
                    let Some(name) = label.filter(|l| validate_key_name(l).is_ok()) else {
                        continue;
                    };
                    if let Some(kind) = keys::classify(session, object)? {
                        found.push(KeyInfo { name, kind });
                    }
                }
                Ok(found)
            })
            .map_err(|e| pkcs11_error("C_FindObjects", e))?;
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.dedup();
        Ok(found)
    }
}

/// The SoftHSM2 module: `$LEDGERMQ_PKCS11_MODULE` if set, else the first of
/// the usual install locations that exists.
pub fn find_softhsm_module() -> Option<PathBuf> {
    if let Some(module) = std::env::var_os(PKCS11_MODULE_ENV).filter(|m| !m.is_empty()) {
        return Some(PathBuf::from(module));
    }
    let mut candidates = vec![PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")];
    // Debian and Ubuntu: /usr/lib/<multiarch triplet>/softhsm/.
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        let mut multiarch: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("softhsm/libsofthsm2.so"))
            .collect();
        multiarch.sort();
        candidates.extend(multiarch);
    }
    candidates.extend(
        [
            "/usr/lib64/softhsm/libsofthsm2.so",
            "/usr/lib64/pkcs11/libsofthsm2.so",
            "/usr/local/lib/softhsm/libsofthsm2.so",
        ]
        .map(PathBuf::from),
    );
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn pin_is_never_printed() {
        let config = Pkcs11Config {
            module: "/m.so".into(),
            token_label: "t".into(),
            pin: Pin::new("123456"),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("123456"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn pin_file_must_be_private_and_its_newline_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        crate::secret_file::write_new(&path, b"4321\n").unwrap();
        assert_eq!(Pin::from_file(&path).unwrap().expose(), "4321");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Pin::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn missing_or_empty_pin_file_is_pin_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        assert!(matches!(
            Pin::from_file(&path),
            Err(KeyStoreError::PinUnavailable(_))
        ));
        crate::secret_file::write_new(&path, b"\n").unwrap();
        assert!(matches!(
            Pin::from_file(&path),
            Err(KeyStoreError::PinUnavailable(_))
        ));
    }
}
