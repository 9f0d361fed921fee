//! The `sluice` command line: a Flux-compatible CLI for sluice.

#![allow(missing_docs)] // clap derives document the CLI through --help
#![allow(clippy::print_stdout)] // a CLI prints

mod client;
mod cmd;
mod kinds;
mod output;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sluice", about = "GitOps for Kubernetes, compatible with Flux v2", version)]
struct Cli {
    #[command(flatten)]
    kube: client::KubeFlags,
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
    /// Install sluice in a cluster, or print its manifests with --export.
    Install(cmd::install::InstallArgs),
    /// List objects: `get all`, `get sources git`, `get kustomizations`, `get hr -A`, …
    Get(cmd::objects::GetArgs),
    /// Request a reconcile and wait for it: `reconcile source git NAME`, `reconcile ks NAME --with-source`.
    Reconcile(cmd::objects::ObjectArgs),
    /// Suspend reconciliation of an object.
    Suspend(cmd::objects::ObjectArgs),
    /// Resume reconciliation of an object and wait for it.
    Resume(cmd::objects::ObjectArgs),
}

fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Error: starting the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let flags = cli.kube;
    let result = match cli.command {
        Command::Version => {
            output::write_stdout(&format!("sluice {}\n", env!("CARGO_PKG_VERSION")))
        }
        Command::Kustomize(args) => cmd::kustomize::run(args),
        Command::Helm(args) => cmd::helm::run(args),
        Command::Install(args) => runtime.block_on(cmd::install::run(args, &flags)),
        Command::Get(args) => runtime.block_on(cmd::objects::get(args, &flags)),
        Command::Reconcile(args) => runtime.block_on(cmd::objects::reconcile(args, &flags)),
        Command::Suspend(args) => runtime.block_on(cmd::objects::set_suspend(args, &flags, true)),
        Command::Resume(args) => runtime.block_on(cmd::objects::set_suspend(args, &flags, false)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("✗ {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
