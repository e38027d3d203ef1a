//! A local change to the office state, as sensors, presence, the bot, the HTTP API and the
//! alert task ask for it, and how it becomes a delta of the replica.
//!
//! Pure: no I/O and no clock (the time is an argument), so the bot's pure `reply` can name
//! the writes it wants without depending on the actor; `tests/it/purity.rs` checks it.

use std::net::IpAddr;

use crate::state::{
    AlertName, Delta, Mac, Message, Person, Quantity, Replica, Room, SensorId, WriteError,
};

/// A local change to the office state.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Reading {
        sensor: SensorId,
        room: Room,
        quantity: Quantity,
        value: f64,
        unit: String,
    },
    Target {
        room: Room,
        quantity: Quantity,
        value: f64,
        unit: String,
        set_by: Person,
    },
    Bind {
        person: Person,
        mac: Mac,
    },
    Unbind {
        person: Person,
        mac: Mac,
    },
    /// Devices this node saw in one scan, written as one delta.
    Sightings {
        seen: Vec<(Mac, IpAddr)>,
    },
    RaiseAlert {
        name: AlertName,
        room: Room,
        quantity: Quantity,
        message: Message,
    },
    ClearAlert {
        name: AlertName,
    },
}

impl Write {
    /// Writes a person made (chat, HTTP) and alerts go out at once; readings and sightings
    /// wait for the next publish batch.
    pub fn urgent(&self) -> bool {
        !matches!(self, Write::Reading { .. } | Write::Sightings { .. })
    }

    /// Whether a peer's confirmation that it holds this write may stand in for a synced
    /// save when it is acknowledged: a reading, which a device pushes again and again and
    /// which a synced save each would cost the card most (docs/benchmarks.md). What people
    /// said and alerts are synced on this node's own disk.
    pub fn peer_may_hold(&self) -> bool {
        matches!(self, Write::Reading { .. })
    }

    /// Makes the change on `replica` at `now_ms` and returns its delta.
    pub fn apply(&self, replica: &mut Replica, now_ms: u64) -> Result<Delta, WriteError> {
        match self.clone() {
            Write::Reading {
                sensor,
                room,
                quantity,
                value,
                unit,
            } => replica.record_reading(sensor, room, quantity, value, &unit, now_ms),
            Write::Target {
                room,
                quantity,
                value,
                unit,
                set_by,
            } => replica.set_target(room, quantity, value, &unit, set_by, now_ms),
            Write::Bind { person, mac } => replica.bind(person, mac, now_ms),
            Write::Unbind { person, mac } => replica.unbind(person, mac, now_ms),
            Write::Sightings { seen } => {
                let mut batch = Delta::default();
                for (mac, ip) in seen {
                    batch.join(&replica.observe_device(mac, ip, now_ms)?);
                }
                Ok(batch)
            }
            Write::RaiseAlert {
                name,
                room,
                quantity,
                message,
            } => replica.raise_alert(name, room, quantity, message, now_ms),
            Write::ClearAlert { name } => replica.clear_alert(name, now_ms),
        }
    }
}
