//! The minute history: buckets in memory until their hour closes, written once, read back
//! after a restart, merged from peers by count, pruned per resolution; and the migration
//! of version 1's hourly rollups.

use super::*;

const HOUR: u64 = HOUR_MS;
const MINUTE: u64 = MINUTE_MS;

fn hour(n: u64) -> u64 {
    (T0 / HOUR + n) * HOUR
}

fn row(node: &str, sensor_name: &str, value: f64, measured_at_ms: u64) -> HistoryRow {
    HistoryRow {
        node: node_id(node),
        sensor: sensor(sensor_name),
        room: room("open space"),
        quantity: Quantity::Temperature,
        value,
        measured_at_ms,
    }
}

fn series(node: &str, sensor_name: &str) -> Series {
    row(node, sensor_name, 0.0, 0).series()
}

/// The minute buckets of a series as (minute index from hour 0, count, min, max, mean, last).
fn minutes(store: &Store, series: &Series) -> Vec<(u64, u64, f64, f64, f64, f64)> {
    store
        .minute_buckets(series, 0..u64::MAX)
        .unwrap()
        .into_iter()
        .map(|(start, b)| {
            (
                (start - hour(0)) / MINUTE,
                b.count,
                b.min,
                b.max,
                b.mean,
                b.last,
            )
        })
        .collect()
}

fn rows_on_disk(store: &Store, table: &str) -> i64 {
    store
        .conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}

#[test]
fn readings_fill_minute_buckets_written_once_the_hour_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let a = series(NODE_A, "a");
    // Out of order within minute 0: `last` is the newest by time, not by arrival.
    let batch = [
        row(NODE_A, "a", 21.0, hour(0) + 20_000),
        row(NODE_A, "a", 20.0, hour(0) + 10_000),
        row(NODE_A, "a", 24.0, hour(0) + 5 * MINUTE),
        row(NODE_B, "b", 50.0, hour(0) + 1000),
    ];
    assert_eq!(
        store.observe(&batch, hour(0) + 6 * MINUTE).unwrap(),
        0,
        "nothing closed yet"
    );
    assert_eq!(
        rows_on_disk(&store, "minutes"),
        0,
        "the open hour stays in memory"
    );
    let expected = [
        (0, 2, 20.0, 21.0, 20.5, 21.0),
        (5, 1, 24.0, 24.0, 24.0, 24.0),
    ];
    assert_eq!(minutes(&store, &a), expected, "queries see the open hour");

    // A reading of the next hour, observed after hour 0 and its grace are over.
    let later = [row(NODE_A, "a", 22.0, hour(1) + MINUTE)];
    let closed = store.observe(&later, hour(1) + CLOSE_GRACE_MS).unwrap();
    assert_eq!(closed, 2, "hour 0 of a and of b written");
    assert_eq!(rows_on_disk(&store, "minutes"), 2);
    assert_eq!(rows_on_disk(&store, "hours"), 2);
    assert_eq!(minutes(&store, &a)[..2], expected, "read back from disk");
    let hours = store.hour_buckets(&a, 0..u64::MAX).unwrap();
    assert_eq!(hours.len(), 2);
    assert_eq!(
        (hours[0].0, hours[0].1.count, hours[0].1.min, hours[0].1.max),
        (hour(0), 3, 20.0, 24.0)
    );
    assert!((hours[0].1.mean - 65.0 / 3.0).abs() < 1e-4);
    assert_eq!(
        (hours[1].0, hours[1].1.count),
        (hour(1), 1),
        "the open hour, from memory"
    );
    let found = store.series(&SeriesFilter::default()).unwrap();
    assert_eq!(found, [a.clone(), series(NODE_B, "b")]);
    let only_b = SeriesFilter {
        node: Some(node_id(NODE_B)),
        ..SeriesFilter::default()
    };
    assert_eq!(store.series(&only_b).unwrap(), [series(NODE_B, "b")]);
}

#[test]
fn a_clean_close_writes_the_open_hour_and_the_next_start_adds_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = series(NODE_A, "a");
    let mut store = open(dir.path());
    store
        .observe(&[row(NODE_A, "a", 20.0, hour(0) + 1000)], hour(0) + 2000)
        .unwrap();
    store.close().unwrap();
    let mut store = open(dir.path());
    assert_eq!(minutes(&store, &a), [(0, 1, 20.0, 20.0, 20.0, 20.0)]);
    // The reading counted before the restart, brought back by sync, is not counted twice;
    // a newer one is.
    store
        .observe(
            &[
                row(NODE_A, "a", 20.0, hour(0) + 1000),
                row(NODE_A, "a", 22.0, hour(0) + 3000),
            ],
            hour(0) + 4000,
        )
        .unwrap();
    assert_eq!(minutes(&store, &a), [(0, 2, 20.0, 22.0, 21.0, 22.0)]);
    store.close().unwrap();
    let store = open(dir.path());
    assert_eq!(minutes(&store, &a), [(0, 2, 20.0, 22.0, 21.0, 22.0)]);
}

#[test]
fn buckets_from_a_peer_merge_by_count_and_twice_is_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let a = series(NODE_A, "a");
    // This node heard one reading of minute 0 and none of minute 1.
    store
        .observe(
            &[row(NODE_A, "a", 20.0, hour(0) + 1000)],
            hour(0) + 2 * MINUTE,
        )
        .unwrap();
    // The owner heard three in minute 0, two in minute 1.
    let mut owner = open(tempfile::tempdir().unwrap().path());
    let owner_rows = [
        row(NODE_A, "a", 20.0, hour(0) + 1000),
        row(NODE_A, "a", 21.0, hour(0) + 2000),
        row(NODE_A, "a", 22.0, hour(0) + 3000),
        row(NODE_A, "a", 25.0, hour(0) + MINUTE + 1000),
        row(NODE_A, "a", 27.0, hour(0) + MINUTE + 2000),
    ];
    owner.observe(&owner_rows, hour(0) + 2 * MINUTE).unwrap();
    let (_, theirs) = owner
        .hours_of(&a, &(hour(0)..hour(1)))
        .unwrap()
        .pop()
        .unwrap();
    assert!(store.merge_hour(a.clone(), hour(0), &theirs).unwrap());
    let merged = minutes(&store, &a);
    assert_eq!(merged, minutes(&owner, &a), "the owner's record");
    assert!(
        !store.merge_hour(a.clone(), hour(0), &theirs).unwrap(),
        "twice changes nothing"
    );
    // A peer that heard less does not take anything away.
    let mut poorer = HourBuckets::default();
    assert!(!poorer.merge_max(&HourBuckets::default()));
    let (_, mine) = store
        .hours_of(&a, &(hour(0)..hour(1)))
        .unwrap()
        .pop()
        .unwrap();
    poorer.merge_max(&mine);
    assert!(!store.merge_hour(a.clone(), hour(0), &poorer).unwrap());
    assert_eq!(minutes(&store, &a), merged);
    // Packing keeps what a chart needs (values as 32-bit floats).
    let packed = mine.pack();
    assert_eq!(packed.len(), 2 * 21);
    let unpacked = HourBuckets::unpack(&packed, hour(0)).unwrap();
    assert_eq!(unpacked.count(), 5);
    assert!(
        HourBuckets::unpack(&packed[1..], hour(0)).is_none(),
        "a bad length is refused"
    );
    let mut bad_minute = packed.clone();
    bad_minute[0] = 60;
    assert!(HourBuckets::unpack(&bad_minute, hour(0)).is_none());
    let mut nan = packed;
    nan[5..9].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(HourBuckets::unpack(&nan, hour(0)).is_none());
    // Found by fuzzing (`fuzz/fuzz_targets/wire_history.rs`): a peer's page names the hour,
    // and an hour near the end of the clock overflowed the reading's time (a panic where
    // overflow is checked, a wrong time elsewhere).
    // The last millisecond of the last minute: minute 59, one reading, 59 999 ms in.
    let mut last = vec![59, 1, 0];
    last.extend_from_slice(&59_999u16.to_le_bytes());
    for _ in 0..4 {
        last.extend_from_slice(&21.5f32.to_le_bytes());
    }
    let fits = u64::MAX - (HOUR_MS - 1);
    assert_eq!(HourBuckets::unpack(&last, fits).unwrap().count(), 1);
    for late in [fits + 1, u64::MAX] {
        assert!(HourBuckets::unpack(&last, late).is_none(), "{late}");
    }
}

#[test]
fn minutes_go_before_hours_and_each_at_its_own_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let a = series(NODE_A, "a");
    let rows: Vec<_> = (0..4)
        .map(|n| row(NODE_A, "a", n as f64, hour(n) + 1000))
        .collect();
    store.observe(&rows, hour(10)).unwrap();
    let pruned = store
        .prune_history(PruneBefore {
            raw_ms: 0,
            minutes_ms: hour(2),
            hours_ms: hour(1),
        })
        .unwrap();
    assert_eq!((pruned.minute_hours_deleted, pruned.hours_deleted), (2, 1));
    assert_eq!(minutes(&store, &a).len(), 2, "minutes of hours 2 and 3");
    let hours: Vec<u64> = store
        .hour_buckets(&a, 0..u64::MAX)
        .unwrap()
        .iter()
        .map(|(start, _)| (start - hour(0)) / HOUR)
        .collect();
    assert_eq!(
        hours,
        [1, 2, 3],
        "hour 1 keeps its summary after its minutes went"
    );
}

/// A version 1 file (raw history and hourly rollups) opens as version 2 with its rollups
/// as hourly summaries.
#[test]
fn version_1_rollups_become_hourly_summaries() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
            CREATE TABLE secrets (name TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), node_id TEXT NOT NULL,
                seq_ceiling INTEGER NOT NULL, encoded BLOB NOT NULL);
            CREATE TABLE series (id INTEGER PRIMARY KEY, node_id TEXT NOT NULL, sensor TEXT NOT NULL,
                room TEXT NOT NULL, quantity TEXT NOT NULL, last_hour_ms INTEGER NOT NULL,
                UNIQUE (node_id, sensor, room, quantity));
            CREATE TABLE history (measured_at_ms INTEGER NOT NULL, series_id INTEGER NOT NULL,
                value REAL NOT NULL, PRIMARY KEY (measured_at_ms, series_id)) WITHOUT ROWID;
            CREATE TABLE rollup_hourly (series_id INTEGER NOT NULL REFERENCES series (id),
                hour_start_ms INTEGER NOT NULL, count INTEGER NOT NULL, min_value REAL NOT NULL,
                max_value REAL NOT NULL, sum_value REAL NOT NULL,
                PRIMARY KEY (series_id, hour_start_ms)) WITHOUT ROWID;
            INSERT INTO series VALUES (1, '{NODE_A}', 'a', 'open space', 'temperature', {h1});
            INSERT INTO rollup_hourly VALUES (1, {h0}, 4, 19.0, 23.0, 84.0);
            INSERT INTO history VALUES ({raw}, 1, 22.5);
            PRAGMA application_id = {app};
            PRAGMA user_version = 1;",
            h0 = hour(0),
            h1 = hour(1),
            raw = hour(1) + 1000,
            app = 0x4f4d_5348,
        ))
        .unwrap();
    }
    let store = open(dir.path());
    let a = series(NODE_A, "a");
    let hours = store.hour_buckets(&a, 0..u64::MAX).unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!(
        (hours[0].0, hours[0].1.count, hours[0].1.mean),
        (hour(0), 4, 21.0)
    );
    assert_eq!(
        store
            .history(&node_id(NODE_A), &sensor("a"), 0..u64::MAX)
            .unwrap()
            .len(),
        1,
        "raw rows kept"
    );
}
