//! The transport: TCP (and, for tests, in-memory channels) behind a DNS resolver, then the
//! private network layer with the office's key, then Noise, then yamux.
//!
//! The resolver turns `/dns4/pi-kitchen.lan/tcp/7879` (or `/dns6`, `/dns`, `/dnsaddr`) into
//! IP addresses on every dial, so a redial follows a peer whose address changed. It reads
//! the system's `/etc/resolv.conf` and `/etc/hosts` once, at start; `localhost` and `.invalid`
//! names never leave the machine.
//!
//! pnet sits directly on the socket: both sides exchange nonces and from then on XSalsa20
//! encrypts every byte with the pre-shared key. A peer with another key (or none) sees
//! garbage. Left alone, that shows up late and vaguely: multistream-select may read a
//! garbage length prefix and wait for bytes that never come, until the connection times
//! out, and the error chain says nothing of keys. So right after the pnet handshake each
//! side checks the first line the other sends, which for any libp2p peer is the
//! multistream-select header: the listener reads it before going on (the dialer speaks
//! first), the dialer checks it as multistream-select reads it. A mismatch fails the
//! connection at once and is reported on a side channel ([`HandshakeFailure`]), so the actor
//! can log one clear line. Nothing extra goes on the wire: the header is handed on to
//! multistream-select untouched, so go-libp2p and js-libp2p peers with the same key connect.
//!
//! Every TCP connection, dialled or accepted, gets its retransmission timeout capped and a
//! limit on how long sent data may stay unacknowledged (`super::socket`), so a connection
//! that lived through a short partition speaks again within a second of the heal and one cut
//! off longer is closed and dialled afresh. A TCP dial gives up after [`CONNECT_TIMEOUT`].
//!
//! Built with the `bench` feature, a benchmark may also put an artificial latency under
//! pnet and count what the links carry (`super::delay`).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, future::Either};
use libp2p::{
    Multiaddr, PeerId, Transport,
    core::{
        multiaddr::Protocol,
        muxing::StreamMuxerBox,
        transport::{
            Boxed, MemoryTransport, OptionalTransport, OrTransport, timeout::TransportTimeout,
        },
        upgrade::Version,
    },
    dns,
    identity::Keypair,
    noise,
    pnet::{PnetConfig, PnetOutput, PreSharedKey},
    tcp, yamux,
};
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::warn;

#[cfg(feature = "bench")]
use super::delay::{self, LinkDelay};
use super::{SwarmKey, socket};

/// How long a connection may take from the dial (a host name's lookup included) to a
/// negotiated multiplexer. A LAN handshake takes milliseconds; a Pi on a slow Wi-Fi link a
/// second or two; a lookup whose DNS server does not answer gives up within this too.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a TCP dial may wait for the peer to answer its SYN: the first SYN and one
/// retransmission (Linux sends it 1 s later). A LAN answers in milliseconds. Past this the
/// dial fails and the next one starts with a fresh SYN, rather than the kernel spacing its
/// retransmissions 2, 4, 8 ... s apart: a peer redialled every second while it is lost
/// (`actor::dialing`) is reached within about a second of a partition healing.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long each step of the private-network handshake may take: the nonce exchange, then
/// (listening) the dialer's first line. A libp2p peer sends both at once.
pub const PRIVATE_NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

/// The first bytes every libp2p dialer sends once the private network is set up: the
/// multistream-select 1.0.0 header, length-prefixed.
const MULTISTREAM_HEADER: &[u8; 20] = b"\x13/multistream/1.0.0\n";

/// How the private-network handshake failed.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum PrivateNetworkError {
    /// The peer sent no nonce, or no first line: not a libp2p peer of a private network.
    #[error("the peer did not complete the private-network handshake")]
    Silent,
    /// What the peer sent after the handshake does not decrypt to libp2p.
    #[error("the peer's traffic does not decrypt with the swarm key: it has another key, or none")]
    WrongKey,
    /// The listener hung up right after the handshake, as one does that found the dialer's
    /// first line garbage.
    #[error("the peer closed the connection right after the private-network handshake")]
    HungUp,
}

/// A connection that failed the private-network handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeFailure {
    /// The remote address (for an incoming connection, with the peer's ephemeral port).
    pub address: Multiaddr,
    pub dialing: bool,
    pub error: PrivateNetworkError,
}

/// Handshake failures waiting for the actor. Each is only a log line and the actor logs
/// one per address anyway, so past this many they are dropped.
pub const HANDSHAKE_FAILURE_QUEUE: usize = 16;

/// Which base transports to offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseTransport {
    /// TCP only: what a node runs.
    Tcp,
    /// TCP and `/memory/N` addresses, for tests inside one process.
    TcpAndMemory,
}

/// The transport a swarm takes: it yields authenticated, multiplexed connections.
pub type NodeTransport = Boxed<(PeerId, StreamMuxerBox)>;

/// The sockets under everything: TCP, and memory channels when asked.
type Sockets =
    OrTransport<TransportTimeout<tcp::tokio::Transport>, OptionalTransport<MemoryTransport>>;

fn sockets(base: BaseTransport) -> Sockets {
    let tcp = TransportTimeout::with_outgoing_timeout(
        tcp::tokio::Transport::new(tcp::Config::new().nodelay(true)),
        CONNECT_TIMEOUT,
    );
    let memory = match base {
        BaseTransport::Tcp => OptionalTransport::none(),
        BaseTransport::TcpAndMemory => OptionalTransport::some(MemoryTransport::default()),
    };
    OrTransport::new(tcp, memory)
}

/// The sockets behind a resolver of host names, configured as the system is. Without a
/// readable `/etc/resolv.conf` (a minimal container) names resolve from `/etc/hosts` only,
/// rather than from some public DNS server the office never chose.
fn resolving(base: BaseTransport) -> dns::tokio::Transport<Sockets> {
    dns::tokio::Transport::system(sockets(base)).unwrap_or_else(|error| {
        warn!(
            %error,
            "cannot read the system's DNS configuration (/etc/resolv.conf): host names in peer addresses resolve from /etc/hosts only"
        );
        dns::tokio::Transport::custom(
            sockets(base),
            dns::ResolverConfig::from_name_servers(Vec::new()),
            dns::ResolverOpts::default(),
        )
    })
}

/// Why [`build`]'s transport cannot dial `address`, or `None` when it can: TCP to an IP
/// address or a host name (`/ip4`, `/ip6`, `/dns`, `/dns4`, `/dns6`, then `/tcp/PORT`), or a
/// `/dnsaddr` name, each optionally ending in `/p2p/PEER_ID`; `/memory/N` only with
/// [`BaseTransport::TcpAndMemory`]. It follows what libp2p's TCP transport accepts, so a
/// configured peer it could never reach is named at start instead of failing every redial.
pub fn cannot_dial(address: &Multiaddr, base: BaseTransport) -> Option<&'static str> {
    let mut protocols: Vec<Protocol> = address.iter().collect();
    if let Some(Protocol::P2p(_)) = protocols.last() {
        protocols.pop();
    }
    let unspecified = "0.0.0.0 and :: are listen addresses, not the address of a peer";
    let port_zero = "port 0 is not a port a peer listens on";
    match protocols.as_slice() {
        [Protocol::Ip4(ip), Protocol::Tcp(_)] if ip.is_unspecified() => Some(unspecified),
        [Protocol::Ip6(ip), Protocol::Tcp(_)] if ip.is_unspecified() => Some(unspecified),
        [
            Protocol::Ip4(_)
            | Protocol::Ip6(_)
            | Protocol::Dns(_)
            | Protocol::Dns4(_)
            | Protocol::Dns6(_),
            Protocol::Tcp(port),
        ] => (*port == 0).then_some(port_zero),
        [Protocol::Dnsaddr(_)] => None,
        [Protocol::Memory(_)] if base == BaseTransport::TcpAndMemory => None,
        [Protocol::Memory(_)] => Some("memory addresses exist only inside one test process"),
        _ if protocols.iter().any(|protocol| {
            matches!(
                protocol,
                Protocol::Udp(_) | Protocol::Quic | Protocol::QuicV1
            )
        }) =>
        {
            Some("QUIC and UDP cannot carry the office's private-network key; officemesh dials TCP")
        }
        _ => Some(
            "officemesh dials TCP only: /ip4, /ip6, /dns, /dns4 or /dns6, then /tcp/PORT, optionally /p2p/PEER_ID",
        ),
    }
}

/// Builds DNS -> TCP (+ memory) -> pnet -> Noise -> yamux, with a timeout on the whole dial,
/// and the receiver of private-network handshake failures. With `link_delay` (benchmarks),
/// every socket is delayed and every muxer counts its messages.
pub fn build(
    keypair: &Keypair,
    key: &SwarmKey,
    base: BaseTransport,
    #[cfg(feature = "bench")] link_delay: Option<LinkDelay>,
) -> Result<(NodeTransport, mpsc::Receiver<HandshakeFailure>), noise::Error> {
    let psk = key.psk();
    let (reports, failures) = mpsc::channel(HANDSHAKE_FAILURE_QUEUE);
    #[cfg(feature = "bench")]
    let counting = link_delay.clone();
    let transport = resolving(base)
        .and_then(move |socket, endpoint| {
            let report = Report {
                address: endpoint.get_remote_address().clone(),
                dialing: endpoint.is_dialer(),
                sender: reports,
            };
            if let Either::Left(tcp) = &socket {
                socket::tune(&tcp.0);
            }
            #[cfg(feature = "bench")]
            let socket = delay::wrap(socket, link_delay.as_ref());
            private_network(socket, psk, report)
        })
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(keypair)?)
        .multiplex(yamux::Config::default())
        .map(move |(peer, muxer), _| {
            #[cfg(feature = "bench")]
            let muxer = delay::box_muxer(muxer, counting.as_ref());
            #[cfg(not(feature = "bench"))]
            let muxer = StreamMuxerBox::new(muxer);
            (peer, muxer)
        });
    Ok((
        TransportTimeout::new(transport, CONNECTION_TIMEOUT).boxed(),
        failures,
    ))
}

/// Where a connection reports a failed handshake.
#[derive(Clone)]
struct Report {
    address: Multiaddr,
    dialing: bool,
    sender: mpsc::Sender<HandshakeFailure>,
}

impl Report {
    /// Reports the failure and returns it as the connection's error.
    fn fail(&self, error: PrivateNetworkError) -> io::Error {
        let _ = self.sender.try_send(HandshakeFailure {
            address: self.address.clone(),
            dialing: self.dialing,
            error,
        });
        io::Error::other(error)
    }
}

/// The pnet handshake, then (listening) a check that the dialer's first line decrypts.
async fn private_network<S>(
    socket: S,
    psk: PreSharedKey,
    report: Report,
) -> io::Result<Guarded<PnetOutput<S>>>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let handshake = PnetConfig::new(psk).handshake(socket);
    let mut socket = match tokio::time::timeout(PRIVATE_NETWORK_TIMEOUT, handshake).await {
        Ok(Ok(socket)) => socket,
        // The peer hung up or the network failed before any key was involved.
        Ok(Err(error)) => return Err(io::Error::other(error)),
        Err(_) => return Err(report.fail(PrivateNetworkError::Silent)),
    };
    if report.dialing {
        // The dialer speaks first, so it checks the listener's first line as it arrives;
        // waiting for it here would deadlock.
        return Ok(Guarded::checking(socket, report));
    }
    let mut first = [0u8; MULTISTREAM_HEADER.len()];
    match tokio::time::timeout(PRIVATE_NETWORK_TIMEOUT, socket.read_exact(&mut first)).await {
        Ok(Ok(())) if first == *MULTISTREAM_HEADER => Ok(Guarded::replaying(first, socket)),
        Ok(Ok(())) => Err(report.fail(PrivateNetworkError::WrongKey)),
        // The dialer gave up (or lost the race with a connection the other way).
        Ok(Err(error)) => Err(error),
        Err(_) => Err(report.fail(PrivateNetworkError::Silent)),
    }
}

/// The stream after the pnet handshake, on its way to multistream-select. Listening, it
/// first hands out the header already read from it; dialing, it checks the header as it
/// passes.
pub struct Guarded<S> {
    inner: S,
    /// Listening: the header, already read and checked, not yet handed out.
    replay: Vec<u8>,
    /// Dialing: how much of the listener's header has passed the check, and where to
    /// report a failure (`None` once the check is over).
    checked: usize,
    report: Option<Report>,
}

impl<S> Guarded<S> {
    fn replaying(header: [u8; MULTISTREAM_HEADER.len()], inner: S) -> Self {
        Guarded {
            inner,
            replay: header.to_vec(),
            checked: 0,
            report: None,
        }
    }

    fn checking(inner: S, report: Report) -> Self {
        Guarded {
            inner,
            replay: Vec::new(),
            checked: 0,
            report: Some(report),
        }
    }

    /// Checks bytes just read from the listener against the rest of the header.
    fn check(&mut self, read: io::Result<usize>, buf: &[u8]) -> io::Result<usize> {
        let Some(report) = &self.report else {
            return read;
        };
        if buf.is_empty() {
            return read;
        }
        let outcome = match &read {
            Ok(0) | Err(_) => Err(PrivateNetworkError::HungUp),
            Ok(count) => {
                let expected = &MULTISTREAM_HEADER[self.checked..];
                let length = (*count).min(expected.len());
                if buf[..length] == expected[..length] {
                    self.checked += length;
                    Ok(())
                } else {
                    Err(PrivateNetworkError::WrongKey)
                }
            }
        };
        match outcome {
            Ok(()) => {
                if self.checked == MULTISTREAM_HEADER.len() {
                    self.report = None;
                }
                read
            }
            Err(PrivateNetworkError::HungUp) => {
                report.fail(PrivateNetworkError::HungUp);
                self.report = None;
                read
            }
            Err(error) => {
                let error = report.fail(error);
                self.report = None;
                Err(error)
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !this.replay.is_empty() {
            let count = this.replay.len().min(buf.len());
            buf[..count].copy_from_slice(&this.replay[..count]);
            this.replay.drain(..count);
            return Poll::Ready(Ok(count));
        }
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(read) => Poll::Ready(this.check(read, buf)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::{executor::block_on, io::Cursor};

    use super::*;

    #[test]
    fn what_the_transport_cannot_dial_is_named_with_the_reason() {
        let check = |address: &str, base: BaseTransport, expected: Option<&str>| {
            let reason = cannot_dial(&address.parse().unwrap(), base);
            match expected {
                None => assert_eq!(reason, None, "{address}"),
                Some(part) => assert!(
                    reason.is_some_and(|reason| reason.contains(part)),
                    "{address}: {reason:?}"
                ),
            }
        };
        let peer = "12D3KooWMxKXJNRnn7gHAANm4pr75ejnDeTGnF5EF6P8tj48JvHS";
        for dialable in [
            "/ip4/192.0.2.1/tcp/7879".to_owned(),
            "/ip6/2001:db8::1/tcp/7879".to_owned(),
            "/dns4/pi-kitchen.lan/tcp/7879".to_owned(),
            "/dns6/pi-kitchen.lan/tcp/7879".to_owned(),
            format!("/dns/pi-kitchen.lan/tcp/7879/p2p/{peer}"),
            "/dnsaddr/office.example".to_owned(),
        ] {
            check(&dialable, BaseTransport::Tcp, None);
        }
        check("/memory/7", BaseTransport::TcpAndMemory, None);
        check("/memory/7", BaseTransport::Tcp, Some("memory"));
        check(
            "/ip4/192.0.2.1/udp/7879/quic-v1",
            BaseTransport::Tcp,
            Some("QUIC"),
        );
        check(
            "/ip4/192.0.2.1/tcp/7879/ws",
            BaseTransport::Tcp,
            Some("TCP only"),
        );
        check("/dns4/pi-kitchen.lan", BaseTransport::Tcp, Some("TCP only"));
        check(
            "/ip4/0.0.0.0/tcp/7879",
            BaseTransport::Tcp,
            Some("listen address"),
        );
        check(
            "/ip6/::/tcp/7879",
            BaseTransport::Tcp,
            Some("listen address"),
        );
        check(
            "/dns4/pi-kitchen.lan/tcp/0",
            BaseTransport::Tcp,
            Some("port 0"),
        );
    }

    /// A dialer's guard over `incoming` (what the listener sends), and its reports.
    fn dialer(incoming: &[u8]) -> (Guarded<Cursor<Vec<u8>>>, mpsc::Receiver<HandshakeFailure>) {
        let (sender, reports) = mpsc::channel(HANDSHAKE_FAILURE_QUEUE);
        let report = Report {
            address: "/ip4/127.0.0.1/tcp/4001".parse().unwrap(),
            dialing: true,
            sender,
        };
        (
            Guarded::checking(Cursor::new(incoming.to_vec()), report),
            reports,
        )
    }

    fn read_all(stream: &mut Guarded<Cursor<Vec<u8>>>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        // Small reads, so the header is checked across several of them.
        let mut buf = [0u8; 7];
        loop {
            match block_on(stream.read(&mut buf))? {
                0 => return Ok(out),
                count => out.extend_from_slice(&buf[..count]),
            }
        }
    }

    #[test]
    fn the_dialer_passes_a_libp2p_listener_through() {
        let mut incoming = MULTISTREAM_HEADER.to_vec();
        incoming.extend_from_slice(b"\x07/noise\n rest of the stream");
        let (mut stream, mut reports) = dialer(&incoming);
        assert_eq!(read_all(&mut stream).unwrap(), incoming);
        assert!(reports.try_recv().is_err(), "nothing reported");
    }

    #[test]
    fn the_dialer_refuses_garbage_and_reports_it() {
        let (mut stream, mut reports) = dialer(b"\x13/multistream/9.9.9\n");
        let error = read_all(&mut stream).unwrap_err();
        assert!(error.to_string().contains("another key"), "{error}");
        let report = reports.try_recv().unwrap();
        assert_eq!(report.error, PrivateNetworkError::WrongKey);
        assert!(report.dialing);
        assert!(reports.try_recv().is_err(), "reported once");
    }

    #[test]
    fn the_dialer_reports_a_listener_that_hangs_up() {
        let (mut stream, mut reports) = dialer(&MULTISTREAM_HEADER[..5]);
        assert_eq!(
            read_all(&mut stream).unwrap(),
            MULTISTREAM_HEADER[..5].to_vec()
        );
        assert_eq!(
            reports.try_recv().unwrap().error,
            PrivateNetworkError::HungUp
        );
    }

    #[test]
    fn the_listener_replays_the_header_it_checked() {
        let rest = Cursor::new(b" and the rest".to_vec());
        let mut stream = Guarded::replaying(*MULTISTREAM_HEADER, rest);
        let mut expected = MULTISTREAM_HEADER.to_vec();
        expected.extend_from_slice(b" and the rest");
        assert_eq!(read_all(&mut stream).unwrap(), expected);
    }
}
