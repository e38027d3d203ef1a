//! The `[state]` section of the config file: how long the office state keeps entries that
//! expire (the network map's sightings, cleared alerts, nodes gone quiet).

use std::time::Duration;

use serde::Deserialize;

use crate::{
    state::DEFAULT_RETENTION_MS,
    validate::{self, InvalidKey},
};

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Longest retention accepted: ten years.
pub const MAX_RETENTION_DAYS: u64 = 3650;

/// `[state]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawState {
    /// Retention of expiring entries, days.
    pub retention_days: u64,
}

impl Default for RawState {
    fn default() -> Self {
        RawState {
            retention_days: DEFAULT_RETENTION_MS / DAY_MS,
        }
    }
}

/// The validated `[state]` section.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// How long expiring entries are kept after their last write.
    pub retention: Duration,
}

impl StateConfig {
    /// The retention in the milliseconds a [`crate::state::Replica`] counts in.
    pub fn retention_ms(&self) -> u64 {
        u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX)
    }
}

impl RawState {
    pub fn validate(self) -> Result<StateConfig, InvalidKey> {
        let days = validate::within(
            "state.retention_days",
            self.retention_days,
            1..=MAX_RETENTION_DAYS,
            "",
        )?;
        Ok(StateConfig {
            retention: Duration::from_millis(days * DAY_MS),
        })
    }
}
