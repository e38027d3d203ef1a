//! The office actor's tests, on a real store in a temporary directory: what it saves and
//! when, the history it hands over, expiry.

use std::{path::Path, time::Instant};

use super::{
    testing::{SAVE_INTERVAL, start_office, start_office_holding, start_office_saving_every},
    *,
};
use crate::{
    state::{DEFAULT_RETENTION_MS, Part, Person, Quantity, SensorId},
    store::{self, JOURNAL_FLOOR_BYTES, Saved},
};

/// A periodic save far beyond any test: saves seen are the other kinds.
const HOURLY: Duration = Duration::from_secs(3600);

fn reading(sensor: &str, value: f64) -> Write {
    Write::Reading {
        sensor: SensorId::new(sensor).unwrap(),
        room: Room::new("lab").unwrap(),
        quantity: Quantity::Temperature,
        value,
        unit: "°C".into(),
    }
}

/// A peer of the office, whose writes the tests merge.
fn peer() -> Replica {
    let mut peer = Replica::new(NodeId::new("12D3KooWPeer").unwrap(), DEFAULT_RETENTION_MS);
    peer.snapshot();
    peer
}

/// Merges a few readings of `peer` into the office: pending changes this node leaves to
/// its peers.
async fn merge_peer_readings(handle: &OfficeHandle, peer: &mut Replica) {
    for index in 0..5 {
        let delta = peer
            .record_reading(
                SensorId::new(&format!("peer-{index}")).unwrap(),
                Room::new("hall").unwrap(),
                Quantity::Temperature,
                19.0,
                "°C",
                physical_ms(),
            )
            .unwrap();
        let report = handle.merge(delta, peer.id().clone()).await.unwrap();
        assert_eq!(report.added, 1, "{report:?}");
    }
}

/// What the store of `dir` holds now (base and journal).
fn saved(dir: &Path) -> Saved {
    store::peek(dir).unwrap().expect("a saved replica")
}

fn parts(delta: &Delta) -> Vec<Part> {
    delta.store.dots().map(|(part, _)| part).collect()
}

/// Whether `delta` has seen any write of `writer`.
fn knows_writer(delta: &Delta, writer: &NodeId) -> bool {
    delta
        .context
        .get(writer)
        .is_some_and(|seen| !seen.is_empty())
}

/// How long a test waits for the store thread, in real time.
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` until it holds, advancing tokio's (possibly paused) clock between polls,
/// for at most [`DEADLINE`] of real time.
async fn poll_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_acknowledged_write_saves_its_own_delta_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let id = NodeId::new("12D3KooWAcked").unwrap();
    let shutdown = CancellationToken::new();
    let replica = Replica::new(id.clone(), DEFAULT_RETENTION_MS);
    let (handle, mut outbox, _store) =
        start_office_saving_every(dir.path(), replica, &shutdown, HOURLY).await;
    tokio::spawn(async move { while outbox.recv().await.is_some() {} });
    let mut peer = peer();
    merge_peer_readings(&handle, &mut peer).await;
    handle.write(reading("polled", 20.0)).await.unwrap();
    assert!(
        saved(dir.path()).journal.is_empty(),
        "nothing acknowledged yet"
    );

    let target = Write::Target {
        room: Room::new("lab").unwrap(),
        quantity: Quantity::Temperature,
        value: 21.0,
        unit: "°C".into(),
        set_by: Person::new("ada").unwrap(),
    };
    handle.write_durable(target).await.unwrap();
    // Answered: the append is on disk now, with no wait.
    let journal = saved(dir.path()).journal;
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(parts(&journal[0]), [Part::Targets]);
    assert!(!knows_writer(&journal[0], peer.id()), "{:?}", journal[0]);
    assert!(handle.unsaved(), "the rest is still pending");
    shutdown.cancel();
}

#[tokio::test]
async fn a_reading_a_peer_holds_is_acknowledged_without_a_save_here() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let replica = Replica::new(NodeId::new("12D3KooWHeld").unwrap(), DEFAULT_RETENTION_MS);
    // A deadline no test reaches: only the peer's answer can settle the write.
    let (handle, mut outbox, _store) = start_office_holding(
        dir.path(),
        replica,
        &shutdown,
        HOURLY,
        Duration::from_secs(600),
    )
    .await;
    let (handed, mut handed_rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(outgoing) = outbox.recv().await {
            if let Some(held) = outgoing.held {
                handed.send(outgoing.delta.clone()).await.unwrap();
                let _ = held.send(true);
            }
        }
    });
    handle.write_durable(reading("pushed", 20.0)).await.unwrap();
    let delta = handed_rx.recv().await.unwrap();
    assert_eq!(parts(&delta), [Part::Readings], "the peer got the write");
    assert!(
        saved(dir.path()).journal.is_empty(),
        "nothing synced here for a held reading"
    );
    assert!(handle.unsaved(), "it goes with the periodic save");

    // What people said is synced here whatever peers hold.
    let target = Write::Target {
        room: Room::new("lab").unwrap(),
        quantity: Quantity::Temperature,
        value: 21.0,
        unit: "°C".into(),
        set_by: Person::new("ada").unwrap(),
    };
    handle.write_durable(target).await.unwrap();
    assert!(handed_rx.try_recv().is_err(), "a target is not handed over");
    let journal = saved(dir.path()).journal;
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(parts(&journal[0]), [Part::Targets]);
    shutdown.cancel();
}

#[tokio::test]
async fn a_reading_no_peer_holds_in_time_is_synced_here() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let replica = Replica::new(NodeId::new("12D3KooWAlone").unwrap(), DEFAULT_RETENTION_MS);
    let (handle, mut outbox, _store) = start_office_holding(
        dir.path(),
        replica,
        &shutdown,
        HOURLY,
        Duration::from_millis(50),
    )
    .await;
    // The first peer never answers (frozen); the second says it does not hold it.
    tokio::spawn(async move {
        let mut silent = Vec::new();
        while let Some(outgoing) = outbox.recv().await {
            if let Some(held) = outgoing.held {
                if silent.is_empty() {
                    silent.push(held);
                } else {
                    let _ = held.send(false);
                }
            }
        }
    });
    handle.write_durable(reading("pushed", 20.0)).await.unwrap();
    let journal = saved(dir.path()).journal;
    assert_eq!(
        journal.len(),
        1,
        "synced here after the deadline: {journal:?}"
    );
    assert_eq!(parts(&journal[0]), [Part::Readings]);

    handle.write_durable(reading("pushed", 21.0)).await.unwrap();
    let journal = saved(dir.path()).journal;
    assert_eq!(journal.len(), 2, "synced here when refused: {journal:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn an_acknowledged_write_whose_append_fails_is_answered_not_saved() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let replica = Replica::new(
        NodeId::new("12D3KooWFailing").unwrap(),
        DEFAULT_RETENTION_MS,
    );
    let (handle, mut outbox, store) =
        start_office_saving_every(dir.path(), replica, &shutdown, HOURLY).await;
    tokio::spawn(async move { while outbox.recv().await.is_some() {} });
    handle.write_durable(reading("pushed", 20.0)).await.unwrap();
    // The store thread stops: every save from now on fails, as on a dead card.
    store.close().await.unwrap();
    let error = handle
        .write_durable(reading("pushed", 21.0))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, OfficeError::NotSaved(text) if text.contains("closed")),
        "{error:?}"
    );
    assert_eq!(
        handle
            .view()
            .latest::<crate::state::Reading>()
            .next()
            .map(|(_, r)| r.value),
        Some(21.0),
        "made in memory, for peers to get"
    );
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn the_periodic_save_keeps_this_nodes_writes_and_leaves_peers_readings() {
    let dir = tempfile::tempdir().unwrap();
    let id = NodeId::new("12D3KooWPeriodic").unwrap();
    let shutdown = CancellationToken::new();
    let replica = Replica::new(id.clone(), DEFAULT_RETENTION_MS);
    let (handle, mut outbox, _store) =
        start_office_saving_every(dir.path(), replica, &shutdown, HOURLY).await;
    tokio::spawn(async move { while outbox.recv().await.is_some() {} });
    let mut peer = peer();
    merge_peer_readings(&handle, &mut peer).await;
    handle.write(reading("polled", 20.0)).await.unwrap();
    assert!(handle.unsaved());

    tokio::time::sleep(HOURLY).await;
    poll_until("the periodic save", async || !handle.unsaved()).await;
    // Paused time runs on while the store thread works: later saves (of heartbeats) may
    // follow; the first holds what was pending.
    let journal = saved(dir.path()).journal;
    assert!(!journal.is_empty());
    assert!(
        journal.iter().all(|delta| !knows_writer(delta, peer.id())),
        "{journal:?}"
    );
    let kept = parts(&journal[0]);
    assert!(kept.contains(&Part::Readings), "{kept:?}");
    assert!(kept.contains(&Part::Nodes), "the heartbeat: {kept:?}");
    assert!(
        journal[0].store.dots().all(|(_, dot)| dot.writer == id),
        "{:?}",
        journal[0]
    );
    // The peer's readings and their dots are left out: sync brings them back.
    assert!(!knows_writer(&journal[0], peer.id()), "{:?}", journal[0]);
    shutdown.cancel();
}

#[tokio::test]
async fn a_merged_target_is_saved_within_about_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let replica = Replica::new(NodeId::new("12D3KooWPrompt").unwrap(), DEFAULT_RETENTION_MS);
    let (handle, mut outbox, _store) =
        start_office_saving_every(dir.path(), replica, &shutdown, HOURLY).await;
    tokio::spawn(async move { while outbox.recv().await.is_some() {} });
    let mut peer = peer();
    merge_peer_readings(&handle, &mut peer).await;
    let set = peer
        .set_target(
            Room::new("hall").unwrap(),
            Quantity::Temperature,
            23.0,
            "°C",
            Person::new("grace").unwrap(),
            physical_ms(),
        )
        .unwrap();
    let target_dot = set.store.targets.iter().next().unwrap().1.clone();
    let merged_at = Instant::now();
    handle.merge(set, peer.id().clone()).await.unwrap();
    poll_until("the merged target saved", async || {
        saved(dir.path())
            .journal
            .iter()
            .any(|delta| delta.context.contains(&target_dot))
    })
    .await;
    let waited = merged_at.elapsed();
    assert!(
        waited < PROMPT_SAVE_DELAY * 5,
        "saved {waited:?} after the merge"
    );
    // The same restricted append as the periodic save: the target with this node's own
    // pending writes (its heartbeat), not the peer's readings.
    let journal = saved(dir.path()).journal;
    assert_eq!(journal.len(), 1, "{journal:?}");
    let peer_writes: Vec<Part> = journal[0]
        .store
        .dots()
        .filter(|(_, dot)| dot.writer == *peer.id())
        .map(|(part, _)| part)
        .collect();
    assert_eq!(peer_writes, [Part::Targets]);
    let peer_seen = journal[0].context.get(peer.id()).unwrap();
    assert_eq!(peer_seen.count(), 1, "only the target's dot: {peer_seen:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn the_journal_is_folded_into_a_new_base_once_it_outgrows_it() {
    let dir = tempfile::tempdir().unwrap();
    let id = NodeId::new("12D3KooWCompact").unwrap();
    let shutdown = CancellationToken::new();
    let replica = Replica::new(id.clone(), DEFAULT_RETENTION_MS);
    let (handle, mut outbox, _store) =
        start_office_saving_every(dir.path(), replica, &shutdown, HOURLY).await;
    tokio::spawn(async move { while outbox.recv().await.is_some() {} });
    let first_ceiling = saved(dir.path()).base.seq_ceiling;
    // Each acknowledged reading appends about a hundred bytes: enough of them pass the
    // floor, the base being tiny.
    let writes = 2 * JOURNAL_FLOOR_BYTES / 100;
    for index in 0..writes {
        handle
            .write_durable(reading("pushed", 20.0 + (index % 10) as f64))
            .await
            .unwrap();
    }
    let saved = saved(dir.path());
    assert!(
        saved.base.seq_ceiling > first_ceiling,
        "no new base after {writes} appends"
    );
    assert!(
        (saved.journal.len() as u64) < writes,
        "{} rows left",
        saved.journal.len()
    );
    let last = saved
        .restore(DEFAULT_RETENTION_MS)
        .latest::<crate::state::Reading>()
        .map(|(_, reading)| reading.value)
        .next();
    assert_eq!(last, Some(20.0 + ((writes - 1) % 10) as f64));
    shutdown.cancel();
}

#[tokio::test]
async fn readings_reach_the_saved_history_and_the_state_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let id = NodeId::new("12D3KooWHistory").unwrap();
    let shutdown = CancellationToken::new();
    let (handle, _outbox, store) = start_office(
        dir.path(),
        Replica::new(id.clone(), DEFAULT_RETENTION_MS),
        &shutdown,
    )
    .await;
    // Three sensors: the history keeps one row per sensor and millisecond.
    let sensors = ["desk", "door", "window"].map(|name| SensorId::new(name).unwrap());
    for (sensor, value) in sensors.iter().zip([20.0, 20.5, 21.0]) {
        let write = Write::Reading {
            sensor: sensor.clone(),
            room: Room::new("lab").unwrap(),
            quantity: Quantity::Temperature,
            value,
            unit: "°C".into(),
        };
        handle.write(write).await.unwrap();
    }
    assert!(handle.unsaved(), "written, not yet saved");
    let history = async || {
        let mut values = Vec::new();
        for sensor in &sensors {
            let rows = store
                .history(id.clone(), sensor.clone(), 0..u64::MAX)
                .await
                .unwrap();
            values.extend(rows.iter().map(|row| row.value));
        }
        values
    };
    poll_until("the three readings in the history", async || {
        history().await.len() == 3
    })
    .await;
    assert_eq!(history().await, [20.0, 20.5, 21.0]);
    poll_until("the state saved", async || !handle.unsaved()).await;
    shutdown.cancel();
}

#[tokio::test]
async fn the_state_is_saved_at_shutdown_and_the_store_closed_after() {
    let dir = tempfile::tempdir().unwrap();
    let id = NodeId::new("12D3KooWShutdown").unwrap();
    let shutdown = CancellationToken::new();
    let store = StoreHandle::spawn(crate::store::Store::open(dir.path()).unwrap()).unwrap();
    let identity = Identity {
        name: NodeName::new("pi").unwrap(),
        room: Room::new("lab").unwrap(),
        started_at_ms: 0,
    };
    let replica = Replica::new(id.clone(), DEFAULT_RETENTION_MS);
    let (office, handle, _outbox) = Office::new(replica, identity, store.clone(), SAVE_INTERVAL)
        .await
        .unwrap();
    let task = tokio::spawn(office.run(shutdown.clone()));
    let write = Write::Bind {
        person: crate::state::Person::new("mendes").unwrap(),
        mac: "00:1a:2b:3c:4d:5e".parse().unwrap(),
    };
    handle.write(write).await.unwrap();
    // Stopped before the first periodic save is due: the last save holds the binding.
    shutdown.cancel();
    task.await.unwrap();
    store.close().await.unwrap();
    assert!(
        matches!(
            store
                .save_snapshot(Replica::new(id.clone(), 0).snapshot())
                .await,
            Err(StoreError::Stopped { .. })
        ),
        "a closed store refuses work"
    );
    let reopened = crate::store::Store::open(dir.path()).unwrap();
    let saved = reopened.load().unwrap().expect("a saved state");
    assert!(
        saved.journal.is_empty(),
        "shutdown folds the journal into a new base"
    );
    let restored = saved.restore(DEFAULT_RETENTION_MS);
    assert_eq!(restored.store().people.len(), 1, "the binding survived");
}

#[tokio::test(start_paused = true)]
async fn a_node_without_peers_forgets_devices_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    // A zero retention: every sighting has expired by the next hourly pass.
    let replica = Replica::new(NodeId::new("12D3KooWExpiry").unwrap(), 0);
    let shutdown = CancellationToken::new();
    let (handle, mut outbox, _store) = start_office(dir.path(), replica, &shutdown).await;
    // An hour of paused time is 120 heartbeats: drain them as the network actor would.
    tokio::spawn(async move { while outbox.recv().await.is_some() {} });
    let seen = vec![
        (
            "00:1a:2b:3c:4d:5e".parse().unwrap(),
            "192.0.2.10".parse().unwrap(),
        ),
        (
            "f2:c6:75:56:2f:91".parse().unwrap(),
            "192.0.2.11".parse().unwrap(),
        ),
    ];
    handle.write(Write::Sightings { seen }).await.unwrap();
    assert_eq!(
        handle.view().store().network.len(),
        2,
        "one batch, two rows"
    );
    // With time paused, the next pass runs as soon as the actor is idle.
    tokio::time::sleep(EXPIRY_INTERVAL + SAVE_INTERVAL).await;
    poll_until("the sightings forgotten", async || {
        handle.view().store().network.is_empty()
    })
    .await;
    shutdown.cancel();
}
