//! Gossip: publishing this node's deltas in batches, and checking a gossiped delta before
//! the node merges it.

use libp2p::{
    PeerId,
    gossipsub::{self, MessageAcceptance, MessageId},
};
use tracing::warn;

use super::{Net, Reply, answer};
use crate::{
    net::{NetEvent, Origin, node_id},
    wire,
};

impl Net {
    // ---- gossipsub ----

    pub(super) fn handle_gossipsub(&mut self, event: gossipsub::Event) {
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
                merged: answer(reply).await,
            }
        });
    }

    pub(super) fn reject_gossip(
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
    pub(super) fn misbehaved(&mut self, peer: PeerId, reason: String) {
        if self.warned.first(format!("misbehaved {peer}")) {
            warn!(%peer, reason, "peer {peer} {reason}");
            self.emit(NetEvent::PeerMisbehaved { peer, reason });
        }
    }

    pub(super) fn validate(
        &mut self,
        message_id: &MessageId,
        source: &PeerId,
        acceptance: MessageAcceptance,
    ) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message_id, source, acceptance);
    }
}
