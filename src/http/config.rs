//! The `[http]` section of the config file: where the API listens, the tokens (write and
//! viewer) and how long a dashboard session lasts.

use std::{net::SocketAddr, time::Duration};

use serde::Deserialize;

use crate::validate::{self, InvalidKey};

/// Where the API listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Shortest API token accepted from the file: a guessable token guards nothing.
pub const MIN_TOKEN_LEN: usize = 16;

/// How long a dashboard session lasts unless the file says otherwise; it is renewed while
/// in use, so a wall screen stays signed in.
pub const DEFAULT_SESSION_DAYS: u64 = 30;

/// Longest session accepted: a year.
pub const MAX_SESSION_DAYS: u64 = 365;

/// `[http]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    /// HTTP listen address.
    pub listen: String,
    /// Bearer token for writes; empty for the environment or a generated one.
    pub api_token: String,
    /// Token for reading from outside this machine; empty for a generated one.
    pub viewer_token: String,
    /// Days a dashboard session lasts.
    pub session_days: u64,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: DEFAULT_LISTEN.into(),
            api_token: String::new(),
            viewer_token: String::new(),
            session_days: DEFAULT_SESSION_DAYS,
        }
    }
}

/// The validated `[http]` section.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// `None`: `OFFICEMESH_API_TOKEN`, else the token generated in the data dir.
    pub api_token: Option<String>,
    /// `None`: the viewer token generated in the data dir.
    pub viewer_token: Option<String>,
    pub session_lifetime: Duration,
}

impl RawHttp {
    pub fn validate(self) -> Result<HttpConfig, InvalidKey> {
        let listen = self.listen.parse().map_err(|_| {
            InvalidKey::new(
                "http.listen",
                format!("{:?} is not an address like {DEFAULT_LISTEN}", self.listen),
            )
        })?;
        let token = |key: &str, value: &str| {
            let token = validate::optional(value);
            if token
                .as_ref()
                .is_some_and(|token| token.len() < MIN_TOKEN_LEN)
            {
                return Err(InvalidKey::new(
                    key,
                    format!("must be at least {MIN_TOKEN_LEN} characters"),
                ));
            }
            Ok(token)
        };
        let api_token = token("http.api_token", &self.api_token)?;
        let viewer_token = token("http.viewer_token", &self.viewer_token)?;
        if viewer_token.is_some() && viewer_token == api_token {
            return Err(InvalidKey::new(
                "http.viewer_token",
                "must differ from http.api_token: the viewer token only reads",
            ));
        }
        let session_days = validate::within(
            "http.session_days",
            self.session_days,
            1..=MAX_SESSION_DAYS,
            "",
        )?;
        Ok(HttpConfig {
            listen,
            api_token,
            viewer_token,
            session_lifetime: Duration::from_secs(session_days * 24 * 3600),
        })
    }
}
