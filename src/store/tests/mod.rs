//! Tests of the store against real SQLite files in temporary directories: the replica's
//! round trip and sequence numbers (`snapshot`), the journal of deltas under it (`journal`),
//! a real `kill -9` of a writing process (`crash`), keys and the data directory
//! (`identity`), files refused untouched (`refuse`), and history with its rollups
//! (`history`).

mod crash;
mod history;
mod identity;
mod journal;
mod minutes;
mod refuse;
mod snapshot;

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
    time::Instant,
};

use super::*;
use crate::state::{
    AlertName, DEFAULT_RETENTION_MS, Delta, Dot, MIN_PLAUSIBLE_WALL_MS, Mac, Message, NodeId,
    NodeName, Person, Quantity, Replica, Room, SensorId, Version,
};

/// A plausible physical time, so clocks behave as on a real node.
const T0: u64 = MIN_PLAUSIBLE_WALL_MS + 3_600_000;

/// A node id shaped like a real one: a 52-character base58 libp2p peer id.
const NODE_A: &str = "12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const NODE_B: &str = "12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn node_id(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn room(name: &str) -> Room {
    Room::new(name).unwrap()
}

fn sensor(name: &str) -> SensorId {
    SensorId::new(name).unwrap()
}

/// How long [`open`] waits for the data directory's lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens a store, waiting for the directory's lock if needed. The lock can outlive the
/// store that dropped it by a moment: the `crash` test spawns processes, and a process
/// forked from this one holds copies of every open file, the lock file included, until it
/// executes its program.
fn try_open(dir: &Path) -> Result<Store, StoreError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match Store::open(dir) {
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::yield_now();
            }
            result => return result,
        }
    }
}

fn open(dir: &Path) -> Store {
    try_open(dir).unwrap_or_else(|error| panic!("open {}: {error}", dir.display()))
}

/// A new replica whose first lease is saved, as the API asks before the first write.
fn saved_replica(store: &mut Store, name: &str) -> Replica {
    let mut replica = Replica::new(node_id(name), DEFAULT_RETENTION_MS);
    store.save_snapshot(&replica.snapshot()).unwrap();
    replica
}

/// One write of every kind, at one second per write from `t0`. Returns the deltas.
fn write_everything(replica: &mut Replica, t0: u64) -> Vec<Delta> {
    let mut at = t0;
    let mut tick = || {
        at += 1000;
        at
    };
    let mac = Mac([0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]);
    vec![
        replica
            .announce(
                NodeName::new("pi-kitchen").unwrap(),
                room("kitchen"),
                Version::new("0.1.0").unwrap(),
                t0,
                tick(),
            )
            .unwrap(),
        replica
            .record_reading(
                sensor("desk-1"),
                room("kitchen"),
                Quantity::Temperature,
                21.5,
                "°C",
                tick(),
            )
            .unwrap(),
        replica
            .record_reading(
                sensor("desk-2"),
                room("kitchen"),
                Quantity::Humidity,
                40.0,
                "%",
                tick(),
            )
            .unwrap(),
        replica
            .observe_device(mac, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)), tick())
            .unwrap(),
        replica
            .bind(Person::new("ada").unwrap(), mac, tick())
            .unwrap(),
        replica
            .set_target(
                room("kitchen"),
                Quantity::Temperature,
                22.0,
                "°C",
                Person::new("ada").unwrap(),
                tick(),
            )
            .unwrap(),
        replica
            .raise_alert(
                AlertName::new("too-warm").unwrap(),
                room("kitchen"),
                Quantity::Temperature,
                Message::new("the kitchen is at 24.0°C").unwrap(),
                tick(),
            )
            .unwrap(),
    ]
}

/// The sequence numbers of `writer` in a delta's context, highest first.
fn max_seq(delta: &Delta, writer: &NodeId) -> u64 {
    delta.context.max_seq(writer)
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}
