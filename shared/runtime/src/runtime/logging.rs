//! Logging setup: JSON or console lines through `tracing-subscriber`, at `--log-level`.

use tracing_subscriber::EnvFilter;

use super::flags::{LogEncoding, LogLevel};
use crate::error::Error;

/// The filter directives for `level`: our crates at `level`, chatty HTTP internals capped.
pub fn filter_directives(level: LogLevel) -> String {
    let level = match level {
        LogLevel::Error => "error",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    // hyper, h2, tower and rustls log every frame at debug; they would drown the controller.
    let cap = if level == "trace" { "debug" } else { "info" };
    format!("{level},hyper={cap},hyper_util={cap},h2={cap},tower={cap},rustls={cap},reqwest={cap}")
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
///
/// # Errors
/// When a subscriber is already installed or `RUST_LOG` is invalid.
pub fn init_logging(level: LogLevel, encoding: LogEncoding) -> Result<(), Error> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(&directives)
            .map_err(|error| Error::Logging(format!("RUST_LOG {directives:?}: {error}")))?,
        _ => EnvFilter::new(filter_directives(level)),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match encoding {
        LogEncoding::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogEncoding::Console => builder.try_init(),
    };
    result.map_err(|error| Error::Logging(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse_for_every_level() {
        for level in [LogLevel::Error, LogLevel::Info, LogLevel::Debug, LogLevel::Trace] {
            let directives = filter_directives(level);
            EnvFilter::try_new(&directives).unwrap();
        }
        assert!(filter_directives(LogLevel::Debug).starts_with("debug,hyper=info"));
    }
}
