//! The protobuf messages of wire version 1, written by hand with `prost`'s derives.
//!
//! This file and `proto/officemesh/v1/state.proto` describe the same messages: every struct,
//! field number and type here matches the schema, which is what peers written in other
//! languages generate their code from. Change both together, or neither. The structs are as
//! `prost-build` would generate them from the schema, so they carry no validation: a decoded
//! message is checked and turned into the core's types in `decode.rs`.

/// What every message on the wire or on disk is: a version, then one body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(oneof = "Body", tags = "2, 3, 4")]
    pub body: Option<Body>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    #[prost(message, tag = "2")]
    Delta(Delta),
    #[prost(message, tag = "3")]
    Digest(Digest),
    #[prost(message, tag = "4")]
    Snapshot(Snapshot),
}

/// Reads only the version of an [`Envelope`], skipping the body unparsed, so a message of a
/// later version is refused as such even when its body no longer parses as version 1.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionProbe {
    #[prost(uint32, tag = "1")]
    pub version: u32,
}

/// An office state: the writes alive in each part and the dots seen.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Delta {
    /// The node table: writers and key nodes are indexes into it.
    #[prost(string, repeated, tag = "1")]
    pub node_ids: Vec<String>,
    #[prost(message, repeated, tag = "2")]
    pub context: Vec<WriterContext>,
    #[prost(message, repeated, tag = "3")]
    pub nodes: Vec<NodeEntry>,
    #[prost(message, repeated, tag = "4")]
    pub readings: Vec<ReadingEntry>,
    #[prost(message, repeated, tag = "5")]
    pub network: Vec<SightingEntry>,
    #[prost(message, repeated, tag = "6")]
    pub people: Vec<BindingEntry>,
    #[prost(message, repeated, tag = "7")]
    pub targets: Vec<TargetEntry>,
    #[prost(message, repeated, tag = "8")]
    pub alerts: Vec<AlertEntry>,
}

/// The sequence numbers seen from one writer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriterContext {
    #[prost(uint32, tag = "1")]
    pub writer: u32,
    /// Pairs (gap, length): `gap` numbers skipped after the previous range (after 0 for the
    /// first), then `length` consecutive numbers seen.
    #[prost(uint64, repeated, tag = "2")]
    pub ranges: Vec<u64>,
}

/// What one replica tells another so it can be sent what it lacks.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Digest {
    #[prost(string, repeated, tag = "1")]
    pub node_ids: Vec<String>,
    #[prost(message, repeated, tag = "2")]
    pub context: Vec<WriterContext>,
    #[prost(message, repeated, tag = "3")]
    pub alive: Vec<WriterAlive>,
}

/// How many writes of one writer a replica holds, and the hash of their sequence numbers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriterAlive {
    #[prost(uint32, tag = "1")]
    pub writer: u32,
    #[prost(uint64, tag = "2")]
    pub count: u64,
    #[prost(fixed64, tag = "3")]
    pub hash: u64,
}

/// What a node saves to restart from.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Snapshot {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(uint64, tag = "2")]
    pub seq_ceiling: u64,
    #[prost(uint64, tag = "3")]
    pub clock_wall_ms: u64,
    #[prost(uint32, tag = "4")]
    pub clock_logical: u32,
    #[prost(message, optional, tag = "5")]
    pub state: Option<Delta>,
}

/// What a sensor measures; 0 is no quantity at all, as protobuf style asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Quantity {
    Unspecified = 0,
    Temperature = 1,
    Humidity = 2,
    Sound = 3,
    Co2 = 4,
    Light = 5,
    Pressure = 6,
}

// Every entry starts with the same four fields: its dot (writer index, sequence number) and
// its hybrid logical clock stamp.

/// Part `nodes`: a node describing itself. Key: the node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeEntry {
    #[prost(uint32, tag = "1")]
    pub writer: u32,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    #[prost(uint64, tag = "3")]
    pub at_wall_ms: u64,
    #[prost(uint32, tag = "4")]
    pub at_logical: u32,
    #[prost(uint32, tag = "5")]
    pub node: u32,
    #[prost(string, tag = "6")]
    pub name: String,
    #[prost(string, tag = "7")]
    pub room: String,
    #[prost(string, tag = "8")]
    pub version: String,
    #[prost(uint64, tag = "9")]
    pub started_at_ms: u64,
}

/// Part `readings`: the latest value of a sensor. Key: (node, sensor).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadingEntry {
    #[prost(uint32, tag = "1")]
    pub writer: u32,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    #[prost(uint64, tag = "3")]
    pub at_wall_ms: u64,
    #[prost(uint32, tag = "4")]
    pub at_logical: u32,
    #[prost(uint32, tag = "5")]
    pub node: u32,
    #[prost(string, tag = "6")]
    pub sensor: String,
    #[prost(string, tag = "7")]
    pub room: String,
    #[prost(enumeration = "Quantity", tag = "8")]
    pub quantity: i32,
    #[prost(double, tag = "9")]
    pub value: f64,
}

/// Part `network`: a node saw a device. Key: (observer, MAC).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SightingEntry {
    #[prost(uint32, tag = "1")]
    pub writer: u32,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    #[prost(uint64, tag = "3")]
    pub at_wall_ms: u64,
    #[prost(uint32, tag = "4")]
    pub at_logical: u32,
    #[prost(uint32, tag = "5")]
    pub observer: u32,
    #[prost(bytes = "vec", tag = "6")]
    pub mac: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    pub ip: Vec<u8>,
}

/// Part `people`: a person's claim on a device, or its withdrawal. Key: (person, MAC).
#[derive(Clone, PartialEq, prost::Message)]
pub struct BindingEntry {
    #[prost(uint32, tag = "1")]
    pub writer: u32,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    #[prost(uint64, tag = "3")]
    pub at_wall_ms: u64,
    #[prost(uint32, tag = "4")]
    pub at_logical: u32,
    #[prost(string, tag = "5")]
    pub person: String,
    #[prost(bytes = "vec", tag = "6")]
    pub mac: Vec<u8>,
    #[prost(bool, tag = "7")]
    pub bound: bool,
}

/// Part `targets`: a setpoint for a room. Key: (room, quantity).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TargetEntry {
    #[prost(uint32, tag = "1")]
    pub writer: u32,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    #[prost(uint64, tag = "3")]
    pub at_wall_ms: u64,
    #[prost(uint32, tag = "4")]
    pub at_logical: u32,
    #[prost(string, tag = "5")]
    pub room: String,
    #[prost(enumeration = "Quantity", tag = "6")]
    pub quantity: i32,
    #[prost(double, tag = "7")]
    pub value: f64,
    #[prost(string, tag = "8")]
    pub set_by: String,
}

/// Part `alerts`: a condition a node raised. Key: (node, name).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AlertEntry {
    #[prost(uint32, tag = "1")]
    pub writer: u32,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    #[prost(uint64, tag = "3")]
    pub at_wall_ms: u64,
    #[prost(uint32, tag = "4")]
    pub at_logical: u32,
    #[prost(uint32, tag = "5")]
    pub node: u32,
    #[prost(string, tag = "6")]
    pub name: String,
    #[prost(string, tag = "7")]
    pub room: String,
    #[prost(enumeration = "Quantity", tag = "8")]
    pub quantity: i32,
    #[prost(string, tag = "9")]
    pub message: String,
    #[prost(uint64, tag = "10")]
    pub raised_at_ms: u64,
    /// Absent while the alert is active; explicit presence, so 0 is a time like any other.
    #[prost(uint64, optional, tag = "11")]
    pub cleared_at_ms: Option<u64>,
}
