//! Tests of the wire format: round trips of states built through the real replica API,
//! every structural error, per-entry rejection, robustness against random and mutated
//! bytes, and the agreement of the code with `state.proto` and `docs/protocol.md`.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::OnceLock,
};

use proptest::prelude::*;
use prost::Message as _;

use super::{proto::*, *};
use crate::state::{
    DEFAULT_RETENTION_MS, Delta, MIN_PLAUSIBLE_WALL_MS, Mac, NodeId, Part, Person, Quantity,
    RejectReason, Replica, Room, SensorId, Snapshot,
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
        make: impl FnOnce(&mut Replica, u64) -> Result<Delta, crate::state::WriteError>,
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
                crate::state::NodeName::new(&format!("pi-{at}")).unwrap(),
                room(room_name),
                crate::state::Version::new("0.1.0").unwrap(),
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
    let alert = || crate::state::AlertName::new("kitchen-co2").unwrap();
    office.write(2, |r, t| {
        let message = "the kitchen CO2 is at 1400 ppm. Open a window?";
        let message = crate::state::Message::new(message).unwrap();
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

fn check_delta_round_trip(delta: &Delta) {
    let bytes = encode_delta(delta);
    assert!(bytes.len() <= MAX_DELTA_BYTES);
    let decoded = decode_delta(&bytes).unwrap();
    assert_eq!(decoded.rejected, vec![]);
    assert_eq!(&decoded.delta, delta);
}

fn check_digest_round_trip(digest: &crate::state::Digest) {
    assert_eq!(&decode_digest(&encode_digest(digest)).unwrap(), digest);
}

fn check_snapshot_round_trip(snapshot: &Snapshot) {
    assert_eq!(
        &decode_snapshot(&encode_snapshot(snapshot)).unwrap(),
        snapshot
    );
}

#[test]
fn the_sample_office_covers_every_part_and_a_gap() {
    let (replicas, _) = office();
    let store = replicas[0].store();
    assert!(
        !store.nodes.is_empty()
            && !store.readings.is_empty()
            && !store.network.is_empty()
            && !store.people.is_empty()
            && !store.targets.is_empty()
            && !store.alerts.is_empty()
    );
    assert_eq!(store.targets.len(), 2, "concurrent targets are both kept");
    let bravo = replicas[1].id();
    let ranges = replicas[0].context().get(bravo).unwrap().ranges().len();
    assert!(ranges > 1, "Alpha's context of Bravo has a hole");
}

#[test]
fn deltas_round_trip() {
    let (replicas, deltas) = office();
    for delta in &deltas {
        check_delta_round_trip(delta);
    }
    for replica in &replicas {
        check_delta_round_trip(replica.state());
    }
    check_delta_round_trip(&Delta::default());
}

#[test]
fn digests_and_sync_answers_round_trip() {
    let (replicas, _) = office();
    for replica in &replicas {
        check_digest_round_trip(&replica.digest());
        for other in &replicas {
            check_delta_round_trip(&other.missing_for(&replica.digest()));
        }
    }
    check_digest_round_trip(&crate::state::Digest::default());
}

#[test]
fn snapshots_round_trip() {
    let (mut replicas, _) = office();
    for replica in &mut replicas {
        check_snapshot_round_trip(&replica.snapshot());
    }
    check_snapshot_round_trip(&replica("12D3KooWFresh").snapshot());
}

#[test]
fn replicas_converge_through_the_wire() {
    let (replicas, _) = office();
    let mut fresh = replica("12D3KooWFresh");
    for replica in &replicas {
        let answer = replica.missing_for(&decode_digest(&encode_digest(&fresh.digest())).unwrap());
        let decoded = decode_delta(&encode_delta(&answer)).unwrap();
        let report = fresh.merge(decoded.delta, replica.id(), T0 + 60_000);
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    }
    let mut all = Delta::default();
    for replica in &replicas {
        all.join(replica.state());
    }
    assert_eq!(fresh.state(), &all);
}

// ---- the worked example of docs/protocol.md ----

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x} ")).collect()
}

#[test]
fn the_protocol_doc_example_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let block = doc
        .split("```hex\n")
        .nth(1)
        .expect("docs/protocol.md has a ```hex block")
        .split("```")
        .next()
        .unwrap();
    // Each line: hex bytes, then `#` and the annotation.
    let documented: Vec<u8> = block
        .lines()
        .flat_map(|line| line.split('#').next().unwrap().split_whitespace())
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
        .collect();
    let encoded = encode_delta(&example_delta());
    assert_eq!(hex(&documented), hex(&encoded));
    assert!(
        doc.contains(&format!("{} bytes", encoded.len())),
        "the doc states the size"
    );
}

#[test]
fn a_one_reading_delta_is_small() {
    // A 52-character peer id, as in a running office.
    let mut replica = replica("12D3KooWGzBqN8z9Tc2ZGvYpQnFgk3HsM4x1LwPdRbVtJmXe7Ea6");
    let delta = replica
        .record_reading(
            SensorId::new("hwmon0/temp1").unwrap(),
            room("open space"),
            Quantity::Temperature,
            21.75,
            "",
            EXAMPLE_MS,
        )
        .unwrap();
    // 52 bytes of it are the peer id, which a delta names once however many entries it has.
    let len = encode_delta(&delta).len();
    assert!(len <= 112, "{len} bytes");
}

// ---- structural errors ----

/// The state of the sample office as a protobuf message, to break by hand.
fn sample_wire() -> super::proto::Delta {
    let (replicas, _) = office();
    super::encode::state(replicas[0].state())
}

fn delta_bytes(wire: super::proto::Delta) -> Vec<u8> {
    envelope(Body::Delta(wire))
}

/// Breaks the sample office state with `mutate` and checks the decoder refuses it whole,
/// saying `expected`.
fn check_malformed(mutate: impl FnOnce(&mut super::proto::Delta), expected: &str) {
    let mut wire = sample_wire();
    mutate(&mut wire);
    let error = decode_delta(&delta_bytes(wire)).unwrap_err();
    assert!(
        matches!(error, WireError::Malformed(_)) && error.to_string().contains(expected),
        "expected {expected:?}, got {error}"
    );
}

#[test]
fn bad_indexes_fail_the_message() {
    let outside = "node index 1000 is outside the node table";
    check_malformed(|w| w.readings[0].writer = 1000, outside);
    check_malformed(|w| w.readings[0].node = 1000, outside);
    check_malformed(|w| w.nodes[0].node = 1000, outside);
    check_malformed(|w| w.network[0].observer = 1000, outside);
    check_malformed(|w| w.alerts[0].node = 1000, outside);
    check_malformed(|w| w.people[0].writer = 1000, outside);
    check_malformed(|w| w.context[0].writer = 1000, outside);
    check_malformed(
        |w| w.node_ids.truncate(1),
        "outside the node table of 1 ids",
    );
}

#[test]
fn bad_node_tables_fail_the_message() {
    check_malformed(
        |w| w.node_ids.push(w.node_ids[0].clone()),
        "is in the node table twice",
    );
    check_malformed(
        |w| w.node_ids.push("has space".to_owned()),
        "node id \"has space\": it may only contain printable ASCII",
    );
    check_malformed(|w| w.node_ids.push(String::new()), "it is empty");
    check_malformed(
        |w| w.node_ids = (0..=MAX_WRITERS).map(|i| format!("n{i}")).collect(),
        "65537 node ids, more than the limit of 65536",
    );
}

#[test]
fn bad_ranges_fail_the_message() {
    let ranges = |pairs: Vec<u64>| move |w: &mut super::proto::Delta| w.context[0].ranges = pairs;
    check_malformed(ranges(vec![]), "no ranges");
    check_malformed(ranges(vec![0, 5, 1]), "3 numbers, not (gap, length) pairs");
    check_malformed(ranges(vec![0, 0]), "a range of length 0");
    check_malformed(ranges(vec![0, 2, 0, 3]), "gap 0");
    check_malformed(
        ranges(vec![u64::MAX, 1]),
        "past the largest sequence number",
    );
    check_malformed(
        ranges(vec![5, u64::MAX]),
        "past the largest sequence number",
    );
    check_malformed(
        ranges(vec![0, u64::MAX, 1, 1]),
        "past the largest sequence number",
    );
    let too_many: Vec<u64> = std::iter::repeat_n([1, 1], MAX_RANGES + 1)
        .flatten()
        .collect();
    check_malformed(
        ranges(too_many),
        "65537 ranges, more than the limit of 65536",
    );
    check_malformed(
        |w| w.context.push(w.context[0].clone()),
        "is in the context twice",
    );
}

#[test]
fn ranges_up_to_the_largest_sequence_number_decode() {
    let wire = super::proto::Delta {
        node_ids: vec!["n".to_owned()],
        context: vec![WriterContext {
            writer: 0,
            ranges: vec![0, 3, 1, u64::MAX - 4],
        }],
        ..Default::default()
    };
    let decoded = decode_delta(&delta_bytes(wire)).unwrap();
    let seqs = decoded.delta.context.get(&node_id("n")).unwrap();
    assert_eq!(seqs.ranges(), &[(1, 3), (5, u64::MAX)]);
}

#[test]
fn bad_dots_fail_the_message() {
    check_malformed(|w| w.readings[0].seq = 0, "has sequence number 0");
    check_malformed(|w| w.alerts[0].seq = 0, "has sequence number 0");
    check_malformed(
        |w| w.readings[0].seq = 1_000_000,
        ":1000000 is not in the context",
    );
    check_malformed(
        |w| w.readings.push(w.readings[0].clone()),
        "names two entries",
    );
    check_malformed(
        |w| {
            // The same dot in two parts.
            let (writer, seq) = (w.readings[0].writer, w.readings[0].seq);
            w.people[0].writer = writer;
            w.people[0].seq = seq;
        },
        "names two entries",
    );
}

#[test]
fn too_many_entries_fail_the_message() {
    // Only a snapshot can hold that many within its byte limit. Built as bytes: an empty
    // binding is two bytes (field 6, length 0).
    let mut state = Vec::new();
    for _ in 0..=MAX_ENTRIES {
        state.extend([0x32, 0x00]);
    }
    let mut snapshot = field(1, b"n");
    snapshot.extend(field(5, &state));
    let mut bytes = vec![0x08, 0x01];
    bytes.extend(field(4, &snapshot));
    let error = decode_snapshot(&bytes).unwrap_err();
    assert_eq!(
        error,
        WireError::Malformed("2097153 entries, more than the limit of 2097152".to_owned())
    );
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

#[test]
fn versions_other_than_1_are_refused() {
    let body = Body::Delta(super::encode::state(&example_delta()));
    for version in [0, 2, u32::MAX] {
        let bytes = Envelope {
            version,
            body: Some(body.clone()),
        }
        .encode_to_vec();
        assert_eq!(
            decode_delta(&bytes).unwrap_err(),
            WireError::Version { found: version }
        );
    }
    // Version 2 may change the body: it is refused as version 2, not as garbage.
    let bytes = [0x08, 0x02, 0x12, 0x03, 0xff, 0xff, 0xff];
    let error = decode_delta(&bytes).unwrap_err();
    assert_eq!(error, WireError::Version { found: 2 });
    assert_eq!(
        error.to_string(),
        "message has wire version 2, this node speaks version 1"
    );
    // Every decoder checks it.
    let digest = Envelope {
        version: 2,
        body: Some(Body::Digest(super::proto::Digest::default())),
    };
    assert_eq!(
        decode_digest(&digest.encode_to_vec()).unwrap_err(),
        WireError::Version { found: 2 }
    );
    let snapshot = Envelope {
        version: 2,
        body: Some(Body::Snapshot(super::proto::Snapshot::default())),
    };
    assert_eq!(
        decode_snapshot(&snapshot.encode_to_vec()).unwrap_err(),
        WireError::Version { found: 2 }
    );
}

#[test]
fn envelopes_must_hold_the_expected_body() {
    let (mut replicas, _) = office();
    let digest = encode_digest(&replicas[0].digest());
    let snapshot = encode_snapshot(&replicas[0].snapshot());
    let delta = encode_delta(replicas[0].state());
    let malformed = |text: &str| WireError::Malformed(text.to_owned());
    assert_eq!(
        decode_delta(&digest).unwrap_err(),
        malformed("expected a delta, found a digest")
    );
    assert_eq!(
        decode_digest(&snapshot).unwrap_err(),
        malformed("expected a digest, found a snapshot")
    );
    assert_eq!(
        decode_snapshot(&delta).unwrap_err(),
        malformed("expected a snapshot, found a delta")
    );
    assert_eq!(
        decode_delta(&[0x08, 0x01]).unwrap_err(),
        malformed("the envelope has no body")
    );
}

#[test]
fn oversized_truncated_and_non_protobuf_bytes_are_refused() {
    assert_eq!(
        decode_delta(&vec![0; MAX_DELTA_BYTES + 1]).unwrap_err(),
        WireError::TooLarge {
            len: MAX_DELTA_BYTES + 1,
            max: MAX_DELTA_BYTES
        }
    );
    assert!(matches!(
        decode_digest(&vec![0; MAX_DIGEST_BYTES + 1]).unwrap_err(),
        WireError::TooLarge { .. }
    ));
    assert!(matches!(
        decode_snapshot(&vec![0; MAX_SNAPSHOT_BYTES + 1]).unwrap_err(),
        WireError::TooLarge { .. }
    ));

    let bytes = encode_delta(&example_delta());
    for len in 1..bytes.len() {
        assert!(
            matches!(decode_delta(&bytes[..len]), Err(WireError::Malformed(_))),
            "truncated to {len} bytes"
        );
    }
    // A name that is not UTF-8.
    let mut bytes = bytes.clone();
    let at = bytes.windows(6).position(|w| w == b"desk-1").unwrap();
    bytes[at] = 0xff;
    let error = decode_delta(&bytes).unwrap_err();
    assert!(error.to_string().contains("UTF-8"), "{error}");
}

#[test]
fn bad_digests_fail_the_message() {
    let (replicas, _) = office();
    let check = |mutate: &dyn Fn(&mut super::proto::Digest), expected: &str| {
        let mut wire = super::encode::digest(&replicas[0].digest());
        mutate(&mut wire);
        let bytes = envelope(Body::Digest(wire));
        let error = decode_digest(&bytes).unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    };
    check(&|w| w.alive[0].writer = 99, "node index 99 is outside");
    check(&|w| w.alive.push(w.alive[0].clone()), "is summarised twice");
    check(
        &|w| w.context[0].ranges = vec![0],
        "not (gap, length) pairs",
    );
    check(&|w| w.node_ids[0] = "x y".to_owned(), "printable ASCII");
}

// ---- per-entry rejection ----

/// Writer "n1" with dots 1..=9: good entries at 1, 8 and 9, invalid values in the others.
fn delta_with_bad_entries() -> super::proto::Delta {
    let reading = |seq: u64, room: &str, quantity: i32, value: f64| ReadingEntry {
        writer: 0,
        seq,
        at_wall_ms: T0,
        at_logical: 0,
        node: 0,
        sensor: format!("sensor-{seq}"),
        room: room.to_owned(),
        quantity,
        value,
    };
    let temperature = super::proto::Quantity::Temperature as i32;
    let sighting = |seq: u64, mac: Vec<u8>, ip: Vec<u8>| SightingEntry {
        writer: 0,
        seq,
        at_wall_ms: T0,
        at_logical: 0,
        observer: 0,
        mac,
        ip,
    };
    super::proto::Delta {
        node_ids: vec!["n1".to_owned()],
        context: vec![WriterContext {
            writer: 0,
            ranges: vec![0, 9],
        }],
        readings: vec![
            reading(1, "meeting room", temperature, 22.5),
            reading(2, "  ", temperature, 22.5),
            reading(3, "meeting room", 99, 22.5),
            reading(4, "meeting room", temperature, f64::NAN),
            reading(5, "meeting room", temperature, 500.0),
        ],
        network: vec![
            sighting(6, vec![1, 2, 3, 4, 5], vec![10, 0, 0, 1]),
            sighting(7, vec![1, 2, 3, 4, 5, 6], vec![10, 0, 0, 1, 5]),
            sighting(8, vec![1, 2, 3, 4, 5, 6], vec![10, 0, 0, 1]),
        ],
        people: vec![BindingEntry {
            writer: 0,
            seq: 9,
            at_wall_ms: T0,
            at_logical: 0,
            person: "alice".to_owned(),
            mac: vec![1, 2, 3, 4, 5, 6],
            bound: true,
        }],
        ..Default::default()
    }
}

#[test]
fn invalid_entries_are_dropped_alone() {
    let decoded = decode_delta(&delta_bytes(delta_with_bad_entries())).unwrap();
    let writer = node_id("n1");
    let rejected: Vec<(Part, u64, &str)> = decoded
        .rejected
        .iter()
        .map(|error| {
            assert_eq!(error.dot.writer, writer);
            (error.part, error.dot.seq, error.reason.as_str())
        })
        .collect();
    let expected = [
        (Part::Readings, 2, "room \"  \" is not valid: it is empty"),
        (Part::Readings, 3, "unknown quantity \"enum value 99\""),
        (Part::Readings, 4, "not a finite number"),
        (Part::Readings, 5, "outside the possible range"),
        (
            Part::Network,
            6,
            "invalid MAC address \"01:02:03:04:05 (5 bytes)\"",
        ),
        (Part::Network, 7, "IP address of 5 bytes (expected 4 or 16)"),
    ];
    assert_eq!(rejected.len(), expected.len(), "{rejected:?}");
    for ((part, seq, reason), (want_part, want_seq, want_reason)) in rejected.iter().zip(expected) {
        assert_eq!((*part, *seq), (want_part, want_seq));
        assert!(
            reason.contains(want_reason),
            "{reason:?} lacks {want_reason:?}"
        );
    }
    // The good entries survive, and only their dots are taken as seen.
    let dots: Vec<u64> = decoded.delta.store.dots().map(|(_, dot)| dot.seq).collect();
    assert_eq!(dots, vec![1, 8, 9]);
    let seen = decoded.delta.context.get(&writer).unwrap();
    assert_eq!(seen.ranges(), &[(1, 1), (8, 9)]);
    // The rest merges.
    let mut replica = replica("n2");
    let report = replica.merge(decoded.delta, &writer, T0);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.added, 3);
}

#[test]
fn an_invalid_entry_fails_a_snapshot() {
    let wire = super::proto::Snapshot {
        id: "n1".to_owned(),
        seq_ceiling: 100,
        clock_wall_ms: T0,
        clock_logical: 0,
        state: Some(delta_with_bad_entries()),
    };
    let error = decode_snapshot(&envelope(Body::Snapshot(wire))).unwrap_err();
    let WireError::InvalidEntry(entry) = &error else {
        panic!("{error}");
    };
    assert_eq!((entry.part, entry.dot.seq), (Part::Readings, 2));
    assert!(
        error
            .to_string()
            .starts_with("invalid entry in snapshot: invalid reading n1:2")
    );

    let bad_id = super::proto::Snapshot {
        id: String::new(),
        ..Default::default()
    };
    let error = decode_snapshot(&envelope(Body::Snapshot(bad_id))).unwrap_err();
    assert!(error.to_string().contains("it is empty"), "{error}");
}

#[test]
fn key_nodes_are_explicit_so_the_core_sees_a_wrong_writer() {
    // Node "mallory" publishes a reading under node "victim"'s key.
    let wire = super::proto::Delta {
        node_ids: vec!["mallory".to_owned(), "victim".to_owned()],
        context: vec![WriterContext {
            writer: 0,
            ranges: vec![0, 1],
        }],
        readings: vec![ReadingEntry {
            writer: 0,
            seq: 1,
            at_wall_ms: T0,
            at_logical: 0,
            node: 1,
            sensor: "desk-1".to_owned(),
            room: "meeting room".to_owned(),
            quantity: super::proto::Quantity::Temperature as i32,
            value: 40.0,
        }],
        ..Default::default()
    };
    let decoded = decode_delta(&delta_bytes(wire)).unwrap();
    assert!(decoded.rejected.is_empty());
    let mut replica = replica("observer");
    let mallory = node_id("mallory");
    let report = replica.merge(decoded.delta, &mallory, T0);
    assert_eq!(report.added, 0);
    assert!(
        matches!(
            &report.rejected[..],
            [rejection] if rejection.reason == RejectReason::NotOwner {
                writer: mallory.clone(),
                owner: node_id("victim"),
            }
        ),
        "{:?}",
        report.rejected
    );
}

// ---- robustness ----

/// Every encoded message of the sample office, to mutate; built once.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let (mut replicas, deltas) = office();
        let mut corpus: Vec<Vec<u8>> = deltas.iter().map(encode_delta).collect();
        for replica in &mut replicas {
            corpus.push(encode_delta(replica.state()));
            corpus.push(encode_digest(&replica.digest()));
            corpus.push(encode_snapshot(&replica.snapshot()));
        }
        corpus
    })
}

/// Decodes with every decoder; what decodes must encode and decode to the same again.
fn decode_everything(bytes: &[u8]) {
    if let Ok(decoded) = decode_delta(bytes) {
        check_delta_round_trip(&decoded.delta);
    }
    if let Ok(digest) = decode_digest(bytes) {
        check_digest_round_trip(&digest);
    }
    if let Ok(snapshot) = decode_snapshot(bytes) {
        check_snapshot_round_trip(&snapshot);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { at: usize },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Append { bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=u8::MAX).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(|bytes| Mutation::Append { bytes }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match mutation {
        Mutation::Flip { at, mask } if len > 0 => bytes[at % len] ^= mask,
        Mutation::Truncate { at } => bytes.truncate(at % (len + 1)),
        Mutation::Insert { at, byte } => bytes.insert(at % (len + 1), *byte),
        Mutation::Remove { at } if len > 0 => {
            bytes.remove(at % len);
        }
        Mutation::Append { bytes: more } => bytes.extend(more),
        Mutation::Flip { .. } | Mutation::Remove { .. } => {}
    }
}

// ---- random office histories ----

const NAMES: [&str; 3] = ["meeting room", "open space", "kitchen"];

#[derive(Debug, Clone)]
enum Op {
    Announce {
        at: usize,
        room: usize,
    },
    Reading {
        at: usize,
        sensor: usize,
        room: usize,
        quantity: usize,
        fraction: f64,
    },
    Observe {
        at: usize,
        mac: u8,
        ip: Option<u32>,
    },
    Bind {
        at: usize,
        who: usize,
        mac: u8,
        bound: bool,
    },
    Target {
        at: usize,
        room: usize,
        quantity: usize,
        fraction: f64,
        who: usize,
    },
    Raise {
        at: usize,
        alert: usize,
        room: usize,
        quantity: usize,
    },
    Clear {
        at: usize,
        alert: usize,
    },
    Deliver {
        from: usize,
        to: usize,
        which: usize,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

const REPLICAS: usize = 3;

fn op() -> impl Strategy<Value = Op> {
    let at = 0..REPLICAS;
    let name = 0..NAMES.len();
    let quantity = 0..Quantity::ALL.len();
    prop_oneof![
        (at.clone(), name.clone()).prop_map(|(at, room)| Op::Announce { at, room }),
        (
            at.clone(),
            0..3usize,
            name.clone(),
            quantity.clone(),
            0.0..=1.0f64
        )
            .prop_map(|(at, sensor, room, quantity, fraction)| Op::Reading {
                at,
                sensor,
                room,
                quantity,
                fraction
            }),
        (at.clone(), any::<u8>(), any::<Option<u32>>()).prop_map(|(at, mac, ip)| Op::Observe {
            at,
            mac,
            ip
        }),
        (at.clone(), name.clone(), 0..4u8, any::<bool>()).prop_map(|(at, who, mac, bound)| {
            Op::Bind {
                at,
                who,
                mac,
                bound,
            }
        }),
        (
            at.clone(),
            name.clone(),
            quantity.clone(),
            0.0..=1.0f64,
            name.clone()
        )
            .prop_map(|(at, room, quantity, fraction, who)| Op::Target {
                at,
                room,
                quantity,
                fraction,
                who
            }),
        (at.clone(), 0..2usize, name.clone(), quantity).prop_map(|(at, alert, room, quantity)| {
            Op::Raise {
                at,
                alert,
                room,
                quantity,
            }
        }),
        (at.clone(), 0..2usize).prop_map(|(at, alert)| Op::Clear { at, alert }),
        (at.clone(), at.clone(), any::<usize>()).prop_map(|(from, to, which)| Op::Deliver {
            from,
            to,
            which
        }),
        (at.clone(), at).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

/// A value of `quantity` a `fraction` of the way through its range.
fn value_in_range(quantity: Quantity, fraction: f64) -> f64 {
    let range = quantity.range();
    let (min, max) = (*range.start(), *range.end());
    (min + fraction * (max - min)).clamp(min, max)
}

/// Plays `ops` on a few replicas; returns them and every delta they made or exchanged.
fn play(ops: &[Op]) -> (Vec<Replica>, Vec<Delta>) {
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| replica(&format!("12D3KooWNode{i}")))
        .collect();
    let mut outboxes: Vec<Vec<Delta>> = vec![Vec::new(); REPLICAS];
    let mut seen = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let t = T0 + 1_000 * step as u64;
        let alert = |i: usize| crate::state::AlertName::new(&format!("alert-{i}")).unwrap();
        let written = match op {
            Op::Announce { at, room: r } => replicas[*at].announce(
                crate::state::NodeName::new("pi").unwrap(),
                room(NAMES[*r]),
                crate::state::Version::new("1.2.3").unwrap(),
                T0,
                t,
            ),
            Op::Reading {
                at,
                sensor,
                room: r,
                quantity,
                fraction,
            } => {
                let quantity = Quantity::ALL[*quantity];
                replicas[*at].record_reading(
                    SensorId::new(&format!("s{sensor}")).unwrap(),
                    room(NAMES[*r]),
                    quantity,
                    value_in_range(quantity, *fraction),
                    "",
                    t,
                )
            }
            Op::Observe { at, mac: m, ip } => {
                let ip = match ip {
                    Some(v4) => IpAddr::V4(Ipv4Addr::from(*v4)),
                    None => IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(*m))),
                };
                replicas[*at].observe_device(mac(*m), ip, t)
            }
            Op::Bind {
                at,
                who,
                mac: m,
                bound,
            } => {
                let who = person(NAMES[*who]);
                if *bound {
                    replicas[*at].bind(who, mac(*m), t)
                } else {
                    replicas[*at].unbind(who, mac(*m), t)
                }
            }
            Op::Target {
                at,
                room: r,
                quantity,
                fraction,
                who,
            } => {
                let quantity = Quantity::ALL[*quantity];
                replicas[*at].set_target(
                    room(NAMES[*r]),
                    quantity,
                    value_in_range(quantity, *fraction),
                    "",
                    person(NAMES[*who]),
                    t,
                )
            }
            Op::Raise {
                at,
                alert: a,
                room: r,
                quantity,
            } => replicas[*at].raise_alert(
                alert(*a),
                room(NAMES[*r]),
                Quantity::ALL[*quantity],
                crate::state::Message::new("look at this").unwrap(),
                t,
            ),
            Op::Clear { at, alert: a } => replicas[*at].clear_alert(alert(*a), t),
            Op::Deliver { from, to, which } => {
                if let Some(delta) = outboxes[*from].get(which % outboxes[*from].len().max(1)) {
                    let from_id = replicas[*from].id().clone();
                    let delta = delta.clone();
                    merge(&mut replicas[*to], &delta, &from_id, t);
                }
                continue;
            }
            Op::Sync { from, to } => {
                let answer = replicas[*from].missing_for(&replicas[*to].digest());
                let from_id = replicas[*from].id().clone();
                merge(&mut replicas[*to], &answer, &from_id, t);
                seen.push(answer);
                continue;
            }
        };
        if let Ok(delta) = written {
            let at = match op {
                Op::Announce { at, .. }
                | Op::Reading { at, .. }
                | Op::Observe { at, .. }
                | Op::Bind { at, .. }
                | Op::Target { at, .. }
                | Op::Raise { at, .. }
                | Op::Clear { at, .. } => *at,
                Op::Deliver { .. } | Op::Sync { .. } => unreachable!("handled above"),
            };
            outboxes[at].push(delta.clone());
            seen.push(delta);
        }
    }
    (replicas, seen)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_histories_round_trip(ops in proptest::collection::vec(op(), 1..40)) {
        let (mut replicas, deltas) = play(&ops);
        for delta in &deltas {
            check_delta_round_trip(delta);
        }
        for replica in &mut replicas {
            check_delta_round_trip(replica.state());
            check_digest_round_trip(&replica.digest());
            check_snapshot_round_trip(&replica.snapshot());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
        // And after a valid version, so the body is parsed too.
        let mut versioned = vec![0x08, 0x01];
        versioned.extend(&bytes);
        decode_everything(&versioned);
    }

    #[test]
    fn mutated_messages_never_panic(
        pick in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let corpus = corpus();
        let mut bytes = corpus[pick % corpus.len()].clone();
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        decode_everything(&bytes);
    }
}

// ---- the schema file ----

/// One field of a message in `state.proto`: (number, type, label).
type ProtoField = (u32, String, String);

/// Per message, its fields by name, in order.
type ProtoMessages = BTreeMap<String, Vec<(String, ProtoField)>>;

/// Per enum, its values by name, in order.
type ProtoEnums = BTreeMap<String, Vec<(String, i32)>>;

/// Reads the messages and enums of `state.proto`: the subset of the proto3 grammar it uses.
fn parse_proto(text: &str) -> (ProtoMessages, ProtoEnums) {
    let mut messages = ProtoMessages::new();
    let mut enums = ProtoEnums::new();
    let mut message = None;
    let mut enumeration = None;
    let mut oneof = None;
    for line in text.lines() {
        let line = line.split("//").next().unwrap().trim();
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == ';' || c == '=')
            .filter(|word| !word.is_empty())
            .collect();
        match words.as_slice() {
            [] | ["syntax", ..] | ["package", ..] => {}
            ["message", name, "{"] => message = Some(name.to_string()),
            ["enum", name, "{"] => enumeration = Some(name.to_string()),
            ["oneof", name, "{"] => oneof = Some(name.to_string()),
            ["}"] if oneof.is_some() => oneof = None,
            ["}"] if enumeration.is_some() => enumeration = None,
            ["}"] => message = None,
            [name, number] => enums
                .entry(enumeration.clone().expect("enum value inside an enum"))
                .or_default()
                .push((name.to_string(), number.parse().unwrap())),
            [label @ ("repeated" | "optional"), ty, name, number] => {
                messages
                    .entry(message.clone().expect("field inside a message"))
                    .or_default()
                    .push((
                        name.to_string(),
                        (number.parse().unwrap(), ty.to_string(), label.to_string()),
                    ));
            }
            [ty, name, number] => {
                let label = if oneof.is_some() { "oneof" } else { "" };
                messages
                    .entry(message.clone().expect("field inside a message"))
                    .or_default()
                    .push((
                        name.to_string(),
                        (number.parse().unwrap(), ty.to_string(), label.to_string()),
                    ));
            }
            other => panic!("unexpected line in state.proto: {other:?}"),
        }
    }
    (messages, enums)
}

/// The protobuf wire type a field of `ty` with `label` is written with.
fn wire_type(ty: &str, label: &str) -> u8 {
    match (ty, label) {
        (_, "repeated") => 2, // packed scalars, strings and messages alike
        ("uint32" | "uint64" | "bool" | "Quantity", _) => 0,
        ("fixed64" | "double", _) => 1,
        _ => 2,
    }
}

/// The top-level fields of an encoded message: number to wire type.
fn wire_fields(mut bytes: &[u8]) -> BTreeMap<u32, u8> {
    let mut fields = BTreeMap::new();
    while !bytes.is_empty() {
        let key = take_varint(&mut bytes);
        let wire_type = (key & 7) as u8;
        let skip = match wire_type {
            0 => {
                take_varint(&mut bytes);
                0
            }
            1 => 8,
            2 => take_varint(&mut bytes) as usize,
            other => panic!("wire type {other}"),
        };
        bytes = &bytes[skip..];
        fields.insert((key >> 3) as u32, wire_type);
    }
    fields
}

/// The names of the top-level fields in a `Debug` rendering, in order.
fn debug_field_names(debug: &str) -> Vec<String> {
    let body = &debug[debug.find('{').map_or(debug.len(), |at| at + 1)..];
    let (mut names, mut name) = (Vec::new(), String::new());
    let (mut depth, mut in_string, mut in_name) = (0, false, true);
    for c in body.chars() {
        match c {
            _ if in_string => in_string = c != '"',
            '"' => in_string = true,
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' if depth == 0 => break,
            '}' | ']' | ')' => depth -= 1,
            ',' if depth == 0 => in_name = true,
            ':' if depth == 0 && in_name => {
                names.push(name.trim().to_owned());
                name.clear();
                in_name = false;
            }
            _ if depth == 0 && in_name => name.push(c),
            _ => {}
        }
    }
    names
}

/// One instance of each message with every field set, oneof members one at a time.
fn populated() -> Vec<(&'static str, Vec<u8>, String)> {
    fn sample<M: prost::Message + std::fmt::Debug>(
        name: &'static str,
        message: M,
    ) -> (&'static str, Vec<u8>, String) {
        (name, message.encode_to_vec(), format!("{message:?}"))
    }
    let context = WriterContext {
        writer: 1,
        ranges: vec![2, 3],
    };
    let delta = super::proto::Delta {
        node_ids: vec!["a".to_owned()],
        context: vec![context.clone()],
        nodes: vec![NodeEntry::default()],
        readings: vec![ReadingEntry::default()],
        network: vec![SightingEntry::default()],
        people: vec![BindingEntry::default()],
        targets: vec![TargetEntry::default()],
        alerts: vec![AlertEntry::default()],
    };
    let digest = super::proto::Digest {
        node_ids: vec!["a".to_owned()],
        context: vec![context.clone()],
        alive: vec![WriterAlive::default()],
    };
    let snapshot = super::proto::Snapshot {
        id: "a".to_owned(),
        seq_ceiling: 1,
        clock_wall_ms: 2,
        clock_logical: 3,
        state: Some(super::proto::Delta::default()),
    };
    vec![
        sample(
            "Envelope",
            Envelope {
                version: 1,
                body: Some(Body::Delta(delta.clone())),
            },
        ),
        sample(
            "Envelope",
            Envelope {
                version: 1,
                body: Some(Body::Digest(digest.clone())),
            },
        ),
        sample(
            "Envelope",
            Envelope {
                version: 1,
                body: Some(Body::Snapshot(snapshot.clone())),
            },
        ),
        sample("Delta", delta),
        sample("WriterContext", context),
        sample("Digest", digest),
        sample(
            "WriterAlive",
            WriterAlive {
                writer: 1,
                count: 2,
                hash: 3,
            },
        ),
        sample("Snapshot", snapshot),
        sample(
            "NodeEntry",
            NodeEntry {
                writer: 1,
                seq: 2,
                at_wall_ms: 3,
                at_logical: 4,
                node: 5,
                name: "n".to_owned(),
                room: "r".to_owned(),
                version: "v".to_owned(),
                started_at_ms: 9,
            },
        ),
        sample(
            "ReadingEntry",
            ReadingEntry {
                writer: 1,
                seq: 2,
                at_wall_ms: 3,
                at_logical: 4,
                node: 5,
                sensor: "s".to_owned(),
                room: "r".to_owned(),
                quantity: 1,
                value: 9.5,
            },
        ),
        sample(
            "SightingEntry",
            SightingEntry {
                writer: 1,
                seq: 2,
                at_wall_ms: 3,
                at_logical: 4,
                observer: 5,
                mac: vec![6],
                ip: vec![7],
            },
        ),
        sample(
            "BindingEntry",
            BindingEntry {
                writer: 1,
                seq: 2,
                at_wall_ms: 3,
                at_logical: 4,
                person: "p".to_owned(),
                mac: vec![6],
                bound: true,
            },
        ),
        sample(
            "TargetEntry",
            TargetEntry {
                writer: 1,
                seq: 2,
                at_wall_ms: 3,
                at_logical: 4,
                room: "r".to_owned(),
                quantity: 1,
                value: 7.5,
                set_by: "p".to_owned(),
            },
        ),
        sample(
            "AlertEntry",
            AlertEntry {
                writer: 1,
                seq: 2,
                at_wall_ms: 3,
                at_logical: 4,
                node: 5,
                name: "n".to_owned(),
                room: "r".to_owned(),
                quantity: 1,
                message: "m".to_owned(),
                raised_at_ms: 10,
                cleared_at_ms: Some(0),
            },
        ),
    ]
}

#[test]
fn the_rust_messages_match_state_proto() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto/officemesh/v1/state.proto"
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("package officemesh.v1;"));
    let (messages, enums) = parse_proto(&text);

    let samples = populated();
    let names: BTreeSet<&str> = samples.iter().map(|(name, ..)| *name).collect();
    let declared: BTreeSet<&str> = messages.keys().map(String::as_str).collect();
    assert_eq!(names, declared, "the same messages");

    for (message, fields) in &messages {
        let mut expected_names: Vec<String> = Vec::new();
        for (name, (_, _, label)) in fields {
            // A oneof is one field of the Rust struct, named after the oneof.
            let name = if label == "oneof" {
                "body"
            } else {
                name.as_str()
            };
            if expected_names.last().map(String::as_str) != Some(name) {
                expected_names.push(name.to_owned());
            }
        }
        let expected_wire: BTreeMap<u32, u8> = fields
            .iter()
            .map(|(_, (number, ty, label))| (*number, wire_type(ty, label)))
            .collect();
        let mut seen_wire = BTreeMap::new();
        for (_, bytes, debug) in samples.iter().filter(|(name, ..)| name == message) {
            assert_eq!(
                debug_field_names(debug),
                expected_names,
                "field names of {message}"
            );
            seen_wire.extend(wire_fields(bytes));
        }
        assert_eq!(
            seen_wire, expected_wire,
            "field numbers and wire types of {message}"
        );
    }

    let quantities = &enums["Quantity"];
    assert_eq!(quantities.len(), 7);
    for (name, number) in quantities {
        let rust = super::proto::Quantity::try_from(*number).unwrap();
        let camel: String = name
            .trim_start_matches("QUANTITY_")
            .split('_')
            .map(|word| word[..1].to_owned() + &word[1..].to_ascii_lowercase())
            .collect();
        assert_eq!(format!("{rust:?}"), camel);
    }
}
