//! Structural faults fail the whole message; invalid values fail only their entry.

use prost::Message as _;

use super::*;
use crate::{
    state::{Part, RejectReason},
    wire::proto::{BindingEntry, Envelope, ReadingEntry, SightingEntry, WriterContext},
};

// ---- structural errors ----

/// The state of the sample office as a protobuf message, to break by hand.
fn sample_wire() -> proto::Delta {
    let (replicas, _) = office();
    encode::state(replicas[0].state())
}

/// Breaks the sample office state with `mutate` and checks the decoder refuses it whole,
/// saying `expected`.
fn check_malformed(mutate: impl FnOnce(&mut proto::Delta), expected: &str) {
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
    let ranges = |pairs: Vec<u64>| move |w: &mut proto::Delta| w.context[0].ranges = pairs;
    check_malformed(ranges(vec![]), "no ranges");
    check_malformed(ranges(vec![0, 5, 1]), "3 numbers, not (gap, length) pairs");
    check_malformed(ranges(vec![0, 0]), "a range of length 0");
    check_malformed(ranges(vec![0, 2, 0, 3]), "gap 0");
    let past = "a range past sequence number 9007199254740991";
    check_malformed(ranges(vec![u64::MAX, 1]), past);
    check_malformed(ranges(vec![5, u64::MAX]), past);
    check_malformed(ranges(vec![0, u64::MAX, 1, 1]), past);
    check_malformed(ranges(vec![0, MAX_SEQ + 1]), past);
    check_malformed(ranges(vec![0, MAX_SEQ, 1, 1]), past);
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
    let wire = proto::Delta {
        node_ids: vec!["n".to_owned()],
        context: vec![WriterContext {
            writer: 0,
            ranges: vec![0, 3, 1, MAX_SEQ - 4],
        }],
        ..Default::default()
    };
    let decoded = decode_delta(&delta_bytes(wire)).unwrap();
    let seqs = decoded.delta.context.get(&node_id("n")).unwrap();
    assert_eq!(seqs.ranges(), &[(1, 3), (5, MAX_SEQ)]);
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

#[test]
fn versions_other_than_1_are_refused() {
    let body = Body::Delta(encode::state(&example_delta()));
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
        body: Some(Body::Digest(proto::Digest::default())),
    };
    assert_eq!(
        decode_digest(&digest.encode_to_vec()).unwrap_err(),
        WireError::Version { found: 2 }
    );
    let snapshot = Envelope {
        version: 2,
        body: Some(Body::Snapshot(proto::Snapshot::default())),
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
    let check = |mutate: &dyn Fn(&mut proto::Digest), expected: &str| {
        let mut wire = encode::digest(&replicas[0].digest());
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
fn delta_with_bad_entries() -> proto::Delta {
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
    let temperature = proto::Quantity::Temperature as i32;
    let sighting = |seq: u64, mac: Vec<u8>, ip: Vec<u8>| SightingEntry {
        writer: 0,
        seq,
        at_wall_ms: T0,
        at_logical: 0,
        observer: 0,
        mac,
        ip,
    };
    proto::Delta {
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
fn an_invalid_entry_fails_a_saved_delta_and_a_valid_one_round_trips() {
    let error = decode_saved_delta(&delta_bytes(delta_with_bad_entries())).unwrap_err();
    let WireError::InvalidEntry(entry) = &error else {
        panic!("{error}");
    };
    assert_eq!((entry.part, entry.dot.seq), (Part::Readings, 2));

    let (replicas, _) = office();
    let whole = replicas[0].state();
    let bytes = encode_delta(whole);
    assert_eq!(&decode_saved_delta(&bytes).unwrap(), whole);
    // A saved delta may be larger than a peer's delta, up to a snapshot's limit.
    let error = decode_saved_delta(&vec![0; MAX_SNAPSHOT_BYTES + 1]).unwrap_err();
    assert!(matches!(error, WireError::TooLarge { max, .. } if max == MAX_SNAPSHOT_BYTES));
}

#[test]
fn an_invalid_entry_fails_a_snapshot() {
    let wire = proto::Snapshot {
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
            .starts_with("invalid entry in saved state: invalid reading n1:2")
    );

    let bad_id = proto::Snapshot {
        id: String::new(),
        ..Default::default()
    };
    let error = decode_snapshot(&envelope(Body::Snapshot(bad_id))).unwrap_err();
    assert!(error.to_string().contains("it is empty"), "{error}");
}

#[test]
fn key_nodes_are_explicit_so_the_core_sees_a_wrong_writer() {
    // Node "mallory" publishes a reading under node "victim"'s key.
    let wire = proto::Delta {
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
            quantity: proto::Quantity::Temperature as i32,
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
