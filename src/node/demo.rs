//! `officemesh demo`: a whole office on one machine. N nodes in one process, each with its
//! own data dir, room, simulated sensors and HTTP port, joined by explicit loopback peers
//! (no mDNS), sharing one fresh swarm key and one fresh API token, which it leaves where
//! `officemesh ask` on this machine finds it (`http::local_token`).

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use super::{RunningNode, start as start_node};
use crate::{
    config::Config,
    net::SwarmKey,
    state::{NodeId, Room},
};

const ROOMS: [&str; 8] = [
    "open space",
    "meeting room",
    "kitchen",
    "lab",
    "reception",
    "library",
    "workshop",
    "lounge",
];

pub struct DemoNode {
    pub room: String,
    pub http: SocketAddr,
    pub node_id: NodeId,
}

pub struct DemoOffice {
    pub nodes: Vec<DemoNode>,
    /// The write token every demo node accepts.
    pub api_token: String,
    dir: PathBuf,
    running: Vec<RunningNode>,
}

impl DemoOffice {
    /// Whether `officemesh ask` on this machine finds the token without `--token`.
    pub fn token_left_for_ask(&self) -> bool {
        self.running.iter().all(RunningNode::token_left_for_ask)
    }

    /// Waits for every node to stop (each removes its token file), then removes the demo's
    /// data dirs.
    pub async fn wait(self) {
        for node in self.running {
            node.wait().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `count` nodes; node i serves HTTP on `http_port + i`.
pub async fn start(
    count: usize,
    http_port: u16,
    shutdown: CancellationToken,
) -> Result<DemoOffice> {
    let dir = std::env::temp_dir().join(format!("officemesh-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key_path = dir.join("swarm.key");
    std::fs::write(&key_path, SwarmKey::generate()?.to_file())
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    let mut token_bytes = [0u8; 16];
    getrandom::fill(&mut token_bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    let api_token: String = token_bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();

    let mut running: Vec<RunningNode> = Vec::new();
    let mut nodes = Vec::new();
    let mut addresses: Vec<String> = Vec::new();
    for index in 0..count {
        let room = match ROOMS.get(index) {
            Some(room) => (*room).to_owned(),
            None => format!("room {}", index + 1),
        };
        let mut config = Config::from_toml("")?;
        config.node.name = Some(crate::state::NodeName::new(&format!("demo-{}", index + 1))?);
        config.node.room = Room::new(&room)?;
        config.node.data_dir = dir.join(format!("node-{}", index + 1));
        config.node.sim = true;
        // This machine's real sensors are in none of the demo's rooms.
        config.sensors.auto_detect = false;
        // The demo's nodes share one machine and so one neighbour table: one of them reading
        // it is enough to show this machine's network in the demo office.
        config.presence.enabled = index == 0;
        config.network.mdns = false;
        config.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        config.network.peers = addresses.clone();
        config.network.swarm_key_file = Some(key_path.clone());
        // Port 0: each node takes a free port of its own (the demo prints them).
        let port = match http_port {
            0 => 0,
            first => first.saturating_add(index as u16),
        };
        config.http.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        config.http.api_token = Some(api_token.clone());
        let node = start_node(config, shutdown.clone())
            .await
            .with_context(|| format!("demo node {} ({room})", index + 1))?;
        addresses.push(node.dial_address().await?);
        nodes.push(DemoNode {
            room,
            http: node.http,
            node_id: node.node_id.clone(),
        });
        running.push(node);
    }
    Ok(DemoOffice {
        nodes,
        api_token,
        dir,
        running,
    })
}
