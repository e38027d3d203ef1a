//! For benchmarks only (the `bench` feature): an artificial latency on every link, and
//! counters of what the links carry.
//!
//! [`LinkDelay`] puts the latency under everything: each chunk written to the socket, below
//! pnet, reaches it (and so the other side) that much later, in order. The same setting
//! counts the writes and bytes the links carry and, above yamux, the protocol messages sent
//! ([`Counted`](super::counting::Counted)). Nodes never set it; the default is no delay and
//! no counting, and a build without the feature has neither.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
    io::{ReadHalf, WriteHalf},
};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::counting::{Counted, MessageCounters, MessageCounts};

/// An artificial one-way latency on every link, for benchmarks and tests: every chunk a node
/// writes to a connection's socket (TCP or memory, below pnet) is held for `delay`, then
/// written, in order. Reads are untouched, so each direction of a link is delayed once.
/// Up to [`DELAYED_CHUNKS`] chunks may be in flight per link; past that a writer waits, as
/// on a full socket. For loopback benchmarks, never for a running office.
#[derive(Clone, Debug)]
pub struct LinkDelay {
    pub delay: Duration,
    /// Counts what every delayed link of this setting carries; share one between the nodes
    /// of a benchmark to count the whole network.
    pub counters: Arc<LinkCounters>,
}

impl LinkDelay {
    pub fn new(delay: Duration) -> Self {
        LinkDelay {
            delay,
            counters: Arc::default(),
        }
    }
}

/// Chunks in flight on one delayed link before its writer waits.
pub const DELAYED_CHUNKS: usize = 1024;

/// What delayed links carried, summed over every link sharing these counters.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Writes handed to links: each is what the layer above (pnet, carrying Noise frames)
    /// wrote in one go, usually one flush of one libp2p protocol message or batch of them.
    writes: AtomicU64,
    /// Bytes handed to links (encrypted: pnet, Noise and yamux framing included; TCP/IP
    /// headers not).
    bytes: AtomicU64,
    /// Protocol messages sent over these links, by kind (see [`Counted`]).
    messages: Arc<MessageCounters>,
}

impl LinkCounters {
    /// (writes, bytes) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Protocol messages sent so far, by kind.
    pub fn messages(&self) -> MessageCounts {
        self.messages.get()
    }
}

/// The socket a connection's upgrade starts from: delayed when a benchmark asked for it.
pub fn wrap<S>(socket: S, link_delay: Option<&LinkDelay>) -> Link<S>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    match link_delay {
        None => Link::Direct(socket),
        Some(delay) => Link::Delayed(Delayed::new(socket, delay.clone())),
    }
}

/// A connection's stream muxer, boxed; counting its messages when a benchmark asked for it.
pub fn box_muxer<M>(muxer: M, link_delay: Option<&LinkDelay>) -> StreamMuxerBox
where
    M: StreamMuxer + Send + Unpin + 'static,
    M::Substream: Send + Unpin + 'static,
    M::Error: Send + Sync + 'static,
{
    match link_delay {
        None => StreamMuxerBox::new(muxer),
        Some(link) => StreamMuxerBox::new(Counted::new(muxer, link.counters.messages.clone())),
    }
}

/// A socket, delayed or not.
pub enum Link<S> {
    Direct(S),
    Delayed(Delayed<S>),
}

impl<S: AsyncRead + Unpin> AsyncRead for Link<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Link::Direct(inner) => Pin::new(inner).poll_read(cx, buf),
            Link::Delayed(inner) => Pin::new(&mut inner.reader).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Link<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Link::Direct(inner) => Pin::new(inner).poll_write(cx, buf),
            Link::Delayed(inner) => inner.poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Direct(inner) => Pin::new(inner).poll_flush(cx),
            // Written chunks are on the (slow) wire already.
            Link::Delayed(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Direct(inner) => Pin::new(inner).poll_close(cx),
            Link::Delayed(inner) => {
                // The writer task delivers what is in flight, then closes the socket.
                inner.chunks = None;
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// A socket whose writes arrive [`LinkDelay::delay`] late: each chunk is stamped when
/// written and a task writes it to the socket once its time has come, in order. Must be
/// created inside a tokio runtime.
pub struct Delayed<S> {
    reader: ReadHalf<S>,
    /// To the writer task; `None` once closed.
    chunks: Option<PollSender<(tokio::time::Instant, Vec<u8>)>>,
    link: LinkDelay,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Delayed<S> {
    fn new(socket: S, link: LinkDelay) -> Self {
        let (reader, writer) = socket.split();
        let (chunks, queue) = mpsc::channel(DELAYED_CHUNKS);
        tokio::spawn(deliver(queue, writer));
        Delayed {
            reader,
            chunks: Some(PollSender::new(chunks)),
            link,
        }
    }
}

impl<S> Delayed<S> {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let Some(chunks) = &mut self.chunks else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        if std::task::ready!(chunks.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let due = tokio::time::Instant::now() + self.link.delay;
        if chunks.send_item((due, buf.to_vec())).is_err() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.link.counters.writes.fetch_add(1, Ordering::Relaxed);
        self.link
            .counters
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Poll::Ready(Ok(buf.len()))
    }
}

/// Writes each chunk to the socket when it is due; closes the socket when the sending side
/// is gone and everything is delivered. Stops at the first error: the reading side sees
/// the connection fail.
async fn deliver<S: AsyncWrite>(
    mut queue: mpsc::Receiver<(tokio::time::Instant, Vec<u8>)>,
    mut writer: WriteHalf<S>,
) {
    while let Some((due, chunk)) = queue.recv().await {
        tokio::time::sleep_until(due).await;
        if writer.write_all(&chunk).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.close().await;
}

#[cfg(test)]
mod tests {
    use libp2p::tcp;

    use super::*;

    #[tokio::test]
    async fn a_delayed_link_delivers_in_order_after_the_delay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let link = LinkDelay::new(Duration::from_millis(100));
        let mut sender = Link::Delayed(Delayed::new(tcp::tokio::TcpStream(client), link.clone()));
        let mut receiver = tcp::tokio::TcpStream(server);
        let start = tokio::time::Instant::now();
        sender.write_all(b"first ").await.unwrap();
        sender.write_all(b"second").await.unwrap();
        let mut received = [0u8; 12];
        receiver.read_exact(&mut received).await.unwrap();
        assert_eq!(&received, b"first second");
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert_eq!(link.counters.get(), (2, 12));
    }
}
