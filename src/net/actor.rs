//! The net actor: one task, one `select!` loop, the only owner of the `Swarm`.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use libp2p::{
    Multiaddr, PeerId, Swarm,
    allow_block_list::NotAllowed,
    core::{ConnectedPoint, multiaddr::Protocol, transport::TransportError},
    gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, PublishError},
    identify, mdns, ping,
    request_response::{self, OutboundRequestId, ResponseChannel},
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
    COMMAND_QUEUE, DEFAULT_PUBLISH_INTERVAL, EVENT_QUEUE, MAX_PENDING_REPLIES, MAX_PING_FAILURES,
    MAX_SYNC_PAGES, NetCommand, NetConfig, NetError, NetEvent, NetHandle, Origin, PeerInfo,
    REDIAL_BACKOFF_MAX, REDIAL_BACKOFF_MIN, REPLY_TIMEOUT, Refusal, SyncError, SyncSummary,
    Verdict,
    behaviour::{Behaviour, BehaviourConfig, BehaviourEvent, GOSSIP_PAGE_BYTES, STATE_TOPIC},
    node_id,
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
}

/// A reply from the node (or its absence after [`REPLY_TIMEOUT`]).
enum Reply {
    GossipVerdict {
        message_id: MessageId,
        propagation_source: PeerId,
        publisher: PeerId,
        verdict: Option<Verdict>,
    },
    PageMerged {
        peer: PeerId,
        verdict: Option<Verdict>,
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
            outbound: HashMap::new(),
            history_asks: HashMap::new(),
            holds: HashMap::new(),
            replies: FuturesUnordered::new(),
            bootstrap,
            bootstrap_dials: HashMap::new(),
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
                _ = redial_tick.tick(), if !self.bootstrap.is_empty() => Input::RedialTick,
            };
            match input {
                Input::Swarm(event) => self.handle_swarm_event(event),
                Input::Handshake(failure) => self.handle_handshake_failure(failure),
                Input::Command(Some(command)) => self.handle_command(command),
                // Every handle is gone; the node may still be answering events.
                Input::Command(None) => commands_open = false,
                Input::Reply(reply) => self.handle_reply(reply),
                Input::PublishTick => self.flush_batch(),
                Input::SyncTick => self.sync_with_random_peer(),
                Input::RedialTick => self.redial_bootstrap(),
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
                let _ = reply.send(self.swarm.disconnect_peer_id(peer).is_ok());
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

    // ---- dialing ----

    /// Dials an address with a fresh local port: dials that reuse the listening port can
    /// collide with the peer's dial to us and fail for good. With a peer id, only if not
    /// connected or dialing already.
    fn dial_address(&mut self, address: Multiaddr) -> Result<(), NetError> {
        match self.swarm.dial(dial_opts(&address)) {
            Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => Ok(()),
            Err(error) => Err(NetError::Dial {
                address,
                reason: error.to_string(),
            }),
        }
    }

    /// Dials a discovered peer once, with all its addresses.
    fn dial_peer(&mut self, peer: PeerId, addresses: Vec<Multiaddr>) {
        let opts = DialOpts::peer_id(peer)
            .addresses(addresses)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .allocate_new_port()
            .build();
        if let Err(error) = self.swarm.dial(opts) {
            debug!(%peer, %error, "not dialing a discovered peer");
        }
    }

    fn redial_bootstrap(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (index, bootstrap) in self.bootstrap.iter_mut().enumerate() {
            let connected = bootstrap
                .peer
                .is_some_and(|peer| self.swarm.is_connected(&peer));
            if connected || now < bootstrap.next_attempt {
                continue;
            }
            bootstrap.next_attempt = now + bootstrap.backoff.next_delay();
            let address = match bootstrap.peer {
                // Once known, dial by peer id, so a crossing dial from the peer wins.
                Some(peer) => with_peer(&bootstrap.address, peer),
                // A host name stays a name: the transport resolves it again on each dial.
                None => bootstrap.address.clone(),
            };
            due.push((index, address));
        }
        for (index, address) in due {
            let opts = dial_opts(&address);
            let connection = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.bootstrap_dials.insert(connection, index);
                }
                Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(error) => self.bootstrap_dial_failed(index, &error),
            }
        }
    }

    /// Says once per address and reason, at the default log level, why a configured peer
    /// could not be dialled; a peer that was connected since gets a new warning.
    fn bootstrap_dial_failed(&mut self, index: usize, error: &DialError) {
        let address = &self.bootstrap[index].address;
        if let DialError::LocalPeerId { .. } = error {
            // One peers list shared by every node of an office names each node too.
            if self.warned.first(format!("dial {address}: self")) {
                info!(%address, "peer address {address} is this node's own; nothing to dial");
            }
            return;
        }
        let reason = describe_dial_error(error);
        debug!(%address, %reason, ?error, "dial of a configured peer failed");
        if self.warned.first(format!("dial {address}: {reason}")) {
            warn!(%address, %reason, "cannot dial peer {address}: {reason}; retrying with backoff");
        }
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
        if established == 1 {
            info!(%peer, %address, "peer connected");
            self.emit(NetEvent::PeerConnected { peer });
            // A new peer may have been away: exchange what each side lacks.
            self.start_session(peer, None);
        }
    }

    fn handle_connection_closed(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        remaining: u32,
        cause: Option<ConnectionError>,
    ) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.connections.remove(&connection);
            state.ping_failures.remove(&connection);
        }
        if remaining > 0 {
            return;
        }
        match cause {
            Some(error) => info!(%peer, %error, "peer disconnected"),
            None => info!(%peer, "peer disconnected"),
        }
        self.peers.remove(&peer);
        self.last_pull.remove(&peer);
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
            (error, Some(index)) => self.bootstrap_dial_failed(index, &error),
            (DialError::Transport(errors), None) => {
                for (address, error) in errors {
                    debug!(%address, ?error, "dial failed");
                }
            }
            (error, None) => debug!(?peer, %error, "dial failed"),
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
            BehaviourEvent::Mdns(event) => self.handle_mdns(event),
            BehaviourEvent::Identify(event) => self.handle_identify(event),
            BehaviourEvent::Ping(event) => self.handle_ping(event),
            BehaviourEvent::Limits(never) => match never {},
            BehaviourEvent::Allow(never) => match never {},
        }
    }

    // ---- gossipsub ----

    fn handle_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => self.handle_gossip_message(propagation_source, message_id, message),
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                if self.warned.first(format!("no gossipsub {peer_id}")) {
                    warn!(peer = %peer_id, "peer does not speak gossipsub; it gets state by sync only");
                }
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                if self.warned.first(format!("slow {peer_id}")) {
                    warn!(peer = %peer_id, ?failed_messages, "peer is too slow to take gossip");
                }
            }
            gossipsub::Event::Subscribed { .. } | gossipsub::Event::Unsubscribed { .. } => {}
        }
    }

    /// Checks a gossiped delta before the node sees it: it must decode, hold only valid
    /// values, and hold only writes of its publisher (the signed source).
    fn handle_gossip_message(
        &mut self,
        propagation_source: PeerId,
        message_id: MessageId,
        message: gossipsub::Message,
    ) {
        // Strict validation mode drops unsigned messages before they get here.
        let Some(publisher) = message.source else {
            self.validate(&message_id, &propagation_source, MessageAcceptance::Reject);
            return;
        };
        let delta = match wire::decode_delta(&message.data) {
            Ok(decoded) if decoded.rejected.is_empty() => decoded.delta,
            Ok(decoded) => {
                let reason = format!(
                    "{} invalid entries, e.g. {}",
                    decoded.rejected.len(),
                    decoded.rejected[0]
                );
                self.reject_gossip(&message_id, propagation_source, publisher, &reason);
                return;
            }
            Err(error) => {
                self.reject_gossip(
                    &message_id,
                    propagation_source,
                    publisher,
                    &error.to_string(),
                );
                return;
            }
        };
        let writer = node_id(&publisher);
        if let Some((part, dot)) = delta.store.dots().find(|(_, dot)| dot.writer != writer) {
            let reason = format!("it holds {part} {dot}, a write of another node");
            self.reject_gossip(&message_id, propagation_source, publisher, &reason);
            return;
        }
        let Some(reply) = self.ask_node(|reply| NetEvent::DeltaReceived {
            from: publisher,
            origin: Origin::Gossip,
            delta,
            reply,
        }) else {
            // The node is overwhelmed: drop the message; sync will bring its content.
            self.validate(&message_id, &propagation_source, MessageAcceptance::Ignore);
            return;
        };
        self.wait_for(async move {
            Reply::GossipVerdict {
                message_id,
                propagation_source,
                publisher,
                verdict: answer(reply).await,
            }
        });
    }

    fn reject_gossip(
        &mut self,
        message_id: &MessageId,
        propagation_source: PeerId,
        publisher: PeerId,
        reason: &str,
    ) {
        self.validate(message_id, &propagation_source, MessageAcceptance::Reject);
        self.misbehaved(
            publisher,
            format!("sent a gossiped delta that was rejected: {reason}"),
        );
    }

    /// Logs once per peer that it sent what no honest peer sends, and tells the node.
    fn misbehaved(&mut self, peer: PeerId, reason: String) {
        if self.warned.first(format!("misbehaved {peer}")) {
            warn!(%peer, reason, "peer {peer} {reason}");
            self.emit(NetEvent::PeerMisbehaved { peer, reason });
        }
    }

    fn validate(&mut self, message_id: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message_id, source, acceptance);
    }

    // ---- sync ----

    fn handle_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.handle_sync_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.handle_sync_response(request_id, response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.outbound.remove(&request_id);
                self.end_session(
                    peer,
                    Err(SyncError::Request {
                        peer,
                        reason: error.to_string(),
                    }),
                );
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "answering a sync request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// A peer sent its digest: ask the node what it lacks, and pull from the peer too unless
    /// this node did recently, so one exchange repairs both sides.
    fn handle_sync_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let SyncRequest { digest, after } = request;
        // Only the first page of a session: later pages come from the same exchange.
        if after.is_none() && !self.pulled_recently(&peer) {
            self.start_session(peer, None);
        }
        let Some(reply) = self.ask_node(|reply| NetEvent::SyncRequested {
            from: peer,
            digest,
            reply,
        }) else {
            // Dropping the channel fails the peer's request; it will ask again later.
            return;
        };
        self.wait_for(async move {
            Reply::Answer {
                peer,
                after,
                channel,
                missing: answer(reply).await,
            }
        });
    }

    fn pulled_recently(&self, peer: &PeerId) -> bool {
        self.last_pull
            .get(peer)
            .is_some_and(|at| at.elapsed() < self.sync_interval / 2)
    }

    fn handle_sync_response(&mut self, request_id: OutboundRequestId, response: SyncResponse) {
        let Some(peer) = self.outbound.remove(&request_id) else {
            return;
        };
        if let Some(first) = response.invalid.first() {
            let reason = format!(
                "sent {} invalid entries in a sync page, e.g. {first}; they were dropped",
                response.invalid.len()
            );
            self.misbehaved(peer, reason);
        }
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.summary.pages += 1;
        session.summary.entries += response.page.store.len();
        session.after = response.next;
        if response.page.is_empty() && session.after.is_none() {
            self.end_session(peer, Ok(()));
            return;
        }
        let Some(reply) = self.ask_node(|reply| NetEvent::DeltaReceived {
            from: peer,
            origin: Origin::Sync,
            delta: response.page,
            reply,
        }) else {
            self.end_session(peer, Err(SyncError::NodeUnavailable));
            return;
        };
        self.wait_for(async move {
            Reply::PageMerged {
                peer,
                verdict: answer(reply).await,
            }
        });
    }

    fn sync_with_random_peer(&mut self) {
        let connected: Vec<PeerId> = self.peers.keys().copied().collect();
        if connected.is_empty() {
            return;
        }
        // Which peer matters little, only that it changes: any randomness will do, and if
        // the system has none the first peer is as good as any.
        let index = getrandom::u64().unwrap_or(0) % connected.len() as u64;
        self.start_session(connected[index as usize], None);
    }

    /// Starts pulling from `peer`, or joins the session already running.
    fn start_session(
        &mut self,
        peer: PeerId,
        waiter: Option<oneshot::Sender<Result<SyncSummary, SyncError>>>,
    ) {
        if !self.swarm.is_connected(&peer) {
            if let Some(waiter) = waiter {
                let _ = waiter.send(Err(SyncError::NotConnected(peer)));
            }
            return;
        }
        if let Some(session) = self.sessions.get_mut(&peer) {
            session.waiters.extend(waiter);
            return;
        }
        self.sessions.insert(
            peer,
            Session {
                waiters: waiter.into_iter().collect(),
                ..Session::default()
            },
        );
        self.last_pull.insert(peer, Instant::now());
        self.request_digest(peer);
    }

    fn request_digest(&mut self, peer: PeerId) {
        let Some(reply) = self.ask_node(|reply| NetEvent::DigestWanted { reply }) else {
            self.end_session(peer, Err(SyncError::NodeUnavailable));
            return;
        };
        self.wait_for(async move {
            Reply::Digest {
                peer,
                digest: answer(reply).await,
            }
        });
    }

    fn end_session(&mut self, peer: PeerId, result: Result<(), SyncError>) {
        let Some(session) = self.sessions.remove(&peer) else {
            return;
        };
        match &result {
            Ok(()) => {
                debug!(%peer, pages = session.summary.pages, entries = session.summary.entries, "synced")
            }
            Err(error) => debug!(%peer, %error, "sync ended early"),
        }
        for waiter in session.waiters {
            let _ = waiter.send(result.clone().map(|()| session.summary));
        }
    }

    // ---- replies from the node ----

    fn handle_reply(&mut self, reply: Reply) {
        match reply {
            Reply::GossipVerdict {
                message_id,
                propagation_source,
                publisher,
                verdict,
            } => {
                let acceptance = match verdict {
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
            Reply::PageMerged { peer, verdict } => {
                if verdict == Some(Verdict::Reject) {
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

    // ---- history ----

    fn handle_history(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let Some(reply) = self.ask_node(|reply| NetEvent::HistoryRequested {
                        from: peer,
                        ask: request,
                        reply,
                    }) else {
                        // Dropping the channel fails the peer's request; it asks again later.
                        return;
                    };
                    self.wait_for(async move {
                        Reply::HistoryPage {
                            peer,
                            channel,
                            page: answer(reply).await,
                        }
                    });
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.history_asks.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.history_asks.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "answering a history ask failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    // ---- holding writes ----

    /// Sends a write of this node's to the connected peer with the shortest round trip that
    /// speaks the hold protocol.
    fn ask_to_hold(&mut self, delta: &Delta, reply: oneshot::Sender<Result<PeerId, NetError>>) {
        let holder = self
            .peers
            .iter()
            .filter(|(_, state)| !state.connections.is_empty() && !state.no_hold)
            .min_by_key(|(peer, state)| (state.rtt.unwrap_or(Duration::MAX), **peer))
            .map(|(peer, _)| *peer);
        let Some(holder) = holder else {
            let _ = reply.send(Err(NetError::NoHolder));
            return;
        };
        let request_id = self
            .swarm
            .behaviour_mut()
            .hold
            .send_request(&holder, wire::encode_delta(delta));
        self.holds.insert(request_id, reply);
    }

    fn handle_hold(&mut self, event: request_response::Event<Vec<u8>, bool>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.hold_for(peer, &request, channel),
                request_response::Message::Response {
                    request_id,
                    response: held,
                } => {
                    if let Some(reply) = self.holds.remove(&request_id) {
                        let _ = reply.send(if held {
                            Ok(peer)
                        } else {
                            Err(NetError::NotHeld(peer))
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if matches!(
                    error,
                    request_response::OutboundFailure::UnsupportedProtocols
                ) && let Some(state) = self.peers.get_mut(&peer)
                {
                    state.no_hold = true;
                }
                if let Some(reply) = self.holds.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "answering a hold request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Merges a write `peer` asks this node to hold, checked as a gossiped one is: it must
    /// decode, hold only valid values and only `peer`'s own writes.
    fn hold_for(&mut self, peer: PeerId, request: &[u8], channel: ResponseChannel<bool>) {
        let refusal = match wire::decode_delta(request) {
            Ok(decoded) if decoded.rejected.is_empty() => {
                let writer = node_id(&peer);
                let foreign = decoded
                    .delta
                    .store
                    .dots()
                    .find(|(_, dot)| dot.writer != writer)
                    .map(|(part, dot)| format!("it holds {part} {dot}, a write of another node"));
                match foreign {
                    Some(reason) => Err(reason),
                    None => Ok(decoded.delta),
                }
            }
            Ok(decoded) => Err(format!(
                "{} invalid entries, e.g. {}",
                decoded.rejected.len(),
                decoded.rejected[0]
            )),
            Err(error) => Err(error.to_string()),
        };
        let delta = match refusal {
            Ok(delta) => delta,
            Err(reason) => {
                self.misbehaved(
                    peer,
                    format!("asked to hold a write that was refused: {reason}"),
                );
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .hold
                    .send_response(channel, false);
                return;
            }
        };
        let Some(reply) = self.ask_node(|reply| NetEvent::HoldRequested {
            from: peer,
            delta,
            reply,
        }) else {
            // The node is overwhelmed: the writer saves the write itself.
            let _ = self
                .swarm
                .behaviour_mut()
                .hold
                .send_response(channel, false);
            return;
        };
        self.wait_for(async move {
            Reply::Held {
                peer,
                channel,
                held: answer(reply).await,
            }
        });
    }

    // ---- discovery and liveness ----

    fn handle_mdns(&mut self, event: mdns::Event) {
        let mdns::Event::Discovered(found) = event else {
            return;
        };
        let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for (peer, address) in found {
            by_peer.entry(peer).or_default().push(address);
        }
        let local = *self.swarm.local_peer_id();
        for (peer, addresses) in by_peer {
            if peer != local && !self.swarm.is_connected(&peer) {
                debug!(%peer, ?addresses, "discovered by mDNS");
                self.dial_peer(peer, addresses);
            }
        }
    }

    fn handle_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        if info.protocol_version != super::IDENTIFY_PROTOCOL
            && self.warned.first(format!("protocol {peer_id}"))
        {
            warn!(
                peer = %peer_id,
                protocol = %info.protocol_version,
                "peer speaks another officemesh protocol version"
            );
        }
        if let Some(state) = self.peers.get_mut(&peer_id) {
            state.agent_version = Some(info.agent_version);
        }
    }

    fn handle_ping(&mut self, event: ping::Event) {
        let Some(state) = self.peers.get_mut(&event.peer) else {
            return;
        };
        match event.result {
            Ok(rtt) => {
                state.rtt = Some(rtt);
                state.ping_failures.remove(&event.connection);
            }
            Err(error) => {
                let failures = state.ping_failures.entry(event.connection).or_default();
                *failures += 1;
                if *failures >= MAX_PING_FAILURES {
                    info!(peer = %event.peer, %error, "closing a connection whose pings fail");
                    self.swarm.close_connection(event.connection);
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
