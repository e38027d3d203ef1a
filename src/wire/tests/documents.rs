//! The documents that describe the format agree with the code: the worked example of
//! `docs/protocol.md` and the schema `proto/officemesh/v1/state.proto`.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::wire::proto::{
    AlertEntry, BindingEntry, Envelope, NodeEntry, ReadingEntry, SightingEntry, TargetEntry,
    WriterAlive, WriterContext,
};

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
    let delta = proto::Delta {
        node_ids: vec!["a".to_owned()],
        context: vec![context.clone()],
        nodes: vec![NodeEntry::default()],
        readings: vec![ReadingEntry::default()],
        network: vec![SightingEntry::default()],
        people: vec![BindingEntry::default()],
        targets: vec![TargetEntry::default()],
        alerts: vec![AlertEntry::default()],
    };
    let digest = proto::Digest {
        node_ids: vec!["a".to_owned()],
        context: vec![context.clone()],
        alive: vec![WriterAlive::default()],
    };
    let snapshot = proto::Snapshot {
        id: "a".to_owned(),
        seq_ceiling: 1,
        clock_wall_ms: 2,
        clock_logical: 3,
        state: Some(proto::Delta::default()),
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
        let rust = proto::Quantity::try_from(*number).unwrap();
        let camel: String = name
            .trim_start_matches("QUANTITY_")
            .split('_')
            .map(|word| word[..1].to_owned() + &word[1..].to_ascii_lowercase())
            .collect();
        assert_eq!(format!("{rust:?}"), camel);
    }
}
