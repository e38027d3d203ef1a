//! The `officemesh` command line.

use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use officemesh::{
    bot,
    config::{Config, Overrides},
    http::{
        client::{self, Client, ClientError},
        local_token,
    },
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
    /// Print the viewer token, which lets a browser or a client read the office from another
    /// machine (the dashboard's sign-in page takes it); asks the running node.
    ViewerToken(InviteArgs),
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
    #[arg(long, default_value = DEFAULT_NODE)]
    node: String,
    /// The API token [default: $OFFICEMESH_API_TOKEN, else --data-dir's api-token file,
    /// else the token a running `officemesh demo` left for --node, else the default data
    /// dir's api-token file].
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
    /// Who is asking [default: $USER, else $LOGNAME, else the login name of this user id;
    /// with none of them, only "i am ..." and "forget me" need it].
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
    /// Who is talking [default: $USER, else $LOGNAME, else the login name of this user id;
    /// with none of them, only "i am ..." and "forget me" need it].
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
        Command::ViewerToken(args) => run_viewer_token(&args),
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

/// Logs to stderr at `default` level unless `RUST_LOG` says otherwise; colours only on a
/// terminal, so a journal or a log file gets plain lines.
///
/// libp2p's request-response warns once per stream it drops for a connection's stream limit,
/// without naming the peer: a peer flooding the node with requests would write thousands of
/// such lines. The net actor names a flooding peer itself (`net::rate`), so those warnings
/// are left out unless `RUST_LOG` asks for them.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default},libp2p_request_response=error"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
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
    let (lines, detection) =
        runtime()?.block_on(sensors::survey(&config.sensors, &config.node.room));
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
        println!("the dashboard: open any address above in a browser (it asks for the write token before changing anything: a target, \"i am ...\")");
        let first = office.nodes.first().context("the demo has no node")?;
        // `ask` finds the demo's token by itself (`http::local_token`); only a first node off
        // the default port needs naming.
        let mut flags = String::new();
        if client::node_url(&format!("http://{}", first.http))? != default_node_url() {
            flags.push_str(&format!("--node http://{} ", first.http));
        }
        if !office.token_left_for_ask() {
            flags.push_str(&format!("--token {} ", office.api_token));
        }
        println!("ask it: officemesh ask {flags}\"who's at the office?\"");
        office.wait().await;
        Ok(())
    })
}

/// The address `--node` defaults to.
const DEFAULT_NODE: &str = "http://127.0.0.1:7878";

fn default_node_url() -> reqwest::Url {
    client::node_url(DEFAULT_NODE).expect("the default node URL is valid")
}

/// The name the bot is given when nobody can be named: enough for every question whose
/// answer is the same whoever asks.
const NEUTRAL_SPEAKER: &str = "someone";

/// A running node's API, and where its token came from, for when the node refuses it.
struct Node {
    client: Client,
    token_source: String,
}

impl Node {
    /// The client of `--node` with the token found as [`api_token`] says.
    fn connect(args: &NodeArgs) -> Result<Node> {
        let url = client::node_url(&args.node)?;
        let (token, token_source) = api_token(args, &url)?;
        Ok(Node {
            client: Client::new(url, &token)?,
            token_source,
        })
    }

    /// Says, for a refused token, where it came from and how to give the right one.
    fn explain(&self, error: ClientError) -> anyhow::Error {
        match error {
            ClientError::Unauthorized { .. } => anyhow!(
                "{error} (the token came from {}; give this node's token with --token, or its data dir with --data-dir)",
                self.token_source
            ),
            other => other.into(),
        }
    }

    fn ask(&self, runtime: &tokio::runtime::Runtime, speaker: &str, text: &str) -> Result<String> {
        runtime
            .block_on(self.client.ask(text, speaker))
            .map_err(|error| self.explain(error))
    }
}

/// The runtime the API client runs on: one thread is plenty for a request at a time.
fn client_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The API token and where it came from: `--token`, else `OFFICEMESH_API_TOKEN`, else the
/// `--data-dir`'s file, else the token a running demo left for this node's address, else the
/// default data dir's file.
fn api_token(args: &NodeArgs, node: &reqwest::Url) -> Result<(String, String)> {
    let given = [
        (args.token.clone(), "--token"),
        (
            std::env::var("OFFICEMESH_API_TOKEN").ok(),
            "OFFICEMESH_API_TOKEN",
        ),
    ];
    for (token, source) in given {
        if let Some(token) = token.filter(|token| !token.trim().is_empty()) {
            return Ok((token.trim().to_owned(), source.to_owned()));
        }
    }
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            if let Some(found) = local_token::find(node) {
                return Ok((found.token, found.path.display().to_string()));
            }
            Config::load(None, &Overrides::default())?.node.data_dir
        }
    };
    let path = data_dir.join(node::API_TOKEN_FILE);
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the API token {} (give --token or --data-dir, or set OFFICEMESH_API_TOKEN)",
            path.display()
        )
    })?;
    Ok((token.trim().to_owned(), path.display().to_string()))
}

fn run_invite(args: &InviteArgs) -> Result<()> {
    let node = Node::connect(&args.node)?;
    let join = client_runtime()?
        .block_on(node.client.invite())
        .map_err(|error| node.explain(error))?;
    println!("{join}");
    eprintln!(
        "on the new node: officemesh up --join <the line above>   (it holds the office key: keep it secret)"
    );
    Ok(())
}

fn run_viewer_token(args: &InviteArgs) -> Result<()> {
    let node = Node::connect(&args.node)?;
    let token = client_runtime()?
        .block_on(node.client.viewer_token())
        .map_err(|error| node.explain(error))?;
    println!("{token}");
    eprintln!(
        "sign in with it at {} from another machine: it shows the office (who is in, too), changes nothing",
        args.node.node.trim_end_matches('/')
    );
    Ok(())
}

/// Who speaks to the bot, if anyone can be named: `--as`, else `$USER`, else `$LOGNAME`,
/// else the login name of this user id (a service, a container or a cron job often has no
/// `USER`).
fn named_speaker(given: Option<&str>) -> Option<String> {
    let non_empty = |name: &str| Some(name.trim().to_owned()).filter(|name| !name.is_empty());
    let from_env = |variable: &str| {
        std::env::var(variable)
            .ok()
            .and_then(|name| non_empty(&name))
    };
    given
        .and_then(non_empty)
        .or_else(|| from_env("USER"))
        .or_else(|| from_env("LOGNAME"))
        .or_else(|| login_name().and_then(|name| non_empty(&name)))
}

/// The name of this process's user id in `/etc/passwd`.
fn login_name() -> Option<String> {
    // SAFETY: getuid has no preconditions and cannot fail (POSIX).
    let uid = unsafe { libc::getuid() };
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd_name(&passwd, uid).map(str::to_owned)
}

/// The name of `uid` in a passwd(5) file: lines of `name:password:uid:gid:...`.
fn passwd_name(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let line_uid: u32 = fields.next()?.parse().ok()?;
        // `+` and `-` lines are NIS inclusions, not users.
        let usable = !name.is_empty() && !name.starts_with(['#', '+', '-']);
        (line_uid == uid && usable).then_some(name)
    })
}

/// Who says `text`: the named speaker, else a neutral name unless the text is about whoever
/// says it ("i am ...", "forget me").
fn speaker_for<'a>(named: Option<&'a str>, text: &str) -> Result<&'a str> {
    match named {
        Some(name) => Ok(name),
        None if bot::needs_speaker(text) => bail!(
            "who is asking? {text:?} is about whoever says it: give --as NAME (USER and LOGNAME are not set, and this user id has no name in /etc/passwd)"
        ),
        None => Ok(NEUTRAL_SPEAKER),
    }
}

fn run_ask(args: &AskArgs) -> Result<()> {
    let text = args.text.join(" ");
    let named = named_speaker(args.speaker.as_deref());
    let speaker = speaker_for(named.as_deref(), &text)?;
    let node = Node::connect(&args.node)?;
    println!("{}", node.ask(&client_runtime()?, speaker, &text)?);
    Ok(())
}

fn run_chat(args: &ChatArgs) -> Result<()> {
    use std::io::{BufRead as _, IsTerminal as _};
    let node = Node::connect(&args.node)?;
    let runtime = client_runtime()?;
    let named = named_speaker(args.speaker.as_deref());
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        let who = match &named {
            Some(name) => name.clone(),
            None => format!("{NEUTRAL_SPEAKER} (give --as NAME for \"i am ...\")"),
        };
        println!(
            "talking to the office bot at {} as {who}; \"help\" lists what it answers, Ctrl-D ends",
            node.client.base()
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
        let answer = speaker_for(named.as_deref(), text)
            .and_then(|speaker| node.ask(&runtime, speaker, text));
        match answer {
            Ok(reply) => println!("{reply}"),
            Err(error) => eprintln!("error: {error:#}"),
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_name_is_the_passwd_line_of_the_user_id() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # a comment:x:1000\n\
                      +nis:x:1000:1000::/:/bin/sh\n\
                      broken line\n\
                      mendes:x:1000:1000:Mendes,,,:/home/mendes:/bin/bash\n\
                      ana:x:1001:1001::/home/ana:/bin/sh\n";
        assert_eq!(passwd_name(passwd, 0), Some("root"));
        assert_eq!(passwd_name(passwd, 1000), Some("mendes"));
        assert_eq!(passwd_name(passwd, 1001), Some("ana"));
        assert_eq!(passwd_name(passwd, 4242), None);
        assert_eq!(passwd_name("", 0), None);
    }

    #[test]
    fn without_a_name_only_phrases_about_the_speaker_are_refused() {
        assert_eq!(speaker_for(Some("mendes"), "forget me").unwrap(), "mendes");
        assert_eq!(speaker_for(None, "kitchen temp").unwrap(), NEUTRAL_SPEAKER);
        assert_eq!(
            speaker_for(None, "who's at the office?").unwrap(),
            NEUTRAL_SPEAKER
        );
        for text in ["i am 00:1a:2b:3c:4d:5e", "bloo, forget me"] {
            let error = speaker_for(None, text).unwrap_err().to_string();
            assert!(
                error.contains("give --as NAME") && error.contains(text),
                "{error}"
            );
        }
    }
}
