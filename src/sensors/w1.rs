//! DS18B20 temperature probes on the 1-wire bus (`/sys/bus/w1/devices/28-*/w1_slave`), as the
//! kernel's w1_therm driver prints them:
//!
//! ```text
//! 72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
//! 72 01 4b 46 7f ff 0e 10 57 t=23125
//! ```
//!
//! The first line ends in `YES` when the scratchpad's CRC checked; the second holds the
//! temperature in millidegrees Celsius. Reading the file starts a conversion and blocks for up
//! to 750 ms, so it is read off the async threads.

use std::path::{Path, PathBuf};

use super::{Measured, ReadError, read_attribute};
use crate::state::Quantity;

/// Where 1-wire devices appear, under the sysfs root.
pub const DEVICES_DIR: &str = "bus/w1/devices";

/// The DS18B20's family code: its device directories start with it.
pub const FAMILY: &str = "28-";

/// 85 °C: the DS18B20's scratchpad after power-on, before any conversion. A probe that
/// browns out mid-read reports it with a valid CRC.
pub const POWER_ON_RESET_MILLIS: i64 = 85_000;

/// One probe, by its device id (`28-` and the 48-bit serial in hex).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub device: String,
}

/// Parses a `w1_slave` file into degrees Celsius, refusing a failed CRC, the power-on reset
/// value and an all-zero scratchpad (what a probe that lost its data line reads).
pub fn parse_w1_slave(text: &str) -> Result<f64, String> {
    let mut lines = text.lines();
    let check = lines.next().unwrap_or("").trim_end();
    let data = lines.next().unwrap_or("").trim_end();
    if check.ends_with("NO") {
        return Err("CRC check failed (first line ends in NO)".into());
    }
    if !check.ends_with("YES") {
        return Err(format!(
            "the first line {check:?} does not end in YES or NO"
        ));
    }
    if check.starts_with("00 00 00 00 00 00 00 00 00") {
        return Err("the scratchpad is all zeros: the probe is not answering".into());
    }
    let millis = data
        .rsplit_once("t=")
        .and_then(|(_, millis)| millis.trim().parse::<i64>().ok())
        .ok_or_else(|| format!("the second line {data:?} has no t=<millidegrees>"))?;
    if millis == POWER_ON_RESET_MILLIS {
        return Err(
            "t=85000 is the power-on reset value, not a measurement (check the probe's power)"
                .into(),
        );
    }
    Ok(millis as f64 / 1000.0)
}

impl Probe {
    fn path(&self, root: &Path) -> PathBuf {
        root.join(DEVICES_DIR).join(&self.device).join("w1_slave")
    }

    pub fn read(&self, root: &Path) -> Result<Measured, ReadError> {
        let path = self.path(root);
        let text = read_attribute(&path)?;
        let value = parse_w1_slave(&text).map_err(|message| ReadError::Format {
            path: path.display().to_string(),
            message,
        })?;
        Ok(Measured {
            quantity: Quantity::Temperature,
            value,
            unit: "°C".into(),
        })
    }
}

/// Every DS18B20 under `root`, with the path of its `w1_slave` file.
pub fn detect(root: &Path) -> Vec<(Probe, PathBuf)> {
    let mut found: Vec<(Probe, PathBuf)> = std::fs::read_dir(root.join(DEVICES_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let device = entry.file_name().to_string_lossy().into_owned();
            let probe = Probe { device };
            let path = probe.path(root);
            (probe.device.starts_with(FAMILY) && path.exists()).then_some((probe, path))
        })
        .collect();
    found.sort_by(|a, b| a.0.device.cmp(&b.0.device));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_format_is_parsed_and_bad_reads_refused() {
        let ok = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n";
        assert_eq!(parse_w1_slave(ok), Ok(23.125));
        let below_zero =
            "5e ff 4b 46 7f ff 02 10 c9 : crc=c9 YES\n5e ff 4b 46 7f ff 02 10 c9 t=-10125\n";
        assert_eq!(parse_w1_slave(below_zero), Ok(-10.125));
        let crc = "72 01 4b 46 7f ff 0e 10 ff : crc=57 NO\n72 01 4b 46 7f ff 0e 10 ff t=23125\n";
        assert!(parse_w1_slave(crc).unwrap_err().contains("CRC"));
        let reset = "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n";
        assert!(
            parse_w1_slave(reset)
                .unwrap_err()
                .contains("power-on reset")
        );
        let zeros = "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n";
        assert!(parse_w1_slave(zeros).unwrap_err().contains("all zeros"));
        assert!(parse_w1_slave("").is_err());
        assert!(
            parse_w1_slave("72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n")
                .unwrap_err()
                .contains("t=")
        );
    }
}
