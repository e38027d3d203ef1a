//! Writers, dots and the causal context.
//!
//! A *dot* names one write: the writer's node id and that writer's sequence number. The
//! *causal context* is the set of dots a replica has seen, stored per writer as a sorted list
//! of inclusive ranges. While deltas arrive in order each writer is a single range (a version
//! vector entry); a lost or reordered delta shows up as a second range until sync fills the gap.

use std::{collections::BTreeMap, fmt, sync::Arc};

use thiserror::Error;

/// Longest node id accepted, in bytes. A libp2p peer id in base58 is 52 characters.
pub const MAX_NODE_ID_LEN: usize = 128;

/// The highest sequence number a write may have: 2^53 - 1, the largest integer that
/// JavaScript peers represent exactly. Far beyond any honest writer (a write per millisecond
/// for 285 000 years), so a peer claiming more is lying, and refusing it keeps a forged dot
/// from pushing a node's own counter to overflow.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// The identity of one office node: in a running office, its libp2p peer id in base58.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid node id {id:?}: {reason}")]
pub struct InvalidNodeId {
    pub id: String,
    pub reason: &'static str,
}

impl NodeId {
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidNodeId> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > MAX_NODE_ID_LEN {
            Some("it is longer than 128 bytes")
        } else if !id.chars().all(|c| c.is_ascii_graphic()) {
            Some("it may only contain printable ASCII without spaces")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidNodeId { id, reason }),
            None => Ok(NodeId(id.into())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// One write: who made it and its place in that writer's sequence (starting at 1).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Dot {
    pub writer: NodeId,
    pub seq: u64,
}

impl Dot {
    pub fn new(writer: NodeId, seq: u64) -> Self {
        debug_assert!(seq > 0, "sequence numbers start at 1");
        Dot { writer, seq }
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.writer, self.seq)
    }
}

/// A set of sequence numbers as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct SeqSet {
    ranges: Vec<(u64, u64)>,
}

impl SeqSet {
    /// Builds a set from ranges in any order; overlapping or adjacent ranges are coalesced.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut set = SeqSet::default();
        for (start, end) in ranges {
            set.insert_range(start, end);
        }
        set
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The highest sequence number in the set, 0 when empty.
    pub fn max(&self) -> u64 {
        self.ranges.last().map_or(0, |&(_, end)| end)
    }

    /// How many sequence numbers the set holds (saturating: a set of every u64 has one more).
    pub fn count(&self) -> u64 {
        self.ranges.iter().fold(0u64, |sum, &(start, end)| {
            sum.saturating_add((end - start).saturating_add(1))
        })
    }

    pub fn contains(&self, seq: u64) -> bool {
        // The ranges are sorted by start: find the last range starting at or before seq.
        let index = self.ranges.partition_point(|&(start, _)| start <= seq);
        index > 0 && self.ranges[index - 1].1 >= seq
    }

    pub fn insert(&mut self, seq: u64) {
        self.insert_range(seq, seq);
    }

    pub fn insert_range(&mut self, start: u64, end: u64) {
        if start > end {
            return;
        }
        // First range that could touch [start, end]: its end reaches start - 1.
        let first = self
            .ranges
            .partition_point(|&(_, e)| e.saturating_add(1) < start);
        let mut last = first;
        let (mut new_start, mut new_end) = (start, end);
        while last < self.ranges.len() && self.ranges[last].0 <= end.saturating_add(1) {
            new_start = new_start.min(self.ranges[last].0);
            new_end = new_end.max(self.ranges[last].1);
            last += 1;
        }
        self.ranges
            .splice(first..last, std::iter::once((new_start, new_end)));
    }

    pub fn remove(&mut self, seq: u64) {
        let index = self.ranges.partition_point(|&(start, _)| start <= seq);
        if index == 0 {
            return;
        }
        let (start, end) = self.ranges[index - 1];
        if end < seq {
            return;
        }
        let mut replacement = Vec::with_capacity(2);
        if start < seq {
            replacement.push((start, seq - 1));
        }
        if seq < end {
            replacement.push((seq + 1, end));
        }
        self.ranges.splice(index - 1..index, replacement);
    }

    pub fn union(&mut self, other: &SeqSet) {
        for &(start, end) in &other.ranges {
            self.insert_range(start, end);
        }
    }

    /// Removes every sequence number above `max`; returns how many there were.
    pub fn truncate_above(&mut self, max: u64) -> u64 {
        let mut dropped = 0;
        while let Some(&(start, end)) = self.ranges.last() {
            if end <= max {
                break;
            }
            let first_dropped = start.max(max.saturating_add(1));
            dropped = (end - first_dropped)
                .saturating_add(1)
                .saturating_add(dropped);
            if start > max {
                self.ranges.pop();
            } else {
                self.ranges.last_mut().expect("checked above").1 = max;
            }
        }
        dropped
    }

    /// Whether every sequence number of `other` is in `self`.
    pub fn includes(&self, other: &SeqSet) -> bool {
        other.ranges.iter().all(|&(start, end)| {
            let index = self.ranges.partition_point(|&(s, _)| s <= start);
            index > 0 && self.ranges[index - 1].1 >= end
        })
    }
}

/// The dots a replica has seen, per writer.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct CausalContext {
    writers: BTreeMap<NodeId, SeqSet>,
}

impl CausalContext {
    pub fn contains(&self, dot: &Dot) -> bool {
        self.writers
            .get(&dot.writer)
            .is_some_and(|set| set.contains(dot.seq))
    }

    pub fn insert(&mut self, dot: &Dot) {
        self.writers
            .entry(dot.writer.clone())
            .or_default()
            .insert(dot.seq);
    }

    pub fn remove(&mut self, dot: &Dot) {
        if let Some(set) = self.writers.get_mut(&dot.writer) {
            set.remove(dot.seq);
            if set.is_empty() {
                self.writers.remove(&dot.writer);
            }
        }
    }

    /// Adds a writer's whole set; an empty set is not stored.
    pub fn insert_set(&mut self, writer: NodeId, set: &SeqSet) {
        if !set.is_empty() {
            self.writers.entry(writer).or_default().union(set);
        }
    }

    /// Joins two contexts: the union of their dots. Commutative, associative, idempotent.
    pub fn union(&mut self, other: &CausalContext) {
        for (writer, set) in &other.writers {
            self.insert_set(writer.clone(), set);
        }
    }

    /// Whether every dot of `other` is in `self`.
    pub fn includes(&self, other: &CausalContext) -> bool {
        other.writers.iter().all(|(writer, set)| {
            self.writers
                .get(writer)
                .is_some_and(|mine| mine.includes(set))
        })
    }

    pub fn get(&self, writer: &NodeId) -> Option<&SeqSet> {
        self.writers.get(writer)
    }

    /// The highest sequence number seen from `writer`, 0 if none.
    pub fn max_seq(&self, writer: &NodeId) -> u64 {
        self.writers.get(writer).map_or(0, SeqSet::max)
    }

    pub fn writers(&self) -> impl Iterator<Item = (&NodeId, &SeqSet)> {
        self.writers.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.writers.is_empty()
    }

    /// How many dots the context holds in all (saturating).
    pub fn count(&self) -> u64 {
        self.writers
            .values()
            .fold(0u64, |sum, set| sum.saturating_add(set.count()))
    }

    /// Drops dots no honest writer makes: sequence number 0 and those above [`MAX_SEQ`].
    /// Returns how many there were.
    pub fn sanitize(&mut self) -> u64 {
        let mut dropped = 0u64;
        self.writers.retain(|_, set| {
            dropped = dropped.saturating_add(set.truncate_above(MAX_SEQ));
            if set.contains(0) {
                set.remove(0);
                dropped = dropped.saturating_add(1);
            }
            !set.is_empty()
        });
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(inserts: &[(u64, u64)], expected: &[(u64, u64)]) {
        let set = SeqSet::from_ranges(inserts.iter().copied());
        assert_eq!(set.ranges(), expected, "inserting {inserts:?}");
    }

    #[test]
    fn ranges_coalesce() {
        check(&[(1, 3), (5, 6)], &[(1, 3), (5, 6)]);
        check(&[(1, 3), (4, 6)], &[(1, 6)]);
        check(&[(5, 6), (1, 3), (4, 4)], &[(1, 6)]);
        check(&[(1, 10), (3, 4)], &[(1, 10)]);
        check(&[(3, 4), (8, 9), (1, 20)], &[(1, 20)]);
        check(&[(7, 7), (1, 1), (4, 4)], &[(1, 1), (4, 4), (7, 7)]);
        check(
            &[(u64::MAX - 1, u64::MAX), (1, 1)],
            &[(1, 1), (u64::MAX - 1, u64::MAX)],
        );
    }

    #[test]
    fn remove_splits_ranges() {
        let mut set = SeqSet::from_ranges([(1, 10)]);
        set.remove(5);
        set.remove(1);
        set.remove(10);
        set.remove(42);
        assert_eq!(set.ranges(), &[(2, 4), (6, 9)]);
        assert!(!set.contains(5) && set.contains(6) && !set.contains(1));
        assert_eq!(set.count(), 7);
        assert_eq!(set.max(), 9);
    }

    #[test]
    fn truncation_drops_what_is_above() {
        let mut set = SeqSet::from_ranges([(1, 5), (8, 12), (20, 30)]);
        assert_eq!(set.truncate_above(10), 2 + 11);
        assert_eq!(set.ranges(), &[(1, 5), (8, 10)]);
        assert_eq!(set.truncate_above(100), 0);
        assert_eq!(set.truncate_above(0), 8);
        assert!(set.is_empty());
    }

    #[test]
    fn sanitize_drops_impossible_dots() {
        let writer = NodeId::new("a").unwrap();
        let mut context = CausalContext::default();
        context.insert_set(
            writer.clone(),
            &SeqSet::from_ranges([(0, 3), (MAX_SEQ - 1, u64::MAX)]),
        );
        assert_eq!(context.sanitize(), 1 + (u64::MAX - MAX_SEQ));
        assert_eq!(
            context.get(&writer).unwrap().ranges(),
            &[(1, 3), (MAX_SEQ - 1, MAX_SEQ)]
        );
        let mut all = CausalContext::default();
        all.insert_set(writer, &SeqSet::from_ranges([(0, u64::MAX)]));
        assert_eq!(all.count(), u64::MAX);
    }

    #[test]
    fn node_ids_are_validated() {
        assert!(NodeId::new("12D3KooWabc").is_ok());
        assert_eq!(NodeId::new("").unwrap_err().reason, "it is empty");
        assert!(NodeId::new("has space").is_err());
        assert!(NodeId::new("x".repeat(129)).is_err());
    }
}
