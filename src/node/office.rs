//! The office actor: the one owner of this node's [`Replica`].
//!
//! Everything that reads or changes the office state goes through an [`OfficeHandle`]:
//! local writes (sensors, HTTP, chat), deltas and sync requests from the network. The actor
//! applies them one at a time, hands each local delta to the network, publishes the new state
//! on a watch channel for readers (HTTP, bot), and saves to the store in batches.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::{
    state::{
        AlertName, Delta, Digest, Mac, MergeReport, Message, NodeId, NodeName, Person, Quantity,
        ReadingKey, Replica, Room, SensorId, Snapshot, Version, WriteError,
    },
    store::HistoryRow,
};

/// Commands waiting for the actor: HTTP requests, sensor readings, network merges. A burst of
/// sync answers from a whole office fits; beyond, senders wait (backpressure), nothing is lost.
pub const COMMAND_CAPACITY: usize = 256;

/// Deltas waiting for the network actor to publish them.
pub const OUTBOX_CAPACITY: usize = 256;

/// How often a changed replica is saved. Its own readings written since the last save are
/// what a kill -9 can lose; everything else comes back from peers.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// How often the node rewrites its own entry (its heartbeat).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// Readings waiting for the next batched history append. At one save a second this only
/// fills if the store keeps failing; then the oldest rows are dropped, not the node.
pub const MAX_PENDING_HISTORY: usize = 10_000;

/// How often raw history older than its retention is rolled up into hours.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Milliseconds since the Unix epoch, by this machine's clock. The only place the node reads
/// the wall clock for the office state; the core takes it as an argument.
pub fn physical_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A local change to the office state.
#[derive(Debug, Clone)]
pub enum Write {
    Reading {
        sensor: SensorId,
        room: Room,
        quantity: Quantity,
        value: f64,
        unit: String,
    },
    Target {
        room: Room,
        quantity: Quantity,
        value: f64,
        unit: String,
        set_by: Person,
    },
    Bind {
        person: Person,
        mac: Mac,
    },
    Unbind {
        person: Person,
        mac: Mac,
    },
    /// Devices this node saw in one scan, written as one delta.
    Sightings {
        seen: Vec<(Mac, IpAddr)>,
    },
    RaiseAlert {
        name: AlertName,
        room: Room,
        quantity: Quantity,
        message: Message,
    },
    ClearAlert {
        name: AlertName,
    },
}

impl Write {
    /// Writes a person made (chat, HTTP) and alerts go out at once; readings and sightings
    /// wait for the next publish batch.
    fn urgent(&self) -> bool {
        !matches!(self, Write::Reading { .. } | Write::Sightings { .. })
    }
}

/// A delta for the network to push to peers.
#[derive(Debug)]
pub struct Outgoing {
    pub delta: Delta,
    /// Publish now rather than with the next batch.
    pub urgent: bool,
}

/// Why an office request failed.
#[derive(Debug, Error)]
pub enum OfficeError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("the node is shutting down")]
    Stopped,
    #[error("cannot save the office state: {0}")]
    Save(String),
}

/// Where the actor saves. Implemented by the SQLite store; tests may use a directory.
pub trait Persist: Send + 'static {
    /// Saves the replica; must be durable when it returns, because the snapshot reserves
    /// sequence numbers the replica is about to use.
    fn save(&mut self, snapshot: &Snapshot) -> Result<(), String>;

    /// Appends this node's readings to its history, in one batch.
    fn append_history(&mut self, _rows: &[HistoryRow]) -> Result<(), String> {
        Ok(())
    }

    /// Rolls up and drops history older than its retention, as of `now_ms`.
    fn prune_history(&mut self, _now_ms: u64) -> Result<(), String> {
        Ok(())
    }
}

enum Command {
    Write {
        write: Write,
        reply: oneshot::Sender<Result<(), OfficeError>>,
    },
    Merge {
        delta: Delta,
        from: NodeId,
        reply: oneshot::Sender<MergeReport>,
    },
    Digest {
        reply: oneshot::Sender<Digest>,
    },
    MissingFor {
        digest: Digest,
        reply: oneshot::Sender<Delta>,
    },
}

/// A cloneable handle on the office actor.
#[derive(Clone)]
pub struct OfficeHandle {
    commands: mpsc::Sender<Command>,
    view: watch::Receiver<Arc<Replica>>,
    unsaved: Arc<AtomicBool>,
}

impl OfficeHandle {
    /// The office state as of the last change.
    pub fn view(&self) -> Arc<Replica> {
        self.view.borrow().clone()
    }

    /// Whether the state has changed since the last save: what a kill -9 now would lose
    /// from this node's disk (peers still hold their own writes).
    pub fn unsaved(&self) -> bool {
        self.unsaved.load(Ordering::Relaxed)
    }

    /// A receiver that wakes on every change, for live views (server-sent events).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Replica>> {
        self.view.clone()
    }

    pub async fn write(&self, write: Write) -> Result<(), OfficeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Write { write, reply }).await?;
        answer.await.map_err(|_| OfficeError::Stopped)?
    }

    /// Merges a delta from peer `from`; the report says what was rejected.
    pub async fn merge(&self, delta: Delta, from: NodeId) -> Result<MergeReport, OfficeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Merge { delta, from, reply }).await?;
        answer.await.map_err(|_| OfficeError::Stopped)
    }

    pub async fn digest(&self) -> Result<Digest, OfficeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Digest { reply }).await?;
        answer.await.map_err(|_| OfficeError::Stopped)
    }

    pub async fn missing_for(&self, digest: Digest) -> Result<Delta, OfficeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::MissingFor { digest, reply }).await?;
        answer.await.map_err(|_| OfficeError::Stopped)
    }

    async fn send(&self, command: Command) -> Result<(), OfficeError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| OfficeError::Stopped)
    }
}

/// Who this node is, for its heartbeat entry.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: NodeName,
    pub room: Room,
    pub started_at_ms: u64,
}

/// The actor's state; runs until `shutdown`, then saves one last time.
pub struct Office<P: Persist> {
    replica: Replica,
    identity: Identity,
    persist: P,
    commands: mpsc::Receiver<Command>,
    outbox: mpsc::Sender<Outgoing>,
    view: watch::Sender<Arc<Replica>>,
    /// Changed since the last save; shared with the handles.
    unsaved: Arc<AtomicBool>,
    /// This node's readings since the last save, for the history.
    history: Vec<HistoryRow>,
}

impl<P: Persist> Office<P> {
    /// Saves the replica (reserving sequence numbers) and returns the actor, its handle and
    /// the receiving end of the outbox. Fails if the first save fails: a node that cannot
    /// save must not write.
    pub fn new(
        mut replica: Replica,
        identity: Identity,
        mut persist: P,
    ) -> Result<(Self, OfficeHandle, mpsc::Receiver<Outgoing>), OfficeError> {
        // A node that was off for longer than the retention forgets what expired meanwhile
        // before anyone reads it (privacy); the hourly pass does it from then on.
        replica.expire(physical_ms());
        persist
            .save(&replica.snapshot())
            .map_err(OfficeError::Save)?;
        let (commands_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
        let (view, view_rx) = watch::channel(Arc::new(replica.clone()));
        let unsaved = Arc::new(AtomicBool::new(false));
        let office = Office {
            replica,
            identity,
            persist,
            commands,
            outbox,
            view,
            unsaved: unsaved.clone(),
            history: Vec::new(),
        };
        let handle = OfficeHandle {
            commands: commands_tx,
            view: view_rx,
            unsaved,
        };
        Ok((office, handle, outbox_rx))
    }

    pub fn id(&self) -> &NodeId {
        self.replica.id()
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        // `new` has just saved: the first save is due one interval from now.
        let mut save =
            tokio::time::interval_at(tokio::time::Instant::now() + SAVE_INTERVAL, SAVE_INTERVAL);
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        // `new` has just expired what was due: the first pass is one interval from now.
        let mut prune =
            tokio::time::interval_at(tokio::time::Instant::now() + PRUNE_INTERVAL, PRUNE_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
                _ = save.tick() => self.save_if_dirty(),
                _ = heartbeat.tick() => self.announce().await,
                _ = prune.tick() => {
                    if let Err(error) = self.persist.prune_history(physical_ms()) {
                        warn!(%error, "cannot prune the reading history; retrying in an hour");
                    }
                    // Merges expire entries too, but a node without peers must also forget
                    // the devices it saw (privacy).
                    if self.replica.expire(physical_ms()) > 0 {
                        self.changed();
                    }
                }
            }
        }
        self.unsaved.store(true, Ordering::Relaxed);
        self.save_if_dirty();
        info!("office state saved");
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Write { write, reply } => {
                let result = self.write(write).await;
                let _ = reply.send(result);
            }
            Command::Merge { delta, from, reply } => {
                let report = self.replica.merge(delta, &from, physical_ms());
                if report.changed() {
                    self.changed();
                }
                let _ = reply.send(report);
            }
            Command::Digest { reply } => {
                let _ = reply.send(self.replica.digest());
            }
            Command::MissingFor { digest, reply } => {
                let _ = reply.send(self.replica.missing_for(&digest));
            }
        }
    }

    async fn write(&mut self, write: Write) -> Result<(), OfficeError> {
        let urgent = write.urgent();
        let delta = match self.apply(&write) {
            Err(WriteError::LeaseExhausted { .. }) => {
                // Reserve more sequence numbers, durably, then write.
                self.persist
                    .save(&self.replica.snapshot())
                    .map_err(OfficeError::Save)?;
                self.apply(&write)?
            }
            other => other?,
        };
        self.changed();
        self.remember_history(&write);
        if self.outbox.send(Outgoing { delta, urgent }).await.is_err() {
            debug!("network stopped; the write stays local until sync");
        }
        Ok(())
    }

    fn apply(&mut self, write: &Write) -> Result<Delta, WriteError> {
        let now = physical_ms();
        let replica = &mut self.replica;
        match write.clone() {
            Write::Reading {
                sensor,
                room,
                quantity,
                value,
                unit,
            } => replica.record_reading(sensor, room, quantity, value, &unit, now),
            Write::Target {
                room,
                quantity,
                value,
                unit,
                set_by,
            } => replica.set_target(room, quantity, value, &unit, set_by, now),
            Write::Bind { person, mac } => replica.bind(person, mac, now),
            Write::Unbind { person, mac } => replica.unbind(person, mac, now),
            Write::Sightings { seen } => {
                let mut batch = Delta::default();
                for (mac, ip) in seen {
                    batch.join(&replica.observe_device(mac, ip, now)?);
                }
                Ok(batch)
            }
            Write::RaiseAlert {
                name,
                room,
                quantity,
                message,
            } => replica.raise_alert(name, room, quantity, message, now),
            Write::ClearAlert { name } => replica.clear_alert(name, now),
        }
    }

    async fn announce(&mut self) {
        let identity = self.identity.clone();
        let version = Version::new(env!("CARGO_PKG_VERSION")).expect("the crate version is valid");
        let mut result = self.replica.announce(
            identity.name.clone(),
            identity.room.clone(),
            version.clone(),
            identity.started_at_ms,
            physical_ms(),
        );
        if let Err(WriteError::LeaseExhausted { .. }) = result {
            if let Err(error) = self.persist.save(&self.replica.snapshot()) {
                error!(%error, "cannot save the office state; heartbeat skipped");
                return;
            }
            result = self.replica.announce(
                identity.name,
                identity.room,
                version,
                identity.started_at_ms,
                physical_ms(),
            );
        }
        match result {
            Ok(delta) => {
                self.changed();
                let _ = self
                    .outbox
                    .send(Outgoing {
                        delta,
                        urgent: false,
                    })
                    .await;
            }
            Err(error) => warn!(%error, "heartbeat not written"),
        }
    }

    /// Queues the reading just written for the next history batch.
    fn remember_history(&mut self, write: &Write) {
        let Write::Reading { sensor, .. } = write else {
            return;
        };
        let key = ReadingKey {
            node: self.replica.id().clone(),
            sensor: sensor.clone(),
        };
        let Some(reading) = self
            .replica
            .store()
            .readings
            .get(&key)
            .and_then(|writes| writes.values().max_by_key(|reading| reading.at))
        else {
            return;
        };
        if self.history.len() >= MAX_PENDING_HISTORY {
            self.history.remove(0);
        }
        self.history.push(HistoryRow::from_reading(&key, reading));
    }

    fn changed(&mut self) {
        self.unsaved.store(true, Ordering::Relaxed);
        self.view.send_replace(Arc::new(self.replica.clone()));
    }

    fn save_if_dirty(&mut self) {
        if !self.history.is_empty() {
            match self.persist.append_history(&self.history) {
                Ok(()) => self.history.clear(),
                Err(error) => {
                    warn!(%error, rows = self.history.len(), "cannot append to the reading history; retrying")
                }
            }
        }
        if !self.unsaved.load(Ordering::Relaxed) {
            return;
        }
        match self.persist.save(&self.replica.snapshot()) {
            Ok(()) => self.unsaved.store(false, Ordering::Relaxed),
            // Keep running: peers hold the data, and the next tick tries again.
            Err(error) => error!(%error, "cannot save the office state; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::state::DEFAULT_RETENTION_MS;

    /// Records what the actor persists, shared with the test.
    #[derive(Clone, Default)]
    struct Recorder {
        saves: Arc<Mutex<usize>>,
        batches: Arc<Mutex<Vec<Vec<HistoryRow>>>>,
    }

    impl Persist for Recorder {
        fn save(&mut self, _snapshot: &Snapshot) -> Result<(), String> {
            *self.saves.lock().unwrap() += 1;
            Ok(())
        }

        fn append_history(&mut self, rows: &[HistoryRow]) -> Result<(), String> {
            self.batches.lock().unwrap().push(rows.to_vec());
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn readings_reach_the_history_in_one_batch_per_save() {
        let recorder = Recorder::default();
        let identity = Identity {
            name: NodeName::new("pi").unwrap(),
            room: Room::new("lab").unwrap(),
            started_at_ms: 0,
        };
        let replica = Replica::new(
            NodeId::new("12D3KooWHistory").unwrap(),
            DEFAULT_RETENTION_MS,
        );
        let (office, handle, _outbox) = Office::new(replica, identity, recorder.clone()).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(office.run(shutdown.clone()));
        for value in [20.0, 20.5, 21.0] {
            let write = Write::Reading {
                sensor: SensorId::new("desk").unwrap(),
                room: Room::new("lab").unwrap(),
                quantity: Quantity::Temperature,
                value,
                unit: "°C".into(),
            };
            handle.write(write).await.unwrap();
        }
        // With time paused, the save tick fires as soon as the actor is idle.
        tokio::time::sleep(SAVE_INTERVAL * 2).await;
        let batches = recorder.batches.lock().unwrap().clone();
        assert_eq!(
            batches.len(),
            1,
            "one append for the three readings: {batches:?}"
        );
        let values: Vec<f64> = batches[0].iter().map(|row| row.value).collect();
        assert_eq!(values, [20.0, 20.5, 21.0]);
        assert!(!handle.unsaved(), "the state was saved with the batch");
        shutdown.cancel();
        task.await.unwrap();
        assert!(
            *recorder.saves.lock().unwrap() >= 2,
            "the first save and the last one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_without_peers_forgets_devices_after_the_retention() {
        let identity = Identity {
            name: NodeName::new("pi").unwrap(),
            room: Room::new("lab").unwrap(),
            started_at_ms: 0,
        };
        // A zero retention: every sighting has expired by the next hourly pass.
        let replica = Replica::new(NodeId::new("12D3KooWExpiry").unwrap(), 0);
        let (office, handle, _outbox) =
            Office::new(replica, identity, Recorder::default()).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(office.run(shutdown.clone()));
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
        tokio::time::sleep(PRUNE_INTERVAL + SAVE_INTERVAL).await;
        assert_eq!(
            handle.view().store().network.len(),
            0,
            "no merge needed to forget"
        );
        shutdown.cancel();
        task.await.unwrap();
    }
}
