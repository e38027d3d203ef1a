//! The peer exchange protocol `/officemesh/peers/1`: a node asks a peer which nodes it is
//! connected to, with the addresses they listen on, and dials the ones it lacks. mDNS alone
//! can leave a node that booted together with the others knowing one of them for minutes
//! (its first query raced their start, and it asks again only every few minutes); from the
//! peers it has, it learns the rest of the office in a round trip.
//!
//! ```text
//! request  = one byte, 0
//! response = u32 length, then: u8 count, count x peer
//! peer     = u8 length, peer id bytes, u8 count, count x (u8 length, multiaddr bytes)
//! ```
//!
//! A peer that does not speak the protocol (an older version) fails the request; the node
//! then relies on mDNS and its configured peers, as before.

use std::{io, time::Duration};

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::{Multiaddr, PeerId, StreamProtocol, request_response};

use super::sync::{read_frame, write_frame};

/// The protocol name, negotiated by multistream-select.
pub const EXCHANGE_PROTOCOL: StreamProtocol = StreamProtocol::new("/officemesh/peers/1");

/// At most this many peers in an answer: the node's own peer limit (`MAX_PEERS`).
pub const MAX_EXCHANGED_PEERS: usize = 64;

/// At most this many addresses per peer in an answer; the rest are left out.
pub const MAX_EXCHANGED_ADDRESSES: usize = 8;

/// The largest answer, in bytes: 64 peers with 8 addresses of up to 255 bytes would not fit,
/// but real addresses are 10 to 40 bytes, and an answer over this is refused whole.
pub const MAX_EXCHANGE_BYTES: usize = 32 << 10;

/// How long an exchange may take before libp2p gives up on it.
pub const EXCHANGE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const REQUEST: u8 = 0;

/// One node a peer is connected to, and where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownPeer {
    pub peer: PeerId,
    pub addresses: Vec<Multiaddr>,
}

/// Encodes an answer; peers and addresses past the limits, and addresses longer than 255
/// bytes, are left out.
pub fn encode_peers(peers: &[KnownPeer]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let peers = &peers[..peers.len().min(MAX_EXCHANGED_PEERS)];
    bytes.push(peers.len() as u8);
    for known in peers {
        let id = known.peer.to_bytes();
        bytes.push(id.len() as u8);
        bytes.extend_from_slice(&id);
        let addresses: Vec<&[u8]> = known
            .addresses
            .iter()
            .map(|address| address.as_ref())
            .filter(|address| address.len() <= usize::from(u8::MAX))
            .take(MAX_EXCHANGED_ADDRESSES)
            .collect();
        bytes.push(addresses.len() as u8);
        for address in addresses {
            bytes.push(address.len() as u8);
            bytes.extend_from_slice(address);
        }
    }
    bytes
}

/// Why an answer could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExchangeError {
    #[error("the answer ends early, in {0}")]
    Truncated(&'static str),
    #[error("the answer lists {0} peers, more than {MAX_EXCHANGED_PEERS}")]
    TooManyPeers(usize),
    #[error("peer {index} has {count} addresses, more than {MAX_EXCHANGED_ADDRESSES}")]
    TooManyAddresses { index: usize, count: usize },
    #[error("peer {index} has an invalid peer id")]
    PeerId { index: usize },
    #[error("peer {index}'s address {address} is not a multiaddr")]
    Address { index: usize, address: usize },
    #[error("{0} bytes after the last peer")]
    Trailing(usize),
}

/// Decodes an answer.
pub fn decode_peers(bytes: &[u8]) -> Result<Vec<KnownPeer>, ExchangeError> {
    let mut rest = bytes;
    let mut take = |count: usize, what: &'static str| -> Result<&[u8], ExchangeError> {
        if rest.len() < count {
            return Err(ExchangeError::Truncated(what));
        }
        let (taken, left) = rest.split_at(count);
        rest = left;
        Ok(taken)
    };
    let count = usize::from(take(1, "the count of peers")?[0]);
    if count > MAX_EXCHANGED_PEERS {
        return Err(ExchangeError::TooManyPeers(count));
    }
    let mut peers = Vec::with_capacity(count);
    for index in 0..count {
        let length = usize::from(take(1, "a peer id's length")?[0]);
        let peer = PeerId::from_bytes(take(length, "a peer id")?)
            .map_err(|_| ExchangeError::PeerId { index })?;
        let addresses = usize::from(take(1, "a count of addresses")?[0]);
        if addresses > MAX_EXCHANGED_ADDRESSES {
            return Err(ExchangeError::TooManyAddresses {
                index,
                count: addresses,
            });
        }
        let mut known = KnownPeer {
            peer,
            addresses: Vec::with_capacity(addresses),
        };
        for address in 0..addresses {
            let length = usize::from(take(1, "an address's length")?[0]);
            let decoded = Multiaddr::try_from(take(length, "an address")?.to_vec())
                .map_err(|_| ExchangeError::Address { index, address })?;
            known.addresses.push(decoded);
        }
        peers.push(known);
    }
    if !rest.is_empty() {
        return Err(ExchangeError::Trailing(rest.len()));
    }
    Ok(peers)
}

/// Requests are one byte; answers a frame of encoded peers, decoded here so that the actor
/// only ever sees a valid list.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExchangeCodec;

impl request_response::Codec for ExchangeCodec {
    type Protocol = StreamProtocol;
    type Request = ();
    type Response = Vec<KnownPeer>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        if byte[0] != REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown peer exchange request {}", byte[0]),
            ));
        }
        Ok(())
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<KnownPeer>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_frame(io, MAX_EXCHANGE_BYTES).await?;
        decode_peers(&bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, (): ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&[REQUEST]).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        peers: Vec<KnownPeer>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode_peers(&peers), MAX_EXCHANGE_BYTES).await
    }
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;

    fn peer() -> PeerId {
        Keypair::generate_ed25519().public().to_peer_id()
    }

    #[test]
    fn an_answer_decodes_to_what_was_encoded() {
        let peers = vec![
            KnownPeer {
                peer: peer(),
                addresses: vec![
                    "/ip4/10.0.0.2/tcp/4001".parse().unwrap(),
                    "/ip6/fe80::1/tcp/4001".parse().unwrap(),
                ],
            },
            KnownPeer {
                peer: peer(),
                addresses: vec![],
            },
        ];
        assert_eq!(decode_peers(&encode_peers(&peers)), Ok(peers));
        assert_eq!(decode_peers(&encode_peers(&[])), Ok(vec![]));
    }

    #[test]
    fn an_answer_keeps_to_its_limits() {
        let many: Vec<KnownPeer> = (0..MAX_EXCHANGED_PEERS + 3)
            .map(|_| KnownPeer {
                peer: peer(),
                addresses: vec!["/ip4/10.0.0.2/tcp/4001".parse().unwrap(); 12],
            })
            .collect();
        let decoded = decode_peers(&encode_peers(&many)).unwrap();
        assert_eq!(decoded.len(), MAX_EXCHANGED_PEERS);
        assert!(
            decoded
                .iter()
                .all(|known| known.addresses.len() == MAX_EXCHANGED_ADDRESSES)
        );
        assert!(encode_peers(&many).len() <= MAX_EXCHANGE_BYTES);
    }

    #[test]
    fn a_bad_answer_says_what_is_wrong() {
        let good = encode_peers(&[KnownPeer {
            peer: peer(),
            addresses: vec!["/ip4/10.0.0.2/tcp/4001".parse().unwrap()],
        }]);
        assert_eq!(
            decode_peers(&[]),
            Err(ExchangeError::Truncated("the count of peers"))
        );
        assert_eq!(
            decode_peers(&good[..good.len() - 1]),
            Err(ExchangeError::Truncated("an address"))
        );
        assert_eq!(decode_peers(&[65]), Err(ExchangeError::TooManyPeers(65)));
        assert_eq!(
            decode_peers(&[1, 2, 0xff, 0xff, 0]),
            Err(ExchangeError::PeerId { index: 0 })
        );
        let mut trailing = good.clone();
        trailing.push(7);
        assert_eq!(decode_peers(&trailing), Err(ExchangeError::Trailing(1)));
        // The address's first byte, its protocol code (8 bytes from the end): none is 127.
        let mut bad_address = good;
        let code = bad_address.len() - 8;
        bad_address[code] = 0x7f;
        assert!(matches!(
            decode_peers(&bad_address),
            Err(ExchangeError::Address {
                index: 0,
                address: 0
            })
        ));
    }
}
