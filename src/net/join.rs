//! Join tokens: one line that carries an office's swarm key and the addresses of one of its
//! nodes, printed by `officemesh invite` and taken by `officemesh up --join TOKEN`.
//!
//! Format: `om1-<64 hex digits of the key>@<multiaddr>,<multiaddr>...`. Multiaddrs contain
//! neither `@` nor `,`, so the token splits without escaping. The token holds the office's
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
                address
                    .parse()
                    .map_err(|_| JoinTokenError::Address(address.chars().take(80).collect()))
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
            JoinTokenError::Key,
        );
        check(&format!("om1-{key}@"), JoinTokenError::NoAddress);
        check(
            &format!("om1-{key}@nowhere"),
            JoinTokenError::Address("nowhere".into()),
        );
    }
}
