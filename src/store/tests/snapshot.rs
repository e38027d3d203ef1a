//! The replica through the store: what comes back equals what was saved, and a restored
//! replica never hands out a sequence number it may have used.

use super::*;

#[test]
fn a_fresh_store_has_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(open(dir.path()).load_snapshot().unwrap(), None);
}

#[test]
fn snapshot_round_trip_restores_the_state_and_continues_above_every_number() {
    let dir = tempfile::tempdir().unwrap();
    let id = node_id(NODE_A);
    let mut used = Vec::new();
    let (state, clock) = {
        let mut store = open(dir.path());
        let mut replica = saved_replica(&mut store, NODE_A);
        used.extend(
            write_everything(&mut replica, T0)
                .iter()
                .map(|delta| max_seq(delta, &id)),
        );
        // A peer's writes, merged, are part of what is saved.
        let mut peer = Replica::new(node_id(NODE_B), DEFAULT_RETENTION_MS);
        peer.snapshot();
        for delta in write_everything(&mut peer, T0) {
            let report = replica.merge(delta, peer.id(), T0 + 60_000);
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        }
        store.save_snapshot(&replica.snapshot()).unwrap();
        (replica.state().clone(), replica.clock().last())
    };

    let mut store = open(dir.path());
    let snapshot = store.load_snapshot().unwrap().expect("a saved snapshot");
    let mut restored = Replica::restore(snapshot, DEFAULT_RETENTION_MS);
    assert_eq!(restored.state(), &state);
    assert_eq!(restored.clock().last(), clock);
    assert_eq!(
        restored.state().store.readings.len(),
        4,
        "2 sensors of each node"
    );

    store.save_snapshot(&restored.snapshot()).unwrap();
    let delta = restored
        .record_reading(
            sensor("desk-1"),
            room("kitchen"),
            Quantity::Temperature,
            22.5,
            "°C",
            T0 + 120_000,
        )
        .unwrap();
    let next = max_seq(&delta, &id);
    assert!(
        used.iter().all(|&seq| seq < next),
        "new write {next} must be above every earlier one {used:?}"
    );
}

/// kill -9 as the store sees it: writes after the last save are lost with the process, but
/// the restored replica continues above the whole saved lease, so none of their numbers is
/// handed out again.
#[test]
fn numbers_used_after_the_last_save_are_never_reused_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let id = node_id(NODE_A);
    let mut used_after_save = Vec::new();
    {
        let mut store = open(dir.path());
        let mut replica = saved_replica(&mut store, NODE_A);
        write_everything(&mut replica, T0);
        store.save_snapshot(&replica.snapshot()).unwrap();
        used_after_save.extend(
            write_everything(&mut replica, T0 + 60_000)
                .iter()
                .map(|delta| max_seq(delta, &id)),
        );
        // The crash: the store goes away without another save.
    }
    let mut store = open(dir.path());
    let mut restored = Replica::restore(
        store.load_snapshot().unwrap().unwrap(),
        DEFAULT_RETENTION_MS,
    );
    store.save_snapshot(&restored.snapshot()).unwrap();
    for delta in write_everything(&mut restored, T0 + 120_000) {
        let seq = max_seq(&delta, &id);
        assert!(
            used_after_save.iter().all(|&used| used < seq),
            "write {seq} reuses a number used before the crash: {used_after_save:?}"
        );
    }
}

#[test]
fn an_older_lease_of_the_same_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut replica = saved_replica(&mut store, NODE_A);
    write_everything(&mut replica, T0);
    let older = replica.snapshot();
    write_everything(&mut replica, T0 + 60_000);
    let newer = replica.snapshot();
    store.save_snapshot(&newer).unwrap();

    let error = store.save_snapshot(&older).unwrap_err();
    assert!(
        matches!(error, StoreError::StaleSnapshot { saved, offered, .. }
            if saved == newer.seq_ceiling && offered == older.seq_ceiling),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&store.path().display().to_string())
    );
    assert_eq!(store.load_snapshot().unwrap(), Some(newer));
}

#[test]
fn a_saved_snapshot_that_does_not_decode_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    saved_replica(&mut store, NODE_A);
    store
        .conn
        .execute("UPDATE snapshot SET encoded = x'08011a'", [])
        .unwrap();
    let error = store.load_snapshot().unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(message.contains("does not decode"), "{message}");
    assert!(message.contains(NODE_A), "{message}");
    assert!(
        message.contains(&store.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn the_database_runs_in_wal_mode_with_normal_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    // A synced save switches to FULL and must switch back.
    saved_replica(&mut store, NODE_A);
    let mode: String = store
        .conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    let synchronous: i64 = store
        .conn
        .pragma_query_value(None, "synchronous", |row| row.get(0))
        .unwrap();
    let foreign_keys: bool = store
        .conn
        .pragma_query_value(None, "foreign_keys", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(synchronous, 1, "NORMAL");
    assert!(foreign_keys);
    assert_eq!(schema::version(&store.conn).unwrap(), SCHEMA_VERSION);
}

#[test]
fn close_checkpoints_the_log_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut replica = saved_replica(&mut store, NODE_A);
    write_everything(&mut replica, T0);
    let snapshot = replica.snapshot();
    store.save_snapshot(&snapshot).unwrap();
    let path = store.path().to_owned();
    store.close().unwrap();

    let wal = path.with_extension("db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the log is empty after close"
    );
    assert_eq!(open(dir.path()).load_snapshot().unwrap(), Some(snapshot));
}
