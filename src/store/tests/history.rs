//! Raw history: batches, duplicates, queries, pruning.

use super::*;

const HOUR: u64 = HOUR_MS;

/// The start of an hour after `T0`, so buckets are easy to name.
fn hour(n: u64) -> u64 {
    (T0 / HOUR + n) * HOUR
}

fn row(sensor_name: &str, value: f64, measured_at_ms: u64) -> HistoryRow {
    HistoryRow {
        node: node_id(NODE_A),
        sensor: sensor(sensor_name),
        room: room("open space"),
        quantity: Quantity::Temperature,
        value,
        measured_at_ms,
    }
}

fn raw_values(store: &Store, sensor_name: &str) -> Vec<(u64, f64)> {
    store
        .history(&node_id(NODE_A), &sensor(sensor_name), 0..u64::MAX)
        .unwrap()
        .into_iter()
        .map(|row| (row.measured_at_ms, row.value))
        .collect()
}

/// Prunes raw rows measured before `raw`, and minutes and hours before `buckets`.
fn prune(store: &mut Store, raw: u64, buckets: u64) -> Pruned {
    store
        .prune_history(PruneBefore {
            raw_ms: raw,
            minutes_ms: buckets,
            hours_ms: buckets,
        })
        .unwrap()
}

#[test]
fn a_batch_is_kept_whole_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let batch = [
        row("a", 21.0, hour(0) + 2000),
        row("b", 45.0, hour(0) + 1000),
        row("a", 20.5, hour(0) + 1000),
        HistoryRow::from_reading(
            &crate::state::ReadingKey {
                node: node_id(NODE_B),
                sensor: sensor("a"),
            },
            &crate::state::Reading {
                room: room("kitchen"),
                quantity: Quantity::Co2,
                value: 800.0,
                at: crate::state::Hlc::new(hour(0) + 3000, 0),
            },
        ),
    ];
    assert_eq!(store.append_history(&batch).unwrap(), 4);
    drop(store);

    let store = open(dir.path());
    assert_eq!(
        raw_values(&store, "a"),
        [(hour(0) + 1000, 20.5), (hour(0) + 2000, 21.0)]
    );
    let of_b = store
        .history(&node_id(NODE_B), &sensor("a"), hour(0)..hour(1))
        .unwrap();
    assert_eq!(of_b, [batch[3].clone()]);
    assert_eq!(
        store
            .history(&node_id(NODE_A), &sensor("a"), hour(0) + 1500..hour(1))
            .unwrap(),
        [batch[0].clone()],
        "the range is half-open"
    );
}

#[test]
fn duplicates_and_impossible_values_are_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let first = [row("a", 21.0, hour(0)), row("a", 21.5, hour(0) + 1000)];
    assert_eq!(store.append_history(&first).unwrap(), 2);
    let second = [
        row("a", 21.0, hour(0)),
        row("a", f64::NAN, hour(0) + 2000),
        row("a", f64::INFINITY, hour(0) + 3000),
        row("a", 22.0, u64::MAX),
        row("a", 22.5, hour(0) + 4000),
    ];
    assert_eq!(store.append_history(&second).unwrap(), 1);
    assert_eq!(store.append_history(&[]).unwrap(), 0);
    assert_eq!(
        raw_values(&store, "a"),
        [
            (hour(0), 21.0),
            (hour(0) + 1000, 21.5),
            (hour(0) + 4000, 22.5)
        ]
    );
}

/// A batch is one transaction: when a row fails, none of the batch is kept, and the series
/// it created are forgotten too (a later batch must not point at a rolled-back series).
#[test]
fn a_failing_batch_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store
        .conn
        .execute_batch(
            "CREATE TEMP TRIGGER fail_on_13 BEFORE INSERT ON main.history
             WHEN NEW.value = 13.0 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let batch = [
        row("new-1", 20.0, hour(0)),
        row("new-2", 21.0, hour(0)),
        row("new-2", 13.0, hour(0) + 1000),
    ];
    let error = store.append_history(&batch).unwrap_err();
    assert!(error.to_string().contains("injected failure"), "{error}");
    assert!(raw_values(&store, "new-1").is_empty());
    assert!(raw_values(&store, "new-2").is_empty());
    let series: i64 = store
        .conn
        .query_row("SELECT count(*) FROM series", [], |row| row.get(0))
        .unwrap();
    assert_eq!(series, 0);

    // Another series takes the rolled-back ids; the first ones must not be confused with it.
    assert_eq!(
        store.append_history(&[row("other", 1.0, hour(0))]).unwrap(),
        1
    );
    assert_eq!(store.append_history(&batch[..2]).unwrap(), 2);
    assert_eq!(raw_values(&store, "other"), [(hour(0), 1.0)]);
    assert_eq!(raw_values(&store, "new-1"), [(hour(0), 20.0)]);
    assert_eq!(raw_values(&store, "new-2"), [(hour(0), 21.0)]);
}

#[test]
fn pruning_deletes_raw_rows_older_than_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let rows = [
        row("a", 10.0, hour(0) + 1000),
        row("a", 20.0, hour(1) + 1000),
        row("a", 30.0, hour(2) + 1000),
        row("b", 50.0, hour(0) + 1000),
    ];
    assert_eq!(store.append_history(&rows).unwrap(), rows.len());
    let pruned = prune(&mut store, hour(1) + 1000, 0);
    assert_eq!(
        pruned,
        Pruned {
            raw_deleted: 2,
            minute_hours_deleted: 0,
            hours_deleted: 0,
            series_deleted: 0
        },
        "b's last hour is not older than every cut (the buckets are kept): b stays"
    );
    assert_eq!(
        raw_values(&store, "a"),
        [(hour(1) + 1000, 20.0), (hour(2) + 1000, 30.0)]
    );
    // Everything goes, and the series with it; history starts again afterwards.
    let pruned = prune(&mut store, u64::MAX, u64::MAX);
    assert_eq!((pruned.raw_deleted, pruned.series_deleted), (2, 2));
    assert!(raw_values(&store, "a").is_empty());
    assert_eq!(store.append_history(&[row("a", 3.0, hour(5))]).unwrap(), 1);
    assert_eq!(raw_values(&store, "a"), [(hour(5), 3.0)]);
}

#[test]
fn a_sensor_moved_to_another_room_keeps_its_old_readings_in_the_old_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let before = row("a", 20.0, hour(0));
    let after = HistoryRow {
        room: room("kitchen"),
        ..row("a", 24.0, hour(0) + 1000)
    };
    store
        .append_history(&[before.clone(), after.clone()])
        .unwrap();
    assert_eq!(
        store
            .history(&node_id(NODE_A), &sensor("a"), 0..u64::MAX)
            .unwrap(),
        [before, after]
    );
}

/// Pruning deletes a series only when it has nothing left; it knows from the series' newest
/// hour, which must survive a restart and must not move back when an older reading arrives
/// late.
#[test]
fn a_series_with_recent_rows_survives_pruning_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path())
        .append_history(&[row("a", 1.0, hour(0) + 1000)])
        .unwrap();
    let mut store = open(dir.path());
    store
        .append_history(&[row("a", 4.0, hour(3) + 1000)])
        .unwrap();
    store
        .append_history(&[row("a", 2.0, hour(1) + 1000)])
        .unwrap();

    let pruned = prune(&mut store, hour(2), hour(2));
    assert_eq!((pruned.raw_deleted, pruned.series_deleted), (2, 0));
    assert_eq!(raw_values(&store, "a"), [(hour(3) + 1000, 4.0)]);
    drop(store);
    let mut store = open(dir.path());
    assert_eq!(prune(&mut store, hour(3), hour(3)).series_deleted, 0);
    assert_eq!(raw_values(&store, "a"), [(hour(3) + 1000, 4.0)]);
    assert_eq!(prune(&mut store, hour(4), hour(5)).series_deleted, 1);
}
