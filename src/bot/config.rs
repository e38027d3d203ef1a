//! The `[bot]` section of the config file: the name the bot also answers to, and the
//! webhook this node posts its alerts to.

use reqwest::Url;
use serde::Deserialize;

use crate::{
    state::NodeName,
    validate::{self, InvalidKey},
};

/// The bot's name unless the file says otherwise, as in the system officemesh grew from.
pub const DEFAULT_NAME: &str = "bloo";

/// `[bot]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawBot {
    /// A name the bot answers to besides the node's; empty for none.
    pub name: String,
    /// Outgoing webhook for alerts; empty for none.
    pub webhook_url: String,
}

impl Default for RawBot {
    fn default() -> Self {
        RawBot {
            name: DEFAULT_NAME.into(),
            webhook_url: String::new(),
        }
    }
}

/// The validated `[bot]` section.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// A name the bot answers to besides the node's; `None` for none.
    pub name: Option<NodeName>,
    /// Where this node posts the alerts it raises; `None`: nowhere.
    pub webhook_url: Option<Url>,
}

impl RawBot {
    pub fn validate(self) -> Result<BotConfig, InvalidKey> {
        let name = match self.name.trim() {
            "" => None,
            name if !name.chars().any(char::is_alphanumeric) => {
                return Err(InvalidKey::new(
                    "bot.name",
                    format!("{name:?} has no letter or digit to be called by"),
                ));
            }
            name => Some(NodeName::new(name).map_err(|error| InvalidKey::new("bot.name", error))?),
        };
        let webhook_url = match self.webhook_url.trim() {
            "" => None,
            url => Some(validate::http_url("bot.webhook_url", url)?),
        };
        Ok(BotConfig { name, webhook_url })
    }
}
