//! Helpers shared by the commands that change a cluster: applying objects, waiting for
//! readiness, and Flux's duration format.

use std::time::Duration;

use anyhow::{Context, bail};
use kube::api::{Api, DynamicObject};
use serde_json::Value;
use sluice_ssa::{ApplyOptions, ResourceManager};

/// The field manager the CLI applies with (`flux` uses `flux`).
pub const FIELD_MANAGER: &str = "sluice";

/// Server-side applies `objects` in Flux's stages (CRDs and Namespaces first, waited for).
pub async fn apply_staged(client: &kube::Client, objects: &[Value]) -> anyhow::Result<()> {
    let manager = ResourceManager::new(client.clone(), FIELD_MANAGER, Default::default());
    let options = ApplyOptions { force: false, wait_timeout: Some(Duration::from_secs(120)) };
    let change_set = manager.apply_all_staged(objects, &options).await?;
    for entry in &change_set.entries {
        crate::say!("  {} {}", entry.id, entry.action);
    }
    Ok(())
}

/// The Ready condition of an object: (status, reason, message).
pub fn ready(obj: &Value) -> Option<(String, String, String)> {
    let conditions = obj["status"]["conditions"].as_array()?;
    let ready = conditions.iter().find(|c| c["type"] == "Ready")?;
    let text = |key: &str| ready[key].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

/// Polls `name` until `done` accepts it (the object is Ready and `done` holds); on timeout the
/// error carries the last Ready message.
pub async fn wait_until(
    api: &Api<DynamicObject>,
    name: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last;
    loop {
        match api.get_opt(name).await.with_context(|| format!("getting {name}"))? {
            Some(obj) => {
                let value = serde_json::to_value(&obj)?;
                let generation = value["metadata"]["generation"].as_i64();
                let observed = value["status"]["observedGeneration"].as_i64();
                match ready(&value) {
                    Some((status, _, _)) if status == "True" && generation == observed => {
                        if done(&value) {
                            return Ok(value);
                        }
                        last = "waiting for the expected revision".into();
                    }
                    Some((_, reason, message)) => last = format!("{reason}: {message}"),
                    None => last = "waiting to be reconciled".into(),
                }
            }
            None => last = "not found".into(),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {name} to be ready: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Parses `30s`, `5m`, `1h`, `1m30s` (Go durations without fractions).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}: use e.g. 30s, 5m, 1h or 1m30s");
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total = 0u64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "s" | "" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(invalid()),
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration as Go's `time.Duration.String()` does for whole seconds (`1m0s`, `10m0s`).
pub fn go_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_in_go_format() {
        for (input, secs, go) in [
            ("1m", 60, "1m0s"),
            ("10m", 600, "10m0s"),
            ("90s", 90, "1m30s"),
            ("1h", 3600, "1h0m0s"),
            ("1m30s", 90, "1m30s"),
            ("45", 45, "45s"),
        ] {
            let parsed = parse_duration(input).unwrap();
            assert_eq!(parsed, Duration::from_secs(secs), "{input}");
            assert_eq!(go_duration(parsed), go, "{input}");
        }
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn ready_reads_the_condition() {
        let obj = serde_json::json!({"status": {"conditions": [
            {"type": "Reconciling", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "bad"}
        ]}});
        assert_eq!(ready(&obj), Some(("False".into(), "BuildFailed".into(), "bad".into())));
        assert_eq!(ready(&serde_json::json!({})), None);
    }
}
