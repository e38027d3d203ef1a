//! What names a series of readings in the history: one sensor of one node, in one room,
//! measuring one quantity. A sensor moved to another room starts a new series, so its old
//! readings keep their room.

use std::fmt;

use super::{NodeId, Quantity, Room, SensorId};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Series {
    pub node: NodeId,
    pub sensor: SensorId,
    pub room: Room,
    pub quantity: Quantity,
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} ({}, {})",
            self.node, self.sensor, self.room, self.quantity
        )
    }
}
