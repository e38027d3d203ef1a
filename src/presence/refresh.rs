//! The optional active refresh (`[presence] refresh_subnets`, off by default): one empty UDP
//! datagram to the discard port of every host address of the configured subnets, so the
//! kernel asks each address for its MAC (ARP) and the neighbour table learns the devices
//! that answer. It sends to nothing else: no subnet configured, no packet.

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    str::FromStr,
};

use tokio::net::UdpSocket;
use tracing::debug;

/// The discard service (RFC 863): a datagram there asks nothing of the device; most hosts
/// drop it or answer "port unreachable", after the ARP exchange the refresh wants.
const DISCARD_PORT: u16 = 9;

/// The most host addresses the refresh may cover in all: four /24s. A larger sweep would
/// flood the LAN with ARP broadcasts every round.
pub const MAX_REFRESH_HOSTS: u32 = 1024;

/// An IPv4 subnet in CIDR notation (`192.168.1.0/24`), small enough to sweep.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// Its host addresses: every address but the network's and the broadcast one (a /31 or
    /// /32 has no such pair: all its addresses are hosts).
    pub fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.network);
        let first = u32::from(self.size() > 2);
        (first..first + self.host_count()).map(move |offset| Ipv4Addr::from(base + offset))
    }

    /// How many host addresses it has.
    pub fn host_count(self) -> u32 {
        let size = self.size();
        let hosts = if size <= 2 { size } else { size - 2 };
        u32::try_from(hosts).unwrap_or(u32::MAX)
    }

    /// How many addresses it spans.
    fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }
}

impl FromStr for Subnet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shape = || format!("{text:?} is not an IPv4 subnet like 192.168.1.0/24");
        let (address, prefix) = text.trim().split_once('/').ok_or_else(shape)?;
        let address: Ipv4Addr = address.parse().map_err(|_| shape())?;
        let prefix: u8 = prefix.parse().map_err(|_| shape())?;
        if prefix > 32 {
            return Err(shape());
        }
        let subnet = Subnet {
            network: Ipv4Addr::from(
                u32::from(address) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0),
            ),
            prefix,
        };
        if subnet.network != address {
            return Err(format!(
                "{text:?} has host bits set; its network is {subnet}"
            ));
        }
        if subnet.host_count() > MAX_REFRESH_HOSTS {
            return Err(format!(
                "{text:?} has {} host addresses; at most {MAX_REFRESH_HOSTS} may be refreshed",
                subnet.host_count()
            ));
        }
        Ok(subnet)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Sends the refresh datagrams to every host of `subnets`. Failures (no route, a host that
/// did not answer last time) are expected for some addresses and only logged at debug.
pub async fn nudge(subnets: &[Subnet]) {
    let socket = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
        Ok(socket) => socket,
        Err(error) => {
            debug!(%error, "presence: no socket for the refresh");
            return;
        }
    };
    let mut failed = 0usize;
    for subnet in subnets {
        for host in subnet.hosts() {
            let target = SocketAddr::from((host, DISCARD_PORT));
            if socket.send_to(&[], target).await.is_err() {
                failed += 1;
            }
        }
    }
    debug!(
        subnets = subnets.len(),
        failed, "presence: refresh datagrams sent"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_list_their_hosts() {
        let subnet: Subnet = "10.77.3.0/24".parse().unwrap();
        let hosts: Vec<Ipv4Addr> = subnet.hosts().collect();
        assert_eq!(hosts.len(), 254);
        assert_eq!(hosts[0], Ipv4Addr::new(10, 77, 3, 1));
        assert_eq!(hosts[253], Ipv4Addr::new(10, 77, 3, 254));
        let pair: Subnet = "10.0.0.6/31".parse().unwrap();
        assert_eq!(pair.hosts().count(), 2);
        assert_eq!(
            "192.168.0.0/22".parse::<Subnet>().unwrap().host_count(),
            1022
        );
    }

    #[test]
    fn bad_or_large_subnets_are_refused_with_a_reason() {
        for (text, expected) in [
            ("10.77.3.0", "not an IPv4 subnet"),
            ("10.77.3.0/33", "not an IPv4 subnet"),
            ("fd00::/120", "not an IPv4 subnet"),
            ("10.77.3.9/24", "host bits set; its network is 10.77.3.0/24"),
            ("10.0.0.0/8", "16777214 host addresses"),
            ("0.0.0.0/0", "4294967294 host addresses"),
        ] {
            let error = text.parse::<Subnet>().expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
