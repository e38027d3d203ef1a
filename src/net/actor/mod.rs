//! The net actor: one task, one `select!` loop, the only owner of the `Swarm`. The loop, the
//! commands and the node's replies are here; each protocol's handling has its own file.

mod dialing;
mod exchange;
mod gossip;
mod requests;
mod sessions;

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use libp2p::{
    Multiaddr, PeerId, Swarm,
    allow_block_list::NotAllowed,
    core::{ConnectedPoint, multiaddr::Protocol, transport::TransportError},
    gossipsub::{IdentTopic, MessageAcceptance, MessageId, PublishError},
    request_response::{OutboundRequestId, ResponseChannel},
    swarm::{
        ConnectionError, ConnectionId, DialError, ListenError, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::{Instant, Interval, MissedTickBehavior, interval, timeout},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    COMMAND_QUEUE, DEFAULT_PUBLISH_INTERVAL, EVENT_QUEUE, MAX_PENDING_REPLIES, MAX_SYNC_PAGES,
    Merged, NetCommand, NetConfig, NetError, NetEvent, NetHandle, PeerInfo, REDIAL_BACKOFF_MAX,
    REDIAL_BACKOFF_MIN, REPLY_TIMEOUT, Refusal, SyncError, SyncSummary, Verdict,
    behaviour::{Behaviour, BehaviourConfig, BehaviourEvent, GOSSIP_PAGE_BYTES, STATE_TOPIC},
    is_loopback,
    paging::{self, Cursor},
    sync::{SYNC_PAGE_BYTES, SyncRequest, SyncResponse},
    transport::{self, HandshakeFailure},
};
use crate::{
    backoff::Backoff,
    state::{Delta, Digest},
    wire,
};

/// Distinct warnings remembered so each is logged once (per peer or address). Past this
/// many the memory is cleared, so a long-running node may repeat a warning now and then.
const MAX_REMEMBERED_WARNINGS: usize = 1024;

/// How often bootstrap peers are checked for a redial.
const REDIAL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// At most one "event queue full" warning per this interval.
const QUEUE_FULL_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// The running network actor. Build it with [`Net::new`] and run it with [`Net::run`] (or
/// both with [`Net::spawn`]).
pub struct Net {
    swarm: Swarm<Behaviour>,
    handshake_failures: mpsc::Receiver<HandshakeFailure>,
    commands: mpsc::Receiver<NetCommand>,
    events: mpsc::Sender<NetEvent>,
    topic: IdentTopic,
    publish_interval: Duration,
    sync_interval: Duration,
    /// Deltas published since the last gossip publish, joined.
    batch: Option<Delta>,
    peers: HashMap<PeerId, PeerState>,
    sessions: HashMap<PeerId, Session>,
    /// When this node last started pulling from each peer.
    last_pull: HashMap<PeerId, Instant>,
    /// Peers to pull from on a gap, once the last pull from them is old enough.
    deferred_pulls: HashSet<PeerId>,
    /// When to ask a peer for its peers next, and how long the wait was.
    exchange_at: Instant,
    exchange_delay: Duration,
    outbound: HashMap<OutboundRequestId, PeerId>,
    /// History asks sent for the node, by request, with where their answer goes.
    history_asks: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, NetError>>>,
    /// Writes handed to a peer to hold, by request, with where the confirmation goes.
    holds: HashMap<OutboundRequestId, oneshot::Sender<Result<PeerId, NetError>>>,
    replies: FuturesUnordered<BoxFuture<'static, Reply>>,
    bootstrap: Vec<Bootstrap>,
    /// Dials of bootstrap peers under way, to the index of their entry in `bootstrap`: how a
    /// failure is told apart from other dials and named by the address as configured. An
    /// entry leaves when its dial succeeds or fails, so there are never more than a few per
    /// bootstrap peer.
    bootstrap_dials: HashMap<ConnectionId, usize>,
    /// Peers whose last connection closed, redialled for a while (`dialing`).
    lost: HashMap<PeerId, dialing::Lost>,
    /// How many sync requests each connected peer may still make (`net::rate`).
    sync_rates: HashMap<PeerId, super::rate::RequestRate>,
    /// Peers disconnected on the node's command, not to be redialled.
    dropping: HashSet<PeerId>,
    warned: Warned,
    last_queue_full_warning: Option<Instant>,
}

/// What [`Net::spawn`] returns.
pub struct NetParts {
    pub handle: NetHandle,
    pub events: mpsc::Receiver<NetEvent>,
    /// The actor's task; it ends when the cancellation token fires or the events receiver
    /// is dropped.
    pub task: JoinHandle<()>,
}

#[derive(Default)]
struct PeerState {
    connections: HashMap<ConnectionId, Multiaddr>,
    rtt: Option<Duration>,
    ping_failures: HashMap<ConnectionId, u32>,
    agent_version: Option<String>,
    /// It does not speak the hold protocol (an older version): not asked again while
    /// connected.
    no_hold: bool,
    /// Where it says it listens (identify), for the peers that ask this node for its peers.
    listen_addresses: Vec<Multiaddr>,
}

/// A sync session this node runs as the asker.
#[derive(Default)]
struct Session {
    summary: SyncSummary,
    /// Where the next page starts; `None` before the first and after the last.
    after: Option<Cursor>,
    waiters: Vec<oneshot::Sender<Result<SyncSummary, SyncError>>>,
}

struct Bootstrap {
    address: Multiaddr,
    peer: Option<PeerId>,
    backoff: Backoff,
    next_attempt: Instant,
    /// When its last connection closed, if it was ever connected.
    lost_at: Option<Instant>,
}

/// A reply from the node (or its absence after [`REPLY_TIMEOUT`]).
enum Reply {
    GossipVerdict {
        message_id: MessageId,
        propagation_source: PeerId,
        publisher: PeerId,
        merged: Option<Merged>,
    },
    PageMerged {
        peer: PeerId,
        merged: Option<Merged>,
    },
    Digest {
        peer: PeerId,
        digest: Option<Digest>,
    },
    Answer {
        peer: PeerId,
        after: Option<Cursor>,
        channel: ResponseChannel<SyncResponse>,
        missing: Option<Delta>,
    },
    Held {
        peer: PeerId,
        channel: ResponseChannel<bool>,
        held: Option<bool>,
    },
    HistoryPage {
        peer: PeerId,
        channel: ResponseChannel<Vec<u8>>,
        page: Option<Vec<u8>>,
    },
}

/// Everything the loop waits for, as one closed set.
// One value lives for one turn of the loop, on the stack: boxing the large swarm event
// would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Input {
    Swarm(SwarmEvent<BehaviourEvent>),
    Handshake(HandshakeFailure),
    Command(Option<NetCommand>),
    Reply(Reply),
    PublishTick,
    SyncTick,
    RedialTick,
    ExchangeTick,
    EventsClosed,
    Shutdown,
}

impl Net {
    /// Builds the swarm, starts listening and dials the bootstrap peers. Must be called
    /// inside a tokio runtime.
    pub fn new(config: NetConfig) -> Result<(Net, NetHandle, mpsc::Receiver<NetEvent>), NetError> {
        let peer_id = config.keypair.public().to_peer_id();
        let (transport, handshake_failures) = transport::build(
            &config.keypair,
            &config.swarm_key,
            config.transport,
            #[cfg(feature = "bench")]
            config.link_delay.clone(),
        )?;
        let behaviour = Behaviour::new(BehaviourConfig {
            keypair: &config.keypair,
            mdns: config.mdns,
            allow_list: config.allow_list.as_ref(),
            max_peers: config.max_peers,
            #[cfg(feature = "bench")]
            gossip: config.gossip,
            // Only benchmarks compare meshes; a node runs the office's.
            #[cfg(not(feature = "bench"))]
            gossip: super::GossipTuning::OFFICE,
        })?;
        // Connections stay open while the office runs: an idle timeout would close quiet
        // connections and empty the gossipsub mesh. Dead peers are found by ping instead.
        let swarm_config = libp2p::swarm::Config::with_tokio_executor()
            .with_idle_connection_timeout(Duration::MAX);
        let mut swarm = Swarm::new(transport, behaviour, peer_id, swarm_config);
        for address in &config.listen {
            swarm
                .listen_on(address.clone())
                .map_err(|error| NetError::Listen {
                    address: address.clone(),
                    reason: error.to_string(),
                })?;
        }
        info!(
            peer = %peer_id,
            swarm_key = %config.swarm_key.fingerprint(),
            "network starting (swarm key shown by fingerprint)"
        );
        let (command_sender, commands) = mpsc::channel(COMMAND_QUEUE);
        let (events, event_receiver) = mpsc::channel(EVENT_QUEUE);
        let now = Instant::now();
        let base = config.transport;
        let bootstrap = config
            .bootstrap
            .into_iter()
            .filter(|address| match transport::cannot_dial(address, base) {
                None => true,
                Some(reason) => {
                    warn!(%address, reason, "cannot dial peer {address}: {reason}; it is left out");
                    false
                }
            })
            .map(|address| Bootstrap {
                peer: peer_of(&address),
                address,
                backoff: Backoff::new(REDIAL_BACKOFF_MIN, REDIAL_BACKOFF_MAX),
                next_attempt: now,
                lost_at: None,
            })
            .collect();
        let mut net = Net {
            swarm,
            handshake_failures,
            commands,
            events,
            topic: IdentTopic::new(STATE_TOPIC),
            publish_interval: config.publish_interval,
            sync_interval: config.sync_interval,
            batch: None,
            peers: HashMap::new(),
            sessions: HashMap::new(),
            last_pull: HashMap::new(),
            deferred_pulls: HashSet::new(),
            exchange_at: Instant::now() + exchange::EXCHANGE_FIRST_DELAY,
            exchange_delay: exchange::EXCHANGE_FIRST_DELAY,
            outbound: HashMap::new(),
            history_asks: HashMap::new(),
            holds: HashMap::new(),
            replies: FuturesUnordered::new(),
            bootstrap,
            bootstrap_dials: HashMap::new(),
            lost: HashMap::new(),
            dropping: HashSet::new(),
            sync_rates: HashMap::new(),
            warned: Warned::default(),
            last_queue_full_warning: None,
        };
        net.redial_bootstrap();
        let handle = NetHandle {
            commands: command_sender,
            peer_id,
        };
        Ok((net, handle, event_receiver))
    }

    /// Builds the actor and runs it on a new tokio task.
    pub fn spawn(config: NetConfig, cancel: CancellationToken) -> Result<NetParts, NetError> {
        let (net, handle, events) = Net::new(config)?;
        let task = tokio::spawn(net.run(cancel));
        Ok(NetParts {
            handle,
            events,
            task,
        })
    }

    /// Runs until `cancel` fires or the node drops its events receiver.
    pub async fn run(mut self, cancel: CancellationToken) {
        // With no batching every delta goes out as it comes; the tick then finds nothing.
        let mut publish_tick = ticker(if self.publish_interval.is_zero() {
            DEFAULT_PUBLISH_INTERVAL
        } else {
            self.publish_interval
        });
        let mut sync_tick = ticker(self.sync_interval);
        let mut redial_tick = ticker(REDIAL_CHECK_INTERVAL);
        let mut exchange_tick = ticker(exchange::EXCHANGE_FIRST_DELAY);
        let mut commands_open = true;
        loop {
            let input = tokio::select! {
                () = cancel.cancelled() => Input::Shutdown,
                () = self.events.closed() => Input::EventsClosed,
                event = self.swarm.select_next_some() => Input::Swarm(event),
                Some(failure) = self.handshake_failures.recv() => Input::Handshake(failure),
                command = self.commands.recv(), if commands_open => Input::Command(command),
                Some(reply) = self.replies.next(), if !self.replies.is_empty() => Input::Reply(reply),
                _ = publish_tick.tick() => Input::PublishTick,
                _ = sync_tick.tick() => Input::SyncTick,
                _ = redial_tick.tick(), if !self.bootstrap.is_empty() || !self.lost.is_empty() => Input::RedialTick,
                _ = exchange_tick.tick() => Input::ExchangeTick,
            };
            match input {
                Input::Swarm(event) => self.handle_swarm_event(event),
                Input::Handshake(failure) => self.handle_handshake_failure(failure),
                Input::Command(Some(command)) => self.handle_command(command),
                // Every handle is gone; the node may still be answering events.
                Input::Command(None) => commands_open = false,
                Input::Reply(reply) => self.handle_reply(reply),
                Input::PublishTick => {
                    self.flush_batch();
                    self.pull_deferred();
                }
                Input::SyncTick => self.sync_with_random_peer(),
                Input::RedialTick => {
                    self.redial_bootstrap();
                    self.redial_lost();
                }
                Input::ExchangeTick => self.exchange_if_due(),
                Input::EventsClosed => {
                    info!("network stopping: the node no longer listens to it");
                    break;
                }
                Input::Shutdown => {
                    info!("network stopping");
                    break;
                }
            }
        }
        for (_, session) in self.sessions.drain() {
            for waiter in session.waiters {
                let _ = waiter.send(Err(SyncError::Stopped));
            }
        }
    }

    // ---- commands ----

    fn handle_command(&mut self, command: NetCommand) {
        match command {
            NetCommand::Publish(delta) => {
                self.add_to_batch(delta);
                if self.publish_interval.is_zero() {
                    self.flush_batch();
                }
            }
            NetCommand::PublishNow(delta) => {
                self.add_to_batch(delta);
                self.flush_batch();
            }
            NetCommand::SyncWith { peer, reply } => self.start_session(peer, Some(reply)),
            NetCommand::AskHistory { peer, ask, reply } => {
                if !self.swarm.is_connected(&peer) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: "not connected".to_owned(),
                    }));
                    return;
                }
                let request_id = self.swarm.behaviour_mut().history.send_request(&peer, ask);
                self.history_asks.insert(request_id, reply);
            }
            NetCommand::Hold { delta, reply } => self.ask_to_hold(&delta, reply),
            NetCommand::Peers(reply) => {
                let _ = reply.send(self.peer_infos());
            }
            NetCommand::Dial { address, reply } => {
                let _ = reply.send(self.dial_address(address));
            }
            NetCommand::Disconnect { peer, reply } => {
                let disconnecting = self.swarm.disconnect_peer_id(peer).is_ok();
                if disconnecting {
                    // Dropped on purpose: not a peer to dial again.
                    self.dropping.insert(peer);
                }
                let _ = reply.send(disconnecting);
            }
            NetCommand::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
        }
    }

    fn add_to_batch(&mut self, delta: Delta) {
        match &mut self.batch {
            Some(batch) => {
                batch.join(&delta);
            }
            None => self.batch = Some(delta),
        }
    }

    /// Publishes the batched deltas, in pages of at most [`GOSSIP_PAGE_BYTES`].
    fn flush_batch(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        for page in paging::pages(&batch, GOSSIP_PAGE_BYTES) {
            let bytes = wire::encode_delta(&page);
            if bytes.len() > GOSSIP_PAGE_BYTES {
                // Only a causal context too large to split gets here. Receivers would drop the
                // RPC it makes without a word (their limit counts gossipsub's envelope too), so
                // say so here; the next sync with each peer carries it.
                debug!(
                    bytes = bytes.len(),
                    "a delta page too large to gossip; sync will deliver it"
                );
                continue;
            }
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(self.topic.clone(), bytes)
            {
                Ok(_) => {}
                // Alone in the office, or peers not subscribed yet: sync delivers it later.
                Err(PublishError::NoPeersSubscribedToTopic | PublishError::Duplicate) => {
                    debug!("delta not gossiped: no subscribed peer yet, or already published");
                }
                Err(error) => {
                    let kind = std::mem::discriminant(&error);
                    if self.warned.first(format!("publish {kind:?}")) {
                        warn!(%error, "cannot gossip a delta; sync will deliver it");
                    }
                }
            }
        }
    }

    fn peer_infos(&mut self) -> Vec<PeerInfo> {
        let hash = self.topic.hash();
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let subscribed: HashSet<PeerId> = gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&hash))
            .map(|(peer, _)| *peer)
            .collect();
        let in_mesh: HashSet<PeerId> = gossipsub.mesh_peers(&hash).copied().collect();
        let mut infos: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(peer, state)| PeerInfo {
                peer: *peer,
                addresses: state.connections.values().cloned().collect(),
                rtt: state.rtt,
                agent_version: state.agent_version.clone(),
                subscribed: subscribed.contains(peer),
                in_mesh: in_mesh.contains(peer),
                gossip_score: gossipsub.peer_score(peer),
            })
            .collect();
        infos.sort_by_key(|info| info.peer);
        infos
    }

    // ---- swarm events ----

    fn handle_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.handle_behaviour_event(event),
            SwarmEvent::NewListenAddr { address, .. } => {
                // The whole address, peer id included, is what another node's `--peer` takes.
                let peer = *self.swarm.local_peer_id();
                let full = address.clone().with_p2p(peer).unwrap_or_else(|same| same);
                info!("listening on {full}");
                self.emit(NetEvent::Listening { address });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => self.handle_connection_established(
                peer_id,
                connection_id,
                &endpoint,
                num_established.get(),
            ),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => self.handle_connection_closed(peer_id, connection_id, num_established, cause),
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                peer_id,
                ..
            } => self.handle_incoming_error(send_back_addr, peer_id, error),
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => self.handle_outgoing_error(connection_id, peer_id, error),
            SwarmEvent::ListenerError { error, .. } => {
                warn!(%error, "a listener failed");
            }
            SwarmEvent::ListenerClosed {
                addresses,
                reason: Err(error),
                ..
            } => warn!(?addresses, %error, "a listener closed"),
            _ => {}
        }
    }

    fn handle_connection_established(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        endpoint: &ConnectedPoint,
        established: u32,
    ) {
        let address = endpoint.get_remote_address().clone();
        debug!(%peer, %address, "connection established");
        self.peers
            .entry(peer)
            .or_default()
            .connections
            .insert(connection, address.clone());
        if let Some(index) = self.bootstrap_dials.remove(&connection) {
            let bootstrap = &mut self.bootstrap[index];
            bootstrap.peer = Some(peer);
            bootstrap.backoff.reset();
            // Reached: if it drops and cannot be dialled again, that is news worth a warning.
            let prefix = format!("dial {}: ", bootstrap.address);
            self.warned.forget(|key| key.starts_with(&prefix));
        }
        if let ConnectedPoint::Dialer { .. } = endpoint {
            for bootstrap in &mut self.bootstrap {
                let same_address = without_peer(&bootstrap.address) == without_peer(&address);
                if bootstrap.peer == Some(peer) || (bootstrap.peer.is_none() && same_address) {
                    bootstrap.peer = Some(peer);
                    bootstrap.backoff.reset();
                }
            }
        }
        self.lost.remove(&peer);
        if established == 1 {
            info!(%peer, %address, "peer connected");
            self.emit(NetEvent::PeerConnected { peer });
            // A new peer may have been away: exchange what each side lacks.
            self.start_session(peer, None);
            self.exchange_soon();
        }
    }

    fn handle_connection_closed(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        remaining: u32,
        cause: Option<ConnectionError>,
    ) {
        let mut over_loopback = false;
        if let Some(state) = self.peers.get_mut(&peer) {
            over_loopback = state
                .connections
                .remove(&connection)
                .is_some_and(|address| is_loopback(&address));
            state.ping_failures.remove(&connection);
        }
        if remaining > 0 {
            return;
        }
        match cause {
            Some(error) => info!(%peer, %error, "peer disconnected"),
            None => info!(%peer, "peer disconnected"),
        }
        let dropped = self.dropping.remove(&peer);
        for bootstrap in &mut self.bootstrap {
            if bootstrap.peer == Some(peer) {
                bootstrap.lost_at = (!dropped).then(Instant::now);
            }
        }
        if let Some(state) = self.peers.remove(&peer)
            && !dropped
        {
            self.remember_lost(peer, state.listen_addresses, over_loopback);
        }
        self.last_pull.remove(&peer);
        self.deferred_pulls.remove(&peer);
        self.sync_rates.remove(&peer);
        self.end_session(peer, Err(SyncError::NotConnected(peer)));
        self.emit(NetEvent::PeerDisconnected { peer });
    }

    fn handle_incoming_error(
        &mut self,
        address: Multiaddr,
        peer: Option<PeerId>,
        error: ListenError,
    ) {
        match error {
            ListenError::Denied { cause } if cause.downcast_ref::<NotAllowed>().is_some() => {
                self.refuse(Some(address), peer, Refusal::NotAllowed);
            }
            error => debug!(%address, ?error, "incoming connection failed"),
        }
    }

    fn handle_outgoing_error(
        &mut self,
        connection: ConnectionId,
        peer: Option<PeerId>,
        error: DialError,
    ) {
        match (error, self.bootstrap_dials.remove(&connection)) {
            (DialError::Denied { cause }, _) if cause.downcast_ref::<NotAllowed>().is_some() => {
                self.refuse(None, peer, Refusal::NotAllowed);
            }
            (error, Some(index)) => {
                self.bootstrap_dial_failed(index, &error);
                // Lost a moment ago and due again: the next SYN goes out now, not at the tick.
                self.redial_bootstrap();
            }
            (DialError::Transport(errors), None) => {
                for (address, error) in errors {
                    debug!(%address, ?error, "dial failed");
                }
            }
            (error, None) => debug!(?peer, %error, "dial failed"),
        }
        if peer.is_some_and(|peer| self.lost.contains_key(&peer)) {
            self.redial_lost();
        }
    }

    /// A connection failed the private-network handshake (reported by the transport).
    fn handle_handshake_failure(&mut self, failure: HandshakeFailure) {
        debug!(address = %failure.address, error = %failure.error, "private-network handshake failed");
        // Incoming connections come from a new port each time: name the host.
        let address = if failure.dialing {
            failure.address
        } else {
            without_port(&failure.address)
        };
        self.refuse(Some(address), None, Refusal::PrivateNetwork);
    }

    /// Logs a refused peer once per peer id (or address, when the id is unknown) and tells
    /// the node.
    fn refuse(&mut self, address: Option<Multiaddr>, peer: Option<PeerId>, refusal: Refusal) {
        let key = peer
            .map(|peer| peer.to_string())
            .or_else(|| address.as_ref().map(Multiaddr::to_string))
            .unwrap_or_default();
        if !self.warned.first(format!("{refusal:?} {key}")) {
            return;
        }
        let shown = address
            .as_ref()
            .map_or_else(|| "an unknown address".to_owned(), Multiaddr::to_string);
        match refusal {
            Refusal::PrivateNetwork => warn!(
                address = %shown,
                "peer at {shown} failed the private-network handshake (different swarm key?)"
            ),
            Refusal::NotAllowed => {
                let peer = peer.map_or_else(|| "?".to_owned(), |peer| peer.to_string());
                warn!(
                    %peer,
                    address = %shown,
                    "peer {peer} at {shown} is not on the allow-list; connection closed"
                );
            }
        }
        self.emit(NetEvent::AdmissionRefused {
            address,
            peer,
            refusal,
        });
    }

    fn handle_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(event) => self.handle_gossipsub(event),
            BehaviourEvent::Sync(event) => self.handle_sync(event),
            BehaviourEvent::History(event) => self.handle_history(event),
            BehaviourEvent::Hold(event) => self.handle_hold(event),
            BehaviourEvent::Exchange(event) => self.handle_exchange(event),
            BehaviourEvent::Mdns(event) => self.handle_mdns(event),
            BehaviourEvent::Identify(event) => self.handle_identify(event),
            BehaviourEvent::Ping(event) => self.handle_ping(event),
            BehaviourEvent::Limits(never) => match never {},
            BehaviourEvent::Allow(never) => match never {},
        }
    }

    // ---- replies from the node ----

    fn handle_reply(&mut self, reply: Reply) {
        match reply {
            Reply::GossipVerdict {
                message_id,
                propagation_source,
                publisher,
                merged,
            } => {
                if merged.is_some_and(|merged| merged.gap) {
                    self.pull_missed(propagation_source);
                }
                let acceptance = match merged.map(|merged| merged.verdict) {
                    Some(Verdict::Accept) => MessageAcceptance::Accept,
                    Some(Verdict::Reject) => {
                        let reason = "the node rejected some of its writes";
                        self.reject_gossip(&message_id, propagation_source, publisher, reason);
                        return;
                    }
                    Some(Verdict::Ignore) | None => MessageAcceptance::Ignore,
                };
                self.validate(&message_id, &propagation_source, acceptance);
            }
            Reply::PageMerged { peer, merged } => {
                if merged.is_some_and(|merged| merged.verdict == Verdict::Reject) {
                    self.misbehaved(
                        peer,
                        "sent writes the node rejected in a sync page".to_owned(),
                    );
                }
                let Some(session) = self.sessions.get(&peer) else {
                    return;
                };
                if session.after.is_none() {
                    self.end_session(peer, Ok(()));
                } else if session.summary.pages >= MAX_SYNC_PAGES {
                    self.end_session(peer, Err(SyncError::TooManyPages(peer)));
                } else {
                    // Ask again with the digest as it is now, after this page.
                    self.request_digest(peer);
                }
            }
            Reply::Digest { peer, digest } => {
                let Some(session) = self.sessions.get(&peer) else {
                    return;
                };
                let Some(digest) = digest else {
                    self.end_session(peer, Err(SyncError::NodeUnavailable));
                    return;
                };
                if !self.swarm.is_connected(&peer) {
                    self.end_session(peer, Err(SyncError::NotConnected(peer)));
                    return;
                }
                let request = SyncRequest {
                    digest,
                    after: session.after.clone(),
                };
                let request_id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.outbound.insert(request_id, peer);
            }
            Reply::Answer {
                peer,
                after,
                channel,
                missing,
            } => {
                let Some(missing) = missing else {
                    debug!(%peer, "the node did not answer a sync request in time");
                    return;
                };
                let page = paging::first_page(&missing, after.as_ref(), SYNC_PAGE_BYTES);
                let response = SyncResponse {
                    page: page.delta,
                    next: page.next,
                    invalid: Vec::new(),
                };
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response)
                    .is_err()
                {
                    debug!(%peer, "peer gave up on its sync request before the answer");
                }
            }
            Reply::Held {
                peer,
                channel,
                held,
            } => {
                let held = held.unwrap_or(false);
                if self
                    .swarm
                    .behaviour_mut()
                    .hold
                    .send_response(channel, held)
                    .is_err()
                {
                    debug!(%peer, "peer gave up on its hold request before the answer");
                }
            }
            Reply::HistoryPage {
                peer,
                channel,
                page,
            } => {
                let Some(page) = page else {
                    debug!(%peer, "the node did not answer a history ask in time");
                    return;
                };
                if self
                    .swarm
                    .behaviour_mut()
                    .history
                    .send_response(channel, page)
                    .is_err()
                {
                    debug!(%peer, "peer gave up on its history ask before the answer");
                }
            }
        }
    }

    // ---- talking to the node ----

    /// Sends the node an event that wants a reply. `None` if the node cannot take it now
    /// (queue full, too many replies pending, or gone).
    fn ask_node<T>(
        &mut self,
        event: impl FnOnce(oneshot::Sender<T>) -> NetEvent,
    ) -> Option<oneshot::Receiver<T>> {
        if self.replies.len() >= MAX_PENDING_REPLIES {
            self.warn_queue_full("too many replies pending");
            return None;
        }
        let (reply, answer) = oneshot::channel();
        self.emit(event(reply)).then_some(answer)
    }

    /// Sends the node an event without waiting; returns whether it was queued.
    fn emit(&mut self, event: NetEvent) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.warn_queue_full("the event queue is full");
                false
            }
            // The loop stops on its next turn.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn warn_queue_full(&mut self, why: &str) {
        let due = self
            .last_queue_full_warning
            .is_none_or(|at| at.elapsed() >= QUEUE_FULL_WARNING_INTERVAL);
        if due {
            self.last_queue_full_warning = Some(Instant::now());
            warn!(
                "the node is not keeping up with the network ({why}); dropping work, sync will repair"
            );
        }
    }

    fn wait_for(&mut self, reply: impl Future<Output = Reply> + Send + 'static) {
        self.replies.push(reply.boxed());
    }
}

/// The node's answer, or `None` if it dropped the reply or took longer than [`REPLY_TIMEOUT`].
async fn answer<T>(reply: oneshot::Receiver<T>) -> Option<T> {
    timeout(REPLY_TIMEOUT, reply).await.ok()?.ok()
}

fn ticker(period: Duration) -> Interval {
    let mut ticker = interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// How to dial `address`: with a fresh local port (see [`Net::dial_address`]), and with a
/// peer id only if not connected or dialing already.
fn dial_opts(address: &Multiaddr) -> DialOpts {
    match peer_of(address) {
        Some(peer) => DialOpts::peer_id(peer)
            .addresses(vec![address.clone()])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .allocate_new_port()
            .build(),
        None => DialOpts::unknown_peer_id()
            .address(address.clone())
            .allocate_new_port()
            .build(),
    }
}

/// Why a dial failed, in one line. A transport error may be a list (a host name resolved to
/// several addresses, each tried), which libp2p prints over several lines.
fn describe_dial_error(error: &DialError) -> String {
    let one_line = |text: String| {
        text.lines()
            .map(|line| line.trim().trim_start_matches("- "))
            .filter(|line| !line.is_empty() && *line != "Multiple dial errors occurred:")
            .collect::<Vec<_>>()
            .join("; ")
    };
    match error {
        DialError::Transport(errors) => {
            let reasons: Vec<String> = errors
                .iter()
                .map(|(address, error)| match error {
                    TransportError::MultiaddrNotSupported(_) => {
                        format!("no transport of this node dials {address}")
                    }
                    // `TransportError` prints nothing of its own for this one.
                    TransportError::Other(error) => {
                        if lookup_found_nothing(error) {
                            "no address found for the host name (in DNS or /etc/hosts)".to_owned()
                        } else {
                            one_line(error.to_string())
                        }
                    }
                })
                .collect();
            reasons.join("; ")
        }
        DialError::WrongPeerId { obtained, .. } => {
            format!("the peer there is {obtained}, not the one in the address")
        }
        DialError::Denied { cause } => format!("this node refused the connection: {cause}"),
        error => one_line(error.to_string()),
    }
}

/// Whether a dial failed because a host name has no address: hickory prints that as a
/// whole query structure, and it is what a mistyped or unknown host name gives.
fn lookup_found_nothing(error: &std::io::Error) -> bool {
    let mut cause = error
        .get_ref()
        .map(|inner| inner as &(dyn std::error::Error + 'static));
    while let Some(error) = cause {
        if error
            .downcast_ref::<libp2p::dns::ResolveError>()
            .is_some_and(libp2p::dns::ResolveError::is_no_records_found)
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The peer id at the end of an address, if any.
fn peer_of(address: &Multiaddr) -> Option<PeerId> {
    match address.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

fn without_peer(address: &Multiaddr) -> Multiaddr {
    address
        .iter()
        .filter(|protocol| !matches!(protocol, Protocol::P2p(_)))
        .collect()
}

fn with_peer(address: &Multiaddr, peer: PeerId) -> Multiaddr {
    without_peer(address).with(Protocol::P2p(peer))
}

/// The address without its TCP port: the host a connection came from.
fn without_port(address: &Multiaddr) -> Multiaddr {
    address
        .iter()
        .filter(|protocol| !matches!(protocol, Protocol::Tcp(_)))
        .collect()
}

/// Remembers which warnings were logged, so each is logged once.
#[derive(Default)]
struct Warned(HashSet<String>);

impl Warned {
    /// Whether `key` is new (and remembers it).
    fn first(&mut self, key: String) -> bool {
        if self.0.len() >= MAX_REMEMBERED_WARNINGS {
            self.0.clear();
        }
        self.0.insert(key)
    }

    /// Forgets the warnings whose keys `matches` picks, so they may be logged again.
    fn forget(&mut self, matches: impl Fn(&str) -> bool) {
        self.0.retain(|key| !matches(key));
    }
}
