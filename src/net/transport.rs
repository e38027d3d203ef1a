//! The transport: TCP (and, for tests, in-memory channels), then the private network layer
//! with the office's key, then Noise, then yamux.
//!
//! pnet sits directly on the socket: both sides exchange nonces and from then on XSalsa20
//! encrypts every byte with the pre-shared key. A peer with another key (or none) sees
//! garbage, so its next step, the multistream-select negotiation of Noise, fails. That is
//! how a key mismatch shows up, and [`is_private_network_failure`] recognises it so the
//! actor can log one clear line instead of the raw error chain.

use std::{error::Error as StdError, io, time::Duration};

use libp2p::{
    PeerId, Transport,
    core::{
        muxing::StreamMuxerBox,
        transport::{
            Boxed, MemoryTransport, OptionalTransport, OrTransport, timeout::TransportTimeout,
        },
        upgrade::{NegotiationError, ProtocolError, Version},
    },
    identity::Keypair,
    noise,
    pnet::PnetConfig,
    tcp, yamux,
};

use super::SwarmKey;

/// How long a connection may take from the first TCP packet to a negotiated multiplexer.
/// A LAN handshake takes milliseconds; a Pi on a slow Wi-Fi link a second or two.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(20);

/// Which base transports to offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseTransport {
    /// TCP only: what a node runs.
    Tcp,
    /// TCP and `/memory/N` addresses, for tests inside one process.
    TcpAndMemory,
}

/// Builds TCP (+ memory) -> pnet -> Noise -> yamux, with a timeout on the whole upgrade.
pub fn build(
    keypair: &Keypair,
    key: &SwarmKey,
    base: BaseTransport,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::new().nodelay(true));
    let memory = match base {
        BaseTransport::Tcp => OptionalTransport::none(),
        BaseTransport::TcpAndMemory => OptionalTransport::some(MemoryTransport::default()),
    };
    let psk = key.psk();
    let transport = OrTransport::new(tcp, memory)
        .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(keypair)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let transport = TransportTimeout::new(transport, CONNECTION_TIMEOUT).boxed();
    Ok(transport)
}

/// Whether a failed connection attempt failed after the private network handshake, which
/// is what a peer with a different swarm key (or none) looks like: the bytes after it are
/// garbage, so negotiating Noise fails.
///
/// A Noise failure counts too: with a wrong key, the garbage may happen to pass
/// multistream-select only to break Noise.
pub fn is_private_network_failure(error: &io::Error) -> bool {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = next {
        if error.is::<NegotiationError>()
            || error.is::<ProtocolError>()
            || error.is::<noise::Error>()
        {
            return true;
        }
        next = error.source();
    }
    false
}
