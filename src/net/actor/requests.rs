//! The one-shot request-response protocols beside sync: history asks (`/officemesh/history/1`)
//! and writes handed to a peer to hold (`/officemesh/hold/1`).

use std::time::Duration;

use libp2p::{
    PeerId,
    request_response::{self, ResponseChannel},
};
use tokio::sync::oneshot;
use tracing::debug;

use super::{Net, Reply, answer};
use crate::{
    net::{NetError, NetEvent, node_id},
    state::Delta,
    wire,
};

impl Net {
    // ---- history ----

    pub(super) fn handle_history(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
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
    pub(super) fn ask_to_hold(
        &mut self,
        delta: &Delta,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    ) {
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

    pub(super) fn handle_hold(&mut self, event: request_response::Event<Vec<u8>, bool>) {
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
}
