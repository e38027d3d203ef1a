//! The dashboard: its page weight, and the first full render of a 25-room office in headless
//! Chromium.
//!
//! Run with `cargo bench --bench dashboard` (needs Debian's `chromium`). It starts one real
//! node (the `officemesh` binary of this build) whose store holds the last 24 hours of
//! ROOMS (25) rooms x 3 quantities (temperature, humidity, CO2), one sensor each, in minute
//! buckets, as a node that has run for a day holds them, and gives it a current reading of
//! each. Then, RUNS (11) times, a fresh Chromium (empty profile, so nothing is cached) opens
//! the page, and two marks the page sets are read, as times from the start of navigation:
//! the first screen (every room card made, the charts of the cards in view drawn) and the
//! full render (every chart drawn too, 75, in the frame after the last). The median, fastest
//! and slowest are printed. `OFFICEMESH_BENCH_ROOMS` and `OFFICEMESH_BENCH_RUNS` change the
//! sizes.
//!
//! `OFFICEMESH_BENCH_COMPARE=/path/to/another/officemesh` runs that binary too, on a copy of
//! the same data, taking turns with this build's run by run, and prints the ratio of the
//! medians: the way to tell whether a change to the page helps on a shared, noisy machine.
//! `OFFICEMESH_BENCH_PROFILE=1` prints, for the first run, where the page's script time went
//! (by function), the browser's own work by thread and event, and the frames over 50 ms.
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
    fn start(dir: &Path, binary: &str) -> Node {
        let config = dir.join("node.toml");
        std::fs::write(
            &config,
            "[sensors]\nauto_detect = false\n[presence]\nenabled = false\n",
        )
        .expect("config written");
        let mut child = Command::new(binary)
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
    let profile = env("OFFICEMESH_BENCH_PROFILE", 0) != 0;

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
    let node = Node::start(dir.path(), env!("CARGO_BIN_EXE_officemesh"));
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

    // This build's binary, and the one to compare it with, each on its own copy of the data,
    // taking turns run by run so that both see the same machine.
    let mut binaries = vec![(
        "this build".to_owned(),
        env!("CARGO_BIN_EXE_officemesh").to_owned(),
    )];
    if let Ok(other) = std::env::var("OFFICEMESH_BENCH_COMPARE") {
        binaries.push((format!("compared ({other})"), other));
    }
    let mut nodes = Vec::new();
    for (index, (_, binary)) in binaries.iter().enumerate() {
        let home = dir.path().join(format!("node-{index}"));
        std::fs::create_dir_all(&home).expect("a node directory");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(dir.path().join("data"))
            .arg(&home)
            .status()
            .expect("cp runs");
        assert!(copied.success(), "the data copied");
        let node = Node::start(&home, binary);
        for room in 1..=rooms {
            for (quantity, base) in QUANTITIES {
                let body = serde_json::json!({
                    "sensor": sensor(room, quantity), "room": format!("room {room}"),
                    "quantity": quantity.name(), "value": base + 0.5,
                });
                node.request("POST", "/api/readings", &body.to_string());
            }
        }
        nodes.push(node);
    }

    let mut results: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); nodes.len()];
    for run in 0..runs {
        for (index, node) in nodes.iter().enumerate() {
            let url = format!("http://{}/", node.http);
            let (screen, everything) = render_once(&url, rooms, profile && run == 0 && index == 0);
            println!(
                "run {} of {}: first screen {screen:.0} ms, everything {everything:.0} ms",
                run + 1,
                binaries[index].0
            );
            results[index].0.push(screen);
            results[index].1.push(everything);
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        (
            values[values.len() / 2],
            values[0],
            values[values.len() - 1],
        )
    };
    let mut medians = Vec::new();
    for ((name, _), (screens, times)) in binaries.iter().zip(results.iter_mut()) {
        let (screen, fastest_screen, slowest_screen) = median(screens);
        let (time, fastest, slowest) = median(times);
        println!("{name}:");
        println!(
            "  first screen (the cards in view and their charts, all {rooms} cards made): median {screen:.0} ms, fastest {fastest_screen:.0} ms, slowest {slowest_screen:.0} ms"
        );
        println!(
            "  first full render of {rooms} rooms ({} charts): median {time:.0} ms, fastest {fastest:.0} ms, slowest {slowest:.0} ms ({runs} runs, each a fresh browser)",
            rooms * QUANTITIES.len(),
        );
        medians.push((screen, time));
    }
    if let [(screen, time), (other_screen, other_time)] = medians[..] {
        println!(
            "this build / compared, medians: first screen {:.2}, first full render {:.2}",
            screen / other_screen,
            time / other_time
        );
    }
    for node in nodes {
        node.terminate();
    }
}

/// One fresh Chromium opens `url` and waits for the page's render mark: the times of its
/// first-screen and full-render marks, after checking that every card and chart is drawn.
/// With `profile`, it also prints where the time went.
fn render_once(url: &str, rooms: usize, profile: bool) -> (f64, f64) {
    let mut chromium = browser::Browser::start(1440, 1000);
    if profile {
        chromium.command("Performance.enable", serde_json::json!({}));
        chromium.command("Profiler.enable", serde_json::json!({}));
        chromium.command(
            "Profiler.setSamplingInterval",
            serde_json::json!({"interval": 200}),
        );
        chromium.command("Profiler.start", serde_json::json!({}));
        chromium.command(
            "Tracing.start",
            serde_json::json!({"categories": "devtools.timeline,blink,cc,v8", "transferMode": "ReportEvents"}),
        );
    }
    chromium.navigate(url);
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
    let at = |index: usize| drawn[index].as_f64().unwrap_or(f64::NAN);
    if profile {
        println!(
            "profiled run: scripts run at {:.0} ms, first state at {:.0} ms, last history answer at {:.0} ms",
            at(5),
            at(3),
            at(4)
        );
        let stopped = chromium.command("Profiler.stop", serde_json::json!({}));
        print_profile(&stopped["profile"]);
        chromium.command("Tracing.end", serde_json::json!({}));
        let events: Vec<Value> = chromium
            .events_until("Tracing.tracingComplete")
            .into_iter()
            .filter(|event| event["method"] == "Tracing.dataCollected")
            .flat_map(|event| {
                event["params"]["value"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        print_trace(&events);
        // The frames that took over 50 ms, and what ran in them.
        let frames = chromium
            .eval(
                "new Promise((resolve) => new PerformanceObserver((list) => resolve(list.getEntries().map((f) => ({\
                   start: Math.round(f.startTime), duration: Math.round(f.duration), \
                   styleAndLayout: Math.round(f.styleAndLayoutStart ? f.startTime + f.duration - f.styleAndLayoutStart : 0), \
                   scripts: f.scripts.map((s) => `${s.invoker} ${Math.round(s.duration)}ms`).join('; ')})))) \
                   .observe({type: 'long-animation-frame', buffered: true}))",
            )
            .expect("frames");
        let sizes = chromium
            .eval("[...document.querySelectorAll('article.room')].slice(0, 3).map((card) => card.getBoundingClientRect()).map((r) => `${Math.round(r.width)}x${Math.round(r.height)} at ${Math.round(r.left)},${Math.round(r.top)}`)")
            .expect("sizes");
        println!("the first cards: {sizes}");
        println!("long frames:");
        for frame in frames.as_array().into_iter().flatten() {
            println!("  {frame}");
        }
    }
    (at(6), at(2))
}

/// Where the page's script thread spent the first run, by function (with what it calls, and
/// its own), from the sampling profile Chromium takes when `OFFICEMESH_BENCH_PROFILE=1`.
fn print_profile(profile: &Value) {
    let nodes = profile["nodes"].as_array().cloned().unwrap_or_default();
    let samples = profile["samples"].as_array().cloned().unwrap_or_default();
    let deltas = profile["timeDeltas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut by_node = std::collections::HashMap::<u64, f64>::new();
    for (sample, delta) in samples
        .iter()
        .zip(deltas.iter().skip(1).chain([&Value::from(0)]))
    {
        *by_node.entry(sample.as_u64().unwrap_or(0)).or_default() +=
            delta.as_f64().unwrap_or(0.0) / 1000.0;
    }
    let index: std::collections::HashMap<u64, &Value> = nodes
        .iter()
        .map(|node| (node["id"].as_u64().unwrap_or(0), node))
        .collect();
    fn total(
        id: u64,
        index: &std::collections::HashMap<u64, &Value>,
        by_node: &std::collections::HashMap<u64, f64>,
    ) -> f64 {
        let own = by_node.get(&id).copied().unwrap_or(0.0);
        own + index[&id]["children"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|child| total(child.as_u64().unwrap_or(0), index, by_node))
            .sum::<f64>()
    }
    let mut by_function = std::collections::HashMap::<String, (f64, f64)>::new();
    for node in &nodes {
        let frame = &node["callFrame"];
        let url = frame["url"].as_str().unwrap_or("");
        let name = format!(
            "{} ({}:{})",
            frame["functionName"]
                .as_str()
                .filter(|name| !name.is_empty())
                .unwrap_or("(anonymous)"),
            url.rsplit('/').next().unwrap_or(""),
            frame["lineNumber"].as_i64().unwrap_or(-1) + 1
        );
        let id = node["id"].as_u64().unwrap_or(0);
        let entry = by_function.entry(name).or_default();
        entry.0 += by_node.get(&id).copied().unwrap_or(0.0);
        entry.1 += total(id, &index, &by_node);
    }
    let mut ranked: Vec<_> = by_function.into_iter().collect();
    ranked.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    println!("profile of run 1, by function: total (with what it calls), self ms");
    for (name, (own, all)) in ranked.iter().take(45) {
        println!("  {all:7.1} {own:7.1}  {name}");
    }
}

/// The browser's own work in the first run, from its trace: total ms by thread and event.
fn print_trace(events: &[Value]) {
    let mut threads = std::collections::HashMap::<(u64, u64), String>::new();
    for event in events {
        if event["ph"] == "M" && event["name"] == "thread_name" {
            threads.insert(
                (
                    event["pid"].as_u64().unwrap_or(0),
                    event["tid"].as_u64().unwrap_or(0),
                ),
                event["args"]["name"].as_str().unwrap_or("?").to_owned(),
            );
        }
    }
    let mut by_name = std::collections::HashMap::<String, (f64, usize)>::new();
    for event in events {
        if event["ph"] != "X" {
            continue;
        }
        let thread = threads
            .get(&(
                event["pid"].as_u64().unwrap_or(0),
                event["tid"].as_u64().unwrap_or(0),
            ))
            .cloned()
            .unwrap_or_default();
        let entry = by_name
            .entry(format!(
                "{thread} / {}",
                event["name"].as_str().unwrap_or("?")
            ))
            .or_default();
        entry.0 += event["dur"].as_f64().unwrap_or(0.0) / 1000.0;
        entry.1 += 1;
    }
    let mut ranked: Vec<_> = by_name.into_iter().collect();
    ranked.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!("trace of run 1, by thread / event: total ms (count)");
    for (name, (ms, count)) in ranked.iter().take(40) {
        println!("  {ms:7.1} ({count:4})  {name}");
    }
}
