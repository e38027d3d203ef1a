//! Deltas, digests and snapshots made by real replicas decode to what was encoded.

use proptest::prelude::*;

use super::*;

#[test]
fn the_sample_office_covers_every_part_and_a_gap() {
    let (replicas, _) = office();
    let store = replicas[0].store();
    assert!(
        !store.nodes.is_empty()
            && !store.readings.is_empty()
            && !store.network.is_empty()
            && !store.people.is_empty()
            && !store.targets.is_empty()
            && !store.alerts.is_empty()
    );
    assert_eq!(store.targets.len(), 2, "concurrent targets are both kept");
    let bravo = replicas[1].id();
    let ranges = replicas[0].context().get(bravo).unwrap().ranges().len();
    assert!(ranges > 1, "Alpha's context of Bravo has a hole");
}

#[test]
fn deltas_round_trip() {
    let (replicas, deltas) = office();
    for delta in &deltas {
        check_delta_round_trip(delta);
    }
    for replica in &replicas {
        check_delta_round_trip(replica.state());
    }
    check_delta_round_trip(&Delta::default());
}

#[test]
fn digests_and_sync_answers_round_trip() {
    let (replicas, _) = office();
    for replica in &replicas {
        check_digest_round_trip(&replica.digest());
        for other in &replicas {
            check_delta_round_trip(&other.missing_for(&replica.digest()));
        }
    }
    check_digest_round_trip(&Digest::default());
}

#[test]
fn snapshots_round_trip() {
    let (mut replicas, _) = office();
    for replica in &mut replicas {
        check_snapshot_round_trip(&replica.snapshot());
    }
    check_snapshot_round_trip(&replica("12D3KooWFresh").snapshot());
}

#[test]
fn replicas_converge_through_the_wire() {
    let (replicas, _) = office();
    let mut fresh = replica("12D3KooWFresh");
    for replica in &replicas {
        let answer = replica.missing_for(&decode_digest(&encode_digest(&fresh.digest())).unwrap());
        let decoded = decode_delta(&encode_delta(&answer)).unwrap();
        let report = fresh.merge(decoded.delta, replica.id(), T0 + 60_000);
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    }
    let mut all = Delta::default();
    for replica in &replicas {
        all.join(replica.state());
    }
    assert_eq!(fresh.state(), &all);
}

#[test]
fn a_one_reading_delta_is_small() {
    // A 52-character peer id, as in a running office.
    let mut replica = replica("12D3KooWGzBqN8z9Tc2ZGvYpQnFgk3HsM4x1LwPdRbVtJmXe7Ea6");
    let delta = replica
        .record_reading(
            SensorId::new("hwmon0/temp1").unwrap(),
            room("open space"),
            Quantity::Temperature,
            21.75,
            "",
            EXAMPLE_MS,
        )
        .unwrap();
    // 52 bytes of it are the peer id, which a delta names once however many entries it has.
    let len = encode_delta(&delta).len();
    assert!(len <= 112, "{len} bytes");
}

// ---- random office histories ----

const NAMES: [&str; 3] = ["meeting room", "open space", "kitchen"];

#[derive(Debug, Clone)]
enum Op {
    Announce {
        at: usize,
        room: usize,
    },
    Reading {
        at: usize,
        sensor: usize,
        room: usize,
        quantity: usize,
        fraction: f64,
    },
    Observe {
        at: usize,
        mac: u8,
        ip: Option<u32>,
    },
    Bind {
        at: usize,
        who: usize,
        mac: u8,
        bound: bool,
    },
    Target {
        at: usize,
        room: usize,
        quantity: usize,
        fraction: f64,
        who: usize,
    },
    Raise {
        at: usize,
        alert: usize,
        room: usize,
        quantity: usize,
    },
    Clear {
        at: usize,
        alert: usize,
    },
    Deliver {
        from: usize,
        to: usize,
        which: usize,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

const REPLICAS: usize = 3;

fn op() -> impl Strategy<Value = Op> {
    let at = 0..REPLICAS;
    let name = 0..NAMES.len();
    let quantity = 0..Quantity::ALL.len();
    prop_oneof![
        (at.clone(), name.clone()).prop_map(|(at, room)| Op::Announce { at, room }),
        (
            at.clone(),
            0..3usize,
            name.clone(),
            quantity.clone(),
            0.0..=1.0f64
        )
            .prop_map(|(at, sensor, room, quantity, fraction)| Op::Reading {
                at,
                sensor,
                room,
                quantity,
                fraction
            }),
        (at.clone(), any::<u8>(), any::<Option<u32>>()).prop_map(|(at, mac, ip)| Op::Observe {
            at,
            mac,
            ip
        }),
        (at.clone(), name.clone(), 0..4u8, any::<bool>()).prop_map(|(at, who, mac, bound)| {
            Op::Bind {
                at,
                who,
                mac,
                bound,
            }
        }),
        (
            at.clone(),
            name.clone(),
            quantity.clone(),
            0.0..=1.0f64,
            name.clone()
        )
            .prop_map(|(at, room, quantity, fraction, who)| Op::Target {
                at,
                room,
                quantity,
                fraction,
                who
            }),
        (at.clone(), 0..2usize, name.clone(), quantity).prop_map(|(at, alert, room, quantity)| {
            Op::Raise {
                at,
                alert,
                room,
                quantity,
            }
        }),
        (at.clone(), 0..2usize).prop_map(|(at, alert)| Op::Clear { at, alert }),
        (at.clone(), at.clone(), any::<usize>()).prop_map(|(from, to, which)| Op::Deliver {
            from,
            to,
            which
        }),
        (at.clone(), at).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

/// A value of `quantity` a `fraction` of the way through its range.
fn value_in_range(quantity: Quantity, fraction: f64) -> f64 {
    let range = quantity.range();
    let (min, max) = (*range.start(), *range.end());
    (min + fraction * (max - min)).clamp(min, max)
}

/// Plays `ops` on a few replicas; returns them and every delta they made or exchanged.
fn play(ops: &[Op]) -> (Vec<Replica>, Vec<Delta>) {
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| replica(&format!("12D3KooWNode{i}")))
        .collect();
    let mut outboxes: Vec<Vec<Delta>> = vec![Vec::new(); REPLICAS];
    let mut seen = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let t = T0 + 1_000 * step as u64;
        let alert = |i: usize| AlertName::new(&format!("alert-{i}")).unwrap();
        let written = match op {
            Op::Announce { at, room: r } => replicas[*at].announce(
                NodeName::new("pi").unwrap(),
                room(NAMES[*r]),
                Version::new("1.2.3").unwrap(),
                T0,
                t,
            ),
            Op::Reading {
                at,
                sensor,
                room: r,
                quantity,
                fraction,
            } => {
                let quantity = Quantity::ALL[*quantity];
                replicas[*at].record_reading(
                    SensorId::new(&format!("s{sensor}")).unwrap(),
                    room(NAMES[*r]),
                    quantity,
                    value_in_range(quantity, *fraction),
                    "",
                    t,
                )
            }
            Op::Observe { at, mac: m, ip } => {
                let ip = match ip {
                    Some(v4) => IpAddr::V4(Ipv4Addr::from(*v4)),
                    None => IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(*m))),
                };
                replicas[*at].observe_device(mac(*m), ip, t)
            }
            Op::Bind {
                at,
                who,
                mac: m,
                bound,
            } => {
                let who = person(NAMES[*who]);
                if *bound {
                    replicas[*at].bind(who, mac(*m), t)
                } else {
                    replicas[*at].unbind(who, mac(*m), t)
                }
            }
            Op::Target {
                at,
                room: r,
                quantity,
                fraction,
                who,
            } => {
                let quantity = Quantity::ALL[*quantity];
                replicas[*at].set_target(
                    room(NAMES[*r]),
                    quantity,
                    value_in_range(quantity, *fraction),
                    "",
                    person(NAMES[*who]),
                    t,
                )
            }
            Op::Raise {
                at,
                alert: a,
                room: r,
                quantity,
            } => replicas[*at].raise_alert(
                alert(*a),
                room(NAMES[*r]),
                Quantity::ALL[*quantity],
                Message::new("look at this").unwrap(),
                t,
            ),
            Op::Clear { at, alert: a } => replicas[*at].clear_alert(alert(*a), t),
            Op::Deliver { from, to, which } => {
                if let Some(delta) = outboxes[*from].get(which % outboxes[*from].len().max(1)) {
                    let from_id = replicas[*from].id().clone();
                    let delta = delta.clone();
                    merge(&mut replicas[*to], &delta, &from_id, t);
                }
                continue;
            }
            Op::Sync { from, to } => {
                let answer = replicas[*from].missing_for(&replicas[*to].digest());
                let from_id = replicas[*from].id().clone();
                merge(&mut replicas[*to], &answer, &from_id, t);
                seen.push(answer);
                continue;
            }
        };
        if let Ok(delta) = written {
            let at = match op {
                Op::Announce { at, .. }
                | Op::Reading { at, .. }
                | Op::Observe { at, .. }
                | Op::Bind { at, .. }
                | Op::Target { at, .. }
                | Op::Raise { at, .. }
                | Op::Clear { at, .. } => *at,
                Op::Deliver { .. } | Op::Sync { .. } => unreachable!("handled above"),
            };
            outboxes[at].push(delta.clone());
            seen.push(delta);
        }
    }
    (replicas, seen)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_histories_round_trip(ops in proptest::collection::vec(op(), 1..40)) {
        let (mut replicas, deltas) = play(&ops);
        for delta in &deltas {
            check_delta_round_trip(delta);
        }
        for replica in &mut replicas {
            check_delta_round_trip(replica.state());
            check_digest_round_trip(&replica.digest());
            check_snapshot_round_trip(&replica.snapshot());
        }
    }
}
