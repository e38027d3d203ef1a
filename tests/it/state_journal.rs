//! The journal's lattice argument, over reachable histories (see `office`): a node restored
//! from its last save (the base) and the part of its pending changes it keeps
//! (`keep::kept_by`) holds nothing its replica had dropped, holds every write it must keep
//! (its own, bindings, targets, alerts) exactly as the replica holds them, and never hands
//! out a sequence number again.

use officemesh::state::{keep::kept_by, *};
use proptest::prelude::*;

use crate::office::{History, Office, Shape, history};

/// `state` as it stands at `now_ms`: what has expired by then dropped, as a replica whose
/// clock reads `now_ms` would.
fn expired(state: &Delta, now_ms: u64, retention_ms: u64) -> Delta {
    let mut state = state.clone();
    state.expire(now_ms, retention_ms);
    state
}

fn join(a: &Delta, b: &Delta) -> Delta {
    let mut joined = a.clone();
    joined.join(b);
    joined
}

/// Checks every node of the office once `history` has played.
fn check_restores(history: &History) {
    let office = Office::run(history);
    for (index, replica) in office.replicas.iter().enumerate() {
        let me = replica.id();
        let base = office.saves[index].clone();
        let pending = &office.pending[index];
        let full = replica.state();
        let now_ms = replica.now_ms(office.physical_ms(index));
        let retention_ms = office.retention_ms;

        // The pending changes are what happened since the base: joined, they give the
        // replica's state (up to what expiry dropped meanwhile).
        assert_eq!(
            expired(&join(&base.state, pending), now_ms, retention_ms),
            expired(full, now_ms, retention_ms),
            "{replica}: base ⊔ pending is not the replica's state"
        );

        let kept = kept_by(pending, me);
        assert_eq!(join(&kept, pending), *pending, "{replica}: kept ≰ pending");

        let mut restored = Replica::restore(base, retention_ms);
        restored.replay(&kept);
        // Below the state: a restore never holds what the replica dropped.
        assert_eq!(
            join(restored.state(), full),
            *full,
            "{replica}: the restored state is not below the replica's"
        );
        // And it holds exactly the writes the node keeps, as the replica holds them.
        assert_eq!(
            kept_by(&expired(restored.state(), now_ms, retention_ms), me).store,
            kept_by(&expired(full, now_ms, retention_ms), me).store,
            "{replica}: the restore lost or revived a write the node keeps"
        );
        assert!(
            restored.seq() >= replica.seq(),
            "{replica}: restored at {}, below a number it used",
            restored.seq()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_restore_from_the_kept_journal_is_below_the_state_and_keeps_what_it_must(
        history in history(Shape::ROUGH),
    ) {
        check_restores(&history);
    }

    #[test]
    fn the_same_with_one_clock_for_all(history in history(Shape::SHARED_CLOCK)) {
        check_restores(&history);
    }
}
