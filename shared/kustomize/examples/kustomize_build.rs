//! `kustomize_build DIR`: builds a kustomization from disk and prints YAML, like `kubectl kustomize DIR`.
//!
//! A small driver for the conformance runner and benchmarks that does not need the whole CLI.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".to_string());
    let abs = match std::path::absolute(&dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {dir}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = sluice_kustomize::BuildOptions { root: Some(std::path::PathBuf::from("/")) };
    match sluice_kustomize::build_with_options(&sluice_kustomize::DiskFileSystem, &abs, &options) {
        Ok(objects) => {
            let mut out = std::io::stdout().lock();
            if out.write_all(sluice_kustomize::to_yaml(&objects).as_bytes()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
