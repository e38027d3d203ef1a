//! What the fuzz targets share: a small office made through the real replica API, to merge
//! fuzzed deltas into and to answer fuzzed digests from, and the seeds of the corpus
//! (`examples/seed_corpus.rs` writes them under `corpus/`).

use officemesh::state::{
    AlertName, DEFAULT_RETENTION_MS, Delta, MIN_PLAUSIBLE_WALL_MS, Mac, Message, NodeId, NodeName,
    Person, Quantity, Replica, Room, SensorId, Version,
};

/// The physical time every target works at: an hour into the plausible range, so the
/// replicas' clocks behave as on a real node.
pub const NOW_MS: u64 = MIN_PLAUSIBLE_WALL_MS + 3_600_000;

/// Node ids of the sample office, shaped like the libp2p peer ids a running office uses.
pub const ALPHA: &str = "12D3KooWGzBqN8z9Tc2ZGvYpQnFgk3HsM4x1LwPdRbVtJmXe7Ea6";
pub const BRAVO: &str = "12D3KooWQd7sR2mJ5vTnX8yLpB4cF6hZ9wK3eA1gU7iN2oMqYs5D";

/// A replica ready to write: created, then saved as the API asks.
pub fn replica(id: &str) -> Replica {
    let mut replica = Replica::new(
        NodeId::new(id).expect("a valid node id"),
        DEFAULT_RETENTION_MS,
    );
    replica.snapshot();
    replica
}

/// Two nodes that have written to every part of the state, and every delta they made,
/// with its writer. Bravo has heard all of Alpha's writes but one, so Alpha's digest shows
/// a gap in what it has seen of Bravo once Bravo merges back.
pub fn office() -> (Replica, Replica, Vec<(NodeId, Delta)>) {
    let mut alpha = replica(ALPHA);
    let mut bravo = replica(BRAVO);
    let mut deltas = Vec::new();
    let mut now_ms = NOW_MS - 600_000;
    let mut tick = || {
        now_ms += 1_000;
        now_ms
    };
    let mac = |last: u8| Mac([0x00, 0x1a, 0x2b, 0x3c, 0x4d, last]);
    let room = |name: &str| Room::new(name).expect("a valid room");
    let person = |name: &str| Person::new(name).expect("a valid person");
    let writes = [
        alpha.announce(
            NodeName::new("stratos").unwrap(),
            room("meeting room"),
            Version::new("0.1.0").unwrap(),
            tick(),
            tick(),
        ),
        alpha.record_reading(
            SensorId::new("desk-1").unwrap(),
            room("meeting room"),
            Quantity::Temperature,
            22.5,
            "",
            tick(),
        ),
        alpha.observe_device(mac(0x5e), "192.0.2.7".parse().unwrap(), tick()),
        alpha.bind(person("mendes"), mac(0x5e), tick()),
        alpha.set_target(
            room("meeting room"),
            Quantity::Temperature,
            21.0,
            "",
            person("mendes"),
            tick(),
        ),
        alpha.raise_alert(
            AlertName::new("too-warm").unwrap(),
            room("meeting room"),
            Quantity::Temperature,
            Message::new("the meeting room is at 24.5°C").unwrap(),
            tick(),
        ),
    ];
    for delta in writes {
        deltas.push((alpha.id().clone(), delta.expect("a valid write")));
    }
    // Bravo hears every write of Alpha's but the reading.
    for (index, (writer, delta)) in deltas.iter().enumerate() {
        if index != 1 {
            bravo.merge(delta.clone(), writer, tick());
        }
    }
    let writes = [
        bravo.announce(
            NodeName::new("kitchen-pi").unwrap(),
            room("kitchen"),
            Version::new("0.1.0").unwrap(),
            tick(),
            tick(),
        ),
        bravo.record_reading(
            SensorId::new("hwmon-0").unwrap(),
            room("kitchen"),
            Quantity::Humidity,
            48.0,
            "%",
            tick(),
        ),
        bravo.observe_device(mac(0x60), "fe80::1".parse().unwrap(), tick()),
        bravo.unbind(person("mendes"), mac(0x5e), tick()),
        // The same target set on both nodes: concurrent values kept side by side.
        bravo.set_target(
            room("meeting room"),
            Quantity::Temperature,
            22.0,
            "",
            person("ana"),
            tick(),
        ),
        bravo.raise_alert(
            AlertName::new("too-humid").unwrap(),
            room("kitchen"),
            Quantity::Humidity,
            Message::new("the kitchen is at 71%").unwrap(),
            tick(),
        ),
        bravo.clear_alert(AlertName::new("too-humid").unwrap(), tick()),
    ];
    for delta in writes {
        deltas.push((bravo.id().clone(), delta.expect("a valid write")));
    }
    // Alpha hears Bravo's last writes but not its first two.
    for (writer, delta) in deltas.iter().skip(8) {
        alpha.merge(delta.clone(), writer, tick());
    }
    (alpha, bravo, deltas)
}
