//! The replicated office state: a pure, deterministic core.
//!
//! Every node holds a [`Replica`] of one office state made of six parts (see [`Part`]). Each
//! local change returns a [`Delta`], itself a small office state, that peers merge. Merging is
//! a lattice join (commutative, associative, idempotent), so deltas may be lost, duplicated
//! or reordered; a [`Digest`] exchange repairs whatever gossip lost.
//!
//! This module does no I/O: no sockets, files, database, async runtime, wall clock or
//! unseeded randomness. Time arrives as `physical_ms` arguments. That is what lets the
//! simulator run a whole office in one thread from a seed.

mod clock;
mod dot;
mod dotmap;
mod entries;
pub mod keep;
pub mod query;
mod series;
mod values;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
};

use thiserror::Error;

pub use self::{
    clock::{Clock, ClockAhead, Hlc, MAX_CLOCK_AHEAD_MS, MIN_PLAUSIBLE_WALL_MS},
    dot::{CausalContext, Dot, InvalidNodeId, MAX_NODE_ID_LEN, MAX_SEQ, NodeId, SeqSet},
    dotmap::{DotMap, JoinCount},
    entries::{
        Alert, AlertId, Binding, BindingKey, Entry, NodeInfo, Part, PartVisitor, Reading,
        ReadingKey, Sighting, SightingKey, Target, TargetKey, for_each_part,
    },
    series::Series,
    values::{
        AlertName, InvalidValue, Ip, MAX_MESSAGE_LEN, MAX_NAME_LEN, MAX_VERSION_LEN, Mac, Message,
        NodeName, Person, Quantity, Room, SensorId, Version,
    },
};

/// How long expiring entries are kept after their last write: 7 days.
pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// How many sequence numbers one save reserves. A replica restored from a save continues
/// after the reservation, so it cannot reuse a number it handed out after saving. Saving
/// every second, a node writing 10 readings per second would need a save every 27 hours.
pub const SEQ_LEASE: u64 = 1 << 20;

/// Most writes alive at once that one writer may have in a replica, all parts together.
/// A node's own entries are its description, its sensors' readings, the devices it sees
/// (within the presence retention), its alerts, and the targets and bindings set through it:
/// tens to a few thousand in an office. A member that writes more (a bug, or a compromised
/// node flooding entries under its own id) has its further new keys refused everywhere, so
/// each writer costs a replica at most this many entries (about 4 MiB). The node's own writes
/// are refused past it too, so an honest node is never refused by its peers.
pub const MAX_ENTRIES_PER_WRITER: usize = 16_384;

/// The data of an office state: its six parts.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct Store {
    pub nodes: DotMap<NodeInfo>,
    pub readings: DotMap<Reading>,
    pub network: DotMap<Sighting>,
    pub people: DotMap<Binding>,
    pub targets: DotMap<Target>,
    pub alerts: DotMap<Alert>,
}

impl Store {
    /// Every write alive in the store, as (part, dot).
    pub fn dots(&self) -> impl Iterator<Item = (Part, &Dot)> {
        fn part<E: Entry>(map: &DotMap<E>) -> impl Iterator<Item = (Part, &Dot)> {
            map.iter().map(|(_, dot, _)| (E::PART, dot))
        }
        part(&self.nodes)
            .chain(part(&self.readings))
            .chain(part(&self.network))
            .chain(part(&self.people))
            .chain(part(&self.targets))
            .chain(part(&self.alerts))
    }

    pub fn len(&self) -> usize {
        struct Len<'a>(&'a Store, usize);
        impl PartVisitor for Len<'_> {
            fn visit<E: Entry>(&mut self) {
                self.1 += E::part(self.0).len();
            }
        }
        let mut len = Len(self, 0);
        for_each_part(&mut len);
        len.1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many writes alive in the store each writer made.
    pub fn count_by_writer(&self) -> HashMap<NodeId, usize> {
        let mut counts: HashMap<NodeId, usize> = HashMap::new();
        for (_, dot) in self.dots() {
            *counts.entry(dot.writer.clone()).or_default() += 1;
        }
        counts
    }
}

/// An office state: the writes alive (`store`) and every write ever seen (`context`).
///
/// A whole replica's state is one; so is the delta of a single write, and the answer to a
/// digest. Invariant: every dot in `store` is in `context`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct Delta {
    pub store: Store,
    pub context: CausalContext,
}

impl Delta {
    /// The writes of this delta that `writer` made, with only their own dots as the context:
    /// a valid delta on its own, which `writer` may publish as its own. What they replaced is
    /// left out on purpose: a context claims every dot it names as seen, so a receiver drops
    /// its writes of `writer` under those dots that the store does not hold; naming only the
    /// writes' own dots can never remove anything (the replaced writes go by sync).
    pub fn of_writer(&self, writer: &NodeId) -> Delta {
        struct Keep<'a> {
            from: &'a Delta,
            writer: &'a NodeId,
            out: Delta,
        }
        impl PartVisitor for Keep<'_> {
            fn visit<E: Entry>(&mut self) {
                for (key, dot, value) in E::part(&self.from.store).iter() {
                    if dot.writer == *self.writer {
                        self.out.context.insert(dot);
                        E::part_mut(&mut self.out.store).insert(
                            key.clone(),
                            dot.clone(),
                            value.clone(),
                        );
                    }
                }
            }
        }
        let mut keep = Keep {
            from: self,
            writer,
            out: Delta::default(),
        };
        for_each_part(&mut keep);
        keep.out
    }

    /// The lattice join of two office states, part by part, then the contexts.
    ///
    /// Commutative, associative and idempotent because each part's join is (see
    /// [`DotMap::join`]) and the union of contexts is. No ties to break: a dot names exactly
    /// one write.
    pub fn join(&mut self, other: &Delta) -> JoinCount {
        struct Join<'a> {
            this: &'a mut Delta,
            other: &'a Delta,
            count: JoinCount,
        }
        impl PartVisitor for Join<'_> {
            fn visit<E: Entry>(&mut self) {
                let (store, context) = (&mut self.this.store, &self.this.context);
                self.count += E::part_mut(store).join(
                    context,
                    E::part(&self.other.store),
                    &self.other.context,
                );
            }
        }
        let mut join = Join {
            this: self,
            other,
            count: JoinCount::default(),
        };
        for_each_part(&mut join);
        let count = join.count;
        self.context.union(&other.context);
        count
    }

    pub fn is_empty(&self) -> bool {
        self.context.is_empty()
    }

    /// Drops the writes that expire at or before `now_ms`; their dots stay in the context, so
    /// no peer that still holds them can bring them back. Returns how many were dropped.
    pub fn expire(&mut self, now_ms: u64, retention_ms: u64) -> usize {
        struct Expire<'a> {
            store: &'a mut Store,
            now_ms: u64,
            retention_ms: u64,
            expired: usize,
        }
        impl PartVisitor for Expire<'_> {
            fn visit<E: Entry>(&mut self) {
                let (now_ms, retention_ms) = (self.now_ms, self.retention_ms);
                self.expired += E::part_mut(self.store)
                    .retain(|_, _, value| {
                        value
                            .expires_at_ms(retention_ms)
                            .is_none_or(|at| at > now_ms)
                    })
                    .len();
            }
        }
        let mut expire = Expire {
            store: &mut self.store,
            now_ms,
            retention_ms,
            expired: 0,
        };
        for_each_part(&mut expire);
        expire.expired
    }
}

/// What one replica tells another so it can be sent exactly what it lacks: every dot it has
/// seen, and per writer a summary of the dots it still holds.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct Digest {
    pub context: CausalContext,
    pub alive: BTreeMap<NodeId, AliveSummary>,
}

/// How many writes of one writer a replica holds, and an order-independent hash of their
/// sequence numbers. Equal context and equal summary mean nothing to exchange for the writer.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct AliveSummary {
    pub count: u64,
    pub hash: u64,
}

impl AliveSummary {
    fn add(&mut self, seq: u64) {
        self.count += 1;
        self.hash = self.hash.wrapping_add(mix(seq));
    }
}

/// The SplitMix64 finaliser: spreads sequence numbers over 64 bits, so sums of them collide
/// only by chance.
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Why an entry of a delta was not merged.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RejectReason {
    #[error("writer {writer} may not write it: only {owner} may")]
    NotOwner { writer: NodeId, owner: NodeId },
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    ClockAhead(#[from] ClockAhead),
    #[error("sequence number {seq} is outside 1..={MAX_SEQ}")]
    SeqOutOfRange { seq: u64 },
    #[error(
        "writer {writer} already has {MAX_ENTRIES_PER_WRITER} entries, the most one writer may have"
    )]
    TooManyEntries { writer: NodeId },
}

/// An entry of a delta that was not merged, and who sent it.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("rejected {part} {dot} from peer {sender}: {reason}")]
pub struct Rejection {
    pub sender: NodeId,
    pub part: Part,
    pub dot: Dot,
    pub reason: RejectReason,
}

/// What merging a delta did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MergeReport {
    pub added: usize,
    pub removed: usize,
    pub expired: usize,
    pub rejected: Vec<Rejection>,
    /// Dots in the delta's context with impossible sequence numbers, ignored.
    pub bogus_context_dots: u64,
    /// A write in the delta skips sequence numbers of its writer that this replica had not
    /// seen: writes that never reached this node (gossip lost in a partition, or dropped),
    /// which a pull from the sender brings at once instead of at the next periodic sync.
    pub gap: bool,
    /// Writes of this node's own that this replica did not know: made before a crash, after
    /// its last save, and kept by peers. Its newer writes to the same keys are concurrent
    /// with them, and one stamped by a clock that went back loses to them; writing the key
    /// again now that the old write is known replaces it.
    pub forgotten_own: usize,
}

impl MergeReport {
    pub fn changed(&self) -> bool {
        self.added + self.removed + self.expired > 0
    }
}

/// Why a local write was refused.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum WriteError {
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// The reserved sequence numbers are used up: save the replica (which reserves more)
    /// before writing again, or a crash could make it reuse them.
    #[error("sequence numbers up to {ceiling} are used up; save the replica before writing")]
    LeaseExhausted { ceiling: u64 },
    #[error("no alert {0:?} raised by this node")]
    UnknownAlert(String),
    /// A new key past [`MAX_ENTRIES_PER_WRITER`]: peers would refuse it.
    #[error(
        "this node already has {MAX_ENTRIES_PER_WRITER} entries, the most one node may have; a new one waits until old ones expire"
    )]
    TooManyEntries,
}

/// What a replica saves, to be restored after a restart.
#[derive(Clone, PartialEq, Debug)]
pub struct Snapshot {
    pub id: NodeId,
    /// Sequence numbers up to here may have been used; a restored replica starts after it.
    pub seq_ceiling: u64,
    pub clock: Hlc,
    pub state: Delta,
}

/// One node's copy of the office state, with its own sequence counter and clock.
#[derive(Clone, Debug)]
pub struct Replica {
    id: NodeId,
    /// The last sequence number this replica used.
    seq: u64,
    /// The highest sequence number covered by the last save.
    seq_ceiling: u64,
    clock: Clock,
    retention_ms: u64,
    state: Delta,
}

impl Replica {
    /// A new, empty replica. Call [`Replica::snapshot`] and save it before the first write.
    pub fn new(id: NodeId, retention_ms: u64) -> Self {
        Replica {
            id,
            seq: 0,
            seq_ceiling: 0,
            clock: Clock::default(),
            retention_ms,
            state: Delta::default(),
        }
    }

    /// A replica as it was saved. It continues after every sequence number the save
    /// reserved; call [`Replica::snapshot`] and save it before the first write.
    pub fn restore(snapshot: Snapshot, retention_ms: u64) -> Self {
        let seq = snapshot
            .seq_ceiling
            .max(snapshot.state.context.max_seq(&snapshot.id));
        Replica {
            id: snapshot.id,
            seq,
            seq_ceiling: seq,
            clock: Clock::restore(snapshot.clock),
            retention_ms,
            state: snapshot.state,
        }
    }

    /// Reserves the next [`SEQ_LEASE`] sequence numbers and returns what to save.
    pub fn snapshot(&mut self) -> Snapshot {
        self.seq_ceiling = self.seq.saturating_add(SEQ_LEASE).min(MAX_SEQ);
        Snapshot {
            id: self.id.clone(),
            seq_ceiling: self.seq_ceiling,
            clock: self.clock.last(),
            state: self.state.clone(),
        }
    }

    pub fn id(&self) -> &NodeId {
        &self.id
    }

    pub fn state(&self) -> &Delta {
        &self.state
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    pub fn context(&self) -> &CausalContext {
        &self.state.context
    }

    /// The last sequence number this replica used.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn retention_ms(&self) -> u64 {
        self.retention_ms
    }

    /// The current time as this replica knows it (see [`Clock::now_ms`]).
    pub fn now_ms(&self, physical_ms: u64) -> u64 {
        self.clock.now_ms(physical_ms)
    }

    // ---- local writes: each returns the delta to send to peers ----

    /// Describes this node; written at start and as its heartbeat.
    pub fn announce(
        &mut self,
        name: NodeName,
        room: Room,
        version: Version,
        started_at_ms: u64,
        physical_ms: u64,
    ) -> Result<Delta, WriteError> {
        let key = self.id.clone();
        self.write(key, physical_ms, |at| NodeInfo {
            name,
            room,
            version,
            started_at_ms,
            at,
        })
    }

    /// Records the latest value of one of this node's sensors, converted to the quantity's
    /// canonical unit.
    pub fn record_reading(
        &mut self,
        sensor: SensorId,
        room: Room,
        quantity: Quantity,
        value: f64,
        unit: &str,
        physical_ms: u64,
    ) -> Result<Delta, WriteError> {
        let value = quantity.normalize(value, unit)?;
        let key = ReadingKey {
            node: self.id.clone(),
            sensor,
        };
        self.write(key, physical_ms, |at| Reading {
            room,
            quantity,
            value,
            at,
        })
    }

    /// Records that this node sees `mac` at `ip`.
    pub fn observe_device(
        &mut self,
        mac: Mac,
        ip: Ip,
        physical_ms: u64,
    ) -> Result<Delta, WriteError> {
        let key = SightingKey {
            observer: self.id.clone(),
            mac,
        };
        self.write(key, physical_ms, |at| Sighting { ip, at })
    }

    /// Binds `person` to the device `mac` ("i am ff:ff:ff:ff:ff:ff").
    pub fn bind(
        &mut self,
        person: Person,
        mac: Mac,
        physical_ms: u64,
    ) -> Result<Delta, WriteError> {
        self.write(BindingKey { person, mac }, physical_ms, |at| Binding {
            bound: true,
            at,
        })
    }

    /// Withdraws every binding of `person` to `mac` this replica has seen ("forget me").
    pub fn unbind(
        &mut self,
        person: Person,
        mac: Mac,
        physical_ms: u64,
    ) -> Result<Delta, WriteError> {
        self.write(BindingKey { person, mac }, physical_ms, |at| Binding {
            bound: false,
            at,
        })
    }

    /// Sets a room's target for a quantity, replacing every target for it this replica has
    /// seen. Sets made concurrently elsewhere are kept beside it until a later set sees them.
    pub fn set_target(
        &mut self,
        room: Room,
        quantity: Quantity,
        value: f64,
        unit: &str,
        set_by: Person,
        physical_ms: u64,
    ) -> Result<Delta, WriteError> {
        let value = quantity.normalize(value, unit)?;
        self.write(TargetKey { room, quantity }, physical_ms, |at| Target {
            value,
            set_by,
            at,
        })
    }

    /// Raises (or re-raises) the alert `name` of this node.
    pub fn raise_alert(
        &mut self,
        name: AlertName,
        room: Room,
        quantity: Quantity,
        message: Message,
        physical_ms: u64,
    ) -> Result<Delta, WriteError> {
        let key = AlertId {
            node: self.id.clone(),
            name,
        };
        self.write(key, physical_ms, |at| Alert {
            room,
            quantity,
            message,
            raised_at_ms: at.wall_ms,
            cleared_at_ms: None,
            at,
        })
    }

    /// Clears an alert this node raised.
    pub fn clear_alert(&mut self, name: AlertName, physical_ms: u64) -> Result<Delta, WriteError> {
        let key = AlertId {
            node: self.id.clone(),
            name,
        };
        let current = self
            .state
            .store
            .alerts
            .get(&key)
            .and_then(|writes| writes.values().max_by_key(|alert| alert.at))
            .cloned()
            .ok_or_else(|| WriteError::UnknownAlert(key.name.to_string()))?;
        self.write(key, physical_ms, |at| Alert {
            cleared_at_ms: Some(at.wall_ms),
            at,
            ..current
        })
    }

    /// Makes one write: a new dot, stamped by the clock, replacing every write this replica
    /// holds at `key`. The delta is the new write plus the dots it replaces, so a peer that
    /// merges it drops them too. Applying the write locally is merging that delta.
    fn write<E: Entry>(
        &mut self,
        key: E::Key,
        physical_ms: u64,
        make: impl FnOnce(Hlc) -> E,
    ) -> Result<Delta, WriteError> {
        if self.seq >= self.seq_ceiling {
            return Err(WriteError::LeaseExhausted {
                ceiling: self.seq_ceiling,
            });
        }
        let is_new_key = E::part(&self.state.store).get(&key).is_none();
        if is_new_key
            && self
                .state
                .store
                .dots()
                .filter(|(_, dot)| dot.writer == self.id)
                .count()
                >= MAX_ENTRIES_PER_WRITER
        {
            return Err(WriteError::TooManyEntries);
        }
        let at = self.clock.tick(physical_ms);
        let value = make(at);
        value.validate(&key)?;
        self.seq += 1;
        let dot = Dot::new(self.id.clone(), self.seq);

        let mut delta = Delta::default();
        if let Some(replaced) = E::part(&self.state.store).get(&key) {
            for old in replaced.keys() {
                delta.context.insert(old);
            }
        }
        delta.context.insert(&dot);
        E::part_mut(&mut delta.store).insert(key, dot, value);
        self.state.join(&delta);
        Ok(delta)
    }

    // ---- merging what peers send ----

    /// Merges a delta received from peer `sender` at local physical time `physical_ms`.
    ///
    /// Entries are admitted one by one: an entry whose writer may not write it, whose value
    /// is invalid, or whose stamp is too far ahead of this node's clock is rejected and
    /// reported, and its dot left out, so the rest of the delta still merges. Then the delta
    /// is joined, and anything that has expired is dropped.
    pub fn merge(&mut self, delta: Delta, sender: &NodeId, physical_ms: u64) -> MergeReport {
        self.merge_admitted(delta, sender, physical_ms).0
    }

    /// [`Replica::merge`], also returning the part of `delta` that was admitted and joined:
    /// what this merge changed, for a node that saves its changes as deltas. It is a valid
    /// state (its context covers its store) and is below this replica's state after the
    /// merge in the lattice order, so saving it can never restore more than the replica held.
    pub fn merge_admitted(
        &mut self,
        mut delta: Delta,
        sender: &NodeId,
        physical_ms: u64,
    ) -> (MergeReport, Delta) {
        let mut report = MergeReport {
            bogus_context_dots: delta.context.sanitize(),
            ..MergeReport::default()
        };
        let mut admit = Admit {
            clock: &mut self.clock,
            delta: &mut delta,
            sender,
            physical_ms,
            report: &mut report,
            existing: &self.state,
            room: None,
        };
        for_each_part(&mut admit);

        report.gap = self.shows_gap(&delta);
        report.forgotten_own = delta
            .store
            .dots()
            .filter(|(_, dot)| dot.writer == self.id && !self.state.context.contains(dot))
            .count();
        let count = self.state.join(&delta);
        report.added = count.added;
        report.removed = count.removed;
        report.expired = self.expire(physical_ms);

        // Peers may hold writes of ours newer than our last save (restored from an older
        // save): never hand out those numbers again.
        let ours = self.state.context.max_seq(&self.id);
        self.continue_above(ours);
        (report, delta)
    }

    /// Whether `delta` shows writes this replica has not seen: for a writer of one of its
    /// entries, a sequence number between the highest this replica has seen and the highest
    /// the delta covers that the delta does not cover either. (A delta covers the writes it
    /// holds and those its context says they replace: two writes to one key in one batch
    /// arrive as the second, the first in the context.)
    fn shows_gap(&self, delta: &Delta) -> bool {
        delta.store.dots().any(|(_, dot)| {
            let seen = self.state.context.max_seq(&dot.writer);
            let Some(covered) = delta.context.get(&dot.writer) else {
                return dot.seq > seen.saturating_add(1);
            };
            let newest = covered.max().max(dot.seq);
            newest > seen.saturating_add(1)
                && !covered.includes(&SeqSet::from_ranges([(seen + 1, newest)]))
        })
    }

    /// Joins a delta this replica saved itself (its journal) into a replica just restored
    /// from the snapshot saved before it. Nothing is judged again: every write in it was
    /// admitted when it was made or first merged, exactly like the writes of the snapshot,
    /// which [`Replica::restore`] takes as they are. Judging the node's own stamps again
    /// against a clock set back since (a wrong real-time clock corrected by NTP) would drop
    /// writes it acknowledged. The clock observes every stamp, so later local stamps stay
    /// above the ones replayed.
    pub fn replay(&mut self, delta: &Delta) -> JoinCount {
        struct Observe<'a> {
            clock: &'a mut Clock,
            store: &'a Store,
        }
        impl PartVisitor for Observe<'_> {
            fn visit<E: Entry>(&mut self) {
                for (_, _, value) in E::part(self.store).iter() {
                    self.clock.observe(value.at());
                }
            }
        }
        for_each_part(&mut Observe {
            clock: &mut self.clock,
            store: &delta.store,
        });
        let count = self.state.join(delta);
        let ours = self.state.context.max_seq(&self.id);
        self.continue_above(ours);
        count
    }

    /// Makes sure no sequence number up to `seen` (one of this node's, held by a peer or a
    /// save) is handed out again.
    fn continue_above(&mut self, seen: u64) {
        if seen > self.seq {
            self.seq = seen;
            self.seq_ceiling = self.seq_ceiling.max(seen);
        }
    }

    /// Drops what has expired by this replica's time. Expiry is decided by each entry's own
    /// timestamps, so every replica drops the same entries, and the dropped dots stay in the
    /// context so no peer can bring them back.
    pub fn expire(&mut self, physical_ms: u64) -> usize {
        let now_ms = self.clock.now_ms(physical_ms);
        self.state.expire(now_ms, self.retention_ms)
    }

    // ---- sync ----

    /// What this replica has, for a peer to answer with [`Replica::missing_for`].
    pub fn digest(&self) -> Digest {
        let mut alive: BTreeMap<NodeId, AliveSummary> = BTreeMap::new();
        for (_, dot) in self.state.store.dots() {
            alive.entry(dot.writer.clone()).or_default().add(dot.seq);
        }
        Digest {
            context: self.state.context.clone(),
            alive,
        }
    }

    /// Exactly what the peer that sent `digest` lacks: the writes it has not seen, and the
    /// dots it has seen that this replica no longer holds (so it drops them too). Writers on
    /// which both sides agree are left out entirely.
    ///
    /// Merging the answer has the same effect on the peer as merging this whole replica.
    pub fn missing_for(&self, digest: &Digest) -> Delta {
        let mine = self.digest();
        let mut out = Delta::default();
        for (writer, seen) in self.state.context.writers() {
            let same_context = digest.context.get(writer) == Some(seen);
            let same_alive = digest.alive.get(writer) == mine.alive.get(writer);
            if !(same_context && same_alive) {
                out.context.insert_set(writer.clone(), seen);
            }
        }
        struct Missing<'a> {
            store: &'a Store,
            digest: &'a Digest,
            out: Delta,
        }
        impl PartVisitor for Missing<'_> {
            fn visit<E: Entry>(&mut self) {
                let out = &mut self.out;
                for (key, dot, value) in E::part(self.store).iter() {
                    if out.context.get(&dot.writer).is_none() {
                        continue;
                    }
                    if self.digest.context.contains(dot) {
                        // The peer has it, or dropped it itself: either way it is not news.
                        out.context.remove(dot);
                    } else {
                        E::part_mut(&mut out.store).insert(key.clone(), dot.clone(), value.clone());
                    }
                }
            }
        }
        let mut missing = Missing {
            store: &self.state.store,
            digest,
            out,
        };
        for_each_part(&mut missing);
        missing.out
    }

    // ---- reading the state ----

    /// The newest write at each key of a part whose keys have a single writer.
    pub fn latest<E: Entry>(&self) -> impl Iterator<Item = (&E::Key, &E)> {
        E::part(&self.state.store)
            .keys()
            .filter_map(|(key, writes)| {
                writes
                    .iter()
                    .max_by(|a, b| clock::stamp_order((a.1.at(), a.0), (b.1.at(), b.0)))
                    .map(|(_, value)| (key, value))
            })
    }

    /// The target acted on for `room` and `quantity`: of the concurrent sets, the one with
    /// the highest stamp, node id breaking ties. Returns it and how many sets are concurrent.
    pub fn target(&self, room: &Room, quantity: Quantity) -> Option<(&Target, usize)> {
        let key = TargetKey {
            room: room.clone(),
            quantity,
        };
        let writes = self.state.store.targets.get(&key)?;
        let winner = writes
            .iter()
            .max_by(|a, b| clock::stamp_order((a.1.at, a.0), (b.1.at, b.0)))?;
        Some((winner.1, writes.len()))
    }

    /// Whether `person` is bound to `mac`: a bind concurrent with an unbind counts as bound.
    pub fn is_bound(&self, person: &Person, mac: Mac) -> bool {
        let key = BindingKey {
            person: person.clone(),
            mac,
        };
        self.state
            .store
            .people
            .get(&key)
            .is_some_and(|writes| writes.values().any(|binding| binding.bound))
    }
}

/// Admission of a received delta, part by part: see [`Replica::merge`].
struct Admit<'a> {
    clock: &'a mut Clock,
    delta: &'a mut Delta,
    sender: &'a NodeId,
    physical_ms: u64,
    report: &'a mut MergeReport,
    /// The replica's state before the merge.
    existing: &'a Delta,
    /// How many more new keys each writer may add: counted the first time a delta brings a
    /// new key (a write to a key this replica holds, or one it has seen, never is), so a merge
    /// of ordinary traffic costs no count.
    room: Option<HashMap<NodeId, usize>>,
}

impl Admit<'_> {
    /// Whether `writer` may add one more key, taking it from its room if so.
    fn take_room(&mut self, writer: &NodeId) -> bool {
        let existing = self.existing;
        let room = self.room.get_or_insert_with(|| {
            existing
                .store
                .count_by_writer()
                .into_iter()
                .map(|(writer, count)| (writer, MAX_ENTRIES_PER_WRITER.saturating_sub(count)))
                .collect()
        });
        let left = room.entry(writer.clone()).or_insert(MAX_ENTRIES_PER_WRITER);
        if *left == 0 {
            return false;
        }
        *left -= 1;
        true
    }
}

impl PartVisitor for Admit<'_> {
    fn visit<E: Entry>(&mut self) {
        // New keys past a writer's room are refused first, so the room is only counted when
        // a delta brings keys this replica has never held.
        let existing = self.existing;
        let mut over: BTreeSet<Dot> = BTreeSet::new();
        let fresh: Vec<Dot> = E::part(&self.delta.store)
            .iter()
            .filter(|(key, dot, _)| {
                E::part(&existing.store).get(key).is_none() && !existing.context.contains(dot)
            })
            .map(|(_, dot, _)| dot.clone())
            .collect();
        for dot in fresh {
            if !self.take_room(&dot.writer) {
                over.insert(dot);
            }
        }
        let clock = &mut *self.clock;
        let (sender, physical_ms) = (self.sender, self.physical_ms);
        let mut rejected = Vec::new();
        let removed = E::part_mut(&mut self.delta.store).retain(|key, dot, value| {
            let verdict = match E::owner(key) {
                _ if over.contains(dot) => Err(RejectReason::TooManyEntries {
                    writer: dot.writer.clone(),
                }),
                _ if dot.seq == 0 || dot.seq > MAX_SEQ => {
                    Err(RejectReason::SeqOutOfRange { seq: dot.seq })
                }
                Some(owner) if *owner != dot.writer => Err(RejectReason::NotOwner {
                    writer: dot.writer.clone(),
                    owner: owner.clone(),
                }),
                _ => value
                    .validate(key)
                    .map_err(RejectReason::from)
                    .and_then(|()| {
                        clock
                            .admit(value.at(), physical_ms)
                            .map_err(RejectReason::from)
                    }),
            };
            match verdict {
                Ok(()) => {
                    clock.observe(value.at());
                    true
                }
                Err(reason) => {
                    rejected.push(reason);
                    false
                }
            }
        });
        for (dot, reason) in removed.into_iter().zip(rejected) {
            // Leave the dot out of the context too: a rejected write was not seen.
            self.delta.context.remove(&dot);
            self.report.rejected.push(Rejection {
                sender: sender.clone(),
                part: E::PART,
                dot,
                reason,
            });
        }
        // Keep the invariant that the context covers the store, whatever the sender did.
        let delta = &mut *self.delta;
        for (_, dot, _) in E::part(&delta.store).iter() {
            if !delta.context.contains(dot) {
                delta.context.insert(dot);
            }
        }
    }
}

impl fmt::Display for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replica {} (seq {}, {} entries, {} dots seen)",
            self.id,
            self.seq,
            self.state.store.len(),
            self.state.context.count()
        )
    }
}
