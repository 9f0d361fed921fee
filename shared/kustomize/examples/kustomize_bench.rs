//! `kustomize_bench DIR [RUNS]`: times in-process builds of DIR against one `kubectl kustomize DIR`
//! and prints the speed ratio (tracked number: kubectl time / sluice time, goal >= 10).
//!
//! Generate a tree with `python3 shared/bench/gen_kustomize.py /tmp/kbench --resources 1000` and run
//! `cargo run --release -p sluice-kustomize --example kustomize_bench /tmp/kbench/overlays/prod`.

use std::process::ExitCode;
use std::time::Instant;

use sluice_kustomize::{BuildOptions, DiskFileSystem, build_with_options, to_yaml};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: kustomize_bench DIR [RUNS]");
        return ExitCode::FAILURE;
    };
    let runs: u32 = args.next().and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let abs = match std::path::absolute(&dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {dir}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = BuildOptions { root: Some("/".into()) };
    let mut best = f64::MAX;
    let mut output = String::new();
    for _ in 0..runs {
        let start = Instant::now();
        match build_with_options(&DiskFileSystem, &abs, &options) {
            Ok(objects) => output = to_yaml(&objects),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!("sluice: best of {runs}: {best:.3}s ({} bytes)", output.len());
    let start = Instant::now();
    match std::process::Command::new("kubectl").arg("kustomize").arg(&abs).output() {
        Ok(out) if out.status.success() => {
            let reference = start.elapsed().as_secs_f64();
            let same = out.stdout == output.as_bytes();
            println!("kubectl kustomize: {reference:.3}s, identical output: {same}");
            println!("speedup: {:.1}x", reference / best);
        }
        Ok(out) => {
            println!("kubectl kustomize failed: {}", String::from_utf8_lossy(&out.stderr).trim())
        }
        Err(e) => println!("kubectl not run: {e}"),
    }
    ExitCode::SUCCESS
}
