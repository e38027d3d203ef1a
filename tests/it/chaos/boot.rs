//! Booting together, again and again: after a power cut every Pi of the office starts at
//! once, and each must be connected to every other within [`MESH_GOAL`]. The schedule test
//! boots its office once per seed; this one boots five hosts together
//! `OFFICEMESH_CHAOS_BOOTS` times (10 by default), the first from empty data dirs, the
//! others from the data dirs the kill -9 of the previous boot left, as a power cut does.
//! Its own switch (`ob`, 10.81.0.0/24), so it runs beside the schedule test.

use std::time::{Duration, Instant};

use super::{HOSTS, MESH_GOAL, PATIENCE, POLL, env_number, lab::Switch};
use crate::support::node::{Node, QUIET_CONFIG, write_swarm_key};

#[test]
fn five_nodes_booted_together_are_fully_meshed_within_ten_seconds_every_time() {
    let boots = env_number("OFFICEMESH_CHAOS_BOOTS").unwrap_or(10);
    let switch = Switch::new("ob", 81, HOSTS).unwrap_or_else(|error| {
        panic!("booting together needs root and iproute2 to build its network: {error}")
    });
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                switch.enter().expect("the test joins the switch namespace");
                boot_again_and_again(&switch, boots)
            })
            .join()
    });
    drop(switch);
    let meshes = outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let mut sorted: Vec<Duration> = meshes.iter().flatten().copied().collect();
    sorted.sort();
    eprintln!(
        "booting together: {boots} boots of {HOSTS} nodes; full mesh after {:?}; median {:?}, longest {:?}",
        meshes,
        sorted.get(sorted.len() / 2),
        sorted.last()
    );
    let slow: Vec<(usize, Option<Duration>)> = meshes
        .iter()
        .enumerate()
        .filter(|(_, mesh)| mesh.is_none_or(|mesh| mesh > MESH_GOAL))
        .map(|(boot, mesh)| (boot + 1, *mesh))
        .collect();
    assert!(
        slow.is_empty(),
        "boots without a full mesh within {MESH_GOAL:?} (boot, time): {slow:?}"
    );
}

/// Boots the office `boots` times; how long after each spawn every node had every other.
fn boot_again_and_again(switch: &Switch, boots: u64) -> Vec<Option<Duration>> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x0b);
    let builders: Vec<_> = (0..HOSTS)
        .map(|host| {
            Node::builder(dir.path().join(format!("h{}", host + 1)))
                .config(QUIET_CONFIG)
                .namespace(switch.namespace(host))
                .swarm_key(&key)
                .room(&format!("room {host}"))
                .mdns()
                .listen("/ip4/0.0.0.0/tcp/0")
                .http(&format!("{}:0", switch.address(host)))
        })
        .collect();
    let mut meshes = Vec::new();
    for _ in 0..boots {
        let boot = Instant::now();
        let mut nodes: Vec<Node> = builders.iter().map(|builder| builder.spawn()).collect();
        for node in &mut nodes {
            node.wait_started();
        }
        meshes.push(wait_for_mesh(&nodes, boot));
        // The power cut.
        for node in nodes {
            node.kill();
        }
    }
    meshes
}

/// How long from `boot` until every node lists every other in `GET /api/peers`; `None`
/// when not within [`PATIENCE`].
fn wait_for_mesh(nodes: &[Node], boot: Instant) -> Option<Duration> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let meshed = nodes.iter().all(|node| {
            node.get("/api/peers")
                .ok()
                .and_then(|peers| peers.as_array().map(Vec::len))
                == Some(nodes.len() - 1)
        });
        if meshed {
            return Some(boot.elapsed());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
