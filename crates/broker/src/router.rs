//! The subscription tree: which sessions want a topic.
//!
//! A trie over topic levels; `+` and `#` are ordinary child keys, looked up
//! beside the literal level while matching. Each node holds the plain
//! subscriptions ending there and the shared-subscription groups
//! (`$share/{group}/…`) ending there. Reads (every PUBLISH) take a shared
//! lock; writes (SUBSCRIBE/UNSUBSCRIBE) an exclusive one.
//!
//! A client chooses how deep the trie grows (up to `max_topic_levels`, at
//! most 65,536), so nothing here recurses over it: matching walks an
//! explicit stack, removal descends twice in a loop, and dropping a node
//! frees its descendants from a heap-allocated list instead of nesting one
//! `drop` per level. The `$` rule comes from `ledgermq_proto::topic`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use ledgermq_proto::{topic, SubscriptionOptions};
use parking_lot::RwLock;

use crate::inline_stack::InlineStack;
use crate::session::Session;

/// What the authorizer last said about deliveries on one subscription,
/// and under which rights epoch (see [`crate::auth::DeliveryCheck`]).
pub struct DeliveryCache {
    /// The filter without any `$share/` prefix, as the authorizer saw it.
    pub filter: Box<str>,
    /// `epoch << 2 | verdict` (1 all, 2 each message, 3 refused); 0 unknown.
    state: AtomicU64,
}

/// Which matches need their delivery checked (see [`Router::matches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// The authorizer allows everything: no match needs a check.
    Never,
    /// Matches whose cached verdict for this rights epoch (if the
    /// authorizer has epochs) is not "all topics".
    Unsettled(Option<u64>),
}

/// A cached verdict about the deliveries of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachedCheck {
    All,
    EachMessage,
    Refused,
}

impl DeliveryCache {
    fn new(filter: &str) -> DeliveryCache {
        DeliveryCache {
            filter: filter.into(),
            state: AtomicU64::new(0),
        }
    }

    fn encode(epoch: u64, check: CachedCheck) -> u64 {
        let v = match check {
            CachedCheck::All => 1,
            CachedCheck::EachMessage => 2,
            CachedCheck::Refused => 3,
        };
        epoch.wrapping_shl(2) | v
    }

    /// The verdict cached for `epoch`, if any.
    pub fn get(&self, epoch: u64) -> Option<CachedCheck> {
        let s = self.state.load(Ordering::Acquire);
        if s == 0 || s >> 2 != epoch & (u64::MAX >> 2) {
            return None;
        }
        Some(match s & 3 {
            1 => CachedCheck::All,
            2 => CachedCheck::EachMessage,
            _ => CachedCheck::Refused,
        })
    }

    pub fn set(&self, epoch: u64, check: CachedCheck) {
        self.state
            .store(Self::encode(epoch, check), Ordering::Release);
    }
}

#[derive(Clone)]
pub struct SubEntry {
    pub session: Arc<Session>,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
    check: Arc<DeliveryCache>,
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

    /// Whether the node holds nothing but the one child on a path.
    fn only_a_passage(&self) -> bool {
        self.subs.is_empty() && self.shared.is_empty() && self.children.len() == 1
    }
}

impl Drop for Node {
    /// Frees the subtree without one stack frame per level.
    fn drop(&mut self) {
        crate::inline_stack::drop_children_iteratively(&mut self.children, |n| &mut n.children);
    }
}

/// One subscription that matched a topic.
pub struct Matched {
    pub session: Arc<Session>,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
    /// True for a shared-subscription match (No Local does not apply,
    /// §3.8.3.1).
    pub shared: bool,
    /// `None` when the subscription's cached verdict for the current epoch
    /// is "every topic may be delivered"; otherwise the cache to consult
    /// (and fill) with the authorizer.
    pub check: Option<Arc<DeliveryCache>>,
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
            check: Arc::new(DeliveryCache::new(inner)),
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
    /// Nodes left empty are pruned.
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
    /// member if none is connected). With `Checks::Unsettled(epoch)`, a
    /// subscription whose cached verdict for the authorizer's rights epoch
    /// is "all topics" comes back without a check to make.
    pub fn matches(&self, topic_name: &str, checks: Checks, out: &mut Vec<Matched>) {
        let root = self.root.read();
        let levels: InlineStack<&str, 16> = topic_name.split('/').collect();
        let first = levels.first().copied().unwrap_or("");
        let mut stack: InlineStack<(&Node, usize), 16> = InlineStack::new();
        stack.push((&*root, 0));
        while let Some((node, depth)) = stack.pop() {
            // `#` matches the parent level too ("sport/#" matches "sport").
            let wildcards = topic::wildcard_may_match(first, depth);
            if wildcards {
                if let Some(hash) = node.children.get("#") {
                    emit(hash, checks, out);
                }
            }
            let Some(level) = levels.get(depth) else {
                emit(node, checks, out);
                continue;
            };
            if let Some(child) = node.children.get(*level) {
                stack.push((child, depth + 1));
            }
            if wildcards {
                if let Some(plus) = node.children.get("+") {
                    stack.push((plus, depth + 1));
                }
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

fn matched(entry: &SubEntry, shared: bool, checks: Checks) -> Matched {
    let settled = match checks {
        Checks::Never => true,
        Checks::Unsettled(epoch) => {
            epoch.and_then(|e| entry.check.get(e)) == Some(CachedCheck::All)
        }
    };
    Matched {
        session: entry.session.clone(),
        options: entry.options,
        id: entry.id,
        shared,
        check: (!settled).then(|| entry.check.clone()),
    }
}

fn emit(node: &Node, checks: Checks, out: &mut Vec<Matched>) {
    for s in &node.subs {
        out.push(matched(s, false, checks));
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
        out.push(matched(pick, true, checks));
    }
}

/// Removes the entry, then cuts off the chain of nodes left empty. Two
/// loops down the path; no recursion.
fn remove(root: &mut Node, levels: &[&str], group: Option<&str>, session: &Arc<Session>) -> bool {
    // passage[d]: the node at depth d holds nothing but its child on the path.
    let mut passage = Vec::with_capacity(levels.len());
    let mut node = &mut *root;
    for level in levels {
        passage.push(node.only_a_passage());
        match node.children.get_mut(*level) {
            Some(child) => node = child,
            None => return false,
        }
    }
    let removed = match group {
        None => remove_from(&mut node.subs, session),
        Some(g) => match node.shared.iter().position(|s| &*s.name == g) {
            Some(pos) => {
                let r = remove_from(&mut node.shared[pos].members, session);
                if node.shared[pos].members.is_empty() {
                    node.shared.swap_remove(pos);
                }
                r
            }
            None => false,
        },
    };
    if !removed || !node.is_empty() {
        return removed;
    }
    // The leaf is empty: walk up while the parent would be empty without
    // it, then detach the highest empty node from its parent.
    let mut cut = levels.len() - 1;
    while cut > 0 && passage[cut] {
        cut -= 1;
    }
    let mut parent = &mut *root;
    for level in &levels[..cut] {
        match parent.children.get_mut(*level) {
            Some(child) => parent = child,
            None => return true,
        }
    }
    parent.children.remove(levels[cut]);
    true
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
        r.matches(t, Checks::Never, &mut out);
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

    #[test]
    fn pruning_keeps_branches_other_subscriptions_need() {
        let r = Router::default();
        let (s, t) = (session("s"), session("t"));
        let opts = SubscriptionOptions::default();
        r.subscribe("a/b/c/d", &s, opts, None);
        r.subscribe("a/b", &t, opts, None);
        r.subscribe("a/x/y", &t, opts, None);
        assert!(r.unsubscribe("a/b/c/d", &s));
        assert_eq!(matched_ids(&r, "a/b"), ["t"]);
        assert_eq!(matched_ids(&r, "a/x/y"), ["t"]);
        assert!(r.root.read().children["a"].children["b"]
            .children
            .is_empty());
        assert!(r.unsubscribe("a/b", &t));
        assert!(r.unsubscribe("a/x/y", &t));
        assert!(r.root.read().is_empty());
    }

    #[test]
    fn a_deep_trie_is_matched_pruned_and_dropped_without_recursion() {
        // Run on a small stack: any recursion per level would overflow it.
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let deep = "a/".repeat(40_000) + "a";
                let wild = "+/".repeat(40_000) + "#";
                let r = Router::default();
                let s = session("s");
                let opts = SubscriptionOptions::default();
                r.subscribe(&deep, &s, opts, None);
                r.subscribe(&wild, &s, opts, None);
                assert_eq!(matched_ids(&r, &deep), ["s", "s"]);
                assert!(r.unsubscribe(&deep, &s));
                assert_eq!(matched_ids(&r, &deep), ["s"]);
                drop(r); // drops a 40,001-level chain of `+` nodes
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn delivery_cache_answers_only_for_its_epoch() {
        let c = DeliveryCache::new("a/#");
        assert_eq!(c.get(7), None);
        c.set(7, CachedCheck::EachMessage);
        assert_eq!(c.get(7), Some(CachedCheck::EachMessage));
        assert_eq!(c.get(8), None);
        c.set(8, CachedCheck::All);
        assert_eq!(c.get(8), Some(CachedCheck::All));
        let r = Router::default();
        let s = session("s");
        r.subscribe("a/#", &s, SubscriptionOptions::default(), None);
        let mut out = Vec::new();
        r.matches("a/b", Checks::Unsettled(Some(1)), &mut out);
        assert!(
            out[0].check.is_some(),
            "unknown verdict: the broker must ask"
        );
        out[0].check.as_ref().unwrap().set(1, CachedCheck::All);
        out.clear();
        r.matches("a/b", Checks::Unsettled(Some(1)), &mut out);
        assert!(out[0].check.is_none(), "settled for epoch 1");
        out.clear();
        r.matches("a/b", Checks::Unsettled(Some(2)), &mut out);
        assert!(out[0].check.is_some(), "a new epoch asks again");
    }
}
