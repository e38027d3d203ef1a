//! The validated values the office state is made of: names, quantities with their units and
//! physical ranges, MAC addresses. Invalid values cannot be constructed, so every entry in a
//! replica is valid; [`InvalidValue`] says what was wrong.

use std::{fmt, net::IpAddr, ops::RangeInclusive, str::FromStr};

use thiserror::Error;

/// Longest room, sensor, person or node name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Longest alert message accepted, in bytes.
pub const MAX_MESSAGE_LEN: usize = 512;

/// Longest software version string accepted, in bytes.
pub const MAX_VERSION_LEN: usize = 32;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum InvalidValue {
    #[error("{field} {value:?} is not valid: {reason}")]
    Text {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("unknown quantity {0:?} (known: temperature, humidity, sound, co2, light, pressure)")]
    UnknownQuantity(String),
    #[error("unknown unit {unit:?} for {quantity} (use {expected})")]
    UnknownUnit {
        quantity: Quantity,
        unit: String,
        expected: &'static str,
    },
    #[error("{quantity} value {value} is not a finite number")]
    NotFinite { quantity: Quantity, value: f64 },
    #[error("{quantity} value {value} {unit} is outside the possible range {min}..={max} {unit}")]
    OutOfRange {
        quantity: Quantity,
        value: f64,
        unit: &'static str,
        min: f64,
        max: f64,
    },
    #[error("invalid MAC address {0:?} (expected six hex octets like ff:ff:ff:ff:ff:ff)")]
    Mac(String),
}

/// Checks a human-readable name: trimmed, non-empty, bounded, no control characters.
fn checked_text(field: &'static str, value: &str, max_len: usize) -> Result<String, InvalidValue> {
    let trimmed = value.trim();
    let reason = if trimmed.is_empty() {
        Some("it is empty")
    } else if trimmed.len() > max_len {
        Some("it is too long")
    } else if trimmed.chars().any(char::is_control) {
        Some("it contains control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InvalidValue::Text {
            field,
            value: value.chars().take(max_len + 8).collect(),
            reason,
        }),
        None => Ok(trimmed.to_owned()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: &str) -> Result<Self, InvalidValue> {
                checked_text($field, value, $max).map($name)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A room of the office, as people name it ("meeting room", "open space").
    Room, "room", MAX_NAME_LEN
);
name_type!(
    /// A sensor's id, unique within the node that owns it ("desk-1", "hwmon0/temp1").
    SensorId, "sensor", MAX_NAME_LEN
);
name_type!(
    /// A person, as they name themselves in chat.
    Person, "person", MAX_NAME_LEN
);
name_type!(
    /// A human-readable node name.
    NodeName, "name", MAX_NAME_LEN
);
name_type!(
    /// Free text: an alert message.
    Message, "message", MAX_MESSAGE_LEN
);
name_type!(
    /// A software version string.
    Version, "version", MAX_VERSION_LEN
);
name_type!(
    /// A local alert identifier, unique within the node that raises it.
    AlertName, "alert id", MAX_NAME_LEN
);

/// What a sensor measures. Each quantity has one canonical unit that values are stored in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Quantity {
    Temperature,
    Humidity,
    Sound,
    Co2,
    Light,
    Pressure,
}

impl Quantity {
    pub const ALL: [Quantity; 6] = [
        Quantity::Temperature,
        Quantity::Humidity,
        Quantity::Sound,
        Quantity::Co2,
        Quantity::Light,
        Quantity::Pressure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Quantity::Temperature => "temperature",
            Quantity::Humidity => "humidity",
            Quantity::Sound => "sound",
            Quantity::Co2 => "co2",
            Quantity::Light => "light",
            Quantity::Pressure => "pressure",
        }
    }

    /// The canonical unit values are stored and shown in.
    pub fn unit(self) -> &'static str {
        match self {
            Quantity::Temperature => "°C",
            Quantity::Humidity => "%",
            Quantity::Sound => "dB",
            Quantity::Co2 => "ppm",
            Quantity::Light => "lx",
            Quantity::Pressure => "hPa",
        }
    }

    /// The values that can physically occur indoors or that real sensors can report, in the
    /// canonical unit. Anything outside is a broken sensor or a typo.
    pub fn range(self) -> RangeInclusive<f64> {
        match self {
            // Below the coldest and above the hottest rating of common sensors (DS18B20: -55..125).
            Quantity::Temperature => -60.0..=125.0,
            Quantity::Humidity => 0.0..=100.0,
            // 194 dB is the loudest undistorted sound in air.
            Quantity::Sound => 0.0..=194.0,
            Quantity::Co2 => 0.0..=100_000.0,
            // Direct sunlight is about 120 000 lx.
            Quantity::Light => 0.0..=200_000.0,
            Quantity::Pressure => 300.0..=1_100.0,
        }
    }

    /// Converts `value` in `unit` to the canonical unit, or says why it cannot. An empty unit
    /// means the canonical one.
    pub fn normalize(self, value: f64, unit: &str) -> Result<f64, InvalidValue> {
        let unit_key = unit.trim().to_ascii_lowercase();
        let converted = match (self, unit_key.as_str()) {
            (_, "") => Some(value),
            (Quantity::Temperature, "°c" | "c" | "degc" | "celsius" | "℃") => Some(value),
            (Quantity::Temperature, "°f" | "f" | "degf" | "fahrenheit" | "℉") => {
                Some((value - 32.0) * 5.0 / 9.0)
            }
            (Quantity::Temperature, "k" | "kelvin") => Some(value - 273.15),
            (Quantity::Humidity, "%" | "%rh" | "rh" | "percent") => Some(value),
            (Quantity::Sound, "db" | "dba" | "db(a)" | "db spl") => Some(value),
            (Quantity::Co2, "ppm") => Some(value),
            (Quantity::Light, "lx" | "lux") => Some(value),
            (Quantity::Pressure, "hpa" | "mbar" | "millibar") => Some(value),
            (Quantity::Pressure, "pa") => Some(value / 100.0),
            (Quantity::Pressure, "kpa") => Some(value * 10.0),
            _ => None,
        };
        let Some(converted) = converted else {
            return Err(InvalidValue::UnknownUnit {
                quantity: self,
                unit: unit.chars().take(16).collect(),
                expected: self.unit(),
            });
        };
        self.check(converted)
    }

    /// Checks a value already in the canonical unit.
    pub fn check(self, value: f64) -> Result<f64, InvalidValue> {
        if !value.is_finite() {
            return Err(InvalidValue::NotFinite {
                quantity: self,
                value,
            });
        }
        let range = self.range();
        if !range.contains(&value) {
            return Err(InvalidValue::OutOfRange {
                quantity: self,
                value,
                unit: self.unit(),
                min: *range.start(),
                max: *range.end(),
            });
        }
        Ok(value)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quantity {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let key = text.trim().to_ascii_lowercase();
        Ok(match key.as_str() {
            "temperature" | "temp" => Quantity::Temperature,
            "humidity" | "hum" => Quantity::Humidity,
            "sound" | "noise" => Quantity::Sound,
            "co2" => Quantity::Co2,
            "light" | "illuminance" => Quantity::Light,
            "pressure" => Quantity::Pressure,
            _ => {
                return Err(InvalidValue::UnknownQuantity(
                    text.chars().take(32).collect(),
                ));
            }
        })
    }
}

/// A network device's hardware address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Phones and laptops randomise their MAC per network; such addresses have the
    /// locally-administered bit set and may change, so binding a person to one is fragile.
    pub fn is_locally_administered(self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl FromStr for Mac {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || InvalidValue::Mac(text.chars().take(32).collect());
        let trimmed = text.trim();
        let parts: Vec<&str> = trimmed.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(error());
        }
        let mut octets = [0u8; 6];
        for (octet, part) in octets.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(error());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| error())?;
        }
        Ok(Mac(octets))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// An IP address as a device was seen with.
pub type Ip = IpAddr;

#[cfg(test)]
mod tests {
    use super::*;

    fn check_normalize(quantity: &str, value: f64, unit: &str, expected: Result<f64, &str>) {
        let quantity: Quantity = quantity.parse().unwrap();
        let got = quantity.normalize(value, unit);
        match (got, expected) {
            (Ok(got), Ok(expected)) => {
                assert!((got - expected).abs() < 1e-9, "{got} != {expected}")
            }
            (Err(got), Err(expected)) => {
                assert!(
                    got.to_string().contains(expected),
                    "{got} lacks {expected:?}"
                )
            }
            (got, expected) => {
                panic!("{quantity} {value} {unit}: got {got:?}, expected {expected:?}")
            }
        }
    }

    #[test]
    fn units_are_normalised_and_ranges_enforced() {
        check_normalize("temperature", 22.5, "°C", Ok(22.5));
        check_normalize("temp", 72.5, "°F", Ok(22.5));
        check_normalize("temperature", 295.65, "K", Ok(22.5));
        check_normalize("humidity", 45.0, "%RH", Ok(45.0));
        check_normalize(
            "humidity",
            101.0,
            "%",
            Err("outside the possible range 0..=100 %"),
        );
        check_normalize("humidity", -0.5, "", Err("outside"));
        check_normalize("pressure", 101.3, "kPa", Ok(1013.0));
        check_normalize("pressure", 101_300.0, "Pa", Ok(1013.0));
        check_normalize("noise", 40.0, "dBA", Ok(40.0));
        check_normalize("co2", f64::NAN, "ppm", Err("not a finite number"));
        check_normalize(
            "temperature",
            f64::INFINITY,
            "°C",
            Err("not a finite number"),
        );
        check_normalize(
            "temperature",
            20.0,
            "furlongs",
            Err("unknown unit \"furlongs\" for temperature"),
        );
        assert!(
            "wind"
                .parse::<Quantity>()
                .unwrap_err()
                .to_string()
                .contains("unknown quantity \"wind\"")
        );
    }

    #[test]
    fn macs_parse_and_flag_randomised_addresses() {
        let mac: Mac = "FF-ff-FF-ff-FF-ff".parse().unwrap();
        assert_eq!(mac.to_string(), "ff:ff:ff:ff:ff:ff");
        assert!(mac.is_locally_administered());
        assert!(
            !"00:1a:2b:3c:4d:5e"
                .parse::<Mac>()
                .unwrap()
                .is_locally_administered()
        );
        assert!(
            "da:a1:19:00:00:01"
                .parse::<Mac>()
                .unwrap()
                .is_locally_administered()
        );
        for bad in [
            "",
            "ff:ff:ff:ff:ff",
            "ff:ff:ff:ff:ff:fg",
            "fff:ff:ff:ff:ff:f",
            "ff:ff:ff:ff:ff:ff:ff",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Room::new("  meeting room ").unwrap().as_str(),
            "meeting room"
        );
        assert!(Room::new("   ").is_err());
        assert!(Room::new(&"x".repeat(65)).is_err());
        assert!(Person::new("bad\nname").is_err());
    }
}
