//! Alert rules and their evaluation (`docs/alerts.md`): a pure state machine per rule and
//! sensor, fed with this node's own readings and the time, answering raise, repeat or clear.
//!
//! Like `src/state/`, this module does no I/O and never reads the clock: the node's alert
//! task (`src/office/alerts.rs`) passes readings and time in and carries the answers out, to
//! the replicated state and to the configured sinks.

pub mod config;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, fmt};

use crate::state::{
    Alert, AlertName, MAX_MESSAGE_LEN, MAX_NAME_LEN, Message, Quantity, Room, SensorId,
};

/// Longest message template accepted, in bytes: with room and sensor names at their longest
/// it still renders to a message the state accepts (longer renders are cut).
pub const MAX_TEMPLATE_LEN: usize = 256;

/// Which side of the threshold raises the alert.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// Raised at or above the value.
    Above(f64),
    /// Raised at or below the value.
    Below(f64),
}

impl Threshold {
    pub fn value(self) -> f64 {
        match self {
            Threshold::Above(value) | Threshold::Below(value) => value,
        }
    }

    /// Whether `value` is on the alerting side.
    fn crossed(self, value: f64) -> bool {
        match self {
            Threshold::Above(limit) => value >= limit,
            Threshold::Below(limit) => value <= limit,
        }
    }

    /// Whether `value` is far enough back for a raised alert to clear: beyond the threshold
    /// by the hysteresis, so a value hovering at the threshold does not flap.
    fn recovered(self, value: f64, hysteresis: f64) -> bool {
        match self {
            Threshold::Above(limit) => value < limit - hysteresis,
            Threshold::Below(limit) => value > limit + hysteresis,
        }
    }
}

/// When a rule fires, apart from what it says: the input of [`Machine::step`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trigger {
    pub threshold: Threshold,
    /// How far back past the threshold a value must come to clear (in the quantity's unit).
    pub hysteresis: f64,
    /// How long the condition must hold before the alert is raised.
    pub hold_ms: u64,
    /// How often a raised alert is announced again; `None`: once per crossing.
    pub repeat_ms: Option<u64>,
}

/// What a machine's step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The condition has held for long enough: raise and announce.
    Raise,
    /// Still raised and `repeat_ms` has passed since the last announcement: announce again.
    Repeat,
    /// Back past the threshold by the hysteresis: clear (not announced).
    Clear,
}

/// Where one rule stands for one sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The condition does not hold, or the alert has cleared.
    Idle,
    /// The condition holds since `since_ms`, not yet for long enough.
    Pending { since_ms: u64 },
    /// Raised; last announced at `announced_ms`.
    Raised { announced_ms: u64 },
}

/// The state machine of one rule for one sensor. Time is whatever monotone-enough clock the
/// caller passes; a clock that steps back only delays a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    phase: Phase,
}

impl Default for Machine {
    fn default() -> Self {
        Machine { phase: Phase::Idle }
    }
}

impl Machine {
    /// A machine whose alert is already raised and was announced at `announced_ms`: what a
    /// restarted node finds in its restored state.
    pub fn raised(announced_ms: u64) -> Machine {
        Machine {
            phase: Phase::Raised { announced_ms },
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Feeds the sensor's latest `value` at `now_ms`. Called on each new reading and on
    /// each tick with the last value, so `hold_ms` and `repeat_ms` pass without readings.
    pub fn step(&mut self, trigger: &Trigger, value: f64, now_ms: u64) -> Option<Transition> {
        let crossed = trigger.threshold.crossed(value);
        match self.phase {
            Phase::Idle if crossed => {
                self.phase = Phase::Pending { since_ms: now_ms };
                self.raise_if_held(trigger, now_ms, now_ms)
            }
            Phase::Idle => None,
            Phase::Pending { since_ms } if crossed => self.raise_if_held(trigger, since_ms, now_ms),
            Phase::Pending { .. } => {
                self.phase = Phase::Idle;
                None
            }
            Phase::Raised { .. } if trigger.threshold.recovered(value, trigger.hysteresis) => {
                self.phase = Phase::Idle;
                Some(Transition::Clear)
            }
            Phase::Raised { announced_ms } => match trigger.repeat_ms {
                Some(repeat_ms) if now_ms.saturating_sub(announced_ms) >= repeat_ms => {
                    self.phase = Phase::Raised {
                        announced_ms: now_ms,
                    };
                    Some(Transition::Repeat)
                }
                _ => None,
            },
        }
    }

    fn raise_if_held(
        &mut self,
        trigger: &Trigger,
        since_ms: u64,
        now_ms: u64,
    ) -> Option<Transition> {
        if now_ms.saturating_sub(since_ms) < trigger.hold_ms {
            return None;
        }
        self.phase = Phase::Raised {
            announced_ms: now_ms,
        };
        Some(Transition::Raise)
    }
}

/// A placeholder of a message template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Room,
    Value,
    Quantity,
    Sensor,
    Threshold,
}

impl Field {
    const ALL: [(&'static str, Field); 5] = [
        ("room", Field::Room),
        ("value", Field::Value),
        ("quantity", Field::Quantity),
        ("sensor", Field::Sensor),
        ("threshold", Field::Threshold),
    ];
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// A message template: text with `{room}`, `{value}` (with one decimal and the unit, as in
/// "24.0°C"), `{quantity}`, `{sensor}` and `{threshold}`; `{{` and `}}` are literal braces.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// What a template is filled with.
pub struct Fill<'a> {
    pub room: &'a Room,
    pub sensor: &'a SensorId,
    pub quantity: Quantity,
    pub value: f64,
    pub threshold: f64,
}

impl Template {
    /// Parses a template; the error says which placeholder or character is wrong.
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.trim().is_empty() {
            return Err("the message is empty".into());
        }
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(format!(
                "the message is longer than {MAX_TEMPLATE_LEN} bytes"
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("the message contains control characters".into());
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!(
                            "`{{{name}` is not closed (write `{{{{` for a brace)"
                        ));
                    }
                    let field = Field::ALL
                        .iter()
                        .find(|(known, _)| *known == name)
                        .map(|(_, field)| *field)
                        .ok_or_else(|| {
                            format!(
                                "unknown placeholder {{{name}}} (known: {{room}}, {{value}}, {{quantity}}, {{sensor}}, {{threshold}}; write {{{{ for a brace)"
                            )
                        })?;
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Field(field));
                }
                '}' => return Err("a lone `}` (write `}}` for a brace)".into()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// The message, cut to what the state accepts.
    pub fn render(&self, fill: &Fill<'_>) -> Message {
        let unit = fill.quantity.unit();
        let mut text = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(literal) => text.push_str(literal),
                Piece::Field(Field::Room) => text.push_str(fill.room.as_str()),
                Piece::Field(Field::Sensor) => text.push_str(fill.sensor.as_str()),
                Piece::Field(Field::Quantity) => text.push_str(fill.quantity.name()),
                Piece::Field(Field::Value) => text.push_str(&format!("{:.1}{unit}", fill.value)),
                Piece::Field(Field::Threshold) => {
                    text.push_str(&format!("{:.1}{unit}", fill.threshold));
                }
            }
        }
        let message = truncate(&text, MAX_MESSAGE_LEN);
        // A parsed template is not blank and has no control characters, and neither have
        // room and sensor names, so this only falls back if that ever changes.
        Message::new(message).unwrap_or_else(|_| {
            Message::new(&format!("{} alert in {}", fill.quantity, fill.room))
                .expect("a quantity and a room make a valid message")
        })
    }
}

/// The longest prefix of `text` within `max_len` bytes, cut at a character boundary.
fn truncate(text: &str, max_len: usize) -> &str {
    if text.len() <= max_len {
        return text;
    }
    let mut end = max_len;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One validated alert rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub quantity: Quantity,
    /// Only sensors in this room; `None`: every room.
    pub room: Option<Room>,
    pub trigger: Trigger,
    pub message: Template,
    /// The first part of the names of this rule's alerts, like `temperature-above-24`;
    /// unique among the rules and without `/`.
    pub id: String,
}

impl Rule {
    /// The id a rule of this shape gets, before duplicates are numbered.
    pub fn base_id(quantity: Quantity, threshold: Threshold) -> String {
        let (side, value) = match threshold {
            Threshold::Above(value) => ("above", value),
            Threshold::Below(value) => ("below", value),
        };
        format!("{}-{side}-{value}", quantity.name())
    }

    fn applies_to(&self, room: &Room, quantity: Quantity) -> bool {
        self.quantity == quantity && self.room.as_ref().is_none_or(|only| only == room)
    }

    /// The name of this rule's alert for `sensor`: `<rule id>/<sensor>`, shortened with a
    /// hash when it would be longer than a name may be.
    pub fn alert_name(&self, sensor: &SensorId) -> AlertName {
        let full = format!("{}/{}", self.id, sensor);
        let name = if full.len() <= MAX_NAME_LEN {
            full
        } else {
            let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
            format!("{}~{:08x}", truncate(&full, MAX_NAME_LEN - 9), hash as u32)
        };
        AlertName::new(&name).expect("a rule id and a sensor id make a valid alert name")
    }
}

/// Gives each rule its id: the base id, numbered from the second rule of the same shape.
pub fn assign_ids(rules: &mut [Rule]) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for rule in rules {
        let base = Rule::base_id(rule.quantity, rule.trigger.threshold);
        let count = seen.entry(base.clone()).or_insert(0);
        *count += 1;
        rule.id = if *count == 1 {
            base
        } else {
            format!("{base}-{count}")
        };
    }
}

/// What the node should do after a step of its rules.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write the alert to the replicated state, then announce `message`.
    Raise {
        name: AlertName,
        room: Room,
        quantity: Quantity,
        message: Message,
    },
    /// Announce `message` again; the state already holds the alert.
    Repeat { name: AlertName, message: Message },
    /// Mark the alert cleared in the replicated state.
    Clear { name: AlertName },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Raise { name, .. } => write!(f, "raise {name}"),
            Action::Repeat { name, .. } => write!(f, "repeat {name}"),
            Action::Clear { name } => write!(f, "clear {name}"),
        }
    }
}

/// One rule watching one sensor.
struct Watch {
    room: Room,
    value: f64,
    machine: Machine,
}

/// Every rule of a node over every one of its sensors.
pub struct Evaluator {
    rules: Vec<Rule>,
    /// Keyed by rule index and sensor.
    watches: BTreeMap<(usize, SensorId), Watch>,
    /// Alerts found raised in the restored state, waiting for their sensor's first reading.
    restored: BTreeMap<AlertName, u64>,
}

impl Evaluator {
    pub fn new(rules: Vec<Rule>) -> Evaluator {
        Evaluator {
            rules,
            watches: BTreeMap::new(),
            restored: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Takes in this node's alerts as the restored state holds them, at `now_ms`. An alert
    /// still raised was announced before the restart: its machine starts raised, as if
    /// announced now, so a restart never announces it again. Returns the raised alerts no
    /// rule names any more (the config changed), which the node should clear.
    pub fn restore<'a>(
        &mut self,
        alerts: impl IntoIterator<Item = (&'a AlertName, &'a Alert)>,
        now_ms: u64,
    ) -> Vec<AlertName> {
        let mut orphans = Vec::new();
        for (name, alert) in alerts {
            if alert.cleared_at_ms.is_some() {
                continue;
            }
            let rule_id = name.as_str().split('/').next().unwrap_or_default();
            if self.rules.iter().any(|rule| rule.id == rule_id) {
                self.restored.insert(name.clone(), now_ms);
            } else {
                orphans.push(name.clone());
            }
        }
        orphans
    }

    /// A new reading of this node's `sensor`.
    pub fn observe(
        &mut self,
        sensor: &SensorId,
        room: &Room,
        quantity: Quantity,
        value: f64,
        now_ms: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for index in 0..self.rules.len() {
            let rule = &self.rules[index];
            if !rule.applies_to(room, quantity) {
                continue;
            }
            let key = (index, sensor.clone());
            let restored = &mut self.restored;
            let watch = self.watches.entry(key).or_insert_with(|| {
                let machine = match restored.remove(&rule.alert_name(sensor)) {
                    Some(announced_ms) => Machine::raised(announced_ms),
                    None => Machine::default(),
                };
                Watch {
                    room: room.clone(),
                    value,
                    machine,
                }
            });
            watch.room = room.clone();
            watch.value = value;
            let transition = watch.machine.step(&rule.trigger, value, now_ms);
            actions.extend(transition.map(|transition| action(rule, sensor, watch, transition)));
        }
        actions
    }

    /// The passing of time: steps every watched sensor with its last value, so a condition
    /// that holds without new readings still raises after `for_s`, and repeats come due.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        for ((index, sensor), watch) in &mut self.watches {
            let rule = &self.rules[*index];
            let transition = watch.machine.step(&rule.trigger, watch.value, now_ms);
            actions.extend(transition.map(|transition| action(rule, sensor, watch, transition)));
        }
        actions
    }
}

fn action(rule: &Rule, sensor: &SensorId, watch: &Watch, transition: Transition) -> Action {
    let name = rule.alert_name(sensor);
    let message = || {
        rule.message.render(&Fill {
            room: &watch.room,
            sensor,
            quantity: rule.quantity,
            value: watch.value,
            threshold: rule.trigger.threshold.value(),
        })
    };
    match transition {
        Transition::Raise => Action::Raise {
            name,
            room: watch.room.clone(),
            quantity: rule.quantity,
            message: message(),
        },
        Transition::Repeat => Action::Repeat {
            name,
            message: message(),
        },
        Transition::Clear => Action::Clear { name },
    }
}
