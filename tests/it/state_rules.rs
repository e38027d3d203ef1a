//! The rules of the office state, by example: removals reach every replica, concurrent
//! writes are kept and resolved the same way everywhere, expired entries stay gone, writers
//! may only write what is theirs, and a restarted node never reuses a sequence number.

use officemesh::state::*;
use proptest::prelude::*;

use crate::office::{
    START_MS, Write, alert_name, history, ip, mac, node_id, person, room, sensor, write,
};

const RETENTION_MS: u64 = 60_000;

/// A replica of `node-{index}`, saved and ready to write.
fn replica(index: usize) -> Replica {
    let mut replica = Replica::new(node_id(index), RETENTION_MS);
    replica.snapshot();
    replica
}

/// Merges and asserts nothing was rejected.
fn merge(into: &mut Replica, delta: Delta, from: &Replica, physical_ms: u64) -> MergeReport {
    let report = into.merge(delta, from.id(), physical_ms);
    assert_eq!(
        report.rejected,
        vec![],
        "{into} rejected part of {from}'s delta"
    );
    report
}

/// Syncs `to` from `from`: `to` sends its digest, `from` answers.
fn sync(to: &mut Replica, from: &Replica, physical_ms: u64) -> MergeReport {
    let answer = from.missing_for(&to.digest());
    merge(to, answer, from, physical_ms)
}

// ---- removals and concurrent writes ----

#[test]
fn an_unbind_reaches_a_replica_that_saw_the_bind() {
    let (ada, phone) = (person(0), mac(1));
    // The unbind delta delivered, or lost and repaired by sync.
    for delivered in [true, false] {
        let (mut a, mut b) = (replica(0), replica(1));
        let bind = a.bind(ada.clone(), phone, START_MS).unwrap();
        merge(&mut b, bind, &a, START_MS);
        assert!(b.is_bound(&ada, phone));
        let unbind = a.unbind(ada.clone(), phone, START_MS + 1).unwrap();
        if delivered {
            merge(&mut b, unbind, &a, START_MS + 1);
        } else {
            sync(&mut b, &a, START_MS + 1);
        }
        assert!(!b.is_bound(&ada, phone), "delivered: {delivered}");
        assert!(!a.is_bound(&ada, phone));
        assert_eq!(a.state(), b.state());
    }
}

#[test]
fn an_unbind_made_elsewhere_withdraws_the_bind_it_saw() {
    let (ada, phone) = (person(0), mac(1));
    let (mut a, mut b) = (replica(0), replica(1));
    let bind = a.bind(ada.clone(), phone, START_MS).unwrap();
    merge(&mut b, bind, &a, START_MS);
    let unbind = b.unbind(ada.clone(), phone, START_MS + 1).unwrap();
    merge(&mut a, unbind, &b, START_MS + 1);
    assert!(!a.is_bound(&ada, phone) && !b.is_bound(&ada, phone));
}

#[test]
fn a_concurrent_bind_and_unbind_are_both_kept_and_count_as_bound() {
    let (ada, phone) = (person(0), mac(1));
    let (mut a, mut b) = (replica(0), replica(1));
    // b saw an older bind, a has not; a binds while b unbinds.
    let old = b.bind(ada.clone(), phone, START_MS).unwrap();
    let bind = a.bind(ada.clone(), phone, START_MS + 1).unwrap();
    let unbind = b.unbind(ada.clone(), phone, START_MS + 1).unwrap();
    merge(&mut a, old, &b, START_MS + 2);
    merge(&mut a, unbind.clone(), &b, START_MS + 2);
    merge(&mut b, bind, &a, START_MS + 2);
    for replica in [&a, &b] {
        let key = BindingKey {
            person: ada.clone(),
            mac: phone,
        };
        let writes = replica.store().people.get(&key).unwrap();
        let kept: Vec<bool> = writes.values().map(|binding| binding.bound).collect();
        assert_eq!(kept.len(), 2, "{replica}: {writes:?}");
        assert!(kept.contains(&true) && kept.contains(&false));
        assert!(replica.is_bound(&ada, phone), "{replica}");
    }
    assert_eq!(a.state(), b.state());
    // A later unbind that saw both settles it.
    let settle = a.unbind(ada.clone(), phone, START_MS + 3).unwrap();
    merge(&mut b, settle, &a, START_MS + 3);
    assert!(!a.is_bound(&ada, phone) && !b.is_bound(&ada, phone));
}

/// Sets a target on each replica, concurrently, at the given physical times; delivers every
/// set everywhere, in both orders; checks every replica keeps all of them and acts on the one
/// set at `winner`.
fn check_concurrent_targets(set_at_ms: &[u64], winner: usize) {
    let (meeting, temperature) = (room(0), Quantity::Temperature);
    let mut replicas: Vec<Replica> = (0..set_at_ms.len()).map(replica).collect();
    let deltas: Vec<Delta> = replicas
        .iter_mut()
        .zip(set_at_ms)
        .enumerate()
        .map(|(index, (replica, &at_ms))| {
            let value = 20.0 + index as f64;
            replica
                .set_target(meeting.clone(), temperature, value, "°C", person(0), at_ms)
                .unwrap()
        })
        .collect();
    let physical_ms = set_at_ms.iter().max().unwrap() + 1;
    for (index, replica) in replicas.iter_mut().enumerate() {
        // Each replica receives the sets (its own again too) in a different order.
        let mut order: Vec<usize> = (0..deltas.len()).collect();
        order.rotate_left(index);
        if index % 2 == 1 {
            order.reverse();
        }
        for from in order {
            let delta = deltas[from].clone();
            let report = replica.merge(delta, &node_id(from), physical_ms);
            assert_eq!(report.rejected, vec![]);
        }
    }
    for replica in &replicas {
        let (acted_on, concurrent) = replica.target(&meeting, temperature).unwrap();
        assert_eq!(
            concurrent,
            set_at_ms.len(),
            "{replica} lost a concurrent set"
        );
        assert_eq!(
            acted_on.value,
            20.0 + winner as f64,
            "{replica} acts on {acted_on:?}"
        );
        assert_eq!(replica.state(), replicas[0].state());
    }
}

#[test]
fn concurrent_targets_are_kept_and_the_highest_stamp_wins_everywhere() {
    // The latest set wins, whoever made it.
    check_concurrent_targets(&[START_MS + 5, START_MS], 0);
    check_concurrent_targets(&[START_MS, START_MS + 5], 1);
    check_concurrent_targets(&[START_MS + 1, START_MS + 9, START_MS + 3], 1);
    // Same stamp: the higher node id wins.
    check_concurrent_targets(&[START_MS, START_MS], 1);
    check_concurrent_targets(&[START_MS, START_MS, START_MS, START_MS - 1], 2);
}

#[test]
fn a_target_set_after_seeing_the_others_replaces_them() {
    let (meeting, temperature) = (room(0), Quantity::Temperature);
    let (mut a, mut b) = (replica(0), replica(1));
    let first = a
        .set_target(meeting.clone(), temperature, 20.0, "", person(0), START_MS)
        .unwrap();
    let second = b
        .set_target(meeting.clone(), temperature, 22.0, "", person(1), START_MS)
        .unwrap();
    merge(&mut a, second, &b, START_MS);
    merge(&mut b, first, &a, START_MS);
    // 70 °F: converted to the canonical unit.
    let third = a
        .set_target(
            meeting.clone(),
            temperature,
            70.0,
            "°F",
            person(0),
            START_MS + 1,
        )
        .unwrap();
    merge(&mut b, third, &a, START_MS + 1);
    for replica in [&a, &b] {
        let (target, concurrent) = replica.target(&meeting, temperature).unwrap();
        assert_eq!(concurrent, 1);
        assert!((target.value - 21.111).abs() < 0.001, "{target:?}");
    }
}

// ---- expiry ----

/// Writes with `write` on A at the start, B merges it; once it has expired, A drops it and
/// B (whose clock lags) still holds it. Then B's delta, B's whole state and B's sync answer
/// do not bring it back to A, and A's sync answer removes it from B.
fn check_expired_stays_gone(setup: &[Write], write: Write) {
    let (mut a, mut b) = (replica(0), replica(1));
    for step in setup.iter().chain([&write]) {
        let delta = step.apply(&mut a, START_MS).unwrap();
        merge(&mut b, delta, &a, START_MS);
    }
    let dot = a
        .state()
        .store
        .dots()
        .map(|(_, dot)| dot.clone())
        .max()
        .unwrap();
    let later_ms = START_MS + RETENTION_MS;
    assert!(a.expire(later_ms) > 0, "{write:?} did not expire");
    assert!(a.context().contains(&dot) && a.store().dots().all(|(_, held)| *held != dot));
    assert!(
        b.store().dots().any(|(_, held)| *held == dot),
        "B lost {write:?}"
    );

    let earlier_ms = START_MS + 1;
    let from_b = [b.state().clone(), b.missing_for(&a.digest())];
    for delta in from_b {
        merge(&mut a, delta, &b, later_ms);
        assert!(
            a.store().dots().all(|(_, held)| *held != dot),
            "{write:?} came back"
        );
    }
    // B's own clock has not reached the expiry: only A's answer can remove it.
    sync(&mut b, &a, earlier_ms);
    assert!(
        b.store().dots().all(|(_, held)| *held != dot),
        "B still holds {write:?}"
    );
    assert_eq!(a.state(), b.state());
}

#[test]
fn an_expired_entry_is_never_brought_back() {
    check_expired_stays_gone(&[], Write::Announce { room: 0 });
    check_expired_stays_gone(
        &[],
        Write::Reading {
            sensor: 0,
            room: 0,
            quantity: 0,
            value: 21,
        },
    );
    check_expired_stays_gone(&[], Write::Observe { mac: 0, ip: 0 });
    check_expired_stays_gone(&[], Write::Unbind { person: 0, mac: 0 });
    check_expired_stays_gone(
        &[Write::RaiseAlert { name: 0, room: 0 }],
        Write::ClearAlert { name: 0 },
    );
}

#[test]
fn bindings_targets_and_active_alerts_do_not_expire() {
    let mut a = replica(0);
    for write in [
        Write::Bind { person: 0, mac: 0 },
        Write::SetTarget {
            room: 0,
            quantity: 0,
            value: 21,
            person: 0,
        },
        Write::RaiseAlert { name: 0, room: 0 },
    ] {
        write.apply(&mut a, START_MS).unwrap();
    }
    assert_eq!(a.expire(START_MS + 1000 * RETENTION_MS), 0);
    assert_eq!(a.store().len(), 3);
}

// ---- admission: who may write what, valid values, clocks ----

/// What node-1 sends: its own valid reading and binding, plus `forged`.
fn delta_with(forged: impl FnOnce(&mut Delta)) -> Delta {
    let mut sender = replica(1);
    let mut delta = Delta::default();
    for write in [
        Write::Reading {
            sensor: 0,
            room: 0,
            quantity: 1,
            value: 40,
        },
        Write::Bind { person: 0, mac: 0 },
    ] {
        delta.join(&write.apply(&mut sender, START_MS).unwrap());
    }
    forged(&mut delta);
    delta
}

fn forge<E: Entry>(delta: &mut Delta, key: E::Key, dot: Dot, value: E) {
    delta.context.insert(&dot);
    E::part_mut(&mut delta.store).insert(key, dot, value);
}

/// Merges `delta` from node-1 into a fresh node-0 and checks that exactly the entry with
/// `rejected` was refused, for `reason`, and everything else merged.
fn check_rejected(delta: Delta, part: Part, rejected: Dot, reason: impl Fn(&RejectReason) -> bool) {
    let mut receiver = replica(0);
    let report = receiver.merge(delta.clone(), &node_id(1), START_MS);
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    let rejection = &report.rejected[0];
    assert_eq!(rejection.sender, node_id(1));
    assert_eq!(rejection.part, part);
    assert_eq!(rejection.dot, rejected);
    assert!(reason(&rejection.reason), "{rejection}");
    assert!(
        rejection.to_string().contains("from peer node-1"),
        "{rejection}"
    );
    assert!(
        !receiver.context().contains(&rejected),
        "the rejected dot was seen"
    );
    assert_eq!(report.added, delta.store.len() - 1);
    for (_, dot) in delta.store.dots().filter(|(_, dot)| **dot != rejected) {
        assert!(
            receiver.store().dots().any(|(_, held)| held == dot),
            "{dot} not merged"
        );
    }
}

fn not_owner(writer: usize, owner: usize) -> impl Fn(&RejectReason) -> bool {
    move |reason| {
        *reason
            == RejectReason::NotOwner {
                writer: node_id(writer),
                owner: node_id(owner),
            }
    }
}

#[test]
fn a_node_may_not_write_what_another_node_owns() {
    let at = Hlc::new(START_MS, 7);
    let forged = Dot::new(node_id(1), 99);
    check_rejected(
        delta_with(|delta| {
            let key = ReadingKey {
                node: node_id(2),
                sensor: sensor(0),
            };
            let value = Reading {
                room: room(0),
                quantity: Quantity::Temperature,
                value: 21.0,
                at,
            };
            forge(delta, key, forged.clone(), value);
        }),
        Part::Readings,
        forged.clone(),
        not_owner(1, 2),
    );
    check_rejected(
        delta_with(|delta| {
            let key = SightingKey {
                observer: node_id(0),
                mac: mac(0),
            };
            forge(delta, key, forged.clone(), Sighting { ip: ip(0), at });
        }),
        Part::Network,
        forged.clone(),
        not_owner(1, 0),
    );
    check_rejected(
        delta_with(|delta| {
            let value = Alert {
                room: room(0),
                quantity: Quantity::Co2,
                message: Message::new("open a window").unwrap(),
                raised_at_ms: START_MS,
                cleared_at_ms: None,
                at,
            };
            let key = AlertId {
                node: node_id(2),
                name: alert_name(0),
            };
            forge(delta, key, forged.clone(), value);
        }),
        Part::Alerts,
        forged.clone(),
        not_owner(1, 2),
    );
    check_rejected(
        delta_with(|delta| {
            let value = NodeInfo {
                name: NodeName::new("impostor").unwrap(),
                room: room(0),
                version: Version::new("0.1.0").unwrap(),
                started_at_ms: START_MS,
                at,
            };
            forge(delta, node_id(3), forged.clone(), value);
        }),
        Part::Nodes,
        forged.clone(),
        not_owner(1, 3),
    );
}

#[test]
fn a_node_may_relay_what_another_node_wrote() {
    let mut writer = replica(2);
    let delta = Write::Observe { mac: 0, ip: 0 }
        .apply(&mut writer, START_MS)
        .unwrap();
    let mut receiver = replica(0);
    // node-1 forwards node-2's row: the writer of the dot is its owner.
    let report = receiver.merge(delta, &node_id(1), START_MS);
    assert_eq!(report.rejected, vec![]);
    assert_eq!(receiver.store().network.len(), 1);
}

#[test]
fn invalid_values_are_rejected() {
    let at = Hlc::new(START_MS, 7);
    let forged = Dot::new(node_id(1), 99);
    let humid = |value: f64| {
        let forged = forged.clone();
        delta_with(move |delta| {
            let key = ReadingKey {
                node: node_id(1),
                sensor: sensor(1),
            };
            let reading = Reading {
                room: room(0),
                quantity: Quantity::Humidity,
                value,
                at,
            };
            forge(delta, key, forged, reading);
        })
    };
    check_rejected(humid(150.0), Part::Readings, forged.clone(), |reason| {
        let RejectReason::Invalid(InvalidValue::OutOfRange {
            quantity, value, ..
        }) = reason
        else {
            return false;
        };
        *quantity == Quantity::Humidity && *value == 150.0
    });
    check_rejected(humid(f64::NAN), Part::Readings, forged.clone(), |reason| {
        matches!(
            reason,
            RejectReason::Invalid(InvalidValue::NotFinite { .. })
        )
    });
    // A target is checked against the quantity of its key.
    let target = delta_with(|delta| {
        let key = TargetKey {
            room: room(0),
            quantity: Quantity::Humidity,
        };
        let value = Target {
            value: -5.0,
            set_by: person(0),
            at,
        };
        forge(delta, key, forged.clone(), value);
    });
    check_rejected(target, Part::Targets, forged.clone(), |reason| {
        matches!(
            reason,
            RejectReason::Invalid(InvalidValue::OutOfRange { .. })
        )
    });
}

#[test]
fn a_stamp_too_far_ahead_waits_until_the_clock_catches_up() {
    let ahead_ms = MAX_CLOCK_AHEAD_MS + 1;
    // node-1's clock runs ahead; node-0's does not.
    let mut fast = replica(1);
    let mut slow = replica(0);
    let early = fast.observe_device(mac(0), ip(0), START_MS).unwrap();
    merge(&mut slow, early, &fast, START_MS);
    let ahead = fast
        .observe_device(mac(0), ip(1), START_MS + ahead_ms)
        .unwrap();
    let stamp = Hlc::new(START_MS + ahead_ms, 0);

    let report = slow.merge(ahead.clone(), fast.id(), START_MS);
    let expected = Rejection {
        sender: node_id(1),
        part: Part::Network,
        dot: Dot::new(node_id(1), 2),
        reason: RejectReason::ClockAhead(ClockAhead { stamp, ahead_ms }),
    };
    assert_eq!(report.rejected, vec![expected.clone()]);
    assert!(!slow.context().contains(&expected.dot));
    assert!(
        slow.clock().last() < stamp,
        "the refused stamp moved the clock"
    );
    // Sync offers it again, and it is refused again while the clock lags.
    let report = slow.merge(fast.missing_for(&slow.digest()), fast.id(), START_MS);
    assert_eq!(report.rejected, vec![expected.clone()]);

    // One millisecond later it is within the limit: merged again, it is accepted.
    let report = slow.merge(ahead, fast.id(), START_MS + 1);
    assert_eq!(report.rejected, vec![]);
    assert!(slow.context().contains(&expected.dot));
    sync(&mut slow, &fast, START_MS + 1);
    assert_eq!(slow.state(), fast.state());
    assert_eq!(slow.clock().last(), stamp);
}

#[test]
fn a_node_without_a_plausible_clock_takes_time_from_its_peers() {
    let mut office_node = replica(1);
    let mut booted_in_1970 = replica(0);
    let delta = office_node.observe_device(mac(0), ip(0), START_MS).unwrap();
    // Far ahead of its own 1970 clock, but it has nothing to judge by.
    merge(&mut booted_in_1970, delta, &office_node, 1_000);
    let own = booted_in_1970.observe_device(mac(1), ip(1), 2_000).unwrap();
    let (_, _, sighting) = own.store.network.iter().next().unwrap();
    assert_eq!(sighting.at, Hlc::new(START_MS, 1));
}

// ---- sequence numbers across restarts ----

/// Writes `before` writes, saves, writes `after` more, crashes and restores from the save.
/// The restored replica refuses to write until it saves again; then its new dots are above
/// every dot it issued before the crash.
fn check_restart(writes: &[Write], saved_after: usize) {
    let mut replica = replica(0);
    let mut snapshot = replica.snapshot();
    let mut highest = 0;
    let mut physical_ms = START_MS;
    for (index, write) in writes.iter().enumerate() {
        if index == saved_after {
            snapshot = replica.snapshot();
        }
        physical_ms += 1;
        if write.apply(&mut replica, physical_ms).is_ok() {
            highest = replica.seq();
        }
    }
    let saved_clock = snapshot.clock;
    let mut restored = Replica::restore(snapshot, RETENTION_MS);
    for write in writes {
        let before = restored.state().clone();
        match write.apply(&mut restored, physical_ms) {
            Err(WriteError::LeaseExhausted { ceiling }) => assert_eq!(ceiling, restored.seq()),
            Err(WriteError::UnknownAlert(_)) => {}
            other => panic!("{write:?} on a replica not saved since restore: {other:?}"),
        }
        assert_eq!(restored.state(), &before);
    }
    restored.snapshot();
    let first_after = restored.seq() + 1;
    let delta = Write::Observe { mac: 0, ip: 0 }
        .apply(&mut restored, physical_ms + 1)
        .unwrap();
    let (_, dot) = delta.store.dots().next().unwrap();
    assert_eq!(dot.seq, first_after);
    assert!(
        dot.seq > highest,
        "{dot} reuses a number issued before the crash (up to {highest})"
    );
    // Its clock too continues above what it saved.
    let (_, _, sighting) = delta.store.network.iter().next().unwrap();
    assert!(sighting.at > saved_clock);
}

#[test]
fn a_restored_replica_never_reuses_a_sequence_number() {
    let writes = Write::every_kind();
    for saved_after in 0..=writes.len() {
        check_restart(&writes, saved_after);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_restored_replica_never_reuses_a_sequence_number_along_any_writes(
        writes in prop::collection::vec(write(), 0..30),
        saved_after in 0..30usize,
    ) {
        check_restart(&writes, saved_after);
    }

    /// The same along whole office histories, where peers hold writes the crashed node lost.
    /// [`crate::office::Office`] asserts on every write that its dot is new and that a
    /// restored node refuses to write until it saves.
    #[test]
    fn no_dot_is_ever_issued_twice_in_an_office(history in history(crate::office::Shape::ROUGH)) {
        let office = crate::office::Office::run(&history);
        for replica in &office.replicas {
            prop_assert!(replica.seq() >= replica.context().max_seq(replica.id()));
        }
    }
}

#[test]
fn merging_its_own_lost_writes_moves_a_restored_replica_past_them() {
    let (mut a, mut b) = (replica(0), replica(1));
    let saved = a.snapshot();
    let lost = a.observe_device(mac(0), ip(0), START_MS).unwrap();
    merge(&mut b, lost, &a, START_MS);
    // A save whose reservation does not cover what peers hold (a save older than the
    // last one) must still not lead to reuse.
    let stale = Snapshot {
        seq_ceiling: 0,
        ..saved
    };
    let mut restored = Replica::restore(stale, RETENTION_MS);
    sync(&mut restored, &b, START_MS + 1);
    restored.snapshot();
    let delta = restored
        .observe_device(mac(0), ip(1), START_MS + 2)
        .unwrap();
    let (_, dot) = delta.store.dots().next().unwrap();
    assert!(dot.seq > 1, "{dot} reuses the lost write's number");
    merge(&mut b, delta, &restored, START_MS + 2);
    assert_eq!(
        b.store().network.len(),
        1,
        "the new row replaces the lost one"
    );
}

// ---- gaps ----

#[test]
fn a_delta_that_skips_writes_of_its_writer_shows_a_gap() {
    let reading = |value| Write::Reading {
        sensor: 0,
        room: 0,
        quantity: 0,
        value,
    };
    let other_sensor = |value| Write::Reading {
        sensor: 1,
        room: 0,
        quantity: 0,
        value,
    };
    let (mut a, mut b) = (replica(0), replica(1));
    let first = reading(20).apply(&mut a, START_MS).unwrap();
    let report = merge(&mut b, first, &a, START_MS);
    assert!(!report.gap, "the writer's first write follows nothing");
    // The second write, of another sensor, is lost (a partition); the third shows that b
    // missed one. (Had it been of the same sensor, the third would replace it, and its
    // context would say so: nothing missed.)
    let _lost = other_sensor(21).apply(&mut a, START_MS + 1).unwrap();
    let third = reading(22).apply(&mut a, START_MS + 2).unwrap();
    let report = merge(&mut b, third, &a, START_MS + 2);
    assert!(report.gap, "b never saw a's second write");
    // Once repaired, the next write follows what b has.
    sync(&mut b, &a, START_MS + 3);
    let fourth = reading(23).apply(&mut a, START_MS + 4).unwrap();
    let report = merge(&mut b, fourth, &a, START_MS + 4);
    assert!(!report.gap, "nothing missing after the sync");

    // Two writes to one key batched into one push: the first is in the context only.
    let mut batch = reading(24).apply(&mut a, START_MS + 5).unwrap();
    batch.join(&reading(25).apply(&mut a, START_MS + 6).unwrap());
    let report = merge(&mut b, batch, &a, START_MS + 6);
    assert!(
        !report.gap,
        "a batch that replaced its own write misses nothing"
    );
}

/// A node whose last description was never saved, restarted with its clock set back: the
/// peers' copy of the old description is stamped later than the new one, so merging it is
/// reported, and the next description written replaces both everywhere.
#[test]
fn a_restarted_node_is_told_of_its_forgotten_writes_and_its_next_write_replaces_them() {
    let announce = |replica: &mut Replica, started_at_ms: u64, physical_ms: u64| {
        replica
            .announce(
                NodeName::new("a").unwrap(),
                room(0),
                Version::new("0.1.0").unwrap(),
                started_at_ms,
                physical_ms,
            )
            .unwrap()
    };
    let started_at = |replica: &Replica| -> Vec<u64> {
        let me = replica.id().clone();
        replica
            .latest::<NodeInfo>()
            .filter(|(id, _)| **id == me)
            .map(|(_, info)| info.started_at_ms)
            .collect()
    };
    let (mut a, mut b) = (replica(0), replica(1));
    let saved = a.snapshot();
    let unsaved = announce(&mut a, START_MS, START_MS);
    merge(&mut b, unsaved, &a, START_MS);

    // Killed before it saved; restarted believing it is 1970.
    let mut restored = Replica::restore(saved, RETENTION_MS);
    restored.snapshot();
    announce(&mut restored, 5, 5);
    assert_eq!(started_at(&restored), [5]);
    let answer = b.missing_for(&restored.digest());
    let (report, admitted) = restored.merge_admitted(answer, b.id(), 10);
    assert_eq!(report.forgotten_own, 1, "b holds one write a forgot");
    // What a publishes again: the forgotten write, which a third node takes as a's.
    let forgotten = admitted.of_writer(restored.id());
    let unsaved_dot = a.state().store.nodes.iter().next().unwrap().1.clone();
    assert_eq!(
        forgotten
            .store
            .dots()
            .map(|(_, dot)| dot.clone())
            .collect::<Vec<_>>(),
        [unsaved_dot]
    );
    let mut c = replica(2);
    assert!(c.merge(forgotten, restored.id(), 12).rejected.is_empty());
    assert_eq!(c.latest::<NodeInfo>().count(), 1);
    assert_eq!(
        started_at(&restored),
        [START_MS],
        "the forgotten entry is stamped later and shows, until written again"
    );
    assert_eq!(
        sync(&mut restored, &b, 11).forgotten_own,
        0,
        "known now: not reported again"
    );

    let again = announce(&mut restored, 5, 20);
    assert_eq!(started_at(&restored), [5]);
    merge(&mut b, again, &restored, START_MS + 1);
    assert_eq!(started_at(&b), Vec::<u64>::new(), "b's own entry is b's");
    let entries: Vec<u64> = b
        .latest::<NodeInfo>()
        .map(|(_, info)| info.started_at_ms)
        .collect();
    assert_eq!(entries, [5], "b holds a's new entry only");
}

// ---- entries per writer ----

/// A writer has at most `MAX_ENTRIES_PER_WRITER` writes alive: its own replica refuses it a
/// new key past them, and a replica that merges more of its new keys (from a member that
/// ignores the rule) refuses those and keeps the rest of the delta.
#[test]
fn a_writer_past_its_entries_has_its_new_keys_refused_everywhere() {
    let sensor = |index: usize| SensorId::new(&format!("s{index}")).unwrap();
    let (mut a, mut b) = (replica(0), replica(1));
    for index in 0..MAX_ENTRIES_PER_WRITER {
        a.record_reading(
            sensor(index),
            room(0),
            Quantity::Temperature,
            20.0,
            "°C",
            START_MS,
        )
        .unwrap();
    }
    assert_eq!(
        a.record_reading(
            sensor(MAX_ENTRIES_PER_WRITER),
            room(0),
            Quantity::Temperature,
            20.0,
            "°C",
            START_MS
        ),
        Err(WriteError::TooManyEntries)
    );
    a.record_reading(
        sensor(0),
        room(0),
        Quantity::Temperature,
        21.0,
        "°C",
        START_MS + 1,
    )
    .expect("a key it has is written again");
    merge(&mut b, a.state().clone(), &a, START_MS + 1);
    assert_eq!(b.store().readings.len(), MAX_ENTRIES_PER_WRITER);

    // Three new keys of a's past the limit, and a new write of b's own key by c: made by
    // hand, as a member that ignores the rule would.
    let mut flood = Delta::default();
    for extra in 0..3u64 {
        let dot = Dot::new(a.id().clone(), a.seq() + 1 + extra);
        let key = ReadingKey {
            node: a.id().clone(),
            sensor: sensor(MAX_ENTRIES_PER_WRITER + extra as usize),
        };
        let value = Reading {
            room: room(0),
            quantity: Quantity::Temperature,
            value: 22.0,
            at: Hlc::new(START_MS + 2, 0),
        };
        flood.context.insert(&dot);
        flood.store.readings.insert(key, dot, value);
    }
    let mut c = replica(2);
    flood.join(
        &c.record_reading(
            sensor(0),
            room(1),
            Quantity::Temperature,
            19.0,
            "°C",
            START_MS + 2,
        )
        .unwrap(),
    );
    let report = b.merge(flood, a.id(), START_MS + 2);
    assert_eq!(report.rejected.len(), 3, "{:?}", report.rejected);
    assert!(report.rejected.iter().all(|rejection| rejection.reason
        == RejectReason::TooManyEntries {
            writer: a.id().clone()
        }));
    assert_eq!(
        b.store().readings.len(),
        MAX_ENTRIES_PER_WRITER + 1,
        "c's write is kept"
    );
}

/// The writes of one writer taken out of a delta name only their own dots: merged anywhere,
/// they add and never remove, even when the delta they came from claimed to have seen a
/// write it did not carry.
#[test]
fn the_writes_of_one_writer_taken_out_of_a_delta_remove_nothing() {
    let (mut a, mut c) = (replica(0), replica(1));
    let first = a
        .record_reading(
            sensor(1),
            room(0),
            Quantity::Temperature,
            20.0,
            "°C",
            START_MS,
        )
        .unwrap();
    let second = a
        .record_reading(
            sensor(2),
            room(0),
            Quantity::Temperature,
            21.0,
            "°C",
            START_MS + 1,
        )
        .unwrap();
    merge(&mut c, a.state().clone(), &a, START_MS + 1);
    assert_eq!(c.store().readings.len(), 2);
    // A delta holding the second write whose context also names the first, which c holds.
    let mut partial = second.clone();
    partial.context.union(&first.context);
    let taken = partial.of_writer(a.id());
    assert_eq!(taken.store, second.store);
    merge(&mut c, taken, &a, START_MS + 2);
    assert_eq!(
        c.store().readings.len(),
        2,
        "the first write is still there"
    );
    // The partial delta itself would have removed it: that is what a context says.
    merge(&mut c, partial, &a, START_MS + 2);
    assert_eq!(c.store().readings.len(), 1);
}
