//! The network as the rest of the node sees it: plain bytes and text in, so no module outside
//! `src/net/` needs a libp2p type. The node key, the config's multiaddrs and peer ids, and
//! the addresses a join token or the demo hands out are all turned into libp2p values here.

use std::collections::HashSet;

use libp2p::{Multiaddr, PeerId, identity::Keypair};
use thiserror::Error;

use super::{
    JoinToken, NetConfig, NetError, NetHandle, SwarmKey, is_loopback, join::MAX_TOKEN_ADDRESSES,
};
use crate::state::NodeId;

/// A value from the configuration that the network layer cannot use.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("the node key is unreadable: {0}")]
    NodeKey(String),
    #[error("{key}: {value:?} is not a multiaddr")]
    Multiaddr { key: &'static str, value: String },
    #[error("network.allow: {0:?} is not a peer id")]
    PeerId(String),
}

/// A new node identity (Ed25519), in the encoding the store keeps.
pub fn generate_node_key() -> Vec<u8> {
    Keypair::generate_ed25519()
        .to_protobuf_encoding()
        .expect("an Ed25519 key encodes")
}

/// The node id (in the office state) of the node with this stored key.
pub fn node_id_of_key(key: &[u8]) -> Result<NodeId, SettingsError> {
    let keypair = Keypair::from_protobuf_encoding(key)
        .map_err(|error| SettingsError::NodeKey(error.to_string()))?;
    Ok(super::node_id(&keypair.public().to_peer_id()))
}

/// A network configuration from the node's stored key and the config's text values;
/// the rest keeps [`NetConfig::new`]'s defaults for the caller to set.
pub fn net_config(
    key: &[u8],
    swarm_key: SwarmKey,
    listen: &[String],
    bootstrap: &[String],
    allow: &[String],
) -> Result<NetConfig, SettingsError> {
    let keypair = Keypair::from_protobuf_encoding(key)
        .map_err(|error| SettingsError::NodeKey(error.to_string()))?;
    let own = keypair.public().to_peer_id();
    let mut config = NetConfig::new(keypair, swarm_key);
    config.listen = multiaddrs("network.listen", listen)?;
    config.bootstrap = multiaddrs("network.peers", bootstrap)?;
    if !allow.is_empty() {
        let mut allowed = HashSet::from([own]);
        for peer in allow {
            allowed.insert(
                peer.parse::<PeerId>()
                    .map_err(|_| SettingsError::PeerId(peer.clone()))?,
            );
        }
        config.allow_list = Some(allowed);
    }
    Ok(config)
}

fn multiaddrs(key: &'static str, values: &[String]) -> Result<Vec<Multiaddr>, SettingsError> {
    values
        .iter()
        .map(|value| {
            value.parse().map_err(|_| SettingsError::Multiaddr {
                key,
                value: value.clone(),
            })
        })
        .collect()
}

impl NetHandle {
    /// The addresses other nodes can dial this one at, each ending in `/p2p/<peer id>`;
    /// the unspecified address (0.0.0.0) is left out.
    pub async fn dialable_addresses(&self) -> Result<Vec<Multiaddr>, NetError> {
        let peer = self.local_peer_id();
        Ok(self
            .listen_addrs()
            .await?
            .into_iter()
            .filter(|address| !address.to_string().starts_with("/ip4/0.0.0.0"))
            .map(|address| address.with_p2p(peer).unwrap_or_else(|address| address))
            .collect())
    }

    /// A join token for this office: its key and this node's addresses; `None` while the
    /// node listens nowhere.
    pub async fn invite(&self, key: SwarmKey) -> Option<String> {
        let addresses = invite_addresses(self.dialable_addresses().await.ok()?);
        (!addresses.is_empty()).then(|| JoinToken { key, addresses }.to_string())
    }
}

/// The addresses a join token names, at most [`MAX_TOKEN_ADDRESSES`]. Loopback reaches this
/// node from this machine only, and a node on another machine would dial itself there: it is
/// named only when the node listens nowhere else.
fn invite_addresses(mut addresses: Vec<Multiaddr>) -> Vec<Multiaddr> {
    if addresses.iter().any(|address| !is_loopback(address)) {
        addresses.retain(|address| !is_loopback(address));
    }
    addresses.truncate(MAX_TOKEN_ADDRESSES);
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(texts: &[&str]) -> Vec<Multiaddr> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn an_invite_names_loopback_only_when_the_node_listens_nowhere_else() {
        let lan = "/ip4/192.0.2.11/tcp/7879";
        let everywhere = addresses(&["/ip4/127.0.0.1/tcp/7879", lan, "/ip6/::1/tcp/7879"]);
        assert_eq!(invite_addresses(everywhere), addresses(&[lan]));
        let here = addresses(&["/ip4/127.0.0.1/tcp/7879", "/ip6/::1/tcp/7879"]);
        assert_eq!(invite_addresses(here.clone()), here);
        let many: Vec<Multiaddr> = (1..=20)
            .map(|host| format!("/ip4/192.0.2.{host}/tcp/7879").parse().unwrap())
            .collect();
        assert_eq!(invite_addresses(many).len(), MAX_TOKEN_ADDRESSES);
    }
}
