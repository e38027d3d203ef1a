//! The config file (`officemesh up --config FILE`): any TOML text is parsed and validated
//! into a `Config` or refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use officemesh::config::Config;

fuzz_target!(|data: &[u8]| {
    // The node reads the file as UTF-8 and refuses anything else before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = Config::from_toml(text) {
        // The message is what the user sees: making it must not panic either.
        let _ = error.to_string();
    }
});
