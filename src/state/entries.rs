//! The six parts of the office state: their keys, values, writer rules and expiry rules.

use std::fmt;

use super::{
    Store,
    clock::Hlc,
    dot::NodeId,
    dotmap::DotMap,
    values::{
        AlertName, InvalidValue, Ip, Mac, Message, NodeName, Person, Quantity, Room, SensorId,
        Version,
    },
};

/// Names the parts of the office state, for reports and the wire format.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Part {
    Nodes,
    Readings,
    Network,
    People,
    Targets,
    Alerts,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Nodes => "node",
            Part::Readings => "reading",
            Part::Network => "network-map row",
            Part::People => "binding",
            Part::Targets => "target",
            Part::Alerts => "alert",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Work done once per part of the office state, generic over the part's entry type.
pub trait PartVisitor {
    fn visit<E: Entry>(&mut self);
}

/// The one list of the six parts: calls `visitor` once for each, in wire order. Code that
/// must touch every part goes through here, so a seventh part is one line.
pub fn for_each_part(visitor: &mut impl PartVisitor) {
    visitor.visit::<NodeInfo>();
    visitor.visit::<Reading>();
    visitor.visit::<Sighting>();
    visitor.visit::<Binding>();
    visitor.visit::<Target>();
    visitor.visit::<Alert>();
}

/// A value kept in one part of the office state.
pub trait Entry: Clone + PartialEq + fmt::Debug + 'static {
    type Key: Ord + Clone + fmt::Debug + 'static;
    const PART: Part;

    /// The only node allowed to write `key`, or `None` when any node may.
    fn owner(key: &Self::Key) -> Option<&NodeId>;

    /// When the write was made, by its writer's hybrid logical clock.
    fn at(&self) -> Hlc;

    /// When this write expires, from its own timestamps only, so every replica agrees;
    /// `None` when it never does.
    fn expires_at_ms(&self, retention_ms: u64) -> Option<u64>;

    /// Checks what the types cannot: numbers in range.
    fn validate(&self, _key: &Self::Key) -> Result<(), InvalidValue> {
        Ok(())
    }

    fn part(store: &Store) -> &DotMap<Self>;
    fn part_mut(store: &mut Store) -> &mut DotMap<Self>;
}

/// A node describing itself; rewritten at start and on every heartbeat.
#[derive(Clone, PartialEq, Debug)]
pub struct NodeInfo {
    pub name: NodeName,
    pub room: Room,
    pub version: Version,
    pub started_at_ms: u64,
    /// The heartbeat: when the node last wrote this entry.
    pub at: Hlc,
}

impl Entry for NodeInfo {
    type Key = NodeId;
    const PART: Part = Part::Nodes;

    fn owner(key: &NodeId) -> Option<&NodeId> {
        Some(key)
    }
    fn at(&self) -> Hlc {
        self.at
    }
    /// A node silent for the retention period has left the office.
    fn expires_at_ms(&self, retention_ms: u64) -> Option<u64> {
        Some(self.at.wall_ms.saturating_add(retention_ms))
    }
    fn part(store: &Store) -> &DotMap<Self> {
        &store.nodes
    }
    fn part_mut(store: &mut Store) -> &mut DotMap<Self> {
        &mut store.nodes
    }
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ReadingKey {
    pub node: NodeId,
    pub sensor: SensorId,
}

/// The latest value of one sensor; each reading replaces the previous one.
#[derive(Clone, PartialEq, Debug)]
pub struct Reading {
    pub room: Room,
    pub quantity: Quantity,
    /// In the quantity's canonical unit.
    pub value: f64,
    /// When it was measured.
    pub at: Hlc,
}

impl Entry for Reading {
    type Key = ReadingKey;
    const PART: Part = Part::Readings;

    fn owner(key: &ReadingKey) -> Option<&NodeId> {
        Some(&key.node)
    }
    fn at(&self) -> Hlc {
        self.at
    }
    /// A sensor silent for the retention period is gone.
    fn expires_at_ms(&self, retention_ms: u64) -> Option<u64> {
        Some(self.at.wall_ms.saturating_add(retention_ms))
    }
    fn validate(&self, _key: &ReadingKey) -> Result<(), InvalidValue> {
        self.quantity.check(self.value).map(drop)
    }
    fn part(store: &Store) -> &DotMap<Self> {
        &store.readings
    }
    fn part_mut(store: &mut Store) -> &mut DotMap<Self> {
        &mut store.readings
    }
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SightingKey {
    pub observer: NodeId,
    pub mac: Mac,
}

/// One row of the network map: a node saw a device with this address.
#[derive(Clone, PartialEq, Debug)]
pub struct Sighting {
    pub ip: Ip,
    /// When it was last seen.
    pub at: Hlc,
}

impl Entry for Sighting {
    type Key = SightingKey;
    const PART: Part = Part::Network;

    fn owner(key: &SightingKey) -> Option<&NodeId> {
        Some(&key.observer)
    }
    fn at(&self) -> Hlc {
        self.at
    }
    /// Devices are kept only for the retention period after they were last seen (privacy).
    fn expires_at_ms(&self, retention_ms: u64) -> Option<u64> {
        Some(self.at.wall_ms.saturating_add(retention_ms))
    }
    fn part(store: &Store) -> &DotMap<Self> {
        &store.network
    }
    fn part_mut(store: &mut Store) -> &mut DotMap<Self> {
        &mut store.network
    }
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BindingKey {
    pub person: Person,
    pub mac: Mac,
}

/// A person's claim on a device ("i am ff:ff:..."), or its withdrawal ("forget me").
#[derive(Clone, PartialEq, Debug)]
pub struct Binding {
    pub bound: bool,
    pub at: Hlc,
}

impl Entry for Binding {
    type Key = BindingKey;
    const PART: Part = Part::People;

    fn owner(_key: &BindingKey) -> Option<&NodeId> {
        None
    }
    fn at(&self) -> Hlc {
        self.at
    }
    /// A binding lasts until withdrawn; a withdrawal is kept for the retention period so it
    /// reaches every replica, then forgotten.
    fn expires_at_ms(&self, retention_ms: u64) -> Option<u64> {
        (!self.bound).then(|| self.at.wall_ms.saturating_add(retention_ms))
    }
    fn part(store: &Store) -> &DotMap<Self> {
        &store.people
    }
    fn part_mut(store: &mut Store) -> &mut DotMap<Self> {
        &mut store.people
    }
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TargetKey {
    pub room: Room,
    pub quantity: Quantity,
}

/// A setpoint for a room ("meeting room temperature 21 °C").
#[derive(Clone, PartialEq, Debug)]
pub struct Target {
    /// In the quantity's canonical unit.
    pub value: f64,
    pub set_by: Person,
    pub at: Hlc,
}

impl Entry for Target {
    type Key = TargetKey;
    const PART: Part = Part::Targets;

    fn owner(_key: &TargetKey) -> Option<&NodeId> {
        None
    }
    fn at(&self) -> Hlc {
        self.at
    }
    /// Targets are few (rooms times quantities) and each set replaces what its writer saw.
    fn expires_at_ms(&self, _retention_ms: u64) -> Option<u64> {
        None
    }
    fn validate(&self, key: &TargetKey) -> Result<(), InvalidValue> {
        key.quantity.check(self.value).map(drop)
    }
    fn part(store: &Store) -> &DotMap<Self> {
        &store.targets
    }
    fn part_mut(store: &mut Store) -> &mut DotMap<Self> {
        &mut store.targets
    }
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct AlertId {
    pub node: NodeId,
    pub name: AlertName,
}

/// A condition a node raised ("the open space temperature is at 24.0°C ...").
#[derive(Clone, PartialEq, Debug)]
pub struct Alert {
    pub room: Room,
    pub quantity: Quantity,
    pub message: Message,
    pub raised_at_ms: u64,
    pub cleared_at_ms: Option<u64>,
    pub at: Hlc,
}

impl Entry for Alert {
    type Key = AlertId;
    const PART: Part = Part::Alerts;

    fn owner(key: &AlertId) -> Option<&NodeId> {
        Some(&key.node)
    }
    fn at(&self) -> Hlc {
        self.at
    }
    /// A cleared alert is kept for the retention period, then forgotten; an active one stays.
    fn expires_at_ms(&self, retention_ms: u64) -> Option<u64> {
        self.cleared_at_ms
            .map(|_| self.at.wall_ms.saturating_add(retention_ms))
    }
    fn part(store: &Store) -> &DotMap<Self> {
        &store.alerts
    }
    fn part_mut(store: &mut Store) -> &mut DotMap<Self> {
        &mut store.alerts
    }
}
