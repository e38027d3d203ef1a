//! The alert task: runs this node's rules ([`crate::alerts`]) over its own readings, writes
//! raised and cleared alerts to the replicated state, and hands what to announce to the
//! node's sinks (the webhook, Slack, Matrix).
//!
//! Only the node that owns a sensor evaluates it, and only the node that raised an alert
//! announces it, so a crossing is announced once across the office however many nodes
//! hold the alert (`docs/alerts.md` says why this is enough).

use std::{collections::BTreeMap, time::Duration};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{OfficeHandle, Write, physical_ms};
use crate::{
    alerts::{Action, Evaluator},
    state::{Alert, Hlc, Reading, Replica, SensorId},
};

/// How often rules are stepped without a new reading, so `for_s` and `repeat_s` pass on
/// time even from a sensor that reports rarely.
pub const TICK: Duration = Duration::from_secs(1);

/// Runs `evaluator` over this node's readings until `shutdown`. Announcements go to
/// every sink (the webhook, Slack, Matrix) without waiting: a sink whose queue is full misses
/// the message, which is logged.
pub async fn run(
    office: OfficeHandle,
    mut evaluator: Evaluator,
    sinks: Vec<mpsc::Sender<String>>,
    shutdown: CancellationToken,
) {
    if evaluator.rules().is_empty() {
        return;
    }
    let mut changes = office.subscribe();
    let view = changes.borrow_and_update().clone();
    let me = view.id().clone();
    // A still-raised alert in the restored state was announced before the restart.
    let own_alerts = view
        .latest::<Alert>()
        .filter(|(id, _)| id.node == me)
        .map(|(id, alert)| (&id.name, alert));
    let orphans = evaluator.restore(own_alerts, physical_ms());
    for name in orphans {
        info!(alert = %name, "clearing an alert no configured rule raises any more");
        apply(&office, &sinks, Action::Clear { name }).await;
    }
    // Readings already in the state at start were judged before the restart.
    let mut seen = own_readings(&view);

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let actions = tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let view = changes.borrow_and_update().clone();
                let now_ms = physical_ms();
                let mut actions = Vec::new();
                for (sensor, reading) in own_readings_of(&view) {
                    if seen.get(sensor).is_some_and(|at| *at >= reading.at) {
                        continue;
                    }
                    seen.insert(sensor.clone(), reading.at);
                    actions.extend(evaluator.observe(
                        sensor,
                        &reading.room,
                        reading.quantity,
                        reading.value,
                        now_ms,
                    ));
                }
                actions
            }
            _ = tick.tick() => evaluator.tick(physical_ms()),
        };
        for action in actions {
            apply(&office, &sinks, action).await;
        }
    }
}

fn own_readings_of(view: &Replica) -> impl Iterator<Item = (&SensorId, &Reading)> {
    let me = view.id();
    view.latest::<Reading>()
        .filter(move |(key, _)| key.node == *me)
        .map(|(key, reading)| (&key.sensor, reading))
}

fn own_readings(view: &Replica) -> BTreeMap<SensorId, Hlc> {
    own_readings_of(view)
        .map(|(sensor, reading)| (sensor.clone(), reading.at))
        .collect()
}

async fn apply(office: &OfficeHandle, sinks: &[mpsc::Sender<String>], action: Action) {
    match action {
        Action::Raise {
            name,
            room,
            quantity,
            message,
        } => {
            let write = Write::RaiseAlert {
                name: name.clone(),
                room,
                quantity,
                message: message.clone(),
            };
            // Announce only what the state holds: an alert that was not written would be
            // raised and announced again at the next step.
            match office.write_durable(write).await {
                Ok(()) => {
                    info!(alert = %name, "alert raised: {message}");
                    announce(sinks, message.as_str());
                }
                Err(error) => warn!(%error, alert = %name, "cannot raise the alert"),
            }
        }
        Action::Repeat { name, message } => {
            info!(alert = %name, "alert still raised: {message}");
            announce(sinks, message.as_str());
        }
        Action::Clear { name } => {
            match office
                .write_durable(Write::ClearAlert { name: name.clone() })
                .await
            {
                Ok(()) => info!(alert = %name, "alert cleared"),
                Err(error) => warn!(%error, alert = %name, "cannot clear the alert"),
            }
        }
    }
}

fn announce(sinks: &[mpsc::Sender<String>], text: &str) {
    for sink in sinks {
        match sink.try_send(text.to_owned()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                warn!(
                    "a chat sink is behind and its queue is full; alert not posted there: {text}"
                );
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }
}
