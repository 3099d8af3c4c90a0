//! Plain (non-ledger) security: a password file of argon2 hashes and a
//! mosquitto-style topic ACL file.
//!
//! The plain implementations of the [`Authenticator`] and [`Authorizer`]
//! traits; ledger-backed ones (crate `ledgermq-access`) plug in behind the
//! same traits.

use std::collections::HashMap;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use ledgermq_proto::{topic, ReasonCode};

use super::{
    Authenticated, Authenticator, Authorizer, ClientIdentity, DeliveryCheck, LoginAttempt, Refusal,
};

#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
}

/// `username:$argon2id$…` lines.
pub struct PasswordFile {
    users: HashMap<String, String>,
    allow_anonymous: bool,
    /// A hash of a random password with the default parameters: an unknown
    /// user name is checked against it, so it costs the same time as a
    /// known one and timing does not tell which user names exist.
    decoy: String,
}

impl PasswordFile {
    pub fn load(path: &Path, allow_anonymous: bool) -> Result<PasswordFile, AuthFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
            path: p.clone(),
            source,
        })?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |message: &str| AuthFileError::Syntax {
                path: p.clone(),
                line: n + 1,
                message: message.to_owned(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| syntax("expected user:hash"))?;
            PasswordHash::new(hash).map_err(|_| syntax("not a PHC password hash"))?;
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(PasswordFile {
            users,
            allow_anonymous,
            decoy: decoy_hash(),
        })
    }

    /// Returns `text` with `user`'s line added or replaced.
    pub fn upsert(text: &str, user: &str, password: &str) -> Result<String, String> {
        if user.is_empty() || user.contains(':') {
            return Err("user name must be non-empty and contain no ':'".into());
        }
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| e.to_string())?
            .to_string();
        let mut out: Vec<String> = text
            .lines()
            .filter(|l| l.split_once(':').map(|(u, _)| u) != Some(user))
            .map(str::to_owned)
            .collect();
        out.push(format!("{user}:{hash}"));
        Ok(out.join("\n") + "\n")
    }
}

impl PasswordFile {
    fn check(&self, username: Option<&str>, password: Option<&[u8]>) -> Result<(), ReasonCode> {
        let Some(user) = username else {
            return if self.allow_anonymous {
                Ok(())
            } else {
                Err(ReasonCode::NOT_AUTHORIZED)
            };
        };
        let known = self.users.get(user).filter(|_| password.is_some());
        let hash = known.unwrap_or(&self.decoy);
        let parsed = PasswordHash::new(hash).map_err(|_| ReasonCode::BAD_USER_NAME_OR_PASSWORD)?;
        // An unknown user is verified against the decoy, which never matches.
        let verified = verify_reusing_memory(&parsed, password.unwrap_or_default());
        if verified && known.is_some() {
            Ok(())
        } else {
            Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        }
    }
}

thread_local! {
    /// The argon2 working memory of this thread (19 MiB with the default
    /// parameters), kept between verifications. Allocating it afresh each
    /// time, as `PasswordVerifier` does, makes glibc's heap grow to several
    /// hundred MiB under a login flood (its mmap threshold adapts upwards
    /// and freed blocks fragment); verifications run on the authentication
    /// workers, so this is one buffer per worker.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Verifies `password` against a PHC argon2 hash, as
/// `PasswordVerifier::verify_password` does (same parameters, constant-time
/// comparison of the outputs), in this thread's reusable memory, which is
/// wiped afterwards.
fn verify_reusing_memory(hash: &PasswordHash<'_>, password: &[u8]) -> bool {
    use argon2::{Algorithm, Params, Version};
    let (Some(expected), Some(salt)) = (&hash.hash, &hash.salt) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let computed = ARGON2_MEMORY.with(|memory| {
        let mut blocks = memory.borrow_mut();
        if blocks.len() < params.block_count() {
            blocks.resize(params.block_count(), argon2::Block::new());
        }
        let block_count = params.block_count();
        let result = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password,
            salt,
            &mut out,
            &mut blocks[..block_count],
        );
        blocks.iter_mut().for_each(|b| *b = argon2::Block::new());
        result.is_ok()
    });
    // `Output`'s equality is constant-time.
    computed && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == *expected)
}

/// The hash of 32 random bytes nobody knows, with the default parameters.
fn decoy_hash() -> String {
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(&secret, &salt)
        .map(|h| h.to_string())
        // Hashing with the default parameters cannot fail; should it, an
        // unparsable decoy still refuses every unknown user (more quickly).
        .unwrap_or_default()
}

impl Authenticator for PasswordFile {
    fn authenticate(&self, attempt: &LoginAttempt<'_>) -> Result<Authenticated, Refusal> {
        self.check(attempt.username, attempt.password)
            .map(|()| Authenticated::default())
            .map_err(|reason| Refusal::new(reason, "bad user name or password"))
    }
}

/// Anonymous access only (the default) or, with `allow_anonymous = false`
/// and no password file, nobody.
pub struct AllowAnonymous(pub bool);

impl Authenticator for AllowAnonymous {
    fn authenticate(&self, _: &LoginAttempt<'_>) -> Result<Authenticated, Refusal> {
        if self.0 {
            Ok(Authenticated::default())
        } else {
            Err(Refusal::new(
                ReasonCode::NOT_AUTHORIZED,
                "anonymous access is disabled",
            ))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

#[derive(Debug, Clone)]
struct Rule {
    access: Access,
    filter: String,
    /// Contains `%u` / `%c` placeholders.
    pattern: bool,
}

/// Mosquitto-style ACL: `topic [read|write|readwrite|deny] FILTER` rules
/// for everyone (before any `user` line) or for the user named by the last
/// `user NAME` line, and `pattern …` rules with `%u`/`%c` for everyone.
/// A `deny` rule that matches wins over any grant.
pub struct AclFile {
    everyone: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
}

impl AclFile {
    pub fn load(path: &Path) -> Result<AclFile, AuthFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, message)| AuthFileError::Syntax {
            path: p,
            line,
            message,
        })
    }

    pub fn parse(text: &str) -> Result<AclFile, (usize, String)> {
        let mut acl = AclFile {
            everyone: Vec::new(),
            users: HashMap::new(),
        };
        let mut current: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |m: &str| (n + 1, m.to_owned());
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(err("user needs a name"));
                    }
                    current = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let (access, filter) = match rest.split_once(char::is_whitespace) {
                        Some((a @ ("read" | "write" | "readwrite" | "deny"), f)) => (a, f.trim()),
                        _ => ("readwrite", rest),
                    };
                    let access = match access {
                        "read" => Access::Read,
                        "write" => Access::Write,
                        "deny" => Access::Deny,
                        _ => Access::ReadWrite,
                    };
                    let check = filter.replace("%u", "u").replace("%c", "c");
                    if topic::validate_filter(&check).is_err() {
                        return Err(err("invalid topic filter"));
                    }
                    let rule = Rule {
                        access,
                        filter: filter.to_owned(),
                        pattern: keyword == "pattern",
                    };
                    match (&current, keyword) {
                        (Some(u), "topic") => acl.users.entry(u.clone()).or_default().push(rule),
                        _ => acl.everyone.push(rule),
                    }
                }
                _ => return Err(err("expected user, topic or pattern")),
            }
        }
        Ok(acl)
    }

    fn rules<'a>(&'a self, who: &ClientIdentity) -> impl Iterator<Item = &'a Rule> {
        let user_rules = who
            .username
            .as_ref()
            .and_then(|u| self.users.get(u))
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        self.everyone.iter().chain(user_rules.iter())
    }

    /// The rule's filter for this client, or `None` if a placeholder cannot
    /// be substituted safely (a name with `+`, `#` or `/` would widen it).
    fn resolve(rule: &Rule, who: &ClientIdentity) -> Option<String> {
        if !rule.pattern {
            return Some(rule.filter.clone());
        }
        let unsafe_name = |s: &str| s.is_empty() || s.contains(['+', '#', '/']);
        let mut f = rule.filter.clone();
        if f.contains("%u") {
            let u = who.username.as_deref()?;
            if unsafe_name(u) {
                return None;
            }
            f = f.replace("%u", u);
        }
        if f.contains("%c") {
            if unsafe_name(&who.client_id) {
                return None;
            }
            f = f.replace("%c", &who.client_id);
        }
        Some(f)
    }

    fn decide(&self, who: &ClientIdentity, wanted: Access, applies: impl Fn(&str) -> bool) -> bool {
        let mut granted = false;
        for rule in self.rules(who) {
            let Some(filter) = Self::resolve(rule, who) else {
                continue;
            };
            if !applies(&filter) {
                continue;
            }
            match rule.access {
                Access::Deny => return false,
                Access::ReadWrite => granted = true,
                a if a == wanted => granted = true,
                _ => {}
            }
        }
        granted
    }
}

impl Authorizer for AclFile {
    fn can_publish(&self, who: &ClientIdentity, topic_name: &str) -> bool {
        self.decide(who, Access::Write, |f| topic::matches(f, topic_name))
    }

    /// The file is read once, at start-up: answers never change.
    fn rights_epoch(&self) -> Option<u64> {
        Some(0)
    }

    fn can_subscribe(&self, who: &ClientIdentity, filter: &str) -> bool {
        self.decide(who, Access::Read, |rule| topic::covers(rule, filter))
    }

    /// A subscription is granted by a rule covering its whole filter; only
    /// a deny rule that meets the filter can take topics out of it, and
    /// then each delivery is checked.
    fn delivery_check(&self, who: &ClientIdentity, filter: &str) -> DeliveryCheck {
        if !self.can_subscribe(who, filter) {
            return DeliveryCheck::Refused;
        }
        let denied_inside = self.rules(who).any(|rule| {
            rule.access == Access::Deny
                && Self::resolve(rule, who).is_none_or(|f| topic::intersects(&f, filter))
        });
        if denied_inside {
            DeliveryCheck::EachMessage
        } else {
            DeliveryCheck::All
        }
    }

    fn can_receive(&self, who: &ClientIdentity, topic_name: &str) -> bool {
        self.decide(who, Access::Read, |rule| topic::matches(rule, topic_name))
    }
}

/// No ACL: everything is allowed.
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn can_publish(&self, _: &ClientIdentity, _: &str) -> bool {
        true
    }
    fn can_subscribe(&self, _: &ClientIdentity, _: &str) -> bool {
        true
    }
    fn allows_everything(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user: Option<&str>, id: &str) -> ClientIdentity {
        ClientIdentity {
            client_id: id.into(),
            username: user.map(Into::into),
        }
    }

    /// `allow read a/#` + `deny read a/secret`: a subscriber of `a/#` is
    /// allowed, but a message on `a/secret` is not delivered to it.
    #[test]
    fn a_deny_inside_a_granted_filter_is_checked_per_delivery() {
        let acl =
            AclFile::parse("user alice\ntopic read a/#\ntopic deny a/secret\ntopic read b/#\n")
                .unwrap();
        let alice = who(Some("alice"), "c1");
        assert!(acl.can_subscribe(&alice, "a/#"));
        assert_eq!(
            acl.delivery_check(&alice, "a/#"),
            DeliveryCheck::EachMessage
        );
        assert!(acl.can_receive(&alice, "a/public"));
        assert!(!acl.can_receive(&alice, "a/secret"));
        assert_eq!(acl.delivery_check(&alice, "b/+"), DeliveryCheck::All);
        assert_eq!(acl.delivery_check(&alice, "c/#"), DeliveryCheck::Refused);
        assert_eq!(acl.delivery_check(&alice, "a/+/x"), DeliveryCheck::All);
    }

    #[test]
    fn acl_grants_by_user_and_pattern() {
        let acl = AclFile::parse(
            "topic read public/#\npattern readwrite devices/%u/#\nuser alice\ntopic write cmd/+\ntopic deny cmd/secret\n",
        )
        .unwrap();
        let alice = who(Some("alice"), "c1");
        assert!(acl.can_publish(&alice, "cmd/x"));
        assert!(!acl.can_publish(&alice, "cmd/secret"));
        assert!(acl.can_subscribe(&alice, "public/+"));
        assert!(acl.can_subscribe(&alice, "devices/alice/#"));
        assert!(!acl.can_subscribe(&alice, "devices/bob/#"));
        assert!(!acl.can_publish(&who(None, "c"), "cmd/x"));
    }

    #[test]
    fn wildcard_user_names_never_widen_patterns() {
        let acl = AclFile::parse("pattern readwrite devices/%u/#\npattern read c/%c\n").unwrap();
        assert!(!acl.can_subscribe(&who(Some("+"), "x"), "devices/+/#"));
        assert!(!acl.can_subscribe(&who(Some("#"), "x"), "devices/#"));
        assert!(!acl.can_publish(&who(Some("a/b"), "x"), "devices/a/b/c"));
        assert!(!acl.can_subscribe(&who(None, "#"), "c/#"));
    }

    /// The memory-reusing verifier agrees with argon2's own, for other
    /// parameters too.
    #[test]
    fn reusing_memory_verifies_like_argon2() {
        use argon2::password_hash::PasswordVerifier;
        use argon2::{Algorithm, Params, Version};
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 2, 1, None).unwrap(),
        );
        for hasher in [Argon2::default(), small] {
            let phc = hasher.hash_password(b"right", &salt).unwrap().to_string();
            let parsed = PasswordHash::new(&phc).unwrap();
            for (pw, ok) in [(&b"right"[..], true), (b"wrong", false), (b"", false)] {
                assert_eq!(verify_reusing_memory(&parsed, pw), ok);
                assert_eq!(Argon2::default().verify_password(pw, &parsed).is_ok(), ok);
            }
        }
    }

    #[test]
    fn password_file_round_trip() {
        let text = PasswordFile::upsert("", "alice", "s3cret").unwrap();
        let text = PasswordFile::upsert(&text, "bob", "pw").unwrap();
        let text = PasswordFile::upsert(&text, "alice", "new").unwrap();
        let dir = std::env::temp_dir().join(format!("lmq-pw-{}", std::process::id()));
        std::fs::write(&dir, &text).unwrap();
        let pf = PasswordFile::load(&dir, false).unwrap();
        std::fs::remove_file(&dir).ok();
        assert!(pf.check(Some("alice"), Some(b"new")).is_ok());
        assert_eq!(
            pf.check(Some("alice"), Some(b"s3cret")),
            Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        );
        assert!(pf.check(Some("bob"), Some(b"pw")).is_ok());
        assert_eq!(pf.check(None, None), Err(ReasonCode::NOT_AUTHORIZED));
        assert_eq!(
            pf.check(Some("mallory"), Some(b"pw")),
            Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        );
        assert_eq!(
            pf.check(Some("alice"), None),
            Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        );
    }

    /// No user enumeration through timing: an unknown user name runs the
    /// same argon2 verification as a known one with a wrong password.
    #[test]
    fn unknown_users_cost_as_much_as_known_ones() {
        let text = PasswordFile::upsert("", "alice", "s3cret").unwrap();
        let path = std::env::temp_dir().join(format!("lmq-pw-t-{}", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let pf = PasswordFile::load(&path, false).unwrap();
        std::fs::remove_file(&path).ok();
        let time = |user: &str| {
            let start = std::time::Instant::now();
            for _ in 0..3 {
                let _ = pf.check(Some(user), Some(b"wrong"));
            }
            start.elapsed()
        };
        let (known, unknown) = (time("alice"), time("nobody"));
        // Both hash; without the decoy the unknown user took microseconds
        // against milliseconds. A wide margin keeps a noisy machine out.
        assert!(
            unknown * 4 > known,
            "unknown user {unknown:?} vs known user {known:?}"
        );
    }
}
