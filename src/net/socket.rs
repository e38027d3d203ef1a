//! How the node's TCP connections retransmit: fast enough that a healed partition is
//! noticed at once.
//!
//! While a network is split, TCP retransmits whatever a connection has queued (gossip, a
//! ping), doubling its retransmission timeout each time, from about 200 ms on a LAN up to
//! two minutes. A partition of 12 s leaves the next retransmission about 6 s after the
//! heal, and nothing sent on that connection gets through before it: the office stays
//! split seconds after its network is whole again. Linux 6.15 added `TCP_RTO_MAX_MS`, a
//! per-socket cap on that timeout; capped at [`RETRANSMISSION_TIMEOUT_CAP`], the first
//! packet after a heal goes out within a second.
//!
//! The cap has a price the kernel sets: a connection gives up after `tcp_retries2` (15)
//! retransmissions of the same data, which at one a second is about 15 s of a partition
//! rather than many minutes. The network actor redials a peer whose connection died
//! (`actor::dialing`), so a longer partition ends in a fresh connection instead.
//!
//! Older kernels (the 6.6 and 6.12 of current Raspberry Pi OS) refuse the option; the node
//! says so once and its connections keep the kernel's backoff.

use std::{io, os::fd::AsRawFd, sync::Once, time::Duration};

use tracing::info;

/// The longest a connection waits between two retransmissions of unacknowledged data. One
/// second is the smallest cap Linux accepts.
pub const RETRANSMISSION_TIMEOUT_CAP: Duration = Duration::from_secs(1);

/// `TCP_RTO_MAX_MS` from `linux/tcp.h` (Linux 6.15); the libc crate does not name it yet.
const TCP_RTO_MAX_MS: libc::c_int = 44;

/// Caps `socket`'s retransmission timeout at [`RETRANSMISSION_TIMEOUT_CAP`]. Fails with
/// `ENOPROTOOPT` on a kernel older than 6.15.
pub fn cap_retransmission_timeout(socket: &impl AsRawFd) -> io::Result<()> {
    let milliseconds = libc::c_int::try_from(RETRANSMISSION_TIMEOUT_CAP.as_millis())
        .expect("the cap is a few seconds");
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a pointer to a live c_int,
    // and the descriptor is borrowed from an open socket for the length of the call.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_RTO_MAX_MS,
            (&raw const milliseconds).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Caps a new connection's retransmission timeout, saying once per process when the kernel
/// cannot; a connection is never refused for it.
pub fn tune(socket: &impl AsRawFd) {
    static UNSUPPORTED: Once = Once::new();
    if let Err(error) = cap_retransmission_timeout(socket) {
        UNSUPPORTED.call_once(|| {
            info!(
                %error,
                "this kernel cannot cap TCP's retransmission timeout (TCP_RTO_MAX_MS, Linux 6.15 and later): after a network partition heals, the office may take several seconds to notice"
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    fn read_cap(socket: &TcpStream) -> io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut length = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `length` bytes into a live c_int and the new
        // length into a live socklen_t.
        let result = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                TCP_RTO_MAX_MS,
                (&raw mut value).cast(),
                &raw mut length,
            )
        };
        if result == 0 {
            Ok(value)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// On a kernel with the option the cap is set and reads back; on an older one the call
    /// fails with the error a kernel without the option gives, nothing else.
    #[test]
    fn the_retransmission_timeout_is_capped_where_the_kernel_can() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let before = read_cap(&socket);
        match cap_retransmission_timeout(&socket) {
            Ok(()) => {
                assert_eq!(
                    before.unwrap(),
                    120_000,
                    "the kernel's default cap is 2 minutes"
                );
                assert_eq!(read_cap(&socket).unwrap(), 1000);
            }
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::ENOPROTOOPT), "{error}");
                assert!(before.is_err());
            }
        }
    }
}
