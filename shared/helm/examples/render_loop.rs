//! In-process stage timings, comparable to `bench_helm.py loop`:
//! `render_loop CHART [--runs 20] [--warmup 2]` prints min/median/mean milliseconds of
//! `load` (read and parse the chart), `render` (values, engine and install-order sort on a
//! loaded chart) and `install_path` (load + render + output text, what `helm template` does),
//! with the mean process CPU time (all threads) per run.

use std::path::Path;
use std::time::Instant;

use serde_json::{Map, Value as Json};
use sluice_helm::{OutputOptions, TemplateOptions, load_chart, output, render_chart};

/// Process CPU time (all threads) in milliseconds, from `/proc/self/stat` (Linux; 0 elsewhere).
fn cpu_ms() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) * 10.0
}

fn stage(name: &str, runs: usize, warmup: usize, mut f: impl FnMut()) {
    for _ in 0..warmup {
        f();
    }
    let cpu_start = cpu_ms();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let cpu_mean = (cpu_ms() - cpu_start) / runs.max(1) as f64;
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    println!(
        "{name:>14}: min {:8.2} ms  median {:8.2} ms  mean {:8.2} ms  cpu mean {:8.2} ms  ({runs} runs)",
        times.first().copied().unwrap_or(0.0),
        times.get(times.len() / 2).copied().unwrap_or(0.0),
        mean,
        cpu_mean
    );
}

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The allocator of the `sluice` binary, so timings match the CLI.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(chart_path) = args.first().map(Path::new) else {
        eprintln!("usage: render_loop CHART [--runs N] [--warmup N]");
        return std::process::ExitCode::from(2);
    };
    let runs = flag(&args, "--runs", 20);
    let warmup = flag(&args, "--warmup", 2);
    let options = TemplateOptions {
        release_name: "demo".to_string(),
        namespace: "prod".to_string(),
        ..TemplateOptions::default()
    };
    let chart = match load_chart(chart_path) {
        Ok(chart) => chart,
        Err(err) => {
            eprintln!("Error: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let values = Map::<String, Json>::new();
    if let Err(err) = render_chart(chart.clone(), &values, &options) {
        eprintln!("Error: {err}");
        return std::process::ExitCode::FAILURE;
    }
    stage("load", runs, warmup, || {
        std::hint::black_box(load_chart(chart_path).ok());
    });
    stage("render", runs, warmup, || {
        std::hint::black_box(render_chart(chart.clone(), &values, &options).ok());
    });
    stage("install_path", runs, warmup, || {
        let chart = load_chart(chart_path).expect("chart loads");
        let rendered = render_chart(chart, &values, &options).expect("chart renders");
        std::hint::black_box(output::format_output(&rendered.sorted, &OutputOptions::default()));
    });
    std::process::ExitCode::SUCCESS
}
