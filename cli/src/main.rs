//! The `sluice` binary: parses the process arguments and runs [`sluice_cli::run`].

use clap::Parser;

/// mimalloc: rendering (Helm templates, kustomize) makes many small short-lived allocations.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = sluice_cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            sluice_cli::output::progress(&format!("✗ starting the async runtime: {err}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    std::process::ExitCode::from(runtime.block_on(sluice_cli::run(cli)))
}
