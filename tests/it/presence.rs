//! Presence end to end, through the real binary: a node reading its real neighbour table in a
//! network namespace this test creates, and a node fed an ARP table file whose devices show
//! up on another node. The namespace tests need root and iproute2's `ip` (CI runs as root);
//! without them they fail, saying so. Traffic goes only to loopback and to the namespaces.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    binary::request_at,
    netlab::{Lab, ip},
};

const TOKEN: &str = "presence-test-token-0123456789";

/// How long anything in these tests may take to happen.
const DEADLINE: Duration = Duration::from_secs(60);

/// A running `officemesh up`; killed on drop.
struct Node {
    child: Child,
    http: (String, u16),
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts the binary with `config` (TOML) and the extra arguments, optionally inside a
    /// namespace, with its log (printed on standard output) in `NAME.log`.
    fn start(
        dir: &Path,
        name: &str,
        namespace: Option<&str>,
        http: (String, u16),
        config: &str,
        extra: &[String],
    ) -> Node {
        let config_path = dir.join(format!("{name}.toml"));
        std::fs::write(&config_path, config).unwrap();
        let key = dir.join("swarm.key");
        std::fs::write(
            &key,
            format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", "6b".repeat(32)),
        )
        .unwrap();
        let mut command = match namespace {
            Some(ns) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", ns])
                    .arg(env!("CARGO_BIN_EXE_officemesh"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_officemesh")),
        };
        command
            .arg("up")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.join(name))
            .arg("--swarm-key")
            .arg(&key)
            .args(["--room", name, "--no-mdns"])
            .args(["--http", &format!("{}:{}", http.0, http.1)])
            .args(extra)
            .env("OFFICEMESH_API_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
            .stderr(Stdio::null());
        let child = command.spawn().expect("the officemesh binary starts");
        let node = Node { child, http };
        wait_for(&format!("node {name} answers /api/health"), || {
            node.get("/api/health").map(drop)
        });
        node
    }

    fn get(&self, path: &str) -> Result<Value, String> {
        let body = request_at(&self.http.0, self.http.1, "GET", path, None)?;
        serde_json::from_str(&body).map_err(|error| error.to_string())
    }

    /// The device `mac` in this node's `/api/state`, if listed.
    fn device(&self, mac: &str) -> Result<Option<Value>, String> {
        let state = self.get("/api/state")?;
        Ok(state["devices"]
            .as_array()
            .ok_or("no devices list")?
            .iter()
            .find(|device| device["mac"] == mac)
            .cloned())
    }

    fn present(&self, mac: &str) -> Result<bool, String> {
        Ok(self
            .device(mac)?
            .is_some_and(|device| device["present"] == true))
    }
}

/// Polls `check` until it succeeds or the deadline passes.
fn wait_for(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(error) if start.elapsed() > DEADLINE => {
                panic!("{what}: not within {DEADLINE:?}: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn traffic_fills_the_real_neighbour_table_and_the_device_comes_and_goes() {
    let lab = Lab::new("op", 78).unwrap_or_else(|error| {
        panic!("this test needs root and iproute2 to create network namespaces: {error}")
    });
    let dir = tempfile::tempdir().unwrap();
    // Scans five times a second; a device is present for 3 s after its last confirmation.
    let config = "[presence]\ninterval_ms = 200\nconsider_home_s = 3\n";
    let node = Node::start(
        dir.path(),
        "watcher",
        Some(lab.namespace(1)),
        (lab.address(1), 7878),
        config,
        &[],
    );
    let device = lab.mac(2);

    // Host 2 talks to the node (its HTTP port) until the node lists it as present.
    wait_for(&format!("{device} present on the node"), || {
        lab.connect_from(2, &lab.address(1), 7878);
        match node.device(&device)? {
            Some(found) if found["present"] == true => {
                let expected_ip = lab.address(2);
                if found["ip"] != expected_ip.as_str() {
                    return Err(format!("wrong address: {found}"));
                }
                Ok(())
            }
            other => Err(format!("not present yet: {other:?}")),
        }
    });
    let listed = node.device(&device).unwrap().unwrap();
    let own_id = node.get("/api/state").unwrap()["node"].clone();
    assert_eq!(listed["seen_by"], serde_json::json!([own_id]), "{listed}");
    // The node's own interface is never a device.
    assert!(node.device(&lab.mac(1)).unwrap().is_none());

    // Silence: the kernel keeps the entry (REACHABLE, then STALE), but without a newer
    // confirmation the row ages and the device turns absent after consider_home.
    let silent_since = Instant::now();
    wait_for(
        &format!("{device} absent after consider_home"),
        || match node.device(&device)? {
            Some(found) if found["present"] == false => Ok(()),
            other => Err(format!("still present: {other:?}")),
        },
    );
    assert!(
        silent_since.elapsed() >= Duration::from_secs(2),
        "absent too early for a 3 s consider_home: {:?}",
        silent_since.elapsed()
    );
    let table = ip(&["-n", lab.namespace(1), "neigh", "show", &lab.address(2)]).unwrap();
    assert!(
        table.contains(&device),
        "the kernel still holds the entry, so only its age made the device absent: {table:?}"
    );
}

#[test]
fn the_refresh_finds_a_silent_device_in_a_configured_subnet() {
    let lab = Lab::new("op", 78).unwrap_or_else(|error| {
        panic!("this test needs root and iproute2 to create network namespaces: {error}")
    });
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[presence]\ninterval_ms = 200\nconsider_home_s = 30\nrefresh_subnets = [\"10.78.{}.0/24\"]\n",
        lab.subnet
    );
    let node = Node::start(
        dir.path(),
        "refresher",
        Some(lab.namespace(1)),
        (lab.address(1), 7878),
        &config,
        &[],
    );
    // Host 2 sends nothing: only the node's nudge makes it answer an ARP request.
    let device = lab.mac(2);
    wait_for(
        &format!("silent {device} found by the refresh"),
        || match node.present(&device)? {
            true => Ok(()),
            false => Err("not present yet".into()),
        },
    );
}

/// Writes an ARP table file atomically, so a scan never reads half of it.
fn write_table(path: &Path, lines: &[&str]) {
    let mut text =
        "IP address       HW type     Flags       HW address            Mask     Device\n"
            .to_owned();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[test]
fn devices_of_an_arp_table_file_are_present_on_another_node() {
    let dir = tempfile::tempdir().unwrap();
    let table: PathBuf = dir.path().join("arp");
    let phone = "f2:c6:75:56:2f:91";
    let laptop = "00:1a:2b:3c:4d:5e";
    let router = "00:00:5e:00:01:01";
    write_table(
        &table,
        &[
            "192.0.2.10       0x1         0x2         f2:c6:75:56:2f:91     *        eth0",
            "192.0.2.11       0x1         0x2         00:1a:2b:3c:4d:5e     *        eth0",
            "192.0.2.1        0x1         0x2         00:00:5e:00:01:01     *        eth0",
            "192.0.2.12       0x1         0x0         00:00:00:00:00:00     *        eth0",
            "192.0.2.13       0x1         0x6         00:11:22:33:44:55     *        eth0",
        ],
    );
    let (p2p, http_a, http_b) = (free_port(), free_port(), free_port());
    let watcher = Node::start(
        dir.path(),
        "watcher",
        None,
        ("127.0.0.1".into(), http_a),
        &format!(
            "[presence]\ninterval_ms = 200\nconsider_home_s = 2\narp_table = \"{}\"\nignore = [\"{router}\"]\n",
            table.display()
        ),
        &["--listen".into(), format!("/ip4/127.0.0.1/tcp/{p2p}")],
    );
    let reader = Node::start(
        dir.path(),
        "reader",
        None,
        ("127.0.0.1".into(), http_b),
        "[presence]\nenabled = false\ninterval_ms = 200\nconsider_home_s = 2\n",
        &[
            "--listen".into(),
            format!("/ip4/127.0.0.1/tcp/{}", free_port()),
            "--peer".into(),
            format!("/ip4/127.0.0.1/tcp/{p2p}"),
        ],
    );
    let watcher_id = watcher.get("/api/state").unwrap()["node"].clone();

    wait_for("the file's devices present on the other node", || {
        for mac in [phone, laptop] {
            if !reader.present(mac)? {
                return Err(format!("{mac} not present yet"));
            }
        }
        Ok(())
    });
    let state = reader.get("/api/state").unwrap();
    let devices = state["devices"].as_array().unwrap();
    let macs: Vec<&str> = devices
        .iter()
        .filter_map(|device| device["mac"].as_str())
        .collect();
    assert_eq!(
        macs,
        [laptop, phone],
        "the ignored router, the incomplete and the permanent entries are left out"
    );
    let phone_view = &devices[1];
    assert_eq!(phone_view["ip"], "192.0.2.10");
    assert_eq!(phone_view["seen_by"], serde_json::json!([watcher_id]));
    assert_eq!(
        phone_view["randomized"], true,
        "f2:... is locally administered"
    );
    assert_eq!(devices[0]["randomized"], false);

    // The phone leaves the table: absent on the other node after consider_home.
    write_table(
        &table,
        &["192.0.2.11       0x1         0x2         00:1a:2b:3c:4d:5e     *        eth0"],
    );
    wait_for("the phone absent on the other node", || {
        match (reader.present(phone)?, reader.present(laptop)?) {
            (false, true) => Ok(()),
            other => Err(format!("(phone, laptop) present = {other:?}")),
        }
    });

    // The file vanishes: the watcher keeps running, logs it once, and recovers when the
    // file comes back.
    std::fs::remove_file(&table).unwrap();
    wait_for("the laptop absent while the file is missing", || {
        watcher.get("/api/health")?;
        match reader.present(laptop)? {
            false => Ok(()),
            true => Err("still present".into()),
        }
    });
    write_table(
        &table,
        &["192.0.2.11       0x1         0x2         00:1a:2b:3c:4d:5e     *        eth0"],
    );
    wait_for("the laptop present again", || {
        match reader.present(laptop)? {
            true => Ok(()),
            false => Err("not yet".into()),
        }
    });
    let log = std::fs::read_to_string(dir.path().join("watcher.log")).unwrap();
    let failures: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("cannot read the neighbours"))
        .collect();
    assert_eq!(failures.len(), 1, "one line per failure streak: {log}");
    assert!(
        failures[0].contains(&table.display().to_string()),
        "the line names the file: {}",
        failures[0]
    );
}
