//! MQTT payloads as the sensor sources receive them: Zigbee2MQTT device messages, Tasmota
//! `SENSOR` messages (with and without a chosen sensor), and plain topics (a number, or JSON
//! with a pointer). The first byte picks the format. Nothing panics; every reading a
//! payload gives is calibrated as the source would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use officemesh::{
    sensors::{Measured, calibrate, mqtt::Format},
    state::Quantity,
};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let format = match pick % 5 {
        0 => Format::Zigbee2Mqtt,
        1 => Format::Tasmota { sensor: None },
        2 => Format::Tasmota {
            sensor: Some("BME280".to_owned()),
        },
        3 => Format::Plain {
            quantity: Quantity::Temperature,
            unit: "°F".to_owned(),
            json_pointer: None,
        },
        _ => Format::Plain {
            quantity: Quantity::Pressure,
            unit: "hPa".to_owned(),
            json_pointer: Some("/sensor/pressure".to_owned()),
        },
    };
    let Ok(readings) = format.parse(payload) else {
        return;
    };
    assert!(!readings.is_empty(), "{format:?} parsed to no reading");
    for reading in &readings {
        check(reading);
    }
});

fn check(measured: &Measured) {
    assert!(measured.value.is_finite(), "{measured:?}");
    if let Ok(value) = calibrate(measured, 0.0) {
        assert!(value.is_finite(), "{measured:?} calibrates to {value}");
    }
}
