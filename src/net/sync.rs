//! The sync protocol `/officemesh/sync/1`: a digest out, the entries the asker lacks back,
//! one page at a time.
//!
//! Framing on one request-response stream (all integers big-endian):
//!
//! ```text
//! request  = u32 length, digest envelope (wire::encode_digest), cursor
//! response = u32 length, delta envelope  (wire::encode_delta),  cursor
//! cursor   = u8 0                                  (no cursor)
//!          | u8 n (1..=128), n bytes of node id, u64 sequence number
//! ```
//!
//! Paging. An answer larger than [`SYNC_PAGE_BYTES`] is cut into pages (see
//! [`super::paging`]); a response's cursor says where the next page starts, and the asker
//! asks again with its *new* digest and that cursor. The responder keeps no state between
//! pages: it recomputes the answer for the new digest and skips what comes before the
//! cursor, so pages the asker could not merge are not sent again and every round advances.
//! A cursor-less response is the last page. The alternative, several responses to one
//! request, does not exist in libp2p's request-response (one response per request).

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

use super::paging::Cursor;
use crate::{
    state::{Delta, Digest, MAX_NODE_ID_LEN, MAX_SEQ, NodeId},
    wire::{self, EntryError, MAX_DELTA_BYTES, MAX_DIGEST_BYTES},
};

/// The protocol name, negotiated by multistream-select.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/officemesh/sync/1");

/// The largest page a responder sends, in encoded bytes. Half the largest delta a peer
/// accepts: a page takes up to 64 times its size in memory while it is decoded (see
/// `wire`), and a Pi has 1 GB.
pub const SYNC_PAGE_BYTES: usize = MAX_DELTA_BYTES / 2;

/// A digest, and where to resume if this asks for a page after the first.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncRequest {
    pub digest: Digest,
    pub after: Option<Cursor>,
}

/// One page of what the asker lacks, and where the next page starts.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncResponse {
    pub page: Delta,
    pub next: Option<Cursor>,
    /// Entries dropped while decoding because their values were invalid (always empty on
    /// the sending side).
    pub invalid: Vec<EntryError>,
}

/// Reads and writes the frames above; decoding happens here, in the connection's task, not
/// in the net actor's loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncCodec;

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_frame(io, MAX_DIGEST_BYTES).await?;
        let digest = wire::decode_digest(&bytes).map_err(invalid_data)?;
        let after = read_cursor(io).await?;
        Ok(SyncRequest { digest, after })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_frame(io, MAX_DELTA_BYTES).await?;
        let decoded = wire::decode_delta(&bytes).map_err(invalid_data)?;
        let next = read_cursor(io).await?;
        Ok(SyncResponse {
            page: decoded.delta,
            next,
            invalid: decoded.rejected,
        })
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = wire::encode_digest(&request.digest);
        write_frame(io, &bytes, MAX_DIGEST_BYTES).await?;
        write_cursor(io, request.after.as_ref()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = wire::encode_delta(&response.page);
        write_frame(io, &bytes, MAX_DELTA_BYTES).await?;
        write_cursor(io, response.next.as_ref()).await
    }
}

fn invalid_data(error: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

pub(super) async fn read_frame<T: AsyncRead + Unpin>(
    io: &mut T,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    io.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if length > max {
        return Err(invalid_data(wire::WireError::TooLarge { len: length, max }));
    }
    let mut bytes = vec![0u8; length];
    io.read_exact(&mut bytes).await?;
    Ok(bytes)
}

pub(super) async fn write_frame<T: AsyncWrite + Unpin>(
    io: &mut T,
    bytes: &[u8],
    max: usize,
) -> io::Result<()> {
    if bytes.len() > max {
        // The peer would refuse it; better to fail here, where the cause is known.
        return Err(invalid_data(wire::WireError::TooLarge {
            len: bytes.len(),
            max,
        }));
    }
    let length = u32::try_from(bytes.len()).expect("bounded by the limit above");
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(bytes).await
}

async fn read_cursor<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Option<Cursor>> {
    let mut length = [0u8; 1];
    io.read_exact(&mut length).await?;
    let length = usize::from(length[0]);
    if length == 0 {
        return Ok(None);
    }
    if length > MAX_NODE_ID_LEN {
        return Err(invalid_data(wire::WireError::Malformed(format!(
            "cursor node id of {length} bytes"
        ))));
    }
    let mut writer = vec![0u8; length];
    io.read_exact(&mut writer).await?;
    let writer = String::from_utf8(writer).map_err(invalid_data)?;
    let writer = NodeId::new(writer).map_err(invalid_data)?;
    let mut seq = [0u8; 8];
    io.read_exact(&mut seq).await?;
    let seq = u64::from_be_bytes(seq);
    if seq > MAX_SEQ {
        return Err(invalid_data(wire::WireError::Malformed(format!(
            "cursor sequence number {seq} above {MAX_SEQ}"
        ))));
    }
    Ok(Some(Cursor { writer, seq }))
}

async fn write_cursor<T: AsyncWrite + Unpin>(
    io: &mut T,
    cursor: Option<&Cursor>,
) -> io::Result<()> {
    let Some(cursor) = cursor else {
        return io.write_all(&[0]).await;
    };
    let writer = cursor.writer.as_str().as_bytes();
    let length = u8::try_from(writer.len()).expect("node ids are at most 128 bytes");
    io.write_all(&[length]).await?;
    io.write_all(writer).await?;
    io.write_all(&cursor.seq.to_be_bytes()).await
}

#[cfg(test)]
mod tests {
    use futures::{executor::block_on, io::Cursor as Buffer};
    use request_response::Codec;

    use super::*;

    fn round_trip_request(request: SyncRequest) -> SyncRequest {
        let mut buffer = Buffer::new(Vec::new());
        block_on(SyncCodec.write_request(&SYNC_PROTOCOL, &mut buffer, request)).unwrap();
        buffer.set_position(0);
        block_on(SyncCodec.read_request(&SYNC_PROTOCOL, &mut buffer)).unwrap()
    }

    #[test]
    fn requests_round_trip_with_and_without_cursor() {
        let plain = SyncRequest {
            digest: Digest::default(),
            after: None,
        };
        assert_eq!(round_trip_request(plain.clone()), plain);
        let paged = SyncRequest {
            digest: Digest::default(),
            after: Some(Cursor {
                writer: NodeId::new("12D3KooWwriter").unwrap(),
                seq: 42,
            }),
        };
        assert_eq!(round_trip_request(paged.clone()), paged);
    }

    #[test]
    fn responses_round_trip() {
        let response = SyncResponse {
            page: Delta::default(),
            next: Some(Cursor {
                writer: NodeId::new("w").unwrap(),
                seq: MAX_SEQ,
            }),
            invalid: Vec::new(),
        };
        let mut buffer = Buffer::new(Vec::new());
        block_on(SyncCodec.write_response(&SYNC_PROTOCOL, &mut buffer, response.clone())).unwrap();
        buffer.set_position(0);
        let read = block_on(SyncCodec.read_response(&SYNC_PROTOCOL, &mut buffer)).unwrap();
        assert_eq!(read, response);
    }

    #[test]
    fn an_oversized_length_is_refused_before_reading() {
        let mut bytes = u32::MAX.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let error =
            block_on(SyncCodec.read_response(&SYNC_PROTOCOL, &mut Buffer::new(bytes))).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(
            error.to_string().contains("larger than the limit"),
            "{error}"
        );
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        for bytes in [
            vec![0, 0, 0, 3, 0xff, 0xff, 0xff, 0],
            vec![0, 0],
            vec![0, 0, 0, 9, 1],
        ] {
            assert!(
                block_on(SyncCodec.read_request(&SYNC_PROTOCOL, &mut Buffer::new(bytes))).is_err()
            );
        }
    }
}
