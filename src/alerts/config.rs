//! The `[[alerts.rule]]` blocks of the config file, validated into [`Rule`]s. No rule in
//! the file means the default rule (the one `officemesh config default` shows); an empty
//! `alerts.rule = []` means none. Errors name the block, counted from 1 as people count the
//! blocks of their file: `alerts.rule[2].above`.

use serde::Deserialize;

use super::{Rule, Template, Threshold, Trigger, assign_ids};
use crate::{
    state::{InvalidValue, Quantity, Room},
    validate::InvalidKey,
};

/// Longest `for_s` and `repeat_s` accepted: a week.
pub const MAX_RULE_SECONDS: u64 = 7 * 24 * 3600;

/// The message of a rule that gives none.
pub const DEFAULT_MESSAGE: &str = "the {room} {quantity} is at {value}.";

/// `[alerts]` as written.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    /// The rules; `None` (no `[[alerts.rule]]`) for the default rule, empty for none.
    pub rule: Option<Vec<RawRule>>,
}

/// One `[[alerts.rule]]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RawRule {
    /// Quantity name; required.
    pub quantity: String,
    /// Only this room; empty for every room.
    pub room: String,
    /// Raised at or above.
    pub above: Option<f64>,
    /// Raised at or below.
    pub below: Option<f64>,
    /// Clear margin, in the quantity's unit.
    pub hysteresis: f64,
    /// How long the condition must hold, seconds.
    pub for_s: u64,
    /// Announce again after, seconds; 0 for never.
    pub repeat_s: u64,
    /// Message template.
    pub message: String,
}

impl Default for RawRule {
    fn default() -> Self {
        RawRule {
            quantity: String::new(),
            room: String::new(),
            above: None,
            below: None,
            hysteresis: 0.0,
            for_s: 0,
            repeat_s: 0,
            message: DEFAULT_MESSAGE.into(),
        }
    }
}

impl RawRule {
    /// The rule that applies when none is configured: the one the default config shows.
    pub fn default_rule() -> Self {
        RawRule {
            quantity: "temperature".into(),
            above: Some(24.0),
            hysteresis: 0.5,
            for_s: 300,
            message: "the {room} temperature is at {value}. You might want to turn the AC on."
                .into(),
            ..RawRule::default()
        }
    }

    /// The rule of the `number`th block (from 1).
    fn validate(self, number: usize) -> Result<Rule, InvalidKey> {
        let at = |field: &str, message: String| {
            InvalidKey::new(format!("alerts.rule[{number}].{field}"), message)
        };
        if self.quantity.trim().is_empty() {
            return Err(at(
                "quantity",
                "missing: say which quantity the rule watches".into(),
            ));
        }
        let quantity: Quantity = self
            .quantity
            .parse()
            .map_err(|error: InvalidValue| at("quantity", error.to_string()))?;
        let room = match self.room.trim() {
            "" => None,
            room => Some(Room::new(room).map_err(|error| at("room", error.to_string()))?),
        };
        let (field, threshold) = match (self.above, self.below) {
            (Some(value), None) => ("above", Threshold::Above(value)),
            (None, Some(value)) => ("below", Threshold::Below(value)),
            (Some(_), Some(_)) => {
                return Err(at(
                    "below",
                    "give either `above` or `below`, not both".into(),
                ));
            }
            (None, None) => {
                return Err(at("above", "missing: give `above` or `below`".into()));
            }
        };
        quantity
            .check(threshold.value())
            .map_err(|error| at(field, error.to_string()))?;
        if !self.hysteresis.is_finite() || self.hysteresis < 0.0 {
            return Err(at(
                "hysteresis",
                format!("{} is not a finite number at least 0", self.hysteresis),
            ));
        }
        for (field, seconds) in [("for_s", self.for_s), ("repeat_s", self.repeat_s)] {
            if seconds > MAX_RULE_SECONDS {
                return Err(at(
                    field,
                    format!("{seconds} s is more than a week ({MAX_RULE_SECONDS} s)"),
                ));
            }
        }
        let message = Template::parse(&self.message).map_err(|error| at("message", error))?;
        Ok(Rule {
            quantity,
            room,
            trigger: Trigger {
                threshold,
                hysteresis: self.hysteresis,
                hold_ms: self.for_s * 1000,
                repeat_ms: (self.repeat_s > 0).then_some(self.repeat_s * 1000),
            },
            message,
            id: String::new(),
        })
    }
}

impl RawAlerts {
    /// The rules, each with its id ([`assign_ids`]).
    pub fn validate(self) -> Result<Vec<Rule>, InvalidKey> {
        let raw_rules = self.rule.unwrap_or_else(|| vec![RawRule::default_rule()]);
        let mut rules = raw_rules
            .into_iter()
            .enumerate()
            .map(|(index, raw)| raw.validate(index + 1))
            .collect::<Result<Vec<_>, _>>()?;
        assign_ids(&mut rules);
        Ok(rules)
    }
}
