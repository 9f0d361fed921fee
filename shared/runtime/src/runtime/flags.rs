//! Flux's common controller flags as a clap `Args` struct, flattened into each binary's flags.

use std::time::Duration;

use clap::{ArgAction, Args, Parser, ValueEnum};

use crate::object::parse_go_duration;

/// Log verbosity, as `--log-level` of the Flux controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Informational messages (the default).
    Info,
    /// Debug detail.
    Debug,
    /// Everything, including per-request traces.
    Trace,
}

/// Log format, as `--log-encoding` of the Flux controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogEncoding {
    /// One JSON object per line (the default).
    Json,
    /// Human-readable lines.
    Console,
}

fn duration(raw: &str) -> Result<Duration, String> {
    parse_go_duration(raw)
}

fn percentage(raw: &str) -> Result<u8, String> {
    let value: u8 = raw.parse().map_err(|_| format!("{raw:?} is not a whole number"))?;
    if value >= 100 {
        return Err(format!("{value} must be lower than 100"));
    }
    Ok(value)
}

/// The flags every sluice controller accepts, with Flux's names and defaults.
///
/// Boolean flags accept Go's forms: `--flag`, `--flag=true` and `--flag=false`.
#[derive(Args, Clone, Debug)]
pub struct RuntimeArgs {
    /// The number of concurrent reconciles per kind.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrent: u16,

    /// The interval at which failing dependencies are re-checked.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub requeue_dependency: Duration,

    /// Watch objects in all namespaces; when false, only in the namespace from RUNTIME_NAMESPACE.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub watch_all_namespaces: bool,

    /// Watch only objects matching this label selector (sharding).
    #[arg(long, default_value = "")]
    pub watch_label_selector: String,

    /// Refuse references to objects in other namespaces.
    #[arg(long, default_value_t = false, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub no_cross_namespace_refs: bool,

    /// Service account impersonated when an object sets none (multi-tenancy lockdown).
    #[arg(long, default_value = "")]
    pub default_service_account: String,

    /// The address of notification-controller's events endpoint; events are not posted when empty.
    #[arg(long, default_value = "")]
    pub events_addr: String,

    /// The address the metrics endpoint binds to; `0` disables it.
    #[arg(long, default_value = ":8080")]
    pub metrics_addr: String,

    /// The address the health endpoints (/healthz, /readyz) bind to.
    #[arg(long, default_value = ":9440")]
    pub health_addr: String,

    /// Run a single active instance, elected on a coordination.k8s.io Lease.
    #[arg(long, default_value_t = false, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub enable_leader_election: bool,

    /// How long non-leaders wait before taking over an unrenewed lease.
    #[arg(long, default_value = "35s", value_parser = duration)]
    pub leader_election_lease_duration: Duration,

    /// How long the leader retries renewing before giving leadership up.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub leader_election_renew_deadline: Duration,

    /// How often leader election actions are retried.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub leader_election_retry_period: Duration,

    /// Release the lease on shutdown so a successor takes over at once.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub leader_election_release_on_cancel: bool,

    /// Log verbosity.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogEncoding::Json)]
    pub log_encoding: LogEncoding,

    /// Percentage of random jitter applied to reconcile intervals (0 to 99).
    #[arg(long, default_value = "5", value_parser = percentage)]
    pub interval_jitter_percentage: u8,

    /// The first delay of the exponential failure backoff.
    #[arg(long, default_value = "750ms", value_parser = duration)]
    pub min_retry_delay: Duration,

    /// The longest delay of the exponential failure backoff.
    #[arg(long, default_value = "15m", value_parser = duration)]
    pub max_retry_delay: Duration,
}

impl RuntimeArgs {
    /// The label selector, when one was given.
    pub fn label_selector(&self) -> Option<&str> {
        Some(self.watch_label_selector.as_str()).filter(|s| !s.is_empty())
    }

    /// The events address, when one was given.
    pub fn events_address(&self) -> Option<&str> {
        Some(self.events_addr.as_str()).filter(|s| !s.is_empty())
    }

    /// The default service account, when one was given.
    pub fn default_service_account(&self) -> Option<&str> {
        Some(self.default_service_account.as_str()).filter(|s| !s.is_empty())
    }

    /// Checks the relations between flags that clap cannot express.
    ///
    /// # Errors
    /// A message naming the flag to fix.
    pub fn validate(&self) -> Result<(), crate::error::Error> {
        if self.min_retry_delay > self.max_retry_delay {
            return Err(crate::error::Error::Flag {
                flag: "min-retry-delay",
                message: format!(
                    "{:?} is longer than --max-retry-delay {:?}",
                    self.min_retry_delay, self.max_retry_delay
                ),
            });
        }
        if self.enable_leader_election {
            if self.leader_election_renew_deadline >= self.leader_election_lease_duration {
                return Err(crate::error::Error::Flag {
                    flag: "leader-election-renew-deadline",
                    message: "must be shorter than --leader-election-lease-duration".to_string(),
                });
            }
            if self.leader_election_retry_period.is_zero() {
                return Err(crate::error::Error::Flag {
                    flag: "leader-election-retry-period",
                    message: "must be longer than zero".to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Parses the process arguments into `T`, with `--concurrent` defaulting to `concurrent`.
///
/// Flux gives each controller its own default (source-controller 2, the others 4), while the
/// flag itself lives in the shared [`RuntimeArgs`]. Exits with clap's message on bad flags,
/// and prints help or version when asked.
pub fn parse_args<T: Parser>(concurrent: &'static str) -> T {
    parse_args_from(concurrent, std::env::args_os())
}

/// [`parse_args`] over explicit arguments (the first is the program name).
pub fn parse_args_from<T: Parser, I, A>(concurrent: &'static str, args: I) -> T
where
    I: IntoIterator<Item = A>,
    A: Into<std::ffi::OsString> + Clone,
{
    let command = T::command().mut_arg("concurrent", |arg| arg.default_value(concurrent));
    let mut matches = command.clone().get_matches_from(args);
    T::from_arg_matches_mut(&mut matches)
        .unwrap_or_else(|error| error.format(&mut command.clone()).exit())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    #[derive(Parser, Debug)]
    #[command(name = "test-controller")]
    struct Cli {
        #[command(flatten)]
        runtime: RuntimeArgs,
    }

    fn parse(args: &[&str]) -> Result<RuntimeArgs, clap::Error> {
        let command = Cli::command().mut_arg("concurrent", |arg| arg.default_value("2"));
        let mut matches =
            command.try_get_matches_from(std::iter::once("test").chain(args.iter().copied()))?;
        Ok(Cli::from_arg_matches_mut(&mut matches)?.runtime)
    }

    #[test]
    fn flux_defaults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.concurrent, 2);
        assert_eq!(args.requeue_dependency, Duration::from_secs(30));
        assert!(args.watch_all_namespaces);
        assert_eq!(args.label_selector(), None);
        assert!(!args.no_cross_namespace_refs);
        assert_eq!(args.events_address(), None);
        assert_eq!(args.metrics_addr, ":8080");
        assert_eq!(args.health_addr, ":9440");
        assert!(!args.enable_leader_election);
        assert_eq!(args.leader_election_lease_duration, Duration::from_secs(35));
        assert_eq!(args.leader_election_renew_deadline, Duration::from_secs(30));
        assert_eq!(args.leader_election_retry_period, Duration::from_secs(5));
        assert!(args.leader_election_release_on_cancel);
        assert_eq!(args.log_level, LogLevel::Info);
        assert_eq!(args.log_encoding, LogEncoding::Json);
        assert_eq!(args.interval_jitter_percentage, 5);
        assert_eq!(args.min_retry_delay, Duration::from_millis(750));
        assert_eq!(args.max_retry_delay, Duration::from_secs(900));
        args.validate().unwrap();
    }

    #[test]
    fn go_style_values() {
        let args = parse(&[
            "--concurrent=10",
            "--requeue-dependency=5s",
            "--watch-all-namespaces=false",
            "--watch-label-selector=sharding.fluxcd.io/key=shard1",
            "--no-cross-namespace-refs",
            "--enable-leader-election=true",
            "--log-level=debug",
            "--log-encoding=console",
            "--events-addr=http://notification-controller.flux-system.svc.cluster.local./",
        ])
        .unwrap();
        assert_eq!(args.concurrent, 10);
        assert_eq!(args.requeue_dependency, Duration::from_secs(5));
        assert!(!args.watch_all_namespaces);
        assert_eq!(args.label_selector(), Some("sharding.fluxcd.io/key=shard1"));
        assert!(args.no_cross_namespace_refs);
        assert!(args.enable_leader_election);
        assert_eq!(args.log_level, LogLevel::Debug);
        assert_eq!(args.log_encoding, LogEncoding::Console);
        assert!(args.events_address().is_some());
    }

    #[test]
    fn bad_values_are_rejected_with_the_flag_name() {
        for bad in [
            "--concurrent=0",
            "--requeue-dependency=soon",
            "--interval-jitter-percentage=100",
            "--log-level=verbose",
        ] {
            let error = parse(&[bad]).unwrap_err().to_string();
            let flag = bad.split('=').next().unwrap();
            assert!(error.contains(flag), "{bad}: {error}");
        }
        let args = parse(&["--min-retry-delay=1h", "--max-retry-delay=1m"]).unwrap();
        assert!(args.validate().unwrap_err().to_string().contains("--min-retry-delay"));
        let args =
            parse(&["--enable-leader-election", "--leader-election-renew-deadline=40s"]).unwrap();
        assert!(args.validate().unwrap_err().to_string().contains("renew-deadline"));
    }
}
