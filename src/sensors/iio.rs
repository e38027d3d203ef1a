//! Industrial I/O sensors (`/sys/bus/iio/devices/iio:device*/`), the kernel's home for most
//! environmental chips (BME280, SHT4x, HDC2080, BH1750, ...). A channel is read from
//! `in_<channel>_input` when the driver gives a processed value, else from `in_<channel>_raw`
//! as `(raw + offset) × scale`, with `_offset` and `_scale` taken from the channel's own file or
//! the one shared by its type (`in_temp_scale`). The units are those of the kernel's
//! sysfs-bus-iio ABI: temperature in milli degrees Celsius, relative humidity in milli
//! percent, pressure in kilopascal, illuminance in lux.

use std::path::{Path, PathBuf};

use super::{DeviceClass, Measured, ReadError, device_name, read_attribute};
use crate::state::Quantity;

/// Where IIO devices appear, under the sysfs root.
pub const DEVICES_DIR: &str = "bus/iio/devices";

/// The channel types read, longest first so that a prefix never shadows a longer type.
const TYPES: &[(&str, Quantity)] = &[
    ("humidityrelative", Quantity::Humidity),
    ("illuminance", Quantity::Light),
    ("pressure", Quantity::Pressure),
    ("temp", Quantity::Temperature),
];

/// One channel of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// The device's `name` file, or its `iio:deviceN` directory.
    pub device: String,
    /// The channel as it appears between `in_` and `_input`/`_raw`: `temp`, `temp0`,
    /// `temp_ambient`, `humidityrelative`, `pressure`, `illuminance`.
    pub channel: String,
}

/// The type of a channel (`temp` for `temp0` or `temp_ambient`) and what it measures.
pub fn channel_type(channel: &str) -> Option<(&'static str, Quantity)> {
    TYPES.iter().find_map(|&(kind, quantity)| {
        let rest = channel.strip_prefix(kind)?;
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        let modifier_ok = rest.is_empty()
            || rest
                .strip_prefix('_')
                .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphanumeric()));
        modifier_ok.then_some((kind, quantity))
    })
}

/// Parses one IIO attribute: a decimal number, integer or fixed-point ("0.010000").
pub fn parse_number(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    trimmed
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .ok_or_else(|| format!("{trimmed:?} is not a number"))
}

/// A value in the ABI's unit for `quantity` turned into a value and a unit that
/// [`Quantity::normalize`] knows.
pub fn in_known_unit(quantity: Quantity, value: f64) -> (f64, &'static str) {
    match quantity {
        Quantity::Temperature => (value / 1000.0, "°C"),
        Quantity::Humidity => (value / 1000.0, "%"),
        Quantity::Pressure => (value, "kPa"),
        _ => (value, "lx"),
    }
}

/// `(raw + offset) × scale`, the ABI's rule for raw channels.
pub fn scaled(raw: f64, offset: f64, scale: f64) -> f64 {
    (raw + offset) * scale
}

impl Channel {
    pub fn quantity(&self) -> Option<Quantity> {
        channel_type(&self.channel).map(|(_, quantity)| quantity)
    }

    /// Reads the channel now; the device is looked up at every read.
    pub fn read(&self, root: &Path) -> Result<Measured, ReadError> {
        let (kind, quantity) = channel_type(&self.channel).ok_or_else(|| ReadError::Format {
            path: self.channel.clone(),
            message: "not a temp, humidityrelative, pressure or illuminance channel".into(),
        })?;
        let dir = DEVICES.find(root, &self.device)?;
        let number = |path: &Path| -> Result<f64, ReadError> {
            parse_number(&read_attribute(path)?).map_err(|message| ReadError::Format {
                path: path.display().to_string(),
                message,
            })
        };
        let input = dir.join(format!("in_{}_input", self.channel));
        let value = if input.exists() {
            number(&input)?
        } else {
            let raw = number(&dir.join(format!("in_{}_raw", self.channel)))?;
            // The channel's own attribute wins over the one shared by its type.
            let attribute = |suffix: &str, default: f64| -> Result<f64, ReadError> {
                for name in [
                    format!("in_{}_{suffix}", self.channel),
                    format!("in_{kind}_{suffix}"),
                ] {
                    let path = dir.join(name);
                    if path.exists() {
                        return number(&path);
                    }
                }
                Ok(default)
            };
            scaled(raw, attribute("offset", 0.0)?, attribute("scale", 1.0)?)
        };
        let (value, unit) = in_known_unit(quantity, value);
        Ok(Measured {
            quantity,
            value,
            unit: unit.into(),
        })
    }
}

/// The IIO devices under `sysfs_root`.
const DEVICES: DeviceClass = DeviceClass {
    dir: DEVICES_DIR,
    prefix: "iio:device",
    what: "IIO device",
};

/// What auto-detection found: one entry per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub channel: Channel,
    pub path: PathBuf,
}

/// Every readable channel under `root`. Illuminance channels with a modifier (`_ir`,
/// `_clear`, colours) are skipped: they are not in lux for people.
pub fn detect(root: &Path) -> Vec<Found> {
    let mut found = Vec::new();
    for dir in DEVICES.list(root) {
        let dir_name = dir
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
        let device = device_name(&dir).unwrap_or(dir_name);
        let mut channels: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name().to_string_lossy().into_owned();
                let stem = file.strip_prefix("in_")?;
                let channel = stem
                    .strip_suffix("_input")
                    .or_else(|| stem.strip_suffix("_raw"))?;
                let (_, quantity) = channel_type(channel)?;
                if quantity == Quantity::Light && channel.contains('_') {
                    return None;
                }
                Some((channel.to_owned(), entry.path()))
            })
            .collect();
        channels.sort();
        // A channel with both `_input` and `_raw` is one channel, read through `_input`.
        channels.dedup_by(|a, b| a.0 == b.0);
        for (channel, path) in channels {
            found.push(Found {
                channel: Channel {
                    device: device.clone(),
                    channel,
                },
                path,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_give_type_and_quantity() {
        let check = |channel: &str, expected: Option<(&str, Quantity)>| {
            assert_eq!(channel_type(channel), expected, "{channel}");
        };
        check("temp", Some(("temp", Quantity::Temperature)));
        check("temp0", Some(("temp", Quantity::Temperature)));
        check("temp_ambient", Some(("temp", Quantity::Temperature)));
        check("temp1_object", Some(("temp", Quantity::Temperature)));
        check(
            "humidityrelative",
            Some(("humidityrelative", Quantity::Humidity)),
        );
        check("pressure", Some(("pressure", Quantity::Pressure)));
        check("illuminance", Some(("illuminance", Quantity::Light)));
        check("voltage0", None);
        check("tempx", None);
        check("temp_", None);
    }

    #[test]
    fn raw_values_are_offset_then_scaled() {
        // A TMP006-like channel: raw 1530, offset 0, scale 15.625 milli °C -> 23.906 °C.
        let value = scaled(1530.0, 0.0, 15.625);
        assert_eq!(
            in_known_unit(Quantity::Temperature, value),
            (23.906_25, "°C")
        );
        // The offset is added before scaling: (-4000 + 27315) * 1.0 milli °C.
        assert_eq!(scaled(-4000.0, 27315.0, 1.0), 23315.0);
        // Pressure in kPa as the BMP280 driver gives it.
        assert_eq!(
            in_known_unit(Quantity::Pressure, parse_number("100.312500000\n").unwrap()),
            (100.3125, "kPa")
        );
        assert_eq!(parse_number("0.010000\n"), Ok(0.01));
        assert!(parse_number("nan").is_err());
        assert!(parse_number("").is_err());
    }
}
