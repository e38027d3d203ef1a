//! The network: how replicas of the office state reach each other, over rust-libp2p.
//!
//! One actor, [`Net`], owns the libp2p `Swarm` and nothing else touches it. The rest of the
//! node reaches it through a cloneable [`NetHandle`] (commands over a bounded channel, each
//! request with a oneshot reply) and hears from it through a bounded channel of
//! [`NetEvent`]s. The net actor does not hold the replica: when it needs the replica (merge
//! a received delta, a digest, what a peer lacks) it asks with an event that carries a
//! oneshot reply, and keeps running while it waits.
//!
//! How state moves (see `design.md`):
//! - **Push.** [`NetHandle::publish`] batches deltas for one publish interval (1 s by
//!   default) and publishes them on the gossipsub topic `officemesh/1/state`;
//!   [`NetHandle::publish_now`] sends at once (alerts, chat-driven writes). Messages are
//!   signed (strict mode) and validated before they are forwarded: a delta may only hold
//!   writes of the peer that signed it, and what the replica rejects is rejected, which
//!   costs the sender gossipsub score. Gossip is best effort: a publish with no subscribed
//!   peer is dropped quietly.
//! - **Pull.** On every new connection, and every sync interval (10 s) with one random
//!   peer, the node sends its digest over `/officemesh/sync/1` and merges the answer, page
//!   by page (see [`sync`]). A node that receives a sync request pulls from the asker too,
//!   unless it did so recently, so one exchange repairs both sides.
//! - **Admission.** TCP, then pnet with the office's [`SwarmKey`], then Noise, then yamux;
//!   no QUIC (pnet needs a stream transport). A peer with another key fails the pnet
//!   handshake; the node logs one line per address and emits
//!   [`NetEvent::AdmissionRefused`]. An optional allow-list of peer ids narrows admission.
//! - **Discovery.** mDNS (optional) and bootstrap addresses (IP addresses or host names),
//!   redialled with backoff; a bootstrap address that cannot be dialled is a warning that
//!   names it and the reason, once per address and reason until it connects.
//!
//! A node's [`NodeId`](crate::state::NodeId) is its peer id in base58 ([`node_id`]): that is
//! what lets a receiver check a gossiped write against the message's signature.

mod actor;
mod behaviour;
pub mod config;
#[cfg(feature = "bench")]
mod counting;
#[cfg(feature = "bench")]
mod delay;
pub mod exchange;
pub mod history;
pub mod hold;
pub mod join;
pub mod paging;
pub mod rate;
pub mod settings;
mod socket;
mod swarm_key;
pub mod sync;
mod transport;

use std::{collections::HashSet, io, time::Duration};

/// A peer's libp2p identity, as the net module names peers to the rest of the node.
pub use libp2p::PeerId;
use libp2p::{Multiaddr, identity::Keypair, multiaddr::Protocol};
use thiserror::Error;
use tokio::sync::oneshot;

pub use self::{
    actor::{Net, NetParts},
    behaviour::{
        GOSSIP_PAGE_BYTES, GossipTuning, IDENTIFY_PROTOCOL, MAX_GOSSIP_TRANSMIT_BYTES, STATE_TOPIC,
        content_id,
    },
    history::HISTORY_PROTOCOL,
    hold::HOLD_PROTOCOL,
    join::{JoinToken, JoinTokenError},
    swarm_key::{SWARM_KEY_LEN, SwarmKey, SwarmKeyError},
    sync::{SYNC_PAGE_BYTES, SYNC_PROTOCOL},
    transport::{BaseTransport, CONNECTION_TIMEOUT},
};
#[cfg(feature = "bench")]
pub use self::{
    counting::{MessageCounts, MessageKind},
    delay::{LinkCounters, LinkDelay},
};
use crate::state::{Delta, Digest, MergeReport, NodeId, RejectReason};

/// Commands waiting for the net actor. A node sends a few per publish interval (a publish,
/// a peers query from the HTTP API); more than this many waiting means the actor is stuck,
/// and callers should feel it.
pub const COMMAND_QUEUE: usize = 64;

/// Events waiting for the node. The busiest source is gossip: one message per peer per
/// publish interval. Past this, the net actor drops what it cannot deliver (a gossiped delta
/// is then ignored, a sync request or round skipped) instead of blocking the swarm; sync
/// repairs the loss.
pub const EVENT_QUEUE: usize = 256;

/// Replies the net actor may wait for at once (merge verdicts, digests, answers to peers).
pub const MAX_PENDING_REPLIES: usize = 256;

/// How long the net actor waits for the node to answer an event. Gossipsub keeps a message
/// for validation for 5 heartbeats (5 s); the verdict must come before.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// Most pages one sync session takes (each at most [`SYNC_PAGE_BYTES`]): 32 MiB, more than
/// the whole state of a large office. The next session continues where this one stopped.
pub const MAX_SYNC_PAGES: usize = 64;

/// Peers a node keeps connections to. An office is tens of nodes; gossipsub keeps the
/// fan-out of a publish near its mesh degree (see [`GossipTuning`]) whatever this is.
pub const MAX_PEERS: u32 = 64;

/// Consecutive ping failures, as libp2p reports them, after which a connection is closed: the
/// peer is gone (a Pi unplugged sends no FIN). libp2p's ping reports failures but closes
/// nothing, and it does not report a connection's first failure, so the connection closes at
/// its fourth failed ping in a row (measured: about 45 s after a peer stops answering).
pub const MAX_PING_FAILURES: u32 = 3;

/// First and longest wait before redialling a bootstrap peer that dropped or never answered.
pub const REDIAL_BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const REDIAL_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// For this long after its last connection closed, a peer (configured or not) is dialled
/// again every [`REDIAL_BACKOFF_MIN`] rather than with the backoff: each dial starts with a
/// fresh SYN (`transport::CONNECT_TIMEOUT`), so the office is whole again within about a
/// second of a partition healing. Past it, a peer that is gone (switched off, moved) costs
/// ever fewer dials.
pub const FAST_REDIAL_FOR: Duration = Duration::from_secs(120);

/// How long a peer whose last connection closed is redialled (with the backoff above) before
/// the node leaves finding it again to mDNS and peer exchange. A partition longer than a
/// capped connection survives (`socket`), a switch restarting or a node rebooting all end
/// with the node dialling the peer again, not waiting minutes for mDNS to ask.
pub const LOST_PEER_REDIAL_FOR: Duration = Duration::from_secs(3600);

/// Default interval between gossip publishes of batched deltas.
pub const DEFAULT_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Default interval between syncs with one random peer.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// A gossiped delta that shows missed writes makes the node pull from the peer that sent it
/// at once, but from one peer at most this often: after a partition heals the first message
/// starts the repair, and a burst of messages with the same gap starts only one.
pub const GAP_PULL_INTERVAL: Duration = Duration::from_secs(1);

/// How a node joins the network.
pub struct NetConfig {
    /// This node's identity. Its peer id is its node id ([`node_id`]).
    pub keypair: Keypair,
    /// The office's pre-shared key.
    pub swarm_key: SwarmKey,
    /// Where to listen. Default: every IPv4 interface, a port the system picks.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and redial with backoff whenever they drop (`--peer`).
    /// An address may end with `/p2p/<peer id>`; a host name (`/dns4/…`) is looked up again
    /// on every dial. One the transport cannot dial is left out with a warning.
    pub bootstrap: Vec<Multiaddr>,
    /// When set, only these peers are admitted (on top of the swarm key).
    pub allow_list: Option<HashSet<PeerId>>,
    /// Discover peers on the LAN with mDNS. Default: on.
    pub mdns: bool,
    /// How long deltas are batched before a gossip publish. Default: 1 s. Zero publishes
    /// every delta at once (benchmarks; the config refuses less than 100 ms).
    pub publish_interval: Duration,
    /// How often to sync with one random connected peer. Default: 10 s.
    pub sync_interval: Duration,
    /// Most connections established at once, and so most peers (a peer has one connection,
    /// two only while dials cross). Default: [`MAX_PEERS`].
    pub max_peers: u32,
    /// TCP, or TCP and in-memory addresses for tests. Default: TCP.
    pub transport: BaseTransport,
    /// An artificial latency on every link, for benchmarks ([`LinkDelay`]). Default: none.
    #[cfg(feature = "bench")]
    pub link_delay: Option<LinkDelay>,
    /// The gossipsub mesh, for benchmarks that compare meshes. Default:
    /// [`GossipTuning::OFFICE`], which is what a build without the `bench` feature always runs.
    #[cfg(feature = "bench")]
    pub gossip: GossipTuning,
}

impl NetConfig {
    pub fn new(keypair: Keypair, swarm_key: SwarmKey) -> Self {
        NetConfig {
            keypair,
            swarm_key,
            listen: vec!["/ip4/0.0.0.0/tcp/0".parse().expect("a valid multiaddr")],
            bootstrap: Vec::new(),
            allow_list: None,
            mdns: true,
            publish_interval: DEFAULT_PUBLISH_INTERVAL,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            max_peers: MAX_PEERS,
            transport: BaseTransport::Tcp,
            #[cfg(feature = "bench")]
            link_delay: None,
            #[cfg(feature = "bench")]
            gossip: GossipTuning::OFFICE,
        }
    }
}

/// The node id of the node with this peer id: the peer id in base58.
pub fn node_id(peer: &PeerId) -> NodeId {
    NodeId::new(peer.to_base58()).expect("a base58 peer id is printable ASCII of about 52 bytes")
}

/// The peer id a node id names; fails for an id that is no base58 peer id (a simulator's).
pub fn peer_id(node: &NodeId) -> Result<PeerId, NetError> {
    node.as_str()
        .parse()
        .map_err(|_| NetError::NotAPeer(node.clone()))
}

/// Why the network could not start, or a command failed.
#[derive(Debug, Error)]
pub enum NetError {
    #[error("cannot set up Noise with this identity: {0}")]
    Noise(#[from] libp2p::noise::Error),
    #[error("cannot start mDNS: {0}")]
    Mdns(#[source] io::Error),
    #[error("cannot configure gossipsub: {0}")]
    Gossipsub(String),
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: Multiaddr, reason: String },
    #[error("cannot dial {address}: {reason}")]
    Dial { address: Multiaddr, reason: String },
    #[error("the request to peer {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("node id {0} is not a libp2p peer id")]
    NotAPeer(NodeId),
    #[error("no connected peer can hold a write")]
    NoHolder,
    #[error("peer {0} did not hold the write")]
    NotHeld(PeerId),
    #[error("the network actor has stopped")]
    Stopped,
}

/// Why a sync session with a peer ended without completing.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SyncError {
    #[error("not connected to peer {0}")]
    NotConnected(PeerId),
    #[error("the sync request to peer {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("the node did not answer in time (its event queue is full or it stopped)")]
    NodeUnavailable,
    #[error("stopped after {MAX_SYNC_PAGES} pages from peer {0}; the next session continues")]
    TooManyPages(PeerId),
    #[error("the network actor has stopped")]
    Stopped,
}

/// What a completed sync session brought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Pages received (a session with nothing to exchange still takes one, empty).
    pub pages: usize,
    /// Writes received, before merging (some may have been known already).
    pub entries: usize,
}

/// What the node decided about a delta it was given to merge. For gossip it decides
/// whether gossipsub forwards the message and whether its sender is penalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Merged and new: forward it.
    Accept,
    /// Holds writes no honest node sends: drop it and penalise the sender.
    Reject,
    /// Nothing new, or not mergeable now through no fault of the sender: drop it quietly.
    Ignore,
}

impl Verdict {
    /// The verdict on a merge: a write its writer may not make, an invalid value or an
    /// impossible sequence number is the sender's fault (reject); a stamp too far ahead of
    /// this node's clock may be this node's clock, and a writer past its entries may have
    /// had other entries admitted here than at the sender (ignore, do not forward; the node
    /// names the writer); a merge that changed nothing is a duplicate (ignore).
    pub fn of(report: &MergeReport) -> Self {
        let sender_at_fault = report.rejected.iter().any(|rejection| {
            !matches!(
                rejection.reason,
                RejectReason::ClockAhead(_) | RejectReason::TooManyEntries { .. }
            )
        });
        if sender_at_fault {
            Verdict::Reject
        } else if !report.rejected.is_empty() || !report.changed() {
            Verdict::Ignore
        } else {
            Verdict::Accept
        }
    }
}

/// The node's answer to a delta it merged: its verdict, and whether the delta showed that
/// this node missed writes of its writer (then the net actor pulls from the peer that sent
/// it at once, rather than waiting for the periodic sync).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Merged {
    pub verdict: Verdict,
    pub gap: bool,
}

impl Merged {
    pub fn of(report: &MergeReport) -> Self {
        Merged {
            verdict: Verdict::of(report),
            gap: report.gap,
        }
    }
}

/// Whether `address` names this machine only (127.0.0.0/8, ::1): from another machine it
/// names that machine itself.
pub(crate) fn is_loopback(address: &Multiaddr) -> bool {
    match address.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// How a delta arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Pushed by its writer over gossipsub.
    Gossip,
    /// A page of a sync answer; it relays anyone's writes.
    Sync,
}

/// Why a peer was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It failed the private-network handshake: another swarm key, or none.
    PrivateNetwork,
    /// It is not on the allow-list.
    NotAllowed,
}

/// What the net actor tells the node. Events with a `reply` must be answered promptly
/// (within [`REPLY_TIMEOUT`]); a dropped reply counts as no answer.
#[derive(Debug)]
pub enum NetEvent {
    /// The node listens on a new address.
    Listening { address: Multiaddr },
    /// The first connection to a peer is up.
    PeerConnected { peer: PeerId },
    /// The last connection to a peer is down.
    PeerDisconnected { peer: PeerId },
    /// Merge this delta, received from `from` (the publisher for gossip, the responder for
    /// sync), and answer with [`Merged::of`] the merge report.
    DeltaReceived {
        from: PeerId,
        origin: Origin,
        delta: Delta,
        reply: oneshot::Sender<Merged>,
    },
    /// Send the replica's digest: a sync session is starting or continuing.
    DigestWanted { reply: oneshot::Sender<Digest> },
    /// Peer `from` sent its digest: answer with `Replica::missing_for` it. The net actor
    /// pages the answer.
    SyncRequested {
        from: PeerId,
        digest: Digest,
        reply: oneshot::Sender<Delta>,
    },
    /// Peer `from` asks for history (`wire::history` ask bytes): answer with a page.
    HistoryRequested {
        from: PeerId,
        ask: Vec<u8>,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// Peer `from` asks this node to hold one of its writes (`hold::HOLD_PROTOCOL`): merge
    /// `delta` and answer whether it is now held, every entry of it admitted.
    HoldRequested {
        from: PeerId,
        delta: Delta,
        reply: oneshot::Sender<bool>,
    },
    /// A peer sent data no honest peer sends (a gossiped delta with another node's writes,
    /// invalid entries); it was dropped, and gossip penalises the peer. Sent once per peer,
    /// like the log line.
    PeerMisbehaved { peer: PeerId, reason: String },
    /// A peer was refused; sent once per address or peer, like the log line.
    AdmissionRefused {
        address: Option<Multiaddr>,
        peer: Option<PeerId>,
        refusal: Refusal,
    },
}

/// A connected peer, as [`NetHandle::peers`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    pub peer: PeerId,
    /// The remote addresses of its open connections.
    pub addresses: Vec<Multiaddr>,
    /// The round-trip time of the last successful ping.
    pub rtt: Option<Duration>,
    /// What it announced through identify, e.g. `officemesh/0.1.0`.
    pub agent_version: Option<String>,
    /// Whether it has subscribed to the state topic (gossip can reach it).
    pub subscribed: bool,
    /// Whether it is in this node's gossipsub mesh for the state topic.
    pub in_mesh: bool,
    /// Its gossipsub score as this node sees it; negative after invalid messages.
    pub gossip_score: Option<f64>,
}

/// What the node asks of the net actor; [`NetHandle`] wraps each one.
#[derive(Debug)]
pub enum NetCommand {
    /// Add a delta to the batch published at the next publish interval.
    Publish(Delta),
    /// Publish this delta, with whatever is batched, now.
    PublishNow(Delta),
    /// Sync with a peer now; the reply comes when the session ends.
    SyncWith {
        peer: PeerId,
        reply: oneshot::Sender<Result<SyncSummary, SyncError>>,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// Dial an address, once (it is not redialled; bootstrap peers are).
    Dial {
        address: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Close every connection to a peer; replies whether there was one.
    Disconnect {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    /// Send a history ask to a peer (`history::HISTORY_PROTOCOL`); the reply is its page.
    AskHistory {
        peer: PeerId,
        ask: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetError>>,
    },
    /// Hand a write of this node's to one connected peer to hold
    /// (`hold::HOLD_PROTOCOL`); the reply names the peer once it confirms.
    Hold {
        delta: Delta,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
}

/// The node's way to the net actor. Cheap to clone; every method fails with
/// [`NetError::Stopped`] once the actor has stopped.
#[derive(Clone, Debug)]
pub struct NetHandle {
    commands: tokio::sync::mpsc::Sender<NetCommand>,
    peer_id: PeerId,
}

impl NetHandle {
    pub fn local_peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This node's id in the office state.
    pub fn node_id(&self) -> NodeId {
        node_id(&self.peer_id)
    }

    /// Publishes a delta with the next batch.
    pub async fn publish(&self, delta: Delta) -> Result<(), NetError> {
        self.send(NetCommand::Publish(delta)).await
    }

    /// Publishes a delta (and the batch) at once.
    pub async fn publish_now(&self, delta: Delta) -> Result<(), NetError> {
        self.send(NetCommand::PublishNow(delta)).await
    }

    /// Syncs with `peer` and returns when the session ends. The node must keep answering
    /// [`NetEvent`]s meanwhile, so do not await this in the loop that answers them.
    pub async fn sync_with(&self, peer: PeerId) -> Result<SyncSummary, SyncError> {
        let (reply, answer) = oneshot::channel();
        self.send(NetCommand::SyncWith { peer, reply })
            .await
            .map_err(|_| SyncError::Stopped)?;
        answer.await.map_err(|_| SyncError::Stopped)?
    }

    /// Sends a history ask to the node `peer` and returns its answer, the bytes of one page.
    pub async fn ask_history(&self, peer: &NodeId, ask: Vec<u8>) -> Result<Vec<u8>, NetError> {
        let peer = peer_id(peer)?;
        self.ask(|reply| NetCommand::AskHistory { peer, ask, reply })
            .await?
    }

    /// Hands a write of this node's (its delta) to one connected peer, the one with the
    /// shortest round trip, and returns that peer once it confirms it holds the write. Fails
    /// when no peer is connected, the peer refuses or the request fails; callers bound the
    /// wait themselves.
    pub async fn hold(&self, delta: Delta) -> Result<PeerId, NetError> {
        self.ask(|reply| NetCommand::Hold { delta, reply }).await?
    }

    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.ask(NetCommand::Peers).await
    }

    /// Dials an address once, with a fresh local port.
    pub async fn dial(&self, address: Multiaddr) -> Result<(), NetError> {
        self.ask(|reply| NetCommand::Dial { address, reply })
            .await?
    }

    /// Closes every connection to `peer`; returns whether there was one.
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool, NetError> {
        self.ask(|reply| NetCommand::Disconnect { peer, reply })
            .await
    }

    /// The addresses the node listens on now.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(NetCommand::ListenAddrs).await
    }

    async fn send(&self, command: NetCommand) -> Result<(), NetError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Stopped)
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> NetCommand,
    ) -> Result<T, NetError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await?;
        answer.await.map_err(|_| NetError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{
        Delta, DotMap, MIN_PLAUSIBLE_WALL_MS, Quantity, Reading, ReadingKey, Replica, Room,
        SensorId,
    };

    const NOW_MS: u64 = MIN_PLAUSIBLE_WALL_MS + 1_000_000;

    fn replica(id: &str) -> Replica {
        let mut replica = Replica::new(NodeId::new(id).unwrap(), u64::MAX / 4);
        replica.snapshot();
        replica
    }

    fn reading(writer: &mut Replica, value: f64) -> Delta {
        writer
            .record_reading(
                SensorId::new("desk").unwrap(),
                Room::new("open space").unwrap(),
                Quantity::Temperature,
                value,
                "°C",
                NOW_MS,
            )
            .unwrap()
    }

    #[test]
    fn verdicts_of_merges() {
        let mut writer = replica("writer");
        let mut reader = replica("reader");
        let delta = reading(&mut writer, 21.0);
        let sender = writer.id().clone();
        let report = reader.merge(delta.clone(), &sender, NOW_MS);
        assert_eq!(Verdict::of(&report), Verdict::Accept);
        let again = reader.merge(delta.clone(), &sender, NOW_MS);
        assert_eq!(Verdict::of(&again), Verdict::Ignore, "a duplicate");

        // The same write moved under another node's key: its writer may not write it.
        let mut forged = Delta {
            context: delta.context.clone(),
            ..Delta::default()
        };
        let mut readings = DotMap::<Reading>::default();
        for (key, dot, value) in delta.store.readings.iter() {
            let key = ReadingKey {
                node: NodeId::new("victim").unwrap(),
                sensor: key.sensor.clone(),
            };
            readings.insert(key, dot.clone(), value.clone());
        }
        forged.store.readings = readings;
        let report = replica("other").merge(forged, &sender, NOW_MS);
        assert_eq!(Verdict::of(&report), Verdict::Reject);
    }

    #[test]
    fn a_stamp_from_the_future_is_ignored_not_rejected() {
        let mut writer = replica("writer");
        let ahead_ms = 60 * 60 * 1000;
        let delta = writer
            .record_reading(
                SensorId::new("desk").unwrap(),
                Room::new("open space").unwrap(),
                Quantity::Temperature,
                21.0,
                "°C",
                NOW_MS + ahead_ms,
            )
            .unwrap();
        let report = replica("reader").merge(delta, writer.id(), NOW_MS);
        assert!(!report.rejected.is_empty());
        assert_eq!(Verdict::of(&report), Verdict::Ignore);
    }

    #[test]
    fn node_ids_are_base58_peer_ids() {
        let peer = PeerId::random();
        assert_eq!(node_id(&peer).as_str(), peer.to_base58());
    }

    #[test]
    fn default_config() {
        let config = NetConfig::new(Keypair::generate_ed25519(), SwarmKey::from_bytes([7; 32]));
        assert_eq!(config.publish_interval, Duration::from_secs(1));
        assert_eq!(config.sync_interval, Duration::from_secs(10));
        assert!(config.mdns);
        assert!(config.bootstrap.is_empty() && config.allow_list.is_none());
        assert_eq!(config.max_peers, MAX_PEERS);
        assert_eq!(config.transport, BaseTransport::Tcp);
        #[cfg(feature = "bench")]
        {
            assert!(config.link_delay.is_none());
            assert_eq!(config.gossip, GossipTuning::OFFICE);
        }
    }
}
