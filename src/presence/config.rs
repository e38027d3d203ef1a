//! The `[presence]` section of the config file: whether and how often this node watches the
//! network for devices, how long a device stays present, and what is never recorded.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use serde::Deserialize;

use super::{Subnet, refresh::MAX_REFRESH_HOSTS};
use crate::{
    state::Mac,
    validate::{self, InvalidKey},
};

/// How long a device counts as present after a node last saw it, unless `[presence]
/// consider_home_s` says otherwise (Home Assistant's default).
pub const CONSIDER_HOME_MS: u64 = 180_000;

/// Time between two scans unless the file says otherwise.
pub const DEFAULT_INTERVAL_MS: u64 = 15_000;

/// Longest `consider_home_s` accepted: a day. Presence is about who is in now.
pub const MAX_CONSIDER_HOME_S: u64 = 24 * 3600;

/// `[presence]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawPresence {
    /// Watch the network for devices.
    pub enabled: bool,
    /// Time between two scans, milliseconds.
    pub interval_ms: u64,
    /// How long a device stays present after it was last seen, seconds.
    pub consider_home_s: u64,
    /// A file in /proc/net/arp format to read instead of netlink; empty for netlink.
    pub arp_table: String,
    /// MACs never recorded.
    pub ignore: Vec<String>,
    /// IPv4 subnets to nudge; empty sends nothing.
    pub refresh_subnets: Vec<String>,
}

impl Default for RawPresence {
    fn default() -> Self {
        RawPresence {
            enabled: true,
            interval_ms: DEFAULT_INTERVAL_MS,
            consider_home_s: CONSIDER_HOME_MS / 1000,
            arp_table: String::new(),
            ignore: Vec::new(),
            refresh_subnets: Vec::new(),
        }
    }
}

/// The validated `[presence]` section.
#[derive(Debug, Clone)]
pub struct PresenceConfig {
    /// Whether this node watches the network at all.
    pub enabled: bool,
    /// Time between two scans.
    pub interval: Duration,
    /// How long a device counts as present after a node last saw it.
    pub consider_home: Duration,
    /// Read this file in `/proc/net/arp` format instead of the kernel's table.
    pub arp_table: Option<PathBuf>,
    /// MACs never written: routers, printers, the other nodes.
    pub ignore: BTreeSet<Mac>,
    /// Subnets nudged before each scan; empty: nothing is ever sent.
    pub refresh_subnets: Vec<Subnet>,
}

impl RawPresence {
    pub fn validate(self) -> Result<PresenceConfig, InvalidKey> {
        let interval = validate::interval("presence.interval_ms", self.interval_ms)?;
        let consider_home = Duration::from_secs(validate::within(
            "presence.consider_home_s",
            self.consider_home_s,
            1..=MAX_CONSIDER_HOME_S,
            "",
        )?);
        if consider_home < interval {
            return Err(InvalidKey::new(
                "presence.consider_home_s",
                format!(
                    "{} s is shorter than presence.interval_ms ({} ms): devices would turn absent between two scans",
                    self.consider_home_s, self.interval_ms
                ),
            ));
        }
        let ignore = self
            .ignore
            .iter()
            .map(|mac| {
                mac.parse::<Mac>().map_err(|_| {
                    InvalidKey::new(
                        "presence.ignore",
                        format!("{mac:?} is not a MAC address like 00:1a:2b:3c:4d:5e"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let refresh_subnets: Vec<Subnet> = self
            .refresh_subnets
            .iter()
            .map(|subnet| {
                subnet
                    .parse()
                    .map_err(|message| InvalidKey::new("presence.refresh_subnets", message))
            })
            .collect::<Result<_, _>>()?;
        let hosts: u64 = refresh_subnets
            .iter()
            .map(|subnet| u64::from(subnet.host_count()))
            .sum();
        if hosts > u64::from(MAX_REFRESH_HOSTS) {
            return Err(InvalidKey::new(
                "presence.refresh_subnets",
                format!(
                    "{hosts} host addresses in all; at most {MAX_REFRESH_HOSTS} may be refreshed"
                ),
            ));
        }
        Ok(PresenceConfig {
            enabled: self.enabled,
            interval,
            consider_home,
            arp_table: validate::optional(&self.arp_table).map(PathBuf::from),
            ignore,
            refresh_subnets,
        })
    }
}
