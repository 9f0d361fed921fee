//! The image-automation-controller binary: flags, logging, client, probes, metrics, leader election, watches.

use clap::Parser;
use image_automation_controller::{ABOUT, CONTROLLER_NAME, DEFAULT_CONCURRENT, ImageArgs};
use sluice_runtime::runtime::{RuntimeArgs, init_logging, parse_args};

/// Command-line flags of image-automation-controller.
#[derive(Parser, Debug)]
#[command(name = "image-automation-controller", version, about = ABOUT)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    image: ImageArgs,
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
    image_automation_controller::run(runtime, cli.image).await?;
    Ok(())
}
