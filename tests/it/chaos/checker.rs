//! What must hold after the chaos: the nodes' states compared, and the recorded writes
//! looked up in the final state.
//!
//! Two nodes' `GET /api/state` answers are compared without what each node derives from its
//! own clock (`age_s`, `stale`, `present`), without the answering node's id, and without
//! heartbeats (`heartbeat_ms`), which every node rewrites every 30 s by itself: a heartbeat
//! in flight is not a disagreement. Everything written by the workload, every node entry and
//! every alert is compared.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::workload::{Kind, Workload, Write};

/// `state` without the fields that differ between nodes holding the same replica, with every
/// list in one order.
pub fn comparable(state: &Value) -> Value {
    let mut state = state.clone();
    if let Some(object) = state.as_object_mut() {
        object.remove("node");
    }
    strip(&mut state, &["age_s", "stale", "present", "heartbeat_ms"]);
    sort(&mut state);
    state
}

fn strip(value: &mut Value, fields: &[&str]) {
    match value {
        Value::Object(object) => {
            for field in fields {
                object.remove(*field);
            }
            for inner in object.values_mut() {
                strip(inner, fields);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| strip(item, fields)),
        _ => {}
    }
}

fn sort(value: &mut Value) {
    match value {
        Value::Object(object) => object.values_mut().for_each(sort),
        Value::Array(items) => {
            items.iter_mut().for_each(sort);
            items.sort_by_key(Value::to_string);
        }
        _ => {}
    }
}

/// Where two states first differ: a path into them and each side's value there (shortened),
/// for a message saying what keeps two nodes apart.
pub fn first_difference(a: &Value, b: &Value) -> Option<String> {
    fn shown(value: Option<&Value>) -> String {
        let text = value.map_or_else(|| "nothing".to_owned(), Value::to_string);
        if text.chars().count() > 400 {
            format!("{}...", text.chars().take(400).collect::<String>())
        } else {
            text
        }
    }
    /// `within`: the objects holding `a` and `b`, shown when they differ in a plain value.
    fn walk(
        a: Option<&Value>,
        b: Option<&Value>,
        path: String,
        within: (Option<&Value>, Option<&Value>),
    ) -> Option<String> {
        if a == b {
            return None;
        }
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                keys.into_iter()
                    .find_map(|key| walk(x.get(key), y.get(key), format!("{path}/{key}"), (a, b)))
            }
            (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => (0..x.len())
                .find_map(|index| {
                    walk(
                        x.get(index),
                        y.get(index),
                        format!("{path}/{index}"),
                        within,
                    )
                }),
            // Lists of different lengths: what one holds and the other does not.
            (Some(Value::Array(x)), Some(Value::Array(y))) => {
                let only = |from: &[Value], other: &[Value]| {
                    from.iter().find(|item| !other.contains(item)).cloned()
                };
                Some(format!(
                    "at {path}: {} items vs {}; only in the first: {}; only in the second: {}",
                    x.len(),
                    y.len(),
                    shown(only(x, y).as_ref()),
                    shown(only(y, x).as_ref())
                ))
            }
            _ => Some(format!(
                "at {path}: {} vs {} (in {} vs {})",
                shown(a),
                shown(b),
                shown(within.0),
                shown(within.1)
            )),
        }
    }
    walk(Some(a), Some(b), String::new(), (None, None))
}

/// A short account of a state, for a message saying how two nodes differ.
pub fn summary(state: &Value) -> String {
    let count = |field: &str| state[field].as_array().map_or(0, Vec::len);
    let rooms = state["rooms"].as_array().cloned().unwrap_or_default();
    let readings: usize = rooms
        .iter()
        .map(|room| room["readings"].as_array().map_or(0, Vec::len))
        .sum();
    let targets: usize = rooms
        .iter()
        .flat_map(|room| room["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| 1 + target["concurrent"].as_array().map_or(0, Vec::len))
        .sum();
    format!(
        "{} nodes, {readings} readings, {targets} target values, {} people, {} devices, {} alerts",
        count("nodes"),
        count("people"),
        count("devices"),
        count("alerts")
    )
}

/// Every acknowledged write looked up in `state` (the state all nodes agree on): the
/// problems found, each naming the write. `lost` counts acknowledged writes missing.
pub fn check_writes(workload: &Workload, state: &Value) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let readings = readings(state);
    let targets = targets(state);
    let people = people(state);
    let mut by_key: BTreeMap<(KindKey, &str), Vec<&Write>> = BTreeMap::new();
    for write in &workload.writes {
        by_key
            .entry((KindKey::from(write.kind), &write.key))
            .or_default()
            .push(write);
    }
    let mut lost = 0;
    for ((kind, key), writes) in &by_key {
        for write in writes.iter().filter(|write| write.acked_at.is_some()) {
            // A write sent after this one, acknowledged or not, may have replaced it.
            let replaced = writes.iter().any(|other| other.sent_at > write.sent_at);
            let present = match kind {
                KindKey::Reading => readings.get(*key) == Some(&write.value),
                KindKey::Target => targets
                    .get(*key)
                    .is_some_and(|values| values.contains(&write.value)),
                KindKey::Binding => {
                    let person = key.split_once('/').map_or(*key, |(person, _)| person);
                    people
                        .get(person)
                        .is_some_and(|devices| devices.contains(&write.value))
                }
            };
            if !present && !replaced {
                lost += 1;
                problems.push(format!(
                    "lost: the {:?} write {key} = {} acknowledged by host {} is not in the final state (it holds {})",
                    write.kind,
                    write.value,
                    write.host + 1,
                    match kind {
                        KindKey::Reading => format!("{:?}", readings.get(*key)),
                        KindKey::Target => format!("{:?}", targets.get(*key)),
                        KindKey::Binding => "no such binding".to_owned(),
                    }
                ));
            }
        }
    }
    // Nothing appears that nobody wrote.
    let sent: BTreeSet<&str> = workload
        .writes
        .iter()
        .filter(|write| write.kind == Kind::Target)
        .map(|write| write.value.as_str())
        .collect();
    for (room, values) in &targets {
        for value in values {
            if !sent.contains(value.as_str()) {
                problems.push(format!(
                    "the target of {room} holds a value set by {value}, which the workload never sent"
                ));
            }
        }
    }
    // Concurrent sets from the two sides of a partition are both kept.
    for (room, set_by) in &workload.contested {
        let values = targets.get(room.as_str()).cloned().unwrap_or_default();
        for side in set_by {
            if !values.contains(side) {
                problems.push(format!(
                    "{room} was set from both sides of a partition ({set_by:?}), but the final state shows only {values:?}"
                ));
            }
        }
    }
    (problems, lost)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KindKey {
    Reading,
    Target,
    Binding,
}

impl From<Kind> for KindKey {
    fn from(kind: Kind) -> KindKey {
        match kind {
            Kind::Reading => KindKey::Reading,
            Kind::Target => KindKey::Target,
            Kind::Binding => KindKey::Binding,
        }
    }
}

/// `<node>/<sensor>` -> the value with two decimals.
fn readings(state: &Value) -> BTreeMap<String, String> {
    rooms(state)
        .flat_map(|room| room["readings"].as_array().cloned().unwrap_or_default())
        .map(|reading| {
            (
                format!(
                    "{}/{}",
                    reading["node"].as_str().unwrap_or(""),
                    reading["sensor"].as_str().unwrap_or("")
                ),
                format!("{:.2}", reading["value"].as_f64().unwrap_or(f64::NAN)),
            )
        })
        .collect()
}

/// Room -> the `set_by` of its temperature target's value and of every concurrent one.
fn targets(state: &Value) -> BTreeMap<String, Vec<String>> {
    rooms(state)
        .filter_map(|room| {
            let target = room["targets"]
                .as_array()?
                .iter()
                .find(|target| target["quantity"] == "temperature")?
                .clone();
            let mut values = vec![target["set_by"].as_str()?.to_owned()];
            for other in target["concurrent"].as_array().cloned().unwrap_or_default() {
                values.extend(other["set_by"].as_str().map(str::to_owned));
            }
            Some((room["name"].as_str()?.to_owned(), values))
        })
        .collect()
}

/// Person -> the devices bound to them.
fn people(state: &Value) -> BTreeMap<String, Vec<String>> {
    state["people"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|person| {
            let devices = person["devices"]
                .as_array()?
                .iter()
                .filter_map(|device| device.as_str().map(str::to_owned))
                .collect();
            Some((person["name"].as_str()?.to_owned(), devices))
        })
        .collect()
}

fn rooms(state: &Value) -> impl Iterator<Item = Value> {
    state["rooms"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
}

/// The alert announcements: each crossing's text at most once, and none the workload did
/// not cause.
pub fn check_announcements(workload: &Workload, texts: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for text in texts {
        *counts.entry(text.as_str()).or_default() += 1;
    }
    for (text, count) in counts {
        if count > 1 {
            problems.push(format!("the crossing {text:?} was announced {count} times"));
        }
        if !workload.crossing_texts.iter().any(|sent| sent == text) {
            problems.push(format!(
                "an announcement {text:?} matches no crossing the workload made"
            ));
        }
    }
    problems
}
