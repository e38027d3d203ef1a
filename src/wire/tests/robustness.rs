//! No bytes make a decoder panic, and whatever decodes is a valid state.

use std::sync::OnceLock;

use proptest::{collection::vec, prelude::*, sample::select};

use super::*;
use crate::wire::proto::{
    AlertEntry, BindingEntry, NodeEntry, ReadingEntry, SightingEntry, TargetEntry, WriterContext,
};

// ---- bytes ----

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
        vec(any::<u8>(), 1..16).prop_map(|bytes| Mutation::Append { bytes }),
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
        // And after a valid version, so the body is parsed too.
        let mut versioned = vec![0x08, 0x01];
        versioned.extend(&bytes);
        decode_everything(&versioned);
    }

    #[test]
    fn mutated_messages_never_panic(
        pick in any::<usize>(),
        mutations in vec(mutation(), 1..6),
    ) {
        let corpus = corpus();
        let mut bytes = corpus[pick % corpus.len()].clone();
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        decode_everything(&bytes);
    }
}

// ---- well-formed protobuf, nonsensical content ----

// Random bytes rarely get past protobuf parsing; these messages always do, and then break
// the rules of the format: indexes out of the table, sequence number 0, dots named twice or
// missing from the context, ranges in every shape, invalid names, quantities, values,
// addresses. Mostly valid, so the checks after the first one are reached too.

fn node_table() -> impl Strategy<Value = Vec<String>> {
    let ids = ["n1", "n2", "n3"].map(str::to_owned);
    prop_oneof![
        10 => Just(ids.to_vec()),
        1 => vec(select(vec!["n1", "n2", "", "has space"]), 0..4)
            .prop_map(|ids| ids.into_iter().map(str::to_owned).collect()),
    ]
}

fn index() -> impl Strategy<Value = u32> {
    prop_oneof![200 => 0..3u32, 1 => Just(3u32), 1 => Just(u32::MAX)]
}

fn seq() -> impl Strategy<Value = u64> {
    prop_oneof![200 => 1..=20u64, 1 => Just(0u64), 1 => Just(u64::MAX)]
}

fn ranges() -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        6 => Just(vec![0, 20]),
        1 => Just(vec![0, u64::MAX]),
        2 => vec(prop_oneof![4 => 0..4u64, 1 => Just(u64::MAX)], 0..7),
    ]
}

fn text() -> impl Strategy<Value = String> {
    let texts = vec!["meeting room", "a", "", "  ", "bad\nname"];
    prop_oneof![8 => Just("desk-1"), 1 => select(texts)].prop_map(str::to_owned)
}

fn quantity_number() -> impl Strategy<Value = i32> {
    prop_oneof![8 => 1..=6i32, 1 => Just(0i32), 1 => Just(99i32)]
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 0.0..100.0f64,
        1 => Just(f64::NAN),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0f64),
        1 => Just(1e9f64),
    ]
}

fn address(usual_len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![8 => vec(any::<u8>(), usual_len), 1 => vec(any::<u8>(), 0..20)]
}

fn stamp() -> impl Strategy<Value = (u64, u32)> {
    (any::<u64>(), any::<u32>())
}

fn entries<T: std::fmt::Debug>(entry: impl Strategy<Value = T>) -> impl Strategy<Value = Vec<T>> {
    vec(entry, 0..3)
}

fn nonsense_delta() -> impl Strategy<Value = proto::Delta> {
    let all_seen = (0..3)
        .map(|writer| WriterContext {
            writer,
            ranges: vec![0, 20],
        })
        .collect::<Vec<_>>();
    let context = prop_oneof![
        8 => Just(all_seen),
        1 => vec(
            (index(), ranges()).prop_map(|(writer, ranges)| WriterContext { writer, ranges }),
            0..4,
        ),
    ];
    let nodes = entries(
        (index(), seq(), stamp(), index(), text(), text(), text()).prop_map(
            |(writer, seq, (at_wall_ms, at_logical), node, name, room, version)| NodeEntry {
                writer,
                seq,
                at_wall_ms,
                at_logical,
                node,
                name,
                room,
                version,
                started_at_ms: at_wall_ms / 2,
            },
        ),
    );
    let readings = entries(
        (
            index(),
            seq(),
            stamp(),
            index(),
            text(),
            text(),
            quantity_number(),
            number(),
        )
            .prop_map(
                |(writer, seq, (at_wall_ms, at_logical), node, sensor, room, quantity, value)| {
                    ReadingEntry {
                        writer,
                        seq,
                        at_wall_ms,
                        at_logical,
                        node,
                        sensor,
                        room,
                        quantity,
                        value,
                    }
                },
            ),
    );
    let network = entries(
        (index(), seq(), stamp(), index(), address(6), address(4)).prop_map(
            |(writer, seq, (at_wall_ms, at_logical), observer, mac, ip)| SightingEntry {
                writer,
                seq,
                at_wall_ms,
                at_logical,
                observer,
                mac,
                ip,
            },
        ),
    );
    let people = entries(
        (index(), seq(), stamp(), text(), address(6), any::<bool>()).prop_map(
            |(writer, seq, (at_wall_ms, at_logical), person, mac, bound)| BindingEntry {
                writer,
                seq,
                at_wall_ms,
                at_logical,
                person,
                mac,
                bound,
            },
        ),
    );
    let targets = entries(
        (
            index(),
            seq(),
            stamp(),
            text(),
            quantity_number(),
            number(),
            text(),
        )
            .prop_map(
                |(writer, seq, (at_wall_ms, at_logical), room, quantity, value, set_by)| {
                    TargetEntry {
                        writer,
                        seq,
                        at_wall_ms,
                        at_logical,
                        room,
                        quantity,
                        value,
                        set_by,
                    }
                },
            ),
    );
    let alerts = entries(
        (
            index(),
            seq(),
            stamp(),
            index(),
            text(),
            quantity_number(),
            any::<Option<u64>>(),
        )
            .prop_map(
                |(writer, seq, (at_wall_ms, at_logical), node, text, quantity, cleared_at_ms)| {
                    AlertEntry {
                        writer,
                        seq,
                        at_wall_ms,
                        at_logical,
                        node,
                        name: text.clone(),
                        room: text.clone(),
                        quantity,
                        message: text,
                        raised_at_ms: at_wall_ms,
                        cleared_at_ms,
                    }
                },
            ),
    );
    (
        node_table(),
        context,
        nodes,
        readings,
        network,
        people,
        targets,
        alerts,
    )
        .prop_map(
            |(node_ids, context, nodes, readings, network, people, targets, alerts)| proto::Delta {
                node_ids,
                context,
                nodes,
                readings,
                network,
                people,
                targets,
                alerts,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn nonsensical_messages_fail_cleanly_or_decode_to_valid_states(wire in nonsense_delta()) {
        let as_delta = decode_delta(&envelope(Body::Delta(wire.clone())));
        if let Ok(decoded) = &as_delta {
            // The decoded delta keeps the core's invariant, and leaves rejected dots unseen.
            for (_, dot) in decoded.delta.store.dots() {
                prop_assert!(decoded.delta.context.contains(dot), "{dot} not in the context");
            }
            for rejected in &decoded.rejected {
                prop_assert!(!decoded.delta.context.contains(&rejected.dot));
            }
            check_delta_round_trip(&decoded.delta);
        }
        // The same state as a snapshot decodes exactly when the delta has nothing to reject.
        let snapshot = proto::Snapshot {
            id: "n1".to_owned(),
            state: Some(wire),
            ..Default::default()
        };
        let as_snapshot = decode_snapshot(&envelope(Body::Snapshot(snapshot)));
        match (as_delta, as_snapshot) {
            (Ok(decoded), Ok(snapshot)) => {
                prop_assert!(decoded.rejected.is_empty());
                prop_assert_eq!(decoded.delta, snapshot.state);
            }
            (Ok(decoded), Err(WireError::InvalidEntry(first))) => {
                prop_assert_eq!(Some(&first), decoded.rejected.first());
            }
            (Err(delta_error), Err(snapshot_error)) => prop_assert_eq!(delta_error, snapshot_error),
            (delta, snapshot) => prop_assert!(false, "delta {delta:?}, snapshot {snapshot:?}"),
        }
    }
}
