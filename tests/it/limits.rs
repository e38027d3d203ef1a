//! What one member of the office can do to a node (docs/reliability.md, "Threat model"): a
//! peer that holds the swarm key and floods the node with requests. A real node (the
//! binary) and a real libp2p peer over loopback; the peer speaks the node's own sync codec,
//! so every request it sends is well formed and only the number is hostile.

use std::{str::FromStr, time::Duration};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, Transport,
    core::upgrade::Version,
    gossipsub, noise,
    pnet::{PnetConfig, PreSharedKey},
    request_response::{self, ProtocolSupport},
    swarm::SwarmEvent,
    tcp, yamux,
};
use officemesh::{
    net::{
        MAX_GOSSIP_TRANSMIT_BYTES, STATE_TOPIC, node_id,
        rate::{SYNC_REQUEST_BURST, SYNC_REQUESTS_PER_SECOND},
        sync::{SYNC_PROTOCOL, SyncCodec, SyncRequest},
    },
    state::{
        Delta, Digest, Dot, Hlc, MAX_ENTRIES_PER_WRITER, Quantity, Reading, ReadingKey, Room,
        SensorId,
    },
    wire,
};

use crate::support::{
    node::{Node, write_swarm_key},
    wait_for,
};

/// Requests the flooding peer sends at once.
const FLOOD: usize = 5000;

/// Bad gossip messages the misbehaving peer publishes (the last ten oversized).
const GOSSIP_FLOOD: usize = 2000;

/// Readings past the most one writer may have that the flooding member publishes.
const PAST_THE_LIMIT: usize = 2000;

/// Readings per gossip message of the flooding member: well inside the 64 KiB a message
/// may carry.
const READINGS_PER_MESSAGE: usize = 400;

/// A libp2p peer with the office's key (TCP, pnet, Noise, yamux, as a node dials) running
/// `behaviour` and nothing else.
fn member<B: libp2p::swarm::NetworkBehaviour>(
    key_file: &std::path::Path,
    behaviour: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> Swarm<B> {
    let psk = PreSharedKey::from_str(&std::fs::read_to_string(key_file).unwrap())
        .expect("the swarm key parses");
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|keypair| {
            Ok(tcp::tokio::Transport::new(tcp::Config::default())
                .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
                .upgrade(Version::V1Lazy)
                .authenticate(noise::Config::new(keypair)?)
                .multiplex(yamux::Config::default()))
        })
        .unwrap()
        .with_behaviour(|keypair| behaviour(keypair))
        .unwrap()
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// A member that speaks only the sync protocol, as an asker.
fn flooder(key_file: &std::path::Path) -> Swarm<request_response::Behaviour<SyncCodec>> {
    let protocols: [(StreamProtocol, ProtocolSupport); 1] =
        [(SYNC_PROTOCOL, ProtocolSupport::Outbound)];
    member(key_file, |_| {
        request_response::Behaviour::with_codec(
            SyncCodec,
            protocols,
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(60))
                .with_max_concurrent_streams(FLOOD),
        )
    })
}

/// Dials the node at `address` and waits for the connection.
async fn connect<B: libp2p::swarm::NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    address: Multiaddr,
    node: PeerId,
) {
    swarm.dial(address).unwrap();
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == node => return,
            SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial failed: {error}"),
            _ => {}
        }
    }
}

/// Two nodes of an office, connected, with a reading shared: the target and the rest.
fn office(dir: &std::path::Path, key: &std::path::Path) -> (Node, Node) {
    write_swarm_key(key, 0x4d);
    let target = Node::builder(dir.join("target"))
        .swarm_key(key)
        .room("lab")
        .start();
    let office = Node::builder(dir.join("office"))
        .swarm_key(key)
        .room("hall")
        .peer(&target.dial_address())
        .start();
    office.post_reading("before", "hall", 20.5);
    target.wait_for_reading("before", 20.5);
    (target, office)
}

/// The target still runs, kept its memory (within `slack` bytes of `before`), names `peer`
/// in a line that also says `what`, and still trades writes with the office both ways.
fn still_serving(
    target: &mut Node,
    office: &Node,
    before: u64,
    peer: PeerId,
    what: &str,
    round: f64,
) {
    wait_for(&format!("the target names {peer} for {what}"), || {
        let log = target.log_text();
        match log
            .lines()
            .find(|line| line.contains(&peer.to_string()) && line.contains(what))
        {
            Some(_) => Ok(()),
            None => Err("no line names it".to_owned()),
        }
    });
    assert!(target.exit_status().is_none(), "the target exited");
    let after = target.resident_bytes();
    assert!(
        after < before + (64 << 20),
        "resident memory grew from {before} to {after} bytes"
    );
    office.post_reading("after", "hall", 21.5 + round);
    target.wait_for_reading("after", 21.5 + round);
    target.post_reading("back", "lab", 19.5 + round);
    office.wait_for_reading("back", 19.5 + round);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A member speaking gossipsub on the office's topic, with a larger size limit than the
/// office's, so oversized messages leave it.
fn gossiper(key_file: &std::path::Path) -> Swarm<gossipsub::Behaviour> {
    member(key_file, |keypair| {
        let config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .max_transmit_size(4 * MAX_GOSSIP_TRANSMIT_BYTES)
            .build()
            .unwrap();
        gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(keypair.clone()),
            config,
        )
        .unwrap()
    })
}

/// Connects `swarm` to the node and waits until the node's subscription to the state topic
/// is known, so a publish has somewhere to go.
async fn join_topic(swarm: &mut Swarm<gossipsub::Behaviour>, address: Multiaddr, node: PeerId) {
    let topic = gossipsub::IdentTopic::new(STATE_TOPIC);
    swarm.behaviour_mut().subscribe(&topic).unwrap();
    connect(swarm, address, node).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !swarm
        .behaviour()
        .all_peers()
        .any(|(peer, topics)| *peer == node && !topics.is_empty())
    {
        tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .expect("the node subscribes to the state topic");
    }
}

/// Publishes each of `messages`, letting the connection carry them as they go, then drives
/// the swarm until everything queued is written; how many publishes gossipsub took.
async fn publish_all(swarm: &mut Swarm<gossipsub::Behaviour>, messages: Vec<Vec<u8>>) -> usize {
    let topic = gossipsub::IdentTopic::new(STATE_TOPIC);
    let mut published = 0;
    for data in messages {
        if swarm.behaviour_mut().publish(topic.clone(), data).is_ok() {
            published += 1;
        }
        while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, swarm.next()).await {}
    }
    let settle = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::timeout_at(settle, swarm.select_next_some())
        .await
        .is_ok()
    {}
    published
}

/// A member that sends thousands of sync requests at once: the node answers a burst, then
/// refuses the rest without looking through its replica, says which peer it was, keeps its
/// memory, and goes on serving the office.
#[test]
fn a_member_flooding_sync_requests_is_refused_named_and_the_node_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    let (mut target, office) = office(dir.path(), &key);
    let resident_before = target.resident_bytes();

    let address: Multiaddr = target.dial_address().parse().unwrap();
    let target_peer: PeerId = target.peer_id().parse().unwrap();
    let (flooder_peer, answered, refused) = runtime().block_on(async {
        let mut swarm = flooder(&key);
        let flooder_peer = *swarm.local_peer_id();
        connect(&mut swarm, address, target_peer).await;
        for _ in 0..FLOOD {
            swarm.behaviour_mut().send_request(
                &target_peer,
                SyncRequest {
                    digest: Digest::default(),
                    after: None,
                },
            );
        }
        let (mut answered, mut refused) = (0usize, 0usize);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while answered + refused < FLOOD {
            let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
                .await
                .unwrap_or_else(|_| {
                    panic!("{answered} answered and {refused} refused of {FLOOD} by the deadline")
                });
            match event {
                SwarmEvent::Behaviour(request_response::Event::Message { .. }) => answered += 1,
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => {
                    refused += 1;
                }
                _ => {}
            }
        }
        (flooder_peer, answered, refused)
    });
    eprintln!(
        "flood of {FLOOD} sync requests: {answered} answered, {refused} refused; target resident {} -> {} MiB",
        resident_before >> 20,
        target.resident_bytes() >> 20
    );
    // A burst and the refill over the flood's few seconds at most; the rest refused.
    assert!(
        answered >= 1,
        "nothing answered: the limit refuses an honest burst too"
    );
    assert!(
        answered <= SYNC_REQUEST_BURST as usize + 120 * SYNC_REQUESTS_PER_SECOND as usize,
        "{answered} answered"
    );
    assert!(refused >= FLOOD - answered);
    still_serving(
        &mut target,
        &office,
        resident_before,
        flooder_peer,
        "sync requests",
        0.0,
    );
}

/// Gossip no node sends: thousands of signed messages on the state topic whose data is not a
/// delta, and messages larger than a gossipsub RPC may be. The node rejects the first (and
/// names the peer), its gossipsub drops the second at the codec, and it goes on serving.
#[test]
fn a_member_sending_malformed_and_oversized_gossip_is_rejected_and_the_node_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    let (mut target, office) = office(dir.path(), &key);
    let resident_before = target.resident_bytes();

    let address: Multiaddr = target.dial_address().parse().unwrap();
    let target_peer: PeerId = target.peer_id().parse().unwrap();
    let (member_peer, published) = runtime().block_on(async {
        let mut swarm = gossiper(&key);
        let member_peer = *swarm.local_peer_id();
        join_topic(&mut swarm, address, target_peer).await;
        let messages = (0..GOSSIP_FLOOD)
            .map(|index| {
                // Each distinct (message ids are content hashes); none a delta.
                let mut data = format!("not a delta {index} ").into_bytes();
                // The last few over the size limit: the node's codec drops the RPC and
                // closes the stream it came on, which this peer must open again.
                if index >= GOSSIP_FLOOD - 10 {
                    data.resize(2 * MAX_GOSSIP_TRANSMIT_BYTES, b'x');
                }
                data
            })
            .collect();
        (member_peer, publish_all(&mut swarm, messages).await)
    });
    eprintln!(
        "{published} of {GOSSIP_FLOOD} bad gossip messages published; target resident {} -> {} MiB",
        resident_before >> 20,
        target.resident_bytes() >> 20
    );
    assert!(published > GOSSIP_FLOOD / 2, "only {published} published");
    still_serving(
        &mut target,
        &office,
        resident_before,
        member_peer,
        "rejected",
        1.0,
    );
}

/// One writer's deltas of readings of new sensors `sensors` (a sequence number each, from
/// `first_seq`), `READINGS_PER_MESSAGE` to a message, as a member that ignores the limit
/// makes them; and one more that writes sensor `flood-0` again with `marker`.
fn flood_messages(
    writer: &officemesh::state::NodeId,
    sensors: std::ops::Range<usize>,
    first_seq: u64,
    marker: f64,
) -> Vec<Vec<u8>> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let reading = |index: usize, value: f64, logical: u32| {
        let key = ReadingKey {
            node: writer.clone(),
            sensor: SensorId::new(&format!("flood-{index}")).unwrap(),
        };
        let reading = Reading {
            room: Room::new("flooded").unwrap(),
            quantity: Quantity::Temperature,
            value,
            at: Hlc::new(now_ms, logical),
        };
        (key, reading)
    };
    let count = sensors.len();
    let mut messages: Vec<Vec<u8>> = sensors
        .enumerate()
        .collect::<Vec<_>>()
        .chunks(READINGS_PER_MESSAGE)
        .map(|chunk| {
            let mut delta = Delta::default();
            for &(offset, index) in chunk {
                let dot = Dot::new(writer.clone(), first_seq + offset as u64);
                let (key, value) = reading(index, 20.0, offset as u32);
                delta.context.insert(&dot);
                delta.store.readings.insert(key, dot, value);
            }
            wire::encode_delta(&delta)
        })
        .collect();
    // The marker replaces the first flood's `flood-0` (its dot, sequence number 1): when a
    // node shows it, it has taken every message before it.
    let mut last = Delta::default();
    let dot = Dot::new(writer.clone(), first_seq + count as u64);
    let (key, value) = reading(0, marker, u32::MAX);
    last.context.insert(&Dot::new(writer.clone(), 1));
    last.context.insert(&dot);
    last.store.readings.insert(key, dot, value);
    messages.push(wire::encode_delta(&last));
    messages
}

/// A member that writes more entries under its own id than one writer may have, in
/// well-formed gossip: the node takes them up to the limit and refuses the rest, names the
/// member, and a second flood past the limit costs it no memory.
#[test]
fn a_member_flooding_entries_under_its_own_id_is_held_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    let (mut target, office) = office(dir.path(), &key);
    let resident_before = target.resident_bytes();

    let address: Multiaddr = target.dial_address().parse().unwrap();
    let target_peer: PeerId = target.peer_id().parse().unwrap();
    let first = MAX_ENTRIES_PER_WRITER + PAST_THE_LIMIT;
    let second = 5 * PAST_THE_LIMIT;
    let flooded = |target: &Node| -> (usize, Option<f64>) {
        let Ok(state) = target.get("/api/state") else {
            return (0, None);
        };
        let readings: Vec<serde_json::Value> = state["rooms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|room| room["name"] == "flooded")
            .flat_map(|room| room["readings"].as_array().cloned().unwrap_or_default())
            .collect();
        let marker = readings
            .iter()
            .find(|reading| reading["sensor"] == "flood-0")
            .and_then(|reading| reading["value"].as_f64());
        (readings.len(), marker)
    };
    let taken = |target: &Node, marker: f64| {
        wait_for("the target takes the whole flood", || {
            match flooded(target) {
                (count, Some(value)) if value == marker => Ok(count),
                other => Err(format!("readings held, flood-0: {other:?}")),
            }
        })
    };

    let rt = runtime();
    let mut swarm = rt.block_on(async {
        let mut swarm = gossiper(&key);
        join_topic(&mut swarm, address, target_peer).await;
        swarm
    });
    let member_peer = *swarm.local_peer_id();
    let writer = node_id(&member_peer);
    let messages = flood_messages(&writer, 0..first, 1, 30.0);
    let count = messages.len();
    assert_eq!(rt.block_on(publish_all(&mut swarm, messages)), count);
    let held = taken(&target, 30.0);
    assert_eq!(
        held, MAX_ENTRIES_PER_WRITER,
        "held up to the limit, no more"
    );
    let at_limit = target.resident_bytes();

    // As many again past the limit: refused, and no memory for them.
    let messages = flood_messages(&writer, first..first + second, first as u64 + 2, 31.0);
    let count = messages.len();
    assert_eq!(rt.block_on(publish_all(&mut swarm, messages)), count);
    let held = taken(&target, 31.0);
    assert_eq!(
        held, MAX_ENTRIES_PER_WRITER,
        "held up to the limit, no more"
    );
    eprintln!(
        "{first} then {second} readings of one member: the target holds {held}; resident {} MiB before, {} MiB at the limit, {} MiB after the second flood",
        resident_before >> 20,
        at_limit >> 20,
        target.resident_bytes() >> 20
    );
    drop(swarm);
    still_serving(
        &mut target,
        &office,
        at_limit,
        member_peer,
        "more entries than one node may have",
        2.0,
    );
}
