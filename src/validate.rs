//! What every config section needs to check its keys: the error that names the key at fault
//! in the file's dotted form (`presence.consider_home_s`, `alerts.rule[2].above`), and the
//! checks more than one section makes. A foundation module: it imports nothing of the crate,
//! so every section can use it without depending on the file format or on each other.

use std::{fmt, ops::RangeInclusive, time::Duration};

use reqwest::Url;
use thiserror::Error;

/// A value the configuration refuses, with the full key it was given at.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key}: {message}")]
pub struct InvalidKey {
    /// The dotted key, counted from 1 inside arrays: `sensors.source[2].topic`.
    pub key: String,
    pub message: String,
}

impl InvalidKey {
    pub fn new(key: impl Into<String>, message: impl fmt::Display) -> InvalidKey {
        InvalidKey {
            key: key.into(),
            message: message.to_string(),
        }
    }
}

/// Shortest period accepted for anything done over and over (publishing, syncing, scanning):
/// faster only burns the network, the CPU and the SD card.
pub const MIN_INTERVAL_MS: u64 = 100;

/// `ms` as a period, at least [`MIN_INTERVAL_MS`].
pub fn interval(key: &str, ms: u64) -> Result<Duration, InvalidKey> {
    if ms < MIN_INTERVAL_MS {
        return Err(InvalidKey::new(
            key,
            format!("{ms} ms is below the minimum of {MIN_INTERVAL_MS} ms"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// `value` if it is in `range`, else an error saying the range (`unit` after each number,
/// like " ms", or nothing).
pub fn within(
    key: &str,
    value: u64,
    range: RangeInclusive<u64>,
    unit: &str,
) -> Result<u64, InvalidKey> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(InvalidKey::new(
        key,
        format!(
            "{value}{unit} is not between {}{unit} and {}{unit}",
            range.start(),
            range.end()
        ),
    ))
}

/// An absolute `http://` or `https://` URL with a host, surrounding blanks ignored.
pub fn http_url(key: &str, text: &str) -> Result<Url, InvalidKey> {
    let trimmed = text.trim();
    // The URL parser would quietly encode or drop blanks inside; they are typos.
    if trimmed.contains(char::is_whitespace) {
        return Err(InvalidKey::new(
            key,
            format!("{trimmed:?} has a blank inside; is it one URL?"),
        ));
    }
    let url = Url::parse(trimmed)
        .map_err(|error| InvalidKey::new(key, format!("{trimmed:?} is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(InvalidKey::new(
            key,
            format!("{trimmed:?} is not an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

/// An API base URL (checked as [`http_url`]) without a trailing slash, for joining paths.
pub fn base_url(key: &str, text: &str) -> Result<String, InvalidKey> {
    http_url(key, text)?;
    Ok(text.trim().trim_end_matches('/').to_owned())
}

/// `text` trimmed, or `None` when it is blank: the files say "empty: none".
pub fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_its_key() {
        let error = interval("presence.interval_ms", 5).unwrap_err();
        assert_eq!(error.key, "presence.interval_ms");
        assert_eq!(
            error.to_string(),
            "presence.interval_ms: 5 ms is below the minimum of 100 ms"
        );
        assert_eq!(
            interval("x", MIN_INTERVAL_MS),
            Ok(Duration::from_millis(100))
        );
    }

    #[test]
    fn a_range_names_its_bounds() {
        assert_eq!(within("store.save_interval_s", 300, 1..=3600, ""), Ok(300));
        assert_eq!(within("k", 1, 1..=3600, ""), Ok(1));
        assert_eq!(
            within("store.save_interval_s", 0, 1..=3600, "")
                .unwrap_err()
                .to_string(),
            "store.save_interval_s: 0 is not between 1 and 3600"
        );
        assert_eq!(
            within("matrix.sync_timeout_ms", 5, 1000..=120_000, " ms")
                .unwrap_err()
                .message,
            "5 ms is not between 1000 ms and 120000 ms"
        );
    }

    #[test]
    fn urls_need_http_and_a_host() {
        assert_eq!(
            http_url("k", " https://hooks.example.org/a ")
                .unwrap()
                .as_str(),
            "https://hooks.example.org/a"
        );
        for bad in [
            "",
            "hooks.example.org",
            "ftp://example.org",
            "file:///etc/passwd",
        ] {
            let error = http_url("bot.webhook_url", bad).unwrap_err();
            assert_eq!(error.key, "bot.webhook_url", "{bad:?}");
        }
        assert_eq!(
            base_url("slack.api_url", "http://127.0.0.1:9/api/").unwrap(),
            "http://127.0.0.1:9/api"
        );
        assert!(base_url("slack.api_url", "https://slack.com/ api").is_err());
    }

    #[test]
    fn blank_is_none() {
        assert_eq!(optional("  "), None);
        assert_eq!(optional(" C0123 "), Some("C0123".into()));
    }
}
