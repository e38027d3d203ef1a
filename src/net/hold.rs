//! The hold protocol `/officemesh/hold/1`: a node hands a write it is about to acknowledge to
//! one peer, which merges it and confirms that it holds it. A confirmed write survives a
//! kill -9 of its writer without a synced save on the writer's card: the writer gets it back
//! from the holder by sync when it restarts.
//!
//! ```text
//! request  = u32 length, delta (wire::encode_delta): only the requester's own writes
//! response = one byte: 1 held (merged, nothing rejected), 0 not held
//! ```
//!
//! A peer that does not speak the protocol (an older version) fails the request, and the
//! writer saves the write itself, as it does when no peer answers in time.

use std::{io, time::Duration};

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::{StreamProtocol, request_response};

use super::sync::{read_frame, write_frame};

/// The protocol name, negotiated by multistream-select.
pub const HOLD_PROTOCOL: StreamProtocol = StreamProtocol::new("/officemesh/hold/1");

/// The largest write handed to a peer, in encoded bytes: 64 KiB, what fits one gossip message
/// (`GOSSIP_PAGE_BYTES`). One acknowledged write is a few hundred bytes.
pub const MAX_HOLD_BYTES: usize = 64 << 10;

/// How long a hold request may take before libp2p gives up on it. The writer stops waiting
/// much sooner (`[store] peer_hold_ms`) and saves the write itself; this only bounds what
/// a silent peer keeps open.
pub const HOLD_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Hold requests open on one connection at once. A writer with many concurrent writers
/// sends one per acknowledged reading; more than this wait for a stream.
pub const MAX_HOLD_STREAMS: usize = 64;

const HELD: u8 = 1;
const NOT_HELD: u8 = 0;

/// Requests are encoded deltas, bounded; responses one byte.
#[derive(Clone, Copy, Debug, Default)]
pub struct HoldCodec;

impl request_response::Codec for HoldCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = bool;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_HOLD_BYTES).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<bool>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        // Anything but "held" is not a promise the writer may rely on.
        Ok(byte[0] == HELD)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request, MAX_HOLD_BYTES).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        held: bool,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&[if held { HELD } else { NOT_HELD }]).await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;
    use request_response::Codec as _;

    use super::*;

    #[tokio::test]
    async fn answers_round_trip_and_only_one_means_held() {
        for held in [true, false] {
            let mut bytes = Vec::new();
            HoldCodec
                .write_response(&HOLD_PROTOCOL, &mut Cursor::new(&mut bytes), held)
                .await
                .unwrap();
            assert_eq!(bytes.len(), 1);
            let read = HoldCodec
                .read_response(&HOLD_PROTOCOL, &mut Cursor::new(bytes))
                .await
                .unwrap();
            assert_eq!(read, held);
        }
        let unknown = HoldCodec
            .read_response(&HOLD_PROTOCOL, &mut Cursor::new(vec![7u8]))
            .await
            .unwrap();
        assert!(!unknown, "an unknown answer is no promise");
    }

    #[tokio::test]
    async fn a_request_over_the_bound_is_refused_on_both_sides() {
        let too_big = vec![0u8; MAX_HOLD_BYTES + 1];
        let mut bytes = Vec::new();
        let error = HoldCodec
            .write_request(&HOLD_PROTOCOL, &mut Cursor::new(&mut bytes), too_big)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let mut framed = u32::try_from(MAX_HOLD_BYTES + 1)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        framed.extend(std::iter::repeat_n(0u8, 16));
        let error = HoldCodec
            .read_request(&HOLD_PROTOCOL, &mut Cursor::new(framed))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
