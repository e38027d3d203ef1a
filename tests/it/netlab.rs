//! Network namespaces for tests that need more than one host (mDNS, presence): two
//! namespaces, each with an `eth0` on one bridge that the host also has an address on. Needs
//! root and iproute2's `ip`; everything is deleted on drop.

use std::{
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

/// Tells the labs of one test process apart.
static LABS: AtomicU32 = AtomicU32::new(0);

pub fn ip(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| format!("cannot run `ip` (install iproute2): {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Two namespaces on a bridge the host also has an address on (to reach the node's HTTP);
/// everything is deleted on drop.
pub struct Lab {
    bridge: String,
    namespaces: Vec<String>,
    network: u8,
    /// The third octet of the lab's /24.
    pub subnet: u8,
}

impl Lab {
    /// A lab whose interfaces are named `<prefix>...` and whose addresses are in
    /// `10.<network>.0.0/16`; each test file uses its own prefix and network, so labs of
    /// tests running at once never collide.
    pub fn new(prefix: &str, network: u8) -> Result<Lab, String> {
        // Short, unique names (interface names have at most 15 characters).
        let tag = (std::process::id() % 10_000) * 10 + LABS.fetch_add(1, Ordering::Relaxed) % 10;
        let subnet = (tag % 200) as u8 + 20;
        let mut lab = Lab {
            bridge: format!("{prefix}b{tag}"),
            namespaces: Vec::new(),
            network,
            subnet,
        };
        ip(&["link", "add", &lab.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("10.{network}.{subnet}.254/24"),
            "dev",
            &lab.bridge,
        ])?;
        ip(&["link", "set", &lab.bridge, "up"])?;
        for host in 1..=2u8 {
            let ns = format!("{prefix}{tag}h{host}");
            let outside = format!("{prefix}{tag}v{host}");
            ip(&["netns", "add", &ns])?;
            lab.namespaces.push(ns.clone());
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &outside, "master", &lab.bridge])?;
            ip(&["link", "set", &outside, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", lab.address(host)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    /// The address of `host` (1 or 2) on the bridge.
    pub fn address(&self, host: u8) -> String {
        format!("10.{}.{}.{host}", self.network, self.subnet)
    }

    pub fn namespace(&self, host: u8) -> &str {
        &self.namespaces[usize::from(host) - 1]
    }

    /// The MAC of `host`'s interface, as the other namespace's neighbour table will show it.
    pub fn mac(&self, host: u8) -> String {
        let output = ip(&["-n", self.namespace(host), "-o", "link", "show", "eth0"]).unwrap();
        output
            .split_whitespace()
            .skip_while(|word| *word != "link/ether")
            .nth(1)
            .expect("eth0 has a MAC")
            .to_owned()
    }

    /// Opens and closes a TCP connection from `host` to `address`:`port`, by a process
    /// running in `host`'s namespace: the ARP exchange and the handshake fill the other
    /// side's neighbour table.
    pub fn connect_from(&self, host: u8, address: &str, port: u16) {
        let status = Command::new("ip")
            .args(["netns", "exec", self.namespace(host), "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{address}/{port}"))
            .stderr(Stdio::null())
            .status()
            .expect("ip netns exec bash runs");
        assert!(status.success(), "connecting from host {host} failed");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
