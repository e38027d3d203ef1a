//! How the node's TCP connections retransmit and give up: fast enough that a healed
//! partition is noticed at once, and a connection cut off for longer is replaced.
//!
//! While a network is split, TCP retransmits whatever a connection has queued (gossip, a
//! ping), doubling its retransmission timeout each time, from about 200 ms on a LAN up to
//! two minutes. A partition of 12 s leaves the next retransmission about 6 s after the
//! heal, and nothing sent on that connection gets through before it: the office stays
//! split seconds after its network is whole again. Linux 6.15 added `TCP_RTO_MAX_MS`, a
//! per-socket cap on that timeout; capped at [`RETRANSMISSION_TIMEOUT_CAP`], the first
//! packet after a heal goes out within a second.
//!
//! A longer partition is not worth waiting out on the old connection: every kernel lets a
//! socket give up once data it sent has gone unacknowledged for `TCP_USER_TIMEOUT`. The
//! connection closes, and the network actor dials the peer again every second with a fresh
//! SYN (`actor::dialing`, `transport::CONNECT_TIMEOUT`), so the new connection is up within
//! about a second of the heal. With the cap that limit is [`UNACKNOWLEDGED_LIMIT`] (the
//! kernel would give up after `tcp_retries2`, 15 capped retransmissions, about 15 s, anyway).
//!
//! Older kernels (the 6.6 and 6.12 of current Raspberry Pi OS) refuse the cap; the node says
//! so once. There a connection keeps the kernel's backoff, which after a partition of P
//! seconds may leave the next retransmission up to about P seconds after the heal (measured:
//! a 7.5 s partition healed in 12.3 s). So without the cap the limit is
//! [`UNACKNOWLEDGED_LIMIT_UNCAPPED`]: a partition longer than that ends the connection and
//! heals by a fresh dial, and a shorter one costs at most a few seconds.

use std::{io, os::fd::AsRawFd, sync::Once, time::Duration};

use tracing::info;

/// The longest a connection waits between two retransmissions of unacknowledged data. One
/// second is the smallest cap Linux accepts.
pub const RETRANSMISSION_TIMEOUT_CAP: Duration = Duration::from_secs(1);

/// How long data a connection sent may stay unacknowledged before the kernel closes the
/// connection. Idle connections are not affected (nothing is outstanding), and a peer whose
/// process is frozen still acknowledges through its kernel: only a peer that cannot be
/// reached at all for this long loses the connection. Below the 15 s that the capped
/// retransmissions would last anyway.
pub const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(10);

/// The same limit on a kernel that cannot cap the retransmission timeout. Three seconds
/// without an acknowledgement on a LAN (round trips of milliseconds) is a link that is down;
/// closing then costs a new connection and one sync exchange when it comes back.
pub const UNACKNOWLEDGED_LIMIT_UNCAPPED: Duration = Duration::from_secs(3);

/// `TCP_RTO_MAX_MS` from `linux/tcp.h` (Linux 6.15); the libc crate does not name it yet.
const TCP_RTO_MAX_MS: libc::c_int = 44;

/// Caps `socket`'s retransmission timeout at [`RETRANSMISSION_TIMEOUT_CAP`]. Fails with
/// `ENOPROTOOPT` on a kernel older than 6.15.
pub fn cap_retransmission_timeout(socket: &impl AsRawFd) -> io::Result<()> {
    set_milliseconds(socket, TCP_RTO_MAX_MS, RETRANSMISSION_TIMEOUT_CAP)
}

/// Makes the kernel close `socket` once data it sent has waited `limit` for an
/// acknowledgement (`TCP_USER_TIMEOUT`, Linux 2.6.37).
pub fn limit_unacknowledged_time(socket: &impl AsRawFd, limit: Duration) -> io::Result<()> {
    set_milliseconds(socket, libc::TCP_USER_TIMEOUT, limit)
}

/// Sets a TCP option whose value is a duration in milliseconds.
fn set_milliseconds(socket: &impl AsRawFd, option: libc::c_int, value: Duration) -> io::Result<()> {
    let milliseconds = libc::c_int::try_from(value.as_millis())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "duration out of range"))?;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a pointer to a live c_int,
    // and the descriptor is borrowed from an open socket for the length of the call.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            option,
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

/// Caps a new connection's retransmission timeout and limits how long its data may go
/// unacknowledged (shorter where the cap is refused), saying once per process when the
/// kernel cannot; a connection is never refused for it.
pub fn tune(socket: &impl AsRawFd) {
    static NO_CAP: Once = Once::new();
    static NO_LIMIT: Once = Once::new();
    let limit = match cap_retransmission_timeout(socket) {
        Ok(()) => UNACKNOWLEDGED_LIMIT,
        Err(error) => {
            NO_CAP.call_once(|| {
                info!(
                    %error,
                    "this kernel cannot cap TCP's retransmission timeout (TCP_RTO_MAX_MS, Linux 6.15 and later): connections are closed after 3 s of unacknowledged data instead of 10, and a partition shorter than that may take a few seconds to be noticed after it heals"
                );
            });
            UNACKNOWLEDGED_LIMIT_UNCAPPED
        }
    };
    if let Err(error) = limit_unacknowledged_time(socket, limit) {
        NO_LIMIT.call_once(|| {
            info!(
                %error,
                "cannot limit how long a TCP connection's data may go unacknowledged (TCP_USER_TIMEOUT): connections cut off by a network partition last for minutes"
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    fn read(socket: &TcpStream, option: libc::c_int) -> io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut length = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `length` bytes into a live c_int and the new
        // length into a live socklen_t.
        let result = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                option,
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
        let before = read(&socket, TCP_RTO_MAX_MS);
        match cap_retransmission_timeout(&socket) {
            Ok(()) => {
                assert_eq!(
                    before.unwrap(),
                    120_000,
                    "the kernel's default cap is 2 minutes"
                );
                assert_eq!(read(&socket, TCP_RTO_MAX_MS).unwrap(), 1000);
            }
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(libc::ENOPROTOOPT), "{error}");
                assert!(before.is_err());
            }
        }
    }

    /// A tuned connection gives up on unacknowledged data after 10 s where its
    /// retransmissions are capped, after 3 s where they cannot be.
    #[test]
    fn a_tuned_connection_gives_up_on_unacknowledged_data_sooner_without_the_cap() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(
            read(&socket, libc::TCP_USER_TIMEOUT).unwrap(),
            0,
            "no limit by default"
        );
        tune(&socket);
        let capped = read(&socket, TCP_RTO_MAX_MS).is_ok_and(|cap| cap == 1000);
        let expected = if capped { 10_000 } else { 3_000 };
        assert_eq!(read(&socket, libc::TCP_USER_TIMEOUT).unwrap(), expected);
    }
}
