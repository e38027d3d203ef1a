//! The invite path end to end, with the real binary on loopback, as the README tells a user
//! to grow an office: a first `officemesh up` makes a new office, `officemesh invite` asks it
//! for a join token, and `officemesh up --join TOKEN` brings a new node in, which then holds
//! the office's state, both ways. The joined node keeps the office key, so it gets in again
//! after a restart without the token.

use crate::support::{node::Node, wait_for};

#[test]
fn a_node_joins_with_the_token_of_officemesh_invite_and_holds_the_office_state() {
    let dir = tempfile::tempdir().unwrap();
    // No swarm key given: the first node makes a new office and keeps its key.
    let first = Node::builder(dir.path().join("first"))
        .room("open space")
        .start();
    first.post_reading("desk-first", "open space", 21.5);
    first
        .request(
            "PUT",
            "/api/targets/open%20space/temperature",
            Some(r#"{"value": 22.0, "set_by": "mendes"}"#),
        )
        .expect("the first node takes a target");

    let output = first.cli(&["invite"], None);
    let token = output.trim();
    assert_eq!(output.lines().count(), 1, "one line, the token: {output:?}");
    // om1-<key>@<addresses>: the first node's own addresses, loopback as it listens.
    let (key, addresses) = token
        .strip_prefix("om1-")
        .and_then(|rest| rest.split_once('@'))
        .unwrap_or_else(|| panic!("not a join token: {token:?}"));
    assert_eq!(key.len(), 64, "{token}");
    assert_eq!(
        addresses.split(',').collect::<Vec<_>>(),
        first.listen_addresses(),
        "the token names where the first node listens"
    );

    let joined = Node::builder(dir.path().join("joined"))
        .room("kitchen")
        .arg("--join")
        .arg(token)
        .start();
    // What the office held before the join reaches the new node, and the new node's
    // writes reach the office.
    joined.wait_for_reading("desk-first", 21.5);
    wait_for("the joined node holds the office's target", || match joined
        .target("open space", "temperature")
    {
        Some(22.0) => Ok(()),
        other => Err(format!("target {other:?}")),
    });
    joined.post_reading("desk-joined", "kitchen", 23.0);
    first.wait_for_reading("desk-joined", 23.0);
    for node in [&first, &joined] {
        wait_for("each node knows both", || {
            match node.state()["nodes"].as_array().map(Vec::len) {
                Some(2) => Ok(()),
                other => Err(format!("{other:?} nodes")),
            }
        });
    }

    // The joined node stored the office key: restarted with only the first node's address
    // and no token, it is let in again and catches up.
    joined.terminate();
    first.post_reading("desk-first", "open space", 19.0);
    let joined = Node::builder(dir.path().join("joined"))
        .room("kitchen")
        .peer(&first.dial_address())
        .start();
    joined.wait_for_reading("desk-first", 19.0);
    assert_eq!(
        joined.get("/api/peers").unwrap()[0]["id"],
        first.peer_id().as_str()
    );
}
