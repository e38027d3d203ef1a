//! Derived reads of the office state: which devices and people are present, the readings of
//! each room with their age and staleness, the target acted on and the values set beside it,
//! which nodes are up. The HTTP API's JSON and the chat bot's answers are both built from
//! these, so the dashboard and the bot never disagree.
//!
//! Pure like the rest of the core: the time is an argument.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Binding, Ip, Mac, NodeId, NodeInfo, Person, Quantity, Reading, ReadingKey, Replica, Room,
    Sighting, Target, TargetKey,
};

/// A reading older than this is stale: its sensor stopped answering. Sensors report every
/// few seconds to a minute, so ten minutes of silence is not a slow sensor.
pub const STALE_READING_MS: u64 = 10 * 60 * 1000;

/// A node whose heartbeat is older than this is down: it missed three heartbeats (every 30 s).
pub const NODE_UP_MS: u64 = 90_000;

/// The office state read at one moment, by one node.
#[derive(Clone, Copy)]
pub struct Query<'a> {
    pub replica: &'a Replica,
    /// The reading node's time, milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// How long a device counts as present after it was last seen.
    pub consider_home_ms: u64,
}

/// A node, as its last heartbeat describes it.
#[derive(Clone, Debug)]
pub struct NodeStatus<'a> {
    pub id: &'a NodeId,
    pub info: &'a NodeInfo,
    pub age_ms: u64,
    /// Its heartbeat is recent (see [`NODE_UP_MS`]).
    pub up: bool,
}

/// The latest reading of one sensor.
#[derive(Clone, Debug)]
pub struct RoomReading<'a> {
    pub key: &'a ReadingKey,
    pub reading: &'a Reading,
    pub age_ms: u64,
    /// Older than [`STALE_READING_MS`].
    pub stale: bool,
}

/// The target of a room for a quantity.
#[derive(Clone, Debug)]
pub struct TargetStatus<'a> {
    pub key: &'a TargetKey,
    /// The value acted on: of the sets alive, the one with the highest stamp.
    pub winner: &'a Target,
    /// Other values set concurrently that no later set has replaced yet.
    pub concurrent: Vec<&'a Target>,
}

/// A device on the office network, every observer's rows merged.
#[derive(Clone, Debug)]
pub struct Device<'a> {
    pub mac: Mac,
    /// The address of the most recent sighting.
    pub ip: Ip,
    pub last_seen_ms: u64,
    pub age_ms: u64,
    /// Some node saw it within `consider_home_ms`.
    pub present: bool,
    pub seen_by: Vec<&'a NodeId>,
    /// The people bound to it.
    pub people: Vec<&'a Person>,
}

impl Device<'_> {
    /// A randomised (locally administered) MAC, which a phone may change.
    pub fn randomized(&self) -> bool {
        self.mac.is_locally_administered()
    }
}

/// A person and the devices they are bound to.
#[derive(Clone, Debug)]
pub struct PersonStatus<'a> {
    pub name: &'a Person,
    /// One of their devices is present.
    pub present: bool,
    pub devices: Vec<Mac>,
}

impl<'a> Query<'a> {
    pub fn new(replica: &'a Replica, now_ms: u64, consider_home_ms: u64) -> Self {
        Query {
            replica,
            now_ms,
            consider_home_ms,
        }
    }

    fn age_ms(&self, at_ms: u64) -> u64 {
        self.now_ms.saturating_sub(at_ms)
    }

    /// Every node, in id order.
    pub fn nodes(&self) -> Vec<NodeStatus<'a>> {
        self.replica
            .latest::<NodeInfo>()
            .map(|(id, info)| {
                let age_ms = self.age_ms(info.at.wall_ms);
                NodeStatus {
                    id,
                    info,
                    age_ms,
                    up: age_ms <= NODE_UP_MS,
                }
            })
            .collect()
    }

    /// This node's own entry, once it has written its first heartbeat.
    pub fn this_node(&self) -> Option<&'a NodeInfo> {
        let me = self.replica.id();
        self.replica
            .latest::<NodeInfo>()
            .find(|(id, _)| *id == me)
            .map(|(_, info)| info)
    }

    /// Every sensor's latest reading, by room, then quantity name, node and sensor.
    pub fn readings(&self) -> Vec<RoomReading<'a>> {
        let mut readings: Vec<RoomReading<'a>> = self
            .replica
            .latest::<Reading>()
            .map(|(key, reading)| {
                let age_ms = self.age_ms(reading.at.wall_ms);
                RoomReading {
                    key,
                    reading,
                    age_ms,
                    stale: age_ms > STALE_READING_MS,
                }
            })
            .collect();
        readings.sort_by(|a, b| {
            let order = |r: &RoomReading<'a>| {
                (
                    r.reading.room.clone(),
                    r.reading.quantity.name(),
                    r.key.clone(),
                )
            };
            order(a).cmp(&order(b))
        });
        readings
    }

    /// The readings of one quantity in one room.
    pub fn readings_of(&self, room: &Room, quantity: Quantity) -> Vec<RoomReading<'a>> {
        self.readings()
            .into_iter()
            .filter(|r| r.reading.room == *room && r.reading.quantity == quantity)
            .collect()
    }

    /// Every target, in (room, quantity) order.
    pub fn targets(&self) -> Vec<TargetStatus<'a>> {
        self.replica
            .store()
            .targets
            .keys()
            .filter_map(|(key, _)| self.target_at(key))
            .collect()
    }

    /// The target of `room` for `quantity`, if anyone set one.
    pub fn target(&self, room: &Room, quantity: Quantity) -> Option<TargetStatus<'a>> {
        let (key, _) = self
            .replica
            .store()
            .targets
            .keys()
            .find(|(key, _)| key.room == *room && key.quantity == quantity)?;
        self.target_at(key)
    }

    fn target_at(&self, key: &'a TargetKey) -> Option<TargetStatus<'a>> {
        let writes = self.replica.store().targets.get(key)?;
        let (winner, _) = self.replica.target(&key.room, key.quantity)?;
        let concurrent = writes.values().filter(|target| *target != winner).collect();
        Some(TargetStatus {
            key,
            winner,
            concurrent,
        })
    }

    /// Every room the state names (nodes, readings, targets), in name order.
    pub fn rooms(&self) -> Vec<&'a Room> {
        let replica = self.replica;
        let mut rooms: BTreeSet<&'a Room> = BTreeSet::new();
        rooms.extend(replica.latest::<NodeInfo>().map(|(_, info)| &info.room));
        rooms.extend(
            replica
                .latest::<Reading>()
                .map(|(_, reading)| &reading.room),
        );
        rooms.extend(replica.store().targets.keys().map(|(key, _)| &key.room));
        rooms.into_iter().collect()
    }

    /// Every device any node has seen, in MAC order; present if any saw it recently.
    pub fn devices(&self) -> Vec<Device<'a>> {
        let mut devices: BTreeMap<Mac, Device<'a>> = BTreeMap::new();
        for (key, sighting) in self.replica.latest::<Sighting>() {
            let device = devices.entry(key.mac).or_insert_with(|| Device {
                mac: key.mac,
                ip: sighting.ip,
                last_seen_ms: 0,
                age_ms: 0,
                present: false,
                seen_by: Vec::new(),
                people: Vec::new(),
            });
            if sighting.at.wall_ms >= device.last_seen_ms {
                device.last_seen_ms = sighting.at.wall_ms;
                device.ip = sighting.ip;
            }
            device.seen_by.push(&key.observer);
        }
        for device in devices.values_mut() {
            device.age_ms = self.age_ms(device.last_seen_ms);
            device.present = device.age_ms <= self.consider_home_ms;
        }
        for (person, mac) in self.bindings() {
            if let Some(device) = devices.get_mut(&mac) {
                device.people.push(person);
            }
        }
        devices.into_values().collect()
    }

    /// Every person bound to a device, in name order, present if one of their devices is.
    pub fn people(&self) -> Vec<PersonStatus<'a>> {
        let present: BTreeSet<Mac> = self
            .devices()
            .into_iter()
            .filter(|device| device.present)
            .map(|device| device.mac)
            .collect();
        let mut people: BTreeMap<&'a Person, PersonStatus<'a>> = BTreeMap::new();
        for (person, mac) in self.bindings() {
            let status = people.entry(person).or_insert_with(|| PersonStatus {
                name: person,
                present: false,
                devices: Vec::new(),
            });
            status.present |= present.contains(&mac);
            status.devices.push(mac);
        }
        people.into_values().collect()
    }

    /// The devices `person` is bound to.
    pub fn devices_of(&self, person: &Person) -> Vec<Mac> {
        self.bindings()
            .filter(|(bound, _)| *bound == person)
            .map(|(_, mac)| mac)
            .collect()
    }

    /// (person, device) pairs that are bound: a bind concurrent with an unbind counts.
    fn bindings(&self) -> impl Iterator<Item = (&'a Person, Mac)> + use<'a> {
        self.replica
            .store()
            .people
            .keys()
            .filter(|(_, writes)| writes.values().any(|binding: &Binding| binding.bound))
            .map(|(key, _)| (&key.person, key.mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{DEFAULT_RETENTION_MS, NodeName, SensorId, Version};

    const T0: u64 = 1_800_000_000_000;

    fn replica(id: &str) -> Replica {
        let mut replica = Replica::new(NodeId::new(id).unwrap(), DEFAULT_RETENTION_MS);
        replica.snapshot();
        replica
    }

    #[test]
    fn presence_staleness_and_concurrent_targets_are_derived() {
        let mut a = replica("12D3KooWNodeA");
        let mut b = replica("12D3KooWNodeB");
        let room = Room::new("lab").unwrap();
        a.announce(
            NodeName::new("pi-a").unwrap(),
            room.clone(),
            Version::new("0.1.0").unwrap(),
            T0,
            T0,
        )
        .unwrap();
        let fresh = SensorId::new("fresh").unwrap();
        let old = SensorId::new("old").unwrap();
        let phone: Mac = "00:1a:2b:3c:4d:5e".parse().unwrap();
        let laptop: Mac = "00:1a:2b:3c:4d:5f".parse().unwrap();
        let ana = Person::new("ana").unwrap();
        // Writes in time order: the clock never runs backwards.
        a.record_reading(old, room.clone(), Quantity::Co2, 500.0, "", T0)
            .unwrap();
        a.observe_device(laptop, "192.0.2.2".parse().unwrap(), T0)
            .unwrap();
        a.bind(ana.clone(), laptop, T0).unwrap();
        let now = T0 + STALE_READING_MS + 1;
        a.record_reading(fresh, room.clone(), Quantity::Co2, 600.0, "", now - 2000)
            .unwrap();
        a.observe_device(phone, "192.0.2.1".parse().unwrap(), now - 1000)
            .unwrap();
        // Two targets set without seeing each other.
        let set_a = a
            .set_target(
                room.clone(),
                Quantity::Temperature,
                21.0,
                "",
                ana.clone(),
                now,
            )
            .unwrap();
        let set_b = b
            .set_target(
                room.clone(),
                Quantity::Temperature,
                22.0,
                "",
                Person::new("bob").unwrap(),
                now,
            )
            .unwrap();
        a.merge(set_b, b.id(), now);
        b.merge(set_a, a.id(), now);

        let query = Query::new(&a, now, 180_000);
        let readings = query.readings_of(&room, Quantity::Co2);
        let stale: Vec<(&str, bool)> = readings
            .iter()
            .map(|r| (r.key.sensor.as_str(), r.stale))
            .collect();
        assert_eq!(stale, [("fresh", false), ("old", true)]);
        let devices = query.devices();
        let present: Vec<(String, bool)> = devices
            .iter()
            .map(|d| (d.mac.to_string(), d.present))
            .collect();
        assert_eq!(
            present,
            [
                ("00:1a:2b:3c:4d:5e".to_owned(), true),
                ("00:1a:2b:3c:4d:5f".to_owned(), false)
            ]
        );
        let people = query.people();
        assert_eq!(people.len(), 1);
        assert!(!people[0].present, "ana's only device left long ago");
        // Both replicas pick the same winner and list the other value beside it.
        let winners: Vec<(f64, Vec<f64>)> = [&a, &b]
            .iter()
            .map(|replica| {
                let target = Query::new(replica, now, 180_000)
                    .target(&room, Quantity::Temperature)
                    .unwrap();
                let others = target.concurrent.iter().map(|t| t.value).collect();
                (target.winner.value, others)
            })
            .collect();
        assert_eq!(winners[0], winners[1]);
        assert_eq!(winners[0].1.len(), 1, "{winners:?}");
        assert_ne!(winners[0].0, winners[0].1[0]);
        assert_eq!(query.rooms(), [&room]);
        // The heartbeat at T0 is recent until NODE_UP_MS later.
        assert!(Query::new(&a, T0 + NODE_UP_MS, 0).nodes()[0].up);
        assert!(!query.nodes()[0].up);
    }
}
