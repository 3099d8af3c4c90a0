//! A guard that new contract code gets tests: reads `contracts/*.sol` and
//! fails when a suite file lacks
//!
//! - a call of an external function or public constant (`.snake_case(` via
//!   the typed client, or `NameCall` via the raw bindings),
//! - a string literal matching a `require`/`revert` reason (the parts a
//!   `string.concat` fills in at run time match anything, so
//!   `"unknown device {id}"` and `"unknown device ghost"` both cover
//!   `string.concat("unknown device ", deviceId)`),
//! - a decoded `<Contract>Events::Name(` for an event,
//!
//! and when a check of a suite file is missing from `contract_tests!`.
//! Lexical, so cheap and robust; the checks themselves assert the effects.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// What a Solidity source declares and how it can fail.
#[derive(Debug, Default)]
pub struct ContractSurface {
    /// External/public functions and public state (getters).
    pub functions: BTreeSet<String>,
    /// Revert reasons: literal parts, `None` for a part filled in at run time.
    pub reasons: Vec<Vec<Option<String>>>,
    pub events: BTreeSet<String>,
    pub emitted: BTreeSet<String>,
}

pub fn surface(sol: &str) -> ContractSurface {
    let code = strip_comments(sol, false);
    let mut s = ContractSurface::default();
    for (name, at) in words_followed_by(&code, "function ") {
        // Only what a transaction or a call can reach: a library's internal
        // functions are inlined where they are used and tested there.
        let signature = &code[at..];
        let signature = &signature[..signature.find(['{', ';']).unwrap_or(signature.len())];
        let reachable = signature.contains(" external") || signature.contains(" public");
        if !name.starts_with('_') && reachable {
            s.functions.insert(name);
        }
    }
    for marker in ["public constant ", "public immutable "] {
        for part in code.split(marker).skip(1) {
            let name: String = part
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches(';')
                .to_string();
            s.functions.insert(name);
        }
    }
    s.events = words_followed_by(&code, "event ")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    s.emitted = words_followed_by(&code, "emit ")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for keyword in ["require(", "revert("] {
        let mut from = 0;
        while let Some(at) = code[from..].find(keyword) {
            let start = from + at + keyword.len();
            from = start;
            let preceded = code[..start - keyword.len()]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            if preceded {
                continue;
            }
            let args = split_args(&code[start..]);
            let reason = if keyword == "require(" {
                args.last().and_then(|a| literal(a)).map(|l| vec![Some(l)])
            } else if let Some(inner) = args[0].strip_prefix("string.concat(") {
                let inner = inner.strip_suffix(')').expect("string.concat(...)");
                Some(
                    split_args(&format!("{inner})"))
                        .iter()
                        .map(|a| literal(a))
                        .collect(),
                )
            } else {
                literal(&args[0]).map(|l| vec![Some(l)])
            };
            s.reasons.push(reason.unwrap_or_else(|| {
                panic!(
                    "cannot read the reason of {keyword}{}",
                    &code[start..start + 80]
                )
            }));
        }
    }
    s
}

/// `(name, rest)` for every `<prefix>name(`.
fn words_followed_by(code: &str, prefix: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && rest[name.len()..].starts_with('(') {
            out.push((name, at));
        }
    }
    out
}

/// The top-level comma-separated arguments up to the closing parenthesis.
fn split_args(s: &str) -> Vec<String> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    let (mut args, mut cur) = (Vec::new(), String::new());
    for c in s.chars() {
        if in_str {
            cur.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' => depth += 1,
            ')' if depth == 0 => {
                args.push(cur.trim().to_string());
                return args;
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    panic!("unbalanced parentheses in {s:.80}");
}

/// The text of `arg` when it is exactly one string literal.
fn literal(arg: &str) -> Option<String> {
    let lits = string_literals(arg);
    (lits.len() == 1 && arg.starts_with('"') && arg.ends_with('"')).then(|| lits[0].clone())
}

/// `code` without `//` and `/* */` comments (string contents kept).
fn strip_comments(code: &str, rust: bool) -> String {
    let mut out = String::with_capacity(code.len());
    let mut chars = code.chars().peekable();
    let (mut in_str, mut escaped) = (false, false);
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_str = true;
                out.push(c);
            }
            // A Rust char literal such as '"' must not open a string.
            ('\'', _) if rust => {
                out.push(c);
                let lit: String = chars.clone().take(3).collect();
                if lit.starts_with("\"'") || lit.starts_with("\\\"") {
                    out.push(chars.next().unwrap());
                }
            }
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The (unescaped) contents of every `"..."` in comment-free `code`.
fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut lit = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => lit.push('\n'),
                    Some('t') => lit.push('\t'),
                    Some('0') => lit.push('\0'),
                    Some('u') => {
                        let hex: String =
                            chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                        let code = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                        lit.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    Some(other) => lit.push(other),
                    None => {}
                },
                c => lit.push(c),
            }
        }
        out.push(lit);
    }
    out
}

/// Whether `text` is the reason with its run-time parts filled in.
fn matches(parts: &[Option<String>], text: &str) -> bool {
    match parts.split_first() {
        None => text.is_empty(),
        Some((Some(lit), rest)) => text
            .strip_prefix(lit.as_str())
            .is_some_and(|t| matches(rest, t)),
        Some((None, rest)) => (1..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .any(|i| matches(rest, &text[i..])),
    }
}

fn show(parts: &[Option<String>]) -> String {
    parts.iter().map(|p| p.as_deref().unwrap_or("…")).collect()
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// What the suite file for one contract misses, as readable lines.
pub fn missing(contract: &str, suite_file: &str) -> Vec<String> {
    let sol = read(root().join(format!("contracts/{contract}.sol")));
    let suite = strip_comments(
        &read(root().join(format!("crates/ledger/tests/contracts_suite/{suite_file}"))),
        true,
    );
    let s = surface(&sol);
    let mut gaps = Vec::new();
    if s.emitted != s.events {
        gaps.push(format!(
            "{contract}: declared events {:?} differ from emitted {:?}",
            s.events, s.emitted
        ));
    }
    for f in &s.functions {
        let via_client = format!(".{}(", snake_case(f));
        let via_binding = format!("{f}Call");
        if !suite.contains(&via_client) && !suite.contains(&via_binding) {
            gaps.push(format!(
                "{contract}.{f}: never called (no `{via_client}` nor `{via_binding}`)"
            ));
        }
    }
    let literals = string_literals(&suite);
    for reason in &s.reasons {
        if !literals.iter().any(|l| matches(reason, l)) {
            gaps.push(format!(
                "{contract}: revert reason {:?} never asserted",
                show(reason)
            ));
        }
    }
    for e in &s.events {
        let decoded = format!("{contract}Events::{e}(");
        if !suite.contains(&decoded) {
            gaps.push(format!(
                "{contract}: event {e} never decoded (no `{decoded}`)"
            ));
        }
    }
    let registered = read(root().join("crates/ledger/tests/contracts_suite/mod.rs"));
    for (check, _) in words_followed_by(&suite, "pub async fn ") {
        if !registered.contains(&format!("{check},")) {
            gaps.push(format!(
                "{suite_file}: {check} is not listed in contract_tests!"
            ));
        }
    }
    gaps
}

/// The guard itself: every contract's surface is covered by its suite file.
pub fn every_function_reason_and_event_has_a_test() {
    let mut gaps = Vec::new();
    for (contract, file, min_reasons) in [
        ("Consortium", "consortium.rs", 25),
        ("Registry", "registry.rs", 20),
        ("TopicFilter", "registry.rs", 5),
        ("Audit", "audit.rs", 9),
        ("Groups", "groups.rs", 25),
    ] {
        let s = surface(&read(root().join(format!("contracts/{contract}.sol"))));
        let library = contract == "TopicFilter";
        assert!(
            s.reasons.len() >= min_reasons
                && (library || (!s.functions.is_empty() && !s.events.is_empty())),
            "the Solidity parser found too little in {contract}.sol: {s:?}"
        );
        let distinct: BTreeSet<String> = s.reasons.iter().map(|r| show(r)).collect();
        println!(
            "{contract}: {} functions, {} revert sites ({} distinct reasons), {} events",
            s.functions.len(),
            s.reasons.len(),
            distinct.len(),
            s.events.len()
        );
        gaps.extend(missing(contract, file));
    }
    assert!(
        gaps.is_empty(),
        "untested contract surface:\n{}",
        gaps.join("\n")
    );
}

/// The matcher and parser on known inputs, so a broken guard cannot pass silently.
pub fn the_guard_parses_reasons_and_matches_filled_in_parts() {
    let s = surface(
        r#"contract X {
            event Done(uint a);
            uint256 public constant LIMIT = 3;
            function go(string calldata id) external { // require(false, "commented");
                require(b[0] != "$", "no dollar");
                if (x) revert(string.concat("unknown ", id, " here"));
                emit Done(1);
            }
            function _hidden() private {}
        }"#,
    );
    let names: Vec<&str> = s.functions.iter().map(String::as_str).collect();
    assert_eq!(names, ["LIMIT", "go"]);
    assert_eq!(s.reasons.len(), 2);
    assert_eq!(show(&s.reasons[0]), "no dollar");
    assert_eq!(show(&s.reasons[1]), "unknown … here");
    assert!(matches(&s.reasons[1], "unknown {id} here"));
    assert!(matches(&s.reasons[1], "unknown a b here"));
    assert!(!matches(&s.reasons[1], "unknown  here"));
    assert!(!matches(&s.reasons[1], "unknown x here!"));
    assert_eq!(s.events, s.emitted);
    assert_eq!(
        string_literals(r#"a("x\"y", "caf\u{e9}\0")"#),
        ["x\"y", "caf\u{e9}\0"]
    );
    assert_eq!(snake_case("orgIdAt"), "org_id_at");
}
