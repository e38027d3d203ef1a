//! The real `officemesh` binary, as a test starts it: [`Node::builder`] makes `officemesh up`
//! with a config, a data dir and the flags a test needs, optionally inside a network
//! namespace, and [`NodeBuilder::start`] returns once the node has said where it listens.
//!
//! A node binds port 0 unless told otherwise (`--http 127.0.0.1:0`, `--listen
//! /ip4/127.0.0.1/tcp/0`) and logs what it bound, on standard error, as any user sees it:
//! `HTTP API on http://127.0.0.1:PORT` and one `listening on /ip4/.../tcp/PORT/p2p/ID` line
//! per address. The builder reads those lines; the node's whole log is kept, for tests that
//! look at it and for the message of a failing test.

use std::{
    ffi::{OsStr, OsString},
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, ChildStderr, Command, Stdio},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use serde_json::Value;

use super::wait_for;

/// The API token every test node takes for writes (`OFFICEMESH_API_TOKEN`).
pub const TOKEN: &str = "integration-test-token-0123456789";

/// The config a node gets unless the test gives one: this machine's own sensors and
/// neighbour table stay out of the office under test, whose state holds only what the test
/// writes.
pub const QUIET_CONFIG: &str = "[sensors]\nauto_detect = false\n[presence]\nenabled = false\n";

/// How many of a node's last log lines a failing test prints.
const LOG_TAIL_LINES: usize = 200;

/// The `officemesh` binary under test; every test runs it through this.
pub fn officemesh() -> Command {
    Command::new(env!("CARGO_BIN_EXE_officemesh"))
}

/// Writes a swarm key file (the swarm.key v1 format) whose 32 bytes are all `fill`.
pub fn write_swarm_key(path: &Path, fill: u8) {
    let hex = format!("{fill:02x}").repeat(32);
    std::fs::write(path, format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n"))
        .expect("the swarm key file is written");
}

/// How to start one `officemesh up`. Cloneable, so a test restarts a node with the same
/// data dir and flags by calling [`NodeBuilder::start`] again.
#[derive(Clone, Debug)]
pub struct NodeBuilder {
    data_dir: PathBuf,
    config: String,
    swarm_key: Option<PathBuf>,
    room: Option<String>,
    peers: Vec<String>,
    listen: Vec<String>,
    http: String,
    mdns: bool,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    namespace: Option<String>,
}

impl NodeBuilder {
    /// The TOML config file's text, instead of [`QUIET_CONFIG`].
    pub fn config(mut self, toml: &str) -> Self {
        toml.clone_into(&mut self.config);
        self
    }

    /// `--swarm-key FILE`; without it the node takes the key from its data dir, or from
    /// `--join`, or makes a new office.
    pub fn swarm_key(mut self, path: &Path) -> Self {
        self.swarm_key = Some(path.to_owned());
        self
    }

    pub fn room(mut self, room: &str) -> Self {
        self.room = Some(room.to_owned());
        self
    }

    /// `--peer ADDRESS` (a multiaddr, such as another node's [`Node::dial_address`]).
    pub fn peer(mut self, address: &str) -> Self {
        self.peers.push(address.to_owned());
        self
    }

    /// `--listen ADDRESS`, instead of the default `/ip4/127.0.0.1/tcp/0`; repeatable.
    pub fn listen(mut self, address: &str) -> Self {
        if self.listen == [DEFAULT_LISTEN] {
            self.listen.clear();
        }
        self.listen.push(address.to_owned());
        self
    }

    /// `--http ADDRESS`, instead of `127.0.0.1:0`.
    pub fn http(mut self, address: &str) -> Self {
        address.clone_into(&mut self.http);
        self
    }

    /// mDNS on (it is off by default: `--no-mdns`). Only inside a test-made namespace.
    pub fn mdns(mut self) -> Self {
        self.mdns = true;
        self
    }

    /// One more argument to `officemesh up`, such as `--join TOKEN` (two calls).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// One more variable in the node's environment.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.into(), value.as_ref().to_owned()));
        self
    }

    /// Runs the node inside the network namespace `namespace` (`ip netns exec`).
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    /// Starts the node and waits until it has logged its HTTP address and at least one
    /// listen address. Panics with the node's log if it exits first or takes too long.
    pub fn start(&self) -> Node {
        let mut node = self.spawn();
        node.wait_started();
        node
    }

    /// Starts the node without waiting for it: several nodes spawned one after the other
    /// start within a few milliseconds, as machines do after a power cut. Its `http` is
    /// unknown until [`Node::wait_started`].
    pub fn spawn(&self) -> Node {
        let name = self
            .data_dir
            .file_name()
            .map_or_else(|| "node".into(), |name| name.to_string_lossy().into_owned());
        let config = self.data_dir.with_extension("toml");
        std::fs::write(&config, &self.config).expect("the test config is written");
        let mut command = match &self.namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", namespace])
                    .arg(env!("CARGO_BIN_EXE_officemesh"));
                command
            }
            None => officemesh(),
        };
        command
            .arg("up")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--http", &self.http]);
        for address in &self.listen {
            command.args(["--listen", address]);
        }
        for address in &self.peers {
            command.args(["--peer", address]);
        }
        if let Some(key) = &self.swarm_key {
            command.arg("--swarm-key").arg(key);
        }
        if let Some(room) = &self.room {
            command.args(["--room", room]);
        }
        if !self.mdns {
            command.arg("--no-mdns");
        }
        command
            .args(&self.args)
            // The token file every node leaves for `ask` goes next to its data dir, not into
            // this machine's runtime dir, which a node killed by a test would litter.
            .env("XDG_RUNTIME_DIR", self.data_dir.with_extension("run"))
            .env("OFFICEMESH_API_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            // The test's own settings win, a log level included.
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the officemesh binary starts");
        let log = Arc::new(Mutex::new(Log::default()));
        let stderr = child.stderr.take().expect("stderr is piped");
        {
            let log = log.clone();
            std::thread::spawn(move || read_log(stderr, &log));
        }
        Node {
            name,
            child,
            http: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
        }
    }
}

impl Node {
    /// Waits until the node has logged its HTTP address and at least one listen address,
    /// and takes the HTTP address. Panics with the node's log if it exits first or takes
    /// too long.
    pub fn wait_started(&mut self) {
        let node = &*self;
        let http = wait_for(&format!("node {} reports its addresses", node.name), || {
            let log = node.log();
            match (log.http, log.listen.first()) {
                (Some(http), Some(_)) => Ok(http),
                _ if log.closed => {
                    panic!(
                        "node {} exited at start; its log:\n{}",
                        node.name,
                        log.tail()
                    )
                }
                (http, _) => Err(format!("HTTP on {http:?}, listening on {:?}", log.listen)),
            }
        });
        self.http = http;
    }
}

const DEFAULT_LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// What a node wrote on standard error.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    http: Option<SocketAddr>,
    listen: Vec<String>,
    /// The node closed its standard error: it has exited.
    closed: bool,
}

impl Log {
    fn add(&mut self, line: String) {
        if let Some((_, rest)) = line.split_once("HTTP API on http://")
            && let Some(Ok(address)) = rest.split_whitespace().next().map(str::parse)
        {
            self.http = Some(address);
        }
        // Only the node's own line ends in its peer id; a library's line never does.
        if let Some((_, rest)) = line.split_once("listening on /")
            && let Some(address) = rest.split_whitespace().next()
            && address.contains("/p2p/")
        {
            self.listen.push(format!("/{address}"));
        }
        self.lines.push(line);
    }

    fn tail(&self) -> String {
        let skip = self.lines.len().saturating_sub(LOG_TAIL_LINES);
        self.lines[skip..].join("\n")
    }
}

/// Reads the node's standard error line by line into `log` until the node closes it.
fn read_log(stderr: ChildStderr, log: &Mutex<Log>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                lock(log).add(text);
            }
        }
    }
    lock(log).closed = true;
}

/// The log, even if a test panicked while holding it: it is still worth printing.
fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running `officemesh up`, killed (SIGKILL) when dropped; a failing test prints its log.
pub struct Node {
    name: String,
    child: Child,
    /// The HTTP API's address, as the node reported it.
    pub http: SocketAddr,
    log: Arc<Mutex<Log>>,
}

impl Node {
    /// A node with its data dir at `data_dir` (which it creates), the [`QUIET_CONFIG`]
    /// written next to it (`<data_dir>.toml`), on loopback ports the system picks, without
    /// mDNS, taking [`TOKEN`] for writes.
    pub fn builder(data_dir: impl Into<PathBuf>) -> NodeBuilder {
        NodeBuilder {
            data_dir: data_dir.into(),
            config: QUIET_CONFIG.to_owned(),
            swarm_key: None,
            room: None,
            peers: Vec::new(),
            listen: vec![DEFAULT_LISTEN.to_owned()],
            http: "127.0.0.1:0".to_owned(),
            mdns: false,
            args: Vec::new(),
            env: Vec::new(),
            namespace: None,
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }

    /// The HTTP API's base URL, for `--node`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Every address the node has said it listens on, each ending in `/p2p/<peer id>`.
    pub fn listen_addresses(&self) -> Vec<String> {
        self.log().listen.clone()
    }

    /// The first address the node listens on: what another node's `--peer` takes.
    pub fn dial_address(&self) -> String {
        self.log().listen[0].clone()
    }

    /// The node's libp2p peer id (its node id), from its listen address.
    pub fn peer_id(&self) -> String {
        let address = self.dial_address();
        match address.split_once("/p2p/") {
            Some((_, id)) => id.to_owned(),
            None => panic!("{address} has no /p2p/ part"),
        }
    }

    /// The process id of the running node.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's resident memory (`VmRSS` of `/proc/PID/status`), in bytes.
    pub fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the node's /proc status is readable");
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .expect("the status has VmRSS");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS is a number of kB");
        kib * 1024
    }

    /// Everything the node has logged so far.
    pub fn log_text(&self) -> String {
        self.log().lines.join("\n")
    }

    /// One request to the node's API with [`TOKEN`]; see [`request`].
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Result<String, String> {
        request(self.http, method, path, body)
    }

    /// `GET path`, as JSON.
    pub fn get(&self, path: &str) -> Result<Value, String> {
        let body = self.request("GET", path, None)?;
        serde_json::from_str(&body).map_err(|error| format!("{path} is not JSON: {error}"))
    }

    /// `GET /api/state`.
    pub fn state(&self) -> Value {
        self.get("/api/state")
            .unwrap_or_else(|error| panic!("node {}: {error}", self.name))
    }

    /// The value of `sensor`'s reading in this node's `GET /api/state`, if it has one.
    pub fn reading(&self, sensor: &str) -> Option<f64> {
        reading_in(&self.state(), sensor)
    }

    /// Waits until this node sees `sensor`'s reading at `value`.
    pub fn wait_for_reading(&self, sensor: &str, value: f64) {
        wait_for(
            &format!("node {} sees {sensor} = {value}", self.name),
            || match self.reading(sensor) {
                Some(seen) if (seen - value).abs() < 1e-9 => Ok(()),
                other => Err(format!("sees {other:?}")),
            },
        );
    }

    /// The target acted on for `quantity` in `room`, in this node's `GET /api/state`.
    pub fn target(&self, room: &str, quantity: &str) -> Option<f64> {
        self.state()["rooms"]
            .as_array()?
            .iter()
            .find(|entry| entry["name"] == room)?["targets"]
            .as_array()?
            .iter()
            .find(|target| target["quantity"] == quantity)?["value"]
            .as_f64()
    }

    /// Posts a temperature reading through the API, as a pushing sensor would.
    pub fn post_reading(&self, sensor: &str, room: &str, value: f64) {
        let body = serde_json::json!({
            "sensor": sensor, "room": room, "quantity": "temperature", "value": value,
        })
        .to_string();
        if let Err(error) = self.request("POST", "/api/readings", Some(&body)) {
            panic!("node {} refused the reading: {error}", self.name);
        }
    }

    /// Waits until the node has saved everything it holds, so a kill loses nothing.
    pub fn wait_saved(&self) {
        wait_for(&format!("node {} saves its state", self.name), || {
            match self.get("/api/health")?["unsaved_changes"].as_bool() {
                Some(false) => Ok(()),
                other => Err(format!("unsaved_changes = {other:?}")),
            }
        });
    }

    /// SIGTERM, and a clean exit.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        let exit = self.child.wait().expect("the node is reaped");
        assert!(
            exit.success(),
            "node {} did not stop cleanly on SIGTERM ({exit}); its log:\n{}",
            self.name,
            self.log().tail()
        );
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the node's process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGKILL: the node gets no chance to save or flush.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the node is reaped");
    }

    /// How the node exited, if it has (without waiting).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .try_wait()
            .expect("the node's status can be read")
    }

    /// Runs `officemesh ARGS[0] --node URL --token TOKEN ARGS[1..]` against this node, with
    /// `stdin` as its input; its standard output. Panics with its standard error if it fails.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = officemesh()
            .arg(args[0])
            .args(["--node", &self.url()])
            .args(["--token", TOKEN])
            .args(&args[1..])
            .env_remove("OFFICEMESH_API_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the officemesh binary starts");
        let mut input = child.stdin.take().expect("stdin is piped");
        if let Some(text) = stdin {
            input
                .write_all(text.as_bytes())
                .expect("the command reads its input");
        }
        drop(input);
        let output = child.wait_with_output().expect("the command ends");
        assert!(
            output.status.success(),
            "officemesh {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("the output is UTF-8")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- log of node {} (last {LOG_TAIL_LINES} lines) ----\n{}",
                self.name,
                self.log().tail()
            );
        }
    }
}

/// The value of `sensor`'s reading in `state` (a `GET /api/state` answer), if it has one.
pub fn reading_in(state: &Value, sensor: &str) -> Option<f64> {
    state["rooms"]
        .as_array()?
        .iter()
        .flat_map(|room| room["readings"].as_array().cloned().unwrap_or_default())
        .find(|reading| reading["sensor"] == sensor)
        .and_then(|reading| reading["value"].as_f64())
}

/// A minimal HTTP/1.1 request with [`TOKEN`]: the body of a 2xx answer, else the status
/// and body as the error.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<String, String> {
    let bearer = format!("Bearer {TOKEN}");
    let answer = exchange(
        address,
        method,
        path,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        body.unwrap_or(""),
    )?;
    if (200..300).contains(&answer.status) {
        Ok(answer.body)
    } else {
        Err(format!("{}: {}", answer.status, answer.body))
    }
}

/// What [`exchange`] got back.
pub struct Answer {
    pub status: u16,
    /// The response's header lines, as sent.
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// A minimal HTTP/1.1 request with exactly the `headers` given (besides `Host`,
/// `Content-Length` and `Connection`): the status, head and body, whatever the status.
pub fn exchange(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(address).map_err(|error| error.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|error| error.to_string())?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|error| error.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|error| error.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("malformed answer")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}
