//! `sluice kustomize build`: render a kustomization tree to YAML on stdout.

use clap::{Args, Subcommand};

/// `sluice kustomize …`
#[derive(Debug, Args)]
pub struct KustomizeArgs {
    #[command(subcommand)]
    pub command: KustomizeCommand,
}

/// Subcommands of `sluice kustomize`.
#[derive(Debug, Subcommand)]
pub enum KustomizeCommand {
    /// Build a kustomization target from a directory, like `kubectl kustomize DIR`.
    Build {
        /// Directory holding a kustomization.yaml (default: current directory).
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
    },
}

/// Run `sluice kustomize …`.
pub fn run(args: KustomizeArgs) -> anyhow::Result<()> {
    match args.command {
        KustomizeCommand::Build { dir } => {
            anyhow::bail!("kustomize build of {} is not available yet", dir.display())
        }
    }
}
