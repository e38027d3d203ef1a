//! What the simulated nodes do: sensors that drift, devices that come and go, people who bind
//! and unbind them, targets set from chat, alerts raised and cleared.

use std::net::{IpAddr, Ipv4Addr};

use super::{SimConfig, SimReport, SimRng};
use crate::state::{
    AlertName, Delta, Dot, Hlc, Mac, Message, NodeId, NodeName, Person, Quantity, Reading,
    ReadingKey, Replica, Room, SensorId, Version, WriteError,
};

/// Rounds between two scans of the neighbour table.
const SCAN_INTERVAL_ROUNDS: u64 = 5;

/// Rounds between two heartbeats.
const HEARTBEAT_INTERVAL_ROUNDS: u64 = 30;

const QUANTITIES: [(Quantity, f64, f64); 3] = [
    (Quantity::Temperature, 21.0, 0.3),
    (Quantity::Humidity, 45.0, 1.0),
    (Quantity::Sound, 40.0, 3.0),
];

struct Sensor {
    id: SensorId,
    quantity: Quantity,
    value: f64,
    step: f64,
}

struct Device {
    mac: Mac,
    /// The node that sees it.
    near: usize,
    present: bool,
}

pub struct Workload {
    rng: SimRng,
    chatter: bool,
    reading_interval_rounds: u64,
    rooms: Vec<Room>,
    sensors: Vec<Vec<Sensor>>,
    devices: Vec<Device>,
    people: Vec<Person>,
    forged: u64,
}

impl Workload {
    pub fn new(config: &SimConfig, rng: &mut SimRng) -> Self {
        let rooms: Vec<Room> = (0..config.nodes)
            .map(|index| Room::new(&format!("room {index}")).expect("valid room"))
            .collect();
        let sensors = (0..config.nodes)
            .map(|_| {
                (0..config.sensors_per_node)
                    .map(|k| {
                        let (quantity, base, step) = QUANTITIES[k % QUANTITIES.len()];
                        Sensor {
                            id: SensorId::new(&format!("sensor-{k}")).expect("valid sensor id"),
                            quantity,
                            value: base + rng.unit() * 2.0,
                            step,
                        }
                    })
                    .collect()
            })
            .collect();
        let devices = (0..config.nodes * config.devices_per_node)
            .map(|d| Device {
                mac: Mac([0x00, 0x1a, 0x2b, 0x00, (d >> 8) as u8, d as u8]),
                near: d % config.nodes,
                present: rng.chance(0.5),
            })
            .collect();
        let people = ["mendes", "ana", "joão", "kim"]
            .iter()
            .map(|name| Person::new(name).expect("valid person"))
            .collect();
        Workload {
            rng: rng.fork(),
            chatter: config.chatter,
            reading_interval_rounds: config.reading_interval_rounds,
            rooms,
            sensors,
            devices,
            people,
            forged: 0,
        }
    }

    /// The writes node `index` makes in `round`, as the deltas they produced.
    pub fn writes(
        &mut self,
        index: usize,
        round: u64,
        physical_ms: u64,
        replica: &mut Replica,
        report: &mut SimReport,
    ) -> Result<Vec<Delta>, WriteError> {
        let mut deltas = Vec::new();
        let room = self.rooms[index].clone();
        if (round + index as u64) % HEARTBEAT_INTERVAL_ROUNDS == 1 {
            deltas.push(replica.announce(
                NodeName::new(&format!("node {index}")).expect("valid name"),
                room.clone(),
                Version::new(env!("CARGO_PKG_VERSION")).expect("valid version"),
                super::START_MS,
                physical_ms,
            )?);
        }
        let interval = self.reading_interval_rounds;
        for (k, sensor) in self.sensors[index].iter_mut().enumerate() {
            // Sensors of one node are staggered so a node writes a little every round.
            if !(round + k as u64 + index as u64).is_multiple_of(interval) {
                continue;
            }
            let range = sensor.quantity.range();
            sensor.value = (sensor.value + (self.rng.unit() - 0.5) * 2.0 * sensor.step)
                .clamp(*range.start(), *range.end());
            // Rounded as a real sensor reports it.
            let value = (sensor.value * 10.0).round() / 10.0;
            deltas.push(replica.record_reading(
                sensor.id.clone(),
                room.clone(),
                sensor.quantity,
                value,
                sensor.quantity.unit(),
                physical_ms,
            )?);
            report.readings_written += 1;
        }
        if (round + index as u64).is_multiple_of(SCAN_INTERVAL_ROUNDS) {
            for device in self
                .devices
                .iter_mut()
                .filter(|device| device.near == index)
            {
                if self.rng.chance(0.1) {
                    device.present = !device.present;
                }
                if device.present {
                    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, index as u8, device.mac.0[5]));
                    deltas.push(replica.observe_device(device.mac, ip, physical_ms)?);
                }
            }
        }
        if self.chatter {
            self.chat(index, physical_ms, replica, &mut deltas)?;
        }
        report.writes += deltas.len() as u64;
        Ok(deltas)
    }

    fn chat(
        &mut self,
        index: usize,
        physical_ms: u64,
        replica: &mut Replica,
        deltas: &mut Vec<Delta>,
    ) -> Result<(), WriteError> {
        let rng = &mut self.rng;
        if !self.devices.is_empty() && rng.chance(0.03) {
            let person = self.people[rng.index(self.people.len())].clone();
            let mac = self.devices[rng.index(self.devices.len())].mac;
            deltas.push(if rng.chance(0.6) {
                replica.bind(person, mac, physical_ms)?
            } else {
                replica.unbind(person, mac, physical_ms)?
            });
        }
        if rng.chance(0.02) {
            let room = self.rooms[rng.index(self.rooms.len())].clone();
            let value = 19.0 + rng.below(8) as f64 * 0.5;
            let person = self.people[rng.index(self.people.len())].clone();
            deltas.push(replica.set_target(
                room,
                Quantity::Temperature,
                value,
                "°C",
                person,
                physical_ms,
            )?);
        }
        if rng.chance(0.02) {
            let name = AlertName::new(&format!("alert-{}", rng.below(3))).expect("valid alert id");
            let delta = if rng.chance(0.5) {
                let message = Message::new(&format!(
                    "the {} temperature is at 24.0°C. You might want to turn the AC on.",
                    self.rooms[index]
                ))
                .expect("valid message");
                replica.raise_alert(
                    name,
                    self.rooms[index].clone(),
                    Quantity::Temperature,
                    message,
                    physical_ms,
                )?
            } else {
                match replica.clear_alert(name, physical_ms) {
                    Err(WriteError::UnknownAlert(_)) => return Ok(()),
                    other => other?,
                }
            };
            deltas.push(delta);
        }
        Ok(())
    }

    /// A delta from `forger` that claims a reading of `victim`'s sensor, which only the victim
    /// may write. Its dots are far above anything the forger writes honestly.
    pub fn forge(&mut self, forger: &Replica, victim: &NodeId) -> Delta {
        self.forged += 1;
        let dot = Dot::new(forger.id().clone(), (1 << 52) + self.forged);
        let key = ReadingKey {
            node: victim.clone(),
            sensor: SensorId::new("sensor-0").expect("valid sensor id"),
        };
        let reading = Reading {
            room: Room::new("vault").expect("valid room"),
            quantity: Quantity::Temperature,
            value: 99.0,
            at: Hlc::new(forger.clock().last().wall_ms, 0),
        };
        let mut delta = Delta::default();
        delta.context.insert(&dot);
        delta.store.readings.insert(key, dot, reading);
        delta
    }
}
