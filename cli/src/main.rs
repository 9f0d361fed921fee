//! The `sluice` command line: a Flux-compatible CLI for sluice.

#![allow(missing_docs)] // clap derives document the CLI through --help

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sluice", about = "GitOps for Kubernetes, compatible with Flux v2", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the sluice version.
    Version,
    /// Kustomize engine commands.
    Kustomize(cmd::kustomize::KustomizeArgs),
    /// Helm engine commands.
    Helm(cmd::helm::HelmArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!("sluice {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Kustomize(args) => cmd::kustomize::run(args),
        Command::Helm(args) => cmd::helm::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
