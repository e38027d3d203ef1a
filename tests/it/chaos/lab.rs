//! The chaos suite's office network: one network namespace per host, each with an `eth0`
//! joined by a veth pair to a bridge that lives in a "switch" namespace of its own. Every
//! interface and address is inside those namespaces, so nothing touches the machine's own
//! network, and labs of runs at once never collide (only namespace names are global, and
//! they carry the test process's id).
//!
//! The switch namespace also has an address on the bridge: the test's own thread joins that
//! namespace (setns(2)) to reach every host's HTTP API and to receive the nodes' alert
//! webhooks, and the faults below never touch traffic to or from it.
//!
//! Faults are nftables rules in a host's namespace (one table, `inet chaos`, replaced as a
//! whole), so a partition or a loss cuts exactly node-to-node traffic.

use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::netlab::ip;

/// The nftables table every fault lives in.
const TABLE: &str = "inet chaos";

/// Hosts on one switch, each in its own namespace; everything is deleted on drop.
pub struct Switch {
    switch_namespace: String,
    hosts: Vec<String>,
    network: u8,
}

impl Switch {
    /// `hosts` namespaces named `<prefix><pid>h<n>` on a bridge in `<prefix><pid>sw`, with
    /// addresses `10.<network>.0.<n>` (hosts, from 1) and `10.<network>.0.254` (the switch).
    /// Namespaces left by a crashed run of this prefix (whose process is gone) are deleted
    /// first, with whatever still runs in them.
    pub fn new(prefix: &str, network: u8, hosts: usize) -> Result<Switch, String> {
        clean_leftovers(prefix)?;
        let pid = std::process::id();
        let mut switch = Switch {
            switch_namespace: format!("{prefix}{pid}sw"),
            hosts: Vec::new(),
            network,
        };
        let sw = switch.switch_namespace.clone();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &sw,
            "addr",
            "add",
            &format!("{}/24", switch.switch_address()),
            "dev",
            "br0",
        ])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        for host in 0..hosts {
            let ns = format!("{prefix}{pid}h{}", host + 1);
            ip(&["netns", "add", &ns])?;
            switch.hosts.push(ns.clone());
            let port = format!("v{}", host + 1);
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", switch.address(host)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(switch)
    }

    /// The address of `host` (from 0).
    pub fn address(&self, host: usize) -> String {
        format!("10.{}.0.{}", self.network, host + 1)
    }

    /// The switch's own address, where the test reaches the hosts from.
    pub fn switch_address(&self) -> String {
        format!("10.{}.0.254", self.network)
    }

    pub fn namespace(&self, host: usize) -> &str {
        &self.hosts[host]
    }

    /// Moves the calling thread into the switch namespace: sockets it opens from now on
    /// (and those of threads it spawns) are on the lab's network.
    pub fn enter(&self) -> Result<(), String> {
        let path = format!("/run/netns/{}", self.switch_namespace);
        let file = fs::File::open(&path).map_err(|error| format!("{path}: {error}"))?;
        // SAFETY: setns on an open namespace file descriptor only changes this thread's
        // network namespace; the descriptor stays valid for the call.
        let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if result == 0 {
            Ok(())
        } else {
            Err(format!(
                "setns into {path}: {}",
                std::io::Error::last_os_error()
            ))
        }
    }

    /// Replaces the fault rules of `host` by `rules` (nft statements, one per line, for
    /// packets arriving at the host); an empty list heals it.
    pub fn set_rules(&self, host: usize, rules: &[String]) -> Result<(), String> {
        let mut script = format!("table {TABLE}\ndelete table {TABLE}\n");
        if !rules.is_empty() {
            script.push_str(&format!(
                "table {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n"
            ));
            for rule in rules {
                script.push_str(&format!("    {rule}\n"));
            }
            script.push_str("  }\n}\n");
        }
        nft(self.namespace(host), &script)
    }

    /// A rule that drops every packet from the hosts `from`.
    pub fn drop_from(&self, from: &[usize]) -> String {
        let addresses: Vec<String> = from.iter().map(|host| self.address(*host)).collect();
        format!("ip saddr {{ {} }} drop", addresses.join(", "))
    }

    /// A rule that drops `percent` % of the packets from other hosts, at random; the
    /// switch's own traffic (the test's requests) passes.
    pub fn lose(&self, percent: u8) -> String {
        format!(
            "ip saddr != {} numgen random mod 100 < {percent} drop",
            self.switch_address()
        )
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain([&self.switch_namespace]) {
            kill_inside(ns);
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Runs an nft script inside namespace `ns`.
fn nft(ns: &str, script: &str) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run `ip netns exec {ns} nft`: {error}"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes())
        .map_err(|error| error.to_string())?;
    let output = child
        .wait_with_output()
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {ns} failed (is nftables installed?): {}\nscript:\n{script}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// SIGKILLs every process still running in namespace `ns` (ours: the nodes of this lab, or
/// of a crashed run of it).
fn kill_inside(ns: &str) {
    let Ok(pids) = ip(&["netns", "pids", ns]) else {
        return;
    };
    for pid in pids.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
}

/// Whether process `pid` still runs.
fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

/// Deletes the namespaces of earlier runs with this `prefix` whose test process is gone,
/// and unmounts their data disks.
fn clean_leftovers(prefix: &str) -> Result<(), String> {
    for line in ip(&["netns", "list"])?.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !alive(&pid) {
            kill_inside(name);
            ip(&["netns", "del", name])?;
        }
    }
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let Some(point) = line.split_whitespace().nth(1) else {
            continue;
        };
        let Some((_, rest)) = point.split_once(DISK_DIR_PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !alive(&pid) {
            let _ = Command::new("umount").args(["-l", point]).status();
        }
    }
    Ok(())
}

/// The start of the temporary directory of a run: it names the run's process, so a later
/// run can tell its leftover mounts from a live run's.
pub const DISK_DIR_PREFIX: &str = "officemesh-chaos-";

/// A small tmpfs for one node's data dir, which the test can fill; unmounted on drop.
pub struct Disk {
    pub dir: PathBuf,
    filler: PathBuf,
}

impl Disk {
    pub fn mount(dir: &Path, size: &str) -> Result<Disk, String> {
        fs::create_dir_all(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if !status.success() {
            return Err(format!("mounting a tmpfs on {} failed", dir.display()));
        }
        Ok(Disk {
            dir: dir.to_owned(),
            filler: dir.join("filler"),
        })
    }

    /// Fills the disk with a file of the test's until a write fails.
    pub fn fill(&self) {
        let mut file = fs::File::create(&self.filler).expect("the filler file is created");
        let block = vec![0u8; 64 * 1024];
        while file
            .write_all(&block)
            .and_then(|()| file.sync_all())
            .is_ok()
        {}
    }

    /// Bytes a file could still take on the tmpfs (`statvfs`, what an unprivileged writer
    /// may use).
    pub fn available_bytes(&self) -> u64 {
        let path = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes())
            .expect("the data dir's path has no NUL");
        // SAFETY: statvfs writes one struct into the zeroed value it is given, and reads
        // the NUL-terminated path, both alive for the call.
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        let result = unsafe { libc::statvfs(path.as_ptr(), &raw mut stats) };
        assert_eq!(result, 0, "statvfs of {}", self.dir.display());
        stats.f_bavail * stats.f_frsize
    }

    /// Makes room again.
    pub fn free(&self) {
        let _ = fs::remove_file(&self.filler);
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A minimal HTTP server for the nodes' alert webhook: it answers 200 to every POST and
/// keeps the `text` of each body. Stops on drop.
pub struct Webhook {
    pub address: SocketAddr,
    posts: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    /// Listens on `address`:0 (call from a thread inside the namespace that has it).
    pub fn start(address: &str) -> Result<Webhook, String> {
        let listener = TcpListener::bind((address, 0))
            .map_err(|error| format!("webhook on {address}: {error}"))?;
        let local = listener.local_addr().map_err(|error| error.to_string())?;
        listener
            .set_nonblocking(true)
            .map_err(|error| error.to_string())?;
        let posts = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let posts = posts.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Some(text) = serve(stream) {
                                posts.lock().unwrap().push(text);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Ok(Webhook {
            address: local,
            posts,
            stop,
            thread: Some(thread),
        })
    }

    pub fn posts(&self) -> Vec<String> {
        self.posts.lock().unwrap().clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request, answers 200, and returns the body's `text`.
fn serve(stream: std::net::TcpStream) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = reader.into_inner();
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    let body: serde_json::Value = serde_json::from_slice(&body).ok()?;
    body["text"].as_str().map(str::to_owned)
}
