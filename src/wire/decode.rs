//! From the protobuf messages to the core's types, trusting nothing.
//!
//! A structural fault (an index outside the node table, bad ranges, a dot named twice or
//! missing from the context) is a [`WireError`] for the whole message: nothing in it can be
//! trusted to mean what it says. An invalid value in one entry is a [`Fault::Invalid`] that
//! drops only that entry, through the core's own validating constructors.

use std::{
    collections::{BTreeMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use super::{Decoded, EntryError, MAX_ENTRIES, MAX_RANGES, MAX_SEQ, MAX_WRITERS, WireError, proto};
use crate::state::{
    Alert, AlertId, AlertName, AliveSummary, Binding, BindingKey, CausalContext, Delta, Digest,
    Dot, Entry, Hlc, InvalidValue, Mac, Message, NodeId, NodeInfo, NodeName, Person, Quantity,
    Reading, ReadingKey, Room, SensorId, SeqSet, Sighting, SightingKey, Snapshot, Target,
    TargetKey, Version,
};

/// Longest excerpt of a refused text quoted in an error: enough to recognise it, and an
/// error message stays short whatever a peer sends.
const MAX_QUOTED_LEN: usize = 64;

pub fn protobuf(error: prost::DecodeError) -> WireError {
    WireError::Malformed(error.to_string())
}

fn malformed(message: String) -> WireError {
    WireError::Malformed(message)
}

pub fn state(wire: proto::Delta) -> Result<Decoded, WireError> {
    let nodes = NodeTable::new(&wire.node_ids)?;
    let context = context(&nodes, &wire.context)?;
    let entries = wire.nodes.len()
        + wire.readings.len()
        + wire.network.len()
        + wire.people.len()
        + wire.targets.len()
        + wire.alerts.len();
    if entries > MAX_ENTRIES {
        return Err(malformed(format!(
            "{entries} entries, more than the limit of {MAX_ENTRIES}"
        )));
    }
    let mut state = State {
        nodes,
        delta: Delta {
            context,
            ..Delta::default()
        },
        dots: HashSet::with_capacity(entries),
        rejected: Vec::new(),
    };
    state.part(&wire.nodes)?;
    state.part(&wire.readings)?;
    state.part(&wire.network)?;
    state.part(&wire.people)?;
    state.part(&wire.targets)?;
    state.part(&wire.alerts)?;
    // Only now: every entry had to find its dot in the context first.
    for rejected in &state.rejected {
        state.delta.context.remove(&rejected.dot);
    }
    Ok(Decoded {
        delta: state.delta,
        rejected: state.rejected,
    })
}

pub fn digest(wire: proto::Digest) -> Result<Digest, WireError> {
    let nodes = NodeTable::new(&wire.node_ids)?;
    let context = context(&nodes, &wire.context)?;
    let mut alive = BTreeMap::new();
    for summary in &wire.alive {
        let writer = nodes.get(summary.writer)?;
        let previous = alive.insert(
            writer.clone(),
            AliveSummary {
                count: summary.count,
                hash: summary.hash,
            },
        );
        if previous.is_some() {
            return Err(malformed(format!("writer {writer} is summarised twice")));
        }
    }
    Ok(Digest { context, alive })
}

pub fn snapshot(wire: proto::Snapshot) -> Result<Snapshot, WireError> {
    let id = node_id(&wire.id)?;
    let Decoded { delta, rejected } = state(wire.state.unwrap_or_default())?;
    if let Some(first) = rejected.into_iter().next() {
        return Err(WireError::InvalidEntry(first));
    }
    Ok(Snapshot {
        id,
        seq_ceiling: wire.seq_ceiling,
        clock: Hlc::new(wire.clock_wall_ms, wire.clock_logical),
        state: delta,
    })
}

/// The node table of one message: distinct, valid node ids.
struct NodeTable(Vec<NodeId>);

impl NodeTable {
    fn new(ids: &[String]) -> Result<Self, WireError> {
        if ids.len() > MAX_WRITERS {
            return Err(malformed(format!(
                "{} node ids, more than the limit of {MAX_WRITERS}",
                ids.len()
            )));
        }
        let mut seen = HashSet::with_capacity(ids.len());
        let mut table = Vec::with_capacity(ids.len());
        for id in ids {
            let id = node_id(id)?;
            if !seen.insert(id.clone()) {
                return Err(malformed(format!(
                    "node id {id} is in the node table twice"
                )));
            }
            table.push(id);
        }
        Ok(NodeTable(table))
    }

    fn get(&self, index: u32) -> Result<&NodeId, WireError> {
        usize::try_from(index)
            .ok()
            .and_then(|index| self.0.get(index))
            .ok_or_else(|| {
                malformed(format!(
                    "node index {index} is outside the node table of {} ids",
                    self.0.len()
                ))
            })
    }
}

fn node_id(text: &str) -> Result<NodeId, WireError> {
    NodeId::new(text)
        .map_err(|error| malformed(format!("node id {:?}: {}", quote(text), error.reason)))
}

/// The start of `text`, for an error message.
fn quote(text: &str) -> String {
    text.chars().take(MAX_QUOTED_LEN).collect()
}

fn context(
    nodes: &NodeTable,
    writers: &[proto::WriterContext],
) -> Result<CausalContext, WireError> {
    let mut context = CausalContext::default();
    for writer_context in writers {
        let writer = nodes.get(writer_context.writer)?;
        if context.get(writer).is_some() {
            return Err(malformed(format!(
                "writer {writer} is in the context twice"
            )));
        }
        let seqs = ranges(&writer_context.ranges)
            .map_err(|reason| malformed(format!("context of writer {writer}: {reason}")))?;
        context.insert_set(writer.clone(), &seqs);
    }
    Ok(context)
}

/// Reads (gap, length) pairs back into ranges. Only the canonical form is accepted: at least
/// one range, none empty, none touching the previous one (that would be a single range), and
/// none past [`MAX_SEQ`]. Entries need no check of their own: their dots must be in here.
fn ranges(pairs: &[u64]) -> Result<SeqSet, String> {
    if pairs.is_empty() {
        return Err("no ranges".to_owned());
    }
    if !pairs.len().is_multiple_of(2) {
        return Err(format!("{} numbers, not (gap, length) pairs", pairs.len()));
    }
    if pairs.len() / 2 > MAX_RANGES {
        return Err(format!(
            "{} ranges, more than the limit of {MAX_RANGES}",
            pairs.len() / 2
        ));
    }
    let mut ranges = Vec::with_capacity(pairs.len() / 2);
    let mut previous_end = 0u64;
    for pair in pairs.chunks_exact(2) {
        let (gap, length) = (pair[0], pair[1]);
        if length == 0 {
            return Err("a range of length 0".to_owned());
        }
        if gap == 0 && !ranges.is_empty() {
            return Err(format!(
                "a range right after the one ending at {previous_end} (gap 0)"
            ));
        }
        let end = previous_end
            .checked_add(gap)
            .and_then(|end| end.checked_add(length))
            .filter(|&end| end <= MAX_SEQ)
            .ok_or_else(|| {
                format!("a range past sequence number {MAX_SEQ} (gap {gap}, length {length})")
            })?;
        ranges.push((previous_end + gap + 1, end));
        previous_end = end;
    }
    Ok(SeqSet::from_ranges(ranges))
}

/// A delta being decoded.
struct State {
    nodes: NodeTable,
    delta: Delta,
    /// Every dot met so far: a dot names one write, so it may name only one entry.
    dots: HashSet<Dot>,
    rejected: Vec<EntryError>,
}

impl State {
    fn part<W: WireEntry>(&mut self, entries: &[W]) -> Result<(), WireError> {
        let part = W::Entry::PART;
        for wire in entries {
            let (writer, seq) = wire.dot();
            let writer = self.nodes.get(writer)?.clone();
            if seq == 0 {
                return Err(malformed(format!(
                    "{part} by {writer} has sequence number 0"
                )));
            }
            let dot = Dot::new(writer, seq);
            if !self.delta.context.contains(&dot) {
                return Err(malformed(format!("{part} {dot} is not in the context")));
            }
            if !self.dots.insert(dot.clone()) {
                return Err(malformed(format!("dot {dot} names two entries")));
            }
            let decoded = wire.decode(&self.nodes).and_then(|(key, value)| {
                // The core's own checks, so the wire never builds an entry it would refuse.
                value.validate(&key)?;
                Ok((key, value))
            });
            match decoded {
                Ok((key, value)) => {
                    W::Entry::part_mut(&mut self.delta.store).insert(key, dot, value)
                }
                Err(Fault::Structural(error)) => return Err(error),
                Err(Fault::Invalid(reason)) => self.rejected.push(EntryError { part, dot, reason }),
            }
        }
        Ok(())
    }
}

/// Why one entry could not be decoded.
enum Fault {
    /// The message is broken: refuse it whole.
    Structural(WireError),
    /// The entry's values are invalid: drop the entry alone.
    Invalid(String),
}

impl From<WireError> for Fault {
    fn from(error: WireError) -> Self {
        Fault::Structural(error)
    }
}

impl From<InvalidValue> for Fault {
    fn from(error: InvalidValue) -> Self {
        Fault::Invalid(error.to_string())
    }
}

/// A protobuf entry message and the core's entry it decodes to.
trait WireEntry {
    type Entry: Entry;

    /// The writer's index and the sequence number.
    fn dot(&self) -> (u32, u64);

    /// The key and value, with node indexes resolved in `nodes`.
    fn decode(
        &self,
        nodes: &NodeTable,
    ) -> Result<(<Self::Entry as Entry>::Key, Self::Entry), Fault>;
}

impl WireEntry for proto::NodeEntry {
    type Entry = NodeInfo;

    fn dot(&self) -> (u32, u64) {
        (self.writer, self.seq)
    }

    fn decode(&self, nodes: &NodeTable) -> Result<(NodeId, NodeInfo), Fault> {
        let key = nodes.get(self.node)?.clone();
        let value = NodeInfo {
            name: NodeName::new(&self.name)?,
            room: Room::new(&self.room)?,
            version: Version::new(&self.version)?,
            started_at_ms: self.started_at_ms,
            at: Hlc::new(self.at_wall_ms, self.at_logical),
        };
        Ok((key, value))
    }
}

impl WireEntry for proto::ReadingEntry {
    type Entry = Reading;

    fn dot(&self) -> (u32, u64) {
        (self.writer, self.seq)
    }

    fn decode(&self, nodes: &NodeTable) -> Result<(ReadingKey, Reading), Fault> {
        let key = ReadingKey {
            node: nodes.get(self.node)?.clone(),
            sensor: SensorId::new(&self.sensor)?,
        };
        let value = Reading {
            room: Room::new(&self.room)?,
            quantity: quantity(self.quantity)?,
            value: self.value,
            at: Hlc::new(self.at_wall_ms, self.at_logical),
        };
        Ok((key, value))
    }
}

impl WireEntry for proto::SightingEntry {
    type Entry = Sighting;

    fn dot(&self) -> (u32, u64) {
        (self.writer, self.seq)
    }

    fn decode(&self, nodes: &NodeTable) -> Result<(SightingKey, Sighting), Fault> {
        let key = SightingKey {
            observer: nodes.get(self.observer)?.clone(),
            mac: mac(&self.mac)?,
        };
        let value = Sighting {
            ip: ip(&self.ip)?,
            at: Hlc::new(self.at_wall_ms, self.at_logical),
        };
        Ok((key, value))
    }
}

impl WireEntry for proto::BindingEntry {
    type Entry = Binding;

    fn dot(&self) -> (u32, u64) {
        (self.writer, self.seq)
    }

    fn decode(&self, _nodes: &NodeTable) -> Result<(BindingKey, Binding), Fault> {
        let key = BindingKey {
            person: Person::new(&self.person)?,
            mac: mac(&self.mac)?,
        };
        let value = Binding {
            bound: self.bound,
            at: Hlc::new(self.at_wall_ms, self.at_logical),
        };
        Ok((key, value))
    }
}

impl WireEntry for proto::TargetEntry {
    type Entry = Target;

    fn dot(&self) -> (u32, u64) {
        (self.writer, self.seq)
    }

    fn decode(&self, _nodes: &NodeTable) -> Result<(TargetKey, Target), Fault> {
        let key = TargetKey {
            room: Room::new(&self.room)?,
            quantity: quantity(self.quantity)?,
        };
        let value = Target {
            value: self.value,
            set_by: Person::new(&self.set_by)?,
            at: Hlc::new(self.at_wall_ms, self.at_logical),
        };
        Ok((key, value))
    }
}

impl WireEntry for proto::AlertEntry {
    type Entry = Alert;

    fn dot(&self) -> (u32, u64) {
        (self.writer, self.seq)
    }

    fn decode(&self, nodes: &NodeTable) -> Result<(AlertId, Alert), Fault> {
        let key = AlertId {
            node: nodes.get(self.node)?.clone(),
            name: AlertName::new(&self.name)?,
        };
        let value = Alert {
            room: Room::new(&self.room)?,
            quantity: quantity(self.quantity)?,
            message: Message::new(&self.message)?,
            raised_at_ms: self.raised_at_ms,
            cleared_at_ms: self.cleared_at_ms,
            at: Hlc::new(self.at_wall_ms, self.at_logical),
        };
        Ok((key, value))
    }
}

fn quantity(number: i32) -> Result<Quantity, InvalidValue> {
    match proto::Quantity::try_from(number) {
        Ok(proto::Quantity::Temperature) => Ok(Quantity::Temperature),
        Ok(proto::Quantity::Humidity) => Ok(Quantity::Humidity),
        Ok(proto::Quantity::Sound) => Ok(Quantity::Sound),
        Ok(proto::Quantity::Co2) => Ok(Quantity::Co2),
        Ok(proto::Quantity::Light) => Ok(Quantity::Light),
        Ok(proto::Quantity::Pressure) => Ok(Quantity::Pressure),
        Ok(proto::Quantity::Unspecified) | Err(_) => Err(InvalidValue::UnknownQuantity(format!(
            "enum value {number}"
        ))),
    }
}

fn mac(bytes: &[u8]) -> Result<Mac, InvalidValue> {
    <[u8; 6]>::try_from(bytes).map(Mac).map_err(|_| {
        let octets: Vec<String> = bytes
            .iter()
            .take(MAX_QUOTED_LEN / 3)
            .map(|octet| format!("{octet:02x}"))
            .collect();
        InvalidValue::Mac(format!("{} ({} bytes)", octets.join(":"), bytes.len()))
    })
}

fn ip(bytes: &[u8]) -> Result<IpAddr, Fault> {
    if let Ok(octets) = <[u8; 4]>::try_from(bytes) {
        return Ok(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    if let Ok(octets) = <[u8; 16]>::try_from(bytes) {
        return Ok(IpAddr::V6(Ipv6Addr::from(octets)));
    }
    Err(Fault::Invalid(format!(
        "IP address of {} bytes (expected 4 or 16)",
        bytes.len()
    )))
}
