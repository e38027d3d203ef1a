//! Peer exchange: learning the office's other nodes from the peers this node has, and
//! telling peers which nodes it has (`net::exchange`).

use libp2p::{
    Multiaddr, PeerId,
    multiaddr::Protocol,
    request_response::{self, ResponseChannel},
};
use tokio::time::Instant;
use tracing::debug;

use super::Net;
use crate::net::{
    exchange::{KnownPeer, MAX_EXCHANGED_ADDRESSES},
    is_loopback,
};

/// After a new peer connects, the node asks a peer for its peers after this long, then
/// twice as long each time up to [`EXCHANGE_MAX_DELAY`]: often while the office is forming,
/// rarely once it has.
pub(super) const EXCHANGE_FIRST_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
pub(super) const EXCHANGE_MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(60);

fn is_unspecified(address: &Multiaddr) -> bool {
    address.iter().any(|part| match part {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

impl Net {
    /// Keeps the addresses a peer says it listens on (identify), to tell other peers.
    pub(super) fn remember_listen_addresses(&mut self, peer: PeerId, addresses: Vec<Multiaddr>) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.listen_addresses = addresses
                .into_iter()
                .filter(|address| !is_unspecified(address))
                .take(MAX_EXCHANGED_ADDRESSES)
                .collect();
        }
    }

    /// Asks `peer` which nodes it is connected to.
    pub(super) fn ask_for_peers(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) {
            self.swarm.behaviour_mut().exchange.send_request(&peer, ());
        }
    }

    /// A new peer connected: the office may be forming, so ask for peers often again.
    pub(super) fn exchange_soon(&mut self) {
        self.exchange_delay = EXCHANGE_FIRST_DELAY;
        self.exchange_at = Instant::now() + EXCHANGE_FIRST_DELAY;
    }

    /// Asks a random peer for its peers when it is time, then waits twice as long.
    pub(super) fn exchange_if_due(&mut self) {
        if Instant::now() < self.exchange_at {
            return;
        }
        self.exchange_delay = (self.exchange_delay * 2).min(EXCHANGE_MAX_DELAY);
        self.exchange_at = Instant::now() + self.exchange_delay;
        let connected: Vec<PeerId> = self.peers.keys().copied().collect();
        if connected.is_empty() {
            return;
        }
        let index = getrandom::u64().unwrap_or(0) % connected.len() as u64;
        self.ask_for_peers(connected[index as usize]);
    }

    pub(super) fn handle_exchange(&mut self, event: request_response::Event<(), Vec<KnownPeer>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { channel, .. } => {
                    self.answer_peers(peer, channel);
                }
                request_response::Message::Response { response, .. } => {
                    self.dial_known_peers(peer, response);
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "asking a peer for its peers failed");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "telling a peer our peers failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Tells `asker` the peers this node is connected to, with the addresses each said it
    /// listens on; the asker itself is left out.
    fn answer_peers(&mut self, asker: PeerId, channel: ResponseChannel<Vec<KnownPeer>>) {
        let known: Vec<KnownPeer> = self
            .peers
            .iter()
            .filter(|(peer, state)| **peer != asker && !state.listen_addresses.is_empty())
            .map(|(peer, state)| KnownPeer {
                peer: *peer,
                addresses: state.listen_addresses.clone(),
            })
            .collect();
        let _ = self
            .swarm
            .behaviour_mut()
            .exchange
            .send_response(channel, known);
    }

    /// Dials the nodes `from` named that this node is not connected to. Loopback addresses
    /// are only taken from a peer reached over loopback: from any other, they name the
    /// dialling host itself.
    fn dial_known_peers(&mut self, from: PeerId, known: Vec<KnownPeer>) {
        let local = *self.swarm.local_peer_id();
        let from_loopback = self
            .peers
            .get(&from)
            .is_some_and(|state| state.connections.values().any(is_loopback));
        for KnownPeer { peer, addresses } in known {
            if peer == local || self.swarm.is_connected(&peer) {
                continue;
            }
            let addresses: Vec<Multiaddr> = addresses
                .into_iter()
                .filter(|address| from_loopback || !is_loopback(address))
                .filter(|address| !is_unspecified(address))
                .collect();
            if addresses.is_empty() {
                continue;
            }
            debug!(%peer, %from, ?addresses, "learned of a node from a peer");
            self.dial_peer(peer, addresses);
        }
    }
}
