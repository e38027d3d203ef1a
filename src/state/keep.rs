//! What a node must keep on its own disk, and what it may leave to its peers.
//!
//! A node saves its changes as deltas (a journal under a saved snapshot). Some writes it must
//! keep itself: its own (nobody else has them before they are gossiped, and its sequence
//! numbers must never be reused), and what people said and alerts (targets, bindings,
//! alerts), which the office must not forget because one node crashed. Its peers' readings,
//! network-map rows and heartbeats it can leave out: their writers hold them and give them
//! back by sync after a restart.
//!
//! Leaving writes out of a delta must keep it below the state it came from in the lattice
//! order, or a restore from it could hold what the node had dropped. [`kept_by`] drops the
//! left-out writes *and their dots*, so the restored replica has simply not seen them yet
//! (sync brings them), and keeps every other dot of the context, so what the delta
//! replaced is still replaced.

use super::{
    Delta, NodeId,
    dot::CausalContext,
    entries::{Entry, Part, PartVisitor, for_each_part},
};

/// The parts a node keeps whoever wrote them: what people said, and alerts.
pub const KEPT_FROM_ANYONE: [Part; 3] = [Part::People, Part::Targets, Part::Alerts];

/// Whether node `keeper` keeps a write of `part` made by `writer` on its own disk.
pub fn keeps(keeper: &NodeId, part: Part, writer: &NodeId) -> bool {
    writer == keeper || KEPT_FROM_ANYONE.contains(&part)
}

/// The part of `delta` that node `keeper` must save itself (see [`keeps`]).
///
/// The result is below `delta` in the lattice order: joined with `delta` it gives `delta`.
/// Its store is `delta`'s without the left-out writes, and its context `delta`'s without
/// their dots. The dots a kept write replaced, and the dots of writes `delta` had seen and
/// dropped, stay, so a state restored from it drops them too. Restricting commutes with
/// joining: `kept_by(a ⊔ b) = kept_by(a) ⊔ kept_by(b)` for valid states.
pub fn kept_by(delta: &Delta, keeper: &NodeId) -> Delta {
    struct Restrict<'a> {
        delta: Delta,
        keeper: &'a NodeId,
    }
    impl PartVisitor for Restrict<'_> {
        fn visit<E: Entry>(&mut self) {
            let keeper = self.keeper;
            let left_out = E::part_mut(&mut self.delta.store)
                .retain(|_, dot, _| keeps(keeper, E::PART, &dot.writer));
            for dot in left_out {
                self.delta.context.remove(&dot);
            }
        }
    }
    let mut restrict = Restrict {
        delta: delta.clone(),
        keeper,
    };
    for_each_part(&mut restrict);
    restrict.delta
}

/// Whether `delta` holds a write of the parts kept from anyone (what people said, alerts)
/// that a replica whose context is `seen` has not seen yet: news a node saves promptly.
pub fn has_news_kept_from_anyone(delta: &Delta, seen: &CausalContext) -> bool {
    struct News<'a> {
        delta: &'a Delta,
        seen: &'a CausalContext,
        found: bool,
    }
    impl PartVisitor for News<'_> {
        fn visit<E: Entry>(&mut self) {
            if KEPT_FROM_ANYONE.contains(&E::PART) {
                self.found |= E::part(&self.delta.store)
                    .iter()
                    .any(|(_, dot, _)| !self.seen.contains(dot));
            }
        }
    }
    let mut news = News {
        delta,
        seen,
        found: false,
    };
    for_each_part(&mut news);
    news.found
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::state::{
        AlertName, DEFAULT_RETENTION_MS, Dot, MIN_PLAUSIBLE_WALL_MS, Mac, Message, NodeName,
        Person, Quantity, Replica, Room, SensorId, Version,
    };

    const T0: u64 = MIN_PLAUSIBLE_WALL_MS + 60_000;

    fn replica(name: &str) -> Replica {
        let mut replica = Replica::new(NodeId::new(name).unwrap(), DEFAULT_RETENTION_MS);
        replica.snapshot();
        replica
    }

    fn reading(replica: &mut Replica, value: f64, at: u64) -> Delta {
        replica
            .record_reading(
                SensorId::new("desk").unwrap(),
                Room::new("lab").unwrap(),
                Quantity::Temperature,
                value,
                "°C",
                at,
            )
            .unwrap()
    }

    fn target(replica: &mut Replica, value: f64, at: u64) -> Delta {
        replica
            .set_target(
                Room::new("lab").unwrap(),
                Quantity::Temperature,
                value,
                "°C",
                Person::new("ada").unwrap(),
                at,
            )
            .unwrap()
    }

    /// Every kind of write by `replica`, joined into one delta.
    fn one_of_each(replica: &mut Replica, at: u64) -> Delta {
        let mac = Mac([0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]);
        let room = Room::new("lab").unwrap();
        let mut all = Delta::default();
        for delta in [
            replica
                .announce(
                    NodeName::new("pi").unwrap(),
                    room.clone(),
                    Version::new("0.1.0").unwrap(),
                    T0,
                    at,
                )
                .unwrap(),
            reading(replica, 21.0, at + 1),
            replica
                .observe_device(mac, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)), at + 2)
                .unwrap(),
            replica
                .bind(Person::new("ada").unwrap(), mac, at + 3)
                .unwrap(),
            target(replica, 22.0, at + 4),
            replica
                .raise_alert(
                    AlertName::new("too-warm").unwrap(),
                    room,
                    Quantity::Temperature,
                    Message::new("warm").unwrap(),
                    at + 5,
                )
                .unwrap(),
        ] {
            all.join(&delta);
        }
        all
    }

    fn parts(delta: &Delta) -> Vec<Part> {
        delta.store.dots().map(|(part, _)| part).collect()
    }

    #[test]
    fn a_node_keeps_all_of_its_own_writes() {
        let mut me = replica("12D3KooWMe");
        let delta = one_of_each(&mut me, T0);
        assert_eq!(kept_by(&delta, me.id()), delta);
    }

    #[test]
    fn of_a_peer_only_what_people_said_and_alerts_are_kept_with_their_dots() {
        let me = NodeId::new("12D3KooWMe").unwrap();
        let mut peer = replica("12D3KooWPeer");
        let delta = one_of_each(&mut peer, T0);
        let kept = kept_by(&delta, &me);
        assert_eq!(
            parts(&kept),
            [Part::People, Part::Targets, Part::Alerts],
            "{kept:?}"
        );
        // The dots of the heartbeat, the reading and the sighting (1, 2, 3) are not seen.
        let peer_id = peer.id();
        for seq in 1..=3 {
            assert!(!kept.context.contains(&Dot::new(peer_id.clone(), seq)));
        }
        for seq in 4..=6 {
            assert!(kept.context.contains(&Dot::new(peer_id.clone(), seq)));
        }
        let mut joined = kept.clone();
        joined.join(&delta);
        assert_eq!(joined, delta, "kept_by(d) is below d");
    }

    #[test]
    fn the_dots_a_left_out_write_replaced_stay_replaced() {
        let me = NodeId::new("12D3KooWMe").unwrap();
        let mut peer = replica("12D3KooWPeer");
        let first = reading(&mut peer, 20.0, T0);
        let second = reading(&mut peer, 21.0, T0 + 1000);
        let kept = kept_by(&second, &me);
        assert!(kept.store.is_empty());
        let first_dot = Dot::new(peer.id().clone(), 1);
        let second_dot = Dot::new(peer.id().clone(), 2);
        assert!(
            kept.context.contains(&first_dot),
            "replaced: still replaced"
        );
        assert!(!kept.context.contains(&second_dot), "left out: not seen");
        // A base that held the first reading drops it and waits for the second from sync.
        let mut restored = first.clone();
        restored.join(&kept);
        assert!(restored.store.readings.is_empty());
        restored.join(&second);
        assert_eq!(restored.store, second.store);
    }

    #[test]
    fn restricting_commutes_with_joining() {
        let mut me_replica = replica("12D3KooWMe");
        let mut peer = replica("12D3KooWPeer");
        let a = one_of_each(&mut peer, T0);
        let mut b = one_of_each(&mut peer, T0 + 10_000);
        b.join(&one_of_each(&mut me_replica, T0 + 20_000));
        b.join(&target(&mut me_replica, 19.0, T0 + 30_000));
        let me = me_replica.id();
        let mut joined = a.clone();
        joined.join(&b);
        let mut separately = kept_by(&a, me);
        separately.join(&kept_by(&b, me));
        assert_eq!(kept_by(&joined, me), separately);
    }

    #[test]
    fn news_is_a_write_of_people_targets_or_alerts_not_seen_yet() {
        let mut peer = replica("12D3KooWPeer");
        let mut me = replica("12D3KooWMe");
        let readings = reading(&mut peer, 20.0, T0);
        assert!(!has_news_kept_from_anyone(&readings, me.context()));
        let set = target(&mut peer, 22.0, T0 + 1);
        assert!(has_news_kept_from_anyone(&set, me.context()));
        me.merge(set.clone(), peer.id(), T0 + 2);
        assert!(
            !has_news_kept_from_anyone(&set, me.context()),
            "seen already: no news"
        );
    }
}
