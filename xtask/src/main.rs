//! Developer commands for sluice, run as `cargo xtask <command>`.

#![allow(missing_docs)] // clap derives document the commands through --help

mod cluster;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "sluice developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build, start, stop or inspect the real test cluster (kube-apiserver v1.20.2 + etcd).
    Cluster(cluster::ClusterArgs),
    /// Run the end-to-end tests against the real cluster.
    E2e(cluster::E2eArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Cluster(args) => cluster::run(args),
        Command::E2e(args) => cluster::e2e(args),
    }
}
