//! From the core's types to the protobuf messages. Encoding cannot fail: every value of the
//! core has a representation.

use std::{collections::HashMap, net::IpAddr};

use super::proto;
use crate::state::{
    Alert, AlertId, Binding, BindingKey, CausalContext, Delta, Digest, DotMap, Entry, Hlc, NodeId,
    NodeInfo, Quantity, Reading, ReadingKey, SeqSet, Sighting, SightingKey, Snapshot, Target,
    TargetKey,
};

pub fn state(delta: &Delta) -> proto::Delta {
    let mut nodes = NodeTable::default();
    // Entries first: in the delta of a local write the writer then gets index 0, which
    // protobuf does not even write, in the entry as in its key.
    let store = &delta.store;
    let mut out = proto::Delta {
        nodes: part(&store.nodes, &mut nodes),
        readings: part(&store.readings, &mut nodes),
        network: part(&store.network, &mut nodes),
        people: part(&store.people, &mut nodes),
        targets: part(&store.targets, &mut nodes),
        alerts: part(&store.alerts, &mut nodes),
        ..Default::default()
    };
    out.context = context(&delta.context, &mut nodes);
    out.node_ids = nodes.ids;
    out
}

pub fn digest(digest: &Digest) -> proto::Digest {
    let mut nodes = NodeTable::default();
    let context = context(&digest.context, &mut nodes);
    let alive = digest
        .alive
        .iter()
        .map(|(writer, summary)| proto::WriterAlive {
            writer: nodes.index(writer),
            count: summary.count,
            hash: summary.hash,
        })
        .collect();
    proto::Digest {
        node_ids: nodes.ids,
        context,
        alive,
    }
}

pub fn snapshot(snapshot: &Snapshot) -> proto::Snapshot {
    proto::Snapshot {
        id: snapshot.id.as_str().to_owned(),
        seq_ceiling: snapshot.seq_ceiling,
        clock_wall_ms: snapshot.clock.wall_ms,
        clock_logical: snapshot.clock.logical,
        state: Some(state(&snapshot.state)),
    }
}

/// The node table of one message being built: each node id once, in order of first use.
#[derive(Default)]
struct NodeTable {
    ids: Vec<String>,
    index: HashMap<NodeId, u32>,
}

impl NodeTable {
    fn index(&mut self, id: &NodeId) -> u32 {
        if let Some(&index) = self.index.get(id) {
            return index;
        }
        let index = u32::try_from(self.ids.len()).expect("fewer than 2^32 node ids fit in memory");
        self.ids.push(id.as_str().to_owned());
        self.index.insert(id.clone(), index);
        index
    }
}

fn context(context: &CausalContext, nodes: &mut NodeTable) -> Vec<proto::WriterContext> {
    context
        .writers()
        .map(|(writer, seqs)| proto::WriterContext {
            writer: nodes.index(writer),
            ranges: ranges(seqs),
        })
        .collect()
}

/// Each range as (numbers skipped since the previous range, numbers in the range): small
/// numbers, so one-byte varints, where the sequence numbers themselves grow without bound.
fn ranges(seqs: &SeqSet) -> Vec<u64> {
    let mut out = Vec::with_capacity(2 * seqs.ranges().len());
    let mut previous_end = 0u64;
    for &(start, end) in seqs.ranges() {
        // Wrapping, not panicking: only a set holding 0, which no replica hands out, wraps,
        // and decoders refuse what it encodes to.
        out.push(start.wrapping_sub(previous_end).wrapping_sub(1));
        out.push(end.wrapping_sub(start).wrapping_add(1));
        previous_end = end;
    }
    out
}

/// What every entry starts with: its dot and its stamp.
struct Head {
    writer: u32,
    seq: u64,
    at: Hlc,
}

fn part<E: ToWire>(map: &DotMap<E>, nodes: &mut NodeTable) -> Vec<E::Wire> {
    map.iter()
        .map(|(key, dot, value)| {
            let head = Head {
                writer: nodes.index(&dot.writer),
                seq: dot.seq,
                at: value.at(),
            };
            value.to_wire(key, head, nodes)
        })
        .collect()
}

/// An entry of the core and its protobuf message.
trait ToWire: Entry {
    type Wire;
    fn to_wire(&self, key: &Self::Key, head: Head, nodes: &mut NodeTable) -> Self::Wire;
}

impl ToWire for NodeInfo {
    type Wire = proto::NodeEntry;

    fn to_wire(&self, key: &NodeId, head: Head, nodes: &mut NodeTable) -> proto::NodeEntry {
        proto::NodeEntry {
            writer: head.writer,
            seq: head.seq,
            at_wall_ms: head.at.wall_ms,
            at_logical: head.at.logical,
            node: nodes.index(key),
            name: self.name.as_str().to_owned(),
            room: self.room.as_str().to_owned(),
            version: self.version.as_str().to_owned(),
            started_at_ms: self.started_at_ms,
        }
    }
}

impl ToWire for Reading {
    type Wire = proto::ReadingEntry;

    fn to_wire(&self, key: &ReadingKey, head: Head, nodes: &mut NodeTable) -> proto::ReadingEntry {
        proto::ReadingEntry {
            writer: head.writer,
            seq: head.seq,
            at_wall_ms: head.at.wall_ms,
            at_logical: head.at.logical,
            node: nodes.index(&key.node),
            sensor: key.sensor.as_str().to_owned(),
            room: self.room.as_str().to_owned(),
            quantity: quantity(self.quantity),
            value: self.value,
        }
    }
}

impl ToWire for Sighting {
    type Wire = proto::SightingEntry;

    fn to_wire(
        &self,
        key: &SightingKey,
        head: Head,
        nodes: &mut NodeTable,
    ) -> proto::SightingEntry {
        proto::SightingEntry {
            writer: head.writer,
            seq: head.seq,
            at_wall_ms: head.at.wall_ms,
            at_logical: head.at.logical,
            observer: nodes.index(&key.observer),
            mac: key.mac.0.to_vec(),
            ip: match self.ip {
                IpAddr::V4(ip) => ip.octets().to_vec(),
                IpAddr::V6(ip) => ip.octets().to_vec(),
            },
        }
    }
}

impl ToWire for Binding {
    type Wire = proto::BindingEntry;

    fn to_wire(&self, key: &BindingKey, head: Head, _nodes: &mut NodeTable) -> proto::BindingEntry {
        proto::BindingEntry {
            writer: head.writer,
            seq: head.seq,
            at_wall_ms: head.at.wall_ms,
            at_logical: head.at.logical,
            person: key.person.as_str().to_owned(),
            mac: key.mac.0.to_vec(),
            bound: self.bound,
        }
    }
}

impl ToWire for Target {
    type Wire = proto::TargetEntry;

    fn to_wire(&self, key: &TargetKey, head: Head, _nodes: &mut NodeTable) -> proto::TargetEntry {
        proto::TargetEntry {
            writer: head.writer,
            seq: head.seq,
            at_wall_ms: head.at.wall_ms,
            at_logical: head.at.logical,
            room: key.room.as_str().to_owned(),
            quantity: quantity(key.quantity),
            value: self.value,
            set_by: self.set_by.as_str().to_owned(),
        }
    }
}

impl ToWire for Alert {
    type Wire = proto::AlertEntry;

    fn to_wire(&self, key: &AlertId, head: Head, nodes: &mut NodeTable) -> proto::AlertEntry {
        proto::AlertEntry {
            writer: head.writer,
            seq: head.seq,
            at_wall_ms: head.at.wall_ms,
            at_logical: head.at.logical,
            node: nodes.index(&key.node),
            name: key.name.as_str().to_owned(),
            room: self.room.as_str().to_owned(),
            quantity: quantity(self.quantity),
            message: self.message.as_str().to_owned(),
            raised_at_ms: self.raised_at_ms,
            cleared_at_ms: self.cleared_at_ms,
        }
    }
}

fn quantity(quantity: Quantity) -> i32 {
    let wire = match quantity {
        Quantity::Temperature => proto::Quantity::Temperature,
        Quantity::Humidity => proto::Quantity::Humidity,
        Quantity::Sound => proto::Quantity::Sound,
        Quantity::Co2 => proto::Quantity::Co2,
        Quantity::Light => proto::Quantity::Light,
        Quantity::Pressure => proto::Quantity::Pressure,
    };
    wire.into()
}
