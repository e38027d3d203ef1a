//! Tests of the wire format: round trips of states built through the real replica API
//! (`round_trip`), every structural error and per-entry rejection (`errors`), robustness
//! against random, mutated and nonsensical messages (`robustness`), and the agreement of the
//! code with `state.proto` and `docs/protocol.md` (`documents`).

mod documents;
mod errors;
mod robustness;
mod round_trip;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    encode,
    proto::{self, Body},
    *,
};
use crate::state::{
    AlertName, DEFAULT_RETENTION_MS, Delta, Digest, MIN_PLAUSIBLE_WALL_MS, Mac, Message, NodeId,
    NodeName, Person, Quantity, Replica, Room, SensorId, Snapshot, Version, WriteError,
};

/// A plausible physical time, so clocks behave as on a real node.
const T0: u64 = MIN_PLAUSIBLE_WALL_MS + 3_600_000;

/// 2026-01-15T09:30:00Z: the time of the worked example in `docs/protocol.md`.
const EXAMPLE_MS: u64 = 1_768_469_400_000;

fn node_id(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn room(name: &str) -> Room {
    Room::new(name).unwrap()
}

fn person(name: &str) -> Person {
    Person::new(name).unwrap()
}

fn mac(last: u8) -> Mac {
    Mac([0x00, 0x1a, 0x2b, 0x3c, 0x4d, last])
}

/// A replica ready to write: created, then saved as the API asks.
fn replica(name: &str) -> Replica {
    let mut replica = Replica::new(node_id(name), DEFAULT_RETENTION_MS);
    replica.snapshot();
    replica
}

fn merge(to: &mut Replica, delta: &Delta, from: &NodeId, physical_ms: u64) {
    let report = to.merge(delta.clone(), from, physical_ms);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

/// Replicas writing and hearing each other, with a clock that moves a second per write.
struct Office {
    replicas: Vec<Replica>,
    /// Every delta made, with the index of the replica that made it.
    deltas: Vec<(usize, Delta)>,
    now_ms: u64,
}

impl Office {
    fn write(
        &mut self,
        at: usize,
        make: impl FnOnce(&mut Replica, u64) -> Result<Delta, WriteError>,
    ) {
        self.now_ms += 1_000;
        let delta = make(&mut self.replicas[at], self.now_ms).unwrap();
        self.deltas.push((at, delta));
    }

    /// Delivers the deltas from `first` on to every other replica for which `heard` holds.
    fn deliver(&mut self, first: usize, heard: impl Fn(usize, usize, usize) -> bool) {
        for index in first..self.deltas.len() {
            let (from, delta) = self.deltas[index].clone();
            let from_id = self.replicas[from].id().clone();
            for to in 0..self.replicas.len() {
                if to != from && heard(index, from, to) {
                    merge(&mut self.replicas[to], &delta, &from_id, self.now_ms);
                }
            }
        }
    }
}

/// A small office: three replicas write to every part, miss some of each other's deltas
/// (so contexts have holes) and merge the rest. Returns the replicas and every delta made.
fn office() -> (Vec<Replica>, Vec<Delta>) {
    let names = ["12D3KooWAlpha", "12D3KooWBravo", "12D3KooWCharlie"];
    let mut office = Office {
        replicas: names.iter().map(|name| replica(name)).collect(),
        deltas: Vec::new(),
        now_ms: T0,
    };
    for (at, room_name) in [(0, "meeting room"), (1, "open space"), (2, "kitchen")] {
        office.write(at, |r, t| {
            r.announce(
                NodeName::new(&format!("pi-{at}")).unwrap(),
                room(room_name),
                Version::new("0.1.0").unwrap(),
                T0,
                t,
            )
        });
    }
    let desk = || SensorId::new("desk-1").unwrap();
    office.write(0, |r, t| {
        r.record_reading(
            desk(),
            room("meeting room"),
            Quantity::Temperature,
            22.5,
            "°C",
            t,
        )
    });
    office.write(0, |r, t| {
        r.record_reading(
            desk(),
            room("meeting room"),
            Quantity::Temperature,
            -3.25,
            "°C",
            t,
        )
    });
    office.write(1, |r, t| {
        let sensor = SensorId::new("bme280").unwrap();
        r.record_reading(
            sensor,
            room("open space"),
            Quantity::Pressure,
            101.3,
            "kPa",
            t,
        )
    });
    office.write(0, |r, t| {
        r.observe_device(mac(1), IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)), t)
    });
    office.write(1, |r, t| {
        r.observe_device(mac(2), IpAddr::V6(Ipv6Addr::LOCALHOST), t)
    });
    office.write(2, |r, t| r.bind(person("alice"), mac(1), t));
    let alert = || AlertName::new("kitchen-co2").unwrap();
    office.write(2, |r, t| {
        let message = "the kitchen CO2 is at 1400 ppm. Open a window?";
        let message = Message::new(message).unwrap();
        r.raise_alert(alert(), room("kitchen"), Quantity::Co2, message, t)
    });
    // Everyone hears everything so far, except that Alpha misses Bravo's reading.
    let missed = 5;
    office.deliver(0, |index, _, to| !(to == 0 && index == missed));

    // Concurrent writes: a bind and an unbind, two targets; and an alert cleared.
    let heard = office.deltas.len();
    office.write(0, |r, t| r.unbind(person("alice"), mac(1), t));
    office.write(1, |r, t| r.bind(person("alice"), mac(1), t));
    office.write(0, |r, t| {
        let (temperature, alice) = (Quantity::Temperature, person("alice"));
        r.set_target(room("meeting room"), temperature, 21.0, "°C", alice, t)
    });
    office.write(1, |r, t| {
        let (temperature, bob) = (Quantity::Temperature, person("bob"));
        r.set_target(room("meeting room"), temperature, 70.0, "°F", bob, t)
    });
    office.write(2, |r, t| r.clear_alert(alert(), t));
    // Charlie hears all of these; Alpha and Bravo only each other's.
    office.deliver(heard, |_, from, to| to == 2 || from != 2);

    let deltas = office.deltas.into_iter().map(|(_, delta)| delta).collect();
    (office.replicas, deltas)
}

/// The worked example of `docs/protocol.md`: one temperature reading, a node's first write.
fn example_delta() -> Delta {
    let mut replica = replica("12D3KooWExampleNode");
    replica
        .record_reading(
            SensorId::new("desk-1").unwrap(),
            room("meeting room"),
            Quantity::Temperature,
            22.5,
            "°C",
            EXAMPLE_MS,
        )
        .unwrap()
}

fn check_delta_round_trip(delta: &Delta) {
    let bytes = encode_delta(delta);
    assert!(bytes.len() <= MAX_DELTA_BYTES);
    let decoded = decode_delta(&bytes).unwrap();
    assert_eq!(decoded.rejected, vec![]);
    assert_eq!(&decoded.delta, delta);
}

fn check_digest_round_trip(digest: &Digest) {
    assert_eq!(&decode_digest(&encode_digest(digest)).unwrap(), digest);
}

fn check_snapshot_round_trip(snapshot: &Snapshot) {
    assert_eq!(
        &decode_snapshot(&encode_snapshot(snapshot)).unwrap(),
        snapshot
    );
}

fn delta_bytes(wire: proto::Delta) -> Vec<u8> {
    envelope(Body::Delta(wire))
}

/// A length-delimited protobuf field.
fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, u64::from(number) << 3 | 2);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().expect("a complete varint");
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
    }
    value
}
