//! A deterministic simulator of a whole office in one thread.
//!
//! N replicas run the real core ([`crate::state`]) and exchange real encoded messages
//! ([`crate::wire`]) over a simulated network that loses, duplicates, delays and reorders
//! them, splits the office into partitions that later heal, crashes nodes (which restart from
//! their last save) and skews every node's clock. Everything random comes from one seed, so a
//! failing seed replays exactly.
//!
//! After every round the invariants are checked: versions never go back, nothing expired or
//! replaced comes back, nothing is accepted from a writer who may not write it, and no
//! sequence number is ever used for two writes. At the end the network is healed and every
//! replica must be identical after a few sync rounds.

mod rng;
mod workload;

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
};

pub use self::rng::SimRng;
use self::workload::Workload;
use crate::{
    state::{
        CausalContext, Delta, Dot, Entry, MIN_PLAUSIBLE_WALL_MS, NodeId, PartVisitor, Replica,
        Store, for_each_part,
    },
    wire,
};

/// Simulated time starts here: 2026-06-01T00:00:00Z.
pub const START_MS: u64 = MIN_PLAUSIBLE_WALL_MS + 151 * 24 * 60 * 60 * 1000;

/// One round is one second of simulated time: the default publish interval.
pub const ROUND_MS: u64 = 1000;

/// What to simulate. [`SimConfig::from_seed`] draws a varied office from a seed.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    /// Also measure what shipping the whole state to every peer every round would cost, as
    /// the hand-built system the project grew from did (see [`SimReport::full_state_bytes`]).
    pub measure_full_state: bool,
    /// Rounds of activity before the network is healed and the replicas must converge.
    pub active_rounds: u64,
    /// Probability that one message is lost.
    pub loss: f64,
    /// Probability that one message is delivered twice.
    pub duplicate: f64,
    /// A message is delivered 0 to this many rounds late, so messages overtake each other.
    pub max_delay_rounds: u64,
    /// Whether the office splits into two sides for a while, now and then.
    pub partitions: bool,
    /// Whether nodes crash and restart from their last save.
    pub crashes: bool,
    /// Every node's clock is off by up to this much, either way.
    pub max_skew_ms: u64,
    pub sensors_per_node: usize,
    /// Devices on the network near each node, seen by its neighbour-table scans.
    pub devices_per_node: usize,
    /// Each sensor writes a reading every this many rounds.
    pub reading_interval_rounds: u64,
    pub sync_interval_rounds: u64,
    /// A node saves its replica every this many rounds.
    pub save_interval_rounds: u64,
    /// Retention of expiring entries; short, so expiry happens during a run.
    pub retention_ms: u64,
    /// Whether a node that receives a push showing writes it missed pulls from the sender at
    /// once (as the net actor does, `GAP_PULL_INTERVAL`), rather than waiting for its
    /// periodic sync. Off only to measure what it brings.
    pub gap_pulls: bool,
    /// Whether nodes make people, target and alert writes (the benchmark measures readings only).
    pub chatter: bool,
    /// Whether a misbehaving node now and then sends entries it may not write.
    pub forgeries: bool,
    /// The `officemesh` arguments that replay this run, printed with a failure.
    pub replay: String,
}

impl SimConfig {
    /// A lossless, partition-free office with the given size, for the command line's defaults.
    pub fn new(nodes: usize, seed: u64) -> Self {
        SimConfig {
            seed,
            nodes,
            measure_full_state: false,
            active_rounds: 120,
            loss: 0.0,
            duplicate: 0.0,
            max_delay_rounds: 0,
            partitions: false,
            crashes: false,
            max_skew_ms: 0,
            sensors_per_node: 3,
            devices_per_node: 2,
            reading_interval_rounds: 10,
            sync_interval_rounds: 10,
            save_interval_rounds: 5,
            retention_ms: 60_000,
            chatter: true,
            forgeries: false,
            gap_pulls: true,
            replay: format!("sim --nodes {nodes} --seed {seed}"),
        }
    }

    /// A varied, hostile office drawn from the seed: up to 30 % loss, duplicates, reordering,
    /// partitions, crashes and clock skew of up to ±300 s.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = SimRng::new(seed ^ 0x5eed_0ff1_ce00_0000);
        SimConfig {
            seed,
            nodes: rng.between(2, 8) as usize,
            measure_full_state: false,
            active_rounds: rng.between(40, 160) as u64,
            loss: rng.unit() * 0.3,
            duplicate: rng.unit() * 0.2,
            max_delay_rounds: rng.between(0, 4) as u64,
            partitions: rng.chance(0.6),
            crashes: rng.chance(0.6),
            max_skew_ms: 300_000,
            sensors_per_node: rng.between(1, 4) as usize,
            devices_per_node: rng.between(0, 3) as usize,
            reading_interval_rounds: rng.between(1, 10) as u64,
            sync_interval_rounds: rng.between(3, 12) as u64,
            save_interval_rounds: rng.between(1, 10) as u64,
            retention_ms: rng.between(20, 90) as u64 * 1000,
            chatter: true,
            forgeries: rng.chance(0.5),
            gap_pulls: true,
            replay: format!("sim --replay --seed {seed}"),
        }
    }
}

/// What happened in a run.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub seed: u64,
    pub nodes: usize,
    pub active_rounds: u64,
    /// Sync rounds needed after the network healed until every replica was identical.
    pub converge_rounds: u64,
    /// For each partition healed while the office kept running: rounds (seconds) from the
    /// heal until every node up held everything any node up had seen at the heal.
    pub heal_rounds: Vec<u64>,
    /// Pulls started because a push showed missed writes.
    pub gap_pulls: u64,
    pub identical: bool,
    pub messages_sent: u64,
    pub messages_lost: u64,
    pub messages_duplicated: u64,
    /// Bytes of deltas pushed to peers.
    pub push_bytes: u64,
    /// Bytes of digests and sync answers.
    pub sync_bytes: u64,
    /// What sending each node's whole encoded state to every peer every round would have
    /// cost over the same run, when [`SimConfig::measure_full_state`] is set.
    pub full_state_bytes: u64,
    pub readings_written: u64,
    pub writes: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub forgeries_sent: u64,
    pub rejections: u64,
    pub expired: u64,
    /// Entries and dots seen in the final state of one replica.
    pub final_entries: usize,
    pub final_dots: u64,
}

impl SimReport {
    pub fn bytes(&self) -> u64 {
        self.push_bytes + self.sync_bytes
    }

    pub fn bytes_per_reading(&self) -> f64 {
        self.bytes() as f64 / self.readings_written.max(1) as f64
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} nodes, {} rounds of activity",
            self.seed, self.nodes, self.active_rounds
        )?;
        writeln!(
            f,
            "  writes {} ({} readings), crashes {}, partitions {}, forged entries {} (rejected {})",
            self.writes,
            self.readings_written,
            self.crashes,
            self.partitions,
            self.forgeries_sent,
            self.rejections
        )?;
        writeln!(
            f,
            "  messages {} (lost {}, duplicated {}), bytes {} (push {}, sync {}), {:.1} bytes per reading",
            self.messages_sent,
            self.messages_lost,
            self.messages_duplicated,
            self.bytes(),
            self.push_bytes,
            self.sync_bytes,
            self.bytes_per_reading()
        )?;
        if self.full_state_bytes > 0 {
            writeln!(
                f,
                "  shipping whole states every second instead: {} bytes, {:.1} bytes per reading, {:.1} times more",
                self.full_state_bytes,
                self.full_state_bytes as f64 / self.readings_written.max(1) as f64,
                self.full_state_bytes as f64 / self.bytes().max(1) as f64
            )?;
        }
        if !self.heal_rounds.is_empty() {
            let mut rounds = self.heal_rounds.clone();
            rounds.sort_unstable();
            writeln!(
                f,
                "  heals while running: {}, every node up holding what was seen at the heal after {} s (median), {} s (longest); {} pulls on a gap",
                rounds.len(),
                rounds[rounds.len() / 2],
                rounds[rounds.len() - 1],
                self.gap_pulls
            )?;
        }
        write!(
            f,
            "  network healed: converged after {} full sync round(s), each node syncing once per round: {}; final state {} entries, {} dots seen, {} expired on the way",
            self.converge_rounds,
            if self.identical {
                "every replica identical"
            } else {
                "REPLICAS DIFFER"
            },
            self.final_entries,
            self.final_dots,
            self.expired
        )
    }
}

/// A broken invariant, with what is needed to replay it.
#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    pub replay: String,
    pub round: u64,
    pub message: String,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} failed in round {}: {}\n  replay: cargo run --release -- {}",
            self.seed, self.round, self.message, self.replay
        )
    }
}

impl std::error::Error for SimFailure {}

/// How many sync rounds the healed office may need. Pairing each node with the node 2^r
/// places on spreads everything in ceil(log2 N) rounds. An old entry can take that long to
/// reach the node with the fastest clock, which finds it expired and drops it; that removal
/// then takes as long again to reach everyone: 2 ceil(log2 N), plus one round of slack.
pub fn converge_bound(nodes: usize) -> u64 {
    2 * log2_ceil(nodes) + 1
}

fn log2_ceil(n: usize) -> u64 {
    u64::from(usize::BITS - n.max(1).saturating_sub(1).leading_zeros())
}

#[derive(Clone)]
enum Body {
    /// Deltas of the sender's writes (or its whole state).
    Push(Vec<u8>),
    /// "Here is my digest": answered with what the sender lacks and the answerer's digest.
    SyncRequest(Vec<u8>),
    SyncResponse {
        delta: Vec<u8>,
        digest: Vec<u8>,
    },
    /// The last leg of a sync: what the answerer lacks.
    SyncFinal(Vec<u8>),
}

struct Message {
    from: usize,
    to: usize,
    deliver_at: u64,
    body: Body,
}

struct SimNode {
    id: NodeId,
    replica: Replica,
    /// The last save, encoded as the store would keep it.
    saved: Vec<u8>,
    up: bool,
    down_until: u64,
    skew_ms: i64,
    /// Writes made this round, pushed together at its end.
    pending: Delta,
    /// The pulls on a gap on their way, by peer, with the round each started (until its
    /// answer comes, or three rounds pass, as a lost request times out), and the peers whose
    /// gaps wait for them: one pull per peer at a time, as the net actor runs them
    /// (`GAP_PULL_INTERVAL`).
    gap_pulls: BTreeMap<usize, u64>,
    gap_deferred: Vec<usize>,
    /// For the invariants: what the replica had seen and held after the previous round.
    last_context: CausalContext,
    last_alive: HashSet<Dot>,
    last_seq: u64,
}

impl SimNode {
    fn physical_ms(&self, round: u64) -> u64 {
        (START_MS + round * ROUND_MS).saturating_add_signed(self.skew_ms)
    }
}

struct Sim {
    config: SimConfig,
    rng: SimRng,
    nodes: Vec<SimNode>,
    in_flight: Vec<Message>,
    /// Which side of a partition each node is on, while the office is split.
    sides: Option<Vec<bool>>,
    heal_at: u64,
    /// A heal being timed: its round, and what every node must come to hold.
    healing: Option<(u64, CausalContext)>,
    workload: Workload,
    /// Every dot ever written, by its writer: a second write with the same dot is reuse.
    issued: HashSet<Dot>,
    report: SimReport,
    round: u64,
}

/// Runs one simulated office and checks it.
pub fn run(config: &SimConfig) -> Result<SimReport, SimFailure> {
    let mut sim = Sim::new(config.clone())?;
    for _ in 0..config.active_rounds {
        sim.step(true)?;
    }
    sim.heal_and_converge()?;
    Ok(sim.report)
}

impl Sim {
    fn new(config: SimConfig) -> Result<Self, SimFailure> {
        let mut rng = SimRng::new(config.seed);
        let workload = Workload::new(&config, &mut rng.fork());
        let mut nodes = Vec::with_capacity(config.nodes);
        for index in 0..config.nodes {
            let id = node_id(&mut rng, index);
            let mut replica = Replica::new(id.clone(), config.retention_ms);
            let saved = wire::encode_snapshot(&replica.snapshot());
            let skew_ms = rng.between(-(config.max_skew_ms as i64), config.max_skew_ms as i64);
            nodes.push(SimNode {
                id,
                replica,
                saved,
                up: true,
                down_until: 0,
                skew_ms,
                pending: Delta::default(),
                gap_pulls: BTreeMap::new(),
                gap_deferred: Vec::new(),
                last_context: CausalContext::default(),
                last_alive: HashSet::new(),
                last_seq: 0,
            });
        }
        let report = SimReport {
            seed: config.seed,
            nodes: config.nodes,
            active_rounds: config.active_rounds,
            ..SimReport::default()
        };
        Ok(Sim {
            config,
            rng,
            nodes,
            in_flight: Vec::new(),
            sides: None,
            heal_at: 0,
            healing: None,
            workload,
            issued: HashSet::new(),
            report,
            round: 0,
        })
    }

    fn fail(&self, message: impl Into<String>) -> SimFailure {
        SimFailure {
            seed: self.config.seed,
            replay: self.config.replay.clone(),
            round: self.round,
            message: message.into(),
        }
    }

    /// One round: faults, local writes, pushes, syncs, deliveries, then the invariants.
    fn step(&mut self, active: bool) -> Result<(), SimFailure> {
        self.round += 1;
        if active {
            self.faults()?;
        }
        for index in 0..self.nodes.len() {
            if !self.nodes[index].up {
                continue;
            }
            if active {
                self.local_writes(index)?;
            }
            self.publish(index);
            for peer in std::mem::take(&mut self.nodes[index].gap_deferred) {
                self.pull_on_gap(index, peer);
            }
            if (self.round + index as u64).is_multiple_of(self.config.sync_interval_rounds) {
                let peer = self.random_peer(index);
                self.start_sync(index, peer);
            }
            if self.round.is_multiple_of(self.config.save_interval_rounds) {
                self.save(index);
            }
        }
        self.deliver()?;
        self.time_heal();
        self.check_invariants()
    }

    /// A push showed `index` writes it missed: it pulls from the sender, unless a pull from
    /// that peer is on its way; then the gap waits for it.
    fn pull_on_gap(&mut self, index: usize, peer: usize) {
        let round = self.round;
        let node = &mut self.nodes[index];
        if !node.up {
            return;
        }
        if node
            .gap_pulls
            .get(&peer)
            .is_some_and(|started| round < started + 3)
        {
            if !node.gap_deferred.contains(&peer) {
                node.gap_deferred.push(peer);
            }
            return;
        }
        node.gap_pulls.insert(peer, round);
        self.report.gap_pulls += 1;
        self.start_sync(index, peer);
    }

    /// Starts timing a heal, or ends it once every node up holds what was seen at the heal.
    fn time_heal(&mut self) {
        let Some((at, target)) = &self.healing else {
            return;
        };
        let done = self
            .nodes
            .iter()
            .filter(|node| node.up)
            .all(|node| node.replica.context().includes(target));
        if done {
            self.report.heal_rounds.push(self.round - at);
            self.healing = None;
        }
    }

    fn faults(&mut self) -> Result<(), SimFailure> {
        let round = self.round;
        if self.sides.is_some() && round >= self.heal_at {
            self.sides = None;
            let mut target = CausalContext::default();
            for node in self.nodes.iter().filter(|node| node.up) {
                target.union(node.replica.context());
            }
            self.healing = Some((round, target));
        }
        if self.config.partitions
            && self.sides.is_none()
            && self.nodes.len() > 1
            && self.rng.chance(0.03)
        {
            let mut sides: Vec<bool> = (0..self.nodes.len())
                .map(|_| self.rng.chance(0.5))
                .collect();
            // Make sure both sides have someone.
            sides[0] = true;
            sides[1] = false;
            self.sides = Some(sides);
            // A heal still being timed when the office splits again is not counted.
            self.healing = None;
            self.heal_at = round + self.rng.between(5, 30) as u64;
            self.report.partitions += 1;
        }
        if self.config.crashes {
            for index in 0..self.nodes.len() {
                if self.nodes[index].up && self.rng.chance(0.01) {
                    // Lost with the process: what was not yet pushed or saved.
                    let node = &mut self.nodes[index];
                    node.up = false;
                    node.down_until = round + self.rng.between(1, 10) as u64;
                    node.pending = Delta::default();
                    self.report.crashes += 1;
                } else if !self.nodes[index].up && self.nodes[index].down_until <= round {
                    self.restart(index)?;
                }
            }
        }
        Ok(())
    }

    fn restart(&mut self, index: usize) -> Result<(), SimFailure> {
        let snapshot = wire::decode_snapshot(&self.nodes[index].saved).map_err(|error| {
            self.fail(format!("node {index} cannot read its own save: {error}"))
        })?;
        let mut replica = Replica::restore(snapshot, self.config.retention_ms);
        if replica.seq() < self.nodes[index].last_seq {
            return Err(self.fail(format!(
                "node {index} restarted at sequence {} below {} it had used",
                replica.seq(),
                self.nodes[index].last_seq
            )));
        }
        let node = &mut self.nodes[index];
        // As a node does at start: reserve sequence numbers and save before writing.
        node.saved = wire::encode_snapshot(&replica.snapshot());
        node.last_context = replica.context().clone();
        node.last_alive = alive_dots(replica.store());
        node.last_seq = replica.seq();
        node.replica = replica;
        node.up = true;
        Ok(())
    }

    fn local_writes(&mut self, index: usize) -> Result<(), SimFailure> {
        let round = self.round;
        let physical_ms = self.nodes[index].physical_ms(round);
        let deltas = self
            .workload
            .writes(
                index,
                round,
                physical_ms,
                &mut self.nodes[index].replica,
                &mut self.report,
            )
            .map_err(|error| self.fail(format!("node {index} could not write: {error}")))?;
        for delta in deltas {
            for (_, dot) in delta.store.dots() {
                if !self.issued.insert(dot.clone()) {
                    return Err(self.fail(format!("sequence number reused: {dot} written twice")));
                }
            }
            self.nodes[index].pending.join(&delta);
        }
        if self.config.forgeries && self.nodes.len() > 1 && self.rng.chance(0.05) {
            let victim = self.random_peer(index);
            let victim_id = self.nodes[victim].id.clone();
            let forged = self.workload.forge(&self.nodes[index].replica, &victim_id);
            self.report.forgeries_sent += forged.store.len() as u64;
            // A forged delta travels like any other; its author does not merge it.
            self.nodes[index].pending.join(&forged);
        }
        Ok(())
    }

    /// Pushes the writes of this round to every peer, in one delta.
    fn publish(&mut self, index: usize) {
        let peers = self.nodes.len() as u64 - 1;
        if self.config.measure_full_state {
            let whole = wire::encode_delta(self.nodes[index].replica.state());
            self.report.full_state_bytes += whole.len() as u64 * peers;
        }
        let pending = std::mem::take(&mut self.nodes[index].pending);
        if pending.is_empty() {
            return;
        }
        let bytes = wire::encode_delta(&pending);
        for peer in 0..self.nodes.len() {
            if peer != index {
                self.report.push_bytes += bytes.len() as u64;
                self.send(index, peer, Body::Push(bytes.clone()));
            }
        }
    }

    fn start_sync(&mut self, index: usize, peer: usize) {
        let digest = wire::encode_digest(&self.nodes[index].replica.digest());
        self.report.sync_bytes += digest.len() as u64;
        self.send(index, peer, Body::SyncRequest(digest));
    }

    fn save(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.saved = wire::encode_snapshot(&node.replica.snapshot());
    }

    fn random_peer(&mut self, index: usize) -> usize {
        let offset = 1 + self.rng.index(self.nodes.len() - 1);
        (index + offset) % self.nodes.len()
    }

    fn send(&mut self, from: usize, to: usize, body: Body) {
        self.report.messages_sent += 1;
        if self.rng.chance(self.config.loss) {
            self.report.messages_lost += 1;
            return;
        }
        if self.rng.chance(self.config.duplicate) {
            self.report.messages_duplicated += 1;
            let deliver_at = self.round + self.rng.below(self.config.max_delay_rounds + 1);
            let body = body.clone();
            self.in_flight.push(Message {
                from,
                to,
                deliver_at,
                body,
            });
        }
        let deliver_at = self.round + self.rng.below(self.config.max_delay_rounds + 1);
        self.in_flight.push(Message {
            from,
            to,
            deliver_at,
            body,
        });
    }

    /// Delivers, in random order, every message due this round. Answers sent while
    /// delivering go out in the next round.
    fn deliver(&mut self) -> Result<(), SimFailure> {
        let (mut due, later): (Vec<Message>, Vec<Message>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|message| message.deliver_at <= self.round);
        self.in_flight = later;
        self.rng.shuffle(&mut due);
        for message in due {
            let (from, to) = (message.from, message.to);
            if !self.nodes[to].up || self.separated(from, to) {
                self.report.messages_lost += 1;
                continue;
            }
            match message.body {
                Body::Push(bytes) => {
                    let gap = self.receive(to, from, &bytes)?;
                    if gap && self.config.gap_pulls {
                        self.pull_on_gap(to, from);
                    }
                }
                Body::SyncFinal(bytes) => {
                    self.receive(to, from, &bytes)?;
                }
                Body::SyncRequest(digest) => {
                    let digest = self.decode_digest(to, &digest)?;
                    let node = &self.nodes[to].replica;
                    let delta = wire::encode_delta(&node.missing_for(&digest));
                    let mine = wire::encode_digest(&node.digest());
                    self.report.sync_bytes += (delta.len() + mine.len()) as u64;
                    self.send(
                        to,
                        from,
                        Body::SyncResponse {
                            delta,
                            digest: mine,
                        },
                    );
                }
                Body::SyncResponse { delta, digest } => {
                    self.receive(to, from, &delta)?;
                    self.nodes[to].gap_pulls.remove(&from);
                    let digest = self.decode_digest(to, &digest)?;
                    let answer = wire::encode_delta(&self.nodes[to].replica.missing_for(&digest));
                    self.report.sync_bytes += answer.len() as u64;
                    self.send(to, from, Body::SyncFinal(answer));
                }
            }
        }
        Ok(())
    }

    fn decode_digest(&self, at: usize, bytes: &[u8]) -> Result<crate::state::Digest, SimFailure> {
        wire::decode_digest(bytes)
            .map_err(|error| self.fail(format!("node {at} got an undecodable digest: {error}")))
    }

    /// Merges what `from` sent `to`; whether it showed writes `to` had missed.
    fn receive(&mut self, to: usize, from: usize, bytes: &[u8]) -> Result<bool, SimFailure> {
        let decoded = wire::decode_delta(bytes)
            .map_err(|error| self.fail(format!("node {to} got an undecodable delta: {error}")))?;
        if !decoded.rejected.is_empty() {
            return Err(self.fail(format!(
                "valid entries dropped by the decoder: {:?}",
                decoded.rejected
            )));
        }
        let sender = self.nodes[from].id.clone();
        let round = self.round;
        let node = &mut self.nodes[to];
        let physical_ms = node.physical_ms(round);
        let report = node.replica.merge(decoded.delta, &sender, physical_ms);
        self.report.expired += report.expired as u64;
        for rejection in &report.rejected {
            if rejection.sender != sender {
                return Err(self.fail(format!("rejection names the wrong sender: {rejection}")));
            }
            if !matches!(
                rejection.reason,
                crate::state::RejectReason::NotOwner { .. }
            ) {
                return Err(self.fail(format!("honest entry rejected: {rejection}")));
            }
        }
        self.report.rejections += report.rejected.len() as u64;
        Ok(report.gap)
    }

    fn separated(&self, a: usize, b: usize) -> bool {
        self.sides
            .as_ref()
            .is_some_and(|sides| sides[a] != sides[b])
    }

    fn check_invariants(&mut self) -> Result<(), SimFailure> {
        for index in 0..self.nodes.len() {
            if !self.nodes[index].up {
                continue;
            }
            let node = &self.nodes[index];
            let replica = &node.replica;
            if !replica.context().includes(&node.last_context) {
                return Err(self.fail(format!("node {index}: its context went back")));
            }
            if replica.seq() < node.last_seq {
                return Err(self.fail(format!("node {index}: its sequence went back")));
            }
            let alive = alive_dots(replica.store());
            for dot in &alive {
                if !replica.context().contains(dot) {
                    return Err(self.fail(format!("node {index}: holds {dot} outside its context")));
                }
                if !node.last_alive.contains(dot) && node.last_context.contains(dot) {
                    return Err(self.fail(format!(
                        "node {index}: {dot} came back after it was dropped"
                    )));
                }
            }
            if let Some(message) = owner_violation(replica.store()) {
                return Err(self.fail(format!("node {index}: {message}")));
            }
            let node = &mut self.nodes[index];
            node.last_context = node.replica.context().clone();
            node.last_seq = node.replica.seq();
            node.last_alive = alive;
        }
        Ok(())
    }

    /// Heals the network, restarts every crashed node, lets in-flight messages land, then runs
    /// full sync rounds until every replica is identical.
    fn heal_and_converge(&mut self) -> Result<(), SimFailure> {
        self.sides = None;
        for index in 0..self.nodes.len() {
            if !self.nodes[index].up {
                self.restart(index)?;
            }
        }
        // Let the stragglers land, without new loss, and push what is pending.
        self.config.loss = 0.0;
        self.config.duplicate = 0.0;
        while !self.in_flight.is_empty() {
            self.round += 1;
            for index in 0..self.nodes.len() {
                self.publish(index);
            }
            for message in &mut self.in_flight {
                message.deliver_at = message.deliver_at.min(self.round);
            }
            self.deliver()?;
            self.check_invariants()?;
        }
        let bound = converge_bound(self.nodes.len());
        let count = self.nodes.len();
        let mut rounds = 0;
        while !self.identical() {
            if rounds == bound + 3 {
                return Err(self.fail(format!(
                    "replicas still differ after {rounds} full sync rounds: {}",
                    self.describe_difference()
                )));
            }
            // Simulated time stands still here, so no new expiry joins the exchange.
            rounds += 1;
            let distance = 1usize << ((rounds - 1) % log2_ceil(count).max(1));
            for index in 0..count {
                let peer = (index + distance) % count;
                if peer != index {
                    self.sync_now(index, peer)?;
                }
            }
            self.check_invariants()?;
        }
        if rounds > bound {
            return Err(self.fail(format!(
                "converged only after {rounds} sync rounds, more than {bound} for {count} nodes"
            )));
        }
        self.report.converge_rounds = rounds;
        self.report.identical = true;
        let first = &self.nodes[0].replica;
        self.report.final_entries = first.store().len();
        self.report.final_dots = first.context().count();
        Ok(())
    }

    /// A whole sync exchange between two nodes, delivered at once.
    fn sync_now(&mut self, a: usize, b: usize) -> Result<(), SimFailure> {
        let digest = wire::encode_digest(&self.nodes[a].replica.digest());
        let digest_a = self.decode_digest(b, &digest)?;
        let answer = wire::encode_delta(&self.nodes[b].replica.missing_for(&digest_a));
        let digest_b = wire::encode_digest(&self.nodes[b].replica.digest());
        self.report.sync_bytes += (digest.len() + answer.len() + digest_b.len()) as u64;
        self.report.messages_sent += 2;
        self.receive(a, b, &answer)?;
        let digest_b = self.decode_digest(a, &digest_b)?;
        let back = wire::encode_delta(&self.nodes[a].replica.missing_for(&digest_b));
        self.report.sync_bytes += back.len() as u64;
        self.report.messages_sent += 1;
        self.receive(b, a, &back)?;
        Ok(())
    }

    fn identical(&self) -> bool {
        let first = self.nodes[0].replica.state();
        self.nodes.iter().all(|node| node.replica.state() == first)
    }

    fn describe_difference(&self) -> String {
        let first = &self.nodes[0].replica;
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.replica.state() != first.state())
            .map(|(index, node)| {
                let mine = alive_dots(node.replica.store());
                let theirs = alive_dots(first.store());
                let only_here: Vec<String> = mine.difference(&theirs).map(|dot| {
                    let seen = if first.context().contains(dot) { "seen" } else { "unseen" };
                    format!("{dot} ({seen} by node 0)")
                }).collect();
                let only_first: Vec<String> = theirs.difference(&mine).map(ToString::to_string).collect();
                format!(
                    "node {index} has {} entries / {} dots, node 0 has {} / {}; only on node {index}: {}; only on node 0: {}",
                    node.replica.store().len(),
                    node.replica.context().count(),
                    first.store().len(),
                    first.context().count(),
                    only_here.join(", "),
                    only_first.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn alive_dots(store: &Store) -> HashSet<Dot> {
    store.dots().map(|(_, dot)| dot.clone()).collect()
}

/// The first entry held in breach of its part's writer rule, if any.
fn owner_violation(store: &Store) -> Option<String> {
    struct Owners<'a>(&'a Store, Option<String>);
    impl PartVisitor for Owners<'_> {
        fn visit<E: Entry>(&mut self) {
            if self.1.is_some() {
                return;
            }
            self.1 = E::part(self.0)
                .iter()
                .find_map(|(key, dot, _)| match E::owner(key) {
                    Some(owner) if *owner != dot.writer => Some(format!(
                        "holds a {} of {owner} written by {}",
                        E::PART,
                        dot.writer
                    )),
                    _ => None,
                });
        }
    }
    let mut owners = Owners(store, None);
    for_each_part(&mut owners);
    owners.1
}

/// A node id shaped like a libp2p Ed25519 peer id in base58 ("12D3KooW" and 44 more), so
/// byte counts are those of a real office.
fn node_id(rng: &mut SimRng, index: usize) -> NodeId {
    const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut id = String::from("12D3KooW");
    for _ in 0..44 {
        id.push(BASE58[rng.index(BASE58.len())] as char);
    }
    // Distinct even if the draws collided.
    id.replace_range(8..12, &format!("{:04}", index % 10_000));
    NodeId::new(id).expect("base58 ids are valid node ids")
}

/// Runs the seeds `first..first + count` of [`SimConfig::from_seed`]; the first failure is
/// returned with its seed.
pub fn run_seeds(first: u64, count: u64) -> Result<Vec<SimReport>, SimFailure> {
    (first..first + count)
        .map(|seed| run(&SimConfig::from_seed(seed)))
        .collect()
}

/// Summaries by node count, for the command line.
pub fn summarize(reports: &[SimReport]) -> BTreeMap<usize, (u64, u64)> {
    let mut by_nodes: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    for report in reports {
        let entry = by_nodes.entry(report.nodes).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(report.converge_rounds);
    }
    by_nodes
}
