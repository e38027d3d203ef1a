//! The office's pre-shared key, in the IPFS `swarm.key` format.
//!
//! ```text
//! /key/swarm/psk/1.0.0/
//! /base16/
//! 0123...cdef   (64 hex digits: 32 bytes)
//! ```
//!
//! The same file works with go-ipfs/kubo and js-libp2p private networks. libp2p's own parser
//! ([`PreSharedKey::from_str`](std::str::FromStr)) answers "InvalidKeyFile" for any mistake
//! and slices the hex by byte index (a non-ASCII character there panics), so the file is
//! parsed here, with errors that name the line that is wrong.

use std::fmt;

use libp2p::pnet::PreSharedKey;
use thiserror::Error;

/// The number of bytes in a key.
pub const SWARM_KEY_LEN: usize = 32;

const HEADER: &str = "/key/swarm/psk/1.0.0/";
const ENCODING: &str = "/base16/";

/// A 32-byte pre-shared key: every node of an office holds the same one, and the private
/// network layer (pnet) drops any connection that does not know it.
///
/// `Debug` shows only the fingerprint; [`SwarmKey::to_file`] is the one way to get the
/// secret out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SwarmKey([u8; SWARM_KEY_LEN]);

/// What is wrong with a `swarm.key` file. Line numbers start at 1.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SwarmKeyError {
    #[error("the swarm key is empty: expected the line {HEADER:?}")]
    Empty,
    #[error("line {line} of the swarm key is {found:?}, expected {expected:?}")]
    WrongLine {
        line: usize,
        found: String,
        expected: &'static str,
    },
    #[error("line 3 of the swarm key is missing: expected 64 hex digits")]
    MissingKey,
    #[error("line 3 of the swarm key has {found} characters, expected 64 hex digits")]
    KeyLength { found: usize },
    #[error("line 3 of the swarm key has {found:?} at column {column}, expected a hex digit")]
    NotHex { column: usize, found: char },
    #[error("line {line} of the swarm key is {found:?}; nothing may follow the key")]
    TrailingLine { line: usize, found: String },
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

impl SwarmKey {
    pub fn from_bytes(bytes: [u8; SWARM_KEY_LEN]) -> Self {
        SwarmKey(bytes)
    }

    /// A new random key from the operating system's random number generator.
    pub fn generate() -> Result<Self, SwarmKeyError> {
        let mut bytes = [0u8; SWARM_KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|error| SwarmKeyError::Random(error.to_string()))?;
        Ok(SwarmKey(bytes))
    }

    /// Parses a `swarm.key` file. Surrounding whitespace on each line and a final newline
    /// are tolerated (files edited on Windows end lines with `\r\n`); blank lines after the
    /// key are too; anything else after the key is refused, since it suggests two keys
    /// pasted into one file.
    pub fn parse(text: &str) -> Result<Self, SwarmKeyError> {
        let mut lines = text.lines().map(str::trim).enumerate();
        match lines.next() {
            None => return Err(SwarmKeyError::Empty),
            Some((_, line)) if line.is_empty() && text.trim().is_empty() => {
                return Err(SwarmKeyError::Empty);
            }
            Some((_, HEADER)) => {}
            Some((_, found)) => return Err(wrong_line(1, found, HEADER)),
        }
        match lines.next() {
            Some((_, ENCODING)) => {}
            Some((_, found)) => return Err(wrong_line(2, found, ENCODING)),
            None => return Err(wrong_line(2, "", ENCODING)),
        }
        let hex = match lines.next() {
            Some((_, hex)) if !hex.is_empty() => hex,
            _ => return Err(SwarmKeyError::MissingKey),
        };
        let key = parse_hex(hex)?;
        if let Some((index, found)) = lines.find(|(_, line)| !line.is_empty()) {
            return Err(SwarmKeyError::TrailingLine {
                line: index + 1,
                found: found.to_owned(),
            });
        }
        Ok(SwarmKey(key))
    }

    /// The key as a `swarm.key` file, ending with a newline. This is the secret: write it
    /// to a file only the node's user can read.
    pub fn to_file(&self) -> String {
        let mut hex = String::with_capacity(2 * SWARM_KEY_LEN);
        for byte in self.0 {
            hex.push(hex_digit(byte >> 4));
            hex.push(hex_digit(byte & 0x0f));
        }
        format!("{HEADER}\n{ENCODING}\n{hex}\n")
    }

    /// The raw key, for the store. This is the secret.
    pub fn bytes(&self) -> [u8; SWARM_KEY_LEN] {
        self.0
    }

    /// A short hash of the key, the same as go-libp2p prints: safe to log and compare.
    pub fn fingerprint(&self) -> String {
        self.psk().fingerprint().to_string()
    }

    /// The key in the type libp2p's private network layer takes.
    pub fn psk(&self) -> PreSharedKey {
        PreSharedKey::new(self.0)
    }
}

impl fmt::Debug for SwarmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwarmKey")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

fn wrong_line(line: usize, found: &str, expected: &'static str) -> SwarmKeyError {
    SwarmKeyError::WrongLine {
        line,
        found: found.to_owned(),
        expected,
    }
}

fn parse_hex(hex: &str) -> Result<[u8; SWARM_KEY_LEN], SwarmKeyError> {
    // Characters, not bytes: a non-ASCII character is reported, never sliced through.
    if let Some((index, found)) = hex
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(SwarmKeyError::NotHex {
            column: index + 1,
            found,
        });
    }
    if hex.len() != 2 * SWARM_KEY_LEN {
        return Err(SwarmKeyError::KeyLength { found: hex.len() });
    }
    let digits = hex.as_bytes();
    let mut key = [0u8; SWARM_KEY_LEN];
    for (index, byte) in key.iter_mut().enumerate() {
        *byte = (hex_value(digits[2 * index]) << 4) | hex_value(digits[2 * index + 1]);
    }
    Ok(key)
}

/// The value of an ASCII hex digit (already checked by the caller).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => unreachable!("checked to be a hex digit"),
    }
}

fn hex_digit(value: u8) -> char {
    char::from_digit(u32::from(value), 16).expect("a nibble is a hex digit")
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn file(hex: &str) -> String {
        format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n")
    }

    fn check_err(text: &str, expected: SwarmKeyError) {
        assert_eq!(SwarmKey::parse(text), Err(expected), "parsing {text:?}");
    }

    #[test]
    fn round_trip() {
        let key = SwarmKey::parse(&file(HEX)).unwrap();
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(key, SwarmKey::from_bytes(bytes));
        assert_eq!(key.to_file(), file(HEX));
        assert_eq!(SwarmKey::parse(&key.to_file()).unwrap(), key);
    }

    #[test]
    fn generated_keys_round_trip_and_differ() {
        let a = SwarmKey::generate().unwrap();
        let b = SwarmKey::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(SwarmKey::parse(&a.to_file()).unwrap(), a);
    }

    #[test]
    fn agrees_with_libp2p() {
        let key = SwarmKey::parse(&file(HEX)).unwrap();
        let theirs = PreSharedKey::from_str(&key.to_file()).unwrap();
        assert_eq!(theirs.fingerprint().to_string(), key.fingerprint());
        assert_eq!(theirs.to_string(), key.to_file());
    }

    #[test]
    fn tolerates_crlf_uppercase_and_trailing_blank_lines() {
        let text = format!(
            "/key/swarm/psk/1.0.0/\r\n/base16/\r\n{}\r\n\r\n",
            HEX.to_uppercase()
        );
        assert_eq!(
            SwarmKey::parse(&text).unwrap(),
            SwarmKey::parse(&file(HEX)).unwrap()
        );
        assert!(SwarmKey::parse(&format!("/key/swarm/psk/1.0.0/\n/base16/\n{HEX}")).is_ok());
    }

    #[test]
    fn errors_name_the_line() {
        check_err("", SwarmKeyError::Empty);
        check_err("\n\n", SwarmKeyError::Empty);
        check_err(
            &format!("/key/swarm/psk/2.0.0/\n/base16/\n{HEX}\n"),
            wrong_line(1, "/key/swarm/psk/2.0.0/", HEADER),
        );
        check_err(
            &format!("/key/swarm/psk/1.0.0/\n/base64/\n{HEX}\n"),
            wrong_line(2, "/base64/", ENCODING),
        );
        check_err("/key/swarm/psk/1.0.0/\n", wrong_line(2, "", ENCODING));
        check_err(
            "/key/swarm/psk/1.0.0/\n/base16/\n",
            SwarmKeyError::MissingKey,
        );
        check_err(&file(&HEX[..62]), SwarmKeyError::KeyLength { found: 62 });
        check_err(
            &file(&format!("{HEX}00")),
            SwarmKeyError::KeyLength { found: 66 },
        );
        check_err(
            &file(&format!("{}zz", &HEX[..62])),
            SwarmKeyError::NotHex {
                column: 63,
                found: 'z',
            },
        );
        check_err(
            &format!("{}extra\n", file(HEX)),
            SwarmKeyError::TrailingLine {
                line: 4,
                found: "extra".to_owned(),
            },
        );
    }

    #[test]
    fn non_ascii_is_an_error_not_a_panic() {
        // 31 hex pairs and a two-byte character: 64 bytes, so a byte-slicing parser panics.
        let hex = format!("{}é", &HEX[..62]);
        assert_eq!(hex.len(), 64);
        check_err(
            &file(&hex),
            SwarmKeyError::NotHex {
                column: 63,
                found: 'é',
            },
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = SwarmKey::parse(&file(HEX)).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(HEX), "{shown}");
        assert!(shown.contains(&key.fingerprint()));
    }

    #[test]
    fn error_messages_read_well() {
        let error = SwarmKey::parse("/key/swarm/psk/1.0.0/\n/base32/\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2 of the swarm key is \"/base32/\", expected \"/base16/\""
        );
    }
}
