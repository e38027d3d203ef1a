//! The node's configuration: a TOML file parsed into a raw struct (every field documented,
//! unknown keys refused), then validated into typed values. Command-line flags override the
//! file; `officemesh config default` prints [`DEFAULT_CONFIG`].

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use thiserror::Error;

use crate::state::{NodeName, Room};

/// The documented default configuration, printed by `officemesh config default`. A test
/// parses it, so it stays valid.
pub const DEFAULT_CONFIG: &str = r#"# officemesh configuration. Every key is optional; these are the defaults.
# Command-line flags override what is set here.

[node]
# A human-readable name for this node. Empty: the machine's host name.
name = ""
# The room this node is in; its sensors report for this room unless they say otherwise.
room = "office"
# Where the node keeps its database, keys and API token. Empty: $XDG_DATA_HOME/officemesh,
# else ~/.local/share/officemesh.
data_dir = ""
# Run simulated sensors (temperature, humidity, sound) in this node's room.
sim = false

[network]
# Addresses to listen on, as libp2p multiaddrs. TCP only: the private-network layer does not
# work over QUIC.
listen = ["/ip4/0.0.0.0/tcp/7879"]
# Peers to dial at start and redial when they drop, as multiaddrs ending in /p2p/PEER_ID or not.
peers = []
# A swarm.key file (IPFS format) holding the office's pre-shared key. Empty: the key in the
# data dir, generated at first start (a new office) or stored by --join.
swarm_key_file = ""
# A join token from `officemesh invite` on a node of the office: its key is stored in the
# data dir and its addresses are dialled. Needed once; later starts use the stored key.
join = ""
# Discover peers on the local network with mDNS.
mdns = true
# If not empty, only these peer ids may connect.
allow = []
# How often the writes of this node are pushed to peers, batched. Alerts and chat-driven
# writes go out at once.
publish_interval_ms = 1000
# How often this node swaps digests with one random peer to repair what gossip lost.
sync_interval_ms = 10000

[http]
# Where the HTTP API and dashboard listen.
listen = "127.0.0.1:7878"
# The bearer token that writes need. Empty: OFFICEMESH_API_TOKEN if set, else a token
# generated into <data_dir>/api-token.
api_token = ""

[state]
# How long network-map rows, withdrawn bindings, cleared alerts, silent sensors and silent
# nodes are kept after their last write.
retention_days = 7
"#;

/// The file as written. Every field is optional; missing ones take the defaults above.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    node: RawNode,
    network: RawNetwork,
    http: RawHttp,
    state: RawState,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawNode {
    /// Human-readable node name; empty for the host name.
    name: String,
    /// The node's room.
    room: String,
    /// Data directory; empty for the user's data dir.
    data_dir: String,
    /// Simulated sensors.
    sim: bool,
}

impl Default for RawNode {
    fn default() -> Self {
        RawNode {
            name: String::new(),
            room: "office".into(),
            data_dir: String::new(),
            sim: false,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawNetwork {
    /// Listen multiaddrs.
    listen: Vec<String>,
    /// Bootstrap peer multiaddrs.
    peers: Vec<String>,
    /// Path of a swarm.key file; empty for the one in the data dir.
    swarm_key_file: String,
    /// Join token; empty when not joining.
    join: String,
    /// mDNS discovery.
    mdns: bool,
    /// Allowed peer ids; empty allows every holder of the swarm key.
    allow: Vec<String>,
    /// Publish batching interval, milliseconds.
    publish_interval_ms: u64,
    /// Digest sync interval, milliseconds.
    sync_interval_ms: u64,
}

impl Default for RawNetwork {
    fn default() -> Self {
        RawNetwork {
            listen: vec!["/ip4/0.0.0.0/tcp/7879".into()],
            peers: Vec::new(),
            swarm_key_file: String::new(),
            join: String::new(),
            mdns: true,
            allow: Vec::new(),
            publish_interval_ms: 1000,
            sync_interval_ms: 10_000,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    /// HTTP listen address.
    listen: String,
    /// Bearer token for writes; empty for the environment or a generated one.
    api_token: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: "127.0.0.1:7878".into(),
            api_token: String::new(),
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawState {
    /// Retention of expiring entries, days.
    retention_days: u64,
}

impl Default for RawState {
    fn default() -> Self {
        RawState { retention_days: 7 }
    }
}

/// A configuration error, naming the key (or file) at fault.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.to_string(),
    }
}

/// Values given on the command line; `None` (or empty) leaves the file's value.
#[derive(Default, Debug, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub name: Option<String>,
    pub room: Option<String>,
    pub listen: Vec<String>,
    pub peers: Vec<String>,
    pub swarm_key_file: Option<PathBuf>,
    pub join: Option<String>,
    pub http: Option<String>,
    pub no_mdns: bool,
    pub sim: bool,
}

/// The validated configuration of one node.
#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: the host name, resolved at start.
    pub name: Option<NodeName>,
    pub room: Room,
    pub data_dir: PathBuf,
    pub sim: bool,
    /// Listen multiaddrs, checked to be TCP.
    pub listen: Vec<String>,
    pub peers: Vec<String>,
    pub swarm_key_file: Option<PathBuf>,
    /// A join token, parsed by the network layer.
    pub join: Option<String>,
    pub mdns: bool,
    pub allow: Vec<String>,
    pub publish_interval: Duration,
    pub sync_interval: Duration,
    pub http_listen: SocketAddr,
    pub api_token: Option<String>,
    pub retention: Duration,
    /// An artificial latency on every network link, for benchmarks; not in the file, never
    /// set by the command line. `None`: no delay.
    pub link_delay: Option<crate::net::LinkDelay>,
    /// The gossipsub mesh, for benchmarks that compare settings; not in the file.
    pub gossip: crate::net::GossipTuning,
}

/// Shortest publish and sync intervals accepted: faster only burns the network and SD card.
const MIN_INTERVAL_MS: u64 = 100;

/// Longest retention accepted: ten years.
const MAX_RETENTION_DAYS: u64 = 3650;

impl Config {
    /// Reads `path` (if given), applies `overrides`, and validates.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                parse(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                })?
            }
            None => RawConfig::default(),
        };
        Config::validate(raw, overrides)
    }

    /// Parses and validates TOML text, without overrides.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw = parse(text).map_err(|message| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message,
        })?;
        Config::validate(raw, &Overrides::default())
    }

    fn validate(mut raw: RawConfig, overrides: &Overrides) -> Result<Config, ConfigError> {
        if let Some(name) = &overrides.name {
            raw.node.name.clone_from(name);
        }
        if let Some(room) = &overrides.room {
            raw.node.room.clone_from(room);
        }
        if !overrides.listen.is_empty() {
            raw.network.listen.clone_from(&overrides.listen);
        }
        raw.network.peers.extend(overrides.peers.iter().cloned());
        if let Some(http) = &overrides.http {
            raw.http.listen.clone_from(http);
        }
        raw.network.mdns &= !overrides.no_mdns;
        raw.node.sim |= overrides.sim;

        let name = if raw.node.name.trim().is_empty() {
            None
        } else {
            Some(NodeName::new(&raw.node.name).map_err(|error| invalid("node.name", error))?)
        };
        let room = Room::new(&raw.node.room).map_err(|error| invalid("node.room", error))?;
        let data_dir = match (&overrides.data_dir, raw.node.data_dir.trim()) {
            (Some(dir), _) => dir.clone(),
            (None, "") => {
                default_data_dir().map_err(|message| invalid("node.data_dir", message))?
            }
            (None, dir) => PathBuf::from(dir),
        };
        if raw.network.listen.is_empty() {
            return Err(invalid("network.listen", "at least one address is needed"));
        }
        for address in &raw.network.listen {
            check_tcp_multiaddr("network.listen", address)?;
        }
        for address in &raw.network.peers {
            check_tcp_multiaddr("network.peers", address)?;
        }
        for peer in &raw.network.allow {
            if peer.len() < 10 || !peer.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(invalid(
                    "network.allow",
                    format!("{peer:?} is not a peer id"),
                ));
            }
        }
        let swarm_key_file = match (&overrides.swarm_key_file, raw.network.swarm_key_file.trim()) {
            (Some(path), _) => Some(path.clone()),
            (None, "") => None,
            (None, path) => Some(PathBuf::from(path)),
        };
        let join = overrides
            .join
            .clone()
            .or_else(|| Some(raw.network.join.trim().to_owned()).filter(|token| !token.is_empty()));
        let publish_interval = interval(
            "network.publish_interval_ms",
            raw.network.publish_interval_ms,
        )?;
        let sync_interval = interval("network.sync_interval_ms", raw.network.sync_interval_ms)?;
        let http_listen: SocketAddr = raw.http.listen.parse().map_err(|_| {
            invalid(
                "http.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:7878",
                    raw.http.listen
                ),
            )
        })?;
        let api_token = match raw.http.api_token.trim() {
            "" => None,
            token if token.len() < 16 => {
                return Err(invalid("http.api_token", "must be at least 16 characters"));
            }
            token => Some(token.to_owned()),
        };
        if raw.state.retention_days == 0 || raw.state.retention_days > MAX_RETENTION_DAYS {
            return Err(invalid(
                "state.retention_days",
                format!(
                    "{} is not between 1 and {MAX_RETENTION_DAYS}",
                    raw.state.retention_days
                ),
            ));
        }
        Ok(Config {
            name,
            room,
            data_dir,
            sim: raw.node.sim,
            listen: raw.network.listen,
            peers: raw.network.peers,
            swarm_key_file,
            join,
            mdns: raw.network.mdns,
            allow: raw.network.allow,
            publish_interval,
            sync_interval,
            http_listen,
            api_token,
            retention: Duration::from_secs(raw.state.retention_days * 24 * 3600),
            link_delay: None,
            gossip: crate::net::GossipTuning::OFFICE,
        })
    }
}

fn parse(text: &str) -> Result<RawConfig, String> {
    toml::from_str(text).map_err(|error| error.to_string().trim_end().to_owned())
}

fn interval(key: &'static str, ms: u64) -> Result<Duration, ConfigError> {
    if ms < MIN_INTERVAL_MS {
        return Err(invalid(
            key,
            format!("{ms} ms is below the minimum of {MIN_INTERVAL_MS} ms"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Checks the shape of a TCP multiaddr without knowing libp2p (the network layer parses it
/// fully): `/ip4/.../tcp/PORT`, `/ip6/...`, `/dns*/...`, optionally `/p2p/PEER`.
fn check_tcp_multiaddr(key: &'static str, address: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = address.split('/').collect();
    let ok = parts.len() >= 5
        && parts[0].is_empty()
        && matches!(parts[1], "ip4" | "ip6" | "dns" | "dns4" | "dns6" | "memory")
        && (parts[1] == "memory" || (parts[3] == "tcp" && parts[4].parse::<u16>().is_ok()));
    let memory = parts.len() >= 3 && parts[1] == "memory";
    if ok || memory {
        if parts
            .iter()
            .any(|part| *part == "quic" || *part == "quic-v1")
        {
            return Err(invalid(
                key,
                format!("{address}: QUIC cannot carry the private-network key; use TCP"),
            ));
        }
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{address:?} is not a TCP multiaddr like /ip4/192.0.2.1/tcp/7879"),
        ))
    }
}

/// `$XDG_DATA_HOME/officemesh`, else `~/.local/share/officemesh`.
fn default_data_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir).join("officemesh"));
    }
    match std::env::var_os("HOME").filter(|home| !home.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/officemesh")),
        None => Err("neither XDG_DATA_HOME nor HOME is set; give --data-dir".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_default_parses_to_the_defaults() {
        let config = Config::from_toml(DEFAULT_CONFIG).expect("the default config is valid");
        let empty = Config::from_toml("").expect("an empty config is valid");
        assert_eq!(config.room.as_str(), "office");
        assert_eq!(config.listen, vec!["/ip4/0.0.0.0/tcp/7879".to_owned()]);
        assert_eq!(config.http_listen, "127.0.0.1:7878".parse().unwrap());
        assert_eq!(config.publish_interval, Duration::from_secs(1));
        assert_eq!(config.sync_interval, Duration::from_secs(10));
        assert_eq!(config.retention, Duration::from_secs(7 * 24 * 3600));
        assert!(config.mdns && !config.sim && config.name.is_none() && config.api_token.is_none());
        // Every default written in the file is the one the code applies without it.
        assert_eq!(format!("{config:?}"), format!("{empty:?}"));
    }

    fn check_error(toml: &str, expected: &str) {
        let error = Config::from_toml(toml).expect_err(toml).to_string();
        assert!(
            error.contains(expected),
            "{toml:?}: {error:?} lacks {expected:?}"
        );
    }

    #[test]
    fn bad_keys_and_values_name_the_key() {
        check_error("[node]\ncolour = 1\n", "unknown field `colour`");
        check_error("[nodes]\n", "unknown field `nodes`");
        check_error("[node]\nroom = \"\"\n", "node.room");
        check_error(
            "[network]\nlisten = [\"/ip4/0.0.0.0/udp/1/quic-v1\"]\n",
            "network.listen",
        );
        check_error("[network]\npeers = [\"localhost:7879\"]\n", "network.peers");
        check_error(
            "[network]\npublish_interval_ms = 5\n",
            "network.publish_interval_ms",
        );
        check_error(
            "[network]\nsync_interval_ms = \"often\"\n",
            "sync_interval_ms",
        );
        check_error("[http]\nlisten = \"everywhere\"\n", "http.listen");
        check_error("[http]\napi_token = \"short\"\n", "http.api_token");
        check_error("[state]\nretention_days = 0\n", "state.retention_days");
        check_error("[network]\nallow = [\"not a peer\"]\n", "network.allow");
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("officemesh.toml");
        std::fs::write(
            &path,
            "[node]\nroom = \"kitchen\"\nname = \"pi-1\"\n[network]\nmdns = true\n",
        )
        .unwrap();
        let overrides = Overrides {
            room: Some("meeting room".into()),
            http: Some("127.0.0.1:9000".into()),
            no_mdns: true,
            peers: vec!["/ip4/127.0.0.1/tcp/7879".into()],
            data_dir: Some(dir.path().join("data")),
            ..Overrides::default()
        };
        let config = Config::load(Some(&path), &overrides).unwrap();
        assert_eq!(config.room.as_str(), "meeting room");
        assert_eq!(config.name.unwrap().as_str(), "pi-1");
        assert_eq!(config.http_listen.port(), 9000);
        assert!(!config.mdns);
        assert_eq!(config.peers.len(), 1);
        assert_eq!(config.data_dir, dir.path().join("data"));
        let missing = Config::load(Some(&dir.path().join("nope.toml")), &Overrides::default());
        assert!(missing.unwrap_err().to_string().contains("nope.toml"));
    }
}
