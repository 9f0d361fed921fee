//! `sluice get`, `reconcile`, `suspend` and `resume`: the everyday commands on sluice's objects.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};

use crate::client::KubeFlags;
use crate::kinds::{self, Kind};

/// `sluice get <kind> [name]`
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The kind (`all`, `source git`, `kustomizations`, `hr`, …) and optionally a name.
    #[arg(required = true, num_args = 1..)]
    pub words: Vec<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `sluice reconcile|suspend|resume <kind> <name>`
#[derive(Debug, Args)]
pub struct ObjectArgs {
    /// The kind (`source git`, `kustomization`, `hr`, …) followed by the object name.
    #[arg(required = true, num_args = 2..)]
    pub words: Vec<String>,
    /// Reconcile the object's source first (Kustomization and HelmRelease).
    #[arg(long)]
    pub with_source: bool,
    /// How long to wait for the reconcile to be handled.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) =
        text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("invalid duration {text:?}"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("invalid duration {text:?}: use s, m or h")),
    }
}

fn resolve_kind(words: &[String]) -> anyhow::Result<(Kind, &[String])> {
    let (kind, used) = kinds::resolve(words).with_context(|| {
        format!(
            "unknown kind {:?}: use e.g. `source git`, `kustomization`, `helmrelease`",
            words.join(" ")
        )
    })?;
    Ok((kind, &words[used..]))
}

pub fn ready_condition(obj: &serde_json::Value) -> (String, String) {
    let conditions = obj["status"]["conditions"].as_array().cloned().unwrap_or_default();
    match conditions.iter().find(|c| c["type"] == "Ready") {
        Some(ready) => (
            ready["status"].as_str().unwrap_or("Unknown").to_string(),
            ready["message"].as_str().unwrap_or_default().to_string(),
        ),
        None => ("Unknown".to_string(), "waiting to be reconciled".to_string()),
    }
}

/// Formats rows as a left-aligned table with three spaces between columns.
pub fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|col| rows.iter().map(|row| row[col].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (col, cell) in row.iter().enumerate() {
            if col + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[col]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn api_for(client: &kube::Client, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &kind.resource),
        None => Api::all_with(client.clone(), &kind.resource),
    }
}

/// Run `sluice get`.
pub async fn get(args: GetArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let client = flags.client().await?;
    let (kinds_to_list, name) = if args.words[0] == "all" {
        (kinds::all(), None)
    } else {
        let (kind, rest) = resolve_kind(&args.words)?;
        (vec![kind], rest.first().cloned())
    };
    let namespace = (!args.all_namespaces).then_some(flags.namespace.as_str());
    let mut printed = false;
    for kind in &kinds_to_list {
        let api = api_for(&client, kind, namespace);
        let objects = match &name {
            Some(name) => vec![
                api.get(name)
                    .await
                    .with_context(|| format!("getting {} {name}", kind.resource.kind))?,
            ],
            None => match api.list(&ListParams::default()).await {
                Ok(list) => list.items,
                // `get all` skips kinds whose CRD is not installed.
                Err(_) if kinds_to_list.len() > 1 => continue,
                Err(err) => {
                    return Err(err).with_context(|| format!("listing {}", kind.resource.plural));
                }
            },
        };
        if objects.is_empty() {
            continue;
        }
        let mut rows = Vec::new();
        let mut header = vec![];
        if args.all_namespaces {
            header.push("NAMESPACE".to_string());
        }
        header.extend(["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"].map(String::from));
        rows.push(header);
        for obj in objects {
            let value = serde_json::to_value(&obj)?;
            let (ready, message) = ready_condition(&value);
            let mut row = Vec::new();
            if args.all_namespaces {
                row.push(obj.metadata.namespace.clone().unwrap_or_default());
            }
            let display_name = if kinds_to_list.len() > 1 {
                format!(
                    "{}/{}",
                    kind.resource.kind.to_lowercase(),
                    obj.metadata.name.clone().unwrap_or_default()
                )
            } else {
                obj.metadata.name.clone().unwrap_or_default()
            };
            row.push(display_name);
            row.push(kinds::revision(kind, &value));
            let suspended = value["spec"]["suspend"].as_bool().unwrap_or(false);
            row.push(if suspended { "True" } else { "False" }.to_string());
            row.push(ready);
            row.push(message);
            rows.push(row);
        }
        let separator = if printed { "\n" } else { "" };
        crate::output::write_stdout(&format!("{separator}{}", table(&rows)))?;
        printed = true;
    }
    if !printed {
        crate::say!(
            "no objects found in {}",
            namespace.map_or("any namespace".to_string(), |ns| format!("namespace {ns}"))
        );
    }
    Ok(())
}

/// A reconcile request token in the format flux uses (RFC 3339 with nanoseconds).
fn request_token() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Annotates `name` with a new reconcile request; returns the request token.
pub async fn request_reconcile(api: &Api<DynamicObject>, name: &str) -> anyhow::Result<String> {
    let token = request_token();
    let patch = serde_json::json!({"metadata": {"annotations": {sluice_api::meta::RECONCILE_REQUEST_ANNOTATION: token}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating {name}"))?;
    Ok(token)
}

async fn wait_handled(
    api: &Api<DynamicObject>,
    name: &str,
    token: &str,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let value = serde_json::to_value(api.get(name).await?)?;
        let handled = value["status"]["lastHandledReconcileAt"].as_str() == Some(token);
        let generation = value["metadata"]["generation"].as_i64();
        let observed = value["status"]["observedGeneration"].as_i64();
        if handled && generation == observed {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {name} to handle the reconcile request");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn reconcile_and_report(
    api: &Api<DynamicObject>,
    kind: &Kind,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    crate::say!("► annotating {} {name} in {} namespace", kind.resource.kind, api_namespace(api));
    let token = request_reconcile(api, name).await?;
    crate::say!("◎ waiting for {} reconciliation", kind.resource.kind);
    let value = wait_handled(api, name, &token, timeout).await?;
    let (ready, message) = ready_condition(&value);
    match ready.as_str() {
        "True" => {
            crate::say!("✔ {} reconciliation completed", kind.resource.kind);
            let revision = kinds::revision(kind, &value);
            if !revision.is_empty() {
                crate::say!("✔ applied revision {revision}");
            }
            Ok(())
        }
        _ => bail!("{} reconciliation failed: {message}", kind.resource.kind),
    }
}

fn api_namespace(api: &Api<DynamicObject>) -> String {
    api.namespace().unwrap_or("all").to_string()
}

/// Run `sluice reconcile`.
pub async fn reconcile(args: ObjectArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let client = flags.client().await?;
    let (kind, rest) = resolve_kind(&args.words)?;
    let name = rest.first().context("missing object name")?;
    let api = api_for(&client, &kind, Some(&flags.namespace));
    if args.with_source {
        let obj = serde_json::to_value(api.get(name).await?)?;
        let source = &obj["spec"]["sourceRef"];
        if let (Some(source_kind), Some(source_name)) =
            (source["kind"].as_str(), source["name"].as_str())
        {
            let source_ns = source["namespace"].as_str().unwrap_or(&flags.namespace);
            let words = match source_kind {
                "GitRepository" => "source git",
                "OCIRepository" => "source oci",
                "Bucket" => "source bucket",
                _ => "",
            };
            if let Some((source_kind, _)) =
                kinds::resolve(&words.split_whitespace().map(String::from).collect::<Vec<_>>())
            {
                let source_api = api_for(&client, &source_kind, Some(source_ns));
                reconcile_and_report(&source_api, &source_kind, source_name, args.timeout).await?;
            }
        }
    }
    reconcile_and_report(&api, &kind, name, args.timeout).await
}

/// Run `sluice suspend` (suspend = true) or `sluice resume` (suspend = false).
pub async fn set_suspend(args: ObjectArgs, flags: &KubeFlags, suspend: bool) -> anyhow::Result<()> {
    let client = flags.client().await?;
    let (kind, rest) = resolve_kind(&args.words)?;
    let name = rest.first().context("missing object name")?;
    let api = api_for(&client, &kind, Some(&flags.namespace));
    let patch = serde_json::json!({"spec": {"suspend": suspend}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("patching {name}"))?;
    if suspend {
        crate::say!("✔ {} {name} suspended", kind.resource.kind);
        Ok(())
    } else {
        crate::say!("✔ {} {name} resumed", kind.resource.kind);
        reconcile_and_report(&api, &kind, name, args.timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["NAME".to_string(), "READY".to_string(), "MESSAGE".to_string()],
            vec!["podinfo".to_string(), "True".to_string(), "stored artifact".to_string()],
        ];
        assert_eq!(table(&rows), "NAME      READY   MESSAGE\npodinfo   True    stored artifact\n");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn request_tokens_are_rfc3339_nanos() {
        let token = request_token();
        assert_eq!(token.len(), "2025-01-01T00:00:00.000000000Z".len(), "{token}");
    }
}
