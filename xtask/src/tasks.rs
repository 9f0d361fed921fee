//! `cargo xtask lint` and `cargo xtask test`: the checks CI runs, each printing the commands it runs.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;

/// Arguments of `cargo xtask test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Skip the end-to-end tests against the real cluster.
    #[arg(long)]
    pub no_e2e: bool,
}

/// Runs a command in `root`, echoing it first, and fails when it fails.
pub fn run_cmd(root: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("+ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

/// Runs a command and returns its stdout.
fn output_of(root: &Path, program: &str, args: &[&str]) -> anyhow::Result<String> {
    eprintln!("+ {program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .current_dir(root)
        .output()
        .with_context(|| format!("starting {program}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `cargo xtask lint`: formatting, clippy with warnings denied, stale CRDs, forbidden crates.
pub fn lint(root: &Path) -> anyhow::Result<()> {
    run_cmd(root, "cargo", &["fmt", "--all", "--check"])?;
    run_cmd(root, "cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    crate::codegen::run(crate::codegen::CodegenArgs { check: true }, root)?;
    for forbidden in ["aws-lc-rs", "aws-lc-sys", "openssl-sys"] {
        let tree = output_of(
            root,
            "cargo",
            &["tree", "--workspace", "-e", "normal,build", "-i", forbidden],
        )?;
        if !tree.trim().is_empty() {
            bail!("{forbidden} entered the dependency tree:\n{tree}");
        }
    }
    eprintln!("lint: ok");
    Ok(())
}

/// `cargo xtask test`: unit, conformance and real-cluster tests of the whole workspace.
///
/// Prepares the real-cluster harness first (packages, the cached kube-apiserver build, moto),
/// then runs every crate's tests in one `cargo test --workspace` with the harness's `SLUICE_*`
/// variables set, since controller and e2e tests start the real apiserver.
pub fn test(args: TestArgs, root: &Path) -> anyhow::Result<()> {
    if args.no_e2e {
        eprintln!("skipping the real-cluster tests (--no-e2e)");
        return run_cmd(
            root,
            "cargo",
            &["test", "--workspace", "--exclude", "sluice-e2e", "--no-fail-fast"],
        );
    }
    crate::cluster::e2e(crate::cluster::E2eArgs { rest: vec!["--workspace".to_string()] })
}
