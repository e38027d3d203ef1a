//! The real `officemesh` binary, started several times on loopback: the office converges
//! through the HTTP API, a node killed with SIGKILL comes back with its own state and gets
//! its peers' back from them, a node with another swarm key stays out, and `GET /api/peers`
//! shows the real peers with their measured round-trip times.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::{
    node::{Node, QUIET_CONFIG, reading_in, write_swarm_key},
    wait_for,
};

#[test]
fn three_processes_converge_survive_a_kill_and_keep_an_outsider_out() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x42);
    let other_key = dir.path().join("other.key");
    write_swarm_key(&other_key, 0x17);

    let a = Node::builder(dir.path().join("a"))
        .swarm_key(&key)
        .room("open space")
        .start();
    // b saves its pending changes every second, so the test can wait for that save.
    let b_alone = Node::builder(dir.path().join("b"))
        .config(&format!("{QUIET_CONFIG}[store]\nsave_interval_s = 1\n"))
        .swarm_key(&key)
        .room("meeting room");
    let b_with_a = b_alone.clone().peer(&a.dial_address());
    let mut b = b_with_a.start();
    let c = Node::builder(dir.path().join("c"))
        .swarm_key(&key)
        .room("kitchen")
        .peer(&a.dial_address())
        .start();

    // Writes on each node reach every other node.
    a.post_reading("desk-a", "open space", 21.5);
    b.post_reading("desk-b", "meeting room", 22.5);
    c.post_reading("desk-c", "kitchen", 23.5);
    for node in [&a, &b, &c] {
        node.wait_for_reading("desk-a", 21.5);
        node.wait_for_reading("desk-b", 22.5);
        node.wait_for_reading("desk-c", 23.5);
    }

    // An outsider with another key dials the office and learns nothing.
    let outsider = Node::builder(dir.path().join("x"))
        .swarm_key(&other_key)
        .room("street")
        .peer(&a.dial_address())
        .start();
    outsider.post_reading("desk-x", "street", 10.0);

    // Once b has saved, SIGKILL it, write meanwhile, restart b alone (no peers): it has its
    // own state at once. Its peers' readings it left to them: its periodic save keeps only
    // its own writes (and what people said, alerts), so they come back by sync below.
    b.wait_saved();
    b.kill();
    a.post_reading("desk-a", "open space", 19.0);
    b = b_alone.start();
    let restored = b.state();
    assert_eq!(
        reading_in(&restored, "desk-b"),
        Some(22.5),
        "b lost its own saved reading: {restored}"
    );
    assert_eq!(
        reading_in(&restored, "desk-c"),
        None,
        "b saved a peer's reading, which its peers give back: {restored}"
    );

    // A new write on the restarted b must not reuse a sequence number it used before the
    // kill, or the others would take it for one they already have and keep 22.5. SIGTERM
    // stops b cleanly (its store flushed); started again with a as peer, it rejoins.
    b.post_reading("desk-b", "meeting room", 24.0);
    b.terminate();
    b = b_with_a.start();
    for node in [&a, &b, &c] {
        node.wait_for_reading("desk-b", 24.0);
        node.wait_for_reading("desk-a", 19.0);
        node.wait_for_reading("desk-c", 23.5);
    }

    // The outsider never got in, and nobody saw its reading.
    for node in [&a, &b, &c] {
        assert_eq!(
            node.reading("desk-x"),
            None,
            "the outsider's reading leaked"
        );
    }
    assert_eq!(
        outsider.reading("desk-a"),
        None,
        "the outsider learned the office"
    );
    let peers = outsider.get("/api/peers").unwrap();
    assert_eq!(peers, Value::Array(Vec::new()), "the outsider has peers");
}

/// The peers `node` lists in `GET /api/peers`, by id, once it lists exactly `ids` and has
/// measured a round trip to each.
fn measured_peers(node: &Node, ids: &[String]) -> Result<BTreeMap<String, Value>, String> {
    let peers = node.get("/api/peers")?;
    let listed: BTreeMap<String, Value> = peers
        .as_array()
        .ok_or(format!("not a list: {peers}"))?
        .iter()
        .map(|peer| {
            (
                peer["id"].as_str().unwrap_or_default().to_owned(),
                peer.clone(),
            )
        })
        .collect();
    if !listed.keys().eq(ids.iter().collect::<BTreeSet<_>>()) {
        return Err(format!("lists {:?}, not {ids:?}", listed.keys()));
    }
    match listed.values().find(|peer| peer["rtt_ms"].is_null()) {
        Some(peer) => Err(format!("no round trip measured yet: {peer}")),
        None => Ok(listed),
    }
}

/// Whether `peer` (an entry of `GET /api/peers`) has a round trip a loopback ping can take:
/// well under a second, and never exactly zero.
fn loopback_rtt(peer: &Value) -> bool {
    peer["rtt_ms"]
        .as_f64()
        .is_some_and(|rtt_ms| rtt_ms > 0.0 && rtt_ms < 1000.0)
}

/// The addresses of `peer`, an entry of `GET /api/peers`.
fn addresses(peer: &Value) -> Vec<&str> {
    peer["addresses"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn the_peers_endpoint_lists_the_real_peers_with_their_addresses_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x2c);
    let a = Node::builder(dir.path().join("a")).swarm_key(&key).start();
    // b dials a, and c dials both, each at the address the other reported: the dialling
    // side's connection is to exactly that address.
    let b = Node::builder(dir.path().join("b"))
        .swarm_key(&key)
        .peer(&a.dial_address())
        .start();
    let c = Node::builder(dir.path().join("c"))
        .swarm_key(&key)
        .peer(&a.dial_address())
        .peer(&b.dial_address())
        .start();
    let [a_id, b_id, c_id] = [&a, &b, &c].map(Node::peer_id);

    // Each node lists exactly the two others, each with a measured round trip.
    let seen_by_a = wait_for("a lists b and c with round trips", || {
        measured_peers(&a, &[b_id.clone(), c_id.clone()])
    });
    let seen_by_b = wait_for("b lists a and c with round trips", || {
        measured_peers(&b, &[a_id.clone(), c_id.clone()])
    });
    let seen_by_c = wait_for("c lists a and b with round trips", || {
        measured_peers(&c, &[a_id.clone(), b_id.clone()])
    });
    for (node, seen) in [("a", &seen_by_a), ("b", &seen_by_b), ("c", &seen_by_c)] {
        for peer in seen.values() {
            assert!(loopback_rtt(peer), "{node} lists {peer}");
            let listed = addresses(peer);
            assert!(
                !listed.is_empty()
                    && listed
                        .iter()
                        .all(|address| address.starts_with("/ip4/127.0.0.1/tcp/")),
                "{node} lists {peer}"
            );
        }
    }
    // Where a node dialled, it lists the peer at the address it dialled.
    assert!(addresses(&seen_by_b[&a_id]).contains(&a.dial_address().as_str()));
    assert!(addresses(&seen_by_c[&a_id]).contains(&a.dial_address().as_str()));
    assert!(addresses(&seen_by_c[&b_id]).contains(&b.dial_address().as_str()));
}
