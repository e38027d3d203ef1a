//! The one network behaviour of a node, and how each protocol in it is configured.

use std::{collections::HashSet, time::Duration};

use libp2p::{
    PeerId, allow_block_list, connection_limits,
    gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode},
    identify,
    identity::Keypair,
    mdns, ping,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, behaviour::toggle::Toggle},
};
use sha2::{Digest as _, Sha256};

use super::{
    NetError,
    exchange::{EXCHANGE_PROTOCOL, EXCHANGE_REQUEST_TIMEOUT, ExchangeCodec},
    history::{HISTORY_PROTOCOL, HistoryCodec},
    hold::{HOLD_PROTOCOL, HOLD_REQUEST_TIMEOUT, HoldCodec, MAX_HOLD_STREAMS},
    sync::{SYNC_PROTOCOL, SyncCodec},
};

/// The gossipsub topic deltas are published on.
pub const STATE_TOPIC: &str = "officemesh/1/state";

/// What identify announces as the protocol family; a peer with another one is not us.
pub const IDENTIFY_PROTOCOL: &str = "/officemesh/1.0.0";

/// The largest delta published in one gossip message, in encoded bytes; larger batches go out
/// as several messages. Deltas are pushed to every node once a second, so they stay small; a
/// node that was away catches up through sync, which has its own, larger pages.
pub const GOSSIP_PAGE_BYTES: usize = 64 << 10;

// A write handed to a peer to hold is bounded like a gossip message.
const _: () = assert!(super::hold::MAX_HOLD_BYTES == GOSSIP_PAGE_BYTES);

/// The largest gossipsub RPC accepted or sent: one page plus the envelope gossipsub wraps it
/// in (topic, signature, public key, control messages).
pub const MAX_GOSSIP_TRANSMIT_BYTES: usize = GOSSIP_PAGE_BYTES + (16 << 10);

/// How long a sync request may take, answer included: a page of up to 512 KiB over a slow
/// Wi-Fi link, and the node computing what is missing.
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Most peer exchange streams open on one connection at once: an honest peer asks one at a
/// time, a few seconds apart at most.
const MAX_EXCHANGE_STREAMS: usize = 4;

/// Most sync streams open on one connection at once. Each may hold a page in memory; a peer
/// has one session with us at a time, so a few is plenty.
pub const MAX_SYNC_STREAMS: usize = 4;

/// How many connections one peer may have: one, plus one while two dials cross.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;

/// Connections being set up at once, each way. Bounds what a flood of dials can cost.
pub const MAX_PENDING_CONNECTIONS: u32 = 32;

/// The gossipsub heartbeat starts this soon after start-up (libp2p's default is 5 s, which
/// only delays the first mesh of a freshly started office).
const HEARTBEAT_INITIAL_DELAY: Duration = Duration::from_millis(500);

/// The penalty for each invalid message (gossipsub's P4), squared by count: one rejected
/// message takes a peer to the gossip threshold (-10, no more gossip from it); three in
/// quick succession below the graylist threshold (-80, everything from it ignored) until the
/// penalty decays (halving every decay interval of 1 s).
const INVALID_MESSAGE_WEIGHT: f64 = -10.0;
const INVALID_MESSAGE_DECAY: f64 = 0.5;

/// How gossipsub spreads a message: the mesh it pushes along, and the lazy gossip (IHAVE)
/// around it. An office is tens of nodes on one LAN, so the defaults are chosen for that,
/// not for libp2p's public networks of thousands (D = 6, D_lo = 5, D_hi = 12).
///
/// A mesh where node i has d_i mesh peers carries each published message about
/// sum(d_i - 1) + 1 times: every node forwards a new message to its mesh peers but the one
/// it came from. Measured at 25 nodes with 100 ms links (docs/benchmarks.md,
/// "Dissemination"), immediate publish: 99 transmissions per message at libp2p's defaults,
/// 92 at D = 4, 72 at D = 3, each thinner mesh also faster under load. So D = 3, D_lo = 2:
/// - robustness: with at least 2 mesh peers, one dead node cuts nobody off the push path;
///   the heartbeat (every second) grafts a replacement, and a message lost meanwhile comes
///   by IHAVE/IWANT or, at worst, the next sync (10 s). D = 2 (a line or a ring, about
///   25 transmissions) would let one dead node split the push path and stretch it to tens of
///   hops of latency;
/// - D_hi stays at 12: a node whose mesh is at D_hi refuses the GRAFT of a peer that dialed
///   it (with a 60 s backoff), and with D_hi lowered to 4 or 6 the nodes that only dial
///   (late joiners, whose peers are dialed by many) were left out of the mesh for good in
///   the benchmark. With 12, a node grafts up to D itself and takes grafts from others, so
///   the mesh is denser than D but complete;
/// - gossip_lazy = D: IHAVE every heartbeat to a few non-mesh peers, the in-gossipsub repair
///   (about 2 messages per reading at 25 nodes).
///
/// IDONTWANT (gossipsub 1.2) costs one control message per mesh peer for each message
/// received, to save a duplicate of it; for an office's deltas of a few hundred bytes to a
/// few KiB that is a loss, so it is kept for messages of at least [`IDONTWANT_MIN_BYTES`].
///
/// A node always runs [`GossipTuning::OFFICE`]; only a build with the `bench` feature lets a
/// benchmark set another tuning (`NetConfig::gossip`) to compare meshes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GossipTuning {
    /// D: the mesh degree the heartbeat aims for.
    pub mesh_n: usize,
    /// D_lo: fewer mesh peers than this, and the heartbeat grafts more.
    pub mesh_n_low: usize,
    /// D_hi: more than this (grafts accepted from others), and it prunes down to D.
    pub mesh_n_high: usize,
    /// Non-mesh peers sent IHAVE gossip at each heartbeat, at least.
    pub gossip_lazy: usize,
}

impl GossipTuning {
    /// What an office node runs; see the type's documentation for why.
    pub const OFFICE: GossipTuning = GossipTuning {
        mesh_n: 3,
        mesh_n_low: 2,
        mesh_n_high: 12,
        gossip_lazy: 3,
    };

    /// libp2p-gossipsub 0.50's defaults, for comparison in benchmarks.
    #[cfg(feature = "bench")]
    pub const LIBP2P_DEFAULT: GossipTuning = GossipTuning {
        mesh_n: 6,
        mesh_n_low: 5,
        mesh_n_high: 12,
        gossip_lazy: 6,
    };
}

impl Default for GossipTuning {
    fn default() -> Self {
        GossipTuning::OFFICE
    }
}

/// Gossip messages at least this large are announced with IDONTWANT to mesh peers
/// (gossipsub's default: 1000 bytes, which a batch of a few readings reaches).
const IDONTWANT_MIN_BYTES: usize = GOSSIP_PAGE_BYTES / 4;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Refuses connections beyond the limits; first, so nothing else sees them.
    pub limits: connection_limits::Behaviour,
    /// Refuses peers that are not on the allow-list, when there is one.
    pub allow: Toggle<allow_block_list::Behaviour<allow_block_list::AllowedPeers>>,
    pub gossipsub: gossipsub::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub sync: request_response::Behaviour<SyncCodec>,
    pub history: request_response::Behaviour<HistoryCodec>,
    pub hold: request_response::Behaviour<HoldCodec>,
    pub exchange: request_response::Behaviour<ExchangeCodec>,
}

/// What the behaviour is built from.
pub struct BehaviourConfig<'a> {
    pub keypair: &'a Keypair,
    pub mdns: bool,
    pub allow_list: Option<&'a HashSet<PeerId>>,
    pub max_peers: u32,
    pub gossip: GossipTuning,
}

impl Behaviour {
    pub fn new(config: BehaviourConfig<'_>) -> Result<Self, NetError> {
        let peer_id = config.keypair.public().to_peer_id();
        let limits = connection_limits::ConnectionLimits::default()
            // Counting connections bounds peers too: a peer has one connection, two only
            // while dials cross.
            .with_max_established(Some(config.max_peers))
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
            .with_max_pending_incoming(Some(MAX_PENDING_CONNECTIONS))
            .with_max_pending_outgoing(Some(MAX_PENDING_CONNECTIONS));
        let allow = config.allow_list.map(|peers| {
            let mut allow =
                allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
            for peer in peers {
                allow.allow_peer(*peer);
            }
            allow
        });
        let mdns = if config.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(NetError::Mdns)?,
            )
        } else {
            None
        };
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), config.keypair.public())
                .with_agent_version(format!("officemesh/{}", env!("CARGO_PKG_VERSION"))),
        );
        let sync = request_response::Behaviour::with_codec(
            SyncCodec,
            [(SYNC_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(SYNC_REQUEST_TIMEOUT)
                .with_max_concurrent_streams(MAX_SYNC_STREAMS),
        );
        let history = request_response::Behaviour::with_codec(
            HistoryCodec,
            [(HISTORY_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(SYNC_REQUEST_TIMEOUT)
                .with_max_concurrent_streams(MAX_SYNC_STREAMS),
        );
        let hold = request_response::Behaviour::with_codec(
            HoldCodec,
            [(HOLD_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(HOLD_REQUEST_TIMEOUT)
                .with_max_concurrent_streams(MAX_HOLD_STREAMS),
        );
        let exchange = request_response::Behaviour::with_codec(
            ExchangeCodec,
            [(EXCHANGE_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(EXCHANGE_REQUEST_TIMEOUT)
                // One exchange per peer at a time is all a node asks for.
                .with_max_concurrent_streams(MAX_EXCHANGE_STREAMS),
        );
        Ok(Behaviour {
            limits: connection_limits::Behaviour::new(limits),
            allow: allow.into(),
            gossipsub: gossipsub(config.keypair, config.gossip)?,
            mdns: mdns.into(),
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            sync,
            history,
            hold,
            exchange,
        })
    }
}

/// Gossipsub with strict signing, validation by the application, content-addressed message
/// ids, a bounded message size, and peer scoring so that invalid messages cost their sender.
fn gossipsub(keypair: &Keypair, tuning: GossipTuning) -> Result<gossipsub::Behaviour, NetError> {
    let config = gossipsub::ConfigBuilder::default()
        .mesh_n(tuning.mesh_n)
        .mesh_n_low(tuning.mesh_n_low)
        .mesh_n_high(tuning.mesh_n_high)
        // At most half of D, as gossipsub requires; 2 (its default) once D allows it.
        .mesh_outbound_min((tuning.mesh_n / 2).clamp(1, 2))
        .gossip_lazy(tuning.gossip_lazy)
        .idontwant_message_size_threshold(IDONTWANT_MIN_BYTES)
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_TRANSMIT_BYTES)
        .message_id_fn(|message| content_id(&message.data))
        .heartbeat_initial_delay(HEARTBEAT_INITIAL_DELAY)
        .build()
        .map_err(|error| NetError::Gossipsub(error.to_string()))?;
    let mut gossipsub =
        gossipsub::Behaviour::new(MessageAuthenticity::Signed(keypair.clone()), config)
            .map_err(|error| NetError::Gossipsub(error.to_owned()))?;
    let topic = IdentTopic::new(STATE_TOPIC);
    let (params, thresholds) = scoring(&topic);
    gossipsub
        .with_peer_score(params, thresholds)
        .map_err(NetError::Gossipsub)?;
    gossipsub
        .subscribe(&topic)
        .map_err(|error| NetError::Gossipsub(error.to_string()))?;
    Ok(gossipsub)
}

/// The id of a gossip message: the SHA-256 of its content, so the same delta published
/// twice is one message, and every implementation computes the same id.
pub fn content_id(data: &[u8]) -> MessageId {
    MessageId::new(&Sha256::digest(data))
}

/// Peer scoring that punishes invalid messages and little else.
///
/// libp2p's defaults also punish mesh peers that deliver fewer than 20 messages per window
/// (P3) and many peers behind one IP address; an office publishes a few small deltas a
/// second, and a demo runs every node on one host, so both are off.
fn scoring(topic: &IdentTopic) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let topic_params = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: INVALID_MESSAGE_DECAY,
        ..Default::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    params.topics.insert(topic.hash(), topic_params);
    (params, gossipsub::PeerScoreThresholds::default())
}
