//! Retained messages, kept in a trie over topic levels so a wildcard
//! SUBSCRIBE visits only the branches its filter can match.
//!
//! Bounded in count and bytes (`max_retained_messages`,
//! `max_retained_bytes`): a new retained topic over either limit is
//! refused, never stored at the expense of memory. Like the subscription
//! trie, nothing here recurses over the topic depth a client chose: walks
//! use explicit stacks and dropping a branch frees it from a list.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ledgermq_proto::topic;
use parking_lot::RwLock;

use crate::inline_stack::InlineStack;
use crate::message::Message;

#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
    /// The message's entry in [`Tree::expiring`], if it has an expiry.
    expiry: Option<ExpiryKey>,
}

type ExpiryKey = (Instant, u64);

impl Node {
    fn only_a_passage(&self) -> bool {
        self.message.is_none() && self.children.len() == 1
    }
}

impl Drop for Node {
    /// Frees the subtree without one stack frame per level.
    fn drop(&mut self) {
        crate::inline_stack::drop_children_iteratively(&mut self.children, |n| &mut n.children);
    }
}

/// How many retained messages, and how many bytes of them, a broker keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl Default for RetainedLimits {
    fn default() -> Self {
        RetainedLimits {
            max_messages: usize::MAX,
            max_bytes: usize::MAX,
        }
    }
}

/// What [`RetainedStore::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retained {
    /// Stored (new topic or replacing the topic's previous message).
    Stored,
    /// An empty payload cleared the topic's retained message.
    Cleared,
    /// An empty payload for a topic without a retained message.
    NothingToClear,
    /// Storing it would exceed `max_retained_messages` or
    /// `max_retained_bytes`: nothing changed.
    OverLimit,
}

#[derive(Default)]
struct Tree {
    root: Node,
    bytes: usize,
    /// Retained messages with a Message Expiry Interval, by deadline.
    expiring: BTreeMap<ExpiryKey, Arc<Message>>,
    next_key: u64,
}

#[derive(Default)]
pub struct RetainedStore {
    tree: RwLock<Tree>,
    count: AtomicUsize,
    limits: RetainedLimits,
}

impl RetainedStore {
    pub fn new(limits: RetainedLimits) -> RetainedStore {
        RetainedStore {
            limits,
            ..RetainedStore::default()
        }
    }

    /// Stores `message` as the retained message of its topic, or clears the
    /// topic's retained message when the payload is empty (§3.3.1.3).
    pub fn set(&self, message: Arc<Message>) -> Retained {
        self.put(message, true)
    }

    /// Like [`Self::set`] for the broker's own messages (`$SYS`), which the
    /// limits count but never refuse.
    pub fn set_internal(&self, message: Arc<Message>) -> Retained {
        self.put(message, false)
    }

    fn put(&self, message: Arc<Message>, enforce: bool) -> Retained {
        let mut tree = self.tree.write();
        let levels: InlineStack<&str, 16> = message.topic.split('/').collect();
        if message.payload.is_empty() {
            return match remove(&mut tree.root, &levels, None) {
                Some((old, expiry)) => {
                    tree.forget(&old, expiry);
                    self.count.fetch_sub(1, Ordering::Relaxed);
                    Retained::Cleared
                }
                None => Retained::NothingToClear,
            };
        }
        let size = message.retained_size();
        let old = find(&tree.root, &levels).map(|m| m.retained_size());
        let (is_new, old_size) = (old.is_none(), old.unwrap_or(0));
        let count = self.count.load(Ordering::Relaxed);
        let over = (is_new && count >= self.limits.max_messages)
            || tree.bytes - old_size + size > self.limits.max_bytes;
        if enforce && over {
            return Retained::OverLimit;
        }
        let key = message.expires_at.map(|at| {
            tree.next_key += 1;
            (at, tree.next_key)
        });
        if let Some(k) = key {
            tree.expiring.insert(k, message.clone());
        }
        let Tree { root, expiring, .. } = &mut *tree;
        let mut node = root;
        for i in 0..levels.len() {
            let level = levels.get(i).copied().unwrap_or("");
            node = node.children.entry(level.into()).or_default();
        }
        node.message = Some(message);
        if let Some(old_key) = std::mem::replace(&mut node.expiry, key) {
            expiring.remove(&old_key);
        }
        tree.bytes = tree.bytes - old_size + size;
        if is_new {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        Retained::Stored
    }

    /// Removes the retained message of `message.topic` if it is still
    /// `message` (expiry: a newer message on the topic stays).
    pub fn remove_if_current(&self, message: &Arc<Message>) -> bool {
        let mut tree = self.tree.write();
        let levels: InlineStack<&str, 16> = message.topic.split('/').collect();
        match remove(&mut tree.root, &levels, Some(message)) {
            Some((old, expiry)) => {
                tree.forget(&old, expiry);
                self.count.fetch_sub(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Removes the retained messages whose expiry has passed; returns them
    /// (the broker deletes them from the store too).
    pub fn sweep_expired(&self, now: Instant) -> Vec<Arc<Message>> {
        let due: Vec<Arc<Message>> = {
            let mut tree = self.tree.write();
            let later = tree.expiring.split_off(&(now, u64::MAX));
            std::mem::replace(&mut tree.expiring, later)
                .into_values()
                .collect()
        };
        due.into_iter()
            .filter(|m| self.remove_if_current(m))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, as counted against `max_retained_bytes`.
    pub fn bytes(&self) -> usize {
        self.tree.read().bytes
    }

    /// Unexpired retained messages whose topic matches `filter`.
    pub fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        let tree = self.tree.read();
        let levels: InlineStack<&str, 16> = filter.split('/').collect();
        let mut out = Vec::new();
        let mut stack: InlineStack<(&Node, usize), 16> = InlineStack::new();
        stack.push((&tree.root, 0));
        let keep = |m: &Option<Arc<Message>>, out: &mut Vec<Arc<Message>>| {
            if let Some(m) = m.as_ref().filter(|m| !m.is_expired(now)) {
                out.push(m.clone());
            }
        };
        while let Some((node, depth)) = stack.pop() {
            let Some(level) = levels.get(depth).copied() else {
                keep(&node.message, &mut out);
                continue;
            };
            // Children a wildcard at this depth may enter (the `$` rule).
            let visible = node
                .children
                .iter()
                .filter(|(name, _)| topic::wildcard_may_match(name, depth));
            match level {
                "#" => {
                    // "#" also matches the parent level itself.
                    if depth > 0 {
                        keep(&node.message, &mut out);
                    }
                    let mut below: Vec<&Node> = visible.map(|(_, c)| c).collect();
                    while let Some(n) = below.pop() {
                        keep(&n.message, &mut out);
                        below.extend(n.children.values());
                    }
                }
                "+" => {
                    for (_, child) in visible {
                        stack.push((child, depth + 1));
                    }
                }
                literal => {
                    if let Some(child) = node.children.get(literal) {
                        stack.push((child, depth + 1));
                    }
                }
            }
        }
        out
    }

    /// Every retained message (for persistence snapshots and tests).
    pub fn all(&self) -> Vec<Arc<Message>> {
        let tree = self.tree.read();
        let mut out = Vec::new();
        let mut pending = vec![&tree.root];
        while let Some(n) = pending.pop() {
            out.extend(n.message.clone());
            pending.extend(n.children.values());
        }
        out
    }
}

impl Tree {
    /// Accounting after `old` left the tree.
    fn forget(&mut self, old: &Message, expiry: Option<ExpiryKey>) {
        self.bytes -= old.retained_size();
        if let Some(k) = expiry {
            self.expiring.remove(&k);
        }
    }
}

fn find<'a>(root: &'a Node, levels: &InlineStack<&str, 16>) -> Option<&'a Arc<Message>> {
    let mut node = root;
    for i in 0..levels.len() {
        node = node.children.get(*levels.get(i)?)?;
    }
    node.message.as_ref()
}

/// Takes the topic's message (only if it is `only`, when given) and cuts
/// off the chain of nodes left empty. Loops, no recursion.
fn remove(
    root: &mut Node,
    levels: &InlineStack<&str, 16>,
    only: Option<&Arc<Message>>,
) -> Option<(Arc<Message>, Option<ExpiryKey>)> {
    let mut passage = Vec::with_capacity(levels.len());
    let mut node = &mut *root;
    for i in 0..levels.len() {
        passage.push(node.only_a_passage());
        node = node.children.get_mut(*levels.get(i)?)?;
    }
    if let (Some(want), Some(have)) = (only, &node.message) {
        if !Arc::ptr_eq(want, have) {
            return None;
        }
    }
    let old = (node.message.take()?, node.expiry.take());
    if !node.children.is_empty() {
        return Some(old);
    }
    let mut cut = levels.len() - 1;
    while cut > 0 && passage[cut] {
        cut -= 1;
    }
    let mut parent = &mut *root;
    for i in 0..cut {
        match parent.children.get_mut(*levels.get(i)?) {
            Some(child) => parent = child,
            None => return Some(old),
        }
    }
    if let Some(level) = levels.get(cut) {
        parent.children.remove(*level);
    }
    Some(old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ledgermq_proto::{Properties, QoS};

    fn msg(topic: &str, payload: &str) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Properties::default(),
            expires_at: None,
            publisher: "p".into(),
        })
    }

    fn topics(s: &RetainedStore, f: &str) -> Vec<String> {
        let mut t: Vec<String> = s
            .matching(f, Instant::now())
            .iter()
            .map(|m| m.topic.clone())
            .collect();
        t.sort();
        t
    }

    #[test]
    fn wildcard_filters_find_retained_topics() {
        let s = RetainedStore::default();
        for t in ["a", "a/b", "a/b/c", "x/b", "$SYS/up"] {
            s.set(msg(t, "v"));
        }
        assert_eq!(topics(&s, "a/#"), ["a", "a/b", "a/b/c"]);
        assert_eq!(topics(&s, "+/b"), ["a/b", "x/b"]);
        assert_eq!(topics(&s, "#"), ["a", "a/b", "a/b/c", "x/b"]);
        assert_eq!(topics(&s, "$SYS/#"), ["$SYS/up"]);
        assert_eq!(topics(&s, "+/up"), Vec::<String>::new());
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn empty_payload_clears_retained() {
        let s = RetainedStore::default();
        assert_eq!(s.set(msg("a/b", "v")), Retained::Stored);
        assert_eq!(s.set(msg("a/b", "")), Retained::Cleared);
        assert_eq!(s.set(msg("a/b", "")), Retained::NothingToClear);
        assert!(topics(&s, "#").is_empty());
        assert_eq!((s.len(), s.bytes()), (0, 0));
        assert!(s.tree.read().root.children.is_empty(), "pruned");
    }

    #[test]
    fn limits_refuse_new_topics_but_allow_replacing() {
        let s = RetainedStore::new(RetainedLimits {
            max_messages: 2,
            max_bytes: usize::MAX,
        });
        assert_eq!(s.set(msg("a", "1")), Retained::Stored);
        assert_eq!(s.set(msg("b", "1")), Retained::Stored);
        assert_eq!(s.set(msg("c", "1")), Retained::OverLimit);
        assert_eq!(s.set(msg("a", "2")), Retained::Stored);
        assert_eq!(topics(&s, "#"), ["a", "b"]);
        let one = msg("x", "12345678").retained_size();
        let s = RetainedStore::new(RetainedLimits {
            max_messages: usize::MAX,
            max_bytes: 2 * one,
        });
        assert_eq!(s.set(msg("x", "12345678")), Retained::Stored);
        assert_eq!(s.set(msg("y", "12345678")), Retained::Stored);
        assert_eq!(s.set(msg("z", "1")), Retained::OverLimit);
        assert_eq!(s.set(msg("x", "")), Retained::Cleared);
        assert_eq!(s.set(msg("z", "1")), Retained::Stored);
    }

    #[test]
    fn expiry_removes_only_the_message_it_was_set_for() {
        let s = RetainedStore::default();
        let old = msg("a/b", "old");
        s.set(old.clone());
        let new = msg("a/b", "new");
        s.set(new.clone());
        assert!(!s.remove_if_current(&old));
        assert_eq!(s.len(), 1);
        assert!(s.remove_if_current(&new));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn expired_retained_messages_are_swept_and_replaced_ones_are_not() {
        let s = RetainedStore::default();
        let now = Instant::now();
        let expiring = |topic: &str, secs: u64| {
            let mut m = Arc::unwrap_or_clone(msg(topic, "v"));
            m.expires_at = Some(now + std::time::Duration::from_secs(secs));
            Arc::new(m)
        };
        s.set(expiring("a", 1));
        s.set(expiring("b", 1));
        s.set(msg("b", "forever"));
        s.set(expiring("c", 100));
        let swept = s.sweep_expired(now + std::time::Duration::from_secs(2));
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].topic, "a");
        assert_eq!(topics(&s, "#"), ["b", "c"]);
        assert_eq!(s.tree.read().expiring.len(), 1, "only c's entry is left");
    }

    #[test]
    fn deep_topics_are_stored_matched_cleared_and_dropped_without_recursion() {
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let deep = "a/".repeat(40_000) + "a";
                let s = RetainedStore::default();
                s.set(msg(&deep, "v"));
                s.set(msg(&(deep.clone() + "/b"), "v"));
                assert_eq!(s.matching("#", Instant::now()).len(), 2);
                assert_eq!(s.matching(&deep, Instant::now()).len(), 1);
                let plus = "+/".repeat(40_000) + "+";
                assert_eq!(s.matching(&plus, Instant::now()).len(), 1);
                assert_eq!(s.all().len(), 2);
                assert_eq!(s.set(msg(&deep, "")), Retained::Cleared);
                drop(s);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
