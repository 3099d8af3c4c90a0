//! Retained messages, kept in a trie over topic levels so a wildcard
//! SUBSCRIBE visits only the branches its filter can match.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use crate::message::Message;

#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

#[derive(Default)]
pub struct RetainedStore {
    root: RwLock<Node>,
    count: std::sync::atomic::AtomicUsize,
}

impl RetainedStore {
    /// Stores `message` as the retained message of its topic, or clears the
    /// topic's retained message when the payload is empty (§3.3.1.3).
    pub fn set(&self, message: Arc<Message>) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut root = self.root.write();
        if message.payload.is_empty() {
            let levels: Vec<&str> = message.topic.split('/').collect();
            if remove(&mut root, &levels) {
                self.count.fetch_sub(1, Relaxed);
            }
            return;
        }
        let mut node = &mut *root;
        for level in message.topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        if node.message.replace(message).is_none() {
            self.count.fetch_add(1, Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Unexpired retained messages whose topic matches `filter`.
    pub fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        let root = self.root.read();
        let levels: Vec<&str> = filter.split('/').collect();
        let mut out = Vec::new();
        collect(&root, &levels, true, now, &mut out);
        out
    }

    /// Every retained message (for persistence snapshots and tests).
    pub fn all(&self) -> Vec<Arc<Message>> {
        let root = self.root.read();
        let mut out = Vec::new();
        walk(&root, &mut out);
        out
    }
}

fn collect(node: &Node, filter: &[&str], top: bool, now: Instant, out: &mut Vec<Arc<Message>>) {
    let Some((level, rest)) = filter.split_first() else {
        if let Some(m) = &node.message {
            if !m.is_expired(now) {
                out.push(m.clone());
            }
        }
        return;
    };
    match *level {
        "#" => {
            // "#" also matches the parent level itself.
            if let Some(m) = &node.message {
                if !top && !m.is_expired(now) {
                    out.push(m.clone());
                }
            }
            for (name, child) in &node.children {
                if !(top && name.starts_with('$')) {
                    walk_unexpired(child, now, out);
                }
            }
        }
        "+" => {
            for (name, child) in &node.children {
                if !(top && name.starts_with('$')) {
                    collect(child, rest, false, now, out);
                }
            }
        }
        literal => {
            if let Some(child) = node.children.get(literal) {
                collect(child, rest, false, now, out);
            }
        }
    }
}

fn walk_unexpired(node: &Node, now: Instant, out: &mut Vec<Arc<Message>>) {
    if let Some(m) = &node.message {
        if !m.is_expired(now) {
            out.push(m.clone());
        }
    }
    for child in node.children.values() {
        walk_unexpired(child, now, out);
    }
}

fn walk(node: &Node, out: &mut Vec<Arc<Message>>) {
    if let Some(m) = &node.message {
        out.push(m.clone());
    }
    for child in node.children.values() {
        walk(child, out);
    }
}

fn remove(node: &mut Node, levels: &[&str]) -> bool {
    let Some((level, rest)) = levels.split_first() else {
        return node.message.take().is_some();
    };
    let Some(child) = node.children.get_mut(*level) else {
        return false;
    };
    let removed = remove(child, rest);
    if child.message.is_none() && child.children.is_empty() {
        node.children.remove(*level);
    }
    removed
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
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn empty_payload_clears_retained() {
        let s = RetainedStore::default();
        s.set(msg("a/b", "v"));
        s.set(msg("a/b", ""));
        assert!(topics(&s, "#").is_empty());
        assert_eq!(s.len(), 0);
    }
}
