//! Developer commands for sluice, run as `cargo xtask <command>`.

#![allow(missing_docs)] // clap derives document the commands through --help

mod bench;
mod cluster;
mod codegen;
mod demo;
mod scale;
mod tasks;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "sluice developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark an engine against the reference tool on generated inputs (needs ../shared/bench).
    Bench(bench::BenchArgs),
    /// Build, start, stop or inspect the real test cluster (kube-apiserver v1.20.2 + etcd).
    Cluster(cluster::ClusterArgs),
    /// Run the end-to-end tests against the real cluster.
    E2e(cluster::E2eArgs),
    /// Generate the CRD manifests in config/crd from the API types (--check to verify).
    Codegen(codegen::CodegenArgs),
    /// See sluice work: a real local cluster, a git server, the controllers, a commit flowing through.
    Demo(demo::DemoArgs),
    /// Check formatting, clippy (warnings denied), stale CRDs and forbidden crates.
    Lint,
    /// Run every test: unit, conformance corpora (when ../shared exists) and the real-cluster e2e.
    Test(tasks::TestArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => bench::run(args, &workspace_root()),
        Command::Cluster(args) => cluster::run(args),
        Command::E2e(args) => cluster::e2e(args),
        Command::Codegen(args) => codegen::run(args, &workspace_root()),
        Command::Demo(args) => demo::run(args),
        Command::Lint => tasks::lint(&workspace_root()),
        Command::Test(args) => tasks::test(args, &workspace_root()),
    }
}

/// The workspace root: the parent of xtask's manifest directory.
fn workspace_root() -> std::path::PathBuf {
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
