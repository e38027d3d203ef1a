//! The database schema and its migrations.
//!
//! The schema version lives in the file header (`PRAGMA user_version`), so it is read before
//! any table, and a file from a newer officemesh is recognised without parsing its tables.
//! Each migration step takes the schema from one version to the next inside its own
//! transaction, and sets the new version in that same transaction: a crash mid-migration
//! leaves the previous version intact, and the next start runs the step again.

use rusqlite::{Connection, Transaction};

/// The schema version this build writes and reads. A file with a higher version was written
/// by a newer officemesh and is refused, untouched.
pub const SCHEMA_VERSION: u32 = 3;

/// Marks the file as officemesh's (`PRAGMA application_id`, "OMSH"), so that another
/// program's SQLite file found at our path is refused rather than migrated.
pub(super) const APPLICATION_ID: i32 = 0x4f4d_5348;

/// One step: the schema at version `n` becomes version `n + 1`.
type Step = fn(&Transaction<'_>) -> rusqlite::Result<()>;

/// `STEPS[n]` takes the schema from version `n` to `n + 1`; version 0 is an empty file.
const STEPS: [Step; SCHEMA_VERSION as usize] = [create_v1, add_journal_v2, office_history_v3];

/// Version 1.
///
/// - `secrets`: the node key, the swarm key and the API token, by name. Opaque bytes: the
///   modules that use them encode and decode them.
/// - `snapshot`: the one saved replica, as `wire::encode_snapshot` bytes. Its node id and
///   sequence ceiling are copied into columns so an operator can read them with `sqlite3`,
///   and so a save can refuse to move the ceiling backwards without decoding the blob.
/// - `series`: one row per (node, sensor, room, quantity) whose history is kept, so the
///   52-character node id and the names are stored once, not once per reading. Its
///   `last_hour_ms` (the hour of its newest reading, updated when a new hour starts) tells
///   pruning when a series has no raw rows left without scanning `history`.
/// - `history`: raw readings, clustered by time then series. Appends all land on the last
///   page or two, so a batch of 100 readings writes about one page to the log instead of one
///   page per sensor, and pruning deletes a prefix. The price: reading one series over a
///   time range scans every series in that range.
/// - `rollup_hourly`: per series and hour, the count, minimum, maximum and sum of the
///   readings pruned from `history`; sums and counts merge, so an hour pruned in two goes
///   still has the right mean. Written only when pruning, so clustered by series for charts.
///
/// `history` has no foreign key to `series`: enforcing it when a series is deleted would
/// scan `history`, which has no index by series (one would cost a page write per sensor per
/// batch again). The store only deletes a series once its rows are gone.
fn create_v1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE secrets (
            name TEXT PRIMARY KEY NOT NULL,
            value BLOB NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE snapshot (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            node_id TEXT NOT NULL,
            seq_ceiling INTEGER NOT NULL,
            encoded BLOB NOT NULL
        );

        CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            node_id TEXT NOT NULL,
            sensor TEXT NOT NULL,
            room TEXT NOT NULL,
            quantity TEXT NOT NULL,
            last_hour_ms INTEGER NOT NULL,
            UNIQUE (node_id, sensor, room, quantity)
        );

        CREATE TABLE history (
            measured_at_ms INTEGER NOT NULL,
            series_id INTEGER NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (measured_at_ms, series_id)
        ) WITHOUT ROWID;

        CREATE TABLE rollup_hourly (
            series_id INTEGER NOT NULL REFERENCES series (id),
            hour_start_ms INTEGER NOT NULL,
            count INTEGER NOT NULL,
            min_value REAL NOT NULL,
            max_value REAL NOT NULL,
            sum_value REAL NOT NULL,
            PRIMARY KEY (series_id, hour_start_ms)
        ) WITHOUT ROWID;",
    )?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)
}

/// Version 2: the journal.
///
/// - `journal`: deltas of the replica saved since the `snapshot` row (its *base*), as
///   `wire::encode_delta` bytes, one row per save. Loading joins every row into the base, in
///   any order (joins commute); rewriting the base deletes them in the same transaction. The
///   id only tells an operator which row came last.
///
/// A version 1 file has a snapshot and no journal: its state is the snapshot, as before.
fn add_journal_v2(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE journal (
            id INTEGER PRIMARY KEY,
            encoded BLOB NOT NULL
        );",
    )
}

/// Version 3: the history of every sensor of the office, at minute and hour resolution.
///
/// - `minutes`: per hour and series, the hour's one-minute buckets packed in a blob
///   (`minutes.rs`). Written once per hour, so its rows (by rowid) and its primary-key index
///   grow at the end: closing an hour appends, pruning deletes a prefix, and reading one
///   series is a key lookup per hour. A rowid table, not `WITHOUT ROWID`: a row is about
///   1.3 KB, more than a `WITHOUT ROWID` row keeps in its page (about 1 KB with 4 KiB
///   pages), and the rest would spill into an overflow page of its own: 5 KB a row.
/// - `hours`: per hour and series, the count, minimum, maximum and sum of the hour, kept
///   longer than the minutes. Clustered the same way, for the same reasons; it replaces
///   version 1's `rollup_hourly`, whose rows it takes over.
/// - `history` (raw points) now holds only the node's own sensors, as before.
fn office_history_v3(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE minutes (
            hour_ms INTEGER NOT NULL,
            series_id INTEGER NOT NULL,
            buckets BLOB NOT NULL,
            PRIMARY KEY (hour_ms, series_id)
        );

        CREATE TABLE hours (
            hour_ms INTEGER NOT NULL,
            series_id INTEGER NOT NULL,
            count INTEGER NOT NULL,
            min_value REAL NOT NULL,
            max_value REAL NOT NULL,
            sum_value REAL NOT NULL,
            PRIMARY KEY (hour_ms, series_id)
        ) WITHOUT ROWID;

        INSERT INTO hours (hour_ms, series_id, count, min_value, max_value, sum_value)
            SELECT hour_start_ms, series_id, count, min_value, max_value, sum_value
            FROM rollup_hourly;
        DROP TABLE rollup_hourly;",
    )
}

/// The schema version of an open database.
pub(super) fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// What migrating did: the version found and the version reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Migrated {
    pub from: u32,
    pub to: u32,
}

/// Brings a database at version `from` (checked to be at most [`SCHEMA_VERSION`]) up to
/// [`SCHEMA_VERSION`], one step per transaction.
pub(super) fn migrate(conn: &mut Connection, from: u32) -> rusqlite::Result<Migrated> {
    migrate_to(conn, from, SCHEMA_VERSION)?;
    Ok(Migrated {
        from,
        to: SCHEMA_VERSION,
    })
}

/// Runs the steps from version `from` to version `to`; tests use it to make the files older
/// versions wrote.
pub(super) fn migrate_to(conn: &mut Connection, from: u32, to: u32) -> rusqlite::Result<()> {
    for version in from..to {
        let tx = conn.transaction()?;
        STEPS[version as usize](&tx)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
    Ok(())
}
