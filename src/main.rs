//! The `officemesh` command line.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use officemesh::sim::{self, SimConfig};

/// A peer-to-peer smart office.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate an office of replicas in one thread, with a lossy network, partitions,
    /// crashes and skewed clocks, and report how they converge.
    Sim(SimArgs),
    /// The documented configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the default configuration, every key documented.
    Default,
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
        Command::Sim(args) => run_sim(&args),
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
