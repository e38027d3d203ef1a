//! The `officemesh` command line.

use anyhow::Result;
use clap::{Parser, Subcommand};

/// A peer-to-peer smart office.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate an office of replicas in one thread and report how they converge.
    Sim,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim => Ok(()),
    }
}
