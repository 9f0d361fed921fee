//! `cargo xtask cluster …` and `cargo xtask e2e`: the real-cluster test harness (owned by the harness work).

use clap::Args;

/// Arguments of `cargo xtask cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// What to do: build, up, down, status.
    pub action: String,
}

/// Arguments of `cargo xtask e2e`.
#[derive(Debug, Args)]
pub struct E2eArgs {
    /// Extra arguments passed to the test runner.
    pub rest: Vec<String>,
}

/// Run `cargo xtask cluster …`.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask cluster {} is not available yet", args.action)
}

/// Run `cargo xtask e2e`.
pub fn e2e(args: E2eArgs) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask e2e {:?} is not available yet", args.rest)
}
