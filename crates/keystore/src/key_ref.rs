//! Key references: one command-line string that says where a key is.
//!
//! ```text
//! file:DIR#NAME
//! pkcs11:token=LABEL;pin-file=PATH;key=NAME[;module=PATH]
//! pkcs11:token=LABEL;pin=VALUE;key=NAME[;module=PATH]
//! ```
//!
//! The `pkcs11:` form borrows RFC 7512's look (`;`-separated attributes,
//! `%XX` escapes in values) but not its attribute names. Without `module=`
//! the module is `$LEDGERMQ_PKCS11_MODULE` or an installed SoftHSM2.
//! `pin=` puts the PIN in the process list and shell history: it is for
//! tests; use `pin-file=`. Nothing here prints a PIN: `Display` redacts it
//! and parse errors never quote the input.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::{
    find_softhsm_module, validate_key_name, FileKeyStore, KeyHandle, KeyKind, KeyStore,
    KeyStoreError, Pin, Pkcs11Config, Pkcs11KeyStore, Result, PKCS11_MODULE_ENV,
};

/// A parsed key reference: a store and a key name in it.
#[derive(Debug, Clone)]
pub struct KeyRef {
    store: StoreRef,
    name: String,
}

/// The store part of a [`KeyRef`].
#[derive(Debug, Clone)]
pub enum StoreRef {
    /// A [`FileKeyStore`] directory.
    File(PathBuf),
    /// A token of a PKCS#11 module; `module: None` means "find it"
    /// (see [`find_softhsm_module`]).
    Pkcs11 {
        module: Option<PathBuf>,
        token_label: String,
        pin: PinSource,
    },
}

/// Where a PKCS#11 PIN comes from. The file is read when the store opens.
#[derive(Debug, Clone)]
pub enum PinSource {
    File(PathBuf),
    Value(Pin),
}

impl KeyRef {
    /// Parses `file:DIR#NAME` or
    /// `pkcs11:token=LABEL;pin-file=PATH;key=NAME[;module=PATH]`.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(rest) = text.strip_prefix("file:") {
            parse_file(rest)
        } else if let Some(rest) = text.strip_prefix("pkcs11:") {
            parse_pkcs11(rest)
        } else {
            Err(invalid(
                "expected 'file:DIR#NAME' or 'pkcs11:token=LABEL;pin-file=PATH;key=NAME'",
            ))
        }
    }

    /// The key's name in its store.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn store(&self) -> &StoreRef {
        &self.store
    }

    /// Opens the store (for a token: loads the module and logs in).
    pub fn open_store(&self) -> Result<Arc<dyn KeyStore>> {
        Ok(match &self.store {
            StoreRef::File(dir) => Arc::new(FileKeyStore::open(dir.clone())?),
            StoreRef::Pkcs11 {
                module,
                token_label,
                pin,
            } => {
                let module = match module {
                    Some(m) => m.clone(),
                    None => find_softhsm_module().ok_or_else(|| {
                        KeyStoreError::InvalidKeyRef(format!(
                            "no module= given, {PKCS11_MODULE_ENV} is not set and SoftHSM2 is not installed"
                        ))
                    })?,
                };
                let pin = match pin {
                    PinSource::Value(pin) => pin.clone(),
                    PinSource::File(path) => Pin::from_file(path)?,
                };
                Arc::new(Pkcs11KeyStore::open(&Pkcs11Config {
                    module,
                    token_label: token_label.clone(),
                    pin,
                })?)
            }
        })
    }

    /// Opens the referenced key.
    pub fn open(&self) -> Result<KeyHandle> {
        self.open_store()?.open(&self.name)
    }

    /// Generates the referenced key; refuses if it exists.
    pub fn generate(&self, kind: KeyKind) -> Result<KeyHandle> {
        self.open_store()?.generate(&self.name, kind)
    }
}

impl FromStr for KeyRef {
    type Err = KeyStoreError;

    fn from_str(s: &str) -> Result<Self> {
        KeyRef::parse(s)
    }
}

/// The reference in its own syntax, with any PIN value replaced by `***`.
impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.store {
            StoreRef::File(dir) => write!(f, "file:{}#{}", dir.display(), self.name),
            StoreRef::Pkcs11 {
                module,
                token_label,
                pin,
            } => {
                write!(f, "pkcs11:token={}", escape(token_label))?;
                match pin {
                    PinSource::File(path) => {
                        write!(f, ";pin-file={}", escape(&path.to_string_lossy()))?
                    }
                    PinSource::Value(_) => f.write_str(";pin=***")?,
                }
                write!(f, ";key={}", self.name)?;
                if let Some(module) = module {
                    write!(f, ";module={}", escape(&module.to_string_lossy()))?;
                }
                Ok(())
            }
        }
    }
}

fn invalid(reason: impl Into<String>) -> KeyStoreError {
    KeyStoreError::InvalidKeyRef(reason.into())
}

fn checked_name(name: &str) -> Result<String> {
    validate_key_name(name).map_err(|e| invalid(e.to_string()))?;
    Ok(name.to_owned())
}

fn parse_file(rest: &str) -> Result<KeyRef> {
    // Key names cannot contain '#', so the last one separates.
    let (dir, name) = rest
        .rsplit_once('#')
        .ok_or_else(|| invalid("a file: reference is 'file:DIR#NAME'; the '#NAME' is missing"))?;
    if dir.is_empty() {
        return Err(invalid("a file: reference needs a directory before '#'"));
    }
    Ok(KeyRef {
        store: StoreRef::File(PathBuf::from(dir)),
        name: checked_name(name)?,
    })
}

fn parse_pkcs11(rest: &str) -> Result<KeyRef> {
    let (mut module, mut token, mut pin_file, mut pin, mut key) = (None, None, None, None, None);
    for attribute in rest.split(';').filter(|a| !a.is_empty()) {
        let (attr, raw) = attribute
            .split_once('=')
            .ok_or_else(|| invalid("pkcs11: attribute without '=' (expected ATTRIBUTE=VALUE)"))?;
        let slot = match attr {
            "module" => &mut module,
            "token" => &mut token,
            "pin-file" => &mut pin_file,
            "pin" => &mut pin,
            "key" => &mut key,
            other => {
                return Err(invalid(format!(
                    "unknown pkcs11: attribute '{}' (known: module, token, pin-file, pin, key)",
                    other.escape_debug()
                )))
            }
        };
        // Decoding errors must not quote a PIN value.
        let value = unescape(raw).map_err(|reason| invalid(format!("{attr}= value: {reason}")))?;
        if value.is_empty() {
            return Err(invalid(format!("pkcs11: attribute {attr}= is empty")));
        }
        if slot.replace(value).is_some() {
            return Err(invalid(format!("pkcs11: attribute {attr}= given twice")));
        }
    }
    let token = token.ok_or_else(|| invalid("pkcs11: reference needs token=LABEL"))?;
    let key = key.ok_or_else(|| invalid("pkcs11: reference needs key=NAME"))?;
    let pin = match (pin_file, pin) {
        (Some(path), None) => PinSource::File(PathBuf::from(path)),
        (None, Some(value)) => PinSource::Value(Pin::new(value)),
        (None, None) => {
            return Err(invalid(
                "pkcs11: reference needs pin-file=PATH (or pin=VALUE)",
            ))
        }
        (Some(_), Some(_)) => return Err(invalid("pkcs11: give pin-file= or pin=, not both")),
    };
    Ok(KeyRef {
        store: StoreRef::Pkcs11 {
            module: module.map(PathBuf::from),
            token_label: token,
            pin,
        },
        name: checked_name(&key)?,
    })
}

/// Decodes `%XX` escapes (so a value can contain `;` as `%3B`).
fn unescape(raw: &str) -> std::result::Result<String, &'static str> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or("'%' must be followed by two hex digits")?;
            let hex =
                std::str::from_utf8(hex).map_err(|_| "'%' must be followed by two hex digits")?;
            out.push(
                u8::from_str_radix(hex, 16)
                    .map_err(|_| "'%' must be followed by two hex digits")?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "escapes do not decode to UTF-8")
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' | ';' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> String {
        KeyRef::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn file_reference_splits_directory_and_name_at_the_last_hash() {
        let r = KeyRef::parse("file:/etc/ledger#mq/keys#broker-1").unwrap();
        assert_eq!(r.name(), "broker-1");
        assert!(
            matches!(r.store(), StoreRef::File(d) if d == &PathBuf::from("/etc/ledger#mq/keys"))
        );
        assert_eq!(r.to_string(), "file:/etc/ledger#mq/keys#broker-1");
    }

    #[test]
    fn file_reference_errors_say_what_is_missing() {
        assert!(parse_err("file:/keys").contains("'#NAME' is missing"));
        assert!(parse_err("file:#k").contains("needs a directory"));
        assert!(parse_err("file:/keys#../k").contains("invalid key name"));
        assert!(parse_err("/keys#k").contains("expected 'file:DIR#NAME'"));
    }

    #[test]
    fn pkcs11_reference_with_pin_file_and_module() {
        let r = KeyRef::parse(
            "pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=ledgermq;pin-file=/run/pin;key=device-1",
        )
        .unwrap();
        assert_eq!(r.name(), "device-1");
        let StoreRef::Pkcs11 {
            module,
            token_label,
            pin,
        } = r.store()
        else {
            panic!("not pkcs11")
        };
        assert_eq!(
            module.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(token_label, "ledgermq");
        assert!(matches!(pin, PinSource::File(p) if p == &PathBuf::from("/run/pin")));
    }

    #[test]
    fn pkcs11_values_may_escape_semicolons() {
        let r = KeyRef::parse("pkcs11:token=a%3Bb;pin=1;key=k").unwrap();
        let StoreRef::Pkcs11 { token_label, .. } = r.store() else {
            panic!("not pkcs11")
        };
        assert_eq!(token_label, "a;b");
        assert_eq!(r.to_string(), "pkcs11:token=a%3Bb;pin=***;key=k");
    }

    #[test]
    fn pin_value_is_never_displayed_or_quoted_in_errors() {
        let r = KeyRef::parse("pkcs11:token=t;pin=s3cret;key=k").unwrap();
        assert!(!r.to_string().contains("s3cret"));
        assert!(!format!("{r:?}").contains("s3cret"));
        let err = parse_err("pkcs11:token=t;pin=s3cr%zzet;key=k");
        assert!(!err.contains("s3cr"), "{err}");
        let err = parse_err("pkcs11:token=t;pin=s3cret;pin=s3cret;key=k");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn pkcs11_reference_errors_name_the_problem() {
        assert!(parse_err("pkcs11:pin=1;key=k").contains("needs token=LABEL"));
        assert!(parse_err("pkcs11:token=t;pin=1").contains("needs key=NAME"));
        assert!(parse_err("pkcs11:token=t;key=k").contains("needs pin-file=PATH"));
        assert!(parse_err("pkcs11:token=t;pin=1;pin-file=/p;key=k").contains("not both"));
        assert!(parse_err("pkcs11:token=t;pin=1;key=k;slot=2")
            .contains("unknown pkcs11: attribute 'slot'"));
        assert!(parse_err("pkcs11:token=t;token=u;pin=1;key=k").contains("given twice"));
        assert!(parse_err("pkcs11:token;pin=1;key=k").contains("without '='"));
        assert!(parse_err("pkcs11:token=;pin=1;key=k").contains("token= is empty"));
        assert!(parse_err("pkcs11:token=t;pin=1;key=a/b").contains("invalid key name"));
    }

    #[test]
    fn file_reference_opens_and_generates() {
        let dir = tempfile::tempdir().unwrap();
        let r: KeyRef = format!("file:{}#dev", dir.path().join("keys").display())
            .parse()
            .unwrap();
        assert!(matches!(r.open(), Err(KeyStoreError::KeyNotFound { .. })));
        let generated = r.generate(KeyKind::Ed25519).unwrap();
        let opened = r.open().unwrap();
        let (KeyHandle::Ed25519(a), KeyHandle::Ed25519(b)) = (generated, opened) else {
            panic!("not Ed25519")
        };
        assert_eq!(a.public(), b.public());
    }
}
