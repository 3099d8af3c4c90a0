//! One logged-in PKCS#11 token, shared by a store and every handle it made.
//!
//! Three PKCS#11 rules shape this file:
//! - `C_Initialize` is once per process and module, and `cryptoki` never
//!   finalizes; so each module is loaded and initialised once, in a
//!   process-wide registry, and shared by every store that names it.
//! - Log-in state belongs to the application and token, not to a session:
//!   it lasts while any session to the token is open. [`Token`] keeps one
//!   *anchor* session open for its lifetime so the log-in does not vanish
//!   when the pool happens to be empty.
//! - A session must not be used by two threads at once (`cryptoki`'s
//!   `Session` is `Send` but not `Sync`). Operations borrow a session from a
//!   small idle pool, or open a new one, and give it back afterwards; a
//!   session whose operation failed is closed instead, so no half-finished
//!   operation state is ever reused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::Pin;
use crate::{KeyStoreError, Result};

/// Sessions kept open for reuse; more may be open while busy.
const MAX_IDLE_SESSIONS: usize = 8;

/// Loaded and initialised modules, by canonical path.
static MODULES: Mutex<BTreeMap<PathBuf, Pkcs11>> = Mutex::new(BTreeMap::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data (a map, a list of sessions) stays consistent even
    // if a holder panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process-wide context for `module`, loading and initialising it once.
fn module_context(module: &Path) -> Result<Pkcs11> {
    let unavailable = |reason: String| KeyStoreError::ModuleUnavailable {
        path: module.to_owned(),
        reason,
    };
    let canonical = module
        .canonicalize()
        .map_err(|e| unavailable(e.to_string()))?;
    let mut modules = lock(&MODULES);
    if let Some(ctx) = modules.get(&canonical) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&canonical).map_err(|e| unavailable(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Someone else in this process initialised it: share, do not fail.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(unavailable(format!(
                "{} (for SoftHSM2: is SOFTHSM2_CONF set to a readable configuration?)",
                describe_error(&e)
            )))
        }
    }
    modules.insert(canonical, ctx.clone());
    Ok(ctx)
}

/// A token, found by label and logged in as the user.
pub(crate) struct Token {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    idle: Mutex<Vec<Session>>,
    /// Keeps the log-in alive; never used for operations.
    _anchor: Mutex<Session>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.label)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl Token {
    pub(crate) fn open(module: &Path, label: &str, pin: &Pin) -> Result<Self> {
        let ctx = module_context(module)?;
        let slot = find_token(&ctx, label)?;
        let anchor = ctx
            .open_rw_session(slot)
            .map_err(|e| pkcs11_error("C_OpenSession", e))?;
        let auth = AuthPin::new(pin.expose().into());
        match anchor.login(UserType::User, Some(&auth)) {
            // Another store of this process already logged in to the token
            // (log-in is per application, not per session).
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                return Err(KeyStoreError::PinIncorrect)
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => return Err(KeyStoreError::PinLocked),
            Err(e) => return Err(pkcs11_error("C_Login", e)),
        }
        Ok(Token {
            ctx,
            slot,
            label: label.to_owned(),
            idle: Mutex::new(Vec::new()),
            _anchor: Mutex::new(anchor),
        })
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn describe(&self) -> String {
        format!("token '{}'", self.label)
    }

    pub(crate) fn supports(&self, mechanism: MechanismType) -> Result<bool> {
        let mechanisms = self
            .ctx
            .get_mechanism_list(self.slot)
            .map_err(|e| pkcs11_error("C_GetMechanismList", e))?;
        Ok(mechanisms.contains(&mechanism))
    }

    /// Runs `op` on a session of its own. The session goes back to the pool
    /// if `op` succeeded and is closed if it failed.
    pub(crate) fn with_session<R>(
        &self,
        op: impl FnOnce(&Session) -> cryptoki::error::Result<R>,
    ) -> cryptoki::error::Result<R> {
        let pooled = lock(&self.idle).pop();
        let session = match pooled {
            Some(session) => session,
            None => self.ctx.open_rw_session(self.slot)?,
        };
        let result = op(&session);
        if result.is_ok() {
            let mut idle = lock(&self.idle);
            if idle.len() < MAX_IDLE_SESSIONS {
                idle.push(session);
            }
        }
        result
    }
}

fn find_token(ctx: &Pkcs11, label: &str) -> Result<Slot> {
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(|e| pkcs11_error("C_GetSlotList", e))?;
    let mut found = Vec::new();
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| pkcs11_error("C_GetTokenInfo", e))?;
        if info.label().trim_end() == label {
            found.push(slot);
        }
    }
    match found.as_slice() {
        [] => Err(KeyStoreError::TokenNotFound(label.to_owned())),
        [slot] => Ok(*slot),
        more => Err(KeyStoreError::Pkcs11 {
            operation: "token lookup",
            detail: format!(
                "{} tokens are labelled '{label}'; token labels must be unique",
                more.len()
            ),
        }),
    }
}

/// The `CKR_…` name of a PKCS#11 return value (`RvError::PinIncorrect` →
/// `CKR_PIN_INCORRECT`); cryptoki's own `Display` is a paragraph of prose.
pub(crate) fn ckr_name(rv: &RvError) -> String {
    let camel = format!("{rv:?}");
    let mut name = String::from("CKR_");
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

pub(crate) fn describe_error(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{} returned {}", c_name(*function), ckr_name(rv)),
        other => other.to_string(),
    }
}

fn c_name(function: Function) -> String {
    format!("C_{function:?}")
}

/// Maps a cryptoki error to ours, keeping the PKCS#11 function and code.
pub(crate) fn pkcs11_error(operation: &'static str, e: CkError) -> KeyStoreError {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => KeyStoreError::PinIncorrect,
        CkError::Pkcs11(RvError::PinLocked, _) => KeyStoreError::PinLocked,
        e => KeyStoreError::Pkcs11 {
            operation,
            detail: describe_error(&e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_values_are_named_like_the_specification() {
        assert_eq!(ckr_name(&RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(&RvError::EncryptedDataInvalid),
            "CKR_ENCRYPTED_DATA_INVALID"
        );
        let e = CkError::Pkcs11(RvError::MechanismInvalid, Function::Sign);
        assert_eq!(describe_error(&e), "C_Sign returned CKR_MECHANISM_INVALID");
    }

    #[test]
    fn missing_module_is_reported_with_its_path() {
        let err = Token::open(
            Path::new("/nonexistent/libpkcs11.so"),
            "t",
            &Pin::new("1234"),
        )
        .unwrap_err();
        assert!(
            matches!(err, KeyStoreError::ModuleUnavailable { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("/nonexistent/libpkcs11.so"),
            "{err}"
        );
    }
}
