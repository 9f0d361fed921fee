//! `sluice helm template`: render a chart to YAML on stdout, like `helm template`.

use clap::{Args, Subcommand};

/// `sluice helm …`
#[derive(Debug, Args)]
pub struct HelmArgs {
    #[command(subcommand)]
    pub command: HelmCommand,
}

/// Subcommands of `sluice helm`.
#[derive(Debug, Subcommand)]
pub enum HelmCommand {
    /// Render chart templates locally, like `helm template RELEASE CHART`.
    Template {
        /// Release name.
        release: String,
        /// Chart directory or .tgz.
        chart: std::path::PathBuf,
    },
}

/// Run `sluice helm …`.
pub fn run(args: HelmArgs) -> anyhow::Result<()> {
    match args.command {
        HelmCommand::Template { release, chart } => {
            anyhow::bail!("helm template {release} {} is not available yet", chart.display())
        }
    }
}
