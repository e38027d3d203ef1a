//! Bytes on the wire per reading update: delta push plus digest sync, against shipping every
//! node's whole state to every peer every second (what the hand-built system did).
//!
//! Run with `cargo bench --bench sync_bytes`. Byte counts come from the real wire encoding in
//! the deterministic simulator, so they are exact and the same on every machine; the office
//! is lossless here so both sides carry the same writes. Both figures come from the same run.

use officemesh::sim::{self, SimConfig};

/// One scenario: how often each sensor reports.
struct Workload {
    name: &'static str,
    reading_interval_rounds: u64,
}

const NODE_COUNTS: [usize; 3] = [5, 25, 100];
const SENSORS_PER_NODE: usize = 10;
const ROUNDS: u64 = 60;

fn main() {
    let workloads = [
        Workload {
            name: "each sensor every 10 s",
            reading_interval_rounds: 10,
        },
        Workload {
            name: "each sensor every 1 s",
            reading_interval_rounds: 1,
        },
    ];
    println!(
        "{SENSORS_PER_NODE} sensors per node, {ROUNDS} s of office life, deltas pushed every 1 s to every peer, digest sync with one random peer every 10 s\n"
    );
    println!(
        "| nodes | workload | readings | delta push B | sync B | delta+sync B/reading | full state B/reading | full state / delta |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for workload in &workloads {
        for nodes in NODE_COUNTS {
            let mut config = SimConfig::new(nodes, 1);
            config.active_rounds = ROUNDS;
            config.sensors_per_node = SENSORS_PER_NODE;
            config.devices_per_node = 0;
            config.chatter = false;
            config.reading_interval_rounds = workload.reading_interval_rounds;
            config.sync_interval_rounds = 10;
            config.measure_full_state = true;
            let report = sim::run(&config).expect("a lossless office converges");
            let per_reading = report.bytes_per_reading();
            let full_per_reading = report.full_state_bytes as f64 / report.readings_written as f64;
            println!(
                "| {nodes} | {} | {} | {} | {} | {per_reading:.0} | {full_per_reading:.0} | {:.1}× |",
                workload.name,
                report.readings_written,
                report.push_bytes,
                report.sync_bytes,
                full_per_reading / per_reading
            );
        }
    }
}
