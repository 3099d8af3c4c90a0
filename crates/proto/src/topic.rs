//! Topic names, topic filters and shared-subscription syntax (MQTT 5.0 §4.7,
//! §4.8.2).

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

/// Whether `filter` matches the topic name `topic`. Filters starting with a
/// wildcard never match topics starting with `$` (§4.7.2).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
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
    }
}
