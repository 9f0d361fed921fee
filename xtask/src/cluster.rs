//! `cargo xtask cluster build|up|down|status` and `cargo xtask e2e`: the real-cluster test harness.
//!
//! The work is done by `sluice_e2e` (`provision` builds and installs, `Cluster` runs); this file
//! is the command line around it. Every command prints what it runs.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sluice_e2e::cluster::{self, Cluster, ClusterOptions};
use sluice_e2e::process::{self, Lifetime};
use sluice_e2e::{paths, provision};

/// Arguments of `cargo xtask cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: ClusterAction,
}

/// What `cargo xtask cluster` does.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Install the Debian packages and build kube-apiserver + kube-controller-manager v1.20.2
    /// from Debian's source package (cached in ~/.cache/sluice/k8s-v1.20.2; about 4 minutes cold).
    Build {
        /// Rebuild even when the cached binaries are there.
        #[arg(long)]
        force: bool,
    },
    /// Everything the real-cluster tests need: `build`, plus the server packages (lighttpd,
    /// sshd, docker-registry, htpasswd, git) and the moto venv. `cargo xtask e2e` runs it first.
    Prepare,
    /// Start etcd, kube-apiserver and kube-controller-manager on 127.0.0.1 and print the
    /// kubeconfig path. Runs until Ctrl-C unless --detach.
    Up {
        /// Leave the cluster running in the background; stop it with `cargo xtask cluster down`.
        #[arg(long)]
        detach: bool,
    },
    /// Stop a cluster started with `up --detach` (controller-manager, apiserver, etcd, by PID).
    Down,
    /// Show whether a detached cluster is running and ready.
    Status,
}

/// Arguments of `cargo xtask e2e`.
#[derive(Debug, Args)]
pub struct E2eArgs {
    /// Arguments for `cargo test` after `-p sluice-e2e`, passed as they are: more packages
    /// whose tests need the cluster (`-p sluice-source-controller`), then `--` and test-binary
    /// arguments (a name filter, `--nocapture`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// The directory of the detached cluster: kubeconfig, logs, `pids`.
fn detached_dir() -> PathBuf {
    paths::cache_dir().join("cluster")
}

/// Run `cargo xtask cluster …`.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.action {
        ClusterAction::Build { force } => {
            let binaries = provision::build_kubernetes(force)?;
            println!("kube-apiserver: {}", binaries.apiserver.display());
            println!("kube-controller-manager: {}", binaries.controller_manager.display());
            println!("etcd: {}", binaries.etcd.display());
            Ok(())
        }
        ClusterAction::Prepare => {
            provision::prepare_e2e()?;
            println!("ready for the real-cluster tests");
            Ok(())
        }
        ClusterAction::Up { detach } => up(detach),
        ClusterAction::Down => down(),
        ClusterAction::Status => status(),
    }
}

fn up(detach: bool) -> anyhow::Result<()> {
    provision::build_kubernetes(false)?;
    if !detach {
        let cluster = cluster::start_blocking(ClusterOptions::default())?;
        print_started(&cluster);
        println!("press Ctrl-C to stop");
        cluster::wait_for_interrupt()?;
        drop(cluster);
        println!("stopped");
        return Ok(());
    }
    let dir = detached_dir();
    if running_pids()?.iter().any(|(_, pid)| process::is_alive(*pid)) {
        bail!(
            "a detached cluster is already running ({}): `cargo xtask cluster down` first",
            dir.display()
        );
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let options = ClusterOptions {
        dir: Some(dir.clone()),
        controller_manager: true,
        lifetime: Lifetime::Detached,
        extra_controllers: Vec::new(),
        controller_manager_args: Vec::new(),
        apiserver_args: Vec::new(),
    };
    let cluster = cluster::start_blocking(options)?;
    print_started(&cluster);
    let pids = cluster.detach();
    let lines: String = pids.iter().map(|(name, pid)| format!("{name} {pid}\n")).collect();
    fs::write(dir.join("pids"), lines)?;
    println!("running in the background; stop it with `cargo xtask cluster down`");
    Ok(())
}

fn print_started(cluster: &Cluster) {
    println!("cluster {} ready in {:.1?}", cluster.server_url(), cluster.startup_time());
    for (name, pid) in cluster.pids() {
        println!("  {name}: pid {pid}");
    }
    println!("logs: {}", cluster.dir().display());
    println!("kubeconfig: {}", cluster.kubeconfig_path().display());
    println!("  export KUBECONFIG={}", cluster.kubeconfig_path().display());
}

/// The `(name, pid)` lines of the detached cluster, in start order; empty when there is none.
fn running_pids() -> anyhow::Result<Vec<(String, u32)>> {
    let file = detached_dir().join("pids");
    let Ok(text) = fs::read_to_string(&file) else { return Ok(Vec::new()) };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (name, pid) = line
                .rsplit_once(' ')
                .with_context(|| format!("{}: malformed line {line:?}", file.display()))?;
            let pid =
                pid.parse().with_context(|| format!("{}: bad pid in {line:?}", file.display()))?;
            Ok((name.to_owned(), pid))
        })
        .collect()
}

fn down() -> anyhow::Result<()> {
    let pids = running_pids()?;
    if pids.is_empty() {
        println!("no detached cluster ({} has no pids file)", detached_dir().display());
        return Ok(());
    }
    // Newest first: controller-manager, apiserver, then etcd.
    for (name, pid) in pids.iter().rev() {
        let started = Instant::now();
        if process::stop_pid(*pid, Duration::from_secs(15)) {
            println!("stopped {name} (pid {pid}) in {:.1?}", started.elapsed());
        } else {
            println!("{name} (pid {pid}) was not running");
        }
    }
    fs::remove_dir_all(detached_dir())
        .with_context(|| format!("removing {}", detached_dir().display()))?;
    Ok(())
}

fn status() -> anyhow::Result<()> {
    let pids = running_pids()?;
    if pids.is_empty() {
        println!("no detached cluster");
        return Ok(());
    }
    for (name, pid) in &pids {
        let state = if process::is_alive(*pid) { "running" } else { "NOT running" };
        println!("{name}: pid {pid} {state}");
    }
    let kubeconfig = detached_dir().join("kubeconfig");
    match cluster::readyz_blocking(&kubeconfig) {
        Ok(answer) => println!("/readyz: {}", answer.trim()),
        Err(err) => println!("/readyz: {err:#}"),
    }
    println!("kubeconfig: {}", kubeconfig.display());
    Ok(())
}

/// Run `cargo xtask e2e`: prepare the machine, then run the real-cluster tests.
pub fn e2e(args: E2eArgs) -> anyhow::Result<()> {
    let binaries = provision::prepare_e2e()?;
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command
        .current_dir(paths::workspace_root())
        .env("SLUICE_KUBE_APISERVER", &binaries.apiserver)
        .env("SLUICE_KUBE_CONTROLLER_MANAGER", &binaries.controller_manager)
        .env("SLUICE_ETCD", &binaries.etcd)
        .env("SLUICE_MOTO_SERVER", paths::moto_server())
        .args(["test", "--no-fail-fast", "-p", "sluice-e2e"]);
    command.args(&args.rest);
    provision::run_logged(&mut command).context("the end-to-end tests failed")
}
