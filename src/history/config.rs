//! The `[history]` section of the config file: how long each resolution of the reading
//! history is kept, and how far back a node fills holes from its peers.

use std::time::Duration;

use serde::Deserialize;

use crate::{
    store::PruneBefore,
    validate::{self, InvalidKey},
};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Raw points of the node's own sensors: a week.
pub const DEFAULT_RAW_DAYS: u64 = 7;
/// Minute buckets of every sensor: five weeks, so this week compares with a month ago.
pub const DEFAULT_MINUTE_DAYS: u64 = 35;
/// Hourly summaries of every sensor: 400 days, so this month compares with last year's.
pub const DEFAULT_HOUR_DAYS: u64 = 400;
/// How far back a node asks its peers for what it missed: two days, a weekend's outage
/// needs a larger value.
pub const DEFAULT_BACKFILL_HOURS: u64 = 48;

/// Longest retention accepted for any resolution: ten years.
pub const MAX_RETENTION_DAYS: u64 = 3650;
/// Longest backfill window accepted: 35 days (the default minute retention).
pub const MAX_BACKFILL_HOURS: u64 = 35 * 24;

/// `[history]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawHistory {
    pub raw_days: u64,
    pub minute_days: u64,
    pub hour_days: u64,
    pub backfill_hours: u64,
}

impl Default for RawHistory {
    fn default() -> Self {
        RawHistory {
            raw_days: DEFAULT_RAW_DAYS,
            minute_days: DEFAULT_MINUTE_DAYS,
            hour_days: DEFAULT_HOUR_DAYS,
            backfill_hours: DEFAULT_BACKFILL_HOURS,
        }
    }
}

/// The validated `[history]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    pub raw_retention: Duration,
    pub minute_retention: Duration,
    pub hour_retention: Duration,
    /// How far back a node asks its peers for the minutes it lacks.
    pub backfill_window: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        RawHistory::default()
            .validate()
            .expect("the defaults are valid")
    }
}

impl RawHistory {
    pub fn validate(self) -> Result<HistoryConfig, InvalidKey> {
        let days = |key: &str, value: u64| {
            validate::within(key, value, 1..=MAX_RETENTION_DAYS, " days")
                .map(|days| Duration::from_millis(days * DAY_MS))
        };
        let config = HistoryConfig {
            raw_retention: days("history.raw_days", self.raw_days)?,
            minute_retention: days("history.minute_days", self.minute_days)?,
            hour_retention: days("history.hour_days", self.hour_days)?,
            backfill_window: Duration::from_secs(
                validate::within(
                    "history.backfill_hours",
                    self.backfill_hours,
                    0..=MAX_BACKFILL_HOURS,
                    " h",
                )? * 3600,
            ),
        };
        if config.hour_retention < config.minute_retention {
            return Err(InvalidKey::new(
                "history.hour_days",
                format!(
                    "{} days is shorter than history.minute_days ({} days): hours would go before their minutes",
                    self.hour_days, self.minute_days
                ),
            ));
        }
        Ok(config)
    }
}

impl HistoryConfig {
    /// What pruning at `now_ms` deletes: everything measured before these times.
    pub fn prune_before(&self, now_ms: u64) -> PruneBefore {
        let before = |retention: Duration| now_ms.saturating_sub(retention.as_millis() as u64);
        PruneBefore {
            raw_ms: before(self.raw_retention),
            minutes_ms: before(self.minute_retention),
            hours_ms: before(self.hour_retention),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_key() {
        let config = RawHistory::default().validate().unwrap();
        assert_eq!(config.minute_retention, Duration::from_secs(35 * 86_400));
        let error = RawHistory {
            minute_days: 0,
            ..RawHistory::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(error.key, "history.minute_days");
        let error = RawHistory {
            hour_days: 10,
            ..RawHistory::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(error.key, "history.hour_days");
        let before = config.prune_before(100 * DAY_MS);
        assert_eq!(before.raw_ms, 93 * DAY_MS);
        assert_eq!(before.minutes_ms, 65 * DAY_MS);
        assert_eq!(before.hours_ms, 0);
    }
}
