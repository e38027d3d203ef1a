//! Files the store must refuse at open, and leave exactly as they were.

use std::fs;

use rusqlite::Connection;

use super::*;

/// What opening a bad file must report.
#[derive(Debug)]
enum Refusal {
    /// [`StoreError::Corrupt`] whose detail contains this.
    Corrupt(&'static str),
    /// [`StoreError::NewerSchema`] with this version found.
    Newer(u32),
}

/// Lays a file at `officemesh.db` with `make`, opens the store, and checks the refusal, that
/// the message names the file, and that the file's bytes are unchanged. Opens twice: a
/// refusal must not have half-fixed anything either.
fn check(name: &str, make: impl FnOnce(&Path), expected: Refusal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    make(&path);
    let before = file_bytes(&path);
    for attempt in 1..=2 {
        let error = try_open(dir.path())
            .err()
            .unwrap_or_else(|| panic!("{name}: open #{attempt} must fail"));
        let message = error.to_string();
        assert!(!message.contains('\n'), "{name}: one line: {message}");
        assert!(
            message.contains(&path.display().to_string()),
            "{name}: the message must name the file: {message}"
        );
        match (&expected, &error) {
            (Refusal::Corrupt(part), StoreError::Corrupt { detail, .. }) => {
                assert!(detail.contains(part), "{name}: {message}");
                assert!(message.contains("left untouched"), "{name}: {message}");
            }
            (
                Refusal::Newer(version),
                StoreError::NewerSchema {
                    found, supported, ..
                },
            ) => {
                assert_eq!((found, supported), (version, &SCHEMA_VERSION), "{name}");
                assert!(message.contains("newer officemesh"), "{name}: {message}");
            }
            _ => panic!("{name}: expected {expected:?}, got {error:?}"),
        }
        assert!(file_bytes(&path) == before, "{name}: the file was modified");
    }
}

/// Deterministic noise (xorshift), so a failure replays.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// A real officemesh database at `path`: a saved replica and enough history to span many
/// pages, closed cleanly.
fn real_database(path: &Path) {
    let dir = path.parent().unwrap();
    let mut store = open(dir);
    let mut replica = saved_replica(&mut store, NODE_A);
    write_everything(&mut replica, T0);
    store.save_snapshot(&replica.snapshot()).unwrap();
    let rows: Vec<HistoryRow> = (0..5000)
        .map(|i| HistoryRow {
            node: node_id(NODE_A),
            sensor: sensor(&format!("sensor-{}", i % 7)),
            room: room("kitchen"),
            quantity: Quantity::Temperature,
            value: 20.0 + (i % 50) as f64 / 10.0,
            measured_at_ms: T0 + i * 1000,
        })
        .collect();
    store.append_history(&rows).unwrap();
    store.close().unwrap();
}

#[test]
fn refused_files_are_left_untouched() {
    check(
        "random bytes",
        |path| fs::write(path, noise(8192, 0x2545_f491_4f6c_dd1d)).unwrap(),
        Refusal::Corrupt("not a database"),
    );
    check(
        "a text file",
        |path| fs::write(path, "office = \"kitchen\"\n".repeat(40)).unwrap(),
        Refusal::Corrupt("not a database"),
    );
    check(
        "a real database cut in half",
        |path| {
            real_database(path);
            let bytes = file_bytes(path);
            fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
        },
        Refusal::Corrupt(""),
    );
    check(
        "a real database with noise over a page",
        |path| {
            real_database(path);
            let mut bytes = file_bytes(path);
            let page = 4096;
            bytes[3 * page..4 * page].copy_from_slice(&noise(page, 7));
            fs::write(path, &bytes).unwrap();
        },
        Refusal::Corrupt(""),
    );
    check(
        "a real database whose free pages are lost",
        |path| {
            real_database(path);
            let conn = Connection::open(path).unwrap();
            conn.execute_batch("DELETE FROM history").unwrap();
            conn.close().unwrap();
            // The header's freelist (first trunk page, page count) says there is none: the
            // freed pages belong to nothing, which only a check notices.
            let mut bytes = file_bytes(path);
            bytes[32..40].fill(0);
            fs::write(path, &bytes).unwrap();
        },
        Refusal::Corrupt("quick_check found: Page "),
    );
    check(
        "a database of a newer officemesh",
        |path| {
            real_database(path);
            let conn = Connection::open(path).unwrap();
            conn.pragma_update(None, "user_version", 999).unwrap();
            conn.close().unwrap();
        },
        Refusal::Newer(999),
    );
    check(
        "another program's database",
        |path| {
            let conn = Connection::open(path).unwrap();
            conn.execute_batch("CREATE TABLE notes (body TEXT)")
                .unwrap();
            conn.close().unwrap();
        },
        Refusal::Corrupt("another program"),
    );
}

/// A crash while the very first open created the file leaves it empty: that is a new
/// database, not a corrupt one.
#[test]
fn an_empty_file_is_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(DB_FILE_NAME), b"").unwrap();
    let mut store = open(dir.path());
    assert_eq!(schema::version(&store.conn).unwrap(), SCHEMA_VERSION);
    saved_replica(&mut store, NODE_A);
    assert!(store.load_snapshot().unwrap().is_some());
}
