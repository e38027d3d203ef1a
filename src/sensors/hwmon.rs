//! Linux hwmon sensors (`/sys/class/hwmon/hwmon*/`): `temp*_input` in millidegrees Celsius
//! and `humidity*_input` in milli-percent, as the kernel's hwmon sysfs ABI defines them. A chip
//! is named by its `name` file (stable across boots) or its `hwmonN` directory (not stable:
//! the numbers follow probe order).

use std::path::{Path, PathBuf};

use super::{DeviceClass, Measured, ReadError, device_name, read_attribute};
use crate::state::Quantity;

/// Where hwmon chips appear, under the sysfs root.
pub const CLASS_DIR: &str = "class/hwmon";

/// Chips that measure the machine rather than the room (CPUs, GPUs, disks, Wi-Fi cards,
/// ACPI zones), skipped by auto-detection. Listing one as a source still works.
const MACHINE_CHIPS: &[&str] = &[
    "coretemp",
    "k8temp",
    "k10temp",
    "zenpower",
    "acpitz",
    "nvme",
    "drivetemp",
    "amdgpu",
    "radeon",
    "nouveau",
    "i915",
    "xe",
    "gpu_thermal",
    "soc_thermal",
    "thinkpad",
    "dell_smm",
    "applesmc",
    "pch_",
    "iwlwifi",
    "mt7921",
    "ath",
    "nct6",
    "it87",
    "x86_pkg_temp",
    "rpi_volt",
    "bcm2835_thermal",
    "cpu",
];

/// One channel of one chip.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// The chip's `name` file, or its `hwmonN` directory.
    pub chip: String,
    /// `temp1`, `humidity1`, ...
    pub channel: String,
}

/// The quantity a channel name measures: `temp<N>` or `humidity<N>`.
pub fn channel_quantity(channel: &str) -> Option<Quantity> {
    let numbered = |prefix: &str| {
        channel
            .strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if numbered("temp") {
        Some(Quantity::Temperature)
    } else if numbered("humidity") {
        Some(Quantity::Humidity)
    } else {
        None
    }
}

/// Parses the text of a `temp*_input` or `humidity*_input` file: a decimal integer in
/// thousandths of the canonical unit (°C, %).
pub fn parse_input(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    trimmed
        .parse::<i64>()
        .map(|millis| millis as f64 / 1000.0)
        .map_err(|_| format!("{trimmed:?} is not an integer"))
}

impl Channel {
    pub fn quantity(&self) -> Option<Quantity> {
        channel_quantity(&self.channel)
    }

    /// Reads the channel now. The chip is looked up at every read, so a chip that comes back
    /// under another `hwmonN` after a driver reload is found again.
    pub fn read(&self, root: &Path) -> Result<Measured, ReadError> {
        let quantity = self.quantity().ok_or_else(|| ReadError::Format {
            path: self.channel.clone(),
            message: "not a temp<N> or humidity<N> channel".into(),
        })?;
        let dir = CHIPS.find(root, &self.chip)?;
        let path = dir.join(format!("{}_input", self.channel));
        let text = read_attribute(&path)?;
        let value = parse_input(&text).map_err(|message| ReadError::Format {
            path: path.display().to_string(),
            message,
        })?;
        // hwmon gives thousandths of the canonical units (°C, %).
        Ok(Measured {
            quantity,
            value,
            unit: String::new(),
        })
    }
}

/// The hwmon chips under `sysfs_root`.
const CHIPS: DeviceClass = DeviceClass {
    dir: CLASS_DIR,
    prefix: "hwmon",
    what: "hwmon chip",
};

/// What auto-detection found on one chip.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub channel: Channel,
    /// The channel's `temp*_label`, if the driver gives one.
    pub label: Option<String>,
    /// Where it was found, for people.
    pub path: PathBuf,
}

/// Every temperature and humidity channel under `root`, and the chips skipped because they
/// measure the machine.
pub fn detect(root: &Path) -> (Vec<Found>, Vec<String>) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for dir in CHIPS.list(root) {
        let dir_name = dir
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
        let name = device_name(&dir);
        if let Some(name) = &name
            && MACHINE_CHIPS.iter().any(|prefix| name.starts_with(prefix))
        {
            skipped.push(format!(
                "{dir_name} ({name}): measures the machine, not the room"
            ));
            continue;
        }
        let mut channels: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name().to_string_lossy().into_owned();
                file.strip_suffix("_input").map(str::to_owned)
            })
            .filter(|channel| channel_quantity(channel).is_some())
            .collect();
        channels.sort();
        for channel in channels {
            let label = read_attribute(&dir.join(format!("{channel}_label")))
                .ok()
                .map(|label| label.trim().to_owned())
                .filter(|label| !label.is_empty());
            found.push(Found {
                path: dir.join(format!("{channel}_input")),
                channel: Channel {
                    chip: name.clone().unwrap_or_else(|| dir_name.clone()),
                    channel,
                },
                label,
            });
        }
    }
    (found, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_thousandths() {
        assert_eq!(parse_input("23125\n"), Ok(23.125));
        assert_eq!(parse_input("-5500\n"), Ok(-5.5));
        assert_eq!(parse_input("45678"), Ok(45.678));
        assert!(parse_input("").unwrap_err().contains("not an integer"));
        assert!(parse_input("21.5\n").is_err());
    }

    #[test]
    fn channel_names_give_the_quantity() {
        assert_eq!(channel_quantity("temp1"), Some(Quantity::Temperature));
        assert_eq!(channel_quantity("temp12"), Some(Quantity::Temperature));
        assert_eq!(channel_quantity("humidity1"), Some(Quantity::Humidity));
        assert_eq!(channel_quantity("temp"), None);
        assert_eq!(channel_quantity("in0"), None);
        assert_eq!(channel_quantity("temp1_max"), None);
    }
}
