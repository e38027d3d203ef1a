//! The store on this machine's disk: how long saving a 1000-entry replica takes, and how
//! many history rows per second go in when appended 100 per transaction against one per
//! transaction.
//!
//! Run with `cargo bench --bench store`. The database lives in Cargo's temporary directory
//! for benchmarks (under `target/`), on the same disk as the build, not in a RAM disk, so the
//! syncs are real. Timings depend on the machine and its disk; both history figures come from
//! the same run, so their ratio is the figure to compare across machines.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use officemesh::{
    state::{
        DEFAULT_RETENTION_MS, MIN_PLAUSIBLE_WALL_MS, Mac, NodeId, Quantity, Replica, Room, SensorId,
    },
    store::{HistoryRow, Store},
    wire,
};

/// A node id shaped like a real one: a 52-character base58 libp2p peer id.
const NODE: &str = "12D3KooWBenchbenchbenchbenchbenchbenchbenchbenchbench";

/// Entries in the saved replica: sensor readings and network-map rows.
const READINGS: usize = 600;
const SIGHTINGS: usize = 400;

/// Saves timed for the median.
const SNAPSHOT_RUNS: usize = 51;

/// History: rows per transaction when batched, and the work per timed run.
const BATCH_ROWS: usize = 100;
const BATCHED_ROWS_PER_RUN: usize = 5_000;
const SINGLE_ROWS_PER_RUN: usize = 500;
const HISTORY_RUNS: usize = 7;

/// Sensors the history rows cycle through.
const HISTORY_SENSORS: usize = 25;

const T0: u64 = MIN_PLAUSIBLE_WALL_MS + 3_600_000;

fn main() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    let mut store = Store::open(dir.path()).expect("open the store");
    println!("database: {}\n", store.path().display());

    // Each save carries a new write: SQLite skips rewriting a row with identical content,
    // so saving the same snapshot again would measure nothing.
    let mut replica = replica_of_1000_entries();
    let mut physical_ms = T0 + 3_600_000;
    let mut snapshots = Vec::new();
    for _ in 0..SNAPSHOT_RUNS {
        physical_ms += 1000;
        replica
            .record_reading(
                SensorId::new("sensor-0").expect("a sensor id"),
                Room::new("room-0").expect("a room"),
                Quantity::Temperature,
                21.0,
                "",
                physical_ms,
            )
            .expect("a reading");
        snapshots.push(replica.snapshot());
    }
    let encoded_len = wire::encode_snapshot(&snapshots[0]).len();
    let encode = median(snapshots.iter().map(|snapshot| {
        let start = Instant::now();
        std::hint::black_box(wire::encode_snapshot(snapshot));
        start.elapsed()
    }));
    let save = median(snapshots.iter().map(|snapshot| {
        let start = Instant::now();
        store.save_snapshot(snapshot).expect("save");
        start.elapsed()
    }));
    println!(
        "| replica entries | encoded bytes | encode median | save_snapshot median (encode + synced commit) |"
    );
    println!("|---:|---:|---:|---:|");
    println!(
        "| {} | {encoded_len} | {} | {} |\n",
        READINGS + SIGHTINGS,
        ms(encode),
        ms(save)
    );

    let mut next_ms = T0;
    let mut rows = |count: usize| -> Vec<HistoryRow> {
        (0..count)
            .map(|index| {
                next_ms += 1;
                HistoryRow {
                    node: node_id(),
                    sensor: SensorId::new(&format!("sensor-{}", index % HISTORY_SENSORS))
                        .expect("a sensor id"),
                    room: Room::new("open space").expect("a room"),
                    quantity: Quantity::Temperature,
                    value: 20.0 + (index % 50) as f64 / 10.0,
                    measured_at_ms: next_ms,
                }
            })
            .collect()
    };
    // Warm up: the series exist and the file has grown before anything is timed.
    store.append_history(&rows(BATCH_ROWS)).expect("append");

    let mut batched = Run::default();
    let mut single = Run::default();
    // Interleaved, so both kinds see the same state of the disk and the file.
    for _ in 0..HISTORY_RUNS {
        let batches: Vec<Vec<HistoryRow>> = (0..BATCHED_ROWS_PER_RUN / BATCH_ROWS)
            .map(|_| rows(BATCH_ROWS))
            .collect();
        batched.measure(BATCHED_ROWS_PER_RUN, || {
            for batch in &batches {
                store.append_history(batch).expect("append");
            }
        });

        let singles = rows(SINGLE_ROWS_PER_RUN);
        single.measure(SINGLE_ROWS_PER_RUN, || {
            for row in &singles {
                store
                    .append_history(std::slice::from_ref(row))
                    .expect("append");
            }
        });
    }
    println!(
        "| history append | rows/s (median of {HISTORY_RUNS} runs) | time per row | bytes written per row |"
    );
    println!("|---|---:|---:|---:|");
    for (name, run) in [
        (format!("{BATCH_ROWS} rows per transaction"), &batched),
        ("1 row per transaction".to_owned(), &single),
    ] {
        let rate = run.rows_per_second();
        println!(
            "| {name} | {rate:.0} | {:.1} µs | {} |",
            1e6 / rate,
            run.bytes_per_row()
                .map_or("n/a".to_owned(), |bytes| format!("{bytes:.0}"))
        );
    }
    println!(
        "\nbatched / one per transaction: {:.1}× the rows per second",
        batched.rows_per_second() / single.rows_per_second()
    );
    if let (Some(batched), Some(single)) = (batched.bytes_per_row(), single.bytes_per_row()) {
        println!(
            "one per transaction / batched: {:.1}× the bytes written per row",
            single / batched
        );
    }
    store.close().expect("close");
}

fn node_id() -> NodeId {
    NodeId::new(NODE).expect("a node id")
}

/// A replica of one node with [`READINGS`] sensors and [`SIGHTINGS`] devices seen.
fn replica_of_1000_entries() -> Replica {
    let mut replica = Replica::new(node_id(), DEFAULT_RETENTION_MS);
    replica.snapshot();
    let mut at = T0;
    for index in 0..READINGS {
        at += 100;
        replica
            .record_reading(
                SensorId::new(&format!("sensor-{index}")).expect("a sensor id"),
                Room::new(&format!("room-{}", index % 12)).expect("a room"),
                [Quantity::Temperature, Quantity::Humidity][index % 2],
                20.0 + (index % 40) as f64,
                "",
                at,
            )
            .expect("a reading");
    }
    for index in 0..SIGHTINGS {
        at += 100;
        let [high, low] = (index as u16).to_be_bytes();
        replica
            .observe_device(
                Mac([0x00, 0x1a, 0x2b, 0x3c, high, low]),
                IpAddr::V4(Ipv4Addr::new(10, 0, high, low)),
                at,
            )
            .expect("a sighting");
    }
    assert_eq!(replica.store().len(), READINGS + SIGHTINGS);
    replica
}

/// Timed runs of one kind of append.
#[derive(Default)]
struct Run {
    rows_per_second: Vec<f64>,
    bytes_per_row: Vec<f64>,
}

impl Run {
    fn measure(&mut self, rows: usize, append: impl FnOnce()) {
        let written = bytes_written();
        let start = Instant::now();
        append();
        self.rows_per_second
            .push(rows as f64 / start.elapsed().as_secs_f64());
        if let (Some(before), Some(after)) = (written, bytes_written()) {
            self.bytes_per_row
                .push((after - before) as f64 / rows as f64);
        }
    }

    fn rows_per_second(&self) -> f64 {
        median_f64(self.rows_per_second.clone())
    }

    fn bytes_per_row(&self) -> Option<f64> {
        (!self.bytes_per_row.is_empty()).then(|| median_f64(self.bytes_per_row.clone()))
    }
}

/// Bytes this process has handed to `write` and `pwrite` so far (Linux's `/proc/self/io`):
/// what SQLite writes to its log and file, so what reaches the card sooner or later.
fn bytes_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("wchar:"))?
        .trim()
        .parse()
        .ok()
}

fn median(samples: impl Iterator<Item = Duration>) -> Duration {
    let mut samples: Vec<Duration> = samples.collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn median_f64(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}
