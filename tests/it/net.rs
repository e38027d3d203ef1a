//! The network over real libp2p on the loopback interface: nodes share writes by gossip and
//! sync, a node that was away catches up, a node with another swarm key never gets in, and
//! a forged gossip delta is rejected. mDNS is off (it skips loopback interfaces).
//!
//! Each test node is a net actor plus a small harness task that plays the node's part:
//! it owns a [`Replica`], merges what the network delivers and answers sync requests.
//! Nothing sleeps to synchronise: tests poll for a condition until a deadline.

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use libp2p::{Multiaddr, PeerId, identity::Keypair, multiaddr::Protocol};
use officemesh::{
    net::{
        BaseTransport, Merged, Net, NetConfig, NetError, NetEvent, NetHandle, Origin, Refusal,
        SwarmKey, node_id,
    },
    state::{
        DEFAULT_RETENTION_MS, Delta, MIN_PLAUSIBLE_WALL_MS, NodeId, Quantity, Reading, Replica,
        Room, SensorId,
    },
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::{DEADLINE, eventually, within};

/// Sync often, so repair is quick in tests.
const TEST_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The physical time every test node uses: a plausible clock plus the time since the first
/// call, so all nodes agree within a process.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    MIN_PLAUSIBLE_WALL_MS + 1_000_000 + start.elapsed().as_millis() as u64
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// What a test node's harness saw.
#[derive(Default)]
struct Seen {
    refusals: Vec<Refusal>,
    misbehaved: Vec<PeerId>,
    gossip_deltas: usize,
}

struct TestNode {
    keypair: Keypair,
    handle: NetHandle,
    replica: Arc<Mutex<Replica>>,
    seen: Arc<Mutex<Seen>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// How a harness answers sync requests.
#[derive(Clone, Copy, PartialEq)]
enum SyncAnswers {
    /// With what the asker lacks, as a node does.
    Honest,
    /// With nothing, so that only gossip can carry this node's writes.
    Nothing,
}

impl TestNode {
    async fn start(key: &SwarmKey) -> TestNode {
        TestNode::start_fresh(key, |_| {}).await
    }

    async fn start_with(
        key: &SwarmKey,
        keypair: Keypair,
        replica: Replica,
        answers: SyncAnswers,
    ) -> TestNode {
        TestNode::start_configured(key, keypair, replica, answers, |_| {}).await
    }

    /// A fresh node whose configuration `configure` adjusts.
    async fn start_fresh(key: &SwarmKey, configure: impl FnOnce(&mut NetConfig)) -> TestNode {
        let keypair = Keypair::generate_ed25519();
        let id = node_id(&keypair.public().to_peer_id());
        let mut replica = Replica::new(id, DEFAULT_RETENTION_MS);
        replica.snapshot();
        TestNode::start_configured(key, keypair, replica, SyncAnswers::Honest, configure).await
    }

    async fn start_configured(
        key: &SwarmKey,
        keypair: Keypair,
        replica: Replica,
        answers: SyncAnswers,
        configure: impl FnOnce(&mut NetConfig),
    ) -> TestNode {
        init_tracing();
        let mut config = NetConfig::new(keypair.clone(), *key);
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        config.mdns = false;
        config.publish_interval = Duration::from_millis(100);
        config.sync_interval = TEST_SYNC_INTERVAL;
        configure(&mut config);
        let cancel = CancellationToken::new();
        let parts = Net::spawn(config, cancel.clone()).expect("the network starts");
        let replica = Arc::new(Mutex::new(replica));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let harness = tokio::spawn(play_node(
            parts.events,
            replica.clone(),
            seen.clone(),
            answers,
        ));
        let net = parts.task;
        let task = tokio::spawn(async move {
            net.await.expect("the net actor does not panic");
            harness.await.expect("the harness does not panic");
        });
        TestNode {
            keypair,
            handle: parts.handle,
            replica,
            seen,
            cancel,
            task,
        }
    }

    fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// Where to dial this node, with its peer id.
    async fn address(&self) -> Multiaddr {
        let handle = self.handle.clone();
        let addresses = eventually("the node listens", || {
            let handle = handle.clone();
            async move {
                let addresses = handle.listen_addrs().await.unwrap();
                (!addresses.is_empty()).then_some(addresses)
            }
        })
        .await;
        addresses[0].clone().with(Protocol::P2p(self.peer_id()))
    }

    async fn dial(&self, other: &TestNode) {
        self.handle.dial(other.address().await).await.unwrap();
    }

    /// Waits until this node is connected to exactly `others`, each subscribed to the state
    /// topic (so a publish reaches them).
    async fn wait_for_peers(&self, others: &[&TestNode]) {
        let mut expected: Vec<PeerId> = others.iter().map(|node| node.peer_id()).collect();
        expected.sort();
        let handle = self.handle.clone();
        eventually("peers connected and subscribed", || {
            let handle = handle.clone();
            let expected = expected.clone();
            async move {
                let peers = handle.peers().await.unwrap();
                let ready: Vec<PeerId> = peers
                    .iter()
                    .filter(|info| info.subscribed)
                    .map(|info| info.peer)
                    .collect();
                (ready == expected && peers.len() == expected.len()).then_some(())
            }
        })
        .await;
    }

    /// Writes a temperature reading and publishes its delta.
    async fn write(&self, sensor: &str, value: f64) {
        let delta = self.record(sensor, value);
        self.handle.publish(delta).await.unwrap();
    }

    /// Writes a reading to the replica only (the node is offline, or the test publishes it).
    fn record(&self, sensor: &str, value: f64) -> Delta {
        self.replica
            .lock()
            .unwrap()
            .record_reading(
                SensorId::new(sensor).unwrap(),
                Room::new("open space").unwrap(),
                Quantity::Temperature,
                value,
                "°C",
                now_ms(),
            )
            .unwrap()
    }

    /// (writer, sensor) of every reading the replica holds, sorted.
    fn readings(&self) -> Vec<(String, String)> {
        let replica = self.replica.lock().unwrap();
        let mut readings: Vec<(String, String)> = replica
            .latest::<Reading>()
            .map(|(key, _)| (key.node.to_string(), key.sensor.to_string()))
            .collect();
        readings.sort();
        readings
    }

    /// Stops the node's network and returns its identity and replica, to restart it.
    async fn stop(self) -> (Keypair, Replica) {
        self.cancel.cancel();
        drop(self.handle);
        self.task.await.unwrap();
        let replica = Arc::try_unwrap(self.replica)
            .expect("the harness has stopped")
            .into_inner()
            .unwrap();
        (self.keypair, replica)
    }
}

/// The node's side of the net actor's events: merge, answer, record.
async fn play_node(
    mut events: tokio::sync::mpsc::Receiver<NetEvent>,
    replica: Arc<Mutex<Replica>>,
    seen: Arc<Mutex<Seen>>,
    answers: SyncAnswers,
) {
    while let Some(event) = events.recv().await {
        match event {
            NetEvent::DeltaReceived {
                from,
                origin,
                delta,
                reply,
            } => {
                let report = replica
                    .lock()
                    .unwrap()
                    .merge(delta, &node_id(&from), now_ms());
                if origin == Origin::Gossip {
                    seen.lock().unwrap().gossip_deltas += 1;
                }
                let _ = reply.send(Merged::of(&report));
            }
            NetEvent::DigestWanted { reply } => {
                let _ = reply.send(replica.lock().unwrap().digest());
            }
            NetEvent::SyncRequested { digest, reply, .. } => {
                let answer = match answers {
                    SyncAnswers::Honest => replica.lock().unwrap().missing_for(&digest),
                    SyncAnswers::Nothing => Delta::default(),
                };
                let _ = reply.send(answer);
            }
            NetEvent::HoldRequested { from, delta, reply } => {
                let report = replica
                    .lock()
                    .unwrap()
                    .merge(delta, &node_id(&from), now_ms());
                let _ = reply.send(report.rejected.is_empty());
            }
            // These nodes keep no history: an empty answer.
            NetEvent::HistoryRequested { reply, .. } => {
                let _ = reply.send(Vec::new());
            }
            NetEvent::AdmissionRefused { refusal, .. } => {
                seen.lock().unwrap().refusals.push(refusal);
            }
            NetEvent::PeerMisbehaved { peer, .. } => {
                seen.lock().unwrap().misbehaved.push(peer);
            }
            NetEvent::Listening { .. }
            | NetEvent::PeerConnected { .. }
            | NetEvent::PeerDisconnected { .. } => {}
        }
    }
}

/// Waits until every node holds the same state, with exactly `expected` readings.
async fn wait_until_identical(nodes: &[&TestNode], expected: &[(String, String)]) {
    eventually("all replicas identical", || async {
        let first = nodes[0].replica.lock().unwrap().state().clone();
        let same = nodes
            .iter()
            .all(|node| *node.replica.lock().unwrap().state() == first);
        let complete = nodes.iter().all(|node| node.readings() == expected);
        (same && complete).then_some(())
    })
    .await;
}

fn reading(node: &TestNode, sensor: &str) -> (String, String) {
    (node.handle.node_id().to_string(), sensor.to_owned())
}

fn sorted(mut readings: Vec<(String, String)>) -> Vec<(String, String)> {
    readings.sort();
    readings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_their_writes() {
    let key = SwarmKey::generate().unwrap();
    let a = TestNode::start(&key).await;
    let b = TestNode::start(&key).await;
    let c = TestNode::start(&key).await;
    a.dial(&b).await;
    a.dial(&c).await;
    b.dial(&c).await;
    a.wait_for_peers(&[&b, &c]).await;
    b.wait_for_peers(&[&a, &c]).await;
    c.wait_for_peers(&[&a, &b]).await;

    a.write("desk", 21.0).await;
    b.write("window", 22.5).await;
    c.write("door", 19.0).await;

    let expected = sorted(vec![
        reading(&a, "desk"),
        reading(&b, "window"),
        reading(&c, "door"),
    ]);
    wait_until_identical(&[&a, &b, &c], &expected).await;
    let gossiped: usize = [&a, &b, &c]
        .iter()
        .map(|node| node.seen.lock().unwrap().gossip_deltas)
        .sum();
    assert!(gossiped > 0, "no delta arrived by gossip");

    // Peers report a ping round-trip time once a ping went through.
    let handle = a.handle.clone();
    eventually("a ping round trip", || {
        let handle = handle.clone();
        async move {
            let peers = handle.peers().await.unwrap();
            peers.iter().all(|info| info.rtt.is_some()).then_some(())
        }
    })
    .await;
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_away_catches_up_by_sync() {
    let key = SwarmKey::generate().unwrap();
    let a = TestNode::start(&key).await;
    let b = TestNode::start(&key).await;
    let c = TestNode::start(&key).await;
    a.dial(&b).await;
    a.dial(&c).await;
    b.dial(&c).await;
    a.wait_for_peers(&[&b, &c]).await;
    c.wait_for_peers(&[&a, &b]).await;
    a.write("before", 20.0).await;
    wait_until_identical(&[&a, &b, &c], &[reading(&a, "before")]).await;

    // C goes away; both sides write while it is gone.
    let c_id = c.handle.node_id();
    let (c_keypair, c_replica) = c.stop().await;
    a.wait_for_peers(&[&b]).await;
    b.wait_for_peers(&[&a]).await;
    a.write("during-a", 21.0).await;
    b.write("during-b", 22.0).await;
    let c = TestNode::start_with(&key, c_keypair, c_replica, SyncAnswers::Honest).await;
    c.record("offline", 18.0);
    assert_eq!(c.handle.node_id(), c_id);

    // C comes back through A only: B learns C's offline write from A, by sync.
    c.dial(&a).await;
    let expected = sorted(vec![
        reading(&a, "before"),
        reading(&a, "during-a"),
        reading(&b, "during-b"),
        (c_id.to_string(), "offline".to_owned()),
    ]);
    wait_until_identical(&[&a, &b, &c], &expected).await;

    // A sync on request reports what it brought.
    let summary = c.handle.sync_with(a.peer_id()).await.unwrap();
    assert_eq!(summary.entries, 0, "nothing left to bring: {summary:?}");
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_delta_that_shows_missed_writes_starts_a_pull_at_once() {
    let key = SwarmKey::generate().unwrap();
    // No periodic sync within the test: only the pull on a gap can repair b.
    let rarely = |config: &mut NetConfig| config.sync_interval = Duration::from_secs(3600);
    let a = TestNode::start_fresh(&key, rarely).await;
    let b = TestNode::start_fresh(&key, rarely).await;
    a.dial(&b).await;
    a.wait_for_peers(&[&b]).await;
    b.wait_for_peers(&[&a]).await;
    // The exchange every new connection starts is over before the write b misses.
    b.handle.sync_with(a.peer_id()).await.unwrap();
    a.handle.sync_with(b.peer_id()).await.unwrap();

    // A write whose gossip b never gets (lost in a partition), then one it gets.
    a.record("missed", 20.0);
    a.write("next", 21.0).await;
    let expected = sorted(vec![reading(&a, "missed"), reading(&a, "next")]);
    wait_until_identical(&[&a, &b], &expected).await;
    for node in [a, b] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_learn_the_rest_of_the_office_from_the_peers_they_have() {
    let key = SwarmKey::generate().unwrap();
    let hub = TestNode::start(&key).await;
    let b = TestNode::start(&key).await;
    let c = TestNode::start(&key).await;
    let d = TestNode::start(&key).await;
    // Each knows only the hub, as a node whose mDNS heard one answer does.
    for node in [&b, &c, &d] {
        node.dial(&hub).await;
    }
    hub.wait_for_peers(&[&b, &c, &d]).await;
    b.wait_for_peers(&[&hub, &c, &d]).await;
    c.wait_for_peers(&[&hub, &b, &d]).await;
    d.wait_for_peers(&[&hub, &b, &c]).await;
    for node in [hub, b, c, d] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_swarm_key_never_connects() {
    let office = SwarmKey::generate().unwrap();
    let other = SwarmKey::generate().unwrap();
    let a = TestNode::start(&office).await;
    let b = TestNode::start(&office).await;
    let intruder = TestNode::start(&other).await;
    intruder.dial(&a).await;
    a.dial(&intruder).await;
    a.dial(&b).await;
    a.wait_for_peers(&[&b]).await;
    b.wait_for_peers(&[&a]).await;

    let refused = |node: &TestNode| {
        let seen = node.seen.clone();
        move || {
            let seen = seen.clone();
            async move {
                let refusals = seen.lock().unwrap().refusals.clone();
                refusals.contains(&Refusal::PrivateNetwork).then_some(())
            }
        }
    };
    eventually("the office node saw the handshake fail", refused(&a)).await;
    eventually("the intruder saw the handshake fail", refused(&intruder)).await;
    assert!(intruder.handle.peers().await.unwrap().is_empty());
    let a_peers: Vec<PeerId> = a
        .handle
        .peers()
        .await
        .unwrap()
        .iter()
        .map(|info| info.peer)
        .collect();
    assert_eq!(a_peers, vec![b.peer_id()]);
    // Each failure is reported once per address, not once per attempt.
    let a_refusals = a.seen.lock().unwrap().refusals.len();
    assert!(a_refusals <= 2, "{a_refusals} refusals reported");
    for node in [a, b, intruder] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_gossip_delta_is_rejected_and_never_merged() {
    let key = SwarmKey::generate().unwrap();
    let honest = TestNode::start(&key).await;
    // The forger writes under another node's id, and answers sync with nothing, so only
    // gossip could carry the forged writes.
    let victim = NodeId::new(PeerId::random().to_base58()).unwrap();
    let mut forged_replica = Replica::new(victim.clone(), DEFAULT_RETENTION_MS);
    forged_replica.snapshot();
    let forger = TestNode::start_with(
        &key,
        Keypair::generate_ed25519(),
        forged_replica,
        SyncAnswers::Nothing,
    )
    .await;
    forger.dial(&honest).await;
    forger.wait_for_peers(&[&honest]).await;
    honest.wait_for_peers(&[&forger]).await;

    // Publish forged deltas (each new, so none is a duplicate) until one is rejected:
    // gossip is best effort, so one publish may not arrive.
    let deadline = Instant::now() + DEADLINE;
    for attempt in 0.. {
        assert!(Instant::now() < deadline, "no forged delta was rejected");
        let delta = forger.record("forged", 20.0 + f64::from(attempt));
        forger.handle.publish_now(delta).await.unwrap();
        let rejected = within(Duration::from_secs(1), || async {
            let seen = honest.seen.lock().unwrap();
            seen.misbehaved.contains(&forger.peer_id()).then_some(())
        })
        .await;
        if rejected.is_ok() {
            break;
        }
    }
    assert!(
        honest
            .readings()
            .iter()
            .all(|(writer, _)| *writer != victim.to_string()),
        "a forged write was merged: {:?}",
        honest.readings()
    );
    assert_eq!(honest.seen.lock().unwrap().gossip_deltas, 0);
    // Gossipsub penalised the forger.
    let info = honest.handle.peers().await.unwrap();
    let score = info[0].gossip_score.expect("peer scoring is on");
    assert!(score < 0.0, "forger's score is {score}");
    for node in [honest, forger] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_holds_a_write_it_is_handed_and_refuses_a_forged_one() {
    let key = SwarmKey::generate().unwrap();
    let writer = TestNode::start(&key).await;
    let alone = writer.record("desk", 20.0);
    let error = writer.handle.hold(alone).await.unwrap_err();
    assert!(matches!(error, NetError::NoHolder), "{error:?}");

    let holder = TestNode::start(&key).await;
    writer.dial(&holder).await;
    writer.wait_for_peers(&[&holder]).await;
    // Not published: only the hold request can carry it.
    let delta = writer.record("desk", 21.0);
    let held_by = writer.handle.hold(delta).await.unwrap();
    assert_eq!(held_by, holder.peer_id());
    assert_eq!(
        holder.readings(),
        [reading(&writer, "desk")],
        "merged before it was confirmed"
    );
    assert_eq!(holder.seen.lock().unwrap().gossip_deltas, 0);

    // A node that hands over another node's write is refused and reported.
    let victim = NodeId::new(PeerId::random().to_base58()).unwrap();
    let mut forged_replica = Replica::new(victim.clone(), DEFAULT_RETENTION_MS);
    forged_replica.snapshot();
    let forger = TestNode::start_with(
        &key,
        Keypair::generate_ed25519(),
        forged_replica,
        SyncAnswers::Nothing,
    )
    .await;
    forger.dial(&holder).await;
    // It learns the writer from the holder and connects to it too.
    forger.wait_for_peers(&[&holder, &writer]).await;
    let forged = forger.record("forged", 30.0);
    let error = forger.handle.hold(forged).await.unwrap_err();
    // Handed to the peer with the shortest round trip, whichever it is.
    let NetError::NotHeld(refuser) = error else {
        panic!("not refused: {error:?}");
    };
    let refuser = [&holder, &writer]
        .into_iter()
        .find(|node| node.peer_id() == refuser)
        .expect("refused by one of its peers");
    assert!(
        refuser
            .seen
            .lock()
            .unwrap()
            .misbehaved
            .contains(&forger.peer_id()),
        "the forger was reported"
    );
    for node in [&holder, &writer] {
        assert!(
            node.readings()
                .iter()
                .all(|(writer, _)| *writer != victim.to_string()),
            "a forged write was merged: {:?}",
            node.readings()
        );
    }
    for node in [writer, holder, forger] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_off_the_allow_list_is_refused() {
    let key = SwarmKey::generate().unwrap();
    let friend = Keypair::generate_ed25519();
    let friend_id = friend.public().to_peer_id();
    let a = TestNode::start_fresh(&key, |config| {
        config.allow_list = Some([friend_id].into_iter().collect());
    })
    .await;
    let mut replica = Replica::new(node_id(&friend_id), DEFAULT_RETENTION_MS);
    replica.snapshot();
    let b = TestNode::start_with(&key, friend, replica, SyncAnswers::Honest).await;
    let stranger = TestNode::start(&key).await;
    stranger.dial(&a).await;
    b.dial(&a).await;
    a.wait_for_peers(&[&b]).await;
    let seen = a.seen.clone();
    eventually("the stranger is refused", || async {
        let refusals = seen.lock().unwrap().refusals.clone();
        refusals.contains(&Refusal::NotAllowed).then_some(())
    })
    .await;
    let peers = a.handle.peers().await.unwrap();
    assert_eq!(peers.len(), 1, "{peers:?}");
    for node in [a, b, stranger] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_peer_is_redialled_when_it_drops() {
    let key = SwarmKey::generate().unwrap();
    let a = TestNode::start(&key).await;
    let a_address = a.address().await;
    let b = TestNode::start_fresh(&key, |config| config.bootstrap = vec![a_address]).await;
    b.wait_for_peers(&[&a]).await;
    assert!(a.handle.disconnect(b.peer_id()).await.unwrap());
    b.wait_for_peers(&[]).await;
    // B dials A again on its own, after the shortest backoff.
    b.wait_for_peers(&[&a]).await;
    for node in [a, b] {
        node.stop().await;
    }
}

/// A peer that went away is dialled again by the node that never dialled it: a partition
/// longer than a connection survives, or a reboot, ends in a new connection within seconds
/// rather than at mDNS's next question minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_peer_is_dialled_again_by_a_node_that_never_dialled_it() {
    let key = SwarmKey::generate().unwrap();
    let a = TestNode::start(&key).await;
    let b = TestNode::start(&key).await;
    let b_listens = b.handle.listen_addrs().await.unwrap();
    b.dial(&a).await;
    a.wait_for_peers(&[&b]).await;
    // A has B's listen addresses from identify only.
    eventually("A knows where B listens", || {
        let handle = a.handle.clone();
        let b_peer = b.peer_id();
        async move {
            let peers = handle.peers().await.unwrap();
            peers
                .iter()
                .any(|info| info.peer == b_peer && info.agent_version.is_some())
                .then_some(())
        }
    })
    .await;
    let (keypair, replica) = b.stop().await;
    a.wait_for_peers(&[]).await;
    // B comes back on the same address and dials nobody.
    let b = TestNode::start_configured(&key, keypair, replica, SyncAnswers::Honest, |config| {
        config.listen = b_listens;
    })
    .await;
    a.wait_for_peers(&[&b]).await;
    b.wait_for_peers(&[&a]).await;
    for node in [a, b] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_stack_runs_over_memory_addresses() {
    let memory = |config: &mut NetConfig| {
        config.transport = BaseTransport::TcpAndMemory;
        config.listen = vec!["/memory/0".parse().unwrap()];
    };
    let key = SwarmKey::generate().unwrap();
    let a = TestNode::start_fresh(&key, memory).await;
    let b = TestNode::start_fresh(&key, memory).await;
    let intruder = TestNode::start_fresh(&SwarmKey::generate().unwrap(), memory).await;
    assert!(matches!(
        a.address().await.iter().next(),
        Some(Protocol::Memory(_))
    ));
    a.write("desk", 21.0).await;
    b.write("window", 22.0).await;
    intruder.dial(&a).await;
    b.dial(&a).await;
    let expected = sorted(vec![reading(&a, "desk"), reading(&b, "window")]);
    wait_until_identical(&[&a, &b], &expected).await;
    let seen = intruder.seen.clone();
    eventually("the intruder is refused", || async {
        let refusals = seen.lock().unwrap().refusals.clone();
        refusals.contains(&Refusal::PrivateNetwork).then_some(())
    })
    .await;
    assert!(intruder.handle.peers().await.unwrap().is_empty());
    for node in [a, b, intruder] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_given_by_host_name_is_dialled_and_redialled() {
    let key = SwarmKey::generate().unwrap();
    let a = TestNode::start(&key).await;
    let Some(Protocol::Tcp(port)) = a.address().await.iter().nth(1) else {
        panic!("a listens on /ip4/127.0.0.1/tcp/PORT");
    };
    // `localhost` resolves on this machine without a DNS server: the resolver answers it
    // itself (RFC 6761), so the test sends nothing beyond loopback.
    let by_name =
        |name: &str| -> Multiaddr { format!("/{name}/localhost/tcp/{port}").parse().unwrap() };
    let b = TestNode::start_fresh(&key, |config| config.bootstrap = vec![by_name("dns4")]).await;
    let c = TestNode::start_fresh(&key, |config| config.bootstrap = vec![by_name("dns")]).await;
    b.wait_for_peers(&[&a]).await;
    c.wait_for_peers(&[&a]).await;
    // The redial goes through the name again.
    assert!(a.handle.disconnect(b.peer_id()).await.unwrap());
    b.wait_for_peers(&[]).await;
    b.wait_for_peers(&[&a]).await;
    for node in [a, b, c] {
        node.stop().await;
    }
}

/// What a node logs at warning level and above, as the default log level shows it.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Warnings {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Warnings {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

// One thread, so the capturing subscriber (set for this thread only) sees the net actor's
// task too.
#[tokio::test(flavor = "current_thread")]
async fn a_configured_peer_that_cannot_be_dialled_is_a_warning_naming_it() {
    let warnings = Warnings::default();
    let writer = warnings.clone();
    // Warnings as a node shows them, and this crate's debug lines to see the redials.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,officemesh=debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _scope = tracing::subscriber::set_default(subscriber);
    // A socket bound to a loopback port but not listening: a dial to it is refused at once,
    // and the port stays ours for the whole test.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    let refused = format!("/ip4/127.0.0.1/tcp/{closed_port}");
    // `.invalid` names never resolve (RFC 6761), and the resolver knows without asking a
    // server; the final dot keeps it from trying the system's search domains.
    let unknown = "/dns4/nowhere.invalid./tcp/7879";
    let quic = "/ip4/127.0.0.1/udp/7879/quic-v1";
    let key = SwarmKey::generate().unwrap();
    let node = TestNode::start_fresh(&key, |config| {
        config.bootstrap = [refused.as_str(), unknown, quic]
            .iter()
            .map(|address| address.parse().unwrap())
            .collect();
    })
    .await;
    let expected = [
        (refused.clone(), "refused"),
        (unknown.to_owned(), "no address found for the host name"),
        (quic.to_owned(), "QUIC"),
    ];
    let found = warnings.clone();
    let warned = within(DEADLINE, || {
        let lines = found.lines();
        let expected = expected.clone();
        async move {
            expected
                .iter()
                .all(|(address, reason)| {
                    lines.iter().any(|line| {
                        line.contains(" WARN ")
                            && line.contains(&format!("cannot dial peer {address}: "))
                            && line.contains(reason)
                    })
                })
                .then_some(())
        }
    })
    .await;
    assert!(
        warned.is_ok(),
        "no warning naming each of {expected:?} with its reason in: {:#?}",
        warnings.lines()
    );
    // Each is said once, however often the redial tries: wait for the second failed dial
    // of both redialled addresses.
    let count =
        |lines: &[String], needle: &str| lines.iter().filter(|line| line.contains(needle)).count();
    eventually("a second dial of each redialled address", || {
        let lines = found.lines();
        let (refused, unknown) = (refused.clone(), unknown.to_owned());
        async move {
            [refused, unknown]
                .iter()
                .all(|address| {
                    count(
                        &lines,
                        &format!("dial of a configured peer failed address={address} "),
                    ) >= 2
                })
                .then_some(())
        }
    })
    .await;
    let lines = warnings.lines();
    for (address, _) in &expected {
        let warned = count(&lines, &format!("cannot dial peer {address}: "));
        assert_eq!(warned, 1, "{address}: {lines:#?}");
    }
    node.stop().await;
    drop(closed);
}
