//! Simulated sensors (`officemesh up --sim`): a plausible temperature, humidity and sound level
//! in the node's room, drifting slowly, for a first look and for the demo office.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::{
    office::{OfficeError, OfficeHandle, Write},
    state::{Quantity, Room, SensorId},
};

/// How often the simulated sensors report.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// One simulated sensor: a value that wanders around a base, never leaving a band.
struct Drift {
    id: &'static str,
    quantity: Quantity,
    value: f64,
    base: f64,
    band: f64,
    step: f64,
}

/// A tiny xorshift generator: the drift needs no quality, only variety per node.
struct Wobble(u64);

impl Wobble {
    /// A number in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Reports simulated readings for `room` until `shutdown`. `seed` varies the values per node.
pub async fn run(office: OfficeHandle, room: Room, seed: u64, shutdown: CancellationToken) {
    let mut wobble = Wobble(seed | 1);
    let mut sensors = [
        Drift {
            id: "sim-temperature",
            quantity: Quantity::Temperature,
            value: 0.0,
            base: 22.0,
            band: 3.0,
            step: 0.1,
        },
        Drift {
            id: "sim-humidity",
            quantity: Quantity::Humidity,
            value: 0.0,
            base: 45.0,
            band: 10.0,
            step: 0.5,
        },
        Drift {
            id: "sim-sound",
            quantity: Quantity::Sound,
            value: 0.0,
            base: 42.0,
            band: 12.0,
            step: 2.0,
        },
    ];
    for sensor in &mut sensors {
        sensor.value = sensor.base + wobble.next() * sensor.band / 2.0;
    }
    let mut ticks = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for sensor in &mut sensors {
            let pull = (sensor.base - sensor.value) * 0.05;
            sensor.value = (sensor.value + pull + wobble.next() * sensor.step)
                .clamp(sensor.base - sensor.band, sensor.base + sensor.band);
            let write = Write::Reading {
                sensor: SensorId::new(sensor.id).expect("valid sensor id"),
                room: room.clone(),
                quantity: sensor.quantity,
                value: (sensor.value * 10.0).round() / 10.0,
                unit: sensor.quantity.unit().to_owned(),
            };
            match office.write(write).await {
                Ok(()) => {}
                Err(OfficeError::Stopped) => return,
                Err(error) => warn!(%error, sensor = sensor.id, "simulated reading not recorded"),
            }
        }
    }
}
