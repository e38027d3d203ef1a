//! The `[network]` section of the config file: where the node listens, whom it dials, which
//! peers it admits and how often it publishes and syncs. The shape of each multiaddr is
//! checked here, without libp2p; `settings.rs` turns the values into libp2p's types.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::validate::{self, InvalidKey};

/// `[network]` as written. Every field is optional; missing ones take the defaults.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawNetwork {
    /// Listen multiaddrs.
    pub listen: Vec<String>,
    /// Bootstrap peer multiaddrs.
    pub peers: Vec<String>,
    /// Path of a swarm.key file; empty for the one in the data dir.
    pub swarm_key_file: PathBuf,
    /// Join token; empty when not joining.
    pub join: String,
    /// mDNS discovery.
    pub mdns: bool,
    /// Allowed peer ids; empty allows every holder of the swarm key.
    pub allow: Vec<String>,
    /// Publish batching interval, milliseconds.
    pub publish_interval_ms: u64,
    /// Digest sync interval, milliseconds.
    pub sync_interval_ms: u64,
}

impl Default for RawNetwork {
    fn default() -> Self {
        RawNetwork {
            listen: vec![DEFAULT_LISTEN.into()],
            peers: Vec::new(),
            swarm_key_file: PathBuf::new(),
            join: String::new(),
            mdns: true,
            allow: Vec::new(),
            publish_interval_ms: 1000,
            sync_interval_ms: 10_000,
        }
    }
}

/// Where a node listens unless told otherwise: every IPv4 interface, the office's port.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/7879";

/// The validated `[network]` section.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Listen multiaddrs, checked to be TCP.
    pub listen: Vec<String>,
    /// Peers to dial at start, checked to be TCP (by address or host name).
    pub peers: Vec<String>,
    /// `None`: the swarm key in the data dir.
    pub swarm_key_file: Option<PathBuf>,
    /// A join token, parsed by [`super::JoinToken`] when the node starts.
    pub join: Option<String>,
    pub mdns: bool,
    /// Peer ids admitted; empty admits every holder of the swarm key.
    pub allow: Vec<String>,
    pub publish_interval: Duration,
    pub sync_interval: Duration,
    /// An artificial latency on every network link, for benchmarks; not in the file, never
    /// set by the command line. `None`: no delay.
    #[cfg(feature = "bench")]
    pub link_delay: Option<super::LinkDelay>,
    /// The gossipsub mesh, for benchmarks that compare settings; not in the file.
    #[cfg(feature = "bench")]
    pub gossip: super::GossipTuning,
}

impl RawNetwork {
    pub fn validate(self) -> Result<NetworkConfig, InvalidKey> {
        if self.listen.is_empty() {
            return Err(InvalidKey::new(
                "network.listen",
                "at least one address is needed",
            ));
        }
        for address in &self.listen {
            check_tcp_multiaddr("network.listen", address)?;
        }
        for address in &self.peers {
            check_tcp_multiaddr("network.peers", address)?;
        }
        for peer in &self.allow {
            if peer.len() < 10 || !peer.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(InvalidKey::new(
                    "network.allow",
                    format!("{peer:?} is not a peer id"),
                ));
            }
        }
        let swarm_key_file = Some(self.swarm_key_file).filter(|path| !path.as_os_str().is_empty());
        let join = validate::optional(&self.join);
        if join.is_some() && swarm_key_file.is_some() {
            return Err(InvalidKey::new(
                "network.join",
                "a join token carries the office key: give it or network.swarm_key_file (--swarm-key), not both",
            ));
        }
        Ok(NetworkConfig {
            listen: self.listen,
            peers: self.peers,
            swarm_key_file,
            join,
            mdns: self.mdns,
            allow: self.allow,
            publish_interval: validate::interval(
                "network.publish_interval_ms",
                self.publish_interval_ms,
            )?,
            sync_interval: validate::interval("network.sync_interval_ms", self.sync_interval_ms)?,
            #[cfg(feature = "bench")]
            link_delay: None,
            #[cfg(feature = "bench")]
            gossip: super::GossipTuning::OFFICE,
        })
    }
}

/// Checks the shape of a TCP multiaddr without knowing libp2p (the network layer parses it
/// fully): `/ip4/.../tcp/PORT`, `/ip6/...`, `/dns*/...`, optionally `/p2p/PEER`.
pub fn check_tcp_multiaddr(key: &str, address: &str) -> Result<(), InvalidKey> {
    let parts: Vec<&str> = address.split('/').collect();
    let ok = parts.len() >= 5
        && parts[0].is_empty()
        && matches!(parts[1], "ip4" | "ip6" | "dns" | "dns4" | "dns6" | "memory")
        && (parts[1] == "memory" || (parts[3] == "tcp" && parts[4].parse::<u16>().is_ok()));
    let memory = parts.len() >= 3 && parts[1] == "memory";
    if !(ok || memory) {
        return Err(InvalidKey::new(
            key,
            format!("{address:?} is not a TCP multiaddr like /ip4/192.0.2.1/tcp/7879"),
        ));
    }
    if parts
        .iter()
        .any(|part| *part == "quic" || *part == "quic-v1")
    {
        return Err(InvalidKey::new(
            key,
            format!("{address}: QUIC cannot carry the private-network key; use TCP"),
        ));
    }
    Ok(())
}
