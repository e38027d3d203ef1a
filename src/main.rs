//! The `officemesh` command line.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use officemesh::{
    config::{Config, Overrides},
    net::SwarmKey,
    node::{self, demo},
    sensors,
    sim::{self, SimConfig},
};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A peer-to-peer smart office.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an office node.
    Up(UpArgs),
    /// Run a whole simulated office on this machine (loopback only), for a first look.
    Demo(DemoArgs),
    /// Print a join token for another node to join this office (asks the running node).
    Invite(InviteArgs),
    /// Ask the office bot through a running node: officemesh ask "who's at the office?"
    Ask(AskArgs),
    /// Talk to the office bot through a running node, one line at a time.
    Chat(ChatArgs),
    /// Print a new swarm key file (a new office's pre-shared key).
    SwarmKey,
    /// Simulate an office of replicas in one thread, with a lossy network, partitions,
    /// crashes and skewed clocks, and report how they converge.
    Sim(SimArgs),
    /// The documented configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the sensors this node would read (configured, else auto-detected) with a
    /// current reading of each.
    Sensors(SensorsArgs),
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the default configuration, every key documented.
    Default,
}

#[derive(Args, Debug)]
struct UpArgs {
    /// A TOML config file (see `officemesh config default`); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the node keeps its database and keys [default: ~/.local/share/officemesh].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This node's name [default: the host name].
    #[arg(long)]
    name: Option<String>,
    /// The room this node is in [default: office].
    #[arg(long)]
    room: Option<String>,
    /// A multiaddr to listen on (repeatable) [default: /ip4/0.0.0.0/tcp/7879].
    #[arg(long)]
    listen: Vec<String>,
    /// A peer's multiaddr to dial (repeatable): /ip4/ADDR/tcp/PORT, or a host name as
    /// /dns4/HOST/tcp/PORT (also /dns6, /dns), resolved again on every redial.
    #[arg(long)]
    peer: Vec<String>,
    /// A swarm.key file with the office's pre-shared key.
    #[arg(long)]
    swarm_key: Option<PathBuf>,
    /// A join token from `officemesh invite`.
    #[arg(long)]
    join: Option<String>,
    /// The HTTP API's address [default: 127.0.0.1:7878].
    #[arg(long)]
    http: Option<String>,
    /// No mDNS discovery.
    #[arg(long)]
    no_mdns: bool,
    /// Simulated sensors in this node's room.
    #[arg(long)]
    sim: bool,
}

#[derive(Args, Debug)]
struct SensorsArgs {
    /// A TOML config file; its [node] room and [sensors] section are used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Look for hwmon, IIO and 1-wire sensors under this directory [default: the config's
    /// sensors.sysfs_root, /sys].
    #[arg(long)]
    sysfs_root: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Number of nodes (1 to 50).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=50))]
    nodes: u16,
    /// HTTP port of the first node; node i listens on this port + i.
    #[arg(long, default_value_t = 7878)]
    http_port: u16,
}

/// How to reach a running node's API.
#[derive(Args, Debug)]
struct NodeArgs {
    /// The running node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:7878")]
    node: String,
    /// The API token [default: $OFFICEMESH_API_TOKEN, else the data dir's api-token file].
    #[arg(long)]
    token: Option<String>,
    /// The node's data dir, where its API token is [default: ~/.local/share/officemesh].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct InviteArgs {
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Args, Debug)]
struct AskArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Who is asking [default: $USER].
    #[arg(long = "as", value_name = "NAME")]
    speaker: Option<String>,
    /// The message, as one or several words.
    #[arg(required = true, num_args = 1.., trailing_var_arg = true)]
    text: Vec<String>,
}

#[derive(Args, Debug)]
struct ChatArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Who is talking [default: $USER].
    #[arg(long = "as", value_name = "NAME")]
    speaker: Option<String>,
}

#[derive(Args, Debug)]
struct SimArgs {
    /// Number of nodes in the office (2 to 1000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=1000))]
    nodes: u16,
    /// Seed of every random choice: the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Probability that a message is lost (0 to 1).
    #[arg(long, default_value_t = 0.1, value_parser = probability)]
    loss: f64,
    /// Rounds of activity (one round is one simulated second) before the network heals.
    #[arg(long, default_value_t = 120)]
    rounds: u64,
    /// No duplicates, delays, partitions, crashes or clock skew (loss still applies).
    #[arg(long)]
    no_faults: bool,
    /// Also measure what shipping every node's whole state every second would cost.
    #[arg(long)]
    compare_full_state: bool,
    /// Replay the office the test suite draws from --seed (its size, faults and rates);
    /// the other options are ignored.
    #[arg(long)]
    replay: bool,
    /// Run this many seeds in a row, from --seed, as the test suite does with --replay, and
    /// print a summary.
    #[arg(long, conflicts_with = "replay")]
    seeds: Option<u64>,
}

fn probability(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not between 0 and 1"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => run_up(args),
        Command::Demo(args) => run_demo(&args),
        Command::Invite(args) => run_invite(&args),
        Command::Ask(args) => run_ask(&args),
        Command::Chat(args) => run_chat(&args),
        Command::SwarmKey => SwarmKey::generate()
            .map(|key| print!("{}", key.to_file()))
            .map_err(Into::into),
        Command::Sim(args) => run_sim(&args),
        Command::Sensors(args) => run_sensors(&args),
        Command::Config(ConfigCommand::Default) => {
            print!("{}", officemesh::config::DEFAULT_CONFIG);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `default` level unless `RUST_LOG` says otherwise.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A token that fires on SIGINT (Ctrl-C) or SIGTERM.
fn shutdown_on_signals() -> Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let fire = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT: shutting down"),
            _ = terminate.recv() => info!("SIGTERM: shutting down"),
        }
        fire.cancel();
    });
    Ok(token)
}

fn run_up(args: UpArgs) -> Result<()> {
    init_logging("info");
    let overrides = Overrides {
        data_dir: args.data_dir,
        name: args.name,
        room: args.room,
        listen: args.listen,
        peers: args.peer,
        swarm_key_file: args.swarm_key,
        join: args.join,
        http: args.http,
        no_mdns: args.no_mdns,
        sim: args.sim,
    };
    let config = Config::load(args.config.as_deref(), &overrides)?;
    runtime()?.block_on(async {
        let shutdown = shutdown_on_signals()?;
        let node = node::start(config, shutdown).await?;
        node.wait().await;
        info!("stopped");
        Ok(())
    })
}

fn run_sensors(args: &SensorsArgs) -> Result<()> {
    // The table is the output; a failing source's warning would repeat its line.
    init_logging("error");
    let mut config = Config::load(args.config.as_deref(), &Overrides::default())?;
    if let Some(root) = &args.sysfs_root {
        config.sensors.sysfs_root.clone_from(root);
    }
    let (lines, detection) = runtime()?.block_on(sensors::survey(&config.sensors, &config.room));
    match &detection {
        Some(_) => println!(
            "no sources configured; auto-detected under {}{}:",
            config.sensors.sysfs_root.display(),
            if config.sensors.auto_detect {
                ""
            } else {
                " (sensors.auto_detect is off: a node will not read them)"
            }
        ),
        None => println!("configured sources:"),
    }
    if lines.is_empty() {
        println!("  none (list sources under [sensors] in the config: see docs/sensors.md)");
    }
    for line in &lines {
        let reading = match &line.readings {
            Ok(samples) if samples.is_empty() => "no reading".to_owned(),
            Ok(samples) => samples
                .iter()
                .map(|sample| {
                    format!(
                        "{} {} {}",
                        sample.quantity,
                        sample.value,
                        sample.quantity.unit()
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            Err(error) => format!("no reading: {error}"),
        };
        println!(
            "  {:<28} {:<11} room {:<14} {reading}\n  {:<28} from {}",
            line.source.id,
            line.source.kind_name(),
            line.room.as_str(),
            "",
            line.source.describe()
        );
    }
    for skipped in detection.iter().flat_map(|detection| &detection.skipped) {
        println!("  skipped {skipped}");
    }
    Ok(())
}

fn run_demo(args: &DemoArgs) -> Result<()> {
    // Five nodes logging every connection would bury the addresses: warnings only.
    init_logging("warn");
    runtime()?.block_on(async {
        let shutdown = shutdown_on_signals()?;
        let office = demo::start(usize::from(args.nodes), args.http_port, shutdown).await?;
        println!(
            "a demo office of {} nodes on loopback; Ctrl-C stops it",
            office.nodes.len()
        );
        for node in &office.nodes {
            println!(
                "  {:<14} http://{}  (node {})",
                node.room, node.http, node.node_id
            );
        }
        println!("  write token: {}", office.api_token);
        office.wait().await;
        Ok(())
    })
}

/// The API token: `--token`, else `OFFICEMESH_API_TOKEN`, else the data dir's file.
fn api_token(args: &NodeArgs) -> Result<String> {
    let given = args
        .token
        .clone()
        .or_else(|| std::env::var("OFFICEMESH_API_TOKEN").ok());
    if let Some(token) = given.filter(|token| !token.trim().is_empty()) {
        return Ok(token.trim().to_owned());
    }
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => Config::load(None, &Overrides::default())?.data_dir,
    };
    let path = data_dir.join(node::API_TOKEN_FILE);
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the API token {} (give --token or --data-dir, or set OFFICEMESH_API_TOKEN)",
            path.display()
        )
    })?;
    Ok(token.trim().to_owned())
}

fn run_invite(args: &InviteArgs) -> Result<()> {
    let token = api_token(&args.node)?;
    let body = http_request(&args.node.node, "GET", "/api/invite", &token, None)?;
    let invite: serde_json::Value =
        serde_json::from_str(&body).context("the node's answer is not JSON")?;
    match invite["token"].as_str() {
        Some(join) => {
            println!("{join}");
            eprintln!(
                "on the new node: officemesh up --join <the line above>   (it holds the office key: keep it secret)"
            );
            Ok(())
        }
        None => bail!("the node answered without a token: {body}"),
    }
}

/// Who speaks to the bot: `--as`, else the login name.
fn speaker(given: Option<&String>) -> Result<String> {
    given
        .cloned()
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.trim().is_empty())
        .context("who is asking? give --as NAME (USER is not set)")
}

/// Sends one message to the node's bot and returns its reply.
fn ask(node: &NodeArgs, token: &str, speaker: &str, text: &str) -> Result<String> {
    let request = serde_json::json!({"text": text, "speaker": speaker}).to_string();
    let body = http_request(&node.node, "POST", "/api/ask", token, Some(&request))?;
    let answer: serde_json::Value =
        serde_json::from_str(&body).context("the node's answer is not JSON")?;
    match answer["reply"].as_str() {
        Some(reply) => Ok(reply.to_owned()),
        None => bail!("the node answered without a reply: {body}"),
    }
}

fn run_ask(args: &AskArgs) -> Result<()> {
    let token = api_token(&args.node)?;
    let speaker = speaker(args.speaker.as_ref())?;
    println!(
        "{}",
        ask(&args.node, &token, &speaker, &args.text.join(" "))?
    );
    Ok(())
}

fn run_chat(args: &ChatArgs) -> Result<()> {
    use std::io::{BufRead as _, IsTerminal as _};
    let token = api_token(&args.node)?;
    let speaker = speaker(args.speaker.as_ref())?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        println!(
            "talking to the office bot at {} as {speaker}; \"help\" lists what it answers, Ctrl-D ends",
            args.node.node
        );
    }
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            print!("> ");
            std::io::stdout().flush()?;
        }
        let Some(line) = lines.next() else {
            break;
        };
        let line = line.context("cannot read the terminal")?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if matches!(text, "quit" | "exit") {
            break;
        }
        // One failed question (a node restarting, a rate limit) does not end the chat.
        match ask(&args.node, &token, &speaker, text) {
            Ok(reply) => println!("{reply}"),
            Err(error) => eprintln!("error: {error:#}"),
        }
    }
    Ok(())
}

/// A minimal HTTP/1.1 request to a loopback or LAN node, enough for the CLI's few requests:
/// the body of a 200 answer, else an error with the node's message.
fn http_request(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> Result<String> {
    let authority = base
        .strip_prefix("http://")
        .with_context(|| format!("--node {base:?} must start with http://"))?
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(authority)
        .with_context(|| format!("cannot reach the node at {base}: is it running?"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer")?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        let message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|error| error["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.trim().to_owned());
        bail!("the node answered {status}: {message}");
    }
    Ok(body.to_owned())
}

fn run_sim(args: &SimArgs) -> Result<()> {
    if let Some(count) = args.seeds {
        return run_many(args.seed, count);
    }
    let config = if args.replay {
        SimConfig::from_seed(args.seed)
    } else {
        let mut config = SimConfig::new(usize::from(args.nodes), args.seed);
        config.loss = args.loss;
        config.active_rounds = args.rounds;
        if !args.no_faults {
            config.duplicate = 0.05;
            config.max_delay_rounds = 2;
            config.partitions = true;
            config.crashes = true;
            config.max_skew_ms = 300_000;
        }
        config.measure_full_state = args.compare_full_state;
        config.replay = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
        config
    };
    println!("{}", describe(&config));
    let report = sim::run(&config)?;
    println!("{report}");
    if !report.identical {
        bail!("the replicas did not converge");
    }
    Ok(())
}

fn run_many(first: u64, count: u64) -> Result<()> {
    println!(
        "running {count} seeds from {first}, each office drawn from its seed (as the test suite does)"
    );
    let reports = sim::run_seeds(first, count)?;
    let (bytes, readings): (u64, u64) = reports.iter().fold((0, 0), |(b, r), report| {
        (b + report.bytes(), r + report.readings_written)
    });
    for (nodes, (runs, worst)) in sim::summarize(&reports) {
        println!(
            "  {nodes:>3} nodes: {runs:>5} runs, all identical, at most {worst} sync round(s) to converge (bound {})",
            sim::converge_bound(nodes)
        );
    }
    println!(
        "  {} messages, {} lost; {:.1} bytes per reading; {} forged entries, all rejected; {} crashes, {} partitions",
        reports.iter().map(|r| r.messages_sent).sum::<u64>(),
        reports.iter().map(|r| r.messages_lost).sum::<u64>(),
        bytes as f64 / readings.max(1) as f64,
        reports.iter().map(|r| r.forgeries_sent).sum::<u64>(),
        reports.iter().map(|r| r.crashes).sum::<u64>(),
        reports.iter().map(|r| r.partitions).sum::<u64>(),
    );
    Ok(())
}

fn describe(config: &SimConfig) -> String {
    let mut faults = vec![format!("loss {:.0}%", config.loss * 100.0)];
    if config.duplicate > 0.0 {
        faults.push(format!("duplicates {:.0}%", config.duplicate * 100.0));
    }
    if config.max_delay_rounds > 0 {
        faults.push(format!(
            "delays up to {} s (reordering)",
            config.max_delay_rounds
        ));
    }
    if config.partitions {
        faults.push("partitions".into());
    }
    if config.crashes {
        faults.push("crashes with restart from the last save".into());
    }
    if config.max_skew_ms > 0 {
        faults.push(format!("clock skew up to ±{} s", config.max_skew_ms / 1000));
    }
    if config.forgeries {
        faults.push("a node forging entries".into());
    }
    format!(
        "simulating {} nodes for {} s of office life (seed {}): {}",
        config.nodes,
        config.active_rounds,
        config.seed,
        faults.join(", ")
    )
}
