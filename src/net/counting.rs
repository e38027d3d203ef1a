//! For benchmarks only (the `bench` feature): counting the libp2p protocol messages a node
//! sends, by protocol and, for gossipsub, by kind.
//!
//! [`Counted`] wraps a connection's stream muxer (yamux) and every substream it opens or
//! accepts. A *message* is one flush (or close) of a substream after bytes were written to
//! it since the last one. That is how each protocol here hands one message to the network:
//! - gossipsub's handler puts one RPC into its framed substream and flushes it before it
//!   takes the next (`OutboundSubstreamState::PendingSend` then `PendingFlush` in
//!   libp2p-gossipsub 0.50.1), and it turns every queued item (a published or forwarded
//!   message, an IHAVE, IWANT, GRAFT, PRUNE, IDONTWANT, a subscription) into an RPC of its own;
//! - request-response writes a sync request or response and closes the substream;
//! - identify writes its message and closes; ping writes 32 bytes and flushes, and so does
//!   the pong.
//!
//! The multistream-select exchange that names a substream's protocol (its header, the
//! protocol proposed and echoed, "na") is counted apart as [`MessageKind::Negotiation`]: it is
//! how libp2p opens a substream, not a protocol message. The protocol is read from the names
//! written in that exchange, and a gossipsub RPC's kind from its first protobuf field (each
//! RPC carries one kind). Nothing here touches the bytes; a node builds this wrapper only
//! when a benchmark asks for it ([`LinkDelay`](super::LinkDelay)), and a build without the
//! feature does not contain it.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};

use super::sync::SYNC_PROTOCOL;

/// What a counted message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// A gossipsub RPC carrying a message: a publish, or a forward of someone else's.
    GossipMessage,
    GossipIhave,
    GossipIwant,
    GossipGraft,
    GossipPrune,
    GossipIdontwant,
    /// A gossipsub RPC announcing subscriptions (once per connection here).
    GossipSubscription,
    /// A gossipsub RPC of no kind above (empty, or a future extension).
    GossipOther,
    SyncRequest,
    SyncResponse,
    /// An identify message or identify push.
    Identify,
    /// A ping or its pong.
    Ping,
    /// Any other protocol.
    Other,
    /// A multistream-select exchange naming a substream's protocol: not a protocol message.
    Negotiation,
}

impl MessageKind {
    pub const ALL: [MessageKind; 14] = [
        MessageKind::GossipMessage,
        MessageKind::GossipIhave,
        MessageKind::GossipIwant,
        MessageKind::GossipGraft,
        MessageKind::GossipPrune,
        MessageKind::GossipIdontwant,
        MessageKind::GossipSubscription,
        MessageKind::GossipOther,
        MessageKind::SyncRequest,
        MessageKind::SyncResponse,
        MessageKind::Identify,
        MessageKind::Ping,
        MessageKind::Other,
        MessageKind::Negotiation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MessageKind::GossipMessage => "gossip message",
            MessageKind::GossipIhave => "IHAVE",
            MessageKind::GossipIwant => "IWANT",
            MessageKind::GossipGraft => "GRAFT",
            MessageKind::GossipPrune => "PRUNE",
            MessageKind::GossipIdontwant => "IDONTWANT",
            MessageKind::GossipSubscription => "subscription",
            MessageKind::GossipOther => "other gossipsub",
            MessageKind::SyncRequest => "sync request",
            MessageKind::SyncResponse => "sync response",
            MessageKind::Identify => "identify",
            MessageKind::Ping => "ping",
            MessageKind::Other => "other protocol",
            MessageKind::Negotiation => "negotiation",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Messages sent, by kind, summed over every connection sharing these counters.
#[derive(Debug, Default)]
pub struct MessageCounters {
    counts: [AtomicU64; MessageKind::ALL.len()],
}

impl MessageCounters {
    pub fn get(&self) -> MessageCounts {
        MessageCounts(std::array::from_fn(|index| {
            self.counts[index].load(Ordering::Relaxed)
        }))
    }

    fn add(&self, kind: MessageKind) {
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of [`MessageCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts([u64; MessageKind::ALL.len()]);

impl MessageCounts {
    pub fn of(&self, kind: MessageKind) -> u64 {
        self.0[kind.index()]
    }

    /// Every protocol message: all kinds but [`MessageKind::Negotiation`].
    pub fn protocol_messages(&self) -> u64 {
        MessageKind::ALL
            .iter()
            .filter(|kind| **kind != MessageKind::Negotiation)
            .map(|kind| self.of(*kind))
            .sum()
    }

    /// What was counted since `earlier`.
    pub fn since(&self, earlier: &MessageCounts) -> MessageCounts {
        MessageCounts(std::array::from_fn(|index| {
            self.0[index].saturating_sub(earlier.0[index])
        }))
    }
}

/// A stream muxer whose substreams count the messages written to them.
pub struct Counted<M> {
    inner: M,
    counters: Arc<MessageCounters>,
}

impl<M> Counted<M> {
    pub fn new(inner: M, counters: Arc<MessageCounters>) -> Self {
        Counted { inner, counters }
    }
}

impl<M> StreamMuxer for Counted<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = CountedStream<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let counters = this.counters.clone();
        Pin::new(&mut this.inner)
            .poll_inbound(cx)
            .map_ok(|stream| CountedStream::new(stream, false, counters))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let counters = this.counters.clone();
        Pin::new(&mut this.inner)
            .poll_outbound(cx)
            .map_ok(|stream| CountedStream::new(stream, true, counters))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// A substream that counts each flush or close following written bytes as one message.
pub struct CountedStream<S> {
    inner: S,
    tally: Tally,
}

impl<S> CountedStream<S> {
    fn new(inner: S, outbound: bool, counters: Arc<MessageCounters>) -> Self {
        CountedStream {
            inner,
            tally: Tally::new(outbound, counters),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(count)) = written {
            this.tally.wrote(&buf[..count]);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.tally.boundary();
        }
        flushed
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let closed = Pin::new(&mut this.inner).poll_close(cx);
        if let Poll::Ready(Ok(())) = closed {
            this.tally.boundary();
        }
        closed
    }
}

/// Which protocol a substream speaks, as named in its negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Gossipsub,
    Sync,
    Identify,
    Ping,
    Other,
}

impl Protocol {
    fn named(name: &[u8]) -> Protocol {
        if name.starts_with(b"/meshsub/") {
            Protocol::Gossipsub
        } else if name == SYNC_PROTOCOL.as_ref().as_bytes() {
            Protocol::Sync
        } else if name.starts_with(b"/ipfs/id/") {
            Protocol::Identify
        } else if name.starts_with(b"/ipfs/ping/") {
            Protocol::Ping
        } else {
            Protocol::Other
        }
    }
}

/// The multistream-select header every negotiation starts with.
const MULTISTREAM_HEADER: &[u8] = b"/multistream/1.0.0\n";

/// Longest negotiation message kept; a protocol name is far shorter (multistream-select
/// itself refuses names over 140 bytes).
const MAX_NEGOTIATION_MESSAGE: usize = 1024;

/// Bytes of a message kept to classify it: a gossipsub RPC's kind is in its first 12 bytes
/// (length, field tag, control length, control field tag; varints of up to 5 bytes).
const MESSAGE_HEAD: usize = 16;

/// What one substream wrote since its last message boundary, and what it speaks.
struct Tally {
    counters: Arc<MessageCounters>,
    outbound: bool,
    /// `None` while the substream is still negotiating.
    protocol: Option<Protocol>,
    /// The last protocol name this side wrote while negotiating.
    named: Option<Protocol>,
    /// While negotiating, everything written since the last boundary (bounded by
    /// MAX_NEGOTIATION_MESSAGE); after, the first MESSAGE_HEAD bytes of the message.
    pending: Vec<u8>,
    written: bool,
}

impl Tally {
    fn new(outbound: bool, counters: Arc<MessageCounters>) -> Self {
        Tally {
            counters,
            outbound,
            protocol: None,
            named: None,
            pending: Vec::new(),
            written: false,
        }
    }

    fn wrote(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.written = true;
        let keep = match self.protocol {
            None => MAX_NEGOTIATION_MESSAGE + MESSAGE_HEAD,
            Some(_) => MESSAGE_HEAD,
        };
        let room = keep.saturating_sub(self.pending.len());
        self.pending
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// A flush or close: what was written since the last one is one message.
    fn boundary(&mut self) {
        if !self.written {
            return;
        }
        self.written = false;
        let pending = std::mem::take(&mut self.pending);
        let kind = match self.protocol {
            Some(protocol) => classify(protocol, self.outbound, &pending),
            None => {
                let rest = self.negotiate(&pending);
                if rest.is_empty() {
                    MessageKind::Negotiation
                } else {
                    // The first message of the protocol went out with the negotiation.
                    let protocol = self.named.unwrap_or(Protocol::Other);
                    self.protocol = Some(protocol);
                    classify(protocol, self.outbound, rest)
                }
            }
        };
        self.counters.add(kind);
    }

    /// Takes the whole multistream-select messages off the front of `bytes`, noting the
    /// protocol names among them; returns what follows. When that is not empty, negotiation
    /// is over: the rest is the protocol's.
    fn negotiate<'a>(&mut self, mut bytes: &'a [u8]) -> &'a [u8] {
        while let Some((length, prefix)) = varint(bytes) {
            let Some(message) = usize::try_from(length)
                .ok()
                .filter(|length| *length <= MAX_NEGOTIATION_MESSAGE)
                .and_then(|length| bytes.get(prefix..prefix + length))
            else {
                break;
            };
            let control = message == MULTISTREAM_HEADER || message == b"na\n" || message == b"ls\n";
            if !control {
                if !(message.starts_with(b"/") && message.ends_with(b"\n")) {
                    break;
                }
                self.named = Some(Protocol::named(&message[..message.len() - 1]));
            }
            bytes = &bytes[prefix + message.len()..];
        }
        bytes
    }
}

/// The kind of a message of `protocol` that starts with `head`.
fn classify(protocol: Protocol, outbound: bool, head: &[u8]) -> MessageKind {
    match protocol {
        Protocol::Gossipsub => gossip_kind(head),
        // We opened the substream: we asked. Otherwise we answer.
        Protocol::Sync if outbound => MessageKind::SyncRequest,
        Protocol::Sync => MessageKind::SyncResponse,
        Protocol::Identify => MessageKind::Identify,
        Protocol::Ping => MessageKind::Ping,
        Protocol::Other => MessageKind::Other,
    }
}

/// The kind of a gossipsub RPC (a length-prefixed protobuf `RPC`) from its first field:
/// 1 subscriptions, 2 publish (a message), 3 control, whose first field is 1 IHAVE, 2 IWANT,
/// 3 GRAFT, 4 PRUNE or 5 IDONTWANT.
fn gossip_kind(head: &[u8]) -> MessageKind {
    let field = |bytes: &[u8]| -> Option<(u64, usize)> {
        let (tag, tag_length) = varint(bytes)?;
        Some((tag >> 3, tag_length))
    };
    let kind = || -> Option<MessageKind> {
        let (_, length_prefix) = varint(head)?;
        let rpc = head.get(length_prefix..)?;
        let (number, tag_length) = field(rpc)?;
        Some(match number {
            1 => MessageKind::GossipSubscription,
            2 => MessageKind::GossipMessage,
            3 => {
                let control = rpc.get(tag_length..)?;
                let (_, control_prefix) = varint(control)?;
                let (number, _) = field(control.get(control_prefix..)?)?;
                match number {
                    1 => MessageKind::GossipIhave,
                    2 => MessageKind::GossipIwant,
                    3 => MessageKind::GossipGraft,
                    4 => MessageKind::GossipPrune,
                    5 => MessageKind::GossipIdontwant,
                    _ => MessageKind::GossipOther,
                }
            }
            _ => MessageKind::GossipOther,
        })
    };
    kind().unwrap_or(MessageKind::GossipOther)
}

/// An unsigned LEB128 varint at the start of `bytes`: its value and length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multistream-select message: length, then the text.
    fn ms(text: &str) -> Vec<u8> {
        let mut bytes = vec![text.len() as u8];
        bytes.extend_from_slice(text.as_bytes());
        bytes
    }

    /// Writes each group of chunks and flushes after each group; returns the counts.
    fn check(outbound: bool, groups: &[Vec<Vec<u8>>]) -> MessageCounts {
        let counters = Arc::new(MessageCounters::default());
        let mut tally = Tally::new(outbound, counters.clone());
        for group in groups {
            for chunk in group {
                tally.wrote(chunk);
            }
            tally.boundary();
            // A second flush with nothing written is no message.
            tally.boundary();
        }
        counters.get()
    }

    fn only(counts: &MessageCounts, expected: &[(MessageKind, u64)]) {
        for kind in MessageKind::ALL {
            let want = expected
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(0, |(_, n)| *n);
            assert_eq!(counts.of(kind), want, "{}", kind.name());
        }
    }

    /// A gossipsub RPC with one control message whose field number is `field`.
    fn control(field: u8) -> Vec<u8> {
        let inner = [field << 3 | 2, 2, 0x0a, 0];
        let mut rpc = vec![3 << 3 | 2, inner.len() as u8];
        rpc.extend_from_slice(&inner);
        let mut framed = vec![rpc.len() as u8];
        framed.extend(rpc);
        framed
    }

    #[test]
    fn gossipsub_rpcs_are_counted_by_kind_after_the_negotiation() {
        let header = [ms("/multistream/1.0.0\n"), ms("/meshsub/1.2.0\n")].concat();
        let publish = [5, 2 << 3 | 2, 3, 1, 2, 3];
        let counts = check(
            true,
            &[
                vec![header],
                // The length prefix and the body in separate writes, as a codec may do.
                vec![publish[..1].to_vec(), publish[1..].to_vec()],
                vec![control(1)],
                vec![control(2)],
                vec![control(3)],
                vec![control(4)],
                vec![control(5)],
                vec![vec![2, 1 << 3 | 2, 0]],
            ],
        );
        only(
            &counts,
            &[
                (MessageKind::Negotiation, 1),
                (MessageKind::GossipMessage, 1),
                (MessageKind::GossipIhave, 1),
                (MessageKind::GossipIwant, 1),
                (MessageKind::GossipGraft, 1),
                (MessageKind::GossipPrune, 1),
                (MessageKind::GossipIdontwant, 1),
                (MessageKind::GossipSubscription, 1),
            ],
        );
        assert_eq!(counts.protocol_messages(), 7);
    }

    #[test]
    fn a_sync_request_and_its_answer_are_told_apart_by_direction() {
        let asked = check(
            true,
            &[
                vec![ms("/multistream/1.0.0\n"), ms("/officemesh/sync/1\n")],
                vec![vec![0, 0, 0, 2, 9, 9], vec![0]],
            ],
        );
        only(
            &asked,
            &[(MessageKind::Negotiation, 1), (MessageKind::SyncRequest, 1)],
        );
        let answered = check(
            false,
            &[
                vec![ms("/multistream/1.0.0\n"), ms("/officemesh/sync/1\n")],
                vec![vec![0, 0, 0, 1, 7, 0]],
            ],
        );
        only(
            &answered,
            &[
                (MessageKind::Negotiation, 1),
                (MessageKind::SyncResponse, 1),
            ],
        );
    }

    #[test]
    fn a_refused_proposal_stays_negotiation_and_the_accepted_name_wins() {
        let counts = check(
            true,
            &[
                vec![ms("/multistream/1.0.0\n"), ms("/meshsub/1.3.0\n")],
                vec![ms("/ipfs/ping/1.0.0\n")],
                vec![vec![0x2f; 32]],
                vec![vec![0x41; 32]],
            ],
        );
        only(
            &counts,
            &[(MessageKind::Negotiation, 2), (MessageKind::Ping, 2)],
        );
    }

    #[test]
    fn data_sent_with_the_proposal_ends_the_negotiation() {
        let counts = check(
            true,
            &[vec![
                ms("/multistream/1.0.0\n"),
                ms("/ipfs/id/1.0.0\n"),
                vec![3, 0x0a, 1, 0],
            ]],
        );
        only(&counts, &[(MessageKind::Identify, 1)]);
    }

    #[test]
    fn varints_decode_as_protobuf_writes_them() {
        assert_eq!(varint(&[0x05]), Some((5, 1)));
        assert_eq!(varint(&[0xac, 0x02]), Some((300, 2)));
        assert_eq!(varint(&[0x80]), None);
        assert_eq!(varint(&[]), None);
    }
}
