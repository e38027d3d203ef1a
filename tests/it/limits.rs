//! What one member of the office can do to a node (docs/reliability.md, "Threat model"): a
//! peer that holds the swarm key and floods the node with requests. A real node (the
//! binary) and a real libp2p peer over loopback; the peer speaks the node's own sync codec,
//! so every request it sends is well formed and only the number is hostile.

use std::{str::FromStr, time::Duration};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, Transport,
    core::upgrade::Version,
    noise,
    pnet::{PnetConfig, PreSharedKey},
    request_response::{self, ProtocolSupport},
    swarm::SwarmEvent,
    tcp, yamux,
};
use officemesh::{
    net::{
        rate::{SYNC_REQUEST_BURST, SYNC_REQUESTS_PER_SECOND},
        sync::{SYNC_PROTOCOL, SyncCodec, SyncRequest},
    },
    state::Digest,
};

use crate::support::{
    node::{Node, write_swarm_key},
    wait_for,
};

/// Requests the flooding peer sends at once.
const FLOOD: usize = 5000;

type Flooder = Swarm<request_response::Behaviour<SyncCodec>>;

/// A libp2p peer with the office's key that speaks only the sync protocol, as an asker.
fn flooder(key_file: &std::path::Path) -> Flooder {
    let psk = PreSharedKey::from_str(&std::fs::read_to_string(key_file).unwrap())
        .expect("the swarm key parses");
    let protocols: [(StreamProtocol, ProtocolSupport); 1] =
        [(SYNC_PROTOCOL, ProtocolSupport::Outbound)];
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
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                SyncCodec,
                protocols,
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(60))
                    .with_max_concurrent_streams(FLOOD),
            )
        })
        .unwrap()
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// A member that sends thousands of sync requests at once: the node answers a burst, then
/// refuses the rest without looking through its replica, says which peer it was, keeps its
/// memory, and goes on serving the office.
#[test]
fn a_member_flooding_sync_requests_is_refused_named_and_the_node_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x4d);
    let mut target = Node::builder(dir.path().join("target"))
        .swarm_key(&key)
        .room("lab")
        .start();
    let office = Node::builder(dir.path().join("office"))
        .swarm_key(&key)
        .room("hall")
        .peer(&target.dial_address())
        .start();
    office.post_reading("before", "hall", 20.5);
    target.wait_for_reading("before", 20.5);
    let resident_before = target.resident_bytes();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let address: Multiaddr = target.dial_address().parse().unwrap();
    let target_peer: PeerId = target.peer_id().parse().unwrap();
    let (flooder_peer, answered, refused) = runtime.block_on(async {
        let mut swarm = flooder(&key);
        let flooder_peer = *swarm.local_peer_id();
        swarm.dial(address).unwrap();
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target_peer => {
                    break;
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial failed: {error}"),
                _ => {}
            }
        }
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
    // The log says who.
    wait_for("the target names the flooding peer", || {
        let log = target.log_text();
        match log
            .lines()
            .find(|line| line.contains(&flooder_peer.to_string()) && line.contains("sync requests"))
        {
            Some(_) => Ok(()),
            None => Err("no line names it".to_owned()),
        }
    });
    // Up, with its memory, and still part of the office both ways.
    assert!(target.exit_status().is_none(), "the target exited");
    let resident_after = target.resident_bytes();
    assert!(
        resident_after < resident_before + (64 << 20),
        "resident memory grew from {resident_before} to {resident_after} bytes"
    );
    office.post_reading("after", "hall", 21.5);
    target.wait_for_reading("after", 21.5);
    target.post_reading("back", "lab", 19.5);
    office.wait_for_reading("back", 19.5);
}
