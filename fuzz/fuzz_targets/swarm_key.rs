//! The `swarm.key` file: any text parses or is refused, never a panic; a key that parses
//! is written back to a file that parses to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use officemesh::net::SwarmKey;

fuzz_target!(|data: &[u8]| {
    // The node reads the file as UTF-8 and refuses anything else before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = SwarmKey::parse(text) else {
        return;
    };
    let file = key.to_file();
    assert_eq!(SwarmKey::parse(&file), Ok(key), "{file:?}");
});
