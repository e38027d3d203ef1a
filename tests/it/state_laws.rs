//! The lattice laws of every CRDT in the core: each join is commutative, associative and
//! idempotent. Sets of sequence numbers and contexts are checked against a plain set model;
//! dot maps and whole office states are taken from reachable histories (see `office`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Debug,
};

use officemesh::state::*;
use proptest::{prelude::*, sample::Index};

use crate::office::{History, Office, Shape, history, node_id};

/// Asserts the three laws of a join on three values.
fn check_lattice<T: Clone + PartialEq + Debug>(
    what: &str,
    [x, y, z]: [&T; 3],
    join: impl Fn(&T, &T) -> T,
) {
    assert_eq!(join(x, y), join(y, x), "{what}: join is not commutative");
    assert_eq!(
        join(&join(x, y), z),
        join(x, &join(y, z)),
        "{what}: join is not associative"
    );
    assert_eq!(join(x, x), *x, "{what}: join is not idempotent");
}

// ---- SeqSet ----

/// A set of sequence numbers, with the plain set it should equal.
fn seq_set() -> impl Strategy<Value = (SeqSet, BTreeSet<u64>)> {
    prop::collection::vec((1..40u64, 0..4u64), 0..6).prop_map(|ranges| {
        let set = SeqSet::from_ranges(ranges.iter().map(|&(start, len)| (start, start + len)));
        let model = ranges
            .iter()
            .flat_map(|&(start, len)| start..=start + len)
            .collect();
        (set, model)
    })
}

/// Asserts that `set` holds exactly `model`, as sorted, disjoint, non-adjacent ranges: the
/// one representation of a set, so that `==` on sets means equal sets.
fn check_seq_set(set: &SeqSet, model: &BTreeSet<u64>) {
    for window in set.ranges().windows(2) {
        assert!(
            window[0].1 + 1 < window[1].0,
            "ranges not normalised: {set:?}"
        );
    }
    for &(start, end) in set.ranges() {
        assert!(start <= end, "empty range in {set:?}");
    }
    let held: BTreeSet<u64> = set
        .ranges()
        .iter()
        .flat_map(|&(start, end)| start..=end)
        .collect();
    assert_eq!(&held, model, "{set:?}");
    for seq in 0..50 {
        assert_eq!(
            set.contains(seq),
            model.contains(&seq),
            "{set:?} contains {seq}"
        );
    }
    assert_eq!(set.count(), model.len() as u64);
    assert_eq!(set.max(), model.last().copied().unwrap_or(0));
    assert_eq!(set.is_empty(), model.is_empty());
}

fn union(x: &SeqSet, y: &SeqSet) -> SeqSet {
    let mut joined = x.clone();
    joined.union(y);
    joined
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn seq_set_union_is_a_lattice(
        (x, x_model) in seq_set(),
        (y, y_model) in seq_set(),
        (z, _) in seq_set(),
    ) {
        check_seq_set(&x, &x_model);
        check_lattice("SeqSet::union", [&x, &y, &z], union);
        let joined = union(&x, &y);
        check_seq_set(&joined, &x_model.union(&y_model).copied().collect());
        assert!(joined.includes(&x) && joined.includes(&y));
    }

    #[test]
    fn seq_set_remove_and_includes_follow_the_set_model(
        (mut x, mut x_model) in seq_set(),
        (y, y_model) in seq_set(),
        removed in prop::collection::vec(0..45u64, 0..6),
    ) {
        assert_eq!(x.includes(&y), x_model.is_superset(&y_model), "{x:?} includes {y:?}");
        for seq in removed {
            x.remove(seq);
            x_model.remove(&seq);
            check_seq_set(&x, &x_model);
        }
    }
}

// ---- CausalContext ----

/// A causal context over three writers, with the set of dots it should equal.
fn context() -> impl Strategy<Value = (CausalContext, BTreeSet<Dot>)> {
    prop::collection::vec((0..3usize, 1..20u64), 0..12).prop_map(|dots| {
        let dots: BTreeSet<Dot> = dots
            .into_iter()
            .map(|(writer, seq)| Dot::new(node_id(writer), seq))
            .collect();
        let mut context = CausalContext::default();
        for dot in &dots {
            context.insert(dot);
        }
        (context, dots)
    })
}

fn dots_of(context: &CausalContext) -> BTreeSet<Dot> {
    context
        .writers()
        .flat_map(|(writer, set)| {
            set.ranges()
                .iter()
                .flat_map(|&(start, end)| start..=end)
                .map(|seq| Dot::new(writer.clone(), seq))
        })
        .collect()
}

fn context_union(x: &CausalContext, y: &CausalContext) -> CausalContext {
    let mut joined = x.clone();
    joined.union(y);
    joined
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn causal_context_union_is_a_lattice(
        (x, x_dots) in context(),
        (y, y_dots) in context(),
        (z, _) in context(),
    ) {
        assert_eq!(dots_of(&x), x_dots);
        check_lattice("CausalContext::union", [&x, &y, &z], context_union);
        let joined = context_union(&x, &y);
        assert_eq!(dots_of(&joined), x_dots.union(&y_dots).cloned().collect());
        assert!(joined.includes(&x) && joined.includes(&y));
        assert_eq!(x.includes(&y), x_dots.is_superset(&y_dots));
        let both = x_dots.intersection(&y_dots).count();
        assert_eq!(joined.count(), (x_dots.len() + y_dots.len() - both) as u64);
    }

    #[test]
    fn causal_context_remove_forgets_exactly_one_dot(
        (mut x, mut x_dots) in context(),
        removed in prop::collection::vec((0..3usize, 1..20u64), 0..6),
    ) {
        for (writer, seq) in removed {
            let dot = Dot::new(node_id(writer), seq);
            x.remove(&dot);
            x_dots.remove(&dot);
            assert_eq!(dots_of(&x), x_dots);
            assert!(!x.contains(&dot));
        }
        // A writer with nothing left is not kept, so that equal sets of dots compare equal.
        assert!(x.writers().all(|(_, set)| !set.is_empty()));
    }
}

// ---- the hybrid logical clock ----

fn hlc() -> impl Strategy<Value = Hlc> {
    (0..4u64, 0..3u32).prop_map(|(wall, logical)| Hlc::new(MIN_PLAUSIBLE_WALL_MS + wall, logical))
}

/// A clock that started at `last` and observed `stamps`, in that order.
fn observed(last: Hlc, stamps: &[Hlc]) -> Clock {
    let mut clock = Clock::restore(last);
    for &stamp in stamps {
        clock.observe(stamp);
    }
    clock
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hlc_max_and_clock_observe_are_a_lattice(x in hlc(), y in hlc(), z in hlc()) {
        check_lattice("Hlc::max", [&x, &y, &z], |a, b| (*a).max(*b));
        // Observing is joining a stamp into the clock: the order and repetition of what a
        // clock hears do not matter.
        check_lattice("Clock::observe", [&x, &y, &z], |a, b| observed(*a, &[*b]).last());
        assert_eq!(observed(x, &[y, z]), observed(x, &[z, y, z, y]));
        assert_eq!(observed(x, &[y, z]).last(), x.max(y).max(z));
    }

    #[test]
    fn clock_ticks_above_everything_it_issued_or_heard(
        steps in prop::collection::vec((any::<bool>(), hlc(), 0..4u64), 1..20),
    ) {
        let mut clock = Clock::default();
        let mut highest = Hlc::ZERO;
        for (tick, stamp, physical) in steps {
            if tick {
                // The physical clock may go backwards: stamps still grow.
                let issued = clock.tick(MIN_PLAUSIBLE_WALL_MS + physical);
                assert!(issued > highest, "{issued} not above {highest}");
                highest = issued;
            } else {
                clock.observe(stamp);
                highest = highest.max(stamp);
            }
            assert_eq!(clock.last(), highest);
        }
    }
}

// ---- dot maps, one part at a time ----

/// One part of an office state, with the context it is joined under.
type PartState<E> = (DotMap<E>, CausalContext);

fn part_of<E: Entry>(state: &Delta) -> PartState<E> {
    (E::part(&state.store).clone(), state.context.clone())
}

fn part_join<E: Entry>(
    (map, context): &PartState<E>,
    (other, other_context): &PartState<E>,
) -> PartState<E> {
    let mut joined = map.clone();
    joined.join(context, other, other_context);
    (joined, context_union(context, other_context))
}

fn check_part_lattice<E: Entry>(states: [&Delta; 3]) {
    let [x, y, z] = states.map(part_of::<E>);
    check_lattice(E::PART.name(), [&x, &y, &z], part_join::<E>);
}

/// Three states reached by one history: replicas' states, write deltas or sync answers.
fn three_states(history: &History, picks: &[Index; 3]) -> [Delta; 3] {
    let states = Office::run(history).states();
    if states.is_empty() {
        return [Delta::default(), Delta::default(), Delta::default()];
    }
    picks.each_ref().map(|pick| pick.get(&states).clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn owner_register_join_is_a_lattice(
        history in history(Shape::ROUGH),
        picks in any::<[Index; 3]>(),
    ) {
        let [x, y, z] = three_states(&history, &picks);
        check_part_lattice::<Reading>([&x, &y, &z]);
        check_part_lattice::<NodeInfo>([&x, &y, &z]);
        check_part_lattice::<Sighting>([&x, &y, &z]);
        check_part_lattice::<Alert>([&x, &y, &z]);
    }

    #[test]
    fn multi_value_join_is_a_lattice(
        history in history(Shape::ROUGH),
        picks in any::<[Index; 3]>(),
    ) {
        let [x, y, z] = three_states(&history, &picks);
        check_part_lattice::<Binding>([&x, &y, &z]);
        check_part_lattice::<Target>([&x, &y, &z]);
    }

    #[test]
    fn whole_state_join_is_a_lattice(
        history in history(Shape::ROUGH),
        picks in any::<[Index; 3]>(),
    ) {
        let [x, y, z] = three_states(&history, &picks);
        check_lattice("Delta::join", [&x, &y, &z], |a, b| {
            let mut joined = a.clone();
            joined.join(b);
            joined
        });
    }
}

// ---- the dot-store join rule, by example ----

/// A part state from `(seq, value)` writes of `node-0` at one key, and the seqs seen.
fn targets(held: &[(u64, u8)], seen: &[u64]) -> PartState<Target> {
    let key = TargetKey {
        room: crate::office::room(0),
        quantity: Quantity::Temperature,
    };
    let mut map = DotMap::default();
    let mut context = CausalContext::default();
    for &(seq, value) in held {
        let dot = Dot::new(node_id(0), seq);
        context.insert(&dot);
        map.insert(
            key.clone(),
            dot,
            Target {
                value: f64::from(value),
                set_by: crate::office::person(0),
                at: Hlc::new(MIN_PLAUSIBLE_WALL_MS, seq as u32),
            },
        );
    }
    for &seq in seen {
        context.insert(&Dot::new(node_id(0), seq));
    }
    (map, context)
}

fn held_seqs(map: &DotMap<Target>) -> BTreeMap<u64, f64> {
    map.iter()
        .map(|(_, dot, target)| (dot.seq, target.value))
        .collect()
}

fn check_join(left: PartState<Target>, right: PartState<Target>, expected: &[(u64, u8)]) {
    let (joined, _) = part_join(&left, &right);
    let expected: BTreeMap<u64, f64> = expected
        .iter()
        .map(|&(seq, value)| (seq, f64::from(value)))
        .collect();
    assert_eq!(
        held_seqs(&joined),
        expected,
        "joining {left:?} and {right:?}"
    );
}

#[test]
fn a_write_survives_unless_a_side_that_saw_it_dropped_it() {
    // Both hold it.
    check_join(
        targets(&[(1, 20)], &[]),
        targets(&[(1, 20)], &[]),
        &[(1, 20)],
    );
    // One side never saw it.
    check_join(targets(&[(1, 20)], &[]), targets(&[], &[]), &[(1, 20)]);
    check_join(targets(&[], &[]), targets(&[(1, 20)], &[]), &[(1, 20)]);
    // One side saw it and replaced it.
    check_join(
        targets(&[(1, 20)], &[]),
        targets(&[(2, 21)], &[1]),
        &[(2, 21)],
    );
    // Concurrent writes are both kept.
    check_join(
        targets(&[(1, 20)], &[]),
        targets(&[(2, 21)], &[]),
        &[(1, 20), (2, 21)],
    );
    // A side that saw a write but never held it still drops it (it learnt of it as replaced).
    check_join(targets(&[(1, 20)], &[]), targets(&[], &[1, 2]), &[]);
}
