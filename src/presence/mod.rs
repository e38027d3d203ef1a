//! Presence: which devices are on the office network, as this node sees them.
//!
//! Every scan interval the node reads its kernel's neighbour table (over netlink, or a file in
//! `/proc/net/arp` format), keeps the entries that show a device answered, and writes its own
//! network-map rows (MAC, IP, last seen) in one batch. Whether a device is *present* is not
//! stored: readers derive it, a device being present while some node saw it within
//! `consider_home`. See `docs/presence.md`.
//!
//! Presence is a feature: a source that fails logs one line, backs off and retries, and never
//! takes the node down.

pub mod arp;
pub mod config;
pub mod neighbours;
pub mod refresh;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use self::{
    config::{CONSIDER_HOME_MS, PresenceConfig},
    refresh::Subnet,
};
use crate::{
    backoff::Backoff,
    office::{OfficeError, OfficeHandle, Write},
    state::Mac,
};

/// The longest wait between two attempts on a failing source.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Evidence younger than a write by at most this much is the evidence of that write: the
/// kernel counts ages in 10 ms ticks, so the same confirmation can look a tick newer.
const EVIDENCE_SLACK_MS: u64 = 20;

/// Where the interfaces of this host (or network namespace) list their MACs.
const OWN_INTERFACES: &str = "/sys/class/net";

/// How recent an observation is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Evidence {
    /// The kernel confirmed the device this many milliseconds before the scan.
    ConfirmedAgo(u64),
    /// The source has no ages: seen at the scan.
    Now,
}

/// A device a source shows on the link.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Observed {
    pub mac: Mac,
    pub ip: IpAddr,
    pub evidence: Evidence,
}

/// What this node last wrote for one device.
#[derive(Clone, Copy, Debug)]
struct Written {
    ip: IpAddr,
    at_ms: u64,
}

/// Decides which network-map rows a scan rewrites. Pure: time is an argument (milliseconds
/// on any monotonic scale).
///
/// A row is written when a device is first seen, when its address changes, and when the
/// source shows newer evidence than the last write: a device that keeps talking is rewritten
/// once per scan, one that fell silent (its entry lingering STALE in the kernel) is not, so
/// its row ages and it turns absent after `consider_home`. Evidence older than
/// `consider_home` is no sighting at all, so a restart does not make long-gone devices
/// present again.
#[derive(Debug)]
pub struct Tracker {
    consider_home_ms: u64,
    ignore: BTreeSet<Mac>,
    written: BTreeMap<Mac, Written>,
}

impl Tracker {
    pub fn new(consider_home: Duration, ignore: BTreeSet<Mac>) -> Tracker {
        Tracker {
            consider_home_ms: consider_home.as_millis() as u64,
            ignore,
            written: BTreeMap::new(),
        }
    }

    /// The rows to write after a scan at `now_ms` that observed `observed`; `own` are this
    /// host's interface MACs, never written.
    pub fn scan(
        &mut self,
        observed: &[Observed],
        own: &BTreeSet<Mac>,
        now_ms: u64,
    ) -> Vec<(Mac, IpAddr)> {
        // Per device: its freshest evidence and its most useful address.
        let mut devices: BTreeMap<Mac, (u64, IpAddr)> = BTreeMap::new();
        for seen in observed {
            let mac = seen.mac;
            if self.ignore.contains(&mac) || own.contains(&mac) || !is_device(mac) {
                continue;
            }
            let evidence_ms = match seen.evidence {
                Evidence::ConfirmedAgo(ago_ms) => now_ms.saturating_sub(ago_ms),
                Evidence::Now => now_ms,
            };
            if now_ms.saturating_sub(evidence_ms) > self.consider_home_ms {
                continue;
            }
            devices
                .entry(mac)
                .and_modify(|(freshest, ip)| {
                    *freshest = (*freshest).max(evidence_ms);
                    if address_rank(seen.ip) > address_rank(*ip) {
                        *ip = seen.ip;
                    }
                })
                .or_insert((evidence_ms, seen.ip));
        }
        let mut writes = Vec::new();
        for (mac, (evidence_ms, ip)) in devices {
            let rewrite = match self.written.get(&mac) {
                None => true,
                Some(last) => last.ip != ip || evidence_ms > last.at_ms + EVIDENCE_SLACK_MS,
            };
            if rewrite {
                self.written.insert(mac, Written { ip, at_ms: now_ms });
                writes.push((mac, ip));
            }
        }
        // A device not written for consider_home is absent; forgetting it keeps the memory
        // to the devices present now, and its next sighting is written as new.
        let horizon = self.consider_home_ms;
        self.written
            .retain(|_, last| now_ms.saturating_sub(last.at_ms) <= horizon);
        writes
    }
}

/// Whether a MAC can be a device's: not all zeros, not a group (multicast or broadcast)
/// address, which the kernel keeps for IPv6 multicast and broadcast entries.
fn is_device(mac: Mac) -> bool {
    mac.0 != [0; 6] && mac.0[0] & 0x01 == 0
}

/// Which address to show for a device seen at several: IPv4, then a global IPv6 address,
/// then a link-local one.
fn address_rank(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 2,
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => 0,
        IpAddr::V6(_) => 1,
    }
}

/// Where a node reads its neighbours from.
#[derive(Clone, Debug)]
pub enum Source {
    Netlink,
    ArpTable(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Netlink => f.write_str("the kernel's neighbour table (netlink)"),
            Source::ArpTable(path) => write!(f, "the ARP table file {}", path.display()),
        }
    }
}

impl Source {
    /// Reads the devices the source shows now.
    pub async fn read(&self) -> Result<Vec<Observed>, String> {
        match self {
            Source::Netlink => {
                let dump = tokio::task::spawn_blocking(neighbours::dump)
                    .await
                    .map_err(|error| format!("the netlink reader failed: {error}"))?
                    .map_err(|error| error.to_string())?;
                Ok(dump
                    .iter()
                    .filter_map(neighbours::Neighbour::observed)
                    .collect())
            }
            Source::ArpTable(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|error| format!("cannot read it: {error}"))?;
                arp::parse(&text).map_err(|error| error.to_string())
            }
        }
    }
}

/// The MACs of the interfaces in `dir` (normally `/sys/class/net`); an unreadable directory
/// or file is simply left out.
pub fn own_macs(dir: &Path) -> BTreeSet<Mac> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("address")).ok())
        .filter_map(|text| text.trim().parse::<Mac>().ok())
        .collect()
}

/// The waits between failed scans: step 0 is the scan interval itself, so the first failure
/// already waits twice the interval, and the waits double up to [`MAX_BACKOFF`] (an interval
/// longer than that is kept).
fn scan_backoff(interval: Duration) -> Backoff {
    Backoff::new(interval, MAX_BACKOFF)
}

/// How often the active refresh runs: twice per `consider_home`, so a device that answers
/// stays present, but never more often than the scans.
fn refresh_interval(settings: &PresenceConfig) -> Duration {
    (settings.consider_home / 2).max(settings.interval)
}

/// Scans until `shutdown`, writing this node's network-map rows through `office`.
pub async fn run(office: OfficeHandle, settings: PresenceConfig, shutdown: CancellationToken) {
    let source = match &settings.arp_table {
        Some(path) => Source::ArpTable(path.clone()),
        None => Source::Netlink,
    };
    info!(
        %source,
        interval_ms = settings.interval.as_millis() as u64,
        refresh_subnets = settings.refresh_subnets.len(),
        "presence: watching the network"
    );
    let mut tracker = Tracker::new(settings.consider_home, settings.ignore.clone());
    let started = Instant::now();
    let backoff = scan_backoff(settings.interval);
    let mut failures = 0u32;
    let mut wait = Duration::ZERO;
    let mut last_refresh: Option<Instant> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let refresh_due = last_refresh.is_none_or(|at| at.elapsed() >= refresh_interval(&settings));
        if !settings.refresh_subnets.is_empty() && refresh_due {
            refresh::nudge(&settings.refresh_subnets).await;
            last_refresh = Some(Instant::now());
        }
        let observed = match source.read().await {
            Ok(observed) => observed,
            Err(error) => {
                failures = failures.saturating_add(1);
                wait = backoff.delay(failures);
                let retry_in_s = wait.as_secs();
                if failures == 1 {
                    warn!(%error, %source, retry_in_s, "presence: cannot read the neighbours; retrying with backoff");
                } else {
                    debug!(%error, failures, retry_in_s, "presence: still failing");
                }
                continue;
            }
        };
        if failures > 0 {
            info!(%source, failures, "presence: the neighbours are readable again");
            failures = 0;
        }
        wait = settings.interval;
        let now_ms = started.elapsed().as_millis() as u64;
        let seen = tracker.scan(&observed, &own_macs(Path::new(OWN_INTERFACES)), now_ms);
        if seen.is_empty() {
            continue;
        }
        debug!(devices = seen.len(), "presence: writing sightings");
        match office.write(Write::Sightings { seen }).await {
            Ok(()) => {}
            Err(OfficeError::Stopped) => return,
            Err(error) => warn!(%error, "presence: sightings not recorded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSIDER_HOME: Duration = Duration::from_secs(180);

    fn mac(text: &str) -> Mac {
        text.parse().unwrap()
    }

    fn seen(mac_text: &str, ip: &str, evidence: Evidence) -> Observed {
        Observed {
            mac: mac(mac_text),
            ip: ip.parse().unwrap(),
            evidence,
        }
    }

    fn written(writes: &[(Mac, IpAddr)]) -> Vec<String> {
        writes
            .iter()
            .map(|(mac, ip)| format!("{mac} {ip}"))
            .collect()
    }

    #[test]
    fn a_device_is_rewritten_only_on_new_evidence() {
        let mut tracker = Tracker::new(CONSIDER_HOME, BTreeSet::new());
        let none = BTreeSet::new();
        let phone = "f2:c6:75:56:2f:91";
        // Confirmed 5 s before the first scan: a first sighting.
        let scan = [seen(phone, "10.0.0.2", Evidence::ConfirmedAgo(5_000))];
        assert_eq!(
            written(&tracker.scan(&scan, &none, 100_000)),
            ["f2:c6:75:56:2f:91 10.0.0.2"]
        );
        // 15 s later the same confirmation, now 20 s old (the entry went STALE): nothing new.
        let scan = [seen(phone, "10.0.0.2", Evidence::ConfirmedAgo(20_000))];
        assert!(tracker.scan(&scan, &none, 115_000).is_empty());
        // Confirmed again 1 s before the next scan: rewritten.
        let scan = [seen(phone, "10.0.0.2", Evidence::ConfirmedAgo(1_000))];
        assert_eq!(tracker.scan(&scan, &none, 130_000).len(), 1);
        // A new address is written even on old evidence.
        let scan = [seen(phone, "10.0.0.9", Evidence::ConfirmedAgo(16_000))];
        assert_eq!(
            written(&tracker.scan(&scan, &none, 145_000)),
            ["f2:c6:75:56:2f:91 10.0.0.9"]
        );
    }

    #[test]
    fn a_table_without_ages_rewrites_each_scan() {
        let mut tracker = Tracker::new(CONSIDER_HOME, BTreeSet::new());
        let scan = [seen("00:1a:2b:3c:4d:5e", "10.0.0.3", Evidence::Now)];
        for now_ms in [0, 15_000, 30_000] {
            assert_eq!(tracker.scan(&scan, &BTreeSet::new(), now_ms).len(), 1);
        }
    }

    #[test]
    fn old_evidence_ignored_and_own_macs_are_never_written() {
        let laptop = mac("00:1a:2b:3c:4d:5e");
        let router = mac("00:00:5e:00:01:01");
        let own = BTreeSet::from([mac("02:f6:ba:93:b0:0f")]);
        let mut tracker = Tracker::new(CONSIDER_HOME, BTreeSet::from([router]));
        let scan = [
            seen("00:1a:2b:3c:4d:5e", "10.0.0.3", Evidence::Now),
            seen("00:00:5e:00:01:01", "10.0.0.1", Evidence::Now),
            seen("02:f6:ba:93:b0:0f", "10.0.0.4", Evidence::Now),
            // Lingering for an hour since its last confirmation.
            seen(
                "00:11:22:33:44:55",
                "10.0.0.5",
                Evidence::ConfirmedAgo(3_600_000),
            ),
            // Group and empty addresses are not devices.
            seen("33:33:00:00:00:01", "ff02::1", Evidence::Now),
            seen("ff:ff:ff:ff:ff:ff", "10.0.0.255", Evidence::Now),
            seen("00:00:00:00:00:00", "10.0.0.6", Evidence::Now),
        ];
        let writes = tracker.scan(&scan, &own, 4_000_000);
        assert_eq!(writes, [(laptop, "10.0.0.3".parse().unwrap())]);
    }

    #[test]
    fn a_device_on_ipv4_and_ipv6_is_one_row_with_its_ipv4_address() {
        let mut tracker = Tracker::new(CONSIDER_HOME, BTreeSet::new());
        let phone = "f2:c6:75:56:2f:91";
        let scan = [
            seen(
                phone,
                "fe80::f0c6:75ff:fe56:2f91",
                Evidence::ConfirmedAgo(0),
            ),
            seen(phone, "2001:db8::7", Evidence::ConfirmedAgo(40_000)),
            seen(phone, "10.0.0.2", Evidence::ConfirmedAgo(43_000)),
        ];
        let writes = tracker.scan(&scan, &BTreeSet::new(), 100_000);
        assert_eq!(written(&writes), ["f2:c6:75:56:2f:91 10.0.0.2"]);
        // The IPv6 confirmation counts as evidence for the device: a later one rewrites it.
        let scan = [
            seen(
                phone,
                "fe80::f0c6:75ff:fe56:2f91",
                Evidence::ConfirmedAgo(0),
            ),
            seen(phone, "10.0.0.2", Evidence::ConfirmedAgo(58_000)),
        ];
        assert_eq!(tracker.scan(&scan, &BTreeSet::new(), 115_000).len(), 1);
    }

    #[test]
    fn a_device_absent_for_consider_home_is_written_as_new_when_it_returns() {
        let mut tracker = Tracker::new(Duration::from_secs(10), BTreeSet::new());
        let scan = [seen("00:1a:2b:3c:4d:5e", "10.0.0.3", Evidence::Now)];
        assert_eq!(tracker.scan(&scan, &BTreeSet::new(), 0).len(), 1);
        assert!(tracker.scan(&[], &BTreeSet::new(), 11_000).is_empty());
        assert!(tracker.written.is_empty(), "forgotten after consider_home");
        assert_eq!(tracker.scan(&scan, &BTreeSet::new(), 12_000).len(), 1);
    }

    #[test]
    fn own_macs_come_from_the_interfaces_directory() {
        let dir = tempfile::tempdir().unwrap();
        for (name, address) in [
            ("eth0", "02:f6:ba:93:b0:0f\n"),
            ("lo", "00:00:00:00:00:00\n"),
            ("tun0", "\n"),
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("address"), address).unwrap();
        }
        let own = own_macs(dir.path());
        assert!(own.contains(&mac("02:f6:ba:93:b0:0f")));
        assert_eq!(own.len(), 2, "{own:?}");
        assert!(own_macs(&dir.path().join("missing")).is_empty());
    }
}
