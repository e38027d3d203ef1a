//! The `[sensors]` section of the config file: where sysfs is, and the list of sources
//! (`[[sensors.source]]`), validated into [`Source`]s. Errors name the key:
//! `sensors.source[2].interval_ms` is the `interval_ms` of the second source (counted from 1).
//! `docs/sensors.md` documents every key with an example per kind; a test validates them.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

use super::{Kind, Source, command, hwmon, iio, mqtt, w1};
use crate::{
    state::{Quantity, Room, SensorId},
    validate::InvalidKey,
};

/// Where hwmon, IIO and 1-wire sensors are read from unless configured otherwise.
pub const DEFAULT_SYSFS_ROOT: &str = "/sys";

/// Fastest read interval accepted: sensors do not change faster, SD cards and buses suffer.
pub const MIN_INTERVAL_MS: u64 = 100;

/// Slowest interval accepted: a day.
pub const MAX_INTERVAL_MS: u64 = 86_400_000;

/// A command's default time to answer.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 10_000;

/// The standard MQTT port.
pub const DEFAULT_MQTT_PORT: u16 = 1883;

/// The longest suffix appended to an id for a multi-quantity source (`/temperature`).
const LONGEST_QUANTITY_SUFFIX: usize = "/temperature".len();

/// The default interval of each kind: sysfs files are cheap; a 1-wire conversion holds the
/// bus for 750 ms; a command may be costly; an MQTT device reports when it likes.
pub fn default_interval(kind: &str) -> Duration {
    Duration::from_millis(match kind {
        "hwmon" | "iio" => 10_000,
        "w1" => 30_000,
        "command" => 60_000,
        _ => 300_000,
    })
}

/// `[sensors]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawSensors {
    /// Where sysfs is mounted.
    sysfs_root: String,
    /// Detect sensors under sysfs_root when no source is listed.
    auto_detect: bool,
    /// The configured sources; none: auto-detect.
    source: Vec<RawSource>,
}

impl Default for RawSensors {
    fn default() -> Self {
        RawSensors {
            sysfs_root: DEFAULT_SYSFS_ROOT.into(),
            auto_detect: true,
            source: Vec::new(),
        }
    }
}

/// One `[[sensors.source]]` as written. Which keys apply depends on `kind`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawSource {
    /// hwmon, iio, w1, command, zigbee2mqtt, tasmota or mqtt.
    kind: String,
    /// The sensor id its readings are written under.
    id: String,
    /// The room; empty for the node's room.
    room: String,
    /// Read (or expected report) interval, milliseconds.
    interval_ms: Option<u64>,
    /// Calibration added to every value, in the quantity's canonical unit.
    offset: f64,
    /// What is measured, when the kind cannot tell; for a multi-quantity device, the one
    /// quantity to take.
    quantity: String,
    /// The unit of the values (command, mqtt); empty for the canonical unit.
    unit: String,
    /// hwmon chip name, IIO device name, 1-wire device id, Zigbee2MQTT friendly name or
    /// Tasmota topic.
    device: String,
    /// hwmon or IIO channel.
    channel: String,
    /// The program and its arguments (command).
    command: Vec<String>,
    /// How long a command may run, milliseconds.
    timeout_ms: Option<u64>,
    /// A JSON pointer to the number (command, mqtt).
    json_pointer: String,
    /// host:port of the MQTT broker.
    broker: String,
    /// The MQTT topic, when not the kind's default.
    topic: String,
    /// The Tasmota sensor to read when a device has several.
    sensor: String,
    /// MQTT user name; empty for none.
    username: String,
    /// MQTT password.
    password: String,
}

/// `[sensors]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorsConfig {
    pub sysfs_root: PathBuf,
    /// Detect sensors under `sysfs_root` when `sources` is empty.
    pub auto_detect: bool,
    /// Empty: auto-detect under `sysfs_root`, if `auto_detect`.
    pub sources: Vec<Source>,
}

impl Default for SensorsConfig {
    fn default() -> Self {
        SensorsConfig {
            sysfs_root: PathBuf::from(DEFAULT_SYSFS_ROOT),
            auto_detect: true,
            sources: Vec::new(),
        }
    }
}

impl RawSensors {
    pub fn validate(self) -> Result<SensorsConfig, InvalidKey> {
        let sysfs_root = match self.sysfs_root.trim() {
            "" => {
                return Err(InvalidKey {
                    key: "sensors.sysfs_root".into(),
                    message: "is empty (the default is /sys)".into(),
                });
            }
            root => PathBuf::from(root),
        };
        let mut sources: Vec<Source> = Vec::new();
        for (index, raw) in self.source.into_iter().enumerate() {
            let number = index + 1;
            let source = raw.validate(number)?;
            if sources.iter().any(|other| other.id == source.id) {
                return Err(InvalidKey {
                    key: format!("sensors.source[{number}].id"),
                    message: format!(
                        "{:?} is already the id of another source; ids must be unique",
                        source.id
                    ),
                });
            }
            sources.push(source);
        }
        Ok(SensorsConfig {
            sysfs_root,
            auto_detect: self.auto_detect,
            sources,
        })
    }
}

/// The keys each kind takes besides the common ones (kind, id, room, interval_ms, offset,
/// quantity).
fn kind_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "hwmon" | "iio" => &["device", "channel"],
        "w1" => &["device"],
        "command" => &["command", "timeout_ms", "json_pointer", "unit"],
        "zigbee2mqtt" => &["broker", "device", "topic", "username", "password"],
        "tasmota" => &[
            "broker", "device", "topic", "sensor", "username", "password",
        ],
        "mqtt" => &[
            "broker",
            "topic",
            "json_pointer",
            "unit",
            "username",
            "password",
        ],
        _ => return None,
    })
}

impl RawSource {
    /// The kind-specific keys that are set.
    fn set_keys(&self) -> Vec<&'static str> {
        let texts = [
            ("unit", &self.unit),
            ("device", &self.device),
            ("channel", &self.channel),
            ("json_pointer", &self.json_pointer),
            ("broker", &self.broker),
            ("topic", &self.topic),
            ("sensor", &self.sensor),
            ("username", &self.username),
            ("password", &self.password),
        ];
        let mut set: Vec<&'static str> = texts
            .iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(key, _)| *key)
            .collect();
        if !self.command.is_empty() {
            set.push("command");
        }
        if self.timeout_ms.is_some() {
            set.push("timeout_ms");
        }
        set
    }

    fn validate(self, number: usize) -> Result<Source, InvalidKey> {
        let invalid = |key: &str, message: String| InvalidKey {
            key: format!("sensors.source[{number}].{key}"),
            message,
        };
        let kind = self.kind.trim().to_owned();
        let Some(allowed) = kind_keys(&kind) else {
            return Err(invalid(
                "kind",
                format!(
                    "{:?} is not one of hwmon, iio, w1, command, zigbee2mqtt, tasmota, mqtt",
                    self.kind
                ),
            ));
        };
        if let Some(key) = self
            .set_keys()
            .into_iter()
            .find(|key| !allowed.contains(key))
        {
            return Err(invalid(key, format!("is not a key of {kind} sources")));
        }
        let required = |key: &str, value: &str| -> Result<String, InvalidKey> {
            match value.trim() {
                "" => Err(invalid(key, format!("is required for {kind} sources"))),
                value => Ok(value.to_owned()),
            }
        };
        let room = match self.room.trim() {
            "" => None,
            room => Some(Room::new(room).map_err(|error| invalid("room", error.to_string()))?),
        };
        let interval_ms = self
            .interval_ms
            .unwrap_or(default_interval(&kind).as_millis() as u64);
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
            return Err(invalid(
                "interval_ms",
                format!("{interval_ms} is not between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS}"),
            ));
        }
        let quantity = match self.quantity.trim() {
            "" => None,
            text => Some(
                text.parse::<Quantity>()
                    .map_err(|error| invalid("quantity", error.to_string()))?,
            ),
        };
        // A quantity's whole range is the largest correction that could make sense.
        let widest = quantity.map_or(f64::INFINITY, |q| q.range().end() - q.range().start());
        if !self.offset.is_finite() || self.offset.abs() > widest {
            return Err(invalid(
                "offset",
                format!("{} is not a plausible calibration", self.offset),
            ));
        }
        let json_pointer = match self.json_pointer.trim() {
            "" => None,
            pointer if pointer.starts_with('/') => Some(pointer.to_owned()),
            pointer => {
                return Err(invalid(
                    "json_pointer",
                    format!("{pointer:?} is not a JSON pointer like /sensor/temperature"),
                ));
            }
        };
        let unit = self.unit.trim().to_owned();
        let needs_quantity = || {
            quantity.ok_or_else(|| {
                invalid(
                    "quantity",
                    format!("is required for {kind} sources (temperature, humidity, sound, co2, light, pressure)"),
                )
            })
        };
        let check_unit = |quantity: Quantity| -> Result<(), InvalidKey> {
            match quantity.normalize(*quantity.range().start(), &unit) {
                Err(error @ crate::state::InvalidValue::UnknownUnit { .. }) => {
                    Err(invalid("unit", error.to_string()))
                }
                _ => Ok(()),
            }
        };
        let inferred = |found: Option<Quantity>, what: &str| -> Result<(), InvalidKey> {
            match (found, quantity) {
                (None, _) => Err(invalid(
                    "channel",
                    format!("{:?} is not a {what} channel", self.channel),
                )),
                (Some(found), Some(given)) if found != given => Err(invalid(
                    "quantity",
                    format!("the channel measures {found}, not {given}"),
                )),
                _ => Ok(()),
            }
        };
        let (default_id, kind_value) = match kind.as_str() {
            "hwmon" => {
                let channel = hwmon::Channel {
                    chip: required("device", &self.device)?,
                    channel: required("channel", &self.channel)?,
                };
                inferred(channel.quantity(), "temp<N> or humidity<N>")?;
                (
                    format!("{}/{}", channel.chip, channel.channel),
                    Kind::Hwmon(channel),
                )
            }
            "iio" => {
                let channel = iio::Channel {
                    device: required("device", &self.device)?,
                    channel: required("channel", &self.channel)?,
                };
                inferred(
                    channel.quantity(),
                    "temp, humidityrelative, pressure or illuminance",
                )?;
                (
                    format!("{}/{}", channel.device, channel.channel),
                    Kind::Iio(channel),
                )
            }
            "w1" => {
                let device = required("device", &self.device)?;
                if quantity.is_some_and(|q| q != Quantity::Temperature) {
                    return Err(invalid("quantity", "a DS18B20 measures temperature".into()));
                }
                (device.clone(), Kind::W1(w1::Probe { device }))
            }
            "command" => {
                let quantity = needs_quantity()?;
                check_unit(quantity)?;
                if self
                    .command
                    .first()
                    .is_none_or(|program| program.trim().is_empty())
                {
                    return Err(invalid(
                        "command",
                        "is required for command sources: [\"/path/to/program\", \"arg\", ...]"
                            .into(),
                    ));
                }
                let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_COMMAND_TIMEOUT_MS);
                if timeout_ms < MIN_INTERVAL_MS || timeout_ms > interval_ms.max(MIN_INTERVAL_MS) {
                    return Err(invalid(
                        "timeout_ms",
                        format!(
                            "{timeout_ms} is not between {MIN_INTERVAL_MS} and the interval ({interval_ms})"
                        ),
                    ));
                }
                (
                    String::new(),
                    Kind::Command(command::Command {
                        argv: self.command.clone(),
                        quantity,
                        unit: unit.clone(),
                        json_pointer: json_pointer.clone(),
                        timeout: Duration::from_millis(timeout_ms),
                    }),
                )
            }
            _ => {
                let (host, port) = broker(&required("broker", &self.broker)?)
                    .map_err(|message| invalid("broker", message))?;
                let (topic, format, default_id) = match kind.as_str() {
                    "zigbee2mqtt" => {
                        let device = required("device", &self.device)?;
                        (
                            format!("zigbee2mqtt/{device}"),
                            mqtt::Format::Zigbee2Mqtt,
                            device,
                        )
                    }
                    "tasmota" => {
                        let device = required("device", &self.device)?;
                        let sensor = Some(self.sensor.trim().to_owned()).filter(|s| !s.is_empty());
                        (
                            format!("tele/{device}/SENSOR"),
                            mqtt::Format::Tasmota { sensor },
                            device,
                        )
                    }
                    _ => {
                        let quantity = needs_quantity()?;
                        check_unit(quantity)?;
                        (
                            required("topic", &self.topic)?,
                            mqtt::Format::Plain {
                                quantity,
                                unit: unit.clone(),
                                json_pointer: json_pointer.clone(),
                            },
                            String::new(),
                        )
                    }
                };
                let topic = match self.topic.trim() {
                    "" => topic,
                    given => given.to_owned(),
                };
                if topic.contains(['+', '#']) {
                    return Err(invalid(
                        "topic",
                        format!("{topic:?}: wildcards would mix several devices under one id"),
                    ));
                }
                let username = Some(self.username.trim().to_owned()).filter(|u| !u.is_empty());
                if username.is_none() && !self.password.is_empty() {
                    return Err(invalid("password", "is set without a username".into()));
                }
                (
                    default_id,
                    Kind::Mqtt(mqtt::Subscription {
                        host,
                        port,
                        username,
                        password: Some(self.password.clone()).filter(|p| !p.is_empty()),
                        topic,
                        format,
                    }),
                )
            }
        };
        let id = match (self.id.trim(), default_id.as_str()) {
            ("", "") => return Err(invalid("id", format!("is required for {kind} sources"))),
            ("", default) => default.to_owned(),
            (id, _) => id.to_owned(),
        };
        let mut source = Source {
            id,
            room,
            interval: Duration::from_millis(interval_ms),
            offset: self.offset,
            only: quantity,
            kind: kind_value,
        };
        let multi_quantity = matches!(
            &source.kind,
            Kind::Mqtt(mqtt::Subscription {
                format: mqtt::Format::Zigbee2Mqtt | mqtt::Format::Tasmota { .. },
                ..
            })
        );
        if !multi_quantity {
            // Single-quantity kinds know their quantity; `only` is for multi-quantity devices.
            source.only = None;
        }
        let longest = if source.reports_several() {
            format!("{}{}", source.id, "x".repeat(LONGEST_QUANTITY_SUFFIX))
        } else {
            source.id.clone()
        };
        SensorId::new(&longest).map_err(|error| invalid("id", error.to_string()))?;
        if self.offset != 0.0 && source.reports_several() {
            return Err(invalid(
                "offset",
                "applies to one quantity: set `quantity` to the one it corrects".into(),
            ));
        }
        Ok(source)
    }
}

/// Parses `host`, `host:port` or `mqtt://host:port`.
fn broker(text: &str) -> Result<(String, u16), String> {
    let address = text.strip_prefix("mqtt://").unwrap_or(text);
    if address.contains('/') || address.is_empty() {
        return Err(format!(
            "{text:?} is not a broker address like 192.0.2.10:1883"
        ));
    }
    // An IPv6 address is written in brackets: [2001:db8::1]:1883.
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, Some(port)),
        _ => (address, None),
    };
    let port = match port {
        None => DEFAULT_MQTT_PORT,
        Some(port) => port
            .parse()
            .map_err(|_| format!("{text:?}: {port:?} is not a port"))?,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SensorsConfig, String> {
        let raw: RawSensors = toml::from_str(text).map_err(|error| error.to_string())?;
        raw.validate().map_err(|error| error.to_string())
    }

    fn check_error(text: &str, expected: &str) {
        match parse(text) {
            Ok(config) => panic!("{text} was accepted: {config:?}"),
            Err(error) => assert!(error.contains(expected), "{error:?} lacks {expected:?}"),
        }
    }

    #[test]
    fn sources_are_validated_into_kinds() {
        let config = parse(
            r#"
            sysfs_root = "/tmp/fake-sys"
            [[source]]
            kind = "hwmon"
            device = "sht3x"
            channel = "humidity1"
            room = "kitchen"
            offset = -2.5
            [[source]]
            kind = "zigbee2mqtt"
            broker = "mqtt://192.0.2.10"
            device = "desk sensor"
            [[source]]
            kind = "mqtt"
            broker = "[2001:db8::1]:8883"
            topic = "office/co2"
            quantity = "co2"
            id = "co2-meter"
            interval_ms = 60000
            "#,
        )
        .unwrap();
        assert_eq!(config.sysfs_root, PathBuf::from("/tmp/fake-sys"));
        let [hwmon, zigbee, plain] = config.sources.as_slice() else {
            panic!("three sources expected: {:?}", config.sources);
        };
        assert_eq!(hwmon.id, "sht3x/humidity1");
        assert_eq!(hwmon.room.as_ref().unwrap().as_str(), "kitchen");
        assert_eq!(hwmon.offset, -2.5);
        assert_eq!(hwmon.interval, Duration::from_secs(10));
        assert!(
            matches!(&zigbee.kind, Kind::Mqtt(s) if s.topic == "zigbee2mqtt/desk sensor" && s.host == "192.0.2.10" && s.port == 1883)
        );
        assert_eq!(zigbee.id, "desk sensor");
        assert!(zigbee.reports_several());
        assert_eq!(
            zigbee.sensor_id(Quantity::Humidity).unwrap().as_str(),
            "desk sensor/humidity"
        );
        assert!(matches!(&plain.kind, Kind::Mqtt(s) if s.host == "2001:db8::1" && s.port == 8883));
        assert_eq!(
            plain.sensor_id(Quantity::Co2).unwrap().as_str(),
            "co2-meter"
        );
        assert_eq!(plain.interval, Duration::from_secs(60));
    }

    #[test]
    fn errors_name_the_source_and_key() {
        check_error("sysfs_root = \"\"", "sensors.sysfs_root");
        check_error(
            "[[source]]\nkind = \"thermometer\"",
            "sensors.source[1].kind",
        );
        check_error(
            "[[source]]\nkind = \"w1\"\ndevice = \"28-0000\"\n[[source]]\nkind = \"hwmon\"\ndevice = \"x\"\nchannel = \"in0\"",
            "sensors.source[2].channel: \"in0\" is not a temp<N> or humidity<N> channel",
        );
        check_error(
            "[[source]]\nkind = \"hwmon\"\ndevice = \"x\"\nchannel = \"temp1\"\nquantity = \"humidity\"",
            "sensors.source[1].quantity: the channel measures temperature",
        );
        check_error(
            "[[source]]\nkind = \"w1\"\ndevice = \"28-0000\"\ninterval_ms = 10",
            "sensors.source[1].interval_ms: 10 is not between 100",
        );
        check_error(
            "[[source]]\nkind = \"w1\"\ndevice = \"28-0000\"\ntopic = \"x\"",
            "sensors.source[1].topic: is not a key of w1 sources",
        );
        check_error(
            "[[source]]\nkind = \"w1\"",
            "sensors.source[1].device: is required",
        );
        check_error(
            "[[source]]\nkind = \"command\"\ncommand = [\"/bin/true\"]\nid = \"x\"",
            "sensors.source[1].quantity: is required",
        );
        check_error(
            "[[source]]\nkind = \"command\"\ncommand = [\"/bin/true\"]\nquantity = \"temperature\"",
            "sensors.source[1].id: is required",
        );
        check_error(
            "[[source]]\nkind = \"command\"\ncommand = [\"/bin/true\"]\nquantity = \"co2\"\nunit = \"%\"\nid = \"x\"",
            "sensors.source[1].unit: unknown unit",
        );
        check_error(
            "[[source]]\nkind = \"command\"\ncommand = []\nquantity = \"co2\"\nid = \"x\"",
            "sensors.source[1].command: is required",
        );
        check_error(
            "[[source]]\nkind = \"command\"\ncommand = [\"x\"]\nquantity = \"co2\"\nid = \"x\"\ninterval_ms = 1000\ntimeout_ms = 5000",
            "sensors.source[1].timeout_ms",
        );
        check_error(
            "[[source]]\nkind = \"mqtt\"\nbroker = \"h\"\ntopic = \"a/#\"\nquantity = \"co2\"\nid = \"x\"",
            "sensors.source[1].topic",
        );
        check_error(
            "[[source]]\nkind = \"mqtt\"\nbroker = \"h:99999\"\ntopic = \"a\"\nquantity = \"co2\"\nid = \"x\"",
            "sensors.source[1].broker",
        );
        check_error(
            "[[source]]\nkind = \"zigbee2mqtt\"\nbroker = \"h\"\ndevice = \"d\"\noffset = 1.0",
            "sensors.source[1].offset: applies to one quantity",
        );
        check_error(
            "[[source]]\nkind = \"w1\"\ndevice = \"28-0000\"\nquantity = \"temperature\"\noffset = 500.0",
            "sensors.source[1].offset",
        );
        check_error(
            "[[source]]\nkind = \"w1\"\ndevice = \"28-a\"\nid = \"same\"\n[[source]]\nkind = \"w1\"\ndevice = \"28-b\"\nid = \"same\"",
            "sensors.source[2].id: \"same\" is already the id",
        );
        check_error(
            &format!("[[source]]\nkind = \"w1\"\ndevice = \"{}\"", "2".repeat(70)),
            "sensors.source[1].id",
        );
        check_error(
            "[[source]]\nkind = \"w1\"\ndevice = \"d\"\nspeed = 3",
            "unknown field `speed`",
        );
    }

    #[test]
    fn broker_addresses() {
        assert_eq!(broker("localhost"), Ok(("localhost".into(), 1883)));
        assert_eq!(
            broker("mqtt://10.0.0.2:1884"),
            Ok(("10.0.0.2".into(), 1884))
        );
        assert_eq!(broker("[::1]:1883"), Ok(("::1".into(), 1883)));
        assert!(broker("mqtt://h/x").is_err());
        assert!(broker(":1883").is_err());
    }
}
