//! The subscription tree: which sessions want a topic.
//!
//! A trie over topic levels; `+` and `#` are ordinary child keys, looked up
//! beside the literal level while matching. Each node holds the plain
//! subscriptions ending there and the shared-subscription groups
//! (`$share/{group}/…`) ending there. Reads (every PUBLISH) take a shared
//! lock; writes (SUBSCRIBE/UNSUBSCRIBE) an exclusive one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ledgermq_proto::{topic, SubscriptionOptions};
use parking_lot::RwLock;

use crate::session::Session;

#[derive(Clone)]
pub struct SubEntry {
    pub session: Arc<Session>,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
}

struct SharedGroup {
    name: Box<str>,
    members: Vec<SubEntry>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    subs: Vec<SubEntry>,
    shared: Vec<SharedGroup>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subs.is_empty() && self.shared.is_empty()
    }
}

/// One subscription that matched a topic.
pub struct Matched {
    pub session: Arc<Session>,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
    /// True for a shared-subscription match (no retained-as-published
    /// semantics differ, but No Local does not apply, §3.8.3.1).
    pub shared: bool,
}

#[derive(Default)]
pub struct Router {
    root: RwLock<Node>,
    count: AtomicUsize,
}

impl Router {
    /// Adds or replaces `session`'s subscription to `filter` (which may be a
    /// `$share/…` filter, already validated). Returns true if it replaced an
    /// existing one.
    pub fn subscribe(
        &self,
        filter: &str,
        session: &Arc<Session>,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> bool {
        let (group, inner) = split_shared(filter);
        let entry = SubEntry {
            session: session.clone(),
            options,
            id,
        };
        let mut root = self.root.write();
        let mut node = &mut *root;
        for level in inner.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let list = match group {
            None => &mut node.subs,
            Some(g) => {
                let pos = match node.shared.iter().position(|s| &*s.name == g) {
                    Some(p) => p,
                    None => {
                        node.shared.push(SharedGroup {
                            name: g.into(),
                            members: Vec::new(),
                            next: AtomicUsize::new(0),
                        });
                        node.shared.len() - 1
                    }
                };
                &mut node.shared[pos].members
            }
        };
        if let Some(existing) = list.iter_mut().find(|e| Arc::ptr_eq(&e.session, session)) {
            *existing = entry;
            true
        } else {
            list.push(entry);
            self.count.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Removes `session`'s subscription to `filter`; true if there was one.
    pub fn unsubscribe(&self, filter: &str, session: &Arc<Session>) -> bool {
        let (group, inner) = split_shared(filter);
        let levels: Vec<&str> = inner.split('/').collect();
        let mut root = self.root.write();
        let removed = remove(&mut root, &levels, group, session);
        if removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    pub fn subscription_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Every subscription matching the topic name. Shared groups contribute
    /// one member each, chosen round-robin among connected members (any
    /// member if none is connected).
    pub fn matches(&self, topic_name: &str, out: &mut Vec<Matched>) {
        let root = self.root.read();
        let levels: smallvec_levels::Levels = topic_name.split('/').collect();
        let dollar = topic_name.starts_with('$');
        collect(&root, &levels, 0, dollar, out);
    }
}

/// A fixed-capacity stack vector for topic levels, so matching does not
/// allocate for ordinary topics.
mod smallvec_levels {
    pub struct Levels<'a> {
        inline: [&'a str; 16],
        len: usize,
        spill: Vec<&'a str>,
    }
    impl<'a> FromIterator<&'a str> for Levels<'a> {
        fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
            let mut l = Levels {
                inline: [""; 16],
                len: 0,
                spill: Vec::new(),
            };
            for s in iter {
                if l.len < 16 {
                    l.inline[l.len] = s;
                } else {
                    if l.spill.is_empty() {
                        l.spill.extend_from_slice(&l.inline);
                    }
                    l.spill.push(s);
                }
                l.len += 1;
            }
            l
        }
    }
    impl<'a> std::ops::Deref for Levels<'a> {
        type Target = [&'a str];
        fn deref(&self) -> &[&'a str] {
            if self.len <= 16 {
                &self.inline[..self.len]
            } else {
                &self.spill
            }
        }
    }
}

fn split_shared(filter: &str) -> (Option<&str>, &str) {
    match topic::parse_shared(filter) {
        Ok(Some((g, f))) => (Some(g), f),
        _ => (None, filter),
    }
}

fn collect(node: &Node, levels: &[&str], depth: usize, dollar: bool, out: &mut Vec<Matched>) {
    // `#` matches the parent level too ("sport/#" matches "sport"), but a
    // leading wildcard never matches a `$` topic.
    let wildcard_ok = !(dollar && depth == 0);
    if wildcard_ok {
        if let Some(hash) = node.children.get("#") {
            emit(hash, out);
        }
    }
    let Some((level, rest)) = levels.split_first() else {
        emit(node, out);
        return;
    };
    if let Some(child) = node.children.get(*level) {
        collect(child, rest, depth + 1, dollar, out);
    }
    if wildcard_ok {
        if let Some(plus) = node.children.get("+") {
            collect(plus, rest, depth + 1, dollar, out);
        }
    }
}

fn emit(node: &Node, out: &mut Vec<Matched>) {
    for s in &node.subs {
        out.push(Matched {
            session: s.session.clone(),
            options: s.options,
            id: s.id,
            shared: false,
        });
    }
    for g in &node.shared {
        if g.members.is_empty() {
            continue;
        }
        let n = g.members.len();
        let start = g.next.fetch_add(1, Ordering::Relaxed);
        let pick = (0..n)
            .map(|k| &g.members[(start + k) % n])
            .find(|m| m.session.is_online())
            .unwrap_or(&g.members[start % n]);
        out.push(Matched {
            session: pick.session.clone(),
            options: pick.options,
            id: pick.id,
            shared: true,
        });
    }
}

fn remove(node: &mut Node, levels: &[&str], group: Option<&str>, session: &Arc<Session>) -> bool {
    let Some((level, rest)) = levels.split_first() else {
        let removed = match group {
            None => remove_from(&mut node.subs, session),
            Some(g) => {
                let Some(pos) = node.shared.iter().position(|s| &*s.name == g) else {
                    return false;
                };
                let r = remove_from(&mut node.shared[pos].members, session);
                if node.shared[pos].members.is_empty() {
                    node.shared.swap_remove(pos);
                }
                r
            }
        };
        return removed;
    };
    let Some(child) = node.children.get_mut(*level) else {
        return false;
    };
    let removed = remove(child, rest, group, session);
    if child.is_empty() {
        node.children.remove(*level);
    }
    removed
}

fn remove_from(list: &mut Vec<SubEntry>, session: &Arc<Session>) -> bool {
    match list.iter().position(|e| Arc::ptr_eq(&e.session, session)) {
        Some(p) => {
            list.swap_remove(p);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgermq_proto::Protocol;

    fn session(id: &str) -> Arc<Session> {
        Arc::new(Session::new(id.into(), Protocol::V5, 0))
    }

    fn matched_ids(r: &Router, t: &str) -> Vec<String> {
        let mut out = Vec::new();
        r.matches(t, &mut out);
        let mut ids: Vec<String> = out
            .iter()
            .map(|m| m.session.client_id.to_string())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn wildcards_match_like_the_spec_says() {
        let r = Router::default();
        let opts = SubscriptionOptions::default();
        r.subscribe("a/+/c", &session("plus"), opts, None);
        r.subscribe("a/#", &session("hash"), opts, None);
        r.subscribe("#", &session("all"), opts, None);
        r.subscribe("a/b/c", &session("exact"), opts, None);
        assert_eq!(matched_ids(&r, "a/b/c"), ["all", "exact", "hash", "plus"]);
        assert_eq!(matched_ids(&r, "a"), ["all", "hash"]);
        assert_eq!(matched_ids(&r, "$SYS/a"), Vec::<String>::new());
    }

    #[test]
    fn dollar_topics_match_only_explicit_first_level() {
        let r = Router::default();
        let opts = SubscriptionOptions::default();
        r.subscribe("$SYS/#", &session("sys"), opts, None);
        r.subscribe("+/broker/#", &session("plus"), opts, None);
        assert_eq!(matched_ids(&r, "$SYS/broker/uptime"), ["sys"]);
    }

    #[test]
    fn shared_group_delivers_to_one_member_in_turn() {
        let r = Router::default();
        let opts = SubscriptionOptions::default();
        let a = session("a");
        let b = session("b");
        r.subscribe("$share/g/t", &a, opts, None);
        r.subscribe("$share/g/t", &b, opts, None);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.extend(matched_ids(&r, "t"));
        }
        assert_eq!(seen.iter().filter(|s| *s == "a").count(), 2);
        assert_eq!(seen.iter().filter(|s| *s == "b").count(), 2);
    }

    #[test]
    fn unsubscribe_removes_and_prunes() {
        let r = Router::default();
        let s = session("s");
        let opts = SubscriptionOptions::default();
        assert!(!r.subscribe("x/y", &s, opts, None));
        assert!(r.subscribe("x/y", &s, opts, Some(3)));
        assert_eq!(r.subscription_count(), 1);
        assert!(r.unsubscribe("x/y", &s));
        assert!(!r.unsubscribe("x/y", &s));
        assert_eq!(r.subscription_count(), 0);
        assert!(r.root.read().is_empty());
    }
}
