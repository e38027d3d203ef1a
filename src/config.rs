//! The node's configuration file: parsed from TOML (unknown keys refused), the command-line
//! flags applied, and each section handed to the module that owns it for validation
//! (`net/config.rs` for `[network]`, `presence/config.rs` for `[presence]`, ...). Only the
//! `[node]` section, which is about the box itself, is validated here.
//! `officemesh config default` prints [`DEFAULT_CONFIG`].

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::{
    alerts::{self, config::RawAlerts},
    bot::config::{BotConfig, RawBot},
    chat::config::{MatrixConfig, RawMatrix, RawSlack, SlackConfig},
    history::config::{HistoryConfig, RawHistory},
    http::config::{HttpConfig, RawHttp},
    net::config::{NetworkConfig, RawNetwork},
    office::config::{RawState, StateConfig},
    presence::config::{PresenceConfig, RawPresence},
    sensors::{SensorsConfig, config::RawSensors},
    state::{NodeName, Room},
    store::config::{RawStore, StoreConfig},
    validate::InvalidKey,
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
# Where the HTTP API and dashboard listen. Loopback by default; "0.0.0.0:7878" serves the
# office LAN, where every request needs a token or a session from the sign-in page.
listen = "127.0.0.1:7878"
# The write token: writes need it (bearer, or a dashboard session signed in with it). Empty:
# OFFICEMESH_API_TOKEN if set, else a token generated into <data_dir>/api-token.
api_token = ""
# The viewer token: reads from outside this machine (the dashboard on a wall screen, a
# colleague's laptop), nothing else. Empty: a token generated into <data_dir>/viewer-token;
# `officemesh viewer-token` prints it. Reads from this machine (loopback) need no token.
viewer_token = ""
# Days a dashboard session lasts; it is renewed while in use.
session_days = 30

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

[store]
# Seconds between two saves of what the node would observe again anyway: its sensors' polled
# readings, network scans, its heartbeat (peers' readings and scans are not saved between new
# bases at all: they send them again). What the API or the chat acknowledged, alerts,
# sequence-number leases, and what people said or alerts raised on other nodes are saved at
# once (within a second for the last two), whatever this says. Each save appends only what
# changed. Longer spares the SD card; a kill -9 loses at most this much of the node's own
# history.
save_interval_s = 300
# A reading the API acknowledges (POST /api/readings) is handed to one connected peer; once
# that peer confirms it holds it, the node answers 201 without a synced write of its own (it
# saves the reading with the periodic save, and after a kill -9 gets it back from the peer).
# If no peer confirms within this many milliseconds, the node syncs it on its own disk, then
# answers. A synced write costs the SD card about 8 KiB: one device pushing every 10 s would
# cost 73 MB a day. 0: always sync on this node's disk.
peer_hold_ms = 200

[history]
# How long the reading history is kept (docs/api.md, GET /api/history). Every node keeps the
# whole office's: raw points of its own sensors for raw_days, one-minute buckets (count, min,
# max, mean, last) of every sensor for minute_days, hourly summaries for hour_days.
raw_days = 7
minute_days = 35
hour_days = 400
# How far back, in hours, a node that was off or cut off asks its peers for the minutes it
# missed. 0: never.
backfill_hours = 48

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
# How long one /sync long-poll waits for new messages (1000 to 120000).
sync_timeout_ms = 30000
"#;

/// The file as written: one raw struct per section, owned by the section's module. Every
/// field is optional; missing ones take the defaults above.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    node: RawNode,
    network: RawNetwork,
    http: RawHttp,
    bot: RawBot,
    state: RawState,
    store: RawStore,
    history: RawHistory,
    sensors: RawSensors,
    presence: RawPresence,
    alerts: RawAlerts,
    slack: RawSlack,
    matrix: RawMatrix,
}

/// `[node]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawNode {
    /// Human-readable node name; empty for the host name.
    name: String,
    /// The node's room.
    room: String,
    /// Data directory; empty for the user's data dir.
    data_dir: PathBuf,
    /// Simulated sensors.
    sim: bool,
}

impl Default for RawNode {
    fn default() -> Self {
        RawNode {
            name: String::new(),
            room: "office".into(),
            data_dir: PathBuf::new(),
            sim: false,
        }
    }
}

/// A configuration error, naming the file or the key at fault.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value a section refused, like `presence.consider_home_s` or `alerts.rule[2].above`.
    #[error(transparent)]
    Invalid(#[from] InvalidKey),
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

/// The validated configuration of one node: one typed value per section.
#[derive(Debug, Clone)]
pub struct Config {
    pub node: NodeConfig,
    pub network: NetworkConfig,
    pub http: HttpConfig,
    pub bot: BotConfig,
    pub state: StateConfig,
    pub store: StoreConfig,
    pub history: HistoryConfig,
    /// `[sensors]`: the sysfs root and the configured sources.
    pub sensors: SensorsConfig,
    pub presence: PresenceConfig,
    /// `[[alerts.rule]]`: the rules this node evaluates over its own sensors.
    pub alert_rules: Vec<alerts::Rule>,
    /// The Slack adapter, when enabled.
    pub slack: Option<SlackConfig>,
    /// The Matrix adapter, when enabled.
    pub matrix: Option<MatrixConfig>,
}

/// The validated `[node]` section: this box.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `None`: the host name, resolved at start.
    pub name: Option<NodeName>,
    pub room: Room,
    pub data_dir: PathBuf,
    /// Whether the node runs simulated sensors.
    pub sim: bool,
}

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
        apply(&mut raw, overrides);
        Ok(Config {
            node: raw.node.validate()?,
            network: raw.network.validate()?,
            http: raw.http.validate()?,
            bot: raw.bot.validate()?,
            state: raw.state.validate()?,
            store: raw.store.validate()?,
            history: raw.history.validate()?,
            sensors: raw.sensors.validate()?,
            presence: raw.presence.validate()?,
            alert_rules: raw.alerts.validate()?,
            slack: raw.slack.validate()?,
            matrix: raw.matrix.validate()?,
        })
    }
}

/// The command line's values over the file's, before anything is validated, so an invalid
/// flag is reported under the key it stands for.
fn apply(raw: &mut RawConfig, overrides: &Overrides) {
    if let Some(name) = &overrides.name {
        raw.node.name.clone_from(name);
    }
    if let Some(room) = &overrides.room {
        raw.node.room.clone_from(room);
    }
    if let Some(dir) = &overrides.data_dir {
        raw.node.data_dir.clone_from(dir);
    }
    raw.node.sim |= overrides.sim;
    if !overrides.listen.is_empty() {
        raw.network.listen.clone_from(&overrides.listen);
    }
    raw.network.peers.extend(overrides.peers.iter().cloned());
    if let Some(path) = &overrides.swarm_key_file {
        raw.network.swarm_key_file.clone_from(path);
    }
    if let Some(token) = &overrides.join {
        raw.network.join.clone_from(token);
    }
    raw.network.mdns &= !overrides.no_mdns;
    if let Some(http) = &overrides.http {
        raw.http.listen.clone_from(http);
    }
}

impl RawNode {
    fn validate(self) -> Result<NodeConfig, InvalidKey> {
        let name = match self.name.trim() {
            "" => None,
            name => Some(NodeName::new(name).map_err(|error| InvalidKey::new("node.name", error))?),
        };
        let room = Room::new(&self.room).map_err(|error| InvalidKey::new("node.room", error))?;
        let data_dir = if self.data_dir.as_os_str().is_empty() {
            default_data_dir().map_err(|message| InvalidKey::new("node.data_dir", message))?
        } else {
            self.data_dir
        };
        Ok(NodeConfig {
            name,
            room,
            data_dir,
            sim: self.sim,
        })
    }
}

fn parse(text: &str) -> Result<RawConfig, String> {
    toml::from_str(text).map_err(|error| error.to_string().trim_end().to_owned())
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_documented_default_parses_to_the_defaults() {
        let config = Config::from_toml(DEFAULT_CONFIG).expect("the default config is valid");
        let empty = Config::from_toml("").expect("an empty config is valid");
        assert_eq!(config.node.room.as_str(), "office");
        assert_eq!(
            config.network.listen,
            vec!["/ip4/0.0.0.0/tcp/7879".to_owned()]
        );
        assert_eq!(config.http.listen, "127.0.0.1:7878".parse().unwrap());
        assert_eq!(config.network.publish_interval, Duration::from_secs(1));
        assert_eq!(config.network.sync_interval, Duration::from_secs(10));
        assert_eq!(config.state.retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(config.bot.name.as_ref().map(NodeName::as_str), Some("bloo"));
        assert!(
            config.network.mdns
                && !config.node.sim
                && config.node.name.is_none()
                && config.http.api_token.is_none()
        );
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
        check_error(
            "[network]\njoin = \"om1-x\"\nswarm_key_file = \"/k\"\n",
            "network.join: a join token carries the office key",
        );
        check_error("[http]\napi_token = \"short\"\n", "http.api_token");
        check_error("[http]\nviewer_token = \"short\"\n", "http.viewer_token");
        check_error(
            "[http]\napi_token = \"the-same-token-twice\"\nviewer_token = \"the-same-token-twice\"\n",
            "http.viewer_token: must differ",
        );
        check_error("[http]\nsession_days = 0\n", "http.session_days");
        check_error("[state]\nretention_days = 0\n", "state.retention_days");
        check_error("[store]\nsave_interval_s = 0\n", "store.save_interval_s");
        check_error(
            "[store]\nsave_interval_s = 86400\n",
            "store.save_interval_s: 86400 is not between 1 and 3600",
        );
        check_error(
            "[store]\npeer_hold_ms = 60000\n",
            "store.peer_hold_ms: 60000 is not between 0 and 5000",
        );
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
        check_error(
            "[matrix]\nenabled = true\nhomeserver_url = \"https://m.example\"\naccess_token = \"t\"\nsync_timeout_ms = 0\n",
            "matrix.sync_timeout_ms: 0 ms is not between 1000 ms and 120000 ms",
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
            two.bot.webhook_url.as_ref().map(|url| url.as_str()),
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
        assert_eq!(config.node.room.as_str(), "meeting room");
        assert_eq!(config.node.name.unwrap().as_str(), "pi-1");
        assert_eq!(config.http.listen.port(), 9000);
        assert!(!config.network.mdns);
        assert_eq!(config.network.peers.len(), 1);
        assert_eq!(config.node.data_dir, dir.path().join("data"));
        let missing = Config::load(Some(&dir.path().join("nope.toml")), &Overrides::default());
        assert!(missing.unwrap_err().to_string().contains("nope.toml"));
    }

    /// Every TOML example in docs/sensors.md is a valid `[sensors]` section.
    #[test]
    fn the_documented_examples_are_valid() {
        let docs = include_str!("../docs/sensors.md");
        let mut examples = 0;
        for block in docs.split("```toml").skip(1) {
            let example = block.split("```").next().unwrap();
            let config = Config::from_toml(example).unwrap_or_else(|error| {
                panic!("docs/sensors.md example fails: {error}\n{example}")
            });
            assert!(!config.sensors.sources.is_empty() || example.contains("sysfs_root"));
            examples += 1;
        }
        assert!(examples >= 6, "only {examples} examples in docs/sensors.md");
    }

    /// The commented example in the default config, uncommented, is a valid source.
    #[test]
    fn the_default_configs_example_is_valid() {
        let example: String = DEFAULT_CONFIG
            .lines()
            .skip_while(|line| *line != "# [[sensors.source]]")
            .take_while(|line| line.starts_with('#'))
            .map(|line| format!("{}\n", line.trim_start_matches("# ")))
            .collect();
        let config =
            Config::from_toml(&example).unwrap_or_else(|error| panic!("{error}\n{example}"));
        let [source] = config.sensors.sources.as_slice() else {
            panic!("one source expected from {example}");
        };
        assert_eq!(source.id, "window");
        assert_eq!(source.offset, -0.5);
    }
}
