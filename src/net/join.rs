//! Join tokens: one line that carries an office's swarm key and the addresses of one of its
//! nodes, printed by `officemesh invite` and taken by `officemesh up --join TOKEN`.
//!
//! Format: `om1-<64 hex digits of the key>@<multiaddr>,<multiaddr>...`. An address that
//! libp2p would print with `@` or `,` in it (a percent-encoded path of `/x-parity-ws` can
//! decode to either) is refused, so the token splits without escaping. The token holds the office's
//! secret: hand it over as you would a password.

use std::{fmt, str::FromStr};

use libp2p::Multiaddr;
use thiserror::Error;

use super::{SWARM_KEY_LEN, SwarmKey};

const PREFIX: &str = "om1-";

/// Most addresses one token carries: a node's interfaces, not a directory of the office.
pub const MAX_TOKEN_ADDRESSES: usize = 16;

#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub key: SwarmKey,
    pub addresses: Vec<Multiaddr>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JoinTokenError {
    #[error("a join token starts with {PREFIX:?}")]
    Prefix,
    #[error("the key part of the join token must be 64 hex digits before '@'")]
    Key,
    #[error("the key part of the join token holds {0:?}, which is not a hex digit (0-9, a-f)")]
    KeyDigit(char),
    #[error("the join token has no address after '@'")]
    NoAddress,
    #[error("the join token has more than {MAX_TOKEN_ADDRESSES} addresses")]
    TooManyAddresses,
    #[error("address {0:?} in the join token is not a multiaddr")]
    Address(String),
}

impl FromStr for JoinToken {
    type Err = JoinTokenError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(JoinTokenError::Prefix)?;
        let (hex, addresses) = rest.split_once('@').ok_or(JoinTokenError::Key)?;
        // Characters first: a token pasted through a chat app may carry a look-alike
        // character, and the byte offsets below are only character offsets for ASCII.
        if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(JoinTokenError::KeyDigit(bad));
        }
        if hex.len() != 2 * SWARM_KEY_LEN {
            return Err(JoinTokenError::Key);
        }
        let mut key = [0u8; SWARM_KEY_LEN];
        for (index, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16)
                .map_err(|_| JoinTokenError::Key)?;
        }
        let addresses: Vec<&str> = addresses.split(',').filter(|a| !a.is_empty()).collect();
        if addresses.is_empty() {
            return Err(JoinTokenError::NoAddress);
        }
        if addresses.len() > MAX_TOKEN_ADDRESSES {
            return Err(JoinTokenError::TooManyAddresses);
        }
        let addresses = addresses
            .into_iter()
            .map(|address| {
                let refused = || JoinTokenError::Address(address.chars().take(80).collect());
                // libp2p takes any text as a host name (`/dns4/pi k`), but no host name holds
                // whitespace or control characters, and a token that held them would not read
                // back the same: the whitespace at its end is trimmed off.
                if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(refused());
                }
                let parsed: Multiaddr = address.parse().map_err(|_| refused())?;
                // Printed, it must not split the token differently.
                if parsed.to_string().contains([',', '@']) {
                    return Err(refused());
                }
                Ok(parsed)
            })
            .collect::<Result<_, _>>()?;
        Ok(JoinToken {
            key: SwarmKey::from_bytes(key),
            addresses,
        })
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        for byte in self.key.bytes() {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("@")?;
        let addresses: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
        f.write_str(&addresses.join(","))
    }
}

/// Never prints the key.
impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("key", &self.key)
            .field("addresses", &self.addresses)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips() {
        let token = JoinToken {
            key: SwarmKey::from_bytes([0xab; 32]),
            addresses: vec![
                "/ip4/127.0.0.1/tcp/7879".parse().unwrap(),
                "/ip6/::1/tcp/7879".parse().unwrap(),
            ],
        };
        let text = token.to_string();
        assert!(text.starts_with("om1-abab"), "{text}");
        assert_eq!(text.parse::<JoinToken>().unwrap(), token);
        assert!(
            !format!("{token:?}").contains("abab"),
            "Debug leaks the key"
        );
    }

    #[test]
    fn bad_tokens_say_what_is_wrong() {
        let key = "00".repeat(32);
        let check = |text: &str, expected: JoinTokenError| {
            assert_eq!(text.parse::<JoinToken>().unwrap_err(), expected, "{text}");
        };
        check("hello", JoinTokenError::Prefix);
        check("om1-abcd@/ip4/127.0.0.1/tcp/1", JoinTokenError::Key);
        check(
            &format!("om1-{}@/ip4/127.0.0.1/tcp/1", "zz".repeat(32)),
            JoinTokenError::KeyDigit('z'),
        );
        check(&format!("om1-{key}@"), JoinTokenError::NoAddress);
        check(
            &format!("om1-{key}@nowhere"),
            JoinTokenError::Address("nowhere".into()),
        );
    }

    #[test]
    fn a_non_ascii_character_is_named_not_a_panic() {
        let digits = "0".repeat(64);
        // Each key part is 64 bytes, the length a key must have, so a parser that checked
        // only the length would go on to cut it in pairs of bytes: the first cuts 'é' in two.
        for (hex, bad) in [
            (format!("{}é0", &digits[..61]), 'é'),
            (format!("{}é", &digits[..62]), 'é'),
            (format!("0{}", "€".repeat(21)), '€'),
        ] {
            assert_eq!(hex.len(), 64);
            let text = format!("om1-{hex}@/ip4/127.0.0.1/tcp/1");
            let error = text.parse::<JoinToken>().unwrap_err();
            assert_eq!(error, JoinTokenError::KeyDigit(bad), "{text}");
            assert!(error.to_string().contains(bad), "{error}");
        }
        let text = format!("om1-{digits}@/ip4/127.0.0.1/tcp/1,/ïp4/büro");
        assert_eq!(
            text.parse::<JoinToken>().unwrap_err(),
            JoinTokenError::Address("/ïp4/büro".into())
        );
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/join_token.rs`): a host name ending in a space
    /// parsed, and the token printed from it parsed back to another address, the space trimmed.
    #[test]
    fn an_address_with_whitespace_or_a_control_character_is_refused() {
        let key = "61".repeat(32);
        for address in [
            "/dns4/pi-k\u{fffd}\u{0} ",
            "/dns4/pi-kitchen /tcp/7879",
            "/dns4/pi kitchen.lan/tcp/7879",
            "/dns4/pi-kitchen.lan\t/tcp/7879",
            "/dns4/pi-kitchen.lan\u{7}/tcp/7879",
        ] {
            let text = format!("om1-{key}@/ip6/fe80::1/tcp/7879,{address},");
            assert_eq!(
                text.parse::<JoinToken>().unwrap_err(),
                JoinTokenError::Address(address.into()),
                "{text:?}"
            );
        }
        let text = format!("om1-{key}@/dns4/pi-kitchen.lan/tcp/7879\n");
        let token = text.parse::<JoinToken>().unwrap();
        assert_eq!(token.to_string().parse::<JoinToken>().unwrap(), token);
    }

    /// Found by fuzzing: a percent-encoded websocket path parsed, and libp2p printed it with a
    /// bare `,` or `@`, which split the printed token into other addresses.
    #[test]
    fn an_address_printed_with_a_separator_is_refused() {
        let key = "61".repeat(32);
        for address in [
            "/ip4/192.0.2.1/tcp/1/x-parity-ws/%2C",
            "/ip4/192.0.2.1/tcp/1/x-parity-ws/a%40b",
        ] {
            let printed = address.parse::<Multiaddr>().unwrap().to_string();
            assert!(printed.contains([',', '@']), "libp2p prints {printed:?}");
            let text = format!("om1-{key}@{address}");
            assert_eq!(
                text.parse::<JoinToken>().unwrap_err(),
                JoinTokenError::Address(address.into()),
                "{text:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn no_text_makes_the_parser_panic(text in "\\PC*") {
            let _ = text.parse::<JoinToken>();
        }

        #[test]
        fn no_token_shaped_text_makes_the_parser_panic(
            hex in "[0-9a-fé€ü]{0,70}",
            addresses in "(/[a-z0-9é]{0,6}){0,6}(,(/[a-z0-9é]{0,6}){0,6}){0,3}",
        ) {
            let text = format!("om1-{hex}@{addresses}");
            match text.parse::<JoinToken>() {
                Ok(token) => {
                    proptest::prop_assert!(hex.is_ascii());
                    proptest::prop_assert_eq!(token.to_string().parse::<JoinToken>().unwrap(), token);
                }
                Err(JoinTokenError::KeyDigit(c)) => proptest::prop_assert!(!c.is_ascii_hexdigit()),
                Err(_) => {}
            }
        }
    }
}
