//! Resident memory of one node: idle, then with 10 peers and 100 sensors in its state.
//!
//! Run with `cargo bench --bench memory`. The measured node runs alone in a child process
//! (this bench binary started again with `OFFICEMESH_MEMORY_CHILD` set), started with
//! `node::start` exactly as `officemesh up` starts it: store, office actor, net actor with
//! gossipsub, HTTP API; no simulated sensors, mDNS off, TCP on 127.0.0.1. The child reads
//! its own `VmRSS` and `VmHWM` from `/proc/self/status` and prints them every 500 ms with its
//! peer and reading counts, so nothing of the peers' memory is counted.
//!
//! 1. Idle: the child alone, 5 s after start.
//! 2. Loaded: this process starts 10 nodes that dial the child; each writes 10 readings
//!    (10 sensors), so the child's state holds 100 sensors' readings, plus the 10 peers'
//!    heartbeats. Measured once the child has all 100 and 10 peers, after 15 s more (a sync
//!    round with peers), i.e. steady state with the connections open.

use std::{
    io::{BufRead, BufReader},
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use officemesh::{
    config::Config,
    net::SwarmKey,
    node::{self, RunningNode},
    office::Write,
    state::{NodeName, Quantity, Reading, Room, SensorId},
};
use tokio_util::sync::CancellationToken;

const CHILD_ENV: &str = "OFFICEMESH_MEMORY_CHILD";
const PEERS: usize = 10;
const SENSORS_PER_PEER: usize = 10;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return runtime.block_on(child(PathBuf::from(dir)));
    }
    let dir = std::env::temp_dir().join(format!("officemesh-bench-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = runtime.block_on(parent(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn config(dir: &Path, name: &str, peers: Vec<String>) -> Result<Config> {
    let mut config = Config::from_toml("")?;
    config.node.name = Some(NodeName::new(name)?);
    config.node.room = Room::new(&format!("room {name}"))?;
    config.node.data_dir = dir.join(name);
    config.network.mdns = false;
    // The state the bench builds is the only state measured.
    config.sensors.auto_detect = false;
    config.presence.enabled = false;
    config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.network.peers = peers;
    config.network.swarm_key_file = Some(dir.join("swarm.key"));
    config.http.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    config.http.api_token = Some("bench-token".into());
    Ok(config)
}

/// The measured node: prints its address, then a status line every 500 ms.
async fn child(dir: PathBuf) -> Result<()> {
    let shutdown = CancellationToken::new();
    let node = node::start(config(&dir, "measured", Vec::new())?, shutdown.clone()).await?;
    let address = node.dial_address().await?;
    println!("address {address}");
    loop {
        let (rss, hwm) = memory();
        let peers = node.net.peers().await?.len();
        let readings = node.office.view().latest::<Reading>().count();
        println!("status rss_kb={rss} hwm_kb={hwm} peers={peers} readings={readings}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// (VmRSS, VmHWM) in kB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Status {
    rss_kb: u64,
    hwm_kb: u64,
    peers: usize,
    readings: usize,
}

fn parse_status(line: &str) -> Option<Status> {
    let rest = line.strip_prefix("status ")?;
    let mut status = Status {
        rss_kb: 0,
        hwm_kb: 0,
        peers: 0,
        readings: 0,
    };
    for field in rest.split_whitespace() {
        let (name, value) = field.split_once('=')?;
        match name {
            "rss_kb" => status.rss_kb = value.parse().ok()?,
            "hwm_kb" => status.hwm_kb = value.parse().ok()?,
            "peers" => status.peers = value.parse().ok()?,
            "readings" => status.readings = value.parse().ok()?,
            _ => {}
        }
    }
    Some(status)
}

/// Reads status lines (on a blocking thread) until `done` holds, or the deadline.
async fn wait_status(
    lines: &mut std::io::Lines<BufReader<ChildStdout>>,
    deadline: Duration,
    done: impl Fn(&Status) -> bool,
) -> Result<Status> {
    let end = Instant::now() + deadline;
    loop {
        let line = tokio::task::block_in_place(|| lines.next()).context("the child stopped")??;
        if let Some(status) = parse_status(&line)
            && (done(&status) || Instant::now() > end)
        {
            return Ok(status);
        }
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn parent(dir: &Path) -> Result<()> {
    std::fs::write(dir.join("swarm.key"), SwarmKey::generate()?.to_file())?;
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe()?)
            .env(CHILD_ENV, dir)
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().context("the child stopped")??;
    let Some(address) = first.strip_prefix("address ") else {
        bail!("unexpected first line from the child: {first}");
    };
    let address = address.to_owned();
    let started = Instant::now();
    let idle = wait_status(&mut lines, Duration::from_secs(60), |_| {
        started.elapsed() >= Duration::from_secs(5)
    })
    .await?;

    let shutdown = CancellationToken::new();
    let mut peers: Vec<RunningNode> = Vec::new();
    for index in 0..PEERS {
        let node = node::start(
            config(dir, &format!("peer-{index}"), vec![address.clone()])?,
            shutdown.clone(),
        )
        .await?;
        peers.push(node);
    }
    let wanted = PEERS * SENSORS_PER_PEER;
    let connected = wait_status(&mut lines, Duration::from_secs(60), |status| {
        status.peers >= PEERS
    })
    .await?;
    if connected.peers < PEERS {
        bail!("only {} peers connected", connected.peers);
    }
    for (index, node) in peers.iter().enumerate() {
        for sensor in 0..SENSORS_PER_PEER {
            node.office
                .write(Write::Reading {
                    sensor: SensorId::new(&format!("sensor-{index}-{sensor}"))?,
                    room: Room::new(&format!("room peer-{index}"))?,
                    quantity: Quantity::Temperature,
                    value: 21.0,
                    unit: "°C".into(),
                })
                .await?;
        }
    }
    let loaded = wait_status(&mut lines, Duration::from_secs(60), |status| {
        status.readings >= wanted
    })
    .await?;
    if loaded.readings < wanted {
        bail!("only {} of {wanted} readings arrived", loaded.readings);
    }
    let full = Instant::now();
    let steady = wait_status(&mut lines, Duration::from_secs(60), |_| {
        full.elapsed() >= Duration::from_secs(15)
    })
    .await?;
    shutdown.cancel();
    drop(child);
    for node in peers {
        node.wait().await;
    }

    let mb = |kb: u64| kb as f64 / 1024.0;
    println!("| state of the measured node | peers | sensors | VmRSS MiB | VmHWM MiB |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| idle, alone, 5 s after start | {} | {} | {:.1} | {:.1} |",
        idle.peers,
        idle.readings,
        mb(idle.rss_kb),
        mb(idle.hwm_kb)
    );
    println!(
        "| all 100 readings just arrived | {} | {} | {:.1} | {:.1} |",
        loaded.peers,
        loaded.readings,
        mb(loaded.rss_kb),
        mb(loaded.hwm_kb)
    );
    println!(
        "| 15 s later (steady) | {} | {} | {:.1} | {:.1} |",
        steady.peers,
        steady.readings,
        mb(steady.rss_kb),
        mb(steady.hwm_kb)
    );
    Ok(())
}
