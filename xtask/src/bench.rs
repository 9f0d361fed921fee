//! `cargo xtask bench kustomize|helm`: sluice's engines against the reference tools on the same
//! generated inputs, side by side, reporting wall time and peak memory ratios.
//!
//! Inputs come from `../shared/bench` (deterministic generators). The reference for kustomize is
//! `kubectl kustomize` (kustomize v5.5.0); for Helm, the Helm SDK v4.2.3 through PyPI
//! `helm-python-sdk` (`bench_helm.py once`), installed in a venv under `~/.cache/sluice`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

mod git;

/// Which engine to benchmark.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Engine {
    /// `sluice kustomize build` against `kubectl kustomize`.
    Kustomize,
    /// `sluice helm template` against the Helm SDK.
    Helm,
    /// A GitRepository artifact (reconcile core) against `git clone --depth 1` + `tar czf`.
    Git,
    /// Time to production of N app packages on the local real cluster (`--n N`), against the
    /// plain server-side-apply floor.
    Scale,
}

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The engine.
    pub engine: Engine,
    /// Size of the generated input (kustomize: resources; helm: templates; scale: app packages).
    #[arg(long, alias = "n")]
    pub size: Option<u32>,
    /// Runs of sluice (the best is kept).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// scale: which half to run (GitRepositories + Kustomizations, HelmReleases, or both).
    #[arg(long, value_enum, default_value = "both")]
    pub half: crate::scale::Half,
}

struct Measured {
    seconds: f64,
    peak_kib: u64,
    stdout: Vec<u8>,
}

/// Runs `command` under GNU time and returns wall seconds, peak RSS and stdout.
fn measure(command: &mut Command) -> anyhow::Result<Measured> {
    let report = tempfile_path("time");
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%e %M").arg("-o").arg(&report).arg(&program).args(&args);
    if let Some(dir) = command.get_current_dir() {
        timed.current_dir(dir);
    }
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            timed.env(key, value);
        }
    }
    eprintln!(
        "+ {} {}",
        program.to_string_lossy(),
        args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    let output = timed.output().context("running /usr/bin/time (apt-get install time)")?;
    if !output.status.success() {
        bail!("{} failed: {}", program.to_string_lossy(), String::from_utf8_lossy(&output.stderr));
    }
    let text = std::fs::read_to_string(&report)?;
    let _ = std::fs::remove_file(&report);
    let mut fields = text.split_whitespace().rev().take(2).collect::<Vec<_>>();
    fields.reverse();
    let seconds: f64 = fields.first().context("time report")?.parse()?;
    let peak_kib: u64 = fields.get(1).context("time report")?.parse()?;
    Ok(Measured { seconds, peak_kib, stdout: output.stdout })
}

fn tempfile_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sluice-bench-{prefix}-{}", std::process::id()))
}

fn best_of(runs: u32, mut make: impl FnMut() -> Command) -> anyhow::Result<Measured> {
    let mut best: Option<Measured> = None;
    for _ in 0..runs.max(1) {
        let m = measure(&mut make())?;
        if best.as_ref().is_none_or(|b| m.seconds < b.seconds) {
            best = Some(m);
        }
    }
    best.context("no run")
}

fn report(name: &str, reference: &str, ours: &Measured, theirs: &Measured) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("| tool | wall | peak memory |");
    println!("|---|---|---|");
    println!("| sluice {name} | {:.2} s | {:.1} MiB |", ours.seconds, mib(ours.peak_kib));
    println!("| {reference} | {:.2} s | {:.1} MiB |", theirs.seconds, mib(theirs.peak_kib));
    println!(
        "speed: {:.1}x faster; memory: {:.2} of the reference; output identical: {}",
        theirs.seconds / ours.seconds.max(0.001),
        ours.peak_kib as f64 / theirs.peak_kib.max(1) as f64,
        ours.stdout == theirs.stdout
    );
}

/// Run `cargo xtask bench`.
pub fn run(args: BenchArgs, root: &Path) -> anyhow::Result<()> {
    let bench = root.join("../shared/bench");
    if !bench.is_dir() {
        bail!(
            "{} not found: the benchmark generators live in the shared reference material",
            bench.display()
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let work = tempfile_path("input");
    let _ = std::fs::remove_dir_all(&work);
    match args.engine {
        Engine::Git => {
            return git::run(root, &bench, &cargo, &target, args.size, args.runs);
        }
        Engine::Scale => {
            let n = args.size.unwrap_or(100) as usize;
            return crate::scale::run(crate::scale::ScaleArgs { n, half: args.half }, root);
        }
        Engine::Kustomize => {
            let size = args.size.unwrap_or(1000).to_string();
            crate::tasks::run_cmd(
                root,
                "python3",
                &[
                    &bench.join("gen_kustomize.py").to_string_lossy(),
                    &work.to_string_lossy(),
                    "--resources",
                    &size,
                ],
            )?;
            crate::tasks::run_cmd(
                root,
                &cargo,
                &["build", "--release", "-p", "sluice-kustomize", "--example", "kustomize_build"],
            )?;
            let entry = work.join("overlays/prod");
            let binary = target.join("release/examples/kustomize_build");
            let ours = best_of(args.runs, || {
                let mut c = Command::new(&binary);
                c.arg(&entry);
                c
            })?;
            let theirs = measure(Command::new("kubectl").arg("kustomize").arg(&entry))?;
            println!("kustomize build of {size} resources (gen_kustomize.py, overlays/prod):");
            report("kustomize build", "kubectl kustomize (v5.5.0)", &ours, &theirs);
        }
        Engine::Helm => {
            let size = args.size.unwrap_or(200).to_string();
            crate::tasks::run_cmd(
                root,
                "python3",
                &[
                    &bench.join("gen_chart.py").to_string_lossy(),
                    &work.to_string_lossy(),
                    "--templates",
                    &size,
                    "--items",
                    "500",
                ],
            )?;
            crate::tasks::run_cmd(
                root,
                &cargo,
                &["build", "--release", "-p", "sluice-helm", "--example", "template"],
            )?;
            let venv = sluice_e2e::paths::cache_dir().join("venv-helm");
            let python = venv.join("bin/python");
            if !python.is_file() {
                crate::tasks::run_cmd(root, "python3", &["-m", "venv", &venv.to_string_lossy()])?;
                crate::tasks::run_cmd(
                    root,
                    &python.to_string_lossy(),
                    &["-m", "pip", "install", "--quiet", "helm-python-sdk==0.2.2", "pyyaml"],
                )?;
            }
            let binary = target.join("release/examples/template");
            let ours = best_of(args.runs, || {
                let mut c = Command::new(&binary);
                c.arg(&work);
                c
            })?;
            let theirs = measure(
                Command::new(&python).arg(bench.join("bench_helm.py")).arg("once").arg(&work),
            )?;
            println!("helm template of a {size}-template chart (gen_chart.py --items 500):");
            report("helm template", "Helm SDK v4.2.3 (bench_helm.py once)", &ours, &theirs);
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
