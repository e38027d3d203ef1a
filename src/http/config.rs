//! The `[http]` section of the config file: where the API listens and the token for writes.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::validate::{self, InvalidKey};

/// Where the API listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Shortest API token accepted from the file: a guessable token guards nothing.
pub const MIN_TOKEN_LEN: usize = 16;

/// `[http]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    /// HTTP listen address.
    pub listen: String,
    /// Bearer token for writes; empty for the environment or a generated one.
    pub api_token: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: DEFAULT_LISTEN.into(),
            api_token: String::new(),
        }
    }
}

/// The validated `[http]` section.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// `None`: `OFFICEMESH_API_TOKEN`, else the token generated in the data dir.
    pub api_token: Option<String>,
}

impl RawHttp {
    pub fn validate(self) -> Result<HttpConfig, InvalidKey> {
        let listen = self.listen.parse().map_err(|_| {
            InvalidKey::new(
                "http.listen",
                format!("{:?} is not an address like {DEFAULT_LISTEN}", self.listen),
            )
        })?;
        let api_token = validate::optional(&self.api_token);
        if api_token
            .as_ref()
            .is_some_and(|token| token.len() < MIN_TOKEN_LEN)
        {
            return Err(InvalidKey::new(
                "http.api_token",
                format!("must be at least {MIN_TOKEN_LEN} characters"),
            ));
        }
        Ok(HttpConfig { listen, api_token })
    }
}
