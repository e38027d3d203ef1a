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

use crate::{
    alerts, presence,
    sensors::SensorsConfig,
    state::{InvalidValue, Mac, NodeName, Quantity, Room},
};

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
# Peers to dial at start and redial when they drop, as multiaddrs ending in /p2p/PEER_ID or not;
# a host name is /dns4/HOST/tcp/PORT (also /dns6, /dns), looked up again on every redial.
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

[sensors]
# Where hwmon (class/hwmon), IIO (bus/iio/devices) and 1-wire (bus/w1/devices) sensors are
# read from; another directory lets tests and unusual systems feed a tree of their own.
sysfs_root = "/sys"
# With no source listed, detect hwmon, IIO and 1-wire sensors under sysfs_root.
auto_detect = true
# Sensor sources, one [[sensors.source]] table each. None listed: the node auto-detects the
# hwmon, IIO and 1-wire sensors under sysfs_root and reports them in its room (see what it
# finds with `officemesh sensors`). Every kind and its keys are in docs/sensors.md. E.g.:
#
# [[sensors.source]]
# kind = "w1"               # hwmon, iio, w1, command, zigbee2mqtt, tasmota or mqtt
# device = "28-0316a2797f1c" # the device (here a DS18B20's 1-wire id)
# id = "window"             # the sensor id of its readings; default from the device
# room = "meeting room"     # default: this node's room
# interval_ms = 30000       # how often it is read (MQTT: how often the device reports)
# offset = -0.5             # calibration added to every value, in °C, %, hPa, ppm, lx, dB
# quantity = "temperature"  # what it measures, for kinds that cannot tell
[bot]
# A name the chat bot answers to, besides this node's name: "bloo, who's at the office?".
# Empty: only the node's name.
name = "bloo"
# An incoming-webhook URL (Slack, Mattermost, a Discord webhook's /slack address, ...) that
# receives every alert this node raises as POST {"text": "..."}. Empty: none.
webhook_url = ""

[state]
# How long network-map rows, withdrawn bindings, cleared alerts, silent sensors and silent
# nodes are kept after their last write. For presence this is the privacy rule: a device's
# rows are forgotten this long after a node last saw it (a binding to a person stays until
# the person withdraws it).
retention_days = 7

[alerts]
# The rules this node checks against its own sensors' readings (docs/alerts.md). Without any
# [[alerts.rule]] the one below applies; `rule = []` here turns alerts off. In a rule of your
# own, a key left out takes: room every room, hysteresis 0, for_s 0, repeat_s 0, message
# "the {room} {quantity} is at {value}.".
[[alerts.rule]]
# What the rule watches: temperature, humidity, sound, co2, light or pressure.
quantity = "temperature"
# Only sensors in this room. Empty: every room.
room = ""
# Raise the alert at or above this value, in the quantity's unit (°C, %, dB, ppm, lx, hPa).
# For a low limit write `below = ...` instead: exactly one of the two.
above = 24.0
# How far back past the threshold the value must come before the alert clears, so a value
# hovering at the threshold is announced once.
hysteresis = 0.5
# How long, in seconds, the condition must hold before the alert is raised.
for_s = 300
# Announce a still-raised alert again after this many seconds. 0: once per crossing.
repeat_s = 0
# What is announced. Placeholders: {room}, {value} (one decimal and the unit, as 24.0°C),
# {quantity}, {sensor}, {threshold}; {{ and }} for braces.
message = "the {room} temperature is at {value}. You might want to turn the AC on."

[presence]
# Watch which devices are on the network (the kernel's neighbour table) and share them.
# Reading the table sends nothing; false: this node writes no network-map rows.
enabled = true
# How often the neighbour table is read, in milliseconds.
interval_ms = 15000
# A device counts as present while some node saw it within this many seconds (as Home
# Assistant's consider_home). At least the scan interval.
consider_home_s = 180
# Read this file, in /proc/net/arp format, instead of asking the kernel over netlink.
# Empty: netlink.
arp_table = ""
# MACs never recorded: routers, printers, access points, the other nodes. This node's own
# interfaces are always left out.
ignore = []
# IPv4 subnets (CIDR, at most 1024 host addresses in all) to nudge so that silent devices
# answer: every consider_home_s / 2, one empty UDP datagram to the discard port of each host
# address, which makes the kernel ask it for its MAC. Empty: nothing is ever sent.
refresh_subnets = []

# Chat adapters: each is optional and fails on its own (see docs/chat.md).

[slack]
# Answer questions and post alerts in Slack, connected in Socket Mode (no public URL needed).
enabled = false
# The app-level token (xapp-...) with the connections:write scope; opens the Socket Mode link.
app_token = ""
# The bot token (xoxb-...) that posts replies and alerts (chat:write).
bot_token = ""
# The channel id (C...) alerts are posted to. Empty: alerts are not posted to Slack.
alert_channel = ""
# The Web API base URL; changed only to test against a local server.
api_url = "https://slack.com/api"

[matrix]
# Answer questions and post alerts in Matrix rooms, as a bot user of a homeserver.
enabled = false
# The homeserver's client-server API base URL, like https://matrix.example.org.
homeserver_url = ""
# The bot user's access token.
access_token = ""
# The room id (!abc:example.org) alerts are posted to. Empty: alerts are not posted to Matrix.
alert_room = ""
# How long one /sync long-poll waits for new messages.
sync_timeout_ms = 30000
"#;

/// The file as written. Every field is optional; missing ones take the defaults above.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    node: RawNode,
    network: RawNetwork,
    http: RawHttp,
    bot: RawBot,
    state: RawState,
    sensors: crate::sensors::config::RawSensors,
    presence: RawPresence,
    alerts: RawAlerts,
    slack: RawSlack,
    matrix: RawMatrix,
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
struct RawBot {
    /// A name the bot answers to besides the node's; empty for none.
    name: String,
    /// Outgoing webhook for alerts; empty for none.
    webhook_url: String,
}

impl Default for RawBot {
    fn default() -> Self {
        RawBot {
            name: "bloo".into(),
            webhook_url: String::new(),
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

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawPresence {
    /// Watch the network for devices.
    enabled: bool,
    /// Time between two scans, milliseconds.
    interval_ms: u64,
    /// How long a device stays present after it was last seen, seconds.
    consider_home_s: u64,
    /// A file in /proc/net/arp format to read instead of netlink; empty for netlink.
    arp_table: String,
    /// MACs never recorded.
    ignore: Vec<String>,
    /// IPv4 subnets to nudge; empty sends nothing.
    refresh_subnets: Vec<String>,
}

impl Default for RawPresence {
    fn default() -> Self {
        RawPresence {
            enabled: true,
            interval_ms: 15_000,
            consider_home_s: crate::node::CONSIDER_HOME_MS / 1000,
            arp_table: String::new(),
            ignore: Vec::new(),
            refresh_subnets: Vec::new(),
        }
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawAlerts {
    /// The rules; `None` (no `[[alerts.rule]]`) for the default rule, empty for none.
    rule: Option<Vec<RawRule>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawRule {
    /// Quantity name; required.
    quantity: String,
    /// Only this room; empty for every room.
    room: String,
    /// Raised at or above.
    above: Option<f64>,
    /// Raised at or below.
    below: Option<f64>,
    /// Clear margin, in the quantity's unit.
    hysteresis: f64,
    /// How long the condition must hold, seconds.
    for_s: u64,
    /// Announce again after, seconds; 0 for never.
    repeat_s: u64,
    /// Message template.
    message: String,
}

impl Default for RawRule {
    fn default() -> Self {
        RawRule {
            quantity: String::new(),
            room: String::new(),
            above: None,
            below: None,
            hysteresis: 0.0,
            for_s: 0,
            repeat_s: 0,
            message: "the {room} {quantity} is at {value}.".into(),
        }
    }
}

impl RawRule {
    /// The rule that applies when none is configured: the one in [`DEFAULT_CONFIG`].
    fn default_rule() -> Self {
        RawRule {
            quantity: "temperature".into(),
            above: Some(24.0),
            hysteresis: 0.5,
            for_s: 300,
            message: "the {room} temperature is at {value}. You might want to turn the AC on."
                .into(),
            ..RawRule::default()
        }
    }
}

/// Longest `for_s` and `repeat_s` accepted: a week.
const MAX_RULE_SECONDS: u64 = 7 * 24 * 3600;

/// Validates `[[alerts.rule]]` (the default rule when there is none) and `[bot] webhook_url`.
fn alerts_and_webhook(
    alerts: RawAlerts,
    bot: &RawBot,
) -> Result<(Vec<alerts::Rule>, Option<String>), ConfigError> {
    let raw_rules = alerts.rule.unwrap_or_else(|| vec![RawRule::default_rule()]);
    let mut rules = Vec::with_capacity(raw_rules.len());
    for (index, raw) in raw_rules.into_iter().enumerate() {
        // Numbered from 1, as people count the [[alerts.rule]] blocks of their file.
        let at = |field: &str, message: String| ConfigError::InvalidAt {
            key: format!("alerts.rule[{}].{field}", index + 1),
            message,
        };
        if raw.quantity.trim().is_empty() {
            return Err(at(
                "quantity",
                "missing: say which quantity the rule watches".into(),
            ));
        }
        let quantity: Quantity = raw
            .quantity
            .parse()
            .map_err(|error: InvalidValue| at("quantity", error.to_string()))?;
        let room = match raw.room.trim() {
            "" => None,
            room => Some(Room::new(room).map_err(|error| at("room", error.to_string()))?),
        };
        let threshold = match (raw.above, raw.below) {
            (Some(value), None) => ("above", alerts::Threshold::Above(value)),
            (None, Some(value)) => ("below", alerts::Threshold::Below(value)),
            (Some(_), Some(_)) => {
                return Err(at(
                    "below",
                    "give either `above` or `below`, not both".into(),
                ));
            }
            (None, None) => {
                return Err(at("above", "missing: give `above` or `below`".into()));
            }
        };
        let (field, threshold) = threshold;
        quantity
            .check(threshold.value())
            .map_err(|error| at(field, error.to_string()))?;
        if !raw.hysteresis.is_finite() || raw.hysteresis < 0.0 {
            return Err(at(
                "hysteresis",
                format!("{} is not a finite number at least 0", raw.hysteresis),
            ));
        }
        for (field, seconds) in [("for_s", raw.for_s), ("repeat_s", raw.repeat_s)] {
            if seconds > MAX_RULE_SECONDS {
                return Err(at(
                    field,
                    format!("{seconds} s is more than a week ({MAX_RULE_SECONDS} s)"),
                ));
            }
        }
        let message =
            alerts::Template::parse(&raw.message).map_err(|error| at("message", error))?;
        rules.push(alerts::Rule {
            quantity,
            room,
            trigger: alerts::Trigger {
                threshold,
                hysteresis: raw.hysteresis,
                hold_ms: raw.for_s * 1000,
                repeat_ms: (raw.repeat_s > 0).then_some(raw.repeat_s * 1000),
            },
            message,
            id: String::new(),
        });
    }
    alerts::assign_ids(&mut rules);
    let webhook_url = match bot.webhook_url.trim() {
        "" => None,
        url => Some(
            crate::chat::webhook::parse_url(url)
                .map_err(|message| invalid("bot.webhook_url", message))?
                .to_string(),
        ),
    };
    Ok((rules, webhook_url))
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
    /// A key inside an array, like `alerts.rule[2].above` or `sensors.source[2].topic`.
    #[error("{key}: {message}")]
    InvalidAt { key: String, message: String },
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
    /// `[sensors]`: the sysfs root and the configured sources.
    pub sensors: SensorsConfig,
    pub bot: BotConfig,
    pub presence: presence::Settings,
    /// The alert rules this node evaluates over its own sensors.
    pub alert_rules: Vec<alerts::Rule>,
    /// An artificial latency on every network link, for benchmarks; not in the file, never
    /// set by the command line. `None`: no delay.
    #[cfg(feature = "bench")]
    pub link_delay: Option<crate::net::LinkDelay>,
    /// The gossipsub mesh, for benchmarks that compare settings; not in the file.
    #[cfg(feature = "bench")]
    pub gossip: crate::net::GossipTuning,
    /// The Slack adapter, when enabled.
    pub slack: Option<SlackConfig>,
    /// The Matrix adapter, when enabled.
    pub matrix: Option<MatrixConfig>,
}

/// The chat bot's settings (`[bot]`).
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// A name the bot answers to besides the node's; `None` for none.
    pub name: Option<NodeName>,
    /// Where this node posts the alerts it raises; `None`: nowhere.
    pub webhook_url: Option<String>,
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
        let sensors = raw.sensors.validate()?;
        let (alert_rules, webhook_url) = alerts_and_webhook(raw.alerts, &raw.bot)?;
        let bot = BotConfig {
            webhook_url,
            name: match raw.bot.name.trim() {
                "" => None,
                bot_name if !bot_name.chars().any(char::is_alphanumeric) => {
                    return Err(invalid(
                        "bot.name",
                        format!("{bot_name:?} has no letter or digit to be called by"),
                    ));
                }
                bot_name => {
                    Some(NodeName::new(bot_name).map_err(|error| invalid("bot.name", error))?)
                }
            },
        };
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
            sensors,
            bot,
            presence: presence_settings(raw.presence)?,
            alert_rules,
            #[cfg(feature = "bench")]
            link_delay: None,
            slack: validate_slack(raw.slack)?,
            matrix: validate_matrix(raw.matrix)?,
            #[cfg(feature = "bench")]
            gossip: crate::net::GossipTuning::OFFICE,
        })
    }
}

/// Longest `presence.consider_home_s` accepted: a day. Presence is about who is in now.
const MAX_CONSIDER_HOME_S: u64 = 24 * 3600;

fn presence_settings(raw: RawPresence) -> Result<presence::Settings, ConfigError> {
    let interval = interval("presence.interval_ms", raw.interval_ms)?;
    if raw.consider_home_s == 0 || raw.consider_home_s > MAX_CONSIDER_HOME_S {
        return Err(invalid(
            "presence.consider_home_s",
            format!(
                "{} is not between 1 and {MAX_CONSIDER_HOME_S}",
                raw.consider_home_s
            ),
        ));
    }
    let consider_home = Duration::from_secs(raw.consider_home_s);
    if consider_home < interval {
        return Err(invalid(
            "presence.consider_home_s",
            format!(
                "{} s is shorter than presence.interval_ms ({} ms): devices would turn absent between two scans",
                raw.consider_home_s, raw.interval_ms
            ),
        ));
    }
    let ignore = raw
        .ignore
        .iter()
        .map(|mac| {
            mac.parse::<Mac>().map_err(|_| {
                invalid(
                    "presence.ignore",
                    format!("{mac:?} is not a MAC address like 00:1a:2b:3c:4d:5e"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let refresh_subnets: Vec<presence::Subnet> = raw
        .refresh_subnets
        .iter()
        .map(|subnet| {
            subnet
                .parse()
                .map_err(|message| invalid("presence.refresh_subnets", message))
        })
        .collect::<Result<_, _>>()?;
    let hosts: u64 = refresh_subnets
        .iter()
        .map(|subnet| u64::from(subnet.host_count()))
        .sum();
    if hosts > u64::from(presence::refresh::MAX_REFRESH_HOSTS) {
        return Err(invalid(
            "presence.refresh_subnets",
            format!(
                "{hosts} host addresses in all; at most {} may be refreshed",
                presence::refresh::MAX_REFRESH_HOSTS
            ),
        ));
    }
    Ok(presence::Settings {
        enabled: raw.enabled,
        interval,
        consider_home,
        arp_table: Some(raw.arp_table.trim())
            .filter(|path| !path.is_empty())
            .map(PathBuf::from),
        ignore,
        refresh_subnets,
    })
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

/// The `[slack]` section as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawSlack {
    /// Whether the adapter runs.
    enabled: bool,
    /// App-level token, `xapp-...`.
    app_token: String,
    /// Bot token, `xoxb-...`.
    bot_token: String,
    /// Channel id for alerts; empty for none.
    alert_channel: String,
    /// Web API base URL.
    api_url: String,
}

impl Default for RawSlack {
    fn default() -> Self {
        RawSlack {
            enabled: false,
            app_token: String::new(),
            bot_token: String::new(),
            alert_channel: String::new(),
            api_url: "https://slack.com/api".into(),
        }
    }
}

/// The `[matrix]` section as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawMatrix {
    /// Whether the adapter runs.
    enabled: bool,
    /// Client-server API base URL.
    homeserver_url: String,
    /// The bot user's access token.
    access_token: String,
    /// Room id for alerts; empty for none.
    alert_room: String,
    /// Long-poll timeout of one /sync, milliseconds.
    sync_timeout_ms: u64,
}

impl Default for RawMatrix {
    fn default() -> Self {
        RawMatrix {
            enabled: false,
            homeserver_url: String::new(),
            access_token: String::new(),
            alert_room: String::new(),
            sync_timeout_ms: 30_000,
        }
    }
}

/// The validated Slack adapter settings.
#[derive(Clone)]
pub struct SlackConfig {
    pub app_token: String,
    pub bot_token: String,
    pub alert_channel: Option<String>,
    /// Without a trailing slash.
    pub api_url: String,
}

/// The validated Matrix adapter settings.
#[derive(Clone)]
pub struct MatrixConfig {
    /// Without a trailing slash.
    pub homeserver_url: String,
    pub access_token: String,
    pub alert_room: Option<String>,
    pub sync_timeout: Duration,
}

// Tokens stay out of logs and debug prints.
impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("alert_channel", &self.alert_channel)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for MatrixConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatrixConfig")
            .field("homeserver_url", &self.homeserver_url)
            .field("alert_room", &self.alert_room)
            .field("sync_timeout", &self.sync_timeout)
            .finish_non_exhaustive()
    }
}

/// Longest /sync long-poll accepted: proxies and NAT tables drop idle connections after a few
/// minutes.
const MAX_SYNC_TIMEOUT_MS: u64 = 120_000;

fn http_url(key: &'static str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.contains(char::is_whitespace)
    {
        return Err(invalid(key, format!("{url:?} is not an http(s):// URL")));
    }
    Ok(url.to_owned())
}

fn validate_slack(raw: RawSlack) -> Result<Option<SlackConfig>, ConfigError> {
    if !raw.enabled {
        return Ok(None);
    }
    let app_token = raw.app_token.trim();
    if !app_token.starts_with("xapp-") {
        return Err(invalid(
            "slack.app_token",
            "an app-level token starting with xapp- is needed",
        ));
    }
    let bot_token = raw.bot_token.trim();
    if !bot_token.starts_with("xoxb-") {
        return Err(invalid(
            "slack.bot_token",
            "a bot token starting with xoxb- is needed",
        ));
    }
    let alert_channel =
        Some(raw.alert_channel.trim().to_owned()).filter(|channel| !channel.is_empty());
    if let Some(channel) = &alert_channel
        && !channel.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(invalid(
            "slack.alert_channel",
            format!("{channel:?} is not a channel id like C0123ABCD"),
        ));
    }
    Ok(Some(SlackConfig {
        app_token: app_token.to_owned(),
        bot_token: bot_token.to_owned(),
        alert_channel,
        api_url: http_url("slack.api_url", &raw.api_url)?,
    }))
}

fn validate_matrix(raw: RawMatrix) -> Result<Option<MatrixConfig>, ConfigError> {
    if !raw.enabled {
        return Ok(None);
    }
    let homeserver_url = http_url("matrix.homeserver_url", &raw.homeserver_url)?;
    let access_token = raw.access_token.trim();
    if access_token.is_empty() {
        return Err(invalid(
            "matrix.access_token",
            "the bot user's access token is needed",
        ));
    }
    let alert_room = Some(raw.alert_room.trim().to_owned()).filter(|room| !room.is_empty());
    if let Some(room) = &alert_room
        && (!room.starts_with('!') || !room.contains(':'))
    {
        return Err(invalid(
            "matrix.alert_room",
            format!("{room:?} is not a room id like !abc:example.org"),
        ));
    }
    if raw.sync_timeout_ms > MAX_SYNC_TIMEOUT_MS {
        return Err(invalid(
            "matrix.sync_timeout_ms",
            format!(
                "{} ms is above the maximum of {MAX_SYNC_TIMEOUT_MS} ms",
                raw.sync_timeout_ms
            ),
        ));
    }
    Ok(Some(MatrixConfig {
        homeserver_url,
        access_token: access_token.to_owned(),
        alert_room,
        sync_timeout: Duration::from_millis(raw.sync_timeout_ms),
    }))
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
        assert_eq!(config.bot.name.as_ref().map(NodeName::as_str), Some("bloo"));
        assert!(config.mdns && !config.sim && config.name.is_none() && config.api_token.is_none());
        assert_eq!(config.sensors, SensorsConfig::default());
        assert!(config.presence.enabled && config.presence.arp_table.is_none());
        assert_eq!(config.presence.interval, Duration::from_secs(15));
        assert_eq!(config.presence.consider_home, Duration::from_secs(180));
        assert!(config.presence.ignore.is_empty() && config.presence.refresh_subnets.is_empty());
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
        check_error("[bot]\nname = \"!!\"\n", "bot.name");
        check_error(
            &format!("[bot]\nname = \"{}\"\n", "b".repeat(65)),
            "bot.name",
        );
        check_error("[presence]\ninterval_ms = 10\n", "presence.interval_ms");
        check_error(
            "[presence]\nconsider_home_s = 0\n",
            "presence.consider_home_s",
        );
        check_error(
            "[presence]\nconsider_home_s = 5\ninterval_ms = 15000\n",
            "presence.consider_home_s: 5 s is shorter than presence.interval_ms",
        );
        check_error(
            "[presence]\nignore = [\"router\"]\n",
            "presence.ignore: \"router\"",
        );
        check_error(
            "[presence]\nrefresh_subnets = [\"10.0.0.0/16\"]\n",
            "presence.refresh_subnets",
        );
        check_error(
            "[presence]\nrefresh_subnets = [\"10.0.0.0/22\", \"10.1.0.0/24\"]\n",
            "1276 host addresses in all",
        );
        check_error("[presence]\nscan = true\n", "unknown field `scan`");
        check_error("[slack]\nenabled = true\n", "slack.app_token");
        check_error(
            "[slack]\nenabled = true\napp_token = \"xapp-1\"\nbot_token = \"xoxp-1\"\n",
            "slack.bot_token",
        );
        check_error("[matrix]\nenabled = true\n", "matrix.homeserver_url");
        check_error(
            "[matrix]\nenabled = true\nhomeserver_url = \"https://m.example\"\naccess_token = \"t\"\nalert_room = \"#office:m.example\"\n",
            "matrix.alert_room",
        );
    }

    #[test]
    fn a_presence_section_is_validated_into_settings() {
        let config = Config::from_toml(
            "[presence]\nenabled = false\ninterval_ms = 500\nconsider_home_s = 60\n\
             arp_table = \"/tmp/arp\"\nignore = [\"00:1A:2B:3C:4D:5E\"]\n\
             refresh_subnets = [\"192.168.1.0/24\"]\n",
        )
        .unwrap();
        let presence = config.presence;
        assert!(!presence.enabled);
        assert_eq!(presence.interval, Duration::from_millis(500));
        assert_eq!(presence.consider_home, Duration::from_secs(60));
        assert_eq!(presence.arp_table, Some(PathBuf::from("/tmp/arp")));
        assert!(
            presence
                .ignore
                .contains(&"00:1a:2b:3c:4d:5e".parse().unwrap())
        );
        assert_eq!(presence.refresh_subnets[0].to_string(), "192.168.1.0/24");
    }

    #[test]
    fn alert_rules_and_the_webhook() {
        let default = Config::from_toml("").unwrap();
        assert_eq!(default.alert_rules.len(), 1);
        assert_eq!(default.alert_rules[0].id, "temperature-above-24");
        assert_eq!(default.alert_rules[0].trigger.hold_ms, 300_000);
        assert!(default.bot.webhook_url.is_none());
        let none = Config::from_toml("[alerts]\nrule = []\n").unwrap();
        assert!(none.alert_rules.is_empty());
        let two = Config::from_toml(
            "[[alerts.rule]]\nquantity = \"co2\"\nabove = 1000\nroom = \"lab\"\n\
             [[alerts.rule]]\nquantity = \"humidity\"\nbelow = 30\nrepeat_s = 3600\n\
             [bot]\nwebhook_url = \"https://hooks.example.com/services/T0/B0/x\"\n",
        )
        .unwrap();
        assert_eq!(two.alert_rules.len(), 2);
        assert_eq!(two.alert_rules[0].room.as_ref().unwrap().as_str(), "lab");
        assert_eq!(two.alert_rules[1].trigger.repeat_ms, Some(3_600_000));
        assert_eq!(
            two.bot.webhook_url.as_deref(),
            Some("https://hooks.example.com/services/T0/B0/x")
        );
    }

    #[test]
    fn bad_alert_rules_name_the_key() {
        let ok = "[[alerts.rule]]\nquantity = \"temperature\"\nabove = 24\n";
        let cases = [
            (
                "quantity = \"warmth\"\nabove = 1\n",
                "alerts.rule[2].quantity",
            ),
            ("above = 1\n", "alerts.rule[2].quantity: missing"),
            ("quantity = \"co2\"\n", "alerts.rule[2].above: missing"),
            (
                "quantity = \"co2\"\nabove = 1\nbelow = 2\n",
                "alerts.rule[2].below",
            ),
            (
                "quantity = \"humidity\"\nabove = 140\n",
                "alerts.rule[2].above",
            ),
            ("quantity = \"co2\"\nbelow = -1\n", "alerts.rule[2].below"),
            (
                "quantity = \"co2\"\nabove = 1\nhysteresis = -1\n",
                "alerts.rule[2].hysteresis",
            ),
            (
                "quantity = \"co2\"\nabove = 1\nfor_s = 99999999\n",
                "alerts.rule[2].for_s",
            ),
            (
                "quantity = \"co2\"\nabove = 1\nrepeat_s = 99999999\n",
                "alerts.rule[2].repeat_s",
            ),
            (
                "quantity = \"co2\"\nabove = 1\nroom = \"\\u0007\"\n",
                "alerts.rule[2].room",
            ),
            (
                "quantity = \"co2\"\nabove = 1\nmessage = \"{rom}\"\n",
                "alerts.rule[2].message",
            ),
            (
                "quantity = \"co2\"\nabove = 1\ncolour = 1\n",
                "unknown field `colour`",
            ),
        ];
        for (rule, expected) in cases {
            check_error(&format!("{ok}[[alerts.rule]]\n{rule}"), expected);
        }
        check_error(
            "[bot]\nwebhook_url = \"hooks.example.com\"\n",
            "bot.webhook_url",
        );
        check_error(
            "[bot]\nwebhook_url = \"ftp://example.com/x\"\n",
            "bot.webhook_url",
        );
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
