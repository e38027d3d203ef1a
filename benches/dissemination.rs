//! How fast readings reach every node, and what they cost on the wire, over real libp2p
//! with 100 ms of latency on every link, under an office's workload.
//!
//! Run with `cargo bench --features bench --bench dissemination`. Each run starts N full nodes
//! (store, office actor, net actor, HTTP API) in this process, on `/ip4/127.0.0.1/tcp/0`, mDNS off.
//! Node i dials up to 3 earlier nodes drawn with a fixed seed, so the graph is connected but not
//! complete. Every link carries [`LinkDelay`] of 100 ms one way: each chunk a node writes to a
//! socket is written 100 ms later, in order.
//!
//! Workload: every node has SENSORS (10) sensors, all read on one tick every TICK (10 s),
//! each node at its own phase (random, fixed seed); a tick posts the node's 10 readings one
//! after the other with `POST /api/readings` over HTTP on 127.0.0.1. At 25 nodes that is
//! 25 readings a second, in 2.5 bursts of 10.
//!
//! Once every node sees its connected peers subscribed and enough of them in its mesh (and
//! 3 s more), an idle period of IDLE (20 s, no readings) measures the background, then the
//! measuring period of PERIOD (40 s) runs the workload. Every node's state is watched
//! (`OfficeHandle::subscribe`); a reading's latency runs from just before its POST until
//! the last node holds it (or a newer value of the same sensor).
//!
//! Modes, each on a fresh office: 1 s batching (the default `publish_interval`: a tick's
//! readings go out in one gossip message, or two if the tick straddles a publish), and
//! immediate publish (`publish_interval` zero: every reading is published as it is written,
//! as alerts and chat-driven writes are). Meshes: gossipsub with libp2p's defaults (D = 6,
//! between 5 and 12) and thinner ones; see `GossipTuning`.
//!
//! What is counted, in the measuring period, over every link of the office:
//! - messages: libp2p protocol messages sent to a peer, counted above yamux by the bench-only
//!   wrapper `net::counting::Counted`: each flush or close of a substream after written
//!   bytes is one message (one gossipsub RPC: a publish or forward, an IHAVE, IWANT, GRAFT,
//!   PRUNE or IDONTWANT; one sync request or response; one identify; one ping or pong).
//!   The multistream-select negotiation that opens a substream is counted apart.
//!   Messages per reading = every message in the period (background included) / readings
//!   posted in it;
//! - link writes and bytes: what pnet handed to the delayed links (encrypted: pnet, Noise and
//!   yamux framing included, yamux window updates too; TCP/IP headers not);
//! - idle: the same counts per second in the idle period, reported separately.
//!
//! Environment, for cheaper runs: OFFICEMESH_BENCH_NODES (default "5,25"),
//! OFFICEMESH_BENCH_MESH (mesh degrees, default "6,4,3"), OFFICEMESH_BENCH_MODES (default
//! "immediate,batched"), OFFICEMESH_BENCH_PERIOD_S (40), OFFICEMESH_BENCH_IDLE_S (20).

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use officemesh::{
    config::Config,
    net::{GossipTuning, LinkDelay, MessageCounts, MessageKind, SwarmKey},
    node::{self, RunningNode},
    state::{NodeId, Reading, Room},
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const LINK_DELAY: Duration = Duration::from_millis(100);
const DIALS_PER_NODE: usize = 3;
const SENSORS: usize = 10;
const TICK: Duration = Duration::from_secs(10);
/// Longer than gossipsub's prune backoff (60 s): in a thin mesh a node pruned by all its
/// peers at start-up waits that long before it may graft again.
const MESH_DEADLINE: Duration = Duration::from_secs(120);
/// A reading not everywhere this long after its POST counts as lost.
const VISIBLE_DEADLINE: Duration = Duration::from_secs(15);
const SEED: u64 = 0x0ff1ce;

/// A small xorshift generator: fixed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Immediate,
    Batched,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Immediate => "immediate",
            Mode::Batched => "1 s batching",
        }
    }

    fn publish_interval(self) -> Duration {
        match self {
            Mode::Immediate => Duration::ZERO,
            Mode::Batched => Duration::from_secs(1),
        }
    }
}

/// The meshes compared: libp2p's default, and thinner targets D (with D_lo = D - 1).
/// D_hi stays at 12 in every one: a node whose mesh is full refuses the GRAFT of a peer
/// that dialed it, and in an office where some nodes are dialed by many (the first ones
/// here, every node with mDNS) a low D_hi left late nodes out of the mesh for good.
fn tuning(degree: usize) -> Result<GossipTuning> {
    if !(2..=6).contains(&degree) {
        bail!("no mesh of degree {degree} to compare (2 to 6)");
    }
    if degree == 6 {
        return Ok(GossipTuning::LIBP2P_DEFAULT);
    }
    Ok(GossipTuning {
        mesh_n: degree,
        mesh_n_low: degree - 1,
        mesh_n_high: GossipTuning::LIBP2P_DEFAULT.mesh_n_high,
        gossip_lazy: degree,
    })
}

struct Plan {
    nodes: usize,
    degree: usize,
    mode: Mode,
    period: Duration,
    idle: Duration,
}

struct Outcome {
    plan_nodes: usize,
    degree: usize,
    mode: Mode,
    readings: usize,
    /// Per reading: until every node has it.
    all: Vec<Duration>,
    /// Per reading and receiving node.
    each: Vec<Duration>,
    lost: usize,
    /// Counted in the measuring period.
    messages: MessageCounts,
    writes: u64,
    bytes: u64,
    /// Counted in the idle period, per second.
    idle_messages: f64,
    idle_writes: f64,
    idle_bytes: f64,
    period: Duration,
    mesh_ready: Duration,
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

fn env_seconds(name: &str, default: u64) -> Result<Duration> {
    match std::env::var(name) {
        Ok(value) => Ok(Duration::from_secs(
            value.parse().with_context(|| format!("{name}={value}"))?,
        )),
        Err(_) => Ok(Duration::from_secs(default)),
    }
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let period = env_seconds("OFFICEMESH_BENCH_PERIOD_S", 40)?;
    let idle = env_seconds("OFFICEMESH_BENCH_IDLE_S", 20)?;
    let mut plans = Vec::new();
    for nodes in env_list("OFFICEMESH_BENCH_NODES", "5,25") {
        let nodes: usize = nodes.parse().context("OFFICEMESH_BENCH_NODES")?;
        for mode in env_list("OFFICEMESH_BENCH_MODES", "immediate,batched") {
            let mode = match mode.as_str() {
                "immediate" => Mode::Immediate,
                "batched" => Mode::Batched,
                other => bail!("OFFICEMESH_BENCH_MODES: unknown mode {other}"),
            };
            for degree in env_list("OFFICEMESH_BENCH_MESH", "6,4,3") {
                let degree: usize = degree.parse().context("OFFICEMESH_BENCH_MESH")?;
                tuning(degree)?;
                plans.push(Plan {
                    nodes,
                    degree,
                    mode,
                    period,
                    idle,
                });
            }
        }
    }
    let mut outcomes = Vec::new();
    for plan in &plans {
        let outcome = runtime.block_on(run(plan))?;
        print_kinds(&outcome);
        print_row(&outcome);
        outcomes.push(outcome);
    }
    println!(
        "\nSummary ({SENSORS} sensors per node read every {} s, {} s measured after {} s idle, 100 ms per link one way):\n",
        TICK.as_secs(),
        period.as_secs(),
        idle.as_secs()
    );
    println!(
        "| nodes | D | mode | readings | median all ms | p99 all ms | max all ms | median per node ms | lost | msgs/reading | gossip msgs/reading | IHAVE+IWANT/reading | other msgs/reading | negotiations/reading | link writes/reading | bytes/reading | idle msgs/s | idle bytes/s |"
    );
    println!(
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for outcome in &outcomes {
        print_row(outcome);
    }
    Ok(())
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The value at `fraction` of the sorted values (0.5: the median).
fn quantile(values: &[Duration], fraction: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1);
    sorted[index]
}

fn print_row(outcome: &Outcome) {
    let readings = outcome.readings.max(1) as f64;
    let per = |count: u64| count as f64 / readings;
    let messages = &outcome.messages;
    let gossip = messages.of(MessageKind::GossipMessage);
    let lazy = messages.of(MessageKind::GossipIhave) + messages.of(MessageKind::GossipIwant);
    let total = messages.protocol_messages();
    println!(
        "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.0} |",
        outcome.plan_nodes,
        outcome.degree,
        outcome.mode.name(),
        outcome.readings,
        millis(quantile(&outcome.all, 0.5)),
        millis(quantile(&outcome.all, 0.99)),
        millis(outcome.all.iter().max().copied().unwrap_or_default()),
        millis(quantile(&outcome.each, 0.5)),
        outcome.lost,
        per(total),
        per(gossip),
        per(lazy),
        per(total - gossip - lazy),
        per(messages.of(MessageKind::Negotiation)),
        per(outcome.writes),
        per(outcome.bytes),
        outcome.idle_messages,
        outcome.idle_bytes,
    );
}

/// The run's messages by kind, and the idle rates, on stderr.
fn print_kinds(outcome: &Outcome) {
    let readings = outcome.readings.max(1) as f64;
    let kinds: Vec<String> = MessageKind::ALL
        .iter()
        .filter(|kind| outcome.messages.of(**kind) > 0)
        .map(|kind| {
            format!(
                "{} {:.2}",
                kind.name(),
                outcome.messages.of(*kind) as f64 / readings
            )
        })
        .collect();
    eprintln!(
        "{} nodes, D = {}, {}: {} readings in {} s; per reading: {}; idle per second: {:.1} messages, {:.1} link writes, {:.0} bytes; mesh formed after {:.1} s",
        outcome.plan_nodes,
        outcome.degree,
        outcome.mode.name(),
        outcome.readings,
        outcome.period.as_secs(),
        kinds.join(", "),
        outcome.idle_messages,
        outcome.idle_writes,
        outcome.idle_bytes,
        outcome.mesh_ready.as_secs_f64(),
    );
}

async fn run(plan: &Plan) -> Result<Outcome> {
    let dir = std::env::temp_dir().join(format!(
        "officemesh-bench-dissemination-{}-{}-{}-{}",
        std::process::id(),
        plan.nodes,
        plan.degree,
        plan.mode.publish_interval().as_millis()
    ));
    std::fs::create_dir_all(&dir)?;
    let shutdown = CancellationToken::new();
    let link = LinkDelay::new(LINK_DELAY);
    let result = measure(plan, &dir, &link, &shutdown).await;
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// One reading posted, and when each node first held it.
struct Posting {
    sent: Instant,
    value: f64,
    seen: Vec<Option<Instant>>,
}

/// Every posting, and the open ones by (writer, sensor) index.
#[derive(Default)]
struct Tracker {
    postings: Vec<Posting>,
    open: HashMap<(usize, usize), Vec<usize>>,
}

async fn measure(
    plan: &Plan,
    dir: &std::path::Path,
    link: &LinkDelay,
    shutdown: &CancellationToken,
) -> Result<Outcome> {
    let count = plan.nodes;
    let key_path = dir.join("swarm.key");
    std::fs::write(&key_path, SwarmKey::generate()?.to_file())?;
    let token = "bench-token".to_owned();
    let gossip = tuning(plan.degree)?;
    let mut rng = Rng(SEED);
    let mut running: Vec<RunningNode> = Vec::new();
    let mut addresses: Vec<String> = Vec::new();
    let mut rooms = Vec::new();
    for index in 0..count {
        let mut earlier: Vec<usize> = (0..index).collect();
        let mut peers = Vec::new();
        while peers.len() < DIALS_PER_NODE && !earlier.is_empty() {
            let pick = earlier.swap_remove(rng.below(earlier.len()));
            peers.push(addresses[pick].to_string());
        }
        let room = format!("room {index}");
        let mut config = Config::from_toml("")?;
        config.node.name = Some(officemesh::state::NodeName::new(&format!("bench-{index}"))?);
        config.node.room = Room::new(&room)?;
        config.node.data_dir = dir.join(format!("node-{index}"));
        config.network.mdns = false;
        // The office workload below is the only traffic measured: no host sensors, no
        // network-map rows from this machine's neighbour table.
        config.sensors.auto_detect = false;
        config.presence.enabled = false;
        config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.network.peers = peers;
        config.network.swarm_key_file = Some(PathBuf::from(&key_path));
        config.http.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        config.http.api_token = Some(token.clone());
        config.network.publish_interval = plan.mode.publish_interval();
        config.network.link_delay = Some(link.clone());
        config.network.gossip = gossip;
        let node = node::start(config, shutdown.clone())
            .await
            .with_context(|| format!("node {index}"))?;
        addresses.push(node.dial_address().await?);
        rooms.push(room);
        running.push(node);
    }
    let ids: HashMap<NodeId, usize> = running
        .iter()
        .enumerate()
        .map(|(index, node)| (node.office.view().id().clone(), index))
        .collect();

    let started = Instant::now();
    wait_for_mesh(&running, gossip.mesh_n_low).await?;
    let mesh_ready = started.elapsed();
    // Let the first syncs and heartbeats pass.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let idle_start = (link.counters.messages(), link.counters.get());
    tokio::time::sleep(plan.idle).await;
    let idle_end = (link.counters.messages(), link.counters.get());
    let idle_seconds = plan.idle.as_secs_f64();

    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let watching = CancellationToken::new();
    let mut watchers = JoinSet::new();
    for (index, node) in running.iter().enumerate() {
        watchers.spawn(watch(
            index,
            node.office.subscribe(),
            ids.clone(),
            tracker.clone(),
            watching.clone(),
        ));
    }

    // Each node's ticks in the period, at its own phase, in time order.
    let mut ticks: Vec<(Duration, usize)> = Vec::new();
    for node in 0..count {
        let mut at = Duration::from_millis(rng.below(TICK.as_millis() as usize) as u64);
        while at < plan.period {
            ticks.push((at, node));
            at += TICK;
        }
    }
    ticks.sort();
    let mut tick_of_node = vec![0usize; count];
    let period_start = tokio::time::Instant::now();
    let counted_start = (link.counters.messages(), link.counters.get());
    for (at, writer) in ticks {
        tokio::time::sleep_until(period_start + at).await;
        tick_of_node[writer] += 1;
        let value = 15.0 + tick_of_node[writer] as f64 / 100.0;
        for sensor in 0..SENSORS {
            {
                let mut tracker = tracker.lock().expect("tracker");
                let index = tracker.postings.len();
                tracker.postings.push(Posting {
                    sent: Instant::now(),
                    value,
                    seen: vec![None; count],
                });
                tracker
                    .open
                    .entry((writer, sensor))
                    .or_default()
                    .push(index);
            }
            post_reading(
                &running[writer],
                &token,
                &format!("bench-{sensor}"),
                &rooms[writer],
                value,
            )
            .await?;
        }
    }
    tokio::time::sleep_until(period_start + plan.period).await;
    let counted_end = (link.counters.messages(), link.counters.get());

    // The last readings still spreading: wait for them, not counted.
    let deadline = Instant::now() + VISIBLE_DEADLINE;
    while Instant::now() < deadline
        && !tracker
            .lock()
            .expect("tracker")
            .postings
            .iter()
            .all(|posting| posting.seen.iter().all(Option::is_some))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watching.cancel();
    while watchers.join_next().await.is_some() {}

    let tracker = tracker.lock().expect("tracker");
    let mut all = Vec::new();
    let mut each = Vec::new();
    let mut lost = 0;
    for posting in &tracker.postings {
        let delays: Vec<Duration> = posting
            .seen
            .iter()
            .flatten()
            .map(|seen| seen.saturating_duration_since(posting.sent))
            .collect();
        let slowest = delays.iter().max().copied().unwrap_or_default();
        if delays.len() < count || slowest > VISIBLE_DEADLINE {
            lost += 1;
        } else {
            all.push(slowest);
        }
        each.extend(delays);
    }
    let idle_messages = idle_end.0.since(&idle_start.0);
    Ok(Outcome {
        plan_nodes: count,
        degree: plan.degree,
        mode: plan.mode,
        readings: tracker.postings.len(),
        all,
        each,
        lost,
        messages: counted_end.0.since(&counted_start.0),
        writes: counted_end.1.0 - counted_start.1.0,
        bytes: counted_end.1.1 - counted_start.1.1,
        idle_messages: idle_messages.protocol_messages() as f64 / idle_seconds,
        idle_writes: (idle_end.1.0 - idle_start.1.0) as f64 / idle_seconds,
        idle_bytes: (idle_end.1.1 - idle_start.1.1) as f64 / idle_seconds,
        period: plan.period,
        mesh_ready,
    })
}

/// Marks, at every change of `node`'s state, the open postings it now holds (their value,
/// or a newer one of the same sensor).
async fn watch(
    node: usize,
    mut states: tokio::sync::watch::Receiver<Arc<officemesh::state::Replica>>,
    ids: HashMap<NodeId, usize>,
    tracker: Arc<Mutex<Tracker>>,
    stop: CancellationToken,
) {
    loop {
        let state = states.borrow_and_update().clone();
        let now = Instant::now();
        {
            let mut tracker = tracker.lock().expect("tracker");
            let Tracker { postings, open } = &mut *tracker;
            for (key, reading) in state.latest::<Reading>() {
                let Some(writer) = ids.get(&key.node) else {
                    continue;
                };
                let Some(sensor) = key
                    .sensor
                    .as_str()
                    .strip_prefix("bench-")
                    .and_then(|sensor| sensor.parse::<usize>().ok())
                else {
                    continue;
                };
                let Some(indices) = open.get_mut(&(*writer, sensor)) else {
                    continue;
                };
                indices.retain(|index| {
                    let posting = &mut postings[*index];
                    if posting.value <= reading.value && posting.seen[node].is_none() {
                        posting.seen[node] = Some(now);
                    }
                    // Open until every node has it.
                    posting.seen.iter().any(Option::is_none)
                });
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = states.changed() => if changed.is_err() { return },
        }
    }
}

/// Every node sees each connected peer subscribed, and has at least min(peers, mesh_n_low)
/// in its mesh (a node with fewer peers meshes with all).
async fn wait_for_mesh(nodes: &[RunningNode], mesh_n_low: usize) -> Result<()> {
    let deadline = Instant::now() + MESH_DEADLINE;
    loop {
        let mut ready = true;
        for node in nodes {
            let peers = node.net.peers().await?;
            let subscribed = peers.iter().filter(|peer| peer.subscribed).count();
            let meshed = peers.iter().filter(|peer| peer.in_mesh).count();
            if peers.is_empty() || subscribed < peers.len() || meshed < peers.len().min(mesh_n_low)
            {
                ready = false;
                break;
            }
        }
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the gossip mesh did not form within {MESH_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /api/readings` over a plain HTTP/1.1 connection; returns once the node answered
/// 201 (the write is in its replica and on its way to the network).
async fn post_reading(
    node: &RunningNode,
    token: &str,
    sensor: &str,
    room: &str,
    value: f64,
) -> Result<()> {
    let body = format!(
        r#"{{"sensor":"{sensor}","room":"{room}","quantity":"temperature","value":{value},"unit":"°C"}}"#
    );
    let request = format!(
        "POST /api/readings HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        node.http,
        body.len()
    );
    // A blocking client (tokio's io-util is not a dependency); loopback answers at once.
    let response = tokio::task::block_in_place(|| -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(node.http)?;
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(response)
    })?;
    let response = String::from_utf8_lossy(&response);
    if !response.starts_with("HTTP/1.1 201") {
        bail!(
            "POST /api/readings failed: {}",
            response.lines().next().unwrap_or("")
        );
    }
    Ok(())
}
