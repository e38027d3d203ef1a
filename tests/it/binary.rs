//! The real `officemesh` binary, started several times on loopback: the office converges
//! through the HTTP API, a node killed with SIGKILL comes back with its state, and a node
//! with another swarm key stays out.

use serde_json::Value;

use crate::support::node::{Node, reading_in, write_swarm_key};

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
    let b_alone = Node::builder(dir.path().join("b"))
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
    // state at once.
    b.wait_saved();
    b.kill();
    a.post_reading("desk-a", "open space", 19.0);
    b = b_alone.start();
    let restored = b.state();
    assert_eq!(
        reading_in(&restored, "desk-c"),
        Some(23.5),
        "b lost a peer's reading: {restored}"
    );
    assert_eq!(
        reading_in(&restored, "desk-b"),
        Some(22.5),
        "b lost its own saved reading"
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
