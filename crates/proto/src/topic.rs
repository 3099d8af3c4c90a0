//! Topic names, topic filters and shared-subscription syntax (MQTT 5.0 §4.7,
//! §4.8.2): the one implementation of the matching rules that every other
//! crate calls (the broker's subscription and retained tries, the plain ACL
//! file, the ledger's rights).
//!
//! The `$` rule, in one place: a topic name whose first level starts with
//! `$` (`$SYS/…`) is never matched by a filter whose first level is a
//! wildcard (`#`, `+/…`), only by a filter that names that first level
//! (§4.7.2). [`wildcard_may_match`] states it for the tries, which walk
//! levels themselves instead of calling [`matches`].
//!
//! Nothing here recurses: every function walks the levels once, so a
//! 32,000-level topic costs 32,000 steps, never 32,000 stack frames.

/// Why a topic name or filter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    Empty,
    /// `+` or `#` in a topic name.
    WildcardInName,
    /// `#` not last, or a wildcard sharing a level with other characters.
    MisplacedWildcard,
    /// A NUL character.
    Nul,
    /// `$share/` with an empty or wildcard share name, or without a filter.
    BadShare,
    /// More levels than the broker's `max_topic_levels`.
    TooManyLevels,
    /// Longer than the broker's `max_topic_length` (bytes).
    TooLong,
}

impl std::fmt::Display for TopicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TopicError::Empty => "empty topic",
            TopicError::WildcardInName => "wildcard in a topic name",
            TopicError::MisplacedWildcard => "misplaced wildcard",
            TopicError::Nul => "NUL character in a topic",
            TopicError::BadShare => "malformed $share filter",
            TopicError::TooManyLevels => "too many topic levels",
            TopicError::TooLong => "topic too long",
        })
    }
}

/// The largest number of levels a topic can have: a name of 65,535 `/`
/// characters has 65,536 levels.
pub const MAX_LEVELS: usize = 65_536;

/// The longest topic the wire format can carry, in bytes.
pub const MAX_LENGTH: usize = 65_535;

/// Size limits on topic names and filters (the broker's `max_topic_levels`
/// and `max_topic_length`). Anything a client controls is bounded: these
/// bound the work of every trie walk and the memory of every subscription
/// and retained message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    pub max_levels: usize,
    pub max_length: usize,
}

impl Default for TopicLimits {
    /// 128 levels (as EMQX), 4,096 bytes.
    fn default() -> Self {
        TopicLimits {
            max_levels: 128,
            max_length: 4096,
        }
    }
}

impl TopicLimits {
    /// The widest limits the protocol allows.
    pub const PROTOCOL: TopicLimits = TopicLimits {
        max_levels: MAX_LEVELS,
        max_length: MAX_LENGTH,
    };

    fn check_size(&self, topic: &str) -> Result<(), TopicError> {
        if topic.len() > self.max_length {
            return Err(TopicError::TooLong);
        }
        // Levels = separators + 1; counting stops as soon as it is over.
        let mut levels = 1usize;
        for b in topic.bytes() {
            if b == b'/' {
                levels += 1;
                if levels > self.max_levels {
                    return Err(TopicError::TooManyLevels);
                }
            }
        }
        Ok(())
    }

    /// A valid topic name within the limits.
    pub fn check_name(&self, name: &str) -> Result<(), TopicError> {
        validate_name(name)?;
        self.check_size(name)
    }

    /// A valid topic filter within the limits: plain, or `$share/g/filter`
    /// (whose inner filter is what is checked against the level limit; the
    /// length limit applies to the whole string).
    pub fn check_filter(&self, filter: &str) -> Result<(), TopicError> {
        if filter.len() > self.max_length {
            return Err(TopicError::TooLong);
        }
        let inner = match parse_shared(filter)? {
            Some((_, inner)) => inner,
            None => {
                validate_filter(filter)?;
                filter
            }
        };
        self.check_size(inner)
    }
}

/// A topic name used in PUBLISH: non-empty, no wildcards, no NUL.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    for b in name.bytes() {
        match b {
            b'+' | b'#' => return Err(TopicError::WildcardInName),
            0 => return Err(TopicError::Nul),
            _ => {}
        }
    }
    Ok(())
}

/// A topic filter used in SUBSCRIBE/UNSUBSCRIBE (without any `$share/`
/// prefix): wildcards occupy whole levels, `#` only as the last level.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.as_bytes().contains(&0) {
            return Err(TopicError::Nul);
        }
        match level {
            "#" if levels.peek().is_some() => return Err(TopicError::MisplacedWildcard),
            "#" | "+" => {}
            l if l.contains(['+', '#']) => return Err(TopicError::MisplacedWildcard),
            _ => {}
        }
    }
    Ok(())
}

/// Splits `$share/{ShareName}/{filter}` into its share name and filter.
/// Returns `Ok(None)` for an ordinary filter.
pub fn parse_shared(filter: &str) -> Result<Option<(&str, &str)>, TopicError> {
    let Some(rest) = filter.strip_prefix("$share/") else {
        if filter == "$share" {
            return Err(TopicError::BadShare);
        }
        return Ok(None);
    };
    let (group, inner) = rest.split_once('/').ok_or(TopicError::BadShare)?;
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return Err(TopicError::BadShare);
    }
    validate_filter(inner)?;
    Ok(Some((group, inner)))
}

/// The filter without its `$share/{group}/` prefix, if it has one.
pub fn without_share(filter: &str) -> &str {
    match parse_shared(filter) {
        Ok(Some((_, inner))) => inner,
        _ => filter,
    }
}

/// Whether a wildcard level at `depth` (0 = first level) may match a topic
/// whose first level is `first_level`: not at the first level of a `$`
/// topic (§4.7.2).
pub fn wildcard_may_match(first_level: &str, depth: usize) -> bool {
    depth > 0 || !first_level.starts_with('$')
}

fn is_wildcard(level: &str) -> bool {
    level == "+" || level == "#"
}

/// Whether `filter` matches the topic name `topic`.
pub fn matches(filter: &str, topic: &str) -> bool {
    let first = topic.split('/').next().unwrap_or("");
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    let mut depth = 0;
    loop {
        match (f.next(), t.next()) {
            (Some(w), _) if is_wildcard(w) && !wildcard_may_match(first, depth) => return false,
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
        depth += 1;
    }
}

/// Whether every topic `requested` matches is also matched by `granted`
/// (a right or an ACL rule on `granted` covers a subscription to
/// `requested`). Both are filters without a `$share/` prefix.
pub fn covers(granted: &str, requested: &str) -> bool {
    let mut g = granted.split('/');
    let mut r = requested.split('/');
    let mut depth = 0;
    loop {
        match (g.next(), r.next()) {
            // A leading wildcard matches no `$` topic, so it covers no
            // filter that names a `$` first level.
            (Some(w), Some(l)) if depth == 0 && is_wildcard(w) && l.starts_with('$') => {
                return false
            }
            (Some("#"), _) => return true,
            (Some("+"), Some(l)) if l != "#" => {}
            (Some(a), Some(b)) if a == b && a != "+" && a != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
        depth += 1;
    }
}

/// Whether some topic name is matched by both filters (neither has a
/// `$share/` prefix). An ACL `deny` rule that intersects a subscription's
/// filter means deliveries on it must be checked one by one.
pub fn intersects(a: &str, b: &str) -> bool {
    let mut x = a.split('/');
    let mut y = b.split('/');
    let mut depth = 0;
    loop {
        match (x.next(), y.next()) {
            // A leading wildcard never meets a `$` first level.
            (Some(w), Some(l)) | (Some(l), Some(w))
                if depth == 0 && is_wildcard(w) && !is_wildcard(l) && l.starts_with('$') =>
            {
                return false
            }
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(p), Some(q)) if p == q => {}
            (None, None) => return true,
            _ => return false,
        }
        depth += 1;
    }
}

/// Whether `topic` has a wildcard level (is a filter rather than a name).
pub fn is_filter(topic: &str) -> bool {
    topic.split('/').any(is_wildcard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_wildcards_and_empty() {
        assert!(validate_name("a/b").is_ok());
        assert!(validate_name("/").is_ok());
        assert_eq!(validate_name(""), Err(TopicError::Empty));
        assert_eq!(validate_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_name("a/#"), Err(TopicError::WildcardInName));
    }

    #[test]
    fn filters_need_whole_level_wildcards() {
        for ok in ["#", "+", "a/+/b", "a/#", "+/+", "/", "sport/tennis/#"] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["a/#/b", "a+", "a/b#", "#/a", ""] {
            assert!(validate_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shared_filters_parse() {
        assert_eq!(parse_shared("$share/g/a/+"), Ok(Some(("g", "a/+"))));
        assert_eq!(parse_shared("a/b"), Ok(None));
        assert!(parse_shared("$share/g").is_err());
        assert!(parse_shared("$share//a").is_err());
        assert!(parse_shared("$share/g+/a").is_err());
        assert_eq!(without_share("$share/g/a/+"), "a/+");
        assert_eq!(without_share("a/+"), "a/+");
    }

    #[test]
    fn limits_count_levels_and_bytes() {
        let l = TopicLimits {
            max_levels: 3,
            max_length: 10,
        };
        assert!(l.check_name("a/b/c").is_ok());
        assert_eq!(l.check_name("a/b/c/d"), Err(TopicError::TooManyLevels));
        assert_eq!(l.check_name("abcdefghijk"), Err(TopicError::TooLong));
        assert!(l.check_filter("a/+/#").is_ok());
        assert_eq!(
            l.check_filter("a/+/#/x"),
            Err(TopicError::MisplacedWildcard)
        );
        assert_eq!(l.check_filter("+/+/+/+"), Err(TopicError::TooManyLevels));
        // The share prefix does not count as levels, but counts as bytes.
        assert!(l.check_filter("$share/g/a").is_ok());
        assert_eq!(l.check_filter("$share/gg/a/b"), Err(TopicError::TooLong));
        let deep = "a/".repeat(32_000) + "a";
        assert!(TopicLimits::PROTOCOL.check_name(&deep).is_ok());
        assert_eq!(
            TopicLimits::default().check_name(&deep),
            Err(TopicError::TooLong)
        );
    }

    #[test]
    fn matching_follows_spec_examples() {
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(matches("a/+/c", "a//c"));
        assert!(!matches("a/b", "a/b/c"));
    }

    #[test]
    fn a_granted_filter_covers_narrower_filters_only() {
        assert!(covers("a/#", "a/b/+"));
        assert!(covers("a/+", "a/b"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(covers("#", "x/#"));
        assert!(!covers("a/+/c", "a/#"));
        assert!(!covers("a/+/c", "a/+/#"));
        assert!(covers("a/#", "a"));
        assert!(!covers("b/#", "a/x"));
        assert!(!covers("#", "$SYS/#"));
        assert!(!covers("+/x", "$SYS/x"));
        assert!(covers("$SYS/#", "$SYS/+"));
        assert!(covers("#", "+/x"));
        assert!(!covers("a/x", "+/x"));
    }

    #[test]
    fn filters_intersect_when_a_topic_matches_both() {
        assert!(intersects("a/#", "a/secret"));
        assert!(intersects("a/secret", "a/#"));
        assert!(intersects("a/+", "+/b"));
        assert!(intersects("a/#", "a"));
        assert!(intersects("#", "x/y/z"));
        assert!(!intersects("a/+", "a/b/c"));
        assert!(!intersects("a/b", "a/c"));
        assert!(!intersects("#", "$SYS/x"));
        assert!(!intersects("+/x", "$SYS/+"));
        assert!(intersects("$SYS/#", "$SYS/x"));
        assert!(intersects("+/+", "#"));
    }
}
