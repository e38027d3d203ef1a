//! The dot store every part of the office state is made of: a map from key to the set of
//! writes (dot, value) currently alive at that key.
//!
//! One writer per key (readings, nodes, ...) makes it a register whose newest version wins;
//! any writer per key (people, targets) makes it a multi-value register. Both merge the same way.

use std::collections::BTreeMap;

use super::dot::{CausalContext, Dot};
use crate::state::Entry;

/// Keys to the writes alive at each key. A write is alive until a later write that saw it
/// replaces it, or it expires.
#[derive(Clone, PartialEq, Debug)]
pub struct DotMap<E: Entry> {
    entries: BTreeMap<E::Key, BTreeMap<Dot, E>>,
}

impl<E: Entry> Default for DotMap<E> {
    fn default() -> Self {
        DotMap {
            entries: BTreeMap::new(),
        }
    }
}

/// What a join changed.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct JoinCount {
    pub added: usize,
    pub removed: usize,
}

impl std::ops::AddAssign for JoinCount {
    fn add_assign(&mut self, other: JoinCount) {
        self.added += other.added;
        self.removed += other.removed;
    }
}

impl<E: Entry> DotMap<E> {
    pub fn insert(&mut self, key: E::Key, dot: Dot, value: E) {
        self.entries.entry(key).or_default().insert(dot, value);
    }

    /// The writes alive at `key`, by dot.
    pub fn get(&self, key: &E::Key) -> Option<&BTreeMap<Dot, E>> {
        self.entries.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&E::Key, &Dot, &E)> {
        self.entries
            .iter()
            .flat_map(|(key, writes)| writes.iter().map(move |(dot, value)| (key, dot, value)))
    }

    /// Every key with at least one write alive, with its writes.
    pub fn keys(&self) -> impl Iterator<Item = (&E::Key, &BTreeMap<Dot, E>)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps the writes for which `keep` returns true; returns the dots removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&E::Key, &Dot, &E) -> bool) -> Vec<Dot> {
        let mut removed = Vec::new();
        self.entries.retain(|key, writes| {
            writes.retain(|dot, value| {
                let kept = keep(key, dot, value);
                if !kept {
                    removed.push(dot.clone());
                }
                kept
            });
            !writes.is_empty()
        });
        removed
    }

    /// Joins `other` (with context `other_context`) into `self` (with context `context`).
    ///
    /// A write survives if both sides have it, or if one side has it and the other has never
    /// seen it. A write one side has seen but no longer holds was replaced or expired there,
    /// so it is dropped. This is the dot-store join of Almeida, Shoker and Baquero,
    /// "Delta State Replicated Data Types" (2018), section 5:
    /// - commutative: the rule is symmetric in the two sides;
    /// - associative: a write survives a join of several states exactly when every state that
    ///   has seen it still holds it, whatever the grouping;
    /// - idempotent: joining a state with itself keeps every write it holds.
    ///
    /// Writes have no ties to break: a dot names one write, so two sides holding the same dot
    /// hold the same value. The caller joins the contexts afterwards.
    pub fn join(
        &mut self,
        context: &CausalContext,
        other: &DotMap<E>,
        other_context: &CausalContext,
    ) -> JoinCount {
        let mut count = JoinCount::default();
        // Drop what the other side has seen and no longer holds.
        self.entries.retain(|key, writes| {
            let theirs = other.entries.get(key);
            writes.retain(|dot, _| {
                let kept =
                    theirs.is_some_and(|t| t.contains_key(dot)) || !other_context.contains(dot);
                count.removed += usize::from(!kept);
                kept
            });
            !writes.is_empty()
        });
        // Add what the other side holds and this side has never seen.
        for (key, writes) in &other.entries {
            for (dot, value) in writes {
                if !context.contains(dot) {
                    let mine = self.entries.entry(key.clone()).or_default();
                    if mine.insert(dot.clone(), value.clone()).is_none() {
                        count.added += 1;
                    }
                }
            }
        }
        count
    }
}
