//! What the sensor sources read from the kernel and from programs: the sysfs attributes of
//! hwmon (`temp1_input`), IIO (`in_temp_raw`, `in_temp_scale`) and 1-wire (`w1_slave`), the
//! channel names found in those directories, and a command's output (a number, or JSON with
//! a pointer). The first byte picks the parser. Nothing panics; a value that parses is
//! calibrated as a reading would be.
#![no_main]

use libfuzzer_sys::fuzz_target;
use officemesh::{
    sensors::{Measured, calibrate, command, hwmon, iio, w1},
    state::Quantity,
};

fn calibrated(quantity: Quantity, value: f64, unit: &str) {
    let measured = Measured {
        quantity,
        value,
        unit: unit.to_owned(),
    };
    if let Ok(value) = calibrate(&measured, 0.5) {
        assert!(value.is_finite(), "{measured:?} calibrates to {value}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    // Attributes and outputs are read as UTF-8 (a read fails otherwise); lossily here, so
    // the parsers also see the replacement character.
    let text = String::from_utf8_lossy(bytes);
    match pick % 5 {
        0 => {
            if let Ok(value) = hwmon::parse_input(&text) {
                calibrated(Quantity::Temperature, value, "");
            }
            let _ = hwmon::channel_quantity(&text);
        }
        1 => {
            if let Ok(value) = iio::parse_number(&text) {
                let scaled = iio::scaled(value, 0.0, 0.001);
                for quantity in [Quantity::Temperature, Quantity::Pressure, Quantity::Light] {
                    let (value, unit) = iio::in_known_unit(quantity, scaled);
                    calibrated(quantity, value, unit);
                }
            }
            let _ = iio::channel_type(&text);
        }
        2 => {
            if let Ok(value) = w1::parse_w1_slave(&text) {
                calibrated(Quantity::Temperature, value, "");
            }
        }
        3 => {
            if let Ok(value) = command::parse_output(&text, None) {
                calibrated(Quantity::Co2, value, "ppm");
            }
        }
        _ => {
            // The pointer is the config's, the output the program's: split at the first
            // newline so both come from the fuzzer.
            let (pointer, output) = text.split_once('\n').unwrap_or(("/value", &text));
            if let Ok(value) = command::parse_output(output, Some(pointer)) {
                calibrated(Quantity::Humidity, value, "%");
            }
        }
    }
});
