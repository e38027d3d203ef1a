//! A full disk: the node's data dir on a small tmpfs the test mounts (root only, as in CI),
//! filled up by a file of the test's. The node keeps running and answering, refuses to
//! acknowledge what it cannot save (a 500 naming the cause, not a 201 it cannot keep),
//! logs it, saves again once there is room, and nothing saved before is damaged.

use std::{fs, path::Path, process::Command};

use serde_json::json;

use crate::support::{node::Node, wait_for};

/// A mounted tmpfs, unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs for the full-disk test failed: this test needs root (CI runs as root)"
        );
        Mount(dir.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `filler` until a write fails.
fn fill(filler: &Path) {
    use std::io::Write;
    let mut file = fs::File::create(filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file
        .write_all(&block)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
}

#[test]
fn a_full_disk_refuses_acknowledgements_keeps_answering_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let _mount = Mount::tmpfs(&dir.path().join("disk"), "8m");
    let data = dir.path().join("disk").join("node");
    let builder = Node::builder(&data).room("lab");
    let node = builder.start();
    node.post_reading("desk", "lab", 21.0);

    let filler = dir.path().join("disk").join("filler");
    fill(&filler);
    let body = json!({"sensor": "desk", "room": "lab", "quantity": "temperature", "value": 22.0})
        .to_string();
    let refused = node
        .request("POST", "/api/readings", Some(&body))
        .expect_err("a reading it cannot save is not acknowledged");
    assert!(refused.starts_with("500"), "{refused}");
    assert!(
        refused.contains("full") || refused.contains("disk"),
        "the answer names the cause: {refused}"
    );
    // Still answering.
    let health = node
        .get("/api/health")
        .expect("the node answers on a full disk");
    assert!(health["uptime_s"].is_u64(), "{health}");
    assert!(
        node.log_text().contains("full"),
        "the log says the disk is full: {}",
        node.log_text()
    );

    // Room again: the next write is saved and acknowledged.
    fs::remove_file(&filler).unwrap();
    wait_for("a reading acknowledged once there is room", || {
        node.request("POST", "/api/readings", Some(&body))
    });
    node.kill();
    let node = builder.start();
    assert_eq!(node.reading("desk"), Some(22.0), "what was saved is intact");
}
