//! The JSON shapes of `GET /api/state` and `GET /api/peers`, built from the derived reads of
//! [`crate::state::query`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::state::{Alert, AlertId, Replica, query::Query};

/// The whole office as one node sees it.
#[derive(Serialize, Debug)]
pub struct OfficeView {
    /// The node answering.
    pub node: String,
    pub rooms: Vec<RoomView>,
    pub devices: Vec<DeviceView>,
    pub people: Vec<PersonView>,
    pub nodes: Vec<NodeView>,
    pub alerts: Vec<AlertView>,
}

#[derive(Serialize, Debug)]
pub struct RoomView {
    pub name: String,
    pub readings: Vec<ReadingView>,
    pub targets: Vec<TargetView>,
}

#[derive(Serialize, Debug)]
pub struct ReadingView {
    pub node: String,
    pub sensor: String,
    pub quantity: &'static str,
    pub value: f64,
    pub unit: &'static str,
    pub measured_at_ms: u64,
    pub age_s: u64,
    /// The sensor has been silent for longer than `STALE_READING_MS` (10 minutes).
    pub stale: bool,
}

#[derive(Serialize, Debug)]
pub struct TargetView {
    pub quantity: &'static str,
    /// The value acted on: the concurrent set with the highest stamp.
    pub value: f64,
    pub unit: &'static str,
    pub set_by: String,
    pub set_at_ms: u64,
    /// Other values set concurrently, not yet replaced by a later set.
    pub concurrent: Vec<ConcurrentTarget>,
}

#[derive(Serialize, Debug)]
pub struct ConcurrentTarget {
    pub value: f64,
    pub set_by: String,
    pub set_at_ms: u64,
}

#[derive(Serialize, Debug)]
pub struct DeviceView {
    pub mac: String,
    /// The address of the most recent sighting.
    pub ip: String,
    pub present: bool,
    pub last_seen_ms: u64,
    pub age_s: u64,
    pub seen_by: Vec<String>,
    /// A randomised (locally administered) MAC, which a phone may change.
    pub randomized: bool,
    pub people: Vec<String>,
}

#[derive(Serialize, Debug)]
pub struct PersonView {
    pub name: String,
    pub present: bool,
    pub devices: Vec<String>,
}

#[derive(Serialize, Debug)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub room: String,
    pub version: String,
    pub started_at_ms: u64,
    pub heartbeat_ms: u64,
    pub age_s: u64,
}

#[derive(Serialize, Debug)]
pub struct AlertView {
    pub node: String,
    pub id: String,
    pub room: String,
    pub quantity: &'static str,
    pub message: String,
    pub raised_at_ms: u64,
    pub cleared_at_ms: Option<u64>,
}

/// A connected peer, for `GET /api/peers`.
#[derive(Serialize, Debug, Clone)]
pub struct PeerView {
    pub id: String,
    pub addresses: Vec<String>,
    pub rtt_ms: Option<f64>,
}

/// The room called `name`, created empty if it is not there yet.
fn room<'a>(rooms: &'a mut BTreeMap<String, RoomView>, name: &str) -> &'a mut RoomView {
    rooms.entry(name.to_owned()).or_insert_with(|| RoomView {
        name: name.to_owned(),
        readings: Vec::new(),
        targets: Vec::new(),
    })
}

impl OfficeView {
    pub fn new(replica: &Replica, now_ms: u64, consider_home_ms: u64) -> OfficeView {
        let query = Query::new(replica, now_ms, consider_home_ms);
        let mut rooms: BTreeMap<String, RoomView> = BTreeMap::new();
        let nodes = query
            .nodes()
            .into_iter()
            .map(|node| {
                room(&mut rooms, node.info.room.as_str());
                NodeView {
                    id: node.id.to_string(),
                    name: node.info.name.to_string(),
                    room: node.info.room.to_string(),
                    version: node.info.version.to_string(),
                    started_at_ms: node.info.started_at_ms,
                    heartbeat_ms: node.info.at.wall_ms,
                    age_s: node.age_ms / 1000,
                }
            })
            .collect();
        for reading in query.readings() {
            let view = ReadingView {
                node: reading.key.node.to_string(),
                sensor: reading.key.sensor.to_string(),
                quantity: reading.reading.quantity.name(),
                value: reading.reading.value,
                unit: reading.reading.quantity.unit(),
                measured_at_ms: reading.reading.at.wall_ms,
                age_s: reading.age_ms / 1000,
                stale: reading.stale,
            };
            room(&mut rooms, reading.reading.room.as_str())
                .readings
                .push(view);
        }
        for target in query.targets() {
            let view = TargetView {
                quantity: target.key.quantity.name(),
                value: target.winner.value,
                unit: target.key.quantity.unit(),
                set_by: target.winner.set_by.to_string(),
                set_at_ms: target.winner.at.wall_ms,
                concurrent: target
                    .concurrent
                    .iter()
                    .map(|other| ConcurrentTarget {
                        value: other.value,
                        set_by: other.set_by.to_string(),
                        set_at_ms: other.at.wall_ms,
                    })
                    .collect(),
            };
            room(&mut rooms, target.key.room.as_str())
                .targets
                .push(view);
        }
        let devices = query
            .devices()
            .into_iter()
            .map(|device| DeviceView {
                mac: device.mac.to_string(),
                ip: device.ip.to_string(),
                present: device.present,
                last_seen_ms: device.last_seen_ms,
                age_s: device.age_ms / 1000,
                seen_by: device.seen_by.iter().map(ToString::to_string).collect(),
                randomized: device.randomized(),
                people: device.people.iter().map(ToString::to_string).collect(),
            })
            .collect();
        let people = query
            .people()
            .into_iter()
            .map(|person| PersonView {
                name: person.name.to_string(),
                present: person.present,
                devices: person.devices.iter().map(ToString::to_string).collect(),
            })
            .collect();
        let alerts = replica
            .latest::<Alert>()
            .map(|(id, alert): (&AlertId, &Alert)| AlertView {
                node: id.node.to_string(),
                id: id.name.to_string(),
                room: alert.room.to_string(),
                quantity: alert.quantity.name(),
                message: alert.message.to_string(),
                raised_at_ms: alert.raised_at_ms,
                cleared_at_ms: alert.cleared_at_ms,
            })
            .collect();
        OfficeView {
            node: replica.id().to_string(),
            rooms: rooms.into_values().collect(),
            devices,
            people,
            nodes,
            alerts,
        }
    }
}
