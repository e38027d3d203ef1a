//! The journal of deltas under the base snapshot: appends come back on load, a new base
//! folds them, a version 1 file keeps its snapshot, and a bad row is refused by name.

use rusqlite::Connection;

use super::*;

/// A replica of `NODE_A` whose first lease is saved, with every kind of write made after
/// the save (so only the journal holds them), and the deltas of those writes.
fn written_after_the_base(store: &mut Store) -> (Replica, Vec<Delta>) {
    let mut replica = saved_replica(store, NODE_A);
    let deltas = write_everything(&mut replica, T0);
    (replica, deltas)
}

fn journal_rows(store: &Store) -> i64 {
    store
        .conn
        .query_row("SELECT count(*) FROM journal", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn appended_deltas_are_replayed_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let (state, seq) = {
        let mut store = open(dir.path());
        let (mut replica, deltas) = written_after_the_base(&mut store);
        for (index, delta) in deltas.iter().enumerate() {
            let sync = if index % 2 == 0 {
                SyncMode::Full
            } else {
                SyncMode::Normal
            };
            store.append_journal(delta, sync).unwrap();
        }
        // A peer's writes come in through a merge: what it admitted is journaled too.
        let mut peer = Replica::new(node_id(NODE_B), DEFAULT_RETENTION_MS);
        peer.snapshot();
        for delta in write_everything(&mut peer, T0) {
            let (report, admitted) = replica.merge_admitted(delta, peer.id(), T0 + 60_000);
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
            store.append_journal(&admitted, SyncMode::Normal).unwrap();
        }
        assert_eq!(journal_rows(&store), 14);
        (replica.state().clone(), replica.seq())
        // Dropped without a close or a new base: what a kill leaves.
    };

    let store = open(dir.path());
    let saved = store.load().unwrap().expect("a saved replica");
    assert_eq!(saved.journal.len(), 14);
    assert_eq!(
        saved.base.state,
        Delta::default(),
        "the base is the empty start"
    );
    let restored = saved.restore(DEFAULT_RETENTION_MS);
    assert_eq!(restored.state(), &state);
    assert!(restored.seq() >= seq, "continues above every number used");
    assert!(
        restored.clock().last().wall_ms >= T0 + 7000,
        "the clock is above every replayed stamp: {:?}",
        restored.clock().last()
    );
}

#[test]
fn a_new_base_deletes_the_journal_and_loads_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let (mut replica, deltas) = written_after_the_base(&mut store);
    for delta in &deltas {
        store.append_journal(delta, SyncMode::Full).unwrap();
    }
    let before = store.load().unwrap().unwrap().restore(DEFAULT_RETENTION_MS);
    assert_eq!(before.state(), replica.state());

    store.save_snapshot(&replica.snapshot()).unwrap();
    assert_eq!(journal_rows(&store), 0);
    assert!(!store.journal_outgrew_base());
    drop(store);
    let saved = open(dir.path()).load().unwrap().unwrap();
    assert!(saved.journal.is_empty());
    assert_eq!(saved.restore(DEFAULT_RETENTION_MS).state(), replica.state());
}

#[test]
fn the_journal_outgrows_its_base_past_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut replica = saved_replica(&mut store, NODE_A);
    let mut appended = 0;
    let mut at = T0;
    while !store.journal_outgrew_base() {
        at += 1000;
        let delta = replica
            .record_reading(
                sensor("desk-1"),
                room("lab"),
                Quantity::Temperature,
                20.0,
                "°C",
                at,
            )
            .unwrap();
        appended += wire::encode_delta(&delta).len() as u64;
        store.append_journal(&delta, SyncMode::Normal).unwrap();
    }
    assert!(
        appended > JOURNAL_FLOOR_BYTES,
        "{appended} bytes appended: the base is tiny, the floor decides"
    );
    assert!(appended < JOURNAL_FLOOR_BYTES + 200, "{appended}");
    // The count survives a reopen: it is read from the file.
    drop(store);
    let mut store = open(dir.path());
    assert!(store.journal_outgrew_base());
    store.save_snapshot(&replica.snapshot()).unwrap();
    assert!(!store.journal_outgrew_base());
}

#[test]
fn an_append_needs_a_base() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut replica = Replica::new(node_id(NODE_A), DEFAULT_RETENTION_MS);
    replica.snapshot();
    let delta = write_everything(&mut replica, T0).remove(0);
    let error = store.append_journal(&delta, SyncMode::Full).unwrap_err();
    assert!(
        error.to_string().contains("save a snapshot first"),
        "{error}"
    );
    assert_eq!(journal_rows(&store), 0);
    assert_eq!(store.load().unwrap(), None);
}

#[test]
fn a_journal_row_that_does_not_decode_is_corrupt_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let (_, deltas) = written_after_the_base(&mut store);
    store.append_journal(&deltas[0], SyncMode::Full).unwrap();
    store
        .conn
        .execute(
            "INSERT INTO journal (id, encoded) VALUES (7, x'08011a')",
            [],
        )
        .unwrap();
    let error = store.load().unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(
        message.contains("journal row 7 does not decode"),
        "{message}"
    );
    assert!(
        message.contains(&store.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn a_journal_without_a_base_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let (_, deltas) = written_after_the_base(&mut store);
    store.append_journal(&deltas[0], SyncMode::Full).unwrap();
    store.conn.execute("DELETE FROM snapshot", []).unwrap();
    let error = store.load().unwrap_err();
    assert!(
        error.to_string().contains("no saved replica under them"),
        "{error}"
    );
}

#[test]
fn a_synced_append_leaves_the_connection_at_normal() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let (_, deltas) = written_after_the_base(&mut store);
    store.append_journal(&deltas[0], SyncMode::Full).unwrap();
    let synchronous: i64 = store
        .conn
        .pragma_query_value(None, "synchronous", |row| row.get(0))
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL");
}

/// A file as version 1 of the schema left it: the version 1 tables, and the snapshot row
/// written the way version 1 saved it. Opened by this build, it is migrated in place and
/// its replica comes back whole.
#[test]
fn a_version_1_file_opens_with_its_snapshot_and_takes_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    let mut replica = Replica::new(node_id(NODE_A), DEFAULT_RETENTION_MS);
    replica.snapshot();
    write_everything(&mut replica, T0);
    let snapshot = replica.snapshot();
    {
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        schema::migrate_to(&mut conn, 0, 1).unwrap();
        conn.execute(
            "INSERT INTO snapshot (id, node_id, seq_ceiling, encoded) VALUES (1, ?1, ?2, ?3)",
            params![
                snapshot.id.as_str(),
                ceiling_column(snapshot.seq_ceiling),
                wire::encode_snapshot(&snapshot)
            ],
        )
        .unwrap();
        assert_eq!(schema::version(&conn).unwrap(), 1);
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!tables.contains(&"journal".to_owned()), "{tables:?}");
    }

    let mut store = open(dir.path());
    assert_eq!(schema::version(&store.conn).unwrap(), SCHEMA_VERSION);
    let saved = store.load().unwrap().expect("the version 1 snapshot");
    assert_eq!(saved.base, snapshot);
    assert!(saved.journal.is_empty());

    let mut restored = saved.restore(DEFAULT_RETENTION_MS);
    store.save_snapshot(&restored.snapshot()).unwrap();
    let deltas = write_everything(&mut restored, T0 + 60_000);
    for delta in &deltas {
        store.append_journal(delta, SyncMode::Full).unwrap();
    }
    drop(store);
    let again = open(dir.path()).load().unwrap().unwrap();
    assert_eq!(again.journal, deltas);
    assert_eq!(
        again.restore(DEFAULT_RETENTION_MS).state(),
        restored.state()
    );
}
