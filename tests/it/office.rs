//! Reachable office states, for the property tests.
//!
//! A [`History`] is a few nodes (2 to 4) and a random sequence of operations: local writes
//! through the real [`Replica`] API at increasing physical times, deltas delivered to random
//! replicas (some lost, some duplicated, in any order), digest syncs, expiry, saves and
//! crashes. [`Office`] plays a history and checks, after every step, the invariants every
//! reachable state must keep; the property tests then look at the states it reached.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
};

use officemesh::state::*;
use proptest::{prelude::*, sample::Index};

/// The physical time the office starts at: plausible, with room for clocks skewed backwards.
pub const START_MS: u64 = MIN_PLAUSIBLE_WALL_MS + 1_000_000;

/// A retention short enough that histories see entries expire.
pub const SHORT_RETENTION_MS: u64 = 30_000;

/// How far a node's physical clock may be off in histories with skew.
pub const MAX_SKEW_MS: i64 = 60_000;

pub fn node_id(index: usize) -> NodeId {
    NodeId::new(format!("node-{index}")).unwrap()
}

// Few keys, so that writes collide: replacements and concurrent writes are the interesting part.
pub fn room(index: u8) -> Room {
    Room::new(["meeting room", "open space"][usize::from(index % 2)]).unwrap()
}

pub fn person(index: u8) -> Person {
    Person::new(["ada", "grace"][usize::from(index % 2)]).unwrap()
}

pub fn quantity(index: u8) -> Quantity {
    [Quantity::Temperature, Quantity::Humidity][usize::from(index % 2)]
}

pub fn mac(index: u8) -> Mac {
    Mac([0x00, 0x1a, 0x2b, 0x3c, 0x4d, index])
}

pub fn sensor(index: u8) -> SensorId {
    SensorId::new(&format!("sensor-{index}")).unwrap()
}

pub fn alert_name(index: u8) -> AlertName {
    AlertName::new(&format!("alert-{index}")).unwrap()
}

pub fn ip(index: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10 + index))
}

/// One local write, of every kind the [`Replica`] API offers.
#[derive(Clone, Debug)]
pub enum Write {
    Announce {
        room: u8,
    },
    Reading {
        sensor: u8,
        room: u8,
        quantity: u8,
        value: u8,
    },
    Observe {
        mac: u8,
        ip: u8,
    },
    Bind {
        person: u8,
        mac: u8,
    },
    Unbind {
        person: u8,
        mac: u8,
    },
    SetTarget {
        room: u8,
        quantity: u8,
        value: u8,
        person: u8,
    },
    RaiseAlert {
        name: u8,
        room: u8,
    },
    ClearAlert {
        name: u8,
    },
}

impl Write {
    /// One write of each kind, for tests that go through them all.
    pub fn every_kind() -> Vec<Write> {
        vec![
            Write::Announce { room: 1 },
            Write::Reading {
                sensor: 0,
                room: 0,
                quantity: 1,
                value: 45,
            },
            Write::Observe { mac: 1, ip: 2 },
            Write::Bind { person: 0, mac: 1 },
            Write::Unbind { person: 0, mac: 1 },
            Write::SetTarget {
                room: 0,
                quantity: 0,
                value: 21,
                person: 1,
            },
            Write::RaiseAlert { name: 0, room: 1 },
            Write::ClearAlert { name: 0 },
        ]
    }

    pub fn apply(&self, replica: &mut Replica, physical_ms: u64) -> Result<Delta, WriteError> {
        match *self {
            Write::Announce { room: r } => replica.announce(
                NodeName::new(replica.id().as_str()).unwrap(),
                room(r),
                Version::new("0.1.0").unwrap(),
                START_MS,
                physical_ms,
            ),
            Write::Reading {
                sensor: s,
                room: r,
                quantity: q,
                value,
            } => replica.record_reading(
                sensor(s),
                room(r),
                quantity(q),
                f64::from(value),
                "",
                physical_ms,
            ),
            Write::Observe { mac: m, ip: i } => replica.observe_device(mac(m), ip(i), physical_ms),
            Write::Bind { person: p, mac: m } => replica.bind(person(p), mac(m), physical_ms),
            Write::Unbind { person: p, mac: m } => replica.unbind(person(p), mac(m), physical_ms),
            Write::SetTarget {
                room: r,
                quantity: q,
                value,
                person: p,
            } => replica.set_target(
                room(r),
                quantity(q),
                f64::from(value),
                "",
                person(p),
                physical_ms,
            ),
            Write::RaiseAlert { name, room: r } => replica.raise_alert(
                alert_name(name),
                room(r),
                quantity(0),
                Message::new("the open space temperature is at 24.0°C").unwrap(),
                physical_ms,
            ),
            Write::ClearAlert { name } => replica.clear_alert(alert_name(name), physical_ms),
        }
    }
}

pub fn write() -> impl Strategy<Value = Write> {
    let small = || 0..2u8;
    // Values valid for both quantities used: temperature and humidity.
    let value = || 0..=60u8;
    prop_oneof![
        small().prop_map(|room| Write::Announce { room }),
        (small(), small(), small(), value()).prop_map(|(sensor, room, quantity, value)| {
            Write::Reading {
                sensor,
                room,
                quantity,
                value,
            }
        }),
        (small(), 0..3u8).prop_map(|(mac, ip)| Write::Observe { mac, ip }),
        (small(), small()).prop_map(|(person, mac)| Write::Bind { person, mac }),
        (small(), small()).prop_map(|(person, mac)| Write::Unbind { person, mac }),
        // One quantity only, so that concurrent sets meet at the same key more often.
        (small(), value(), small()).prop_map(|(room, value, person)| {
            Write::SetTarget {
                room,
                quantity: 0,
                value,
                person,
            }
        }),
        (small(), small()).prop_map(|(name, room)| Write::RaiseAlert { name, room }),
        small().prop_map(|name| Write::ClearAlert { name }),
    ]
}

/// One step of a history. Node numbers are taken modulo the number of nodes.
#[derive(Clone, Debug)]
pub enum Op {
    Write {
        node: u8,
        write: Write,
    },
    /// Delivers an in-flight delta to a replica; with `keep` it stays in flight, to be
    /// delivered again (duplication). Which delta is picked makes the reordering.
    Deliver {
        delta: Index,
        to: u8,
        keep: bool,
    },
    /// An in-flight delta is lost.
    Lose {
        delta: Index,
    },
    /// `to` sends its digest to `from`, which answers with what `to` lacks.
    Sync {
        from: u8,
        to: u8,
    },
    Expire {
        node: u8,
    },
    /// The node saves a snapshot (which reserves sequence numbers).
    Save {
        node: u8,
    },
    /// The node restarts from its last save; it refuses writes until it saves again.
    Crash {
        node: u8,
    },
    Wait {
        ms: u16,
    },
}

/// What kind of histories to generate.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub max_ops: usize,
    /// A short retention, so entries expire; otherwise [`DEFAULT_RETENTION_MS`].
    pub expiry: bool,
    /// Each node's physical clock off by up to [`MAX_SKEW_MS`].
    pub skew: bool,
    pub crashes: bool,
}

impl Shape {
    /// Everything that can happen to an office.
    pub const ROUGH: Shape = Shape {
        max_ops: 80,
        expiry: true,
        skew: true,
        crashes: true,
    };
    /// The same with one clock for all nodes, so that they judge expiry at the same time.
    pub const SHARED_CLOCK: Shape = Shape {
        skew: false,
        ..Shape::ROUGH
    };
}

#[derive(Clone, Debug)]
pub struct History {
    pub nodes: usize,
    pub retention_ms: u64,
    pub skew_ms: Vec<i64>,
    pub ops: Vec<Op>,
}

fn op(shape: Shape) -> BoxedStrategy<Op> {
    let node = || 0..4u8;
    let common = prop_oneof![
        8 => (node(), write()).prop_map(|(node, write)| Op::Write { node, write }),
        5 => (any::<Index>(), node(), prop::bool::weighted(0.2))
            .prop_map(|(delta, to, keep)| Op::Deliver { delta, to, keep }),
        1 => any::<Index>().prop_map(|delta| Op::Lose { delta }),
        1 => (node(), node()).prop_map(|(from, to)| Op::Sync { from, to }),
        1 => node().prop_map(|node| Op::Expire { node }),
        2 => (0..15_000u16).prop_map(|ms| Op::Wait { ms }),
    ];
    if shape.crashes {
        prop_oneof![
            36 => common,
            2 => node().prop_map(|node| Op::Save { node }),
            1 => node().prop_map(|node| Op::Crash { node }),
        ]
        .boxed()
    } else {
        common.boxed()
    }
}

pub fn history(shape: Shape) -> impl Strategy<Value = History> {
    (
        2..=4usize,
        prop::collection::vec(-MAX_SKEW_MS..=MAX_SKEW_MS, 4),
        prop::collection::vec(op(shape), 0..=shape.max_ops),
    )
        .prop_map(move |(nodes, skew_ms, ops)| History {
            nodes,
            retention_ms: if shape.expiry {
                SHORT_RETENTION_MS
            } else {
                DEFAULT_RETENTION_MS
            },
            skew_ms: if shape.skew {
                skew_ms[..nodes].to_vec()
            } else {
                vec![0; nodes]
            },
            ops,
        })
}

/// Counts of what a history did, to check that the generator reaches the interesting cases.
#[derive(Clone, Copy, Default, Debug)]
pub struct Stats {
    pub writes: usize,
    pub refused_unsaved: usize,
    pub delivered: usize,
    pub duplicated: usize,
    pub lost: usize,
    pub expired: usize,
    pub crashes: usize,
}

/// A whole office in one thread, playing a [`History`].
#[derive(Clone, Debug)]
pub struct Office {
    pub replicas: Vec<Replica>,
    pub retention_ms: u64,
    /// The office's true time; each node's physical clock is this plus its skew.
    pub time_ms: u64,
    pub skew_ms: Vec<i64>,
    /// Deltas sent and not yet delivered or lost, with their sender.
    pub in_flight: Vec<(NodeId, Delta)>,
    /// Every delta made, by a write or as a sync answer: states too, for the lattice laws.
    pub deltas: Vec<Delta>,
    pub stats: Stats,
    /// Each node's last save: what it restarts from (its base, for the journal's tests).
    pub saves: Vec<Snapshot>,
    /// Each node's changes since its last save: its writes' deltas joined with what its
    /// merges admitted, as a running node keeps them for its journal.
    pub pending: Vec<Delta>,
    /// Restored from a save and not saved since.
    unsaved: Vec<bool>,
    /// Every dot ever issued by a write.
    issued: BTreeSet<Dot>,
}

impl Office {
    pub fn new(history: &History) -> Office {
        let mut replicas: Vec<Replica> = (0..history.nodes)
            .map(|index| Replica::new(node_id(index), history.retention_ms))
            .collect();
        let saves = replicas.iter_mut().map(Replica::snapshot).collect();
        Office {
            replicas,
            retention_ms: history.retention_ms,
            time_ms: START_MS,
            skew_ms: history.skew_ms.clone(),
            in_flight: Vec::new(),
            deltas: Vec::new(),
            stats: Stats::default(),
            saves,
            pending: vec![Delta::default(); history.nodes],
            unsaved: vec![false; history.nodes],
            issued: BTreeSet::new(),
        }
    }

    /// Plays a whole history.
    pub fn run(history: &History) -> Office {
        let mut office = Office::new(history);
        for op in &history.ops {
            office.step(op);
        }
        office
    }

    pub fn node(&self, number: u8) -> usize {
        usize::from(number) % self.replicas.len()
    }

    /// What node `index`'s physical clock reads now.
    pub fn physical_ms(&self, index: usize) -> u64 {
        self.time_ms
            .checked_add_signed(self.skew_ms[index])
            .unwrap()
    }

    /// Every state reached: the replicas' and every delta made.
    pub fn states(&self) -> Vec<Delta> {
        self.replicas
            .iter()
            .map(|replica| replica.state().clone())
            .chain(self.deltas.iter().cloned())
            .collect()
    }

    /// One round of digest sync: each node in turn pulls from every other, after which every
    /// replica has every write any of them had.
    pub fn sync_all(&mut self) {
        let nodes = self.replicas.len() as u8;
        for to in 0..nodes {
            for from in 0..nodes {
                self.step(&Op::Sync { from, to });
            }
        }
    }

    pub fn step(&mut self, op: &Op) {
        match op {
            Op::Write { node, write } => self.write(self.node(*node), write),
            Op::Deliver { delta, to, keep } => {
                if self.in_flight.is_empty() {
                    return;
                }
                let picked = delta.index(self.in_flight.len());
                let (sender, delta) = if *keep {
                    self.stats.duplicated += 1;
                    self.in_flight[picked].clone()
                } else {
                    self.in_flight.remove(picked)
                };
                self.stats.delivered += 1;
                self.merge(self.node(*to), delta, &sender);
            }
            Op::Lose { delta } => {
                if !self.in_flight.is_empty() {
                    self.in_flight.remove(delta.index(self.in_flight.len()));
                    self.stats.lost += 1;
                }
            }
            Op::Sync { from, to } => {
                let (from, to) = (self.node(*from), self.node(*to));
                let answer = self.replicas[from].missing_for(&self.replicas[to].digest());
                self.deltas.push(answer.clone());
                let sender = self.replicas[from].id().clone();
                self.merge(to, answer, &sender);
            }
            Op::Expire { node } => {
                let index = self.node(*node);
                let physical_ms = self.physical_ms(index);
                self.stats.expired += self.replicas[index].expire(physical_ms);
            }
            Op::Save { node } => {
                let index = self.node(*node);
                self.saves[index] = self.replicas[index].snapshot();
                self.pending[index] = Delta::default();
                self.unsaved[index] = false;
            }
            Op::Crash { node } => {
                let index = self.node(*node);
                self.replicas[index] =
                    Replica::restore(self.saves[index].clone(), self.retention_ms);
                self.pending[index] = Delta::default();
                self.unsaved[index] = true;
                self.stats.crashes += 1;
            }
            Op::Wait { ms } => self.time_ms += u64::from(*ms),
        }
        self.check_invariants();
    }

    fn write(&mut self, index: usize, write: &Write) {
        let physical_ms = self.physical_ms(index);
        let replica = &mut self.replicas[index];
        let before = replica.state().clone();
        match write.apply(replica, physical_ms) {
            Ok(delta) => {
                assert!(
                    !self.unsaved[index],
                    "{replica} wrote before saving after a restart"
                );
                let dots: Vec<Dot> = delta.store.dots().map(|(_, dot)| dot.clone()).collect();
                assert_eq!(dots.len(), 1, "a write's delta holds one write: {delta:?}");
                assert_eq!(dots[0].writer, *replica.id());
                assert!(
                    self.issued.insert(dots[0].clone()),
                    "dot {} issued twice",
                    dots[0]
                );
                // A write replaces every write its replica held at the key.
                let store = replica.store();
                check_only_write::<NodeInfo>(store, &delta);
                check_only_write::<Reading>(store, &delta);
                check_only_write::<Sighting>(store, &delta);
                check_only_write::<Binding>(store, &delta);
                check_only_write::<Target>(store, &delta);
                check_only_write::<Alert>(store, &delta);
                self.stats.writes += 1;
                self.pending[index].join(&delta);
                self.in_flight.push((replica.id().clone(), delta.clone()));
                self.deltas.push(delta);
            }
            Err(WriteError::LeaseExhausted { .. }) if self.unsaved[index] => {
                assert_eq!(
                    replica.state(),
                    &before,
                    "a refused write changed the state"
                );
                self.stats.refused_unsaved += 1;
            }
            Err(WriteError::UnknownAlert(_)) => {
                let Write::ClearAlert { name } = write else {
                    panic!("{write:?} failed with UnknownAlert");
                };
                let key = AlertId {
                    node: replica.id().clone(),
                    name: alert_name(*name),
                };
                assert!(
                    replica.store().alerts.get(&key).is_none(),
                    "{replica} could not clear alert {key:?} it holds"
                );
                assert_eq!(
                    replica.state(),
                    &before,
                    "a refused write changed the state"
                );
            }
            Err(error) => panic!("{replica} refused {write:?}: {error}"),
        }
    }

    fn merge(&mut self, index: usize, delta: Delta, sender: &NodeId) {
        let physical_ms = self.physical_ms(index);
        let (report, admitted) = self.replicas[index].merge_admitted(delta, sender, physical_ms);
        self.pending[index].join(&admitted);
        assert_eq!(
            report.rejected,
            vec![],
            "honest nodes within the clock tolerance reject nothing"
        );
        self.stats.expired += report.expired;
    }

    /// What every reachable state keeps: the context covers the store, and a dot names one
    /// write only.
    fn check_invariants(&self) {
        for replica in &self.replicas {
            let mut dots = BTreeSet::new();
            for (part, dot) in replica.store().dots() {
                assert!(
                    replica.context().contains(dot),
                    "{replica} holds {part} {dot} outside its context"
                );
                assert!(dots.insert(dot), "{replica} holds {dot} twice");
            }
        }
    }
}

/// Asserts that each write of `delta` in part `E` is the only one `store` holds at its key.
fn check_only_write<E: Entry>(store: &Store, delta: &Delta) {
    for (key, dot, _) in E::part(&delta.store).iter() {
        let held: Vec<&Dot> = E::part(store)
            .get(key)
            .into_iter()
            .flat_map(|writes| writes.keys())
            .collect();
        assert_eq!(
            held,
            vec![dot],
            "{} {key:?}: a write left others beside it",
            E::PART
        );
    }
}
