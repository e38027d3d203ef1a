//! The join token of `officemesh up --join`: any text parses or is refused, never a panic;
//! a token that parses prints back to one that parses to the same token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use officemesh::net::JoinToken;

fuzz_target!(|data: &[u8]| {
    // A token arrives as a command-line argument or a config value: text. Invalid UTF-8
    // is refused before the parser (clap, toml), so it is taken lossily here.
    let text = String::from_utf8_lossy(data);
    let Ok(token) = text.parse::<JoinToken>() else {
        return;
    };
    let printed = token.to_string();
    let again = printed
        .parse::<JoinToken>()
        .unwrap_or_else(|error| panic!("{printed:?} does not parse back: {error}"));
    assert_eq!(again, token);
});
