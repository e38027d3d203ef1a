//! mDNS discovery between two hosts, each a network namespace this test creates, joined by
//! a bridge it creates. mDNS multicasts on every interface, so it never runs on the machine's
//! own interfaces: only the two namespaces' nodes use it, and their only link is our bridge.
//! Needs root and iproute2's `ip` (CI runs as root); without them the test fails, saying so.

use std::path::Path;

use crate::{
    netlab::Lab,
    support::{
        node::{Node, write_swarm_key},
        wait_for,
    },
};

fn start(lab: &Lab, host: u8, data_dir: &Path, key: &Path) -> Node {
    Node::builder(data_dir)
        .namespace(lab.namespace(host))
        .swarm_key(key)
        .room(&format!("room {host}"))
        .mdns()
        .listen("/ip4/0.0.0.0/tcp/0")
        .http(&format!("{}:0", lab.address(host)))
        .start()
}

#[test]
fn two_hosts_find_each_other_by_mdns() {
    let lab = Lab::new("om", 77).unwrap_or_else(|error| {
        panic!("this test needs root and iproute2 to create network namespaces: {error}")
    });
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x5a);
    let a = start(&lab, 1, &dir.path().join("a"), &key);
    let b = start(&lab, 2, &dir.path().join("b"), &key);

    // No --peer anywhere: only mDNS can connect them. Each must see the other's node entry.
    wait_for("the two hosts find each other by mDNS", || {
        let counts: Vec<Option<usize>> = [&a, &b]
            .iter()
            .map(|node| {
                node.get("/api/state")
                    .ok()
                    .and_then(|state| state["nodes"].as_array().map(Vec::len))
            })
            .collect();
        match counts[..] {
            [Some(2), Some(2)] => Ok(()),
            _ => Err(format!("nodes seen by each: {counts:?}")),
        }
    });
}
