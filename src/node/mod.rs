//! The wiring of one office node: the office actor, the network, the store, the HTTP API and
//! the sensors, each a task owned here and stopped by one shutdown signal.

pub mod demo;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use futures::future::BoxFuture;
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    alerts::Evaluator,
    bot::Bot,
    chat::{
        self, SharedAsker,
        webhook::{self, Webhook},
    },
    config::Config,
    history,
    http::{
        self, Api, PeerSource, PeerView,
        local_token::{self, Published},
    },
    net::{self, JoinToken, Merged, Net, NetEvent, NetHandle, SwarmKey},
    office::{Identity, Office, OfficeHandle, Outgoing, alerts, physical_ms},
    presence, sensors,
    state::{NodeId, NodeName, Person, Replica},
    store::{Store, StoreHandle},
};

/// The name of the generated API token file in the data dir.
pub const API_TOKEN_FILE: &str = "api-token";

/// The name of the generated viewer token file in the data dir.
pub const VIEWER_TOKEN_FILE: &str = "viewer-token";

/// The name of the file in the data dir holding the key that signs dashboard sessions.
pub const SESSION_KEY_FILE: &str = "session-key";

/// A node that is running: where to reach it, and how to wait for it to stop.
pub struct RunningNode {
    pub node_id: NodeId,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub api_token_path: Option<PathBuf>,
    pub net: NetHandle,
    pub office: OfficeHandle,
    store: StoreHandle,
    /// The API token left for the commands of this machine (`http::local_token`), removed
    /// when the node has stopped; `None` if it could not be left.
    local_token: Option<Published>,
    tasks: JoinSet<()>,
}

/// How long a node may take to start listening.
const LISTEN_DEADLINE: Duration = Duration::from_secs(10);

impl RunningNode {
    /// An address other nodes can dial this one at (ending in its peer id), once it listens.
    pub async fn dial_address(&self) -> Result<String> {
        let deadline = Instant::now() + LISTEN_DEADLINE;
        loop {
            if let Some(address) = self.net.dialable_addresses().await?.into_iter().next() {
                return Ok(address.to_string());
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} did not start listening within {LISTEN_DEADLINE:?}",
                    self.node_id
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every task has stopped (after the shutdown token fired), then closes the
    /// store: the office actor's last save is in, and the file is left fully synced.
    pub async fn wait(mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(error) = result {
                warn!(%error, "a node task ended abnormally");
            }
        }
        if let Err(error) = self.store.close().await {
            warn!(%error, "closing the store failed");
        }
        drop(self.local_token);
    }

    /// Whether `officemesh ask` on this machine finds this node's token without `--token`.
    pub fn token_left_for_ask(&self) -> bool {
        self.local_token.is_some()
    }
}

/// The network actor, as the HTTP API sees it.
struct NetPeers {
    net: NetHandle,
    key: SwarmKey,
}

impl PeerSource for NetPeers {
    fn peers(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<PeerView>> + Send + '_>> {
        Box::pin(async move {
            self.net
                .peers()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|peer| PeerView {
                    id: peer.peer.to_base58(),
                    addresses: peer.addresses.iter().map(ToString::to_string).collect(),
                    rtt_ms: peer.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
                })
                .collect()
        })
    }

    fn invite(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send + '_>> {
        Box::pin(self.net.invite(self.key))
    }
}

/// Starts a node; it runs until `shutdown` fires. Fails with a clear error if the data dir,
/// its database or keys cannot be used, or an address cannot be bound.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<RunningNode> {
    let data_dir = config.node.data_dir.clone();
    let mut store = Store::open(&data_dir)?;

    let node_key = store.load_or_create_node_key(net::settings::generate_node_key)?;
    let node_id = net::settings::node_id_of_key(&node_key)
        .with_context(|| format!("the node key in {}", store.path().display()))?;

    let (swarm_key, joined) = swarm_key(&config, &mut store)?;
    let api_token_path = data_dir.join(API_TOKEN_FILE);
    let (api_token, api_token_path) = api_token(&config, &api_token_path)?;
    let viewer_token = match &config.http.viewer_token {
        Some(token) => token.clone(),
        None => private_secret(&data_dir.join(VIEWER_TOKEN_FILE), "viewer token")?,
    };
    let session_key = session_key(&data_dir.join(SESSION_KEY_FILE))?;

    let replica = match store.load()? {
        Some(saved) if saved.base.id != node_id => bail!(
            "the saved state in {} belongs to node {}, but this node's key is {node_id}",
            store.path().display(),
            saved.base.id
        ),
        Some(saved) => {
            let deltas = saved.journal.len();
            let replica = saved.restore(config.state.retention_ms());
            info!(
                entries = replica.store().len(),
                seq = replica.seq(),
                deltas,
                "office state restored"
            );
            replica
        }
        None => {
            info!(node = %node_id, "a new node");
            Replica::new(node_id.clone(), config.state.retention_ms())
        }
    };
    let name = match &config.node.name {
        Some(name) => name.clone(),
        None => NodeName::new(&host_name())
            .unwrap_or_else(|_| NodeName::new("officemesh").expect("valid")),
    };
    let started_at_ms = physical_ms();
    let identity = Identity {
        name,
        room: config.node.room.clone(),
        started_at_ms,
    };
    // After a kill the open hour of the minute history was lost; the raw points of this
    // node's sensors, saved periodically, give most of it back.
    match store.rebuild_recent(physical_ms()) {
        Ok(0) => {}
        Ok(hours) => info!(
            hours,
            "minute history of this node's sensors rebuilt from raw points"
        ),
        Err(error) => {
            warn!(%error, "cannot rebuild the recent minute history; peers may give it back")
        }
    }
    let store = StoreHandle::spawn(store)?;
    let (office, office_handle, outbox) =
        Office::new(replica, identity, store.clone(), config.store.save_interval).await?;
    let office = office.with_peer_hold(config.store.peer_hold);

    let mut bootstrap = config.network.peers.clone();
    bootstrap.extend(joined);
    let mut net_config = net::settings::net_config(
        &node_key,
        swarm_key,
        &config.network.listen,
        &bootstrap,
        &config.network.allow,
    )?;
    net_config.mdns = config.network.mdns;
    net_config.publish_interval = config.network.publish_interval;
    net_config.sync_interval = config.network.sync_interval;
    #[cfg(feature = "bench")]
    {
        net_config.link_delay = config.network.link_delay.clone();
        net_config.gossip = config.network.gossip;
    }
    let parts = Net::spawn(net_config, shutdown.child_token())?;
    let net_handle = parts.handle.clone();

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for HTTP on {} (http.listen)",
                config.http.listen
            )
        })?;
    let http = listener.local_addr()?;
    let local_token = leave_token(http, &api_token);
    let consider_home_ms = config.presence.consider_home.as_millis() as u64;
    let bot = Arc::new(
        Bot::new(
            office_handle.clone(),
            config.bot.name.as_ref().map(ToString::to_string),
            consider_home_ms,
        )
        .with_history(store.clone()),
    );
    let api = Arc::new(Api {
        office: office_handle.clone(),
        peers: Box::new(NetPeers {
            net: net_handle.clone(),
            key: swarm_key,
        }),
        access: http::access::Access::new(
            api_token.clone(),
            viewer_token,
            session_key,
            config.http.session_lifetime,
        ),
        started_at_ms,
        consider_home_ms,
        bot: bot.clone(),
        store: store.clone(),
        history: config.history.clone(),
    });

    let mut tasks = JoinSet::new();
    tasks.spawn(office.run(shutdown.clone()));
    tasks.spawn(async move {
        if let Err(error) = parts.task.await {
            warn!(%error, "the network task ended abnormally");
        }
    });
    tasks.spawn(forward_outbox(outbox, net_handle.clone()));
    tasks.spawn(history::prune(
        store.clone(),
        config.history.clone(),
        physical_ms,
        shutdown.clone(),
    ));
    let backfiller = history::backfill::Backfiller::new(
        net_handle.clone(),
        store.clone(),
        config.history.backfill_window,
    );
    tasks.spawn(backfiller.clone().run(physical_ms, shutdown.clone()));
    tasks.spawn(handle_net_events(
        parts.events,
        office_handle.clone(),
        store.clone(),
        backfiller,
    ));
    {
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            if let Err(error) = http::serve(listener, api, shutdown).await {
                warn!(%error, "the HTTP API stopped");
            }
        });
    }
    if config.node.sim {
        // Varies the simulated values per node.
        let seed = node_id
            .as_str()
            .bytes()
            .fold(0u64, |hash, byte| hash.rotate_left(5) ^ u64::from(byte));
        tasks.spawn(sensors::simulated::run(
            office_handle.clone(),
            config.node.room.clone(),
            seed,
            shutdown.clone(),
        ));
    }
    let sources = sensors::spawn(
        &mut tasks,
        &config.sensors,
        &config.node.room,
        office_handle.clone(),
        &shutdown,
    );
    if sources == 0 && !config.node.sim {
        info!(
            "no sensors configured or detected; list them under [sensors] (docs/sensors.md) or run with --sim for simulated ones"
        );
    }
    if config.presence.enabled {
        tasks.spawn(presence::run(
            office_handle.clone(),
            config.presence.clone(),
            shutdown.clone(),
        ));
    }
    let asker = chat_asker(bot, net_handle.clone());
    spawn_chat_and_alerts(&mut tasks, &config, office_handle.clone(), asker, &shutdown)?;
    info!(node = %node_id, room = %config.node.room, "node running; HTTP API on http://{http}");
    Ok(RunningNode {
        node_id,
        http,
        data_dir,
        api_token_path,
        net: net_handle,
        office: office_handle,
        store,
        local_token,
        tasks,
    })
}

/// The alert task and, when one is configured, the webhook it announces to.
fn spawn_chat_and_alerts(
    tasks: &mut JoinSet<()>,
    config: &Config,
    office: OfficeHandle,
    asker: SharedAsker,
    shutdown: &CancellationToken,
) -> Result<()> {
    let mut sinks = Vec::new();
    if let Some(url) = &config.bot.webhook_url {
        let webhook = Webhook::new(url.clone())
            .map_err(|message| anyhow::anyhow!("bot.webhook_url: {message}"))?;
        let (sender, queue) = mpsc::channel(webhook::QUEUE_CAPACITY);
        tasks.spawn(webhook.run(queue, shutdown.clone()));
        sinks.push(sender);
    }
    if let Some(slack) = &config.slack {
        let (sender, queue) = mpsc::channel(chat::ALERT_QUEUE_CAPACITY);
        tasks.spawn(chat::slack::run(
            slack.clone(),
            asker.clone(),
            queue,
            shutdown.clone(),
        ));
        sinks.push(sender);
    }
    if let Some(matrix) = &config.matrix {
        let (sender, queue) = mpsc::channel(chat::ALERT_QUEUE_CAPACITY);
        tasks.spawn(chat::matrix::run(
            matrix.clone(),
            asker,
            queue,
            shutdown.clone(),
        ));
        sinks.push(sender);
    }
    let evaluator = Evaluator::new(config.alert_rules.clone());
    tasks.spawn(alerts::run(office, evaluator, sinks, shutdown.clone()));
    Ok(())
}

/// The bot as the chat adapters ask it: the speaker's short name is the person, and an
/// answer the bot refuses (too long, too fast) is said in the chat rather than dropped.
fn chat_asker(bot: Arc<Bot>, net: NetHandle) -> SharedAsker {
    Arc::new(
        move |speaker: chat::Speaker, text: String| -> BoxFuture<'static, String> {
            let bot = bot.clone();
            let net = net.clone();
            Box::pin(async move {
                let person = match Person::new(&speaker.name) {
                    Ok(person) => person,
                    Err(error) => return format!("Sorry, I can't tell who you are: {error}"),
                };
                let peers = net.peers().await.map(|peers| peers.len()).unwrap_or(0);
                match bot.ask(&person, &text, peers).await {
                    Ok(reply) => reply,
                    Err(error) => format!("Sorry, I can't answer that now: {error}"),
                }
            })
        },
    )
}

/// Pushes each local delta to the network, in the publish batch or at once.
async fn forward_outbox(mut outbox: mpsc::Receiver<Outgoing>, net: NetHandle) {
    while let Some(Outgoing {
        delta,
        urgent,
        held,
    }) = outbox.recv().await
    {
        if let Some(held) = held {
            // Beside the publishing, so a slow holder never holds up the outbox; the office
            // bounds the wait and a dropped answer counts as not held.
            let net = net.clone();
            let delta = delta.clone();
            tokio::spawn(async move {
                let _ = held.send(net.hold(delta).await.is_ok());
            });
        }
        let sent = if urgent {
            net.publish_now(delta).await
        } else {
            net.publish(delta).await
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Answers what the network asks of the office: merges, digests, sync answers.
async fn handle_net_events(
    mut events: mpsc::Receiver<NetEvent>,
    office: OfficeHandle,
    store: StoreHandle,
    backfiller: history::backfill::Backfiller,
) {
    while let Some(event) = events.recv().await {
        match event {
            NetEvent::PeerConnected { peer } => {
                backfiller.start(net::node_id(&peer), physical_ms())
            }
            NetEvent::HistoryRequested { from, ask, reply } => {
                let Ok(page) = store
                    .run(move |store| history::backfill::answer(store, &net::node_id(&from), &ask))
                    .await
                else {
                    return;
                };
                let _ = reply.send(page);
            }
            NetEvent::HoldRequested { from, delta, reply } => {
                let Ok(report) = office.merge(delta, net::node_id(&from)).await else {
                    return;
                };
                let _ = reply.send(report.rejected.is_empty());
            }
            NetEvent::DeltaReceived {
                from, delta, reply, ..
            } => {
                let Ok(report) = office.merge(delta, net::node_id(&from)).await else {
                    return;
                };
                let _ = reply.send(Merged::of(&report));
            }
            NetEvent::DigestWanted { reply } => {
                let Ok(digest) = office.digest().await else {
                    return;
                };
                let _ = reply.send(digest);
            }
            NetEvent::SyncRequested { digest, reply, .. } => {
                let Ok(delta) = office.missing_for(digest).await else {
                    return;
                };
                let _ = reply.send(delta);
            }
            // The net actor logs these itself, once each.
            NetEvent::PeerDisconnected { .. }
            | NetEvent::Listening { .. }
            | NetEvent::PeerMisbehaved { .. }
            | NetEvent::AdmissionRefused { .. } => {}
        }
    }
}

/// The office key: from `--swarm-key FILE`, from a join token (then stored), from the data
/// dir, or new (a new office). Also returns the addresses a join token says to dial.
fn swarm_key(config: &Config, store: &mut Store) -> Result<(SwarmKey, Vec<String>)> {
    if let Some(path) = &config.network.swarm_key_file {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the swarm key file {} (network.swarm_key_file)",
                path.display()
            )
        })?;
        let key =
            SwarmKey::parse(&text).with_context(|| format!("swarm key file {}", path.display()))?;
        return Ok((key, Vec::new()));
    }
    if let Some(token) = &config.network.join {
        let token: JoinToken = token
            .parse()
            .context("the join token (--join) is not valid")?;
        store.set_swarm_key(&token.key.bytes())?;
        info!(fingerprint = %token.key.fingerprint(), "joined the office of the token; its key is stored");
        return Ok((
            token.key,
            token.addresses.iter().map(ToString::to_string).collect(),
        ));
    }
    let mut fresh = false;
    let bytes = store.load_or_create_swarm_key(|| {
        fresh = true;
        SwarmKey::generate()
            .expect("the operating system's random number generator works")
            .bytes()
    })?;
    let key = SwarmKey::from_bytes(bytes);
    if fresh {
        info!(fingerprint = %key.fingerprint(), "a new office: generated its swarm key; `officemesh invite` prints a token for other nodes to join");
    }
    Ok((key, Vec::new()))
}

/// Leaves the API token where `officemesh ask` on this machine looks for the node at `http`
/// (and at loopback, when the node serves every interface), so that a node whose data dir
/// is not at the default path needs no `--token` either.
fn leave_token(http: SocketAddr, token: &str) -> Option<Published> {
    let mut addresses = vec![http];
    if http.ip().is_unspecified() {
        let loopback: IpAddr = match http {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        };
        addresses.push(SocketAddr::new(loopback, http.port()));
    }
    match local_token::publish(&addresses, token) {
        Ok(published) => Some(published),
        Err(error) => {
            let error = anyhow::Error::new(error);
            warn!(error = %format!("{error:#}"), "officemesh ask here will need --token");
            None
        }
    }
}

/// The API token: configured, from `OFFICEMESH_API_TOKEN`, or generated into the data dir.
/// Returns the token and, when it lives in a file, the file's path.
fn api_token(config: &Config, path: &Path) -> Result<(String, Option<PathBuf>)> {
    if let Some(token) = &config.http.api_token {
        return Ok((token.clone(), None));
    }
    if let Some(token) = std::env::var("OFFICEMESH_API_TOKEN")
        .ok()
        .filter(|token| !token.trim().is_empty())
    {
        return Ok((token.trim().to_owned(), None));
    }
    match std::fs::read_to_string(path) {
        Ok(token) if !token.trim().is_empty() => {
            info!(path = %path.display(), "API token for writes");
            return Ok((token.trim().to_owned(), Some(path.to_owned())));
        }
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the API token {}", path.display()));
        }
    }
    let token = private_secret(path, "API token")?;
    Ok((token, Some(path.to_owned())))
}

/// A secret kept in a file only the owner can read: read back, or 24 random bytes in hex
/// generated into it the first time. `what` names it in errors and the log.
fn private_secret(path: &Path, what: &str) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the {what} {}", path.display()));
        }
    }
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("no randomness for the {what}: {error}"))?;
    let secret: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    write_private(path, &format!("{secret}\n"))?;
    info!(path = %path.display(), "generated the {what}");
    Ok(secret)
}

/// The key that signs dashboard sessions: kept in the data dir, so sessions outlive a
/// restart; deleting the file ends them all.
fn session_key(path: &Path) -> Result<[u8; 32]> {
    use sha2::Digest as _;
    let secret = private_secret(path, "session key")?;
    Ok(sha2::Sha256::digest(secret.as_bytes()).into())
}

/// Writes a file only the owner can read.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "officemesh".to_owned())
}
