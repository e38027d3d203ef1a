//! The transport of the history backfill protocol `/officemesh/history/1`: one request, one
//! response, each a length-prefixed frame of bytes the history module encodes
//! (`wire::history`). The net module only bounds their size and carries them.
//!
//! ```text
//! request  = u32 length, history ask  (wire::encode_history_ask)
//! response = u32 length, history page (wire::encode_history_page)
//! ```

use std::io;

use futures::{AsyncRead, AsyncWrite};
use libp2p::{StreamProtocol, request_response};

use super::sync::{read_frame, write_frame};
use crate::wire::history::{MAX_HISTORY_ASK_BYTES, MAX_HISTORY_PAGE_BYTES};

/// The protocol name, negotiated by multistream-select.
pub const HISTORY_PROTOCOL: StreamProtocol = StreamProtocol::new("/officemesh/history/1");

/// Frames of bytes, bounded.
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryCodec;

impl request_response::Codec for HistoryCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_HISTORY_ASK_BYTES).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_HISTORY_PAGE_BYTES).await
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
        write_frame(io, &request, MAX_HISTORY_ASK_BYTES).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response, MAX_HISTORY_PAGE_BYTES).await
    }
}
