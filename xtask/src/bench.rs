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
    /// scale: the sources of the Kustomization half (OCIRepositories as in Flux's harness, or
    /// GitRepositories).
    #[arg(long, value_enum, default_value = "oci")]
    pub source: crate::scale::Source,
    /// helm: also time the stages inside one process (`render_loop` example against
    /// `bench_helm.py loop`).
    #[arg(long)]
    pub in_process: bool,
}

struct Measured {
    seconds: f64,
    /// User + system CPU seconds of the process and its children (GNU time, 10 ms steps).
    cpu_seconds: f64,
    peak_kib: u64,
    stdout: Vec<u8>,
}

/// Runs `command` under GNU time and returns wall seconds (measured around the process), CPU
/// seconds, peak RSS and stdout.
fn measure(command: &mut Command) -> anyhow::Result<Measured> {
    let report = tempfile_path("time");
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%e %M %U %S").arg("-o").arg(&report).arg(&program).args(&args);
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
    let started = std::time::Instant::now();
    let output = timed.output().context("running /usr/bin/time (apt-get install time)")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("{} failed: {}", program.to_string_lossy(), String::from_utf8_lossy(&output.stderr));
    }
    let text = std::fs::read_to_string(&report)?;
    let _ = std::fs::remove_file(&report);
    let mut fields = text.split_whitespace().rev().take(4).collect::<Vec<_>>();
    fields.reverse();
    let field = |i: usize| -> anyhow::Result<&str> {
        fields.get(i).copied().with_context(|| format!("GNU time report {text:?}"))
    };
    let peak_kib: u64 = field(1)?.parse()?;
    let cpu_seconds = field(2)?.parse::<f64>()? + field(3)?.parse::<f64>()?;
    Ok(Measured { seconds, cpu_seconds, peak_kib, stdout: output.stdout })
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
            return crate::scale::run(
                crate::scale::ScaleArgs { n, half: args.half, source: args.source },
                root,
            );
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
            run_helm(root, &bench, &cargo, &target, &work, &args)?;
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// `/proc/loadavg`'s 1-minute figure (0 where there is none).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// How our `helm template` output compares with the SDK script's.
///
/// `bench_helm.py once` writes `rel["manifest"]`, which ends in one more newline than what
/// `helm template` prints; that single trailing newline is the only difference allowed.
fn compare_helm_output(ours: &[u8], theirs: &[u8]) -> String {
    if ours == theirs {
        return "identical".to_string();
    }
    if theirs.len() == ours.len() + 1 && theirs.starts_with(ours) && theirs.ends_with(b"\n") {
        return "identical except the one trailing newline bench_helm.py adds (compared without it)"
            .to_string();
    }
    let ours_text = String::from_utf8_lossy(ours);
    let theirs_text = String::from_utf8_lossy(theirs);
    let first_difference = ours_text
        .lines()
        .zip(theirs_text.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| ours_text.lines().count().min(theirs_text.lines().count()));
    format!(
        "DIFFERENT ({} vs {} bytes; first differing line {}: ours {:?}, SDK {:?})",
        ours.len(),
        theirs.len(),
        first_difference + 1,
        ours_text.lines().nth(first_difference).unwrap_or("<end>"),
        theirs_text.lines().nth(first_difference).unwrap_or("<end>")
    )
}

/// `bench helm`: the release `sluice helm template demo CHART -n prod` and the Helm SDK
/// (`bench_helm.py once`) run alternately on the same generated chart, so both see the same
/// machine load; the best wall time of each is kept, with its CPU time.
fn run_helm(
    root: &Path,
    bench: &Path,
    cargo: &str,
    target: &Path,
    work: &Path,
    args: &BenchArgs,
) -> anyhow::Result<()> {
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
        cargo,
        &["build", "--release", "-p", "sluice-cli", "--bin", "sluice"],
    )?;
    if args.in_process {
        crate::tasks::run_cmd(
            root,
            cargo,
            &["build", "--release", "-p", "sluice-helm", "--example", "render_loop"],
        )?;
    }
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
    let sluice = target.join("release/sluice");
    let script = bench.join("bench_helm.py");
    let load_before = load_average();
    let (mut ours, mut theirs): (Option<Measured>, Option<Measured>) = (None, None);
    let keep_best = |best: &mut Option<Measured>, m: Measured| {
        if best.as_ref().is_none_or(|b| m.seconds < b.seconds) {
            *best = Some(m);
        }
    };
    for _ in 0..args.runs.max(1) {
        let m = measure(
            Command::new(&sluice).args(["helm", "template", "demo"]).arg(work).args(["-n", "prod"]),
        )?;
        keep_best(&mut ours, m);
        let m = measure(Command::new(&python).arg(&script).arg("once").arg(work))?;
        keep_best(&mut theirs, m);
    }
    let load_after = load_average();
    let (ours, theirs) = (ours.context("no run")?, theirs.context("no run")?);
    println!(
        "helm template of a {size}-template chart (gen_chart.py --items 500), best of {} alternating runs:",
        args.runs.max(1)
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("| tool | wall | CPU (user+sys) | peak memory |");
    println!("|---|---|---|---|");
    println!(
        "| sluice helm template demo CHART -n prod (release) | {:.3} s | {:.2} s | {:.1} MiB |",
        ours.seconds,
        ours.cpu_seconds,
        mib(ours.peak_kib)
    );
    println!(
        "| Helm SDK v4.2.3 (bench_helm.py once) | {:.3} s | {:.2} s | {:.1} MiB |",
        theirs.seconds,
        theirs.cpu_seconds,
        mib(theirs.peak_kib)
    );
    println!(
        "speed: {:.1}x less wall time, {:.1}x less CPU; memory: {:.2} of the reference",
        theirs.seconds / ours.seconds.max(0.001),
        theirs.cpu_seconds / ours.cpu_seconds.max(0.005),
        ours.peak_kib as f64 / theirs.peak_kib.max(1) as f64
    );
    println!("output: {}", compare_helm_output(&ours.stdout, &theirs.stdout));
    println!(
        "load average (1 min) {load_before:.2} before, {load_after:.2} after, on {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if args.in_process {
        let loop_runs = "10";
        eprintln!("+ render_loop {} --runs {loop_runs}", work.display());
        let ours = Command::new(target.join("release/examples/render_loop"))
            .arg(work)
            .args(["--runs", loop_runs])
            .output()
            .context("running render_loop")?;
        eprintln!("+ bench_helm.py loop {} --runs {loop_runs}", work.display());
        let theirs = Command::new(&python)
            .arg(&script)
            .arg("loop")
            .arg(work)
            .args(["--runs", loop_runs])
            .output()
            .context("running bench_helm.py loop")?;
        if !ours.status.success() || !theirs.status.success() {
            bail!(
                "in-process timing failed: {}{}",
                String::from_utf8_lossy(&ours.stderr),
                String::from_utf8_lossy(&theirs.stderr)
            );
        }
        let report: serde_json::Value =
            serde_json::from_slice(&theirs.stdout).context("bench_helm.py loop output")?;
        println!("in process, {loop_runs} runs each; sluice (render_loop example):");
        print!("{}", String::from_utf8_lossy(&ours.stdout));
        println!("Helm SDK (bench_helm.py loop; install_loaded = render + hooks + sort):");
        for stage in ["load", "render", "install_loaded", "install_path", "native_render"] {
            let s = &report[stage];
            println!(
                "{stage:>14}: min {:8.2} ms  median {:8.2} ms  mean {:8.2} ms  cpu mean {:8.2} ms",
                s["min_ms"].as_f64().unwrap_or(0.0),
                s["median_ms"].as_f64().unwrap_or(0.0),
                s["mean_ms"].as_f64().unwrap_or(0.0),
                s["cpu_mean_ms"].as_f64().unwrap_or(0.0)
            );
        }
        println!("load average (1 min) after the in-process runs: {:.2}", load_average());
    }
    Ok(())
}
