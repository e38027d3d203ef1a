//! The JSON shapes of `GET /api/state` and `GET /api/peers`, built from a replica.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::state::{Alert, AlertId, Binding, NodeInfo, Reading, Replica, Sighting, Target};

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

fn age_s(now_ms: u64, at_ms: u64) -> u64 {
    now_ms.saturating_sub(at_ms) / 1000
}

impl OfficeView {
    pub fn new(replica: &Replica, now_ms: u64, consider_home_ms: u64) -> OfficeView {
        let mut rooms: BTreeMap<String, RoomView> = BTreeMap::new();
        let mut nodes = Vec::new();
        for (id, info) in replica.latest::<NodeInfo>() {
            nodes.push(NodeView {
                id: id.to_string(),
                name: info.name.to_string(),
                room: info.room.to_string(),
                version: info.version.to_string(),
                started_at_ms: info.started_at_ms,
                heartbeat_ms: info.at.wall_ms,
                age_s: age_s(now_ms, info.at.wall_ms),
            });
            room(&mut rooms, info.room.as_str());
        }
        let mut readings: Vec<(String, ReadingView)> = replica
            .latest::<Reading>()
            .map(|(key, reading)| {
                (
                    reading.room.to_string(),
                    ReadingView {
                        node: key.node.to_string(),
                        sensor: key.sensor.to_string(),
                        quantity: reading.quantity.name(),
                        value: reading.value,
                        unit: reading.quantity.unit(),
                        measured_at_ms: reading.at.wall_ms,
                        age_s: age_s(now_ms, reading.at.wall_ms),
                    },
                )
            })
            .collect();
        readings.sort_by(|a, b| {
            (&a.1.quantity, &a.1.node, &a.1.sensor).cmp(&(&b.1.quantity, &b.1.node, &b.1.sensor))
        });
        for (name, reading) in readings {
            room(&mut rooms, &name).readings.push(reading);
        }
        for (key, writes) in replica.store().targets.keys() {
            if let Some((winner, _)) = replica.target(&key.room, key.quantity) {
                let concurrent = writes
                    .values()
                    .filter(|target| *target != winner)
                    .map(|target: &Target| ConcurrentTarget {
                        value: target.value,
                        set_by: target.set_by.to_string(),
                        set_at_ms: target.at.wall_ms,
                    })
                    .collect();
                let view = TargetView {
                    quantity: key.quantity.name(),
                    value: winner.value,
                    unit: key.quantity.unit(),
                    set_by: winner.set_by.to_string(),
                    set_at_ms: winner.at.wall_ms,
                    concurrent,
                };
                room(&mut rooms, key.room.as_str()).targets.push(view);
            }
        }

        // Devices: every observer's rows for a MAC, merged; present if any saw it recently.
        let mut devices: BTreeMap<String, DeviceView> = BTreeMap::new();
        for (key, sighting) in replica.latest::<Sighting>() {
            let mac = key.mac.to_string();
            let device = devices.entry(mac.clone()).or_insert_with(|| DeviceView {
                mac,
                ip: sighting.ip.to_string(),
                present: false,
                last_seen_ms: 0,
                age_s: 0,
                seen_by: Vec::new(),
                randomized: key.mac.is_locally_administered(),
                people: Vec::new(),
            });
            if sighting.at.wall_ms >= device.last_seen_ms {
                device.last_seen_ms = sighting.at.wall_ms;
                device.ip = sighting.ip.to_string();
            }
            device.seen_by.push(key.observer.to_string());
        }
        for device in devices.values_mut() {
            device.age_s = age_s(now_ms, device.last_seen_ms);
            device.present = now_ms.saturating_sub(device.last_seen_ms) <= consider_home_ms;
        }
        let mut people: BTreeMap<String, PersonView> = BTreeMap::new();
        let mut bound: BTreeSet<(String, String)> = BTreeSet::new();
        for (key, writes) in replica.store().people.keys() {
            if writes.values().any(|binding: &Binding| binding.bound) {
                bound.insert((key.person.to_string(), key.mac.to_string()));
            }
        }
        for (person, mac) in bound {
            let present = devices.get(&mac).is_some_and(|device| device.present);
            if let Some(device) = devices.get_mut(&mac) {
                device.people.push(person.clone());
            }
            let entry = people.entry(person.clone()).or_insert_with(|| PersonView {
                name: person,
                present: false,
                devices: Vec::new(),
            });
            entry.present |= present;
            entry.devices.push(mac);
        }
        let alerts = alert_views(replica);
        OfficeView {
            node: replica.id().to_string(),
            rooms: rooms.into_values().collect(),
            devices: devices.into_values().collect(),
            people: people.into_values().collect(),
            nodes,
            alerts,
        }
    }
}

/// The alerts of the office, for `GET /api/alerts`: active ones first, then the cleared ones
/// still kept; newest raised first within each.
pub fn alert_views(replica: &Replica) -> Vec<AlertView> {
    let mut alerts: Vec<AlertView> = replica
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
    alerts.sort_by(|a, b| {
        (
            a.cleared_at_ms.is_some(),
            std::cmp::Reverse(a.raised_at_ms),
            &a.node,
            &a.id,
        )
            .cmp(&(
                b.cleared_at_ms.is_some(),
                std::cmp::Reverse(b.raised_at_ms),
                &b.node,
                &b.id,
            ))
    });
    alerts
}
