//! `sluice kustomize build`: render a kustomization tree to YAML on stdout.

use anyhow::Context;
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
            let abs = std::path::absolute(&dir)
                .with_context(|| format!("resolving {}", dir.display()))?;
            // Like `kubectl kustomize`: bases may live anywhere, files must stay in their kustomization's directory.
            let options =
                sluice_kustomize::BuildOptions { root: Some(std::path::PathBuf::from("/")) };
            let objects = sluice_kustomize::build_with_options(
                &sluice_kustomize::DiskFileSystem,
                &abs,
                &options,
            )?;
            let text = sluice_kustomize::to_yaml(&objects);
            crate::output::write_stdout(&text)
        }
    }
}
