//! The dashboard: its page weight, and the first full render of a 25-room office in headless
//! Chromium.
//!
//! Run with `cargo bench --bench dashboard` (needs Debian's `chromium`). It starts one real
//! node (the `officemesh` binary of this build) whose store holds the last 24 hours of
//! ROOMS (25) rooms x 3 quantities (temperature, humidity, CO2), one sensor each, in minute
//! buckets, as a node that has run for a day holds them, and gives it a current reading of
//! each. Then, RUNS (11) times, a fresh Chromium (empty profile, so nothing is cached) opens
//! the page, and the time from navigation to the page's `officemesh-rendered` mark is taken:
//! the page sets it once every room card is drawn and every chart (75, from 25 history
//! queries) is drawn, in the frame after. The median, fastest and slowest are printed.
//! `OFFICEMESH_BENCH_ROOMS` and `OFFICEMESH_BENCH_RUNS` change the sizes.
//!
//! The page weight is what a first visit downloads: every file of the page gzipped as the
//! node serves it (the vendored licence and notes are not loaded by the page).

#[path = "../tests/it/support/browser.rs"]
#[allow(dead_code)]
mod browser;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use officemesh::{
    http::dashboard::ASSETS,
    state::{NodeId, Quantity, Room, SensorId, Series},
    store::{HOUR_MS, HourBuckets, MINUTE_MS, Store},
};
use serde_json::Value;

const TOKEN: &str = "dashboard-bench-token-0123456789";
const QUANTITIES: [(Quantity, f32); 3] = [
    (Quantity::Temperature, 21.0),
    (Quantity::Humidity, 45.0),
    (Quantity::Co2, 600.0),
];
const RENDER_DEADLINE: Duration = Duration::from_secs(60);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// A running node; killed when dropped.
struct Node {
    child: Child,
    http: SocketAddr,
}

impl Node {
    fn start(dir: &Path) -> Node {
        let config = dir.join("node.toml");
        std::fs::write(
            &config,
            "[sensors]\nauto_detect = false\n[presence]\nenabled = false\n",
        )
        .expect("config written");
        let mut child = Command::new(env!("CARGO_BIN_EXE_officemesh"))
            .arg("up")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--http", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--no-mdns", "--room", "room 1"])
            .env("OFFICEMESH_API_TOKEN", TOKEN)
            .env("XDG_RUNTIME_DIR", dir.join("run"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the officemesh binary starts");
        let stderr = child.stderr.take().expect("piped");
        let (found, receive) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once("HTTP API on http://")
                    && !sent
                {
                    let address = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = found.send(address);
                    sent = true;
                }
            }
        });
        let http = receive
            .recv_timeout(RENDER_DEADLINE)
            .expect("the node says where it serves HTTP")
            .parse()
            .expect("an address");
        Node { child, http }
    }

    /// One request with the token; the body of a 2xx answer.
    fn request(&self, method: &str, path: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(self.http).expect("the node answers");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.http,
            body.len()
        )
        .expect("sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(
            head.split_whitespace()
                .nth(1)
                .is_some_and(|status| status.starts_with('2')),
            "{method} {path}: {head}\n{body}"
        );
        body.to_owned()
    }

    fn terminate(mut self) {
        // SAFETY: kill(2) on the child this benchmark started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().expect("reaped");
        assert!(status.success(), "the node did not stop cleanly: {status}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An hour of one sensor, a reading every 10 s around `base`, packed as the store keeps it.
fn hour_of(base: f32, hour_ms: u64, seed: u64) -> HourBuckets {
    let mut packed = Vec::with_capacity(60 * 19);
    for minute in 0..60u64 {
        let wobble = ((seed.wrapping_mul(31).wrapping_add(minute * 7)) % 100) as f32 / 50.0;
        let mean = base + wobble;
        packed.push(minute as u8);
        packed.extend_from_slice(&6u16.to_le_bytes());
        packed.extend_from_slice(&50_000u16.to_le_bytes());
        for value in [mean - 0.3, mean + 0.3, mean, mean + 0.1] {
            packed.extend_from_slice(&value.to_le_bytes());
        }
    }
    HourBuckets::unpack(&packed, hour_ms).expect("well formed")
}

fn sensor(room: usize, quantity: Quantity) -> String {
    format!("r{room}-{}", quantity.name())
}

fn main() {
    let rooms = env("OFFICEMESH_BENCH_ROOMS", 25);
    let runs = env("OFFICEMESH_BENCH_RUNS", 11);

    let weight: usize = ASSETS
        .iter()
        .filter(|asset| !asset.content_type.starts_with("text/plain"))
        .map(|asset| asset.gzip.unwrap_or(asset.body).len())
        .sum();
    let plain: usize = ASSETS
        .iter()
        .filter(|asset| !asset.content_type.starts_with("text/plain"))
        .map(|asset| asset.body.len())
        .sum();
    println!(
        "page weight: {:.1} KiB gzipped ({:.1} KiB uncompressed), {} files",
        weight as f64 / 1024.0,
        plain as f64 / 1024.0,
        ASSETS
            .iter()
            .filter(|asset| !asset.content_type.starts_with("text/plain"))
            .count()
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    // A first start makes the node's key; its id names the series of its history.
    let node = Node::start(dir.path());
    let health: Value =
        serde_json::from_str(&node.request("GET", "/api/health", "")).expect("JSON");
    let id = NodeId::new(health["id"].as_str().expect("an id").to_owned()).expect("a node id");
    node.terminate();

    let generating = Instant::now();
    let mut store = Store::open(&dir.path().join("data")).expect("the node's store");
    let this_hour_ms = now_ms() / HOUR_MS * HOUR_MS;
    for hours_ago in 1..=24u64 {
        let hour_ms = this_hour_ms - hours_ago * HOUR_MS;
        for room in 1..=rooms {
            for (index, (quantity, base)) in QUANTITIES.iter().enumerate() {
                let series = Series {
                    node: id.clone(),
                    sensor: SensorId::new(&sensor(room, *quantity)).expect("a sensor id"),
                    room: Room::new(&format!("room {room}")).expect("a room"),
                    quantity: *quantity,
                };
                let seed = hours_ago * 1000 + (room * 3 + index) as u64;
                store
                    .merge_hour(series, hour_ms, &hour_of(*base, hour_ms, seed))
                    .expect("merged");
            }
        }
        store
            .observe(&[], hour_ms + HOUR_MS + 6 * MINUTE_MS)
            .expect("written");
    }
    store.close().expect("closed");
    println!(
        "history: 24 h of {rooms} rooms x {} quantities in minute buckets, made in {:.1} s",
        QUANTITIES.len(),
        generating.elapsed().as_secs_f64()
    );

    let node = Node::start(dir.path());
    for room in 1..=rooms {
        for (quantity, base) in QUANTITIES {
            let body = serde_json::json!({
                "sensor": sensor(room, quantity), "room": format!("room {room}"),
                "quantity": quantity.name(), "value": base + 0.5,
            });
            node.request("POST", "/api/readings", &body.to_string());
        }
    }
    let url = format!("http://{}/", node.http);

    let mut times = Vec::with_capacity(runs);
    let mut screens = Vec::with_capacity(runs);
    for run in 0..runs {
        let mut chromium = browser::Browser::start(1440, 1000);
        chromium.navigate(&url);
        chromium.wait(
            "the first full render",
            RENDER_DEADLINE,
            "document.documentElement.dataset.rendered === 'true'",
        );
        let drawn = chromium
            .eval(
                "[document.querySelectorAll('article.room').length, \
                  [...document.querySelectorAll('figure.chart')].filter(f => f.uplot && f.uplot.data[2].some(v => v != null)).length, \
                  performance.getEntriesByName('officemesh-rendered')[0].startTime, \
                  performance.getEntriesByName('officemesh-first-state')[0].startTime, \
                  Math.max(...performance.getEntriesByType('resource').filter(r => r.name.includes('/api/history')).map(r => r.responseEnd)), \
                  performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd, \
                  performance.getEntriesByName('officemesh-first-screen')[0].startTime]",
            )
            .expect("the page answers");
        assert_eq!(drawn[0], rooms, "room cards drawn: {drawn}");
        assert_eq!(
            drawn[1],
            rooms * QUANTITIES.len(),
            "charts drawn with their history: {drawn}"
        );
        let errors = chromium.take_errors();
        assert!(errors.is_empty(), "errors in the page: {errors:?}");
        let ms = drawn[2].as_f64().expect("a time");
        let at = |index: usize| drawn[index].as_f64().unwrap_or(f64::NAN);
        println!(
            "run {}: first screen {:.0} ms, everything {ms:.0} ms (scripts run at {:.0} ms, first state at {:.0} ms, last history answer at {:.0} ms)",
            run + 1,
            at(6),
            at(5),
            at(3),
            at(4)
        );
        times.push(ms);
        screens.push(at(6));
    }
    times.sort_by(f64::total_cmp);
    screens.sort_by(f64::total_cmp);
    println!(
        "first screen (the cards in view and their charts, all {rooms} cards made): median {:.0} ms, fastest {:.0} ms, slowest {:.0} ms",
        screens[screens.len() / 2],
        screens[0],
        screens[screens.len() - 1]
    );
    println!(
        "first full render of {rooms} rooms ({} charts): median {:.0} ms, fastest {:.0} ms, slowest {:.0} ms ({runs} runs, each a fresh browser)",
        rooms * QUANTITIES.len(),
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    node.terminate();
}
