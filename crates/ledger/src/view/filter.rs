//! MQTT topic matching for rights held on topic filters.
//!
//! A right on a filter grants publishing to every topic name the filter
//! matches and subscribing to every filter it covers (a filter whose
//! matches are all matched by the right's filter).

/// Whether topic name `topic` matches `filter` (MQTT 4.7 semantics: `+` one
/// level, `#` the rest including the parent; `$` topics are not matched by
/// a leading wildcard).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic matched by `requested` is matched by `granted`.
pub fn filter_covers(granted: &str, requested: &str) -> bool {
    if requested.starts_with('$') && (granted.starts_with('+') || granted.starts_with('#')) {
        return false;
    }
    let mut g = granted.split('/');
    let mut r = requested.split('/');
    loop {
        match (g.next(), r.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(rl)) if rl != "#" => {}
            (Some(gl), Some(rl)) if gl == rl && gl != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether `topic` contains a wildcard level.
pub fn is_filter(topic: &str) -> bool {
    topic.split('/').any(|l| l == "+" || l == "#")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_matches_one_level_and_hash_the_rest() {
        assert!(filter_matches("a/+", "a/x"));
        assert!(!filter_matches("a/+", "a/x/y"));
        assert!(!filter_matches("a/+", "a"));
        assert!(filter_matches("a/#", "a"));
        assert!(filter_matches("a/#", "a/x/y"));
        assert!(filter_matches("#", "a/b"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(filter_matches("a/+/c", "a//c"));
        assert!(!filter_matches("a/b", "a/b/c"));
    }

    #[test]
    fn a_right_on_a_filter_covers_narrower_filters_only() {
        assert!(filter_covers("a/+", "a/+"));
        assert!(filter_covers("a/+", "a/x"));
        assert!(!filter_covers("a/+", "a/#"));
        assert!(!filter_covers("a/x", "a/+"));
        assert!(filter_covers("a/#", "a/+/b"));
        assert!(filter_covers("a/#", "a/#"));
        assert!(filter_covers("a/#", "a"));
        assert!(!filter_covers("a/+/c", "a/+/#"));
        assert!(!filter_covers("b/#", "a/x"));
    }
}
