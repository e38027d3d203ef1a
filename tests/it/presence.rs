//! Presence end to end, through the real binary: a node reading its real neighbour table in a
//! network namespace this test creates, and a node fed an ARP table file whose devices show
//! up on another node. The namespace tests need root and iproute2's `ip` (CI runs as root);
//! without them they fail, saying so. Traffic goes only to loopback and to the namespaces.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    netlab::{Lab, ip},
    support::{
        node::{Node, NodeBuilder, write_swarm_key},
        wait_for,
    },
};

/// A node of these tests: its data dir `NAME` and config `NAME.toml` in `dir`, in room `NAME`,
/// sharing the swarm key of `dir`.
fn node(dir: &Path, name: &str, config: &str) -> NodeBuilder {
    let key = dir.join("swarm.key");
    write_swarm_key(&key, 0x6b);
    Node::builder(dir.join(name))
        .config(config)
        .swarm_key(&key)
        .room(name)
}

/// A node inside the lab's host 1, its API on the lab's bridge.
fn node_in_lab(lab: &Lab, dir: &Path, name: &str, config: &str) -> Node {
    node(dir, name, config)
        .namespace(lab.namespace(1))
        .http(&format!("{}:0", lab.address(1)))
        .start()
}

/// The device `mac` in `node`'s `/api/state`, if listed.
fn device_of(node: &Node, mac: &str) -> Result<Option<Value>, String> {
    let state = node.get("/api/state")?;
    Ok(state["devices"]
        .as_array()
        .ok_or("no devices list")?
        .iter()
        .find(|device| device["mac"] == mac)
        .cloned())
}

fn present(node: &Node, mac: &str) -> Result<bool, String> {
    Ok(device_of(node, mac)?.is_some_and(|device| device["present"] == true))
}

#[test]
fn traffic_fills_the_real_neighbour_table_and_the_device_comes_and_goes() {
    let lab = Lab::new("op", 78).unwrap_or_else(|error| {
        panic!("this test needs root and iproute2 to create network namespaces: {error}")
    });
    let dir = tempfile::tempdir().unwrap();
    // Scans five times a second; a device is present for 3 s after its last confirmation.
    let config = "[presence]\ninterval_ms = 200\nconsider_home_s = 3\n";
    let node = node_in_lab(&lab, dir.path(), "watcher", config);
    let device = lab.mac(2);

    // Host 2 talks to the node (its HTTP port) until the node lists it as present.
    wait_for(&format!("{device} present on the node"), || {
        lab.connect_from(2, &lab.address(1), node.http.port());
        match device_of(&node, &device)? {
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
    let listed = device_of(&node, &device).unwrap().unwrap();
    let own_id = node.get("/api/state").unwrap()["node"].clone();
    assert_eq!(listed["seen_by"], serde_json::json!([own_id]), "{listed}");
    // The node's own interface is never a device.
    assert!(device_of(&node, &lab.mac(1)).unwrap().is_none());

    // Silence: the kernel keeps the entry (REACHABLE, then STALE), but without a newer
    // confirmation the row ages and the device turns absent after consider_home.
    let silent_since = Instant::now();
    wait_for(
        &format!("{device} absent after consider_home"),
        || match device_of(&node, &device)? {
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
    let node = node_in_lab(&lab, dir.path(), "refresher", &config);
    // Host 2 sends nothing: only the node's nudge makes it answer an ARP request.
    let device = lab.mac(2);
    wait_for(
        &format!("silent {device} found by the refresh"),
        || match present(&node, &device)? {
            true => Ok(()),
            false => Err("not present yet".to_owned()),
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
    let watcher = node(
        dir.path(),
        "watcher",
        &format!(
            "[presence]\ninterval_ms = 200\nconsider_home_s = 2\narp_table = \"{}\"\nignore = [\"{router}\"]\n",
            table.display()
        ),
    )
    .start();
    let reader = node(
        dir.path(),
        "reader",
        "[presence]\nenabled = false\ninterval_ms = 200\nconsider_home_s = 2\n",
    )
    .peer(&watcher.dial_address())
    .start();
    let watcher_id = watcher.get("/api/state").unwrap()["node"].clone();

    wait_for("the file's devices present on the other node", || {
        for mac in [phone, laptop] {
            if !present(&reader, mac)? {
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
        match (present(&reader, phone)?, present(&reader, laptop)?) {
            (false, true) => Ok(()),
            other => Err(format!("(phone, laptop) present = {other:?}")),
        }
    });

    // The file vanishes: the watcher keeps running, logs it once, and recovers when the
    // file comes back.
    std::fs::remove_file(&table).unwrap();
    wait_for("the laptop absent while the file is missing", || {
        watcher.get("/api/health")?;
        match present(&reader, laptop)? {
            false => Ok(()),
            true => Err("still present".to_owned()),
        }
    });
    write_table(
        &table,
        &["192.0.2.11       0x1         0x2         00:1a:2b:3c:4d:5e     *        eth0"],
    );
    wait_for("the laptop present again", || {
        match present(&reader, laptop)? {
            true => Ok(()),
            false => Err("not yet".to_owned()),
        }
    });
    let log = watcher.log_text();
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
