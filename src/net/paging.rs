//! Splitting a delta into pages that each fit a byte budget and each merge correctly alone.
//!
//! A page must never claim to have seen a dot whose write it does not carry: a receiver that
//! merges a context holding dot `d` without `d`'s write takes `d` as replaced and would then
//! refuse the write forever. So a page holds, for each writer in it, that writer's context
//! restricted to a range of sequence numbers *and* every write of that writer in the range.
//! Pages are cut in (writer, sequence number) order; a [`Cursor`] names where the next page
//! starts, so a requester can ask for it without the responder keeping any state.

use std::{collections::BTreeMap, ops::Bound};

use crate::{
    state::{
        Alert, Binding, Delta, DotMap, Entry, MAX_SEQ, NodeId, NodeInfo, Reading, SeqSet, Sighting,
        Store, Target,
    },
    wire,
};

/// Calls a generic function once per part of the office state.
macro_rules! for_each_part {
    ($function:ident ( $($argument:expr),* )) => {
        $function::<NodeInfo>($($argument),*);
        $function::<Reading>($($argument),*);
        $function::<Sighting>($($argument),*);
        $function::<Binding>($($argument),*);
        $function::<Target>($($argument),*);
        $function::<Alert>($($argument),*);
    };
}

/// Where the previous page ended: every dot up to and including (`writer`, `seq`) in
/// (writer, sequence number) order has been sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub writer: NodeId,
    pub seq: u64,
}

/// One page of a delta, and where the next one starts (`None`: this was the last).
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub delta: Delta,
    pub next: Option<Cursor>,
}

/// The first page of `delta` after `after`, at most `budget` bytes once encoded.
///
/// A single write larger than the budget (impossible with the core's value limits) still
/// makes a page of its own, so paging always advances.
pub fn first_page(delta: &Delta, after: Option<&Cursor>, budget: usize) -> Page {
    let units = by_writer(delta, after);
    // Writers are encoded one by one to estimate sizes; the page shares one node table, so
    // its indices can be a byte or two longer than alone. Fill to 3/4 of the budget on the
    // estimate, then check the real size.
    let estimate_budget = budget / 4 * 3;
    let mut taken: Vec<(&NodeId, &Delta)> = Vec::new();
    let mut estimate = 0usize;
    for (writer, unit) in &units {
        let size = wire::encode_delta(unit).len();
        if taken.is_empty() && size > estimate_budget {
            // Alone it is too large: send a prefix of this writer's sequence numbers.
            return bisect(writer, unit, after, budget, &units);
        }
        if estimate + size > estimate_budget {
            break;
        }
        estimate += size;
        taken.push((writer, unit));
    }
    loop {
        let mut page = Delta::default();
        for (_, unit) in &taken {
            page.join(unit);
        }
        if taken.len() <= 1 || wire::encode_delta(&page).len() <= budget {
            let next = match taken.last() {
                Some((last, _)) if units.len() > taken.len() => Some(Cursor {
                    writer: (*last).clone(),
                    seq: MAX_SEQ,
                }),
                _ => None,
            };
            return Page { delta: page, next };
        }
        taken.pop();
    }
}

/// All pages of `delta`, in order.
pub fn pages(delta: &Delta, budget: usize) -> Vec<Delta> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = first_page(delta, after.as_ref(), budget);
        pages.push(page.delta);
        match page.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
    }
}

/// The longest prefix of one writer's sequence numbers that fits the budget.
fn bisect(
    writer: &NodeId,
    unit: &Delta,
    after: Option<&Cursor>,
    budget: usize,
    units: &BTreeMap<NodeId, Delta>,
) -> Page {
    let low = match after {
        Some(cursor) if cursor.writer == *writer => cursor.seq + 1,
        _ => 1,
    };
    let mut seqs: Vec<u64> = unit.store.dots().map(|(_, dot)| dot.seq).collect();
    seqs.sort_unstable();
    // The largest k such that the writes with the k smallest numbers fit; at least one.
    let fits =
        |k: usize| wire::encode_delta(&slice(unit, writer, low, seqs[k - 1])).len() <= budget;
    let (mut good, mut bad) = (1usize, seqs.len() + 1);
    while bad - good > 1 {
        let middle = good + (bad - good) / 2;
        if middle <= seqs.len() && fits(middle) {
            good = middle;
        } else {
            bad = middle;
        }
    }
    let more_writers = units
        .range::<NodeId, _>((Bound::Excluded(writer), Bound::Unbounded))
        .next()
        .is_some();
    let next_writer = || {
        more_writers.then(|| Cursor {
            writer: writer.clone(),
            seq: MAX_SEQ,
        })
    };
    let Some(&high) = seqs.get(good - 1) else {
        // No writes, only a context too large for the budget: send it whole.
        return Page {
            delta: unit.clone(),
            next: next_writer(),
        };
    };
    if good == seqs.len() {
        return Page {
            delta: slice(unit, writer, low, MAX_SEQ),
            next: next_writer(),
        };
    }
    Page {
        delta: slice(unit, writer, low, high),
        next: Some(Cursor {
            writer: writer.clone(),
            seq: high,
        }),
    }
}

/// Splits `delta` by writer, keeping only what comes after `after`.
fn by_writer(delta: &Delta, after: Option<&Cursor>) -> BTreeMap<NodeId, Delta> {
    let keep = |writer: &NodeId, seq: u64| match after {
        None => true,
        Some(cursor) => *writer > cursor.writer || (*writer == cursor.writer && seq > cursor.seq),
    };
    let mut units: BTreeMap<NodeId, Delta> = BTreeMap::new();
    for (writer, set) in delta.context.writers() {
        let low = match after {
            Some(cursor) if cursor.writer == *writer => cursor.seq.saturating_add(1),
            Some(cursor) if cursor.writer > *writer => continue,
            _ => 1,
        };
        let kept = clip(set, low, MAX_SEQ);
        if !kept.is_empty() {
            units
                .entry(writer.clone())
                .or_default()
                .context
                .insert_set(writer.clone(), &kept);
        }
    }
    fn part<E: Entry>(
        from: &Store,
        units: &mut BTreeMap<NodeId, Delta>,
        keep: &impl Fn(&NodeId, u64) -> bool,
    ) {
        for (key, dot, value) in E::part(from).iter() {
            if keep(&dot.writer, dot.seq) {
                let unit = units.entry(dot.writer.clone()).or_default();
                E::part_mut(&mut unit.store).insert(key.clone(), dot.clone(), value.clone());
            }
        }
    }
    for_each_part!(part(&delta.store, &mut units, &keep));
    units
}

/// The part of a one-writer delta with sequence numbers in `low..=high`.
fn slice(unit: &Delta, writer: &NodeId, low: u64, high: u64) -> Delta {
    let mut out = Delta::default();
    if let Some(set) = unit.context.get(writer) {
        out.context
            .insert_set(writer.clone(), &clip(set, low, high));
    }
    fn part<E: Entry>(from: &Store, to: &mut Store, low: u64, high: u64) {
        let target: &mut DotMap<E> = E::part_mut(to);
        for (key, dot, value) in E::part(from).iter() {
            if (low..=high).contains(&dot.seq) {
                target.insert(key.clone(), dot.clone(), value.clone());
            }
        }
    }
    for_each_part!(part(&unit.store, &mut out.store, low, high));
    out
}

fn clip(set: &SeqSet, low: u64, high: u64) -> SeqSet {
    SeqSet::from_ranges(set.ranges().iter().filter_map(|&(start, end)| {
        let (start, end) = (start.max(low), end.min(high));
        (start <= end).then_some((start, end))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MIN_PLAUSIBLE_WALL_MS, Quantity, Replica, Room, SensorId};

    const NOW_MS: u64 = MIN_PLAUSIBLE_WALL_MS + 1_000_000;

    /// A replica holding `writers` writers' readings, `per_writer` sensors each, each written
    /// twice (so contexts hold replaced dots too).
    fn office(writers: usize, per_writer: usize) -> Replica {
        let mut all = Replica::new(NodeId::new("collector").unwrap(), u64::MAX / 4);
        for w in 0..writers {
            let id = NodeId::new(format!("writer-{w:03}")).unwrap();
            let mut replica = Replica::new(id.clone(), u64::MAX / 4);
            replica.snapshot();
            for round in 0..2 {
                for s in 0..per_writer {
                    let delta = replica
                        .record_reading(
                            SensorId::new(&format!("sensor-{s}")).unwrap(),
                            Room::new("open space").unwrap(),
                            Quantity::Temperature,
                            20.0 + round as f64,
                            "°C",
                            NOW_MS,
                        )
                        .unwrap();
                    all.merge(delta, &id, NOW_MS);
                }
            }
        }
        all
    }

    /// Pages every answer of `from` to a fresh replica, asking again after each page as the
    /// sync protocol does, and checks that it ends identical.
    fn check_sync_in_pages(from: &Replica, budget: usize) -> usize {
        let mut to = Replica::new(NodeId::new("newcomer").unwrap(), u64::MAX / 4);
        let mut after = None;
        let mut count = 0;
        loop {
            let missing = from.missing_for(&to.digest());
            let page = first_page(&missing, after.as_ref(), budget);
            let size = wire::encode_delta(&page.delta).len();
            assert!(size <= budget, "page of {size} bytes over {budget}");
            let report = to.merge(page.delta, from.id(), NOW_MS);
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
            count += 1;
            assert!(count < 10_000, "paging does not advance");
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(to.state(), from.state());
        count
    }

    #[test]
    fn a_small_answer_is_one_page() {
        let from = office(3, 2);
        assert_eq!(check_sync_in_pages(&from, wire::MAX_DELTA_BYTES), 1);
    }

    #[test]
    fn many_writers_are_split_between_writers() {
        let from = office(40, 5);
        let whole = wire::encode_delta(&from.missing_for(&Default::default())).len();
        let count = check_sync_in_pages(&from, whole / 5);
        assert!((5..=12).contains(&count), "{count} pages");
    }

    #[test]
    fn one_large_writer_is_split_by_sequence_number() {
        let from = office(2, 300);
        let whole = wire::encode_delta(&from.missing_for(&Default::default())).len();
        let count = check_sync_in_pages(&from, whole / 10);
        assert!(count >= 10, "{count} pages");
    }

    #[test]
    fn pages_in_any_order_join_to_the_whole() {
        let from = office(7, 40);
        let whole = from.missing_for(&Default::default());
        let size = wire::encode_delta(&whole).len();
        let mut all = pages(&whole, size / 6);
        assert!(all.len() >= 6);
        all.reverse();
        let mut to = Replica::new(NodeId::new("newcomer").unwrap(), u64::MAX / 4);
        for page in all {
            assert!(to.merge(page, from.id(), NOW_MS).rejected.is_empty());
        }
        assert_eq!(to.state(), from.state());
    }

    #[test]
    fn a_page_never_claims_a_dot_it_does_not_carry() {
        let from = office(5, 30);
        let whole = from.missing_for(&Default::default());
        let size = wire::encode_delta(&whole).len();
        for page in pages(&whole, size / 8) {
            for (_, dot) in whole.store.dots() {
                if page.context.contains(dot) {
                    assert!(
                        page.store.dots().any(|(_, carried)| carried == dot),
                        "page claims {dot} without its write"
                    );
                }
            }
        }
    }
}
