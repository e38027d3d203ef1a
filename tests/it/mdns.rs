//! mDNS discovery between two hosts, each a network namespace this test creates, joined by
//! a bridge it creates. mDNS multicasts on every interface, so it never runs on the machine's
//! own interfaces: only the two namespaces' nodes use it, and their only link is our bridge.
//! Needs root and iproute2's `ip` (CI runs as root); without them the test fails, saying so.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{binary::request_at, netlab::Lab};

const DEADLINE: Duration = Duration::from_secs(60);
const TOKEN: &str = "mdns-test-token-0123456789";

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(lab: &Lab, host: u8, data_dir: &Path, key: &Path) -> Node {
    let child = Command::new("ip")
        .args(["netns", "exec", lab.namespace(host)])
        .arg(env!("CARGO_BIN_EXE_officemesh"))
        .arg("up")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--swarm-key")
        .arg(key)
        .args(["--room", &format!("room {host}")])
        .args(["--listen", "/ip4/0.0.0.0/tcp/7879"])
        .args(["--http", &format!("{}:7878", lab.address(host))])
        .env("OFFICEMESH_API_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ip netns exec officemesh starts");
    Node(child)
}

fn get(address: &str, path: &str) -> Result<Value, String> {
    let body = request_at(address, 7878, "GET", path, None)?;
    serde_json::from_str(&body).map_err(|error| error.to_string())
}

#[test]
fn two_hosts_find_each_other_by_mdns() {
    let lab = Lab::new("om", 77).unwrap_or_else(|error| {
        panic!("this test needs root and iproute2 to create network namespaces: {error}")
    });
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    std::fs::write(
        &key,
        format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", "5a".repeat(32)),
    )
    .unwrap();
    let _a = start(&lab, 1, &dir.path().join("a"), &key);
    let _b = start(&lab, 2, &dir.path().join("b"), &key);

    // No --peer anywhere: only mDNS can connect them. Each must see the other's node entry.
    let start = Instant::now();
    loop {
        let counts: Vec<usize> = [1, 2]
            .iter()
            .map(|&host| {
                get(&lab.address(host), "/api/state")
                    .ok()
                    .and_then(|state| state["nodes"].as_array().map(Vec::len))
                    .unwrap_or(0)
            })
            .collect();
        if counts == [2, 2] {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the two hosts did not find each other by mDNS: nodes seen {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
