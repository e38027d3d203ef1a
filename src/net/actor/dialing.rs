//! Dialing and discovery: bootstrap peers redialled with backoff, dial failures named by the
//! address as configured, lost peers redialled for a while, mDNS, identify and ping
//! (liveness).
//!
//! A peer whose last connection closed, configured or not, is dialled every second for
//! [`FAST_REDIAL_FOR`], and again at once when a dial fails after that second: each dial
//! sends a fresh SYN (a TCP dial gives up after `transport::CONNECT_TIMEOUT`), so when a
//! partition heals one is on the wire within about a second. After that the dials back off.

use std::{collections::HashMap, time::Duration};

use libp2p::{
    Multiaddr, PeerId, identify, mdns, ping,
    swarm::{
        DialError,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Net, describe_dial_error, dial_opts, with_peer};
use crate::{
    backoff::Backoff,
    net::{
        FAST_REDIAL_FOR, LOST_PEER_REDIAL_FOR, MAX_PEERS, MAX_PING_FAILURES, NetError,
        REDIAL_BACKOFF_MAX, REDIAL_BACKOFF_MIN, is_loopback,
    },
};

/// A peer whose last connection closed: where it said it listens, and when to dial it next.
pub(super) struct Lost {
    addresses: Vec<Multiaddr>,
    backoff: Backoff,
    next_attempt: Instant,
    since: Instant,
}

/// The wait before the next dial of a peer: every [`REDIAL_BACKOFF_MIN`] while its last
/// connection closed less than [`FAST_REDIAL_FOR`] ago, else the backoff's next wait.
pub(super) fn redial_delay(
    backoff: &mut Backoff,
    lost_at: Option<Instant>,
    now: Instant,
) -> Duration {
    match lost_at {
        Some(lost_at) if now.saturating_duration_since(lost_at) < FAST_REDIAL_FOR => {
            REDIAL_BACKOFF_MIN
        }
        _ => backoff.next_delay(),
    }
}

impl Net {
    // ---- dialing ----

    /// Dials an address with a fresh local port: dials that reuse the listening port can
    /// collide with the peer's dial to us and fail for good. With a peer id, only if not
    /// connected or dialing already.
    pub(super) fn dial_address(&mut self, address: Multiaddr) -> Result<(), NetError> {
        match self.swarm.dial(dial_opts(&address)) {
            Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => Ok(()),
            Err(error) => Err(NetError::Dial {
                address,
                reason: error.to_string(),
            }),
        }
    }

    /// Dials a discovered peer once, with all its addresses.
    pub(super) fn dial_peer(&mut self, peer: PeerId, addresses: Vec<Multiaddr>) {
        let opts = DialOpts::peer_id(peer)
            .addresses(addresses)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .allocate_new_port()
            .build();
        if let Err(error) = self.swarm.dial(opts) {
            debug!(%peer, %error, "not dialing a discovered peer");
        }
    }

    pub(super) fn redial_bootstrap(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (index, bootstrap) in self.bootstrap.iter_mut().enumerate() {
            let connected = bootstrap
                .peer
                .is_some_and(|peer| self.swarm.is_connected(&peer));
            if connected || now < bootstrap.next_attempt {
                continue;
            }
            bootstrap.next_attempt =
                now + redial_delay(&mut bootstrap.backoff, bootstrap.lost_at, now);
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

    /// Remembers a peer whose last connection just closed, to dial it again: it may be
    /// behind a partition that outlived the connection, or rebooting. Only the addresses it
    /// said it listens on are dialled (an incoming connection's port is not one); loopback
    /// ones only if it was reached over loopback. Bootstrap peers are redialled as such.
    pub(super) fn remember_lost(
        &mut self,
        peer: PeerId,
        listen_addresses: Vec<Multiaddr>,
        over_loopback: bool,
    ) {
        let addresses: Vec<Multiaddr> = listen_addresses
            .into_iter()
            .filter(|address| over_loopback || !is_loopback(address))
            .collect();
        let bootstrap = self.bootstrap.iter().any(|entry| entry.peer == Some(peer));
        if addresses.is_empty() || bootstrap || self.lost.len() >= MAX_PEERS as usize {
            return;
        }
        let mut backoff = Backoff::new(REDIAL_BACKOFF_MIN, REDIAL_BACKOFF_MAX);
        let now = Instant::now();
        self.lost.insert(
            peer,
            Lost {
                addresses,
                next_attempt: now + redial_delay(&mut backoff, Some(now), now),
                backoff,
                since: now,
            },
        );
    }

    /// Dials the lost peers that are due, and forgets those lost for longer than
    /// [`LOST_PEER_REDIAL_FOR`]: mDNS and peer exchange find them if they come back.
    pub(super) fn redial_lost(&mut self) {
        let now = Instant::now();
        self.lost.retain(|peer, lost| {
            let keep = now.duration_since(lost.since) < LOST_PEER_REDIAL_FOR;
            if !keep {
                debug!(%peer, "no longer redialling a peer lost an hour ago");
            }
            keep
        });
        let mut due = Vec::new();
        for (peer, lost) in &mut self.lost {
            if now >= lost.next_attempt {
                lost.next_attempt = now + redial_delay(&mut lost.backoff, Some(lost.since), now);
                due.push((*peer, lost.addresses.clone()));
            }
        }
        for (peer, addresses) in due {
            debug!(%peer, ?addresses, "redialling a lost peer");
            self.dial_peer(peer, addresses);
        }
    }

    /// Says once per address and reason, at the default log level, why a configured peer
    /// could not be dialled; a peer that was connected since gets a new warning.
    pub(super) fn bootstrap_dial_failed(&mut self, index: usize, error: &DialError) {
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
    // ---- discovery and liveness ----

    pub(super) fn handle_mdns(&mut self, event: mdns::Event) {
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

    pub(super) fn handle_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        if info.protocol_version != crate::net::IDENTIFY_PROTOCOL
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
        self.remember_listen_addresses(peer_id, info.listen_addrs);
        // Which nodes it knows, for those this node does not yet.
        self.ask_for_peers(peer_id);
    }

    pub(super) fn handle_ping(&mut self, event: ping::Event) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_lost_a_moment_ago_is_dialled_every_second_then_with_backoff() {
        let lost_at = Instant::now();
        let mut backoff = Backoff::new(REDIAL_BACKOFF_MIN, REDIAL_BACKOFF_MAX);
        let fast: Vec<Duration> = (0..5)
            .map(|second| {
                redial_delay(
                    &mut backoff,
                    Some(lost_at),
                    lost_at + Duration::from_secs(second * 20),
                )
            })
            .collect();
        assert_eq!(fast, vec![REDIAL_BACKOFF_MIN; 5]);
        let later = lost_at + FAST_REDIAL_FOR;
        let slow: Vec<u64> = (0..4)
            .map(|_| redial_delay(&mut backoff, Some(lost_at), later).as_secs())
            .collect();
        assert_eq!(slow, [1, 2, 4, 8]);
    }

    #[test]
    fn a_peer_never_connected_is_dialled_with_backoff() {
        let now = Instant::now();
        let mut backoff = Backoff::new(REDIAL_BACKOFF_MIN, REDIAL_BACKOFF_MAX);
        let waits: Vec<u64> = (0..4)
            .map(|_| redial_delay(&mut backoff, None, now).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8]);
    }
}
