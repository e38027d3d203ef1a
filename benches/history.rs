//! The office's history after a year: disk use, and the two queries a chart makes, on a real
//! SQLite file in a temporary directory.
//!
//! Run with `cargo bench --bench history`. It generates a year of an office of NODES (25)
//! nodes with SENSORS (10) sensors each, read every 10 s (six readings a minute), as every
//! node holds it: each hour of each series goes through the store as a peer's backfill would
//! bring it (`Store::merge_hour`, then the hour is written once it is over), and the store is
//! pruned with the default `[history]` retentions as a running node does every hour. Then:
//! - disk use: the database file (pages in use and the file's size);
//! - one sensor over the last 7 days at minute resolution (10 080 points);
//! - one room (10 series) over the last 30 days, hourly (720 points each);
//!
//! each answered through `history::query::answer` (what `GET /api/history` runs), RUNS (21)
//! times; the median and the slowest are reported. Environment: OFFICEMESH_BENCH_NODES,
//! OFFICEMESH_BENCH_SENSORS, OFFICEMESH_BENCH_DAYS (365) for cheaper runs.

use std::{collections::BTreeMap, time::Instant};

use officemesh::{
    history::{
        HistoryConfig,
        query::{HistoryQuery, answer},
    },
    state::{NodeId, Quantity, Room, SensorId, Series},
    store::{HOUR_MS, HourBuckets, MINUTE_MS, Store},
};

const RUNS: usize = 21;
const DAY_MS: u64 = 24 * HOUR_MS;
/// 2027-01-01T00:00:00Z: the end of the generated year.
const END_MS: u64 = 1_798_761_600_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// An hour of one sensor: 60 minutes of six readings around `base`, packed as the store
/// keeps them.
fn hour_of(base: f64, hour_ms: u64, seed: u64) -> HourBuckets {
    let mut packed = Vec::with_capacity(60 * 21);
    for minute in 0..60u64 {
        let wobble = ((seed.wrapping_mul(31).wrapping_add(minute * 7)) % 100) as f32 / 100.0;
        let mean = base as f32 + wobble;
        packed.push(minute as u8);
        packed.extend_from_slice(&6u16.to_le_bytes());
        packed.extend_from_slice(&50_000u16.to_le_bytes());
        for value in [mean - 0.2, mean + 0.2, mean, mean + 0.1] {
            packed.extend_from_slice(&value.to_le_bytes());
        }
    }
    HourBuckets::unpack(&packed, hour_ms).expect("well formed")
}

fn median_and_max(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() - 1])
}

fn main() {
    let nodes = env("OFFICEMESH_BENCH_NODES", 25);
    let sensors = env("OFFICEMESH_BENCH_SENSORS", 10);
    let days = env("OFFICEMESH_BENCH_DAYS", 365);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = Store::open(dir.path()).expect("a store");
    let config = HistoryConfig::default();

    let series: Vec<Series> = (0..nodes)
        .flat_map(|node| {
            (0..sensors).map(move |sensor| Series {
                node: NodeId::new(format!("12D3KooWBenchNode{node:02}")).unwrap(),
                sensor: SensorId::new(&format!("s{sensor}")).unwrap(),
                room: Room::new(&format!("room {node}")).unwrap(),
                quantity: Quantity::Temperature,
            })
        })
        .collect();
    let start_ms = END_MS - days * DAY_MS;
    let generating = Instant::now();
    let mut hour_ms = start_ms;
    while hour_ms < END_MS {
        for (index, series) in series.iter().enumerate() {
            let buckets = hour_of(
                20.0 + (index % 5) as f64,
                hour_ms,
                hour_ms / HOUR_MS + index as u64,
            );
            store
                .merge_hour(series.clone(), hour_ms, &buckets)
                .expect("merged");
        }
        // The hour is over (and its grace): written, as a running node does.
        store
            .observe(&[], hour_ms + HOUR_MS + 6 * MINUTE_MS)
            .expect("written");
        if (hour_ms - start_ms).is_multiple_of(DAY_MS) {
            store
                .prune_history(config.prune_before(hour_ms))
                .expect("pruned");
        }
        hour_ms += HOUR_MS;
    }
    store
        .prune_history(config.prune_before(END_MS))
        .expect("pruned");
    println!(
        "generated {days} days of {nodes} nodes x {sensors} sensors ({} series) in {:.0} s",
        series.len(),
        generating.elapsed().as_secs_f64()
    );
    let disk = store.disk_bytes();
    println!(
        "disk use after pruning to the default retentions (minutes {} days, hours {} days): {:.1} MB (database and log)",
        config.minute_retention.as_secs() / 86_400,
        config.hour_retention.as_secs() / 86_400,
        disk as f64 / 1e6
    );

    let query = |pairs: &[(&str, String)]| {
        let params: BTreeMap<String, String> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        HistoryQuery::parse(&params, END_MS, config.minute_retention.as_millis() as u64)
            .expect("a valid query")
    };
    let one_sensor = query(&[
        ("node", series[0].node.to_string()),
        ("sensor", series[0].sensor.to_string()),
        ("from", (END_MS - 7 * DAY_MS).to_string()),
        ("to", END_MS.to_string()),
        ("step", "1m".into()),
    ]);
    let one_room = query(&[
        ("room", series[0].room.to_string()),
        ("from", (END_MS - 30 * DAY_MS).to_string()),
        ("to", END_MS.to_string()),
        ("step", "1h".into()),
    ]);
    for (name, query) in [
        ("one sensor, 7 days, minutes", &one_sensor),
        ("one room, 30 days, hourly", &one_room),
    ] {
        let mut times = Vec::with_capacity(RUNS);
        let mut points = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            let found = answer(&store, query).expect("answered");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            points = found
                .series
                .iter()
                .map(|series| series.count.iter().filter(|count| **count > 0).count())
                .sum();
        }
        let (median, max) = median_and_max(times);
        println!(
            "{name}: {points} points with readings, median {median:.1} ms, slowest {max:.1} ms ({RUNS} runs)"
        );
    }
}
