//! The notification-controller binary: flags, logging, client, probes, metrics, leader election, servers, watches.

use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use notification_controller::{
    ABOUT, Addresses, CONTROLLER_NAME, DEFAULT_CONCURRENT, ServerConfig,
};
use sluice_runtime::runtime::{RuntimeArgs, init_logging, listen_address};

// Command-line flags of notification-controller. `--events-addr` is the address the event
// server listens on here (Flux's meaning for this binary), not where events are forwarded:
// this controller does not post events to itself.
#[derive(Parser, Debug)]
#[command(name = "notification-controller", version, about = ABOUT, long_about = None)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeArgs,

    /// The address the webhook receiver binds to.
    #[arg(long = "receiverAddr", alias = "receiver-addr", default_value = ":9292")]
    receiver_addr: String,

    /// Identical events are sent at most once per this interval.
    #[arg(long, default_value = "5m", value_parser = duration)]
    rate_limit_interval: Duration,
}

fn duration(raw: &str) -> Result<Duration, String> {
    sluice_runtime::object::parse_go_duration(raw)
}

/// The clap command with this binary's defaults for the shared flags.
fn command() -> clap::Command {
    Cli::command()
        .mut_arg("concurrent", |arg| arg.default_value(DEFAULT_CONCURRENT))
        .mut_arg("events_addr", |arg| {
            arg.default_value(":9090").help("The address the event server binds to")
        })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // kube and reqwest build TLS configs from the process-wide provider; install ring first.
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    let mut matches = command().get_matches();
    let mut cli = Cli::from_arg_matches_mut(&mut matches)
        .unwrap_or_else(|error| error.format(&mut command()).exit());
    init_logging(&cli.runtime)?;
    let addresses = Addresses {
        events: notification_controller::events_listen_address(&cli.runtime.events_addr),
        receiver: listen_address(&cli.receiver_addr),
    };
    // The flag names this server's listen address; the runtime must not forward to it.
    cli.runtime.events_addr.clear();
    let config =
        ServerConfig { rate_limit_interval: cli.rate_limit_interval, ..Default::default() };
    let runtime = sluice_runtime::Runtime::start(CONTROLLER_NAME, cli.runtime).await?;
    notification_controller::run(runtime, addresses, config).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut matches = command()
            .try_get_matches_from(
                std::iter::once("notification-controller").chain(args.iter().copied()),
            )
            .unwrap();
        Cli::from_arg_matches_mut(&mut matches).unwrap()
    }

    #[test]
    fn flux_defaults_and_names() {
        let cli = parse(&[]);
        assert_eq!(cli.runtime.events_addr, ":9090");
        assert_eq!(cli.receiver_addr, ":9292");
        assert_eq!(cli.rate_limit_interval, Duration::from_secs(300));
        assert_eq!(cli.runtime.concurrent, 4);
        let cli = parse(&[
            "--events-addr=http://localhost:9090/",
            "--receiverAddr=:9393",
            "--rate-limit-interval=1m",
        ]);
        assert_eq!(
            notification_controller::events_listen_address(&cli.runtime.events_addr).as_deref(),
            Some("localhost:9090")
        );
        assert_eq!(cli.receiver_addr, ":9393");
        assert_eq!(cli.rate_limit_interval, Duration::from_secs(60));
        assert_eq!(parse(&["--receiver-addr=:1"]).receiver_addr, ":1");
    }
}
