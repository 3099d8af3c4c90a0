//! A stack that keeps its first `N` items inline and spills to the heap
//! beyond: the trie walks push one entry per topic level, and ordinary
//! topics have few levels, so the hot path does not allocate while a
//! 30,000-level topic still works.

pub struct InlineStack<T: Copy, const N: usize> {
    inline: [Option<T>; N],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy, const N: usize> InlineStack<T, N> {
    pub fn new() -> Self {
        InlineStack {
            inline: [None; N],
            len: 0,
            spill: Vec::new(),
        }
    }

    pub fn push(&mut self, item: T) {
        if self.len < N {
            self.inline[self.len] = Some(item);
        } else {
            self.spill.push(item);
        }
        self.len += 1;
    }

    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        if self.len >= N {
            self.spill.pop()
        } else {
            self.inline[self.len].take()
        }
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            None
        } else if i < N {
            self.inline[i].as_ref()
        } else {
            self.spill.get(i - N)
        }
    }

    pub fn first(&self) -> Option<&T> {
        self.get(0)
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl<T: Copy, const N: usize> Default for InlineStack<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy, const N: usize> FromIterator<T> for InlineStack<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut s = InlineStack::new();
        for item in iter {
            s.push(item);
        }
        s
    }
}

/// Frees the children of a trie node (subscription or retained trie)
/// without one stack frame per level: each descendant is moved to a heap
/// list and dropped once it has no children left. Called from the nodes'
/// `Drop`, so a 65,536-level chain is dropped in a loop.
pub fn drop_children_iteratively<N>(
    children: &mut std::collections::HashMap<Box<str>, N>,
    children_of: fn(&mut N) -> &mut std::collections::HashMap<Box<str>, N>,
) {
    if children.is_empty() {
        return;
    }
    let mut pending: Vec<N> = children.drain().map(|(_, n)| n).collect();
    while let Some(mut n) = pending.pop() {
        pending.extend(children_of(&mut n).drain().map(|(_, c)| c));
        // `n` drops here with no children left.
    }
}

#[cfg(test)]
mod tests {
    use super::InlineStack;

    #[test]
    fn pushes_and_pops_across_the_inline_boundary() {
        let mut s: InlineStack<u32, 2> = InlineStack::new();
        for i in 0..5 {
            s.push(i);
        }
        assert_eq!(s.len(), 5);
        assert_eq!(
            (s.get(0), s.get(1), s.get(4), s.get(5)),
            (Some(&0), Some(&1), Some(&4), None)
        );
        let popped: Vec<u32> = std::iter::from_fn(|| s.pop()).collect();
        assert_eq!(popped, [4, 3, 2, 1, 0]);
        assert_eq!(s.len(), 0);
        s.push(9);
        assert_eq!(s.first(), Some(&9));
    }
}
