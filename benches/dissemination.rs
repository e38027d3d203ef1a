//! How fast a reading reaches every node, and what it costs on the wire, over real libp2p
//! with 100 ms of latency on every link.
//!
//! Run with `cargo bench --bench dissemination`. For N in {5, 25}: N full nodes (store,
//! office actor, net actor, HTTP API) in this process, on `/ip4/127.0.0.1/tcp/0`, mDNS off.
//! Node i dials up to 3 earlier nodes drawn with a fixed seed, so the graph is connected but
//! not complete. Every link carries [`LinkDelay`] of 100 ms one way: each chunk a node writes
//! to a socket is written 100 ms later, in order.
//!
//! Once every node sees its connected peers subscribed and in its mesh (and 3 s more), it
//! posts READINGS (20) readings one after the other, each to a
//! random node with `POST /api/readings` over HTTP on 127.0.0.1, and polls every node's
//! `office.view()` every 2 ms until the reading is there. Latency: from just before the POST
//! is sent until the last node has it. A reading is posted once the previous one is
//! everywhere and its window is over, after a random pause of 0 to 1 s (so its place in the
//! publish interval is random) and an idle window (below).
//!
//! Two modes, each on a fresh office: 1 s batching (the default `publish_interval`; a
//! reading is not urgent) and immediate publish, approximated by a 10 ms publish interval
//! (readings never take the urgent path), which adds at most 10 ms.
//!
//! Messages and bytes: what `LinkCounters` counted on every link of the office in a window
//! of WINDOW (1.5 s) from the POST (longer if the reading took longer to reach everyone),
//! averaged over the readings. A "message" is one write handed to the link by pnet: usually
//! one flushed Noise frame, carrying one libp2p protocol message or a batch of them; both
//! directions of every link count. Everything counts: gossipsub publishes and forwards,
//! IHAVE/IWANT, heartbeat GRAFTs, pings, digest syncs, node heartbeats, yamux window
//! updates. Before each reading an idle window of the same length (no reading) measures the
//! background; the "net" columns subtract it (scaled to the reading window's length), so
//! they estimate what the reading itself cost. Background traffic is bursty (syncs every
//! 10 s), so the net figures carry noise of a few messages per reading.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use officemesh::{
    config::Config,
    net::{LinkDelay, SwarmKey},
    node::{self, RunningNode},
    state::{NodeId, Reading, Room},
};
use tokio_util::sync::CancellationToken;

const LINK_DELAY: Duration = Duration::from_millis(100);
const READINGS: usize = 20;
const DIALS_PER_NODE: usize = 3;
const MESH_DEADLINE: Duration = Duration::from_secs(60);
const VISIBLE_DEADLINE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(2);
/// The counting window of a reading, and of the idle window before it: long enough for a
/// batched reading to reach 25 nodes (about 1.1 s at worst here).
const WINDOW: Duration = Duration::from_millis(1500);
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

struct Outcome {
    nodes: usize,
    mode: &'static str,
    /// Per reading: until every node has it.
    all: Vec<Duration>,
    /// Per reading and receiving node.
    each: Vec<Duration>,
    lost: usize,
    /// Per reading, counted on every link from the POST until WINDOW later (or until the
    /// reading is everywhere, if later).
    writes: f64,
    bytes: f64,
    /// Per reading, in the idle window of the same length just before it.
    idle_writes: f64,
    idle_bytes: f64,
    mesh_ready: Duration,
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut outcomes = Vec::new();
    for nodes in [5, 25] {
        for (mode, interval) in [
            ("immediate (10 ms publish)", Duration::from_millis(10)),
            ("1 s batching", Duration::from_secs(1)),
        ] {
            let outcome = runtime.block_on(run(nodes, mode, interval))?;
            print_row(&outcome);
            outcomes.push(outcome);
        }
    }
    println!("\nSummary ({READINGS} readings per run, 100 ms per link one way):\n");
    println!(
        "| nodes | mode | median all ms | max all ms | median per node ms | lost | msgs/reading | bytes/reading | idle msgs/window | net msgs/reading | net bytes/reading |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for outcome in &outcomes {
        print_row(outcome);
    }
    Ok(())
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[sorted.len() / 2]
}

fn print_row(outcome: &Outcome) {
    let max = outcome.all.iter().max().copied().unwrap_or_default();
    println!(
        "| {} | {} | {:.0} | {:.0} | {:.0} | {} | {:.1} | {:.0} | {:.1} | {:.1} | {:.0} |",
        outcome.nodes,
        outcome.mode,
        millis(median(&outcome.all)),
        millis(max),
        millis(median(&outcome.each)),
        outcome.lost,
        outcome.writes,
        outcome.bytes,
        outcome.idle_writes,
        outcome.writes - outcome.idle_writes,
        outcome.bytes - outcome.idle_bytes,
    );
    eprintln!(
        "  (mesh formed after {:.1} s)",
        outcome.mesh_ready.as_secs_f64()
    );
}

async fn run(count: usize, mode: &'static str, publish_interval: Duration) -> Result<Outcome> {
    let dir = std::env::temp_dir().join(format!(
        "officemesh-bench-dissemination-{}-{count}-{}",
        std::process::id(),
        publish_interval.as_millis()
    ));
    std::fs::create_dir_all(&dir)?;
    let shutdown = CancellationToken::new();
    let link = LinkDelay::new(LINK_DELAY);
    let result = measure(count, mode, publish_interval, &dir, &link, &shutdown).await;
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(
    count: usize,
    mode: &'static str,
    publish_interval: Duration,
    dir: &std::path::Path,
    link: &LinkDelay,
    shutdown: &CancellationToken,
) -> Result<Outcome> {
    let key_path = dir.join("swarm.key");
    std::fs::write(&key_path, SwarmKey::generate()?.to_file())?;
    let token = "bench-token".to_owned();
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
        config.name = Some(officemesh::state::NodeName::new(&format!("bench-{index}"))?);
        config.room = Room::new(&room)?;
        config.data_dir = dir.join(format!("node-{index}"));
        config.mdns = false;
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.peers = peers;
        config.swarm_key_file = Some(PathBuf::from(&key_path));
        config.http_listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        config.api_token = Some(token.clone());
        config.publish_interval = publish_interval;
        config.link_delay = Some(link.clone());
        let node = node::start(config, shutdown.clone())
            .await
            .with_context(|| format!("node {index}"))?;
        addresses.push(node.dial_address().await?);
        rooms.push(room);
        running.push(node);
    }

    let started = Instant::now();
    wait_for_mesh(&running).await?;
    let mesh_ready = started.elapsed();
    // Let the first syncs and heartbeats pass.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut all = Vec::new();
    let mut each = Vec::new();
    let mut lost = 0;
    let (mut writes, mut bytes, mut idle_writes, mut idle_bytes) = (0.0, 0.0, 0.0, 0.0);
    for k in 0..READINGS {
        // A random phase against the publish interval, not counted.
        tokio::time::sleep(Duration::from_millis(rng.below(1000) as u64)).await;
        // The idle window just before the reading: the background to subtract.
        let (writes_0, bytes_0) = link.counters.get();
        tokio::time::sleep(WINDOW).await;
        let (writes_1, bytes_1) = link.counters.get();

        let writer = rng.below(count);
        let sensor = format!("bench-{k}");
        let value = 20.0 + k as f64 / 100.0;
        let writer_id = running[writer].office.view().id().clone();
        let sent = Instant::now();
        post_reading(&running[writer], &token, &sensor, &rooms[writer], value).await?;
        let mut seen: Vec<Option<Duration>> = vec![None; count];
        loop {
            for (index, node) in running.iter().enumerate() {
                if seen[index].is_none() && has(node, &writer_id, &sensor, value) {
                    seen[index] = Some(sent.elapsed());
                }
            }
            if seen.iter().all(Option::is_some) || sent.elapsed() > VISIBLE_DEADLINE {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        if let Some(rest) = WINDOW.checked_sub(sent.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        let busy = sent.elapsed();
        let (writes_2, bytes_2) = link.counters.get();
        let scale = busy.as_secs_f64() / WINDOW.as_secs_f64();
        writes += (writes_2 - writes_1) as f64;
        bytes += (bytes_2 - bytes_1) as f64;
        idle_writes += (writes_1 - writes_0) as f64 * scale;
        idle_bytes += (bytes_1 - bytes_0) as f64 * scale;

        if seen.iter().all(Option::is_some) {
            all.push(seen.iter().flatten().max().copied().unwrap_or_default());
        } else {
            lost += 1;
        }
        each.extend(
            seen.iter()
                .enumerate()
                .filter(|(index, _)| *index != writer)
                .filter_map(|(_, seen)| *seen),
        );
    }
    let readings = READINGS as f64;
    Ok(Outcome {
        nodes: count,
        mode,
        all,
        each,
        lost,
        writes: writes / readings,
        bytes: bytes / readings,
        idle_writes: idle_writes / readings,
        idle_bytes: idle_bytes / readings,
        mesh_ready,
    })
}

fn has(node: &RunningNode, writer: &NodeId, sensor: &str, value: f64) -> bool {
    node.office
        .view()
        .latest::<Reading>()
        .any(|(key, reading)| {
            key.node == *writer && key.sensor.as_str() == sensor && reading.value == value
        })
}

/// Every node sees each connected peer subscribed, and has at least min(peers, 4) in its
/// mesh (gossipsub's mesh_n_low is 4 or 5; a node with fewer peers meshes with all).
async fn wait_for_mesh(nodes: &[RunningNode]) -> Result<()> {
    let deadline = Instant::now() + MESH_DEADLINE;
    loop {
        let mut ready = true;
        for node in nodes {
            let peers = node.net.peers().await?;
            let subscribed = peers.iter().filter(|peer| peer.subscribed).count();
            let meshed = peers.iter().filter(|peer| peer.in_mesh).count();
            if peers.is_empty() || subscribed < peers.len() || meshed < peers.len().min(4) {
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
