//! The real `officemesh` binary, started several times on loopback: the office converges
//! through the HTTP API, a node killed with SIGKILL comes back with its state, and a node
//! with another swarm key stays out.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const TOKEN: &str = "binary-test-token-0123456789";

/// How long the office may take to converge on loopback.
const DEADLINE: Duration = Duration::from_secs(60);

/// A port the system just handed out; free unless something grabs it in between.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Node {
    child: Child,
    pub http_port: u16,
    p2p_port: u16,
}

impl Node {
    pub fn start(
        data_dir: &Path,
        key: &Path,
        room: &str,
        p2p_port: u16,
        http_port: u16,
        peers: &[u16],
    ) -> Node {
        // This machine's own sensors and neighbour table stay out of the office under test:
        // its state holds only what the tests write.
        let config = data_dir.with_extension("toml");
        std::fs::write(
            &config,
            "[sensors]\nauto_detect = false\n[presence]\nenabled = false\n",
        )
        .expect("the test config is written");
        let mut command = Command::new(env!("CARGO_BIN_EXE_officemesh"));
        command
            .arg("up")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--swarm-key")
            .arg(key)
            .args(["--room", room, "--no-mdns"])
            .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{p2p_port}")])
            .args(["--http", &format!("127.0.0.1:{http_port}")])
            .env("OFFICEMESH_API_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for peer in peers {
            command.args(["--peer", &format!("/ip4/127.0.0.1/tcp/{peer}")]);
        }
        let child = command.spawn().expect("the officemesh binary starts");
        let node = Node {
            child,
            http_port,
            p2p_port,
        };
        wait_for(&format!("node on {http_port} answers /api/health"), || {
            request(http_port, "GET", "/api/health", None).map(|_| ())
        });
        node
    }

    pub fn state(&self) -> Value {
        let body = request(self.http_port, "GET", "/api/state", None).expect("state answers");
        serde_json::from_str(&body).expect("state is JSON")
    }

    pub fn post_reading(&self, sensor: &str, room: &str, value: f64) {
        let body = format!(
            r#"{{"sensor": "{sensor}", "room": "{room}", "quantity": "temperature", "value": {value}}}"#
        );
        request(self.http_port, "POST", "/api/readings", Some(&body)).expect("reading accepted");
    }

    /// SIGTERM, and waits for a clean exit.
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = self.child.wait().expect("reaped");
        assert!(
            exit.success(),
            "the node did not stop cleanly on SIGTERM: {exit}"
        );
    }

    /// Waits until the node has saved everything it holds, so a kill loses nothing.
    fn wait_saved(&self) {
        wait_for(
            &format!("node on {} saves its state", self.http_port),
            || {
                let health: Value =
                    serde_json::from_str(&request(self.http_port, "GET", "/api/health", None)?)
                        .map_err(|error| error.to_string())?;
                match health["unsaved_changes"].as_bool() {
                    Some(false) => Ok(()),
                    other => Err(format!("unsaved_changes = {other:?}")),
                }
            },
        );
    }

    fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 request; the body of a 2xx answer, else an error.
pub fn request(port: u16, method: &str, path: &str, body: Option<&str>) -> Result<String, String> {
    request_at("127.0.0.1", port, method, path, body)
}

/// [`request`] to a node listening on `address` (a network namespace's, say).
pub fn request_at(
    address: &str,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<String, String> {
    let mut stream = TcpStream::connect((address, port)).map_err(|error| error.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|error| error.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|error| error.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("malformed answer")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with('2') {
        Ok(body.to_owned())
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// Polls `check` until it succeeds or the deadline passes.
pub fn wait_for(what: &str, mut check: impl FnMut() -> Result<(), String>) {
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

/// The value of `sensor`'s reading on this node's view, if it has one.
fn reading(state: &Value, sensor: &str) -> Option<f64> {
    state["rooms"]
        .as_array()?
        .iter()
        .flat_map(|room| room["readings"].as_array().cloned().unwrap_or_default())
        .find(|reading| reading["sensor"] == sensor)
        .and_then(|reading| reading["value"].as_f64())
}

fn wait_for_reading(node: &Node, sensor: &str, value: f64) {
    wait_for(
        &format!("node on {} sees {sensor} = {value}", node.http_port),
        || match reading(&node.state(), sensor) {
            Some(seen) if (seen - value).abs() < 1e-9 => Ok(()),
            other => Err(format!("sees {other:?}")),
        },
    );
}

pub fn write_key(path: &Path, fill: u8) {
    let hex: String = std::iter::repeat_n(format!("{fill:02x}"), 32).collect();
    std::fs::write(path, format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n")).unwrap();
}

#[test]
fn three_processes_converge_survive_a_kill_and_keep_an_outsider_out() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("swarm.key");
    write_key(&key, 0x42);
    let other_key = dir.path().join("other.key");
    write_key(&other_key, 0x17);

    let a_port = free_port();
    let a = Node::start(
        &dir.path().join("a"),
        &key,
        "open space",
        a_port,
        free_port(),
        &[],
    );
    let mut b = Node::start(
        &dir.path().join("b"),
        &key,
        "meeting room",
        free_port(),
        free_port(),
        &[a_port],
    );
    let c = Node::start(
        &dir.path().join("c"),
        &key,
        "kitchen",
        free_port(),
        free_port(),
        &[a_port],
    );

    // Writes on each node reach every other node.
    a.post_reading("desk-a", "open space", 21.5);
    b.post_reading("desk-b", "meeting room", 22.5);
    c.post_reading("desk-c", "kitchen", 23.5);
    for node in [&a, &b, &c] {
        wait_for_reading(node, "desk-a", 21.5);
        wait_for_reading(node, "desk-b", 22.5);
        wait_for_reading(node, "desk-c", 23.5);
    }

    // An outsider with another key dials the office and learns nothing.
    let outsider = Node::start(
        &dir.path().join("x"),
        &other_key,
        "street",
        free_port(),
        free_port(),
        &[a_port],
    );
    outsider.post_reading("desk-x", "street", 10.0);

    // Once b has saved, SIGKILL it, write meanwhile, restart b alone (no peers): it has its state at once.
    b.wait_saved();
    b.kill_9();
    a.post_reading("desk-a", "open space", 19.0);
    let b_data = dir.path().join("b");
    b = Node::start(&b_data, &key, "meeting room", b.p2p_port, b.http_port, &[]);
    let restored = b.state();
    assert_eq!(
        reading(&restored, "desk-c"),
        Some(23.5),
        "b lost a peer's reading: {restored}"
    );
    assert_eq!(
        reading(&restored, "desk-b"),
        Some(22.5),
        "b lost its own saved reading"
    );

    // A new write on the restarted b must not reuse a sequence number it used before the
    // kill, or the others would take it for one they already have and keep 22.5. SIGTERM
    // stops b cleanly (its store flushed); started again with a as peer, it rejoins.
    b.post_reading("desk-b", "meeting room", 24.0);
    b.terminate();
    b = Node::start(
        &b_data,
        &key,
        "meeting room",
        b.p2p_port,
        b.http_port,
        &[a_port],
    );
    for node in [&a, &b, &c] {
        wait_for_reading(node, "desk-b", 24.0);
        wait_for_reading(node, "desk-a", 19.0);
    }

    // The outsider never got in, and nobody saw its reading.
    for node in [&a, &b, &c] {
        assert_eq!(
            reading(&node.state(), "desk-x"),
            None,
            "the outsider's reading leaked"
        );
    }
    assert_eq!(
        reading(&outsider.state(), "desk-a"),
        None,
        "the outsider learned the office"
    );
    let peers: Value =
        serde_json::from_str(&request(outsider.http_port, "GET", "/api/peers", None).unwrap())
            .unwrap();
    assert_eq!(peers, Value::Array(Vec::new()), "the outsider has peers");
}
