//! The source-controller binary: flags, logging, client, probes, metrics, leader election, watches.

use clap::Parser;
use sluice_runtime::runtime::{RuntimeArgs, init_logging, parse_args};
use source_controller::{ABOUT, CONTROLLER_NAME, DEFAULT_CONCURRENT};

/// Command-line flags of source-controller.
#[derive(Parser, Debug)]
#[command(name = "source-controller", version, about = ABOUT)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    storage: source_controller::StorageArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // kube and reqwest build TLS configs from the process-wide provider; install ring first.
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let cli: Cli = parse_args(DEFAULT_CONCURRENT);
    init_logging(&cli.runtime)?;
    let runtime = sluice_runtime::Runtime::start(CONTROLLER_NAME, cli.runtime).await?;
    source_controller::run(runtime, cli.storage).await?;
    Ok(())
}
