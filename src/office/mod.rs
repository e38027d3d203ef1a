//! The office actor: the one owner of this node's [`Replica`].
//!
//! Everything that reads or changes the office state goes through an [`OfficeHandle`]:
//! local writes (sensors, presence, HTTP, chat, alerts), deltas and sync requests from the
//! network. The actor applies them one at a time, hands each local delta to the network,
//! publishes the new state on a watch channel for readers (HTTP, bot), and saves to the store
//! in batches. The store runs on its own thread ([`StoreHandle`]): a save is sent and the
//! actor goes on serving while the card writes it.
//!
//! What it saves is what changed, as deltas appended to the store's journal under a base
//! snapshot, one save at a time:
//! - a write someone is told is done: its own delta, synced, shared by the writes waiting
//!   together (group commit); unless it is a reading and a peer confirms within
//!   `[store] peer_hold_ms` that it holds it (the network's hold protocol): then it goes
//!   with the periodic save, and after a kill -9 the peer gives it back by sync;
//! - every `[store] save_interval_s`: the changes since the last such save (`pending`)
//!   restricted to what this node keeps itself ([`keep::kept_by`]: its own writes, what
//!   people said, alerts), not synced; peers give the rest back by sync after a crash;
//! - within [`PROMPT_SAVE_DELAY`] of a merge that brought what people said or an alert: the
//!   same, synced;
//! - a new base (the whole replica, which empties the journal) for every lease of sequence
//!   numbers, when the journal has outgrown the base, and at shutdown.

pub mod alerts;
pub mod config;
pub mod write;

use std::{
    collections::HashSet,
    mem,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::{FutureExt as _, StreamExt as _, future::BoxFuture, stream::FuturesUnordered};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

pub use self::write::Write;
use crate::{
    state::{
        Delta, Digest, MAX_ENTRIES_PER_WRITER, MergeReport, NodeId, NodeName, ReadingKey,
        RejectReason, Replica, Room, SEQ_LEASE, Version, WriteError, keep,
    },
    store::{HistoryRow, ReplicaSave, SaveOutcome, StoreError, StoreHandle, SyncMode},
};

/// Commands waiting for the actor: HTTP requests, sensor readings, network merges. A burst of
/// sync answers from a whole office fits; beyond, senders wait (backpressure), nothing is lost.
pub const COMMAND_CAPACITY: usize = 256;

/// Deltas waiting for the network actor to publish them.
pub const OUTBOX_CAPACITY: usize = 256;

/// How often the node rewrites its own entry (its heartbeat).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// Readings waiting for the next batched history append. At the longest save interval (an
/// hour) a node with 10 sensors read every 10 s queues 3 600; this only fills if the store
/// keeps failing, and then the oldest rows are dropped, not the node.
pub const MAX_PENDING_HISTORY: usize = 10_000;

/// How often what expired is dropped from the state, even with no merge to trigger it.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);

/// How often the readings the node has newly heard of, its own and its peers', are handed to
/// the minute history. They are kept in memory there until their hour ends, so this costs
/// no disk write; it only sets how fresh a chart of the last minutes is.
pub const OBSERVE_INTERVAL: Duration = Duration::from_secs(5);

/// How soon after a merge brings what people said (bindings, targets) or an alert raised
/// elsewhere the node saves it, synced. Short, so a crash right after loses little of it;
/// not zero, so a burst of merges (a sync after a partition) shares one sync.
pub const PROMPT_SAVE_DELAY: Duration = Duration::from_secs(1);

/// How many sequence numbers a write may still use before the last *saved* lease runs out
/// and the actor waits for a save. A snapshot raises the replica's ceiling at once, but a
/// kill before its save lands restarts from the older one; writes therefore stay below the
/// saved ceiling with this margin, far more than any one write (a scan's sightings) uses.
const LEASE_MARGIN: u64 = SEQ_LEASE / 2;

/// Milliseconds since the Unix epoch, by this machine's clock. The only place the node reads
/// the wall clock for the office state; the core takes it as an argument.
pub fn physical_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A delta for the network to push to peers.
#[derive(Debug)]
pub struct Outgoing {
    pub delta: Delta,
    /// Publish now rather than with the next batch.
    pub urgent: bool,
    /// Also hand it to one peer to hold, and say here whether one confirmed it does.
    pub held: Option<oneshot::Sender<bool>>,
}

/// Why an office request failed.
#[derive(Debug, Error)]
pub enum OfficeError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("the node is shutting down")]
    Stopped,
    #[error("cannot save the office state: {0}")]
    Save(#[from] StoreError),
    /// A write made in memory whose save failed: it was not acknowledged as durable, and
    /// peers may still receive it.
    #[error("the write was made but could not be saved: {0}")]
    NotSaved(String),
}

type WriteReply = oneshot::Sender<Result<(), OfficeError>>;

/// A write someone is told is done, waiting for a save: its own delta and whom to answer.
struct Waiting {
    delta: Delta,
    reply: WriteReply,
}

enum Command {
    Write {
        write: Write,
        /// Answer only once the write is synced to this node's disk.
        durable: bool,
        reply: WriteReply,
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

    /// Makes a write the node will observe again if it is lost (a sensor's poll, a scan):
    /// answers once it is in memory; the next periodic save keeps it.
    pub async fn write(&self, write: Write) -> Result<(), OfficeError> {
        self.write_as(write, false).await
    }

    /// Makes a write someone is told is done (the API, the chat, a raised alert): answers
    /// once it is synced to this node's disk, so a kill -9 the next moment keeps it. Writes
    /// waiting together share one save (group commit).
    pub async fn write_durable(&self, write: Write) -> Result<(), OfficeError> {
        self.write_as(write, true).await
    }

    async fn write_as(&self, write: Write, durable: bool) -> Result<(), OfficeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Write {
            write,
            durable,
            reply,
        })
        .await?;
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

/// Work the actor sent off, to the store thread or to a peer, and has not heard back from.
enum Done {
    Saved {
        taken: Box<Taken>,
        outcome: SaveOutcome,
    },
    Observed(Result<usize, StoreError>),
    /// A write handed to a peer to hold: whether one confirmed in time.
    Held {
        waiting: Waiting,
        held: bool,
    },
}

/// What a save on its way took from the actor, to settle when it lands.
struct Taken {
    /// The change number the save was taken at.
    generation: u64,
    /// The sequence ceiling of a new base.
    ceiling: Option<u64>,
    /// The pending changes it holds (all of them, or the part this node keeps); joined back
    /// into `pending` if it fails.
    pending: Option<Delta>,
    /// The durable writes it holds, answered when it lands.
    replies: Vec<WriteReply>,
}

/// The actor's state; runs until `shutdown`, then saves one last time.
pub struct Office {
    replica: Replica,
    identity: Identity,
    store: StoreHandle,
    commands: mpsc::Receiver<Command>,
    outbox: mpsc::Sender<Outgoing>,
    view: watch::Sender<Arc<Replica>>,
    /// Changed since the last save of pending changes; shared with the handles.
    unsaved: Arc<AtomicBool>,
    /// Counts changes, so a save that lands knows whether it holds the latest one.
    generation: u64,
    /// Every change since the last save of pending changes or base: this node's writes and
    /// what merges admitted. Below the replica's state in the lattice order, always.
    pending: Delta,
    /// When `pending` first held what people said or an alert from a merge, not saved yet:
    /// it is saved, synced, [`PROMPT_SAVE_DELAY`] after.
    news_since: Option<tokio::time::Instant>,
    /// The periodic save of `pending` is due.
    periodic_due: bool,
    /// The journal has outgrown its base: the next save is a new base.
    compact: bool,
    /// The sequence ceiling of the last snapshot the store confirmed.
    saved_ceiling: u64,
    /// This node's readings not yet handed to the store, for the raw history.
    history: Vec<HistoryRow>,
    /// Readings new to this node, its own and its peers', not yet handed to the minute
    /// history.
    seen: Vec<HistoryRow>,
    /// Saves and history hand-overs on their way through the store thread, and readings
    /// waiting for a peer to hold them (each at most `peer_hold`).
    in_flight: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Whether one of `in_flight` is a save: saves go one at a time.
    saving: bool,
    /// Durable writes waiting for a save (the next one: not one on its way already).
    waiting: Vec<Waiting>,
    /// How often what changed without an acknowledgement is saved (`[store]`).
    save_interval: Duration,
    /// How long an acknowledged reading waits for a peer to hold it before it is synced
    /// here instead (`[store] peer_hold_ms`); zero: always synced here.
    peer_hold: Duration,
    /// Writers named in the log for having more entries than one writer may have.
    named_over_cap: HashSet<NodeId>,
}

impl Office {
    /// Saves the replica (reserving sequence numbers) and returns the actor, its handle and
    /// the receiving end of the outbox. Fails if the first save fails: a node that cannot
    /// save must not write. What changes without an acknowledgement is saved every
    /// `save_interval`.
    pub async fn new(
        mut replica: Replica,
        identity: Identity,
        store: StoreHandle,
        save_interval: Duration,
    ) -> Result<(Self, OfficeHandle, mpsc::Receiver<Outgoing>), OfficeError> {
        // A node that was off for longer than the retention forgets what expired meanwhile
        // before anyone reads it (privacy); the hourly pass does it from then on.
        replica.expire(physical_ms());
        let snapshot = replica.snapshot();
        let saved_ceiling = snapshot.seq_ceiling;
        store.save_snapshot(snapshot).await?;
        let (commands_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
        let (view, view_rx) = watch::channel(Arc::new(replica.clone()));
        let unsaved = Arc::new(AtomicBool::new(false));
        let office = Office {
            replica,
            identity,
            store,
            commands,
            outbox,
            view,
            unsaved: unsaved.clone(),
            generation: 0,
            pending: Delta::default(),
            news_since: None,
            periodic_due: false,
            compact: false,
            saved_ceiling,
            history: Vec::new(),
            seen: Vec::new(),
            in_flight: FuturesUnordered::new(),
            saving: false,
            waiting: Vec::new(),
            save_interval,
            peer_hold: Duration::ZERO,
            named_over_cap: HashSet::new(),
        };
        let handle = OfficeHandle {
            commands: commands_tx,
            view: view_rx,
            unsaved,
        };
        Ok((office, handle, outbox_rx))
    }

    /// Acknowledges a reading once a peer confirms it holds it, waiting at most `deadline`
    /// for that before syncing it here instead. Zero (the default): always synced here.
    #[must_use]
    pub fn with_peer_hold(mut self, deadline: Duration) -> Self {
        self.peer_hold = deadline;
        self
    }

    pub fn id(&self) -> &NodeId {
        self.replica.id()
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        // `new` has just saved: the first save is due one interval from now.
        let mut save = tokio::time::interval_at(
            tokio::time::Instant::now() + self.save_interval,
            self.save_interval,
        );
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        // `new` has just expired what was due: the first pass is one interval from now.
        let mut expiry = tokio::time::interval_at(
            tokio::time::Instant::now() + EXPIRY_INTERVAL,
            EXPIRY_INTERVAL,
        );
        let mut observe = tokio::time::interval(OBSERVE_INTERVAL);
        loop {
            // Disarmed while a save is on its way: `finished` starts the save when it lands.
            let prompt = self
                .news_since
                .filter(|_| !self.saving)
                .map(|since| since + PROMPT_SAVE_DELAY);
            tokio::select! {
                () = shutdown.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.finished(done);
                }
                _ = save.tick() => {
                    self.periodic_due = true;
                    self.start_save();
                }
                () = sleep_until_some(prompt), if prompt.is_some() => self.start_save(),
                _ = heartbeat.tick() => self.announce().await,
                _ = expiry.tick() => self.expire(),
                _ = observe.tick() => self.start_observe(),
            }
        }
        self.start_observe();
        self.finish_store_work().await;
        // A new base: the whole replica, and an empty journal for the next start to load.
        self.compact = true;
        self.start_save();
        self.finish_store_work().await;
        if self.unsaved.load(Ordering::Relaxed) {
            error!("the office state could not be saved at shutdown; peers hold what was shared");
        } else {
            info!("office state saved");
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Write {
                write,
                durable,
                reply,
            } => {
                let (held, confirmed) =
                    if durable && !self.peer_hold.is_zero() && write.peer_may_hold() {
                        let (held, confirmed) = oneshot::channel();
                        (Some(held), Some(confirmed))
                    } else {
                        (None, None)
                    };
                match (self.write(write, held).await, confirmed) {
                    (Ok(delta), Some(confirmed)) => {
                        let deadline = self.peer_hold;
                        self.in_flight.push(
                            async move {
                                let held = matches!(
                                    tokio::time::timeout(deadline, confirmed).await,
                                    Ok(Ok(true))
                                );
                                Done::Held {
                                    waiting: Waiting { delta, reply },
                                    held,
                                }
                            }
                            .boxed(),
                        );
                    }
                    (Ok(delta), None) if durable => {
                        // Saved now, or with the next save if one is on its way: writes that
                        // arrive meanwhile share that one.
                        self.waiting.push(Waiting { delta, reply });
                        self.start_save();
                    }
                    (result, _) => {
                        let _ = reply.send(result.map(drop));
                    }
                }
            }
            Command::Merge { delta, from, reply } => {
                // The readings this node has not seen yet, kept for the history if the
                // merge admits them.
                let fresh: Vec<_> = delta
                    .store
                    .readings
                    .iter()
                    .filter(|(_, dot, _)| !self.replica.context().contains(dot))
                    .map(|(key, dot, reading)| (key.clone(), dot.clone(), reading.clone()))
                    .collect();
                let news = keep::has_news_kept_from_anyone(&delta, self.replica.context());
                let (report, admitted) = self.replica.merge_admitted(delta, &from, physical_ms());
                // Even a merge that changed no write may have grown the context.
                if !admitted.is_empty() {
                    self.pending.join(&admitted);
                    if news && self.news_since.is_none() {
                        self.news_since = Some(tokio::time::Instant::now());
                    }
                }
                if report.changed() {
                    self.changed();
                }
                for rejection in &report.rejected {
                    if let RejectReason::TooManyEntries { writer } = &rejection.reason
                        && self.named_over_cap.insert(writer.clone())
                    {
                        warn!(
                            %writer,
                            peer = %from,
                            "node {writer} writes more entries than one node may have ({MAX_ENTRIES_PER_WRITER}); its new ones are refused"
                        );
                    }
                }
                if report.forgotten_own > 0 {
                    info!(
                        writes = report.forgotten_own,
                        peer = %from,
                        "a peer holds writes this node made before it restarted and had not saved; publishing them again"
                    );
                    // Writes of this node's that a peer held for it (acknowledged) or that
                    // reached only some peers: nobody else publishes them, so without this
                    // the rest of the office would wait for a periodic sync.
                    let _ = self
                        .outbox
                        .send(Outgoing {
                            delta: admitted.of_writer(self.replica.id()),
                            urgent: true,
                            held: None,
                        })
                        .await;
                    // Its own entry from before the crash may outrank the one written at
                    // this start (a clock set back): written again, it replaces both.
                    self.announce().await;
                }
                for (key, dot, reading) in fresh {
                    let admitted = self
                        .replica
                        .store()
                        .readings
                        .get(&key)
                        .is_some_and(|writes| writes.contains_key(&dot));
                    if admitted {
                        self.see(HistoryRow::from_reading(&key, &reading));
                    }
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

    /// Makes a local write and returns its delta; `held`, if given, hears whether a peer
    /// confirmed it holds the write.
    async fn write(
        &mut self,
        write: Write,
        held: Option<oneshot::Sender<bool>>,
    ) -> Result<Delta, OfficeError> {
        self.ensure_saved_lease().await?;
        let urgent = write.urgent();
        let delta = match write.apply(&mut self.replica, physical_ms()) {
            Err(WriteError::LeaseExhausted { .. }) => {
                self.save_lease().await?;
                write.apply(&mut self.replica, physical_ms())?
            }
            other => other?,
        };
        self.pending.join(&delta);
        self.changed();
        self.remember_history(&write);
        let outgoing = Outgoing {
            delta: delta.clone(),
            urgent,
            held,
        };
        if self.outbox.send(outgoing).await.is_err() {
            debug!("network stopped; the write stays local until sync");
        }
        Ok(delta)
    }

    /// Waits, when the saved lease of sequence numbers is close to used up, until a save
    /// has reserved more: a number is only used once its lease is on disk.
    async fn ensure_saved_lease(&mut self) -> Result<(), OfficeError> {
        if self.replica.seq().saturating_add(LEASE_MARGIN) < self.saved_ceiling {
            return Ok(());
        }
        self.finish_store_work().await;
        if self.replica.seq().saturating_add(LEASE_MARGIN) < self.saved_ceiling {
            return Ok(());
        }
        self.save_lease().await
    }

    /// Reserves a new lease of sequence numbers and waits until it is saved, as a new base.
    /// Saves already on their way land first: the store refuses a snapshot older than one it
    /// holds, and the durable writes waiting on that older save would be told it failed.
    ///
    /// The base holds every change made so far: the pending changes and the durable writes
    /// waiting are saved with it.
    async fn save_lease(&mut self) -> Result<(), OfficeError> {
        self.finish_store_work().await;
        let snapshot = self.replica.snapshot();
        let ceiling = snapshot.seq_ceiling;
        let taken = self.take_all(Some(ceiling));
        let saved = self.store.save_snapshot(snapshot).await;
        self.landed(
            taken,
            &saved.as_ref().map(drop).map_err(ToString::to_string),
        );
        Ok(saved?)
    }

    async fn announce(&mut self) {
        if let Err(error) = self.ensure_saved_lease().await {
            error!(%error, "cannot save the office state; heartbeat skipped");
            return;
        }
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
            if let Err(error) = self.save_lease().await {
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
                self.pending.join(&delta);
                self.changed();
                let _ = self
                    .outbox
                    .send(Outgoing {
                        delta,
                        urgent: false,
                        held: None,
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
        let row = HistoryRow::from_reading(&key, reading);
        if self.history.len() >= MAX_PENDING_HISTORY {
            self.history.remove(0);
        }
        self.history.push(row.clone());
        self.see(row);
    }

    /// Queues a reading new to this node for the minute history.
    fn see(&mut self, row: HistoryRow) {
        if self.seen.len() >= MAX_PENDING_HISTORY {
            self.seen.remove(0);
        }
        self.seen.push(row);
    }

    /// Hands the readings seen since the last time to the minute history.
    fn start_observe(&mut self) {
        if self.seen.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.seen);
        let store = self.store.clone();
        self.in_flight
            .push(async move { Done::Observed(store.observe(rows, physical_ms()).await) }.boxed());
    }

    fn changed(&mut self) {
        self.generation += 1;
        self.unsaved.store(true, Ordering::Relaxed);
        self.view.send_replace(Arc::new(self.replica.clone()));
    }

    /// Whether the pending changes are due for a save: the periodic one, or the prompt one
    /// after news from a merge.
    fn pending_due(&self) -> bool {
        self.periodic_due
            || self
                .news_since
                .is_some_and(|since| since + PROMPT_SAVE_DELAY <= tokio::time::Instant::now())
    }

    /// Starts the save that is due, unless a save is already on its way (`finished` starts
    /// the next one when it lands). By priority: a new base when the journal has outgrown it
    /// (it holds everything, the durable writes waiting too); the durable writes waiting,
    /// alone; the pending changes this node keeps. The pending history goes with the first
    /// and the last: an acknowledgement writes its own delta and nothing else, since every
    /// table a transaction touches costs a page written and synced.
    fn start_save(&mut self) {
        if self.saving {
            return;
        }
        let mut with_history = true;
        let (replica, taken) = if self.compact {
            let snapshot = self.replica.snapshot();
            let taken = self.take_all(Some(snapshot.seq_ceiling));
            (ReplicaSave::Base(Box::new(snapshot)), taken)
        } else if !self.waiting.is_empty() {
            // Only these writes' own deltas: other pending changes wait for their own save,
            // or each acknowledgement would carry every merge since the last one.
            let mut delta = Delta::default();
            let mut replies = Vec::with_capacity(self.waiting.len());
            for waiting in mem::take(&mut self.waiting) {
                delta.join(&waiting.delta);
                replies.push(waiting.reply);
            }
            let taken = Taken {
                generation: self.generation,
                ceiling: None,
                pending: None,
                replies,
            };
            let sync = SyncMode::Full;
            let delta = Box::new(delta);
            with_history = false;
            (ReplicaSave::Journal { delta, sync }, taken)
        } else if self.pending_due() {
            if self.pending.is_empty() && self.history.is_empty() {
                self.periodic_due = false;
                self.news_since = None;
                return;
            }
            let sync = if self.news_since.is_some() {
                SyncMode::Full
            } else {
                SyncMode::Normal
            };
            let taken = self.take_all(None);
            let pending = taken.pending.as_ref().expect("take_all takes the pending");
            let kept = keep::kept_by(pending, self.replica.id());
            let replica = if kept.is_empty() {
                ReplicaSave::Nothing
            } else {
                ReplicaSave::Journal {
                    delta: Box::new(kept),
                    sync,
                }
            };
            (replica, taken)
        } else {
            return;
        };
        let history = if with_history {
            mem::take(&mut self.history)
        } else {
            Vec::new()
        };
        let store = self.store.clone();
        self.saving = true;
        self.in_flight.push(
            async move {
                Done::Saved {
                    outcome: store.save(replica, history).await,
                    taken: Box::new(taken),
                }
            }
            .boxed(),
        );
    }

    /// Takes everything a save of all changes holds: the pending changes and, for a new base
    /// (with its `ceiling`), the durable writes waiting too.
    fn take_all(&mut self, ceiling: Option<u64>) -> Taken {
        self.periodic_due = false;
        self.news_since = None;
        let replies = if ceiling.is_some() {
            self.compact = false;
            mem::take(&mut self.waiting)
                .into_iter()
                .map(|waiting| waiting.reply)
                .collect()
        } else {
            Vec::new()
        };
        Taken {
            generation: self.generation,
            ceiling,
            pending: Some(mem::take(&mut self.pending)),
            replies,
        }
    }

    /// Drops what expired. Merges expire entries too, but a node without peers must also
    /// forget the devices it saw (privacy).
    fn expire(&mut self) {
        if self.replica.expire(physical_ms()) > 0 {
            self.changed();
        }
    }

    fn finished(&mut self, done: Done) {
        match done {
            Done::Saved { taken, outcome } => {
                self.saving = false;
                let replica = outcome.replica.map_err(|error| error.to_string());
                let journal_grew = replica.is_ok() && outcome.compact && !self.compact;
                self.compact |= outcome.compact;
                self.landed(*taken, &replica);
                if let Err((error, mut rows)) = outcome.history {
                    warn!(%error, rows = rows.len(), "cannot append to the reading history; retrying");
                    // The rows that failed go before those written meanwhile, within the cap.
                    rows.append(&mut self.history);
                    let excess = rows.len().saturating_sub(MAX_PENDING_HISTORY);
                    rows.drain(..excess);
                    self.history = rows;
                }
                // A failed new base is tried again with the next save that is due, not at
                // once: on a full disk that would spin.
                if journal_grew {
                    self.start_save();
                }
            }
            Done::Observed(Err(error)) => {
                warn!(%error, "cannot write the minute history; its open hours stay in memory and are retried");
            }
            Done::Observed(Ok(_)) => {}
            // A peer holds it; it is saved here with the periodic save, like the node's own
            // readings.
            Done::Held {
                waiting: Waiting { reply, .. },
                held: true,
            } => {
                let _ = reply.send(Ok(()));
            }
            // No peer confirmed in time: synced here, with the next save.
            Done::Held {
                waiting,
                held: false,
            } => self.waiting.push(waiting),
        }
        // Durable writes made while that save ran go with the next one, now; so do pending
        // changes that fell due meanwhile.
        if !self.waiting.is_empty() || self.pending_due() {
            self.start_save();
        }
    }

    /// Settles a save that landed with `result`: answers the durable writes it held, and
    /// gives its pending changes back if it failed.
    fn landed(&mut self, taken: Taken, result: &Result<(), String>) {
        match result {
            Ok(()) => {
                if let Some(ceiling) = taken.ceiling {
                    self.saved_ceiling = self.saved_ceiling.max(ceiling);
                }
                if taken.pending.is_some() && taken.generation == self.generation {
                    self.unsaved.store(false, Ordering::Relaxed);
                }
            }
            Err(error) => {
                // Keep running: peers hold what was shared, and the next save tries again
                // with these changes joined to those made meanwhile.
                error!(%error, "cannot save the office state; retrying");
                if let Some(pending) = taken.pending {
                    self.pending.join(&pending);
                }
                if taken.ceiling.is_some() {
                    self.compact = true;
                }
            }
        }
        for reply in taken.replies {
            let _ = reply.send(result.clone().map_err(OfficeError::NotSaved));
        }
    }

    /// Waits for every save on its way, and for the peers asked to hold readings (at most
    /// `peer_hold`).
    async fn finish_store_work(&mut self) {
        while let Some(done) = self.in_flight.next().await {
            self.finished(done);
        }
    }
}

/// Sleeps until `deadline`; never wakes without one (the `select!` arm is disabled then).
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! An office actor on a real store in a directory of the test's, for unit tests of the
    //! modules above it (bot, HTTP).

    use std::path::Path;

    use super::*;
    use crate::store::Store;

    /// The periodic save of the offices of unit tests: short, so tests see it land.
    pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);

    /// Starts an office actor for `replica`, saving to a new store in `dir`; it runs until
    /// `shutdown`. Returns its handle and the outbox of its deltas.
    pub async fn start_office(
        dir: &Path,
        replica: Replica,
        shutdown: &CancellationToken,
    ) -> (OfficeHandle, mpsc::Receiver<Outgoing>, StoreHandle) {
        start_office_saving_every(dir, replica, shutdown, SAVE_INTERVAL).await
    }

    /// [`start_office`] with the periodic save every `save_interval`.
    pub async fn start_office_saving_every(
        dir: &Path,
        replica: Replica,
        shutdown: &CancellationToken,
        save_interval: Duration,
    ) -> (OfficeHandle, mpsc::Receiver<Outgoing>, StoreHandle) {
        start_office_holding(dir, replica, shutdown, save_interval, Duration::ZERO).await
    }

    /// [`start_office_saving_every`] with acknowledged readings handed to a peer (the
    /// outbox's `held`) for at most `peer_hold`.
    pub async fn start_office_holding(
        dir: &Path,
        replica: Replica,
        shutdown: &CancellationToken,
        save_interval: Duration,
        peer_hold: Duration,
    ) -> (OfficeHandle, mpsc::Receiver<Outgoing>, StoreHandle) {
        let store = StoreHandle::spawn(Store::open(dir).expect("a store in a fresh directory"))
            .expect("the store thread starts");
        let identity = Identity {
            name: NodeName::new("pi").unwrap(),
            room: Room::new("lab").unwrap(),
            started_at_ms: 0,
        };
        let (office, handle, outbox) = Office::new(replica, identity, store.clone(), save_interval)
            .await
            .expect("the first save succeeds");
        tokio::spawn(office.with_peer_hold(peer_hold).run(shutdown.clone()));
        (handle, outbox, store)
    }
}

#[cfg(test)]
mod tests;
