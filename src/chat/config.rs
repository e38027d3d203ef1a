//! The `[slack]` and `[matrix]` sections of the config file: the chat adapters' credentials,
//! where they post alerts, and the APIs they talk to. Tokens never reach a log: the
//! validated settings print without them.

use std::{fmt, time::Duration};

use serde::Deserialize;

use crate::validate::{self, InvalidKey};

/// Slack's Web API unless the file says otherwise (tests point it at a local server).
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";

/// How long one Matrix /sync long-poll waits unless the file says otherwise.
pub const DEFAULT_SYNC_TIMEOUT_MS: u64 = 30_000;

/// Shortest /sync long-poll accepted: below a second the adapter would poll the homeserver
/// in a busy loop while the room is quiet.
pub const MIN_SYNC_TIMEOUT_MS: u64 = 1000;

/// Longest /sync long-poll accepted: proxies and NAT tables drop idle connections after a few
/// minutes.
pub const MAX_SYNC_TIMEOUT_MS: u64 = 120_000;

/// `[slack]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawSlack {
    /// Whether the adapter runs.
    pub enabled: bool,
    /// App-level token, `xapp-...`.
    pub app_token: String,
    /// Bot token, `xoxb-...`.
    pub bot_token: String,
    /// Channel id for alerts; empty for none.
    pub alert_channel: String,
    /// Web API base URL.
    pub api_url: String,
}

impl Default for RawSlack {
    fn default() -> Self {
        RawSlack {
            enabled: false,
            app_token: String::new(),
            bot_token: String::new(),
            alert_channel: String::new(),
            api_url: DEFAULT_SLACK_API_URL.into(),
        }
    }
}

/// `[matrix]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawMatrix {
    /// Whether the adapter runs.
    pub enabled: bool,
    /// Client-server API base URL.
    pub homeserver_url: String,
    /// The bot user's access token.
    pub access_token: String,
    /// Room id for alerts; empty for none.
    pub alert_room: String,
    /// Long-poll timeout of one /sync, milliseconds.
    pub sync_timeout_ms: u64,
}

impl Default for RawMatrix {
    fn default() -> Self {
        RawMatrix {
            enabled: false,
            homeserver_url: String::new(),
            access_token: String::new(),
            alert_room: String::new(),
            sync_timeout_ms: DEFAULT_SYNC_TIMEOUT_MS,
        }
    }
}

/// The validated Slack adapter settings.
#[derive(Clone)]
pub struct SlackConfig {
    pub app_token: String,
    pub bot_token: String,
    pub alert_channel: Option<String>,
    /// Without a trailing slash.
    pub api_url: String,
}

/// The validated Matrix adapter settings.
#[derive(Clone)]
pub struct MatrixConfig {
    /// Without a trailing slash.
    pub homeserver_url: String,
    pub access_token: String,
    pub alert_room: Option<String>,
    pub sync_timeout: Duration,
}

// Tokens stay out of logs and debug prints.
impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("alert_channel", &self.alert_channel)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for MatrixConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatrixConfig")
            .field("homeserver_url", &self.homeserver_url)
            .field("alert_room", &self.alert_room)
            .field("sync_timeout", &self.sync_timeout)
            .finish_non_exhaustive()
    }
}

impl RawSlack {
    /// The adapter's settings, or `None` when it is not enabled.
    pub fn validate(self) -> Result<Option<SlackConfig>, InvalidKey> {
        if !self.enabled {
            return Ok(None);
        }
        let app_token = self.app_token.trim();
        if !app_token.starts_with("xapp-") {
            return Err(InvalidKey::new(
                "slack.app_token",
                "an app-level token starting with xapp- is needed",
            ));
        }
        let bot_token = self.bot_token.trim();
        if !bot_token.starts_with("xoxb-") {
            return Err(InvalidKey::new(
                "slack.bot_token",
                "a bot token starting with xoxb- is needed",
            ));
        }
        let alert_channel = validate::optional(&self.alert_channel);
        if let Some(channel) = &alert_channel
            && !channel.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(InvalidKey::new(
                "slack.alert_channel",
                format!("{channel:?} is not a channel id like C0123ABCD"),
            ));
        }
        Ok(Some(SlackConfig {
            app_token: app_token.to_owned(),
            bot_token: bot_token.to_owned(),
            alert_channel,
            api_url: validate::base_url("slack.api_url", &self.api_url)?,
        }))
    }
}

impl RawMatrix {
    /// The adapter's settings, or `None` when it is not enabled.
    pub fn validate(self) -> Result<Option<MatrixConfig>, InvalidKey> {
        if !self.enabled {
            return Ok(None);
        }
        let homeserver_url = validate::base_url("matrix.homeserver_url", &self.homeserver_url)?;
        let access_token = self.access_token.trim();
        if access_token.is_empty() {
            return Err(InvalidKey::new(
                "matrix.access_token",
                "the bot user's access token is needed",
            ));
        }
        let alert_room = validate::optional(&self.alert_room);
        if let Some(room) = &alert_room
            && (!room.starts_with('!') || !room.contains(':'))
        {
            return Err(InvalidKey::new(
                "matrix.alert_room",
                format!("{room:?} is not a room id like !abc:example.org"),
            ));
        }
        let sync_timeout_ms = validate::within(
            "matrix.sync_timeout_ms",
            self.sync_timeout_ms,
            MIN_SYNC_TIMEOUT_MS..=MAX_SYNC_TIMEOUT_MS,
            " ms",
        )?;
        Ok(Some(MatrixConfig {
            homeserver_url,
            access_token: access_token.to_owned(),
            alert_room,
            sync_timeout: Duration::from_millis(sync_timeout_ms),
        }))
    }
}
