//! A real `kill -9`: this test binary runs itself as a child that writes readings, appends
//! history and the readings' deltas (the journal) in batches and saves leases (new bases)
//! in a loop, and the parent kills it with SIGKILL at a different point each round, then
//! checks what the database kept.
//!
//! The child reports on stdout, after the fact: the sequence number it restored to, the
//! highest number it used (printed before the batch is appended), each committed history
//! batch, and the highest number in each committed journal append. The parent checks that
//! every restart continues above every number reported used, that every batch and delta
//! reported committed is still there, and that the file opens and loads cleanly.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use super::*;

/// The child's environment variable: the data directory to write to.
const CHILD_DIR_ENV: &str = "OFFICEMESH_STORE_CRASH_CHILD_DIR";

/// The child test, by its full name in this binary.
const CHILD_TEST: &str = "store::tests::crash::crash_child";

/// How the child's report lines start, to tell them from the test harness's output.
const REPORT: &str = "crash-child:";

/// Rounds of start, write, kill.
const ROUNDS: usize = 5;

/// The child stops by itself after this many batches, should nobody kill it.
const MAX_CHILD_BATCHES: u64 = 100_000;

const SENSORS: usize = 10;

/// A lease is saved every this many batches.
const SAVE_EVERY_BATCHES: u64 = 4;

#[test]
#[ignore = "the child process of kill_9_at_any_moment_keeps_leases_and_committed_batches"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let mut store = open(Path::new(&dir));
    let mut replica = match store.load().unwrap() {
        Some(saved) => saved.restore(DEFAULT_RETENTION_MS),
        None => Replica::new(node_id(NODE_A), DEFAULT_RETENTION_MS),
    };
    println!("{REPORT} restored {}", replica.seq());
    store.save_snapshot(&replica.snapshot()).unwrap();
    let mut physical_ms = replica.clock().last().wall_ms.max(T0);
    for batch in 1..=MAX_CHILD_BATCHES {
        physical_ms += 1000;
        let mut rows = Vec::new();
        let mut journaled = Delta::default();
        for index in 0..SENSORS {
            let delta = replica
                .record_reading(
                    sensor(&format!("sensor-{index}")),
                    room("lab"),
                    Quantity::Temperature,
                    20.0 + index as f64,
                    "°C",
                    physical_ms,
                )
                .unwrap();
            journaled.join(&delta);
            rows.extend(
                delta
                    .store
                    .readings
                    .iter()
                    .map(|(key, _, reading)| HistoryRow::from_reading(key, reading)),
            );
        }
        println!("{REPORT} used {}", replica.seq());
        let added = store.append_history(&rows).unwrap();
        println!("{REPORT} appended {added}");
        // Both ways a node appends: synced (acknowledged writes) and not (periodic saves).
        let sync = if batch % 2 == 0 {
            SyncMode::Full
        } else {
            SyncMode::Normal
        };
        store.append_journal(&journaled, sync).unwrap();
        println!("{REPORT} journaled {}", max_seq(&journaled, replica.id()));
        if batch % SAVE_EVERY_BATCHES == 0 {
            store.save_snapshot(&replica.snapshot()).unwrap();
        }
    }
}

#[test]
fn kill_9_at_any_moment_keeps_leases_and_committed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut max_used = 0;
    let mut committed_rows = 0;
    let mut max_journaled = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([CHILD_TEST, "--exact", "--include-ignored", "--nocapture"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // A different moment each round: after a number of report lines that is not a
        // multiple of the save period.
        let kill_after = 7 + 13 * round;
        let mut reports = 0;
        let mut restored = None;
        for line in stdout.lines() {
            let line = line.unwrap();
            let Some(report) = line.strip_prefix(REPORT) else {
                continue;
            };
            let (what, number) = report.trim().split_once(' ').unwrap();
            let number: u64 = number.parse().unwrap();
            match what {
                "restored" => {
                    assert!(
                        number >= max_used,
                        "round {round}: restored to {number}, but {max_used} was used before"
                    );
                    restored = Some(number);
                }
                "used" => {
                    assert!(number > restored.unwrap(), "round {round}");
                    max_used = max_used.max(number);
                }
                "appended" => committed_rows += number,
                "journaled" => max_journaled = max_journaled.max(number),
                _ => panic!("unknown report {line:?}"),
            }
            reports += 1;
            if reports == kill_after {
                // SIGKILL; the lines already in the pipe are still read and counted.
                child.kill().unwrap();
            }
        }
        let status = child.wait().unwrap();
        assert!(
            reports >= kill_after && !status.success(),
            "round {round}: the child ended by itself ({status}) after {reports} reports"
        );
    }

    let mut store = open(dir.path());
    let rows: i64 = store
        .conn
        .query_row("SELECT count(*) FROM history", [], |row| row.get(0))
        .unwrap();
    assert!(
        rows.unsigned_abs() >= committed_rows,
        "{rows} rows kept, {committed_rows} reported committed"
    );
    let mut replica = store
        .load()
        .unwrap()
        .expect("a saved replica")
        .restore(DEFAULT_RETENTION_MS);
    assert!(replica.seq() >= max_used);
    assert!(max_journaled > 0, "some deltas were journaled");
    assert!(
        replica
            .context()
            .contains(&Dot::new(replica.id().clone(), max_journaled)),
        "the last delta reported journaled ({max_journaled}) was lost"
    );
    store.save_snapshot(&replica.snapshot()).unwrap();
    let delta = replica
        .record_reading(
            sensor("sensor-0"),
            room("lab"),
            Quantity::Temperature,
            20.0,
            "°C",
            T0,
        )
        .unwrap();
    assert!(max_seq(&delta, replica.id()) > max_used);
}
