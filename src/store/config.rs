//! The `[store]` section of the config file: how often the node saves what it will observe
//! again anyway. Writes someone was told are done (API, chat, alerts) and the leases of
//! sequence numbers are saved at once whatever this says, and bindings, targets and alerts
//! merged from peers within a second; this interval is for the readings the node's own
//! sensors poll, its network scans and its heartbeat, which a node killed meanwhile reads
//! again. Peers' readings, scans and heartbeats are left to sync. Longer spares the SD card.

use std::time::Duration;

use serde::Deserialize;

use crate::validate::{self, InvalidKey};

/// The periodic save unless the file says otherwise: five minutes.
pub const DEFAULT_SAVE_INTERVAL_S: u64 = 300;

/// Longest periodic save accepted: an hour, so a kill never loses more of the node's own
/// history than that.
pub const MAX_SAVE_INTERVAL_S: u64 = 3600;

/// `[store]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// Seconds between two saves of what changed without an acknowledgement.
    pub save_interval_s: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            save_interval_s: DEFAULT_SAVE_INTERVAL_S,
        }
    }
}

/// The validated `[store]` section.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub save_interval: Duration,
}

impl RawStore {
    pub fn validate(self) -> Result<StoreConfig, InvalidKey> {
        let seconds = validate::within(
            "store.save_interval_s",
            self.save_interval_s,
            1..=MAX_SAVE_INTERVAL_S,
            "",
        )?;
        Ok(StoreConfig {
            save_interval: Duration::from_secs(seconds),
        })
    }
}
