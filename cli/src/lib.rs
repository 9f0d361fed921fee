//! The `sluice` command line: a Flux-compatible CLI for sluice.
//!
//! `main.rs` parses the process arguments and calls [`run`]; tests call [`run_captured`] with
//! an argument list and read what the command printed.

#![allow(missing_docs)] // clap derives document the CLI through --help
#![allow(clippy::print_stdout)] // a CLI prints

pub mod client;
pub mod cluster;
pub mod cmd;
pub mod kinds;
pub mod output;

use clap::{Parser, Subcommand};

pub use output::Captured;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "sluice", about = "GitOps for Kubernetes, compatible with Flux v2", version)]
pub struct Cli {
    #[command(flatten)]
    pub kube: client::KubeFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the sluice version.
    Version,
    /// Kustomize engine commands.
    Kustomize(cmd::kustomize::KustomizeArgs),
    /// Helm engine commands.
    Helm(cmd::helm::HelmArgs),
    /// Install sluice in a cluster, or print its manifests with --export.
    Install(cmd::install::InstallArgs),
    /// Deploy sluice from a Git repository: commit the manifests, apply them, wait for the sync.
    Bootstrap(cmd::bootstrap::BootstrapArgs),
    /// Check the prerequisites and the installation: Kubernetes version, controllers, CRDs.
    Check(cmd::check::CheckArgs),
    /// Build a Kustomization's manifests from a local directory, as the controller would.
    Build(cmd::build::BuildArgs),
    /// Compare a local directory with the cluster (server-side dry-run); exit 1 when they differ.
    Diff(cmd::build::BuildArgs),
    /// Show the objects a Kustomization manages, as a tree.
    Tree(cmd::inspect::TreeArgs),
    /// Show which Kustomization or HelmRelease manages an object, and its source.
    Trace(cmd::inspect::TraceArgs),
    /// Show the Kubernetes events of sluice's objects.
    Events(cmd::inspect::EventsArgs),
    /// Show the logs of the controllers running in the cluster.
    Logs(cmd::inspect::LogsArgs),
    /// Print objects as clean YAML (no status): `export source git --all`.
    Export(cmd::create::ExportArgs),
    /// Create or update sources, Kustomizations and HelmReleases (`--export` prints them).
    Create(cmd::create::CreateArgs),
    /// Remove sluice from the cluster: controllers, finalizers, CRDs and the namespace.
    Uninstall(cmd::check::UninstallArgs),
    /// List objects: `get all`, `get sources git`, `get kustomizations`, `get hr -A`, …
    Get(cmd::objects::GetArgs),
    /// Request a reconcile and wait for it: `reconcile source git NAME`, `reconcile ks NAME --with-source`.
    Reconcile(cmd::objects::ObjectArgs),
    /// Suspend reconciliation of an object.
    Suspend(cmd::objects::ObjectArgs),
    /// Resume reconciliation of an object and wait for it.
    Resume(cmd::objects::ObjectArgs),
}

impl Command {
    /// The exit code of a failure: `diff` reserves 1 for "differences found".
    fn error_code(&self) -> u8 {
        if matches!(self, Command::Diff(_)) { 2 } else { 1 }
    }
}

/// Runs a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let flags = cli.kube;
    let error_code = cli.command.error_code();
    let result: anyhow::Result<u8> = match cli.command {
        Command::Version => {
            output::write_stdout(&format!("sluice {}\n", env!("CARGO_PKG_VERSION"))).map(|()| 0)
        }
        Command::Kustomize(args) => cmd::kustomize::run(args).map(|()| 0),
        Command::Helm(args) => cmd::helm::run(args).map(|()| 0),
        Command::Install(args) => cmd::install::run(args, &flags).await.map(|()| 0),
        Command::Bootstrap(args) => cmd::bootstrap::run(args, &flags).await.map(|()| 0),
        Command::Check(args) => cmd::check::check(args, &flags).await.map(|()| 0),
        Command::Build(args) => cmd::build::build(args, &flags).await.map(|()| 0),
        Command::Diff(args) => cmd::build::diff(args, &flags).await,
        Command::Tree(args) => cmd::inspect::tree(args, &flags).await.map(|()| 0),
        Command::Trace(args) => cmd::inspect::trace(args, &flags).await.map(|()| 0),
        Command::Events(args) => cmd::inspect::events(args, &flags).await.map(|()| 0),
        Command::Logs(args) => cmd::inspect::logs(args, &flags).await.map(|()| 0),
        Command::Export(args) => cmd::create::export(args, &flags).await.map(|()| 0),
        Command::Create(args) => cmd::create::create(args, &flags).await.map(|()| 0),
        Command::Uninstall(args) => cmd::check::uninstall(args, &flags).await.map(|()| 0),
        Command::Get(args) => cmd::objects::get(args, &flags).await.map(|()| 0),
        Command::Reconcile(args) => cmd::objects::reconcile(args, &flags).await.map(|()| 0),
        Command::Suspend(args) => cmd::objects::set_suspend(args, &flags, true).await.map(|()| 0),
        Command::Resume(args) => cmd::objects::set_suspend(args, &flags, false).await.map(|()| 0),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            say!("✗ {err:#}");
            error_code
        }
    }
}

/// Parses `args` (the first is the program name) and runs the command with its output captured.
pub async fn run_captured<I, T>(args: I) -> (u8, Captured)
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    output::capture(async move {
        match Cli::try_parse_from(args) {
            Ok(cli) => run(cli).await,
            Err(err) => {
                let code = u8::try_from(err.exit_code()).unwrap_or(2);
                let text = err.render().to_string();
                if code == 0 {
                    let _ = output::write_stdout(&text);
                } else {
                    output::progress(text.trim_end());
                }
                code
            }
        }
    })
    .await
}
