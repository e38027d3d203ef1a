//! The `[store]` section of the config file: how often the node saves what it will observe
//! again anyway, and how long an acknowledged reading waits for a peer to hold it. Writes
//! someone was told are done (API, chat, alerts) and the leases of sequence numbers are saved
//! at once whatever this says (a reading the API acknowledged: synced here unless a peer
//! confirmed within `peer_hold_ms` that it holds it), and bindings, targets and alerts
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

/// How long an acknowledged reading waits for a peer to hold it, unless the file says
/// otherwise. A peer on the office LAN confirms in a few milliseconds; this only matters when
/// the chosen peer is frozen or gone, and then each reading waits this long before it is
/// synced here.
pub const DEFAULT_PEER_HOLD_MS: u64 = 200;

/// Longest wait for a peer accepted: a device's request should not hang for seconds.
pub const MAX_PEER_HOLD_MS: u64 = 5000;

/// `[store]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// Seconds between two saves of what changed without an acknowledgement.
    pub save_interval_s: u64,
    /// Milliseconds a reading the API acknowledges waits for a peer to confirm it holds it
    /// before it is synced on this node's disk instead; 0: always synced here.
    pub peer_hold_ms: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            save_interval_s: DEFAULT_SAVE_INTERVAL_S,
            peer_hold_ms: DEFAULT_PEER_HOLD_MS,
        }
    }
}

/// The validated `[store]` section.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub save_interval: Duration,
    /// Zero: acknowledged readings are always synced on this node's disk.
    pub peer_hold: Duration,
}

impl RawStore {
    pub fn validate(self) -> Result<StoreConfig, InvalidKey> {
        let seconds = validate::within(
            "store.save_interval_s",
            self.save_interval_s,
            1..=MAX_SAVE_INTERVAL_S,
            "",
        )?;
        let peer_hold_ms = validate::within(
            "store.peer_hold_ms",
            self.peer_hold_ms,
            0..=MAX_PEER_HOLD_MS,
            "",
        )?;
        Ok(StoreConfig {
            save_interval: Duration::from_secs(seconds),
            peer_hold: Duration::from_millis(peer_hold_ms),
        })
    }
}
