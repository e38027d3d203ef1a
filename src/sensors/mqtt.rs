//! Sensors people already have on an MQTT broker: Zigbee2MQTT devices (`zigbee2mqtt/<name>`,
//! a JSON object of readings), Tasmota devices (`tele/<topic>/SENSOR`, readings grouped per
//! attached sensor), and any topic carrying a plain number or a JSON document with the number
//! at a JSON pointer. The client (rumqttc) reconnects on its own; this module subscribes again
//! after every connection, because a clean session forgets subscriptions.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Measured, ReadError, Reporter, command::json_number, health::Health};
use crate::state::Quantity;

/// The largest MQTT packet accepted; sensor payloads are a few hundred bytes.
pub const MAX_PACKET_BYTES: usize = 64 * 1024;

/// Requests (subscriptions) waiting for the client's event loop.
const REQUEST_CAPACITY: usize = 16;

/// How often the client pings an idle broker, so a dead connection is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// First wait before reconnecting to a broker that went away; it doubles up to
/// [`MAX_RECONNECT_DELAY`].
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(60);

/// A source that has said nothing for this many of its intervals is reported stale.
pub const SILENT_INTERVALS: u32 = 3;

/// How a topic's payload is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// A Zigbee2MQTT device state: `{"temperature": 21.3, "humidity": 48.1, ...}`.
    Zigbee2Mqtt,
    /// A Tasmota `SENSOR` message; `sensor` picks one attached sensor (`BME280`) when there
    /// are several.
    Tasmota { sensor: Option<String> },
    /// A plain number, or a JSON document with the number at `json_pointer`.
    Plain {
        quantity: Quantity,
        unit: String,
        json_pointer: Option<String>,
    },
}

/// One subscription on one broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub topic: String,
    pub format: Format,
}

/// Zigbee2MQTT's keys and what they measure, in its units (°C, %, hPa, ppm, lx). Newer
/// releases give `illuminance` in lux; older ones gave a raw value there and lux in
/// `illuminance_lux`, which therefore wins.
const ZIGBEE2MQTT_KEYS: &[(&str, Quantity, &str)] = &[
    ("temperature", Quantity::Temperature, "°C"),
    ("humidity", Quantity::Humidity, "%"),
    ("pressure", Quantity::Pressure, "hPa"),
    ("co2", Quantity::Co2, "ppm"),
    ("illuminance_lux", Quantity::Light, "lx"),
    ("illuminance", Quantity::Light, "lx"),
    ("noise", Quantity::Sound, "dB"),
];

/// Tasmota's keys inside one sensor's object.
const TASMOTA_KEYS: &[(&str, Quantity)] = &[
    ("Temperature", Quantity::Temperature),
    ("Humidity", Quantity::Humidity),
    ("Pressure", Quantity::Pressure),
    ("CarbonDioxide", Quantity::Co2),
    ("Illuminance", Quantity::Light),
];

fn json_object(payload: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(format!("expected a JSON object, got {}", kind_of(&other))),
        Err(error) => Err(format!("not JSON: {error}")),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The readings in a Zigbee2MQTT device message. Keys it does not know (battery,
/// linkquality, ...) and `null` values (not yet reported) are skipped.
pub fn parse_zigbee2mqtt(payload: &[u8]) -> Result<Vec<Measured>, String> {
    let object = json_object(payload)?;
    let mut readings: Vec<Measured> = Vec::new();
    for &(key, quantity, unit) in ZIGBEE2MQTT_KEYS {
        let Some(value) = object.get(key).filter(|value| !value.is_null()) else {
            continue;
        };
        if readings.iter().any(|reading| reading.quantity == quantity) {
            continue;
        }
        let value = json_number(value).ok_or_else(|| format!("{key} is not a number"))?;
        readings.push(Measured {
            quantity,
            value,
            unit: unit.into(),
        });
    }
    if readings.is_empty() {
        return Err("no temperature, humidity, pressure, co2, illuminance or noise in it".into());
    }
    Ok(readings)
}

/// The readings in a Tasmota `SENSOR` message:
/// `{"Time": "...", "BME280": {"Temperature": 21.4, ...}, "TempUnit": "C", "PressureUnit": "hPa"}`.
pub fn parse_tasmota(payload: &[u8], sensor: Option<&str>) -> Result<Vec<Measured>, String> {
    let object = json_object(payload)?;
    let temperature_unit = match object.get("TempUnit").and_then(Value::as_str) {
        None | Some("C") => "°C",
        Some("F") => "°F",
        Some(other) => return Err(format!("unknown TempUnit {other:?}")),
    };
    // Tasmota can report pressure in mmHg or inHg (SetOption24/139); the office stores hPa.
    let pressure_to_hpa = match object.get("PressureUnit").and_then(Value::as_str) {
        None | Some("hPa") => 1.0,
        Some("mmHg") => 1.333_224,
        Some("inHg") => 33.863_89,
        Some(other) => return Err(format!("unknown PressureUnit {other:?}")),
    };
    let sensors: Vec<(&String, &Map<String, Value>)> = object
        .iter()
        .filter_map(|(name, value)| Some((name, value.as_object()?)))
        .filter(|(_, fields)| {
            TASMOTA_KEYS
                .iter()
                .any(|(key, _)| fields.contains_key(*key))
        })
        .collect();
    let names = || {
        sensors
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (_, fields) = match sensor {
        Some(wanted) => sensors
            .iter()
            .find(|(name, _)| name.as_str() == wanted)
            .ok_or_else(|| format!("no sensor {wanted:?} in it (it has: {})", names()))?,
        None => match sensors.as_slice() {
            [one] => one,
            [] => return Err("no sensor with readings in it".into()),
            _ => {
                return Err(format!(
                    "it has several sensors ({}); choose one with the key `sensor`",
                    names()
                ));
            }
        },
    };
    let mut readings = Vec::new();
    for &(key, quantity) in TASMOTA_KEYS {
        let Some(value) = fields.get(key).filter(|value| !value.is_null()) else {
            continue;
        };
        let value = json_number(value).ok_or_else(|| format!("{key} is not a number"))?;
        let (value, unit) = match quantity {
            Quantity::Temperature => (value, temperature_unit),
            Quantity::Pressure => (value * pressure_to_hpa, "hPa"),
            other => (value, other.unit()),
        };
        readings.push(Measured {
            quantity,
            value,
            unit: unit.into(),
        });
    }
    Ok(readings)
}

/// A plain-number payload, or the number at `json_pointer` in a JSON payload.
pub fn parse_plain(
    payload: &[u8],
    quantity: Quantity,
    unit: &str,
    json_pointer: Option<&str>,
) -> Result<Measured, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "the payload is not UTF-8".to_owned())?;
    let value = match json_pointer {
        None => {
            let trimmed = text.trim();
            trimmed
                .parse::<f64>()
                .ok()
                .filter(|value| value.is_finite())
                .ok_or_else(|| {
                    format!(
                        "{:?} is not a number",
                        trimmed.chars().take(32).collect::<String>()
                    )
                })?
        }
        Some(pointer) => super::command::parse_output(text, Some(pointer))?,
    };
    Ok(Measured {
        quantity,
        value,
        unit: unit.to_owned(),
    })
}

impl Format {
    pub fn parse(&self, payload: &[u8]) -> Result<Vec<Measured>, String> {
        match self {
            Format::Zigbee2Mqtt => parse_zigbee2mqtt(payload),
            Format::Tasmota { sensor } => parse_tasmota(payload, sensor.as_deref()),
            Format::Plain {
                quantity,
                unit,
                json_pointer,
            } => parse_plain(payload, *quantity, unit, json_pointer.as_deref()).map(|m| vec![m]),
        }
    }
}

/// A client id no other node of the office uses: a broker disconnects the older of two
/// clients with one id, and two nodes would take turns kicking each other off.
fn client_id() -> String {
    let mut bytes = [0u8; 6];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness, the process id still separates the nodes of one machine.
        bytes[..4].copy_from_slice(&std::process::id().to_be_bytes());
    }
    let suffix: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("officemesh-{suffix}")
}

impl Subscription {
    /// Listens until `shutdown`, reporting every message on the topic. A broker that goes
    /// away is retried with backoff; one warning when it goes, one line when it is back.
    pub(super) async fn run(
        &self,
        reporter: &mut Reporter,
        interval: Duration,
        shutdown: &CancellationToken,
    ) {
        let mut options = MqttOptions::new(client_id(), self.host.clone(), self.port);
        options.set_keep_alive(KEEP_ALIVE);
        options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        if let Some(username) = &self.username {
            options.set_credentials(username.clone(), self.password.clone().unwrap_or_default());
        }
        let (client, mut events) = AsyncClient::new(options, REQUEST_CAPACITY);
        let broker = format!("{}:{}", self.host, self.port);
        let mut connection = Health::default();
        let mut last_message = Instant::now();
        let mut stale_check = tokio::time::interval(interval);
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                _ = stale_check.tick() => {
                    reporter.silence(last_message.elapsed(), interval * SILENT_INTERVALS);
                    continue;
                }
                event = events.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if connection.success().is_some() {
                        info!(source = %reporter.name(), %broker, "connected to the MQTT broker again");
                    }
                    if let Err(error) = client.try_subscribe(self.topic.clone(), QoS::AtMostOnce) {
                        warn!(source = %reporter.name(), %error, topic = %self.topic, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) if publish.topic == self.topic => {
                    last_message = Instant::now();
                    let result =
                        self.format
                            .parse(&publish.payload)
                            .map_err(|message| ReadError::Format {
                                path: self.topic.clone(),
                                message,
                            });
                    if reporter.report(result).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    if connection.failure(&error.to_string()).is_some() {
                        warn!(source = %reporter.name(), %broker, %error, "cannot reach the MQTT broker; retrying with backoff");
                    }
                    let delay = connection
                        .next_delay(RECONNECT_DELAY)
                        .min(MAX_RECONNECT_DELAY);
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(readings: &[Measured]) -> Vec<(Quantity, f64, &str)> {
        readings
            .iter()
            .map(|m| (m.quantity, m.value, m.unit.as_str()))
            .collect()
    }

    #[test]
    fn zigbee2mqtt_device_messages() {
        // An Aqara WSDCGQ11LM as Zigbee2MQTT publishes it.
        let aqara = br#"{"battery":100,"humidity":48.27,"linkquality":156,"power_outage_count":3,"pressure":1012.4,"temperature":21.84,"voltage":3005}"#;
        assert_eq!(
            values(&parse_zigbee2mqtt(aqara).unwrap()),
            vec![
                (Quantity::Temperature, 21.84, "°C"),
                (Quantity::Humidity, 48.27, "%"),
                (Quantity::Pressure, 1012.4, "hPa"),
            ]
        );
        let light = br#"{"illuminance":19035,"illuminance_lux":80,"occupancy":true}"#;
        assert_eq!(
            values(&parse_zigbee2mqtt(light).unwrap()),
            vec![(Quantity::Light, 80.0, "lx")]
        );
        let co2 = br#"{"co2":612,"temperature":null}"#;
        assert_eq!(
            values(&parse_zigbee2mqtt(co2).unwrap()),
            vec![(Quantity::Co2, 612.0, "ppm")]
        );
        assert!(
            parse_zigbee2mqtt(br#"{"battery":90}"#)
                .unwrap_err()
                .contains("no temperature")
        );
        assert!(
            parse_zigbee2mqtt(br#"{"temperature":"warm"}"#)
                .unwrap_err()
                .contains("temperature is not a number")
        );
        assert!(parse_zigbee2mqtt(b"21.5").unwrap_err().contains("a number"));
        assert!(parse_zigbee2mqtt(b"{").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn tasmota_sensor_messages() {
        let bme = br#"{"Time":"2026-03-01T10:00:00","BME280":{"Temperature":22.1,"Humidity":41.5,"DewPoint":8.4,"Pressure":1009.8},"PressureUnit":"hPa","TempUnit":"C"}"#;
        assert_eq!(
            values(&parse_tasmota(bme, None).unwrap()),
            vec![
                (Quantity::Temperature, 22.1, "°C"),
                (Quantity::Humidity, 41.5, "%"),
                (Quantity::Pressure, 1009.8, "hPa"),
            ]
        );
        let fahrenheit = br#"{"Time":"2026-03-01T10:00:00","AM2301":{"Temperature":71.6,"Humidity":40.0},"TempUnit":"F"}"#;
        assert_eq!(
            values(&parse_tasmota(fahrenheit, None).unwrap())[0],
            (Quantity::Temperature, 71.6, "°F")
        );
        let mmhg = br#"{"BMP280":{"Pressure":760.0},"PressureUnit":"mmHg"}"#;
        let pressure = parse_tasmota(mmhg, None).unwrap()[0].value;
        assert!((pressure - 1013.25).abs() < 0.01, "{pressure}");
        let two = br#"{"Time":"2026-03-01T10:00:00","DS18B20":{"Id":"01144A0CB6AA","Temperature":19.5},"SCD30":{"CarbonDioxide":640,"eCO2":0,"Temperature":23.0,"Humidity":39.0},"TempUnit":"C"}"#;
        assert!(
            parse_tasmota(two, None)
                .unwrap_err()
                .contains("several sensors (DS18B20, SCD30)")
        );
        assert_eq!(
            values(&parse_tasmota(two, Some("SCD30")).unwrap()),
            vec![
                (Quantity::Temperature, 23.0, "°C"),
                (Quantity::Humidity, 39.0, "%"),
                (Quantity::Co2, 640.0, "ppm"),
            ]
        );
        assert!(
            parse_tasmota(two, Some("BME280"))
                .unwrap_err()
                .contains("no sensor \"BME280\"")
        );
        assert!(
            parse_tasmota(br#"{"BME280":{"Temperature":1},"TempUnit":"R"}"#, None)
                .unwrap_err()
                .contains("TempUnit")
        );
    }

    #[test]
    fn plain_topics() {
        let check = |payload: &[u8], pointer: Option<&str>| {
            parse_plain(payload, Quantity::Co2, "ppm", pointer).map(|m| m.value)
        };
        assert_eq!(check(b"612\n", None), Ok(612.0));
        assert_eq!(
            check(br#"{"co2": {"value": 700}}"#, Some("/co2/value")),
            Ok(700.0)
        );
        assert!(check(b"high", None).unwrap_err().contains("not a number"));
        assert!(check(b"NaN", None).is_err());
        assert!(check(&[0xff, 0xfe], None).unwrap_err().contains("UTF-8"));
    }
}
