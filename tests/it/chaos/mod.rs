//! The chaos suite: five real `officemesh up` processes, each on its own host (a network
//! namespace) on one switch, finding each other by mDNS, while a seeded schedule of faults
//! (partitions, packet loss, kill -9, SIGSTOP, clock skew, a full disk) hits them and a
//! workload writes through their APIs. After every fault heals the nodes must agree again;
//! at the end every acknowledged write must be there, concurrent targets must show as
//! concurrent, each alert crossing must be announced at most once, and no node may have
//! crashed or panicked. The figures (time to a full mesh at boot, from each heal to identical
//! state, for a restarted node to catch up, writes acknowledged and lost) are printed.
//!
//! `OFFICEMESH_CHAOS_S` is the schedule's length in seconds (180 by default, what CI runs;
//! at least one round of every fault runs whatever it says), `OFFICEMESH_CHAOS_SEED` the seed
//! (random by default; printed, so a failure replays), `OFFICEMESH_CHAOS_NEMESES` a
//! comma-separated list of the faults to draw from (all by default; for example
//! `halves,cutoff,bridge` to measure heals after partitions); with `OFFICEMESH_CHAOS_KEEP_LOGS`
//! set, the nodes' logs are kept after a run that passed too (always after one that failed). `scripts/chaos [SECONDS] [SEED]`
//! runs it. Needs root, iproute2, nftables and faketime (`scripts/test` installs them).

mod boot;
mod checker;
mod lab;
mod workload;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use officemesh::sim::SimRng;
use serde_json::Value;

use self::{
    checker::{check_announcements, check_writes, comparable, first_difference, summary},
    lab::{DISK_DIR_PREFIX, Disk, Switch, Webhook},
    workload::{ALARM_ABOVE, ALARM_ROOM, Target, Workload},
};
use crate::support::node::{Node, NodeBuilder, QUIET_CONFIG, write_swarm_key};

/// Hosts in the office.
const HOSTS: usize = 5;
/// The goals of issue 12: a full mesh within 10 s of a simultaneous boot, identical state
/// within 2 s of a network fault's heal.
const MESH_GOAL: Duration = Duration::from_secs(10);
const HEAL_GOAL: Duration = Duration::from_secs(2);
/// How long the suite waits for a mesh or for agreement before it calls it a failure and
/// goes on.
const PATIENCE: Duration = Duration::from_secs(60);
/// How often the state is compared while waiting for agreement.
const POLL: Duration = Duration::from_millis(50);
/// Longer than libp2p's ping interval (15 s) and timeout (20 s) together, so the paused
/// node's peers give its connections up.
const PAUSE: Duration = Duration::from_secs(40);
/// libfaketime, from Debian's `faketime`.
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nemesis {
    /// Two against three.
    Halves,
    /// One node alone against the rest.
    CutOff,
    /// Two sides that cannot talk, and one node that talks to both.
    Bridge,
    /// A random share of node-to-node packets dropped on every host.
    Loss,
    /// kill -9, a while down, restarted from its data dir.
    Kill,
    /// SIGSTOP for longer than the ping timeout, then SIGCONT.
    Pause,
    /// Restarted with its clock minutes ahead.
    ClockAhead,
    /// Restarted with its clock minutes behind.
    ClockBehind,
    /// Restarted believing it is 1970.
    Clock1970,
    /// Its data dir's disk full.
    FullDisk,
}

const NEMESES: [Nemesis; 10] = [
    Nemesis::Halves,
    Nemesis::CutOff,
    Nemesis::Bridge,
    Nemesis::Loss,
    Nemesis::Kill,
    Nemesis::Pause,
    Nemesis::ClockAhead,
    Nemesis::ClockBehind,
    Nemesis::Clock1970,
    Nemesis::FullDisk,
];

impl Nemesis {
    /// A fault of the network, whose heal must bring agreement within [`HEAL_GOAL`].
    fn is_network(self) -> bool {
        matches!(
            self,
            Nemesis::Halves | Nemesis::CutOff | Nemesis::Bridge | Nemesis::Loss
        )
    }
}

/// One host: its node (while running), how to start it, and its earlier runs' logs.
struct Host {
    builder: NodeBuilder,
    node: Option<Node>,
    peer_id: String,
    stopped: bool,
    /// The fake clock it runs under, if any (`FAKETIME`).
    clock: Option<String>,
    logs: Vec<String>,
    disk: Disk,
}

impl Host {
    fn node(&self) -> &Node {
        self.node.as_ref().expect("the host's node runs")
    }

    /// kill -9, keeping the log.
    fn kill(&mut self) {
        if let Some(node) = self.node.take() {
            self.logs.push(node.log_text());
            node.kill();
        }
    }

    /// Starts the node again from its data dir, under `clock` if given.
    fn restart(&mut self, clock: Option<&str>) {
        let mut builder = self.builder.clone();
        if let Some(clock) = clock {
            builder = builder
                .env("LD_PRELOAD", FAKETIME)
                .env("FAKETIME", clock)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        self.clock = clock.map(str::to_owned);
        self.node = Some(builder.start());
        assert_eq!(
            self.node().peer_id(),
            self.peer_id,
            "a restarted node keeps its id"
        );
    }
}

/// What the run measured.
#[derive(Default)]
struct Figures {
    mesh: Option<Duration>,
    /// Per fault, how long from its heal (or the restart) to identical state; `None`: not
    /// within [`PATIENCE`].
    recoveries: Vec<(String, Nemesis, Option<Duration>)>,
    acknowledged: usize,
    refused: usize,
    lost: usize,
    crossings: usize,
    crossings_acknowledged: usize,
    announcements: usize,
}

/// The faults `OFFICEMESH_CHAOS_NEMESES` names (by their names here, in any case), or all.
fn nemeses_from_env() -> Vec<Nemesis> {
    let Ok(text) = std::env::var("OFFICEMESH_CHAOS_NEMESES") else {
        return NEMESES.to_vec();
    };
    text.split(',')
        .map(|name| {
            let name = name.trim();
            NEMESES
                .into_iter()
                .find(|nemesis| format!("{nemesis:?}").eq_ignore_ascii_case(name))
                .unwrap_or_else(|| {
                    panic!("OFFICEMESH_CHAOS_NEMESES: no fault is called {name:?}; the faults are {NEMESES:?}")
                })
        })
        .collect()
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a whole number")),
    )
}

#[test]
fn a_seeded_schedule_of_faults_loses_no_acknowledged_write() {
    let seconds = env_number("OFFICEMESH_CHAOS_S").unwrap_or(180);
    let seed = env_number("OFFICEMESH_CHAOS_SEED").unwrap_or_else(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the system gives random bytes");
        u64::from_le_bytes(bytes)
    });
    eprintln!(
        "chaos: seed {seed}, {seconds} s (replay: OFFICEMESH_CHAOS_SEED={seed} OFFICEMESH_CHAOS_S={seconds})"
    );
    let switch = Switch::new("oc", 80, HOSTS).unwrap_or_else(|error| {
        panic!("the chaos suite needs root and iproute2 to build its network: {error}")
    });
    // The whole run happens on a thread inside the switch's namespace, where every host's
    // API and the alert webhook are reachable.
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                switch.enter().expect("the test joins the switch namespace");
                run(&switch, seed, Duration::from_secs(seconds))
            })
            .join()
    });
    drop(switch);
    match outcome {
        Ok(problems) => assert!(
            problems.is_empty(),
            "chaos seed {seed} ({seconds} s) failed; replay with OFFICEMESH_CHAOS_SEED={seed}:\n- {}",
            problems.join("\n- ")
        ),
        Err(panic) => {
            eprintln!("chaos seed {seed} panicked; replay with OFFICEMESH_CHAOS_SEED={seed}");
            std::panic::resume_unwind(panic)
        }
    }
}

/// Runs the whole schedule; the problems found.
fn run(switch: &Switch, seed: u64, length: Duration) -> Vec<String> {
    let mut rng = SimRng::new(seed);
    let mut problems = Vec::new();
    say_what_the_kernel_lacks(switch);
    assert!(
        Path::new(FAKETIME).exists(),
        "{FAKETIME} is missing: install Debian's faketime (scripts/test does)"
    );
    let dir = tempfile::Builder::new()
        .prefix(&format!("{DISK_DIR_PREFIX}{}-", std::process::id()))
        .tempdir()
        .expect("a temporary directory");
    let key = dir.path().join("swarm.key");
    write_swarm_key(&key, 0x0c);
    let webhook = Webhook::start(&switch.switch_address()).expect("the webhook listens");
    let config = format!(
        "{QUIET_CONFIG}[bot]\nwebhook_url = \"http://{}/alert\"\n\
         [[alerts.rule]]\nquantity = \"temperature\"\nroom = \"{ALARM_ROOM}\"\nabove = {ALARM_ABOVE:.1}\n\
         hysteresis = 1.0\nmessage = \"{{sensor}} crossed at {{value}}\"\n",
        webhook.address
    );
    let mut hosts: Vec<Host> = (0..HOSTS)
        .map(|host| {
            let disk = Disk::mount(&dir.path().join(format!("h{}", host + 1)), "64m")
                .expect("a tmpfs for the host's data dir (root only)");
            let builder = Node::builder(disk.dir.join("node"))
                .config(&config)
                .namespace(switch.namespace(host))
                .swarm_key(&key)
                .room(&format!("room {}", host % 3))
                .mdns()
                .listen("/ip4/0.0.0.0/tcp/0")
                .http(&format!("{}:0", switch.address(host)));
            Host {
                builder,
                node: None,
                peer_id: String::new(),
                stopped: false,
                clock: None,
                logs: Vec::new(),
                disk,
            }
        })
        .collect();

    // Boot: every node spawned within a few milliseconds, as after a power cut.
    let boot = Instant::now();
    for host in &mut hosts {
        host.node = Some(host.builder.spawn());
    }
    for host in &mut hosts {
        let node = host.node.as_mut().expect("spawned");
        node.wait_started();
        host.peer_id = node.peer_id();
    }
    let spawn_spread = boot.elapsed();
    let mut figures = Figures {
        mesh: wait_for_mesh(&hosts, boot),
        ..Figures::default()
    };
    eprintln!(
        "chaos: booted {HOSTS} nodes (all spawned and listening within {spawn_spread:?}); full mesh after {:?}",
        figures.mesh
    );
    if figures.mesh.is_none_or(|mesh| mesh > MESH_GOAL) {
        problems.push(format!(
            "booting together: no full mesh by mDNS within {MESH_GOAL:?} (took {:?}; peers per node then: {:?})",
            figures.mesh,
            peer_counts(&hosts)
        ));
    }

    let nemeses = nemeses_from_env();
    let mut workload = Workload::new(rng.fork(), HOSTS);
    let start = Instant::now();
    let mut round = 0;
    let mut episode = 0;
    while round == 0 || start.elapsed() < length {
        let mut deck = nemeses.clone();
        rng.shuffle(&mut deck);
        for nemesis in deck {
            if round > 0 && start.elapsed() >= length {
                break;
            }
            episode += 1;
            let name = format!("#{episode} {nemesis:?}");
            let recovery = episode_of(
                nemesis,
                &name,
                &mut rng,
                &mut hosts,
                switch,
                &mut workload,
                &mut problems,
            );
            eprintln!(
                "chaos: {name} at {:.1} s: agreement {:?} after the heal",
                start.elapsed().as_secs_f64(),
                recovery
            );
            match recovery {
                None => problems.push(format!(
                    "{name}: the nodes did not agree within {PATIENCE:?} of the heal: {}",
                    disagreement(&hosts)
                )),
                // A timing goal, printed rather than asserted (docs/reliability.md, "Healing
                // fast"): met on this machine when it is not starved, missed by a second or
                // two when a compiler shares its two cores with the five nodes. Said plainly
                // in the figures and on standard error; the nodes must still agree within
                // PATIENCE.
                Some(time) if nemesis.is_network() && time > HEAL_GOAL => eprintln!(
                    "chaos: healing fast: {name} took {time:?} from the heal to identical state, over the goal of {HEAL_GOAL:?}"
                ),
                Some(_) => {}
            }
            figures.recoveries.push((name, nemesis, recovery));
            // A few seconds of calm work between faults.
            let calm = Duration::from_millis(2000 + rng.below(2000));
            work_for(calm, &hosts, &mut workload);
        }
        round += 1;
    }

    // The end: a quiet period, bounded, until the nodes agree; then the checks.
    if converge(&hosts).is_none() {
        problems.push(format!(
            "the nodes did not agree within {PATIENCE:?} of the end: {}",
            disagreement(&hosts)
        ));
    }
    let state = hosts[0].node().state();
    let (write_problems, lost) = check_writes(&workload, &state);
    problems.extend(write_problems);
    let posts = webhook.posts();
    problems.extend(check_announcements(&workload, &posts));
    if posts.is_empty() {
        problems.push(format!(
            "no alert was announced at all, of {} crossings",
            workload.crossing_texts.len()
        ));
    }
    for (index, host) in hosts.iter_mut().enumerate() {
        let node = host.node.as_mut().expect("every node runs at the end");
        if let Some(status) = node.exit_status() {
            problems.push(format!("host {} exited by itself: {status}", index + 1));
        }
        host.logs.push(host.node().log_text());
        for (run, log) in host.logs.iter().enumerate() {
            if let Some(line) = log.lines().find(|line| line.contains("panicked")) {
                problems.push(format!(
                    "host {} (run {}) logged a panic: {line}",
                    index + 1,
                    run + 1
                ));
            }
        }
    }

    if !problems.is_empty() {
        problems.push(format!(
            "the nodes' logs are in {}",
            keep_logs(seed, &hosts).display()
        ));
    } else if std::env::var_os("OFFICEMESH_CHAOS_KEEP_LOGS").is_some() {
        eprintln!(
            "chaos: the nodes' logs are in {}",
            keep_logs(seed, &hosts).display()
        );
    }
    figures.acknowledged = workload
        .writes
        .iter()
        .filter(|write| write.acked_at.is_some())
        .count();
    figures.refused = workload.writes.len() - figures.acknowledged;
    figures.lost = lost;
    figures.crossings = workload.crossing_texts.len();
    figures.crossings_acknowledged = workload.crossings_acknowledged;
    figures.announcements = posts.len();
    eprintln!(
        "{}",
        report(seed, length, start.elapsed(), &figures, &summary(&state))
    );
    problems
}

/// One fault: applied, the workload running under it, healed; how long after the heal
/// (or the restart) the nodes agreed.
fn episode_of(
    nemesis: Nemesis,
    name: &str,
    rng: &mut SimRng,
    hosts: &mut [Host],
    switch: &Switch,
    workload: &mut Workload,
    problems: &mut Vec<String>,
) -> Option<Duration> {
    // Partitions run from 5 to 30 s: a connection with data in flight outlives the shorter
    // ones (retransmitting, capped at one a second where the kernel can) and dies during the
    // longer ones (after 15 retransmissions), so both heals are exercised. Other faults last
    // 5 to 12 s.
    let network = matches!(nemesis, Nemesis::Halves | Nemesis::CutOff | Nemesis::Bridge);
    let duration = Duration::from_millis(5000 + rng.below(if network { 25_000 } else { 7000 }));
    let mut order: Vec<usize> = (0..hosts.len()).collect();
    rng.shuffle(&mut order);
    let victim = order[0];
    match nemesis {
        Nemesis::Halves | Nemesis::CutOff | Nemesis::Bridge => {
            let (a, b, bridge): (Vec<usize>, Vec<usize>, Option<usize>) = match nemesis {
                Nemesis::Halves => (order[..2].to_vec(), order[2..].to_vec(), None),
                Nemesis::CutOff => (order[..1].to_vec(), order[1..].to_vec(), None),
                _ => (order[..2].to_vec(), order[2..4].to_vec(), Some(order[4])),
            };
            eprintln!(
                "chaos: {name}: hosts {:?} | {:?}{} for {duration:?}",
                one_based(&a),
                one_based(&b),
                bridge.map_or(String::new(), |host| format!(", bridge {}", host + 1))
            );
            for host in &a {
                switch.set_rules(*host, &[switch.drop_from(&b)]).unwrap();
            }
            for host in &b {
                switch.set_rules(*host, &[switch.drop_from(&a)]).unwrap();
            }
            // The same room's target set from both sides: both values must survive.
            if bridge.is_none() {
                let targets = targets(hosts);
                let side = |hosts: &[usize]| targets.iter().find(|t| hosts.contains(&t.host));
                if let (Some(first), Some(second)) = (side(&a), side(&b)) {
                    workload.contest(&format!("contested {name}"), [first, second]);
                }
            }
            work_for(duration, hosts, workload);
            let heal = Instant::now();
            for host in a.iter().chain(&b) {
                switch.set_rules(*host, &[]).unwrap();
            }
            converge(hosts).map(|_| heal.elapsed())
        }
        Nemesis::Loss => {
            let percent = 10 + rng.below(21) as u8;
            eprintln!(
                "chaos: {name}: {percent} % of node-to-node packets dropped for {duration:?}"
            );
            for host in 0..hosts.len() {
                switch.set_rules(host, &[switch.lose(percent)]).unwrap();
            }
            work_for(duration, hosts, workload);
            let heal = Instant::now();
            for host in 0..hosts.len() {
                switch.set_rules(host, &[]).unwrap();
            }
            converge(hosts).map(|_| heal.elapsed())
        }
        Nemesis::Kill => {
            eprintln!("chaos: {name}: host {} killed for {duration:?}", victim + 1);
            hosts[victim].kill();
            work_for(duration, hosts, workload);
            let restart = Instant::now();
            // Its clock is the machine's again.
            hosts[victim].restart(None);
            converge(hosts).map(|_| restart.elapsed())
        }
        Nemesis::Pause => {
            eprintln!("chaos: {name}: host {} stopped for {PAUSE:?}", victim + 1);
            hosts[victim].node().signal("STOP");
            hosts[victim].stopped = true;
            work_for(PAUSE, hosts, workload);
            let heal = Instant::now();
            hosts[victim].node().signal("CONT");
            hosts[victim].stopped = false;
            converge(hosts).map(|_| heal.elapsed())
        }
        Nemesis::ClockAhead | Nemesis::ClockBehind | Nemesis::Clock1970 => {
            // Within the 15 minutes a peer's clock may run ahead before its writes are
            // refused (`MAX_CLOCK_AHEAD_MS`): a node further off is kept apart by design.
            // The bound is between any two nodes, and one may be ahead while another is
            // behind, so each is at most 7 minutes off. (Up to 10, as a first version drew,
            // the hour-long run of seed 12 had a node 10 minutes behind refuse the writes of
            // one 6 minutes ahead, and the office stayed split for nine minutes.)
            let minutes = 2 + rng.below(6);
            let clock = match nemesis {
                Nemesis::ClockAhead => format!("+{minutes}m"),
                Nemesis::ClockBehind => format!("-{minutes}m"),
                _ => "@1970-01-01 00:00:00".to_owned(),
            };
            eprintln!(
                "chaos: {name}: host {} restarted with FAKETIME={clock:?}, then {duration:?} of work",
                victim + 1
            );
            hosts[victim].kill();
            let restart = Instant::now();
            let restart_ms = now_ms();
            hosts[victim].restart(Some(&clock));
            let caught_up = converge(hosts).map(|_| restart.elapsed());
            // The fault is real: the node's own entry says it started at its fake time.
            let expected_ms = match nemesis {
                Nemesis::ClockAhead => restart_ms + minutes as i64 * 60_000,
                Nemesis::ClockBehind => restart_ms - minutes as i64 * 60_000,
                _ => 0,
            };
            let started_ms = started_at_ms(&hosts[victim]);
            if started_ms.is_none_or(|started| (started - expected_ms).abs() > 60_000) {
                problems.push(format!(
                    "{name}: host {} was to start at {expected_ms} ms by its clock, but says {started_ms:?}",
                    victim + 1
                ));
            }
            work_for(duration, hosts, workload);
            if converge(hosts).is_none() {
                problems.push(format!(
                    "{name}: the nodes did not agree within {PATIENCE:?} after work with host {} at {clock}: {}",
                    victim + 1,
                    disagreement(hosts)
                ));
            }
            caught_up
        }
        Nemesis::FullDisk => {
            eprintln!(
                "chaos: {name}: host {}'s disk full for {duration:?}",
                victim + 1
            );
            hosts[victim].disk.fill();
            // The fault is real: not a block left on the node's disk.
            let left = hosts[victim].disk.available_bytes();
            if left >= 64 * 1024 {
                problems.push(format!(
                    "{name}: host {}'s disk still had {left} bytes free after the fill",
                    victim + 1
                ));
            }
            let before = workload.writes.len();
            work_for(duration, hosts, workload);
            // A full disk need not refuse every write: SQLite writes into the free pages its
            // file already has, and a write a peer holds is acknowledged without this disk.
            // Every acknowledged one is checked at the end like any other; here, only counted.
            let to_victim: Vec<_> = workload.writes[before..]
                .iter()
                .filter(|write| write.host == victim)
                .collect();
            let acknowledged = to_victim
                .iter()
                .filter(|write| write.acked_at.is_some())
                .count();
            eprintln!(
                "chaos: {name}: host {} acknowledged {acknowledged} of the {} writes sent to it while its disk was full",
                victim + 1,
                to_victim.len()
            );
            let heal = Instant::now();
            hosts[victim].disk.free();
            converge(hosts).map(|_| heal.elapsed())
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// When the host's node says it started, by its own clock.
fn started_at_ms(host: &Host) -> Option<i64> {
    let state = host.node.as_ref()?.get("/api/state").ok()?;
    state["nodes"]
        .as_array()?
        .iter()
        .find(|node| node["id"] == host.peer_id.as_str())?["started_at_ms"]
        .as_i64()
}

/// Keeps every host's whole log (all its runs) under the system's temporary directory, for
/// a failed run: the directory.
fn keep_logs(seed: u64, hosts: &[Host]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("officemesh-chaos-logs-{seed}"));
    let _ = std::fs::create_dir_all(&dir);
    for (index, host) in hosts.iter().enumerate() {
        let _ = std::fs::write(
            dir.join(format!("host{}.log", index + 1)),
            host.logs.join("\n---- restarted ----\n"),
        );
    }
    dir
}

fn one_based(hosts: &[usize]) -> Vec<usize> {
    hosts.iter().map(|host| host + 1).collect()
}

/// The nodes the workload may write to now: running and not stopped.
fn targets(hosts: &[Host]) -> Vec<Target> {
    hosts
        .iter()
        .enumerate()
        .filter(|(_, host)| !host.stopped)
        .filter_map(|(index, host)| {
            Some(Target {
                host: index,
                http: host.node.as_ref()?.http,
                peer_id: host.peer_id.clone(),
            })
        })
        .collect()
}

/// Runs the workload for `duration`.
fn work_for(duration: Duration, hosts: &[Host], workload: &mut Workload) {
    let end = Instant::now() + duration;
    let targets = targets(hosts);
    while Instant::now() < end {
        workload.step(&targets);
        std::thread::sleep(workload.pace());
    }
}

/// The comparable states of every running node, or why not.
fn states(hosts: &[Host]) -> Result<Vec<Value>, String> {
    hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let node = host
                .node
                .as_ref()
                .ok_or_else(|| format!("host {} is down", index + 1))?;
            node.get("/api/state")
                .map(|state| comparable(&state))
                .map_err(|error| format!("host {}: {error}", index + 1))
        })
        .collect()
}

/// Polls until every node holds the same state, for at most [`PATIENCE`]: the state, or
/// `None`.
/// Once past [`HEAL_GOAL`], it prints which parts of which nodes' states still differ, for
/// whoever studies a slow heal.
fn converge(hosts: &[Host]) -> Option<Value> {
    let start = Instant::now();
    let mut told = false;
    loop {
        let states = states(hosts);
        if let Ok(states) = &states
            && states.windows(2).all(|pair| pair[0] == pair[1])
        {
            return states.first().cloned();
        }
        if !told && start.elapsed() > HEAL_GOAL {
            told = true;
            eprintln!(
                "chaos: still differing after {HEAL_GOAL:?}: {}",
                states.map_or_else(|error| error, |states| differences(hosts, &states))
            );
        }
        if start.elapsed() >= PATIENCE {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Which parts of each node's state differ from the first node's, and where the first
/// differing node differs first.
fn differences(hosts: &[Host], states: &[Value]) -> String {
    let mut parts = Vec::new();
    let mut first = None;
    for (index, state) in states.iter().enumerate().skip(1) {
        let differing: Vec<&str> = ["rooms", "devices", "people", "nodes", "alerts"]
            .into_iter()
            .filter(|part| state[*part] != states[0][*part])
            .collect();
        if !differing.is_empty() {
            parts.push(format!("host {} in {}", index + 1, differing.join(", ")));
            first = first.or_else(|| {
                first_difference(&states[0], state)
                    .map(|difference| format!("; host 1 vs host {}: {difference}", index + 1))
            });
        }
    }
    // Node ids as the hosts they are.
    let mut text = format!(
        "{} (against host 1){}",
        parts.join("; "),
        first.unwrap_or_default()
    );
    for (index, host) in hosts.iter().enumerate() {
        if !host.peer_id.is_empty() {
            text = text.replace(&host.peer_id, &format!("<host {}>", index + 1));
        }
    }
    text
}

/// How the nodes' states differ, for a message.
fn disagreement(hosts: &[Host]) -> String {
    match states(hosts) {
        Err(error) => error,
        Ok(states) => states
            .iter()
            .enumerate()
            .map(|(index, state)| format!("host {}: {}", index + 1, summary(state)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// How many peers each node is connected to.
fn peer_counts(hosts: &[Host]) -> Vec<Option<usize>> {
    hosts
        .iter()
        .map(|host| {
            let peers = host.node.as_ref()?.get("/api/peers").ok()?;
            Some(peers.as_array()?.len())
        })
        .collect()
}

/// Polls until every node is connected to every other, for at most [`PATIENCE`]: the time
/// from `boot`.
fn wait_for_mesh(hosts: &[Host], boot: Instant) -> Option<Duration> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let counts = peer_counts(hosts);
        if counts.iter().all(|count| *count == Some(hosts.len() - 1)) {
            return Some(boot.elapsed());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Whether the kernel can do what a fuller nemesis would: netem delays, duplicates and
/// reorders packets. Without it the suite drops packets with nftables and says so.
fn say_what_the_kernel_lacks(switch: &Switch) {
    let output = Command::new("ip")
        .args(["netns", "exec", switch.namespace(0), "tc", "qdisc", "add"])
        .args(["dev", "eth0", "root", "netem", "loss", "1%"])
        .output();
    match output {
        Ok(output) if output.status.success() => {
            let _ = Command::new("ip")
                .args(["netns", "exec", switch.namespace(0), "tc", "qdisc", "del"])
                .args(["dev", "eth0", "root"])
                .status();
            eprintln!(
                "chaos: this kernel has netem; the suite still drops packets with nftables only"
            );
        }
        Ok(output) => eprintln!(
            "chaos: this kernel has no netem qdisc (tc: {}): packets are dropped with nftables \
             `numgen random` rules instead; delay, duplication and reordering are not injected",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => eprintln!(
            "chaos: cannot run tc ({error}): packets are dropped with nftables only; delay, \
             duplication and reordering are not injected"
        ),
    }
}

/// The figures, as printed at the end and copied into docs/reliability.md.
fn report(seed: u64, length: Duration, took: Duration, figures: &Figures, state: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "---- chaos figures: seed {seed}, schedule {length:?}, ran {:.0} s ----",
        took.as_secs_f64()
    );
    let _ = writeln!(
        text,
        "full mesh by mDNS after a simultaneous boot: {} (goal {MESH_GOAL:?})",
        show(figures.mesh)
    );
    for (label, filter) in [
        (
            "heal to identical state (network faults)",
            Nemesis::is_network as fn(Nemesis) -> bool,
        ),
        ("restart to caught up (kill -9, clock skew)", |n| {
            matches!(
                n,
                Nemesis::Kill | Nemesis::ClockAhead | Nemesis::ClockBehind | Nemesis::Clock1970
            )
        }),
        ("SIGCONT or free disk to identical state", |n| {
            matches!(n, Nemesis::Pause | Nemesis::FullDisk)
        }),
    ] {
        let times: Vec<String> = figures
            .recoveries
            .iter()
            .filter(|(_, nemesis, _)| filter(*nemesis))
            .map(|(name, _, time)| format!("{name} {}", show(*time)))
            .collect();
        let _ = writeln!(text, "{label}: {}", times.join(", "));
    }
    let slow: Vec<&str> = figures
        .recoveries
        .iter()
        .filter(|(_, nemesis, time)| nemesis.is_network() && time.is_some_and(|t| t > HEAL_GOAL))
        .map(|(name, _, _)| name.as_str())
        .collect();
    let _ = writeln!(
        text,
        "healing fast (goal {HEAL_GOAL:?} from a network fault's heal): {}",
        if slow.is_empty() {
            "met".to_owned()
        } else {
            format!("NOT MET in {}", slow.join(", "))
        }
    );
    let _ = writeln!(
        text,
        "writes: {} acknowledged, {} refused or unanswered, {} acknowledged and lost",
        figures.acknowledged, figures.refused, figures.lost
    );
    let _ = writeln!(
        text,
        "alert crossings sent: {} ({} acknowledged), announcements: {}",
        figures.crossings, figures.crossings_acknowledged, figures.announcements
    );
    let _ = write!(text, "final state: {state}");
    text
}

fn show(time: Option<Duration>) -> String {
    time.map_or_else(
        || format!("none within {PATIENCE:?}"),
        |time| format!("{:.2} s", time.as_secs_f64()),
    )
}
