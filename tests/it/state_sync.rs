//! Deltas and digest sync on reachable states: a write's delta is the write, a digest answer
//! is exactly what the peer lacks, replicas converge, and nothing dropped comes back.

use std::collections::BTreeSet;

use officemesh::state::*;
use proptest::{prelude::*, sample::Index, strategy::ValueTree, test_runner::TestRunner};

use crate::office::{History, Office, Shape, Write, history, node_id, write};

/// A fresh replica holding exactly `state`, as seen at `physical_ms`.
fn replica_holding(state: &Delta, retention_ms: u64, physical_ms: u64) -> Replica {
    let mut replica = Replica::new(NodeId::new("observer").unwrap(), retention_ms);
    let report = replica.merge(state.clone(), &node_id(0), physical_ms);
    assert_eq!(report.rejected, vec![]);
    replica
}

/// Makes `writes` on replica `writer` of the office; after each, a replica that held the same
/// state and merged the write's delta (twice, as duplicates happen) holds the same state.
fn check_write_is_its_delta(mut office: Office, writer: usize, writes: &[Write]) {
    let physical_ms = office.physical_ms(writer);
    let retention_ms = office.retention_ms;
    let replica = &mut office.replicas[writer];
    // Whatever the replica has not dropped yet, the observer would drop on merging.
    replica.expire(physical_ms);
    replica.snapshot();
    let mut observer = replica_holding(replica.state(), retention_ms, physical_ms);
    assert_eq!(observer.state(), replica.state());
    for write in writes {
        let delta = match write.apply(replica, physical_ms) {
            Ok(delta) => delta,
            Err(WriteError::UnknownAlert(_)) => continue,
            Err(error) => panic!("{write:?}: {error}"),
        };
        for _ in 0..2 {
            let report = observer.merge(delta.clone(), replica.id(), physical_ms);
            assert_eq!(report.rejected, vec![]);
            assert_eq!(
                observer.state(),
                replica.state(),
                "merging the delta of {write:?} is not making the write"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn applying_a_write_equals_merging_its_delta(
        history in history(Shape::ROUGH),
        writer in any::<Index>(),
        writes in prop::collection::vec(write(), 1..8),
    ) {
        let office = Office::run(&history);
        let writer = writer.index(office.replicas.len());
        check_write_is_its_delta(office, writer, &writes);
    }
}

#[test]
fn every_kind_of_write_is_its_delta() {
    let history = History {
        nodes: 2,
        retention_ms: DEFAULT_RETENTION_MS,
        skew_ms: vec![0, 0],
        ops: vec![],
    };
    // Each kind twice: the second replaces the first.
    let writes: Vec<Write> = Write::every_kind()
        .into_iter()
        .flat_map(|write| [write.clone(), write])
        .collect();
    check_write_is_its_delta(Office::new(&history), 0, &writes);
    // And on a replica whose state already holds another node's writes at the same keys.
    let mut office = Office::new(&history);
    for write in Write::every_kind() {
        let physical_ms = office.physical_ms(1);
        let delta = write.apply(&mut office.replicas[1], physical_ms).unwrap();
        office.replicas[0].merge(delta, &node_id(1), physical_ms);
    }
    check_write_is_its_delta(office, 0, &writes);
}

/// Syncs `a` from `b` (b answers a's digest), then `b` from `a`, and checks each step against
/// the join of the whole states.
fn check_sync(office: &Office, a: usize, b: usize) {
    let (mut a, mut b) = (office.replicas[a].clone(), office.replicas[b].clone());
    let physical_ms = office.time_ms;

    let mut expected = a.state().clone();
    expected.join(b.state());
    let mut whole = a.clone();
    whole.merge(b.state().clone(), b.id(), physical_ms);

    let answer = b.missing_for(&a.digest());
    let report = a.merge(answer, b.id(), physical_ms);
    assert_eq!(report.rejected, vec![]);
    // Merging drops what has expired by now, and so does a joined state held at this time.
    expected.expire(a.now_ms(physical_ms), a.retention_ms());
    assert_eq!(
        a.state(),
        &expected,
        "a with b's answer is not a joined with b"
    );
    assert_eq!(
        a.state(),
        whole.state(),
        "a with b's answer is not a with b's whole state"
    );
    assert!(a.context().includes(b.context()));

    let answer = a.missing_for(&b.digest());
    b.merge(answer, a.id(), physical_ms);
    assert_eq!(
        a.state(),
        b.state(),
        "not converged after syncing both ways"
    );

    // A second exchange has nothing left to send.
    for (from, to) in [(&a, &b), (&b, &a)] {
        let answer = from.missing_for(&to.digest());
        assert_eq!(
            answer,
            Delta::default(),
            "{from} still sends something to {to}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Without clock skew, so that both sides judge expiry at the same time.
    #[test]
    fn a_digest_answer_is_exactly_what_is_missing(
        history in history(Shape::SHARED_CLOCK),
        a in any::<Index>(),
        b in any::<Index>(),
    ) {
        let office = Office::run(&history);
        let a = a.index(office.replicas.len());
        let b = b.index(office.replicas.len());
        check_sync(&office, a, b);
    }

    #[test]
    fn one_round_of_pairwise_sync_converges_the_office(
        history in history(Shape::SHARED_CLOCK),
    ) {
        let mut office = Office::run(&history);
        office.sync_all();
        // Every replica, also one restarted and not saved since, holds the same state.
        let first = office.replicas[0].state();
        for replica in &office.replicas {
            let differs = format!("{replica} differs from {}", office.replicas[0]);
            assert_eq!(replica.state(), first, "{differs}");
        }
    }

    /// With skewed clocks a replica ahead expires entries sooner, so replicas agree once
    /// they judge expiry at the same time: the latest any of them has reached.
    #[test]
    fn with_skewed_clocks_sync_converges_up_to_the_time_of_expiry(
        history in history(Shape::ROUGH),
    ) {
        let mut office = Office::run(&history);
        office.sync_all();
        let now_ms = (0..office.replicas.len())
            .map(|index| office.replicas[index].now_ms(office.physical_ms(index)))
            .max()
            .unwrap();
        let expired: Vec<Delta> = office
            .replicas
            .iter()
            .map(|replica| {
                let mut state = replica.state().clone();
                state.expire(now_ms, office.retention_ms);
                state
            })
            .collect();
        for (state, replica) in expired.iter().zip(&office.replicas) {
            let differs = format!("{replica} differs from {}", office.replicas[0]);
            assert_eq!(state, &expired[0], "{differs}");
        }
    }

    /// Deltas are states: merged in any order, with duplicates, they give the same state.
    #[test]
    fn the_order_deltas_arrive_in_does_not_matter(
        (history, order) in history(Shape::ROUGH).prop_flat_map(|history| {
            let ops = history.ops.len();
            (Just(history), prop::collection::vec(0..ops.max(1), 0..ops * 2 + 1))
        }),
    ) {
        let office = Office::run(&history);
        let physical_ms = office.time_ms;
        let deliver = |order: &mut dyn Iterator<Item = &Delta>| {
            let observer_id = NodeId::new("observer").unwrap();
            let mut observer = Replica::new(observer_id, office.retention_ms);
            for delta in order {
                let report = observer.merge(delta.clone(), &node_id(0), physical_ms);
                assert_eq!(report.rejected, vec![]);
            }
            observer.state().clone()
        };
        let in_order = deliver(&mut office.deltas.iter());
        let shuffled = deliver(
            &mut order
                .iter()
                .filter_map(|&index| office.deltas.get(index))
                .chain(office.deltas.iter().rev()),
        );
        assert_eq!(in_order, shuffled);
    }
}

fn held(replica: &Replica) -> BTreeSet<Dot> {
    replica.store().dots().map(|(_, dot)| dot.clone()).collect()
}

/// Every dot a replica has seen, held or not.
fn seen(replica: &Replica) -> BTreeSet<Dot> {
    let context = replica.context().writers().flat_map(|(writer, set)| {
        set.ranges()
            .iter()
            .flat_map(|&(start, end)| start..=end)
            .map(|seq| Dot::new(writer.clone(), seq))
    });
    context.chain(held(replica)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Along histories with expiry, skewed clocks and crashes, no replica ever holds a write
    /// it had seen and did not hold (expired, replaced, or only heard of): a write it holds
    /// is one it held a step before, or one it had never seen.
    #[test]
    fn a_dropped_write_never_comes_back(history in history(Shape::ROUGH)) {
        let mut office = Office::new(&history);
        let mut seen_before: Vec<BTreeSet<Dot>> = office.replicas.iter().map(seen).collect();
        let mut held_before: Vec<BTreeSet<Dot>> = office.replicas.iter().map(held).collect();
        for op in &history.ops {
            office.step(op);
            if let crate::office::Op::Crash { node } = op {
                // A restarted node is back at its last save: it forgets what it saw since.
                let index = office.node(*node);
                seen_before[index] = seen(&office.replicas[index]);
                held_before[index] = held(&office.replicas[index]);
            }
            for (index, replica) in office.replicas.iter().enumerate() {
                let held_now = held(replica);
                for dot in &held_now {
                    let held = held_before[index].contains(dot);
                    let seen = seen_before[index].contains(dot);
                    assert!(held || !seen, "{replica} holds {dot} again after {op:?}");
                }
                // What a replica has seen only grows, but for a crash.
                let seen_now = seen(replica);
                let forgot = !seen_now.is_superset(&seen_before[index]);
                assert!(!forgot, "{replica} forgot a dot after {op:?}");
                seen_before[index] = seen_now;
                held_before[index] = held_now;
            }
        }
    }
}

/// The generator reaches the cases the properties are about; otherwise they prove little.
#[test]
fn histories_reach_the_interesting_cases() {
    let mut runner = TestRunner::deterministic();
    let strategy = history(Shape::ROUGH);
    let mut totals = crate::office::Stats::default();
    let (mut concurrent_targets, mut concurrent_bindings, mut gaps) = (0, 0, 0);
    for _ in 0..200 {
        let history = strategy.new_tree(&mut runner).unwrap().current();
        let office = Office::run(&history);
        let stats = office.stats;
        totals.writes += stats.writes;
        totals.delivered += stats.delivered;
        totals.duplicated += stats.duplicated;
        totals.lost += stats.lost;
        totals.expired += stats.expired;
        totals.crashes += stats.crashes;
        totals.refused_unsaved += stats.refused_unsaved;
        for replica in &office.replicas {
            let store = replica.store();
            concurrent_targets += store.targets.keys().filter(|(_, w)| w.len() > 1).count();
            concurrent_bindings += store.people.keys().filter(|(_, w)| w.len() > 1).count();
            // A context with a gap: a delta lost or reordered and not yet repaired.
            gaps += replica
                .context()
                .writers()
                .filter(|(_, set)| set.ranges().len() > 1)
                .count();
        }
    }
    let reached = [
        ("writes", totals.writes),
        ("deliveries", totals.delivered),
        ("duplicates", totals.duplicated),
        ("losses", totals.lost),
        ("expired entries", totals.expired),
        ("crashes", totals.crashes),
        ("writes refused before a save", totals.refused_unsaved),
        ("concurrent targets", concurrent_targets),
        ("concurrent bindings", concurrent_bindings),
        ("contexts with gaps", gaps),
    ];
    for (what, count) in reached {
        assert!(
            count >= 10,
            "200 histories reached only {count} {what}: {reached:?}"
        );
    }
}
