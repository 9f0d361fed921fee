//! `sluice tree`, `trace`, `events` and `logs`: finding out what sluice manages and why.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DynamicObject, ListParams, LogParams};
use serde_json::Value;
use sluice_api::{helm, kustomize};
use sluice_ssa::ObjectId;

use crate::client::KubeFlags;
use crate::kinds;

/// `sluice tree …`
#[derive(Debug, Args)]
pub struct TreeArgs {
    #[command(subcommand)]
    pub what: TreeWhat,
}

/// What to draw.
#[derive(Debug, Subcommand)]
pub enum TreeWhat {
    /// The objects a Kustomization applied (status.inventory), nested Kustomizations expanded.
    #[command(visible_alias = "ks")]
    Kustomization {
        /// Name of the Kustomization.
        name: String,
        /// Show only sluice's own objects (Kustomizations, HelmReleases, sources).
        #[arg(long)]
        compact: bool,
    },
}

fn is_toolkit(group: &str) -> bool {
    group.ends_with(".toolkit.fluxcd.io")
}

/// Draws `root` and its inventory as a tree, one line per object.
async fn tree_lines(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    compact: bool,
    prefix: &str,
    out: &mut String,
    seen: &mut BTreeSet<(String, String)>,
) -> anyhow::Result<()> {
    if !seen.insert((namespace.to_string(), name.to_string())) {
        return Ok(()); // a Kustomization listing itself (flux-system applies its own sync)
    }
    let api = kinds::api(client, &kinds::kustomization(), Some(namespace));
    let Some(ks) = api.get_opt(name).await? else { return Ok(()) };
    let entries: Vec<ObjectId> = ks.data["status"]["inventory"]["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            serde_json::from_value::<kustomize::ResourceRef>(e.clone())
                .ok()
                .and_then(|r| ObjectId::from_inventory(&r))
        })
        .filter(|id| !compact || is_toolkit(&id.group))
        .collect();
    for (index, id) in entries.iter().enumerate() {
        let last = index + 1 == entries.len();
        out.push_str(&format!("{prefix}{}{id}\n", if last { "└── " } else { "├── " }));
        let nested = id.kind == "Kustomization" && id.group == kustomize::GROUP;
        if nested && !(id.namespace == namespace && id.name == name) {
            let child_prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
            Box::pin(tree_lines(
                client,
                &id.namespace,
                &id.name,
                compact,
                &child_prefix,
                out,
                seen,
            ))
            .await?;
        }
    }
    Ok(())
}

/// Run `sluice tree`.
pub async fn tree(args: TreeArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let TreeWhat::Kustomization { name, compact } = args.what;
    let client = flags.client().await?;
    let api = kinds::api(&client, &kinds::kustomization(), Some(&flags.namespace));
    if api.get_opt(&name).await?.is_none() {
        bail!("Kustomization {}/{name} not found", flags.namespace);
    }
    let mut out = format!("Kustomization/{}/{name}\n", flags.namespace);
    let mut seen = BTreeSet::new();
    tree_lines(&client, &flags.namespace, &name, compact, "", &mut out, &mut seen).await?;
    crate::output::write_stdout(&out)
}

/// `sluice trace <kind> <name>`
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The object: `<kind> <name>` or `<kind>/<name>` (e.g. `deployment podinfo`).
    #[arg(required = true, num_args = 1..=2)]
    pub words: Vec<String>,
    /// The object's API version (e.g. apps/v1), when the kind name is ambiguous.
    #[arg(long)]
    pub api_version: Option<String>,
}

/// Resolves a kind as typed by a user (`deployment`, `Deployment`, `deployments`, `cm`-less).
async fn resolve_any_kind(
    client: &kube::Client,
    kind: &str,
    api_version: Option<&str>,
) -> anyhow::Result<(kube::discovery::ApiResource, kube::discovery::ApiCapabilities)> {
    let discovery =
        kube::Discovery::new(client.clone()).run().await.context("discovering the API")?;
    let lower = kind.to_lowercase();
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            let matches = resource.kind.to_lowercase() == lower || resource.plural == lower;
            let version_ok = api_version.is_none_or(|v| v == resource.api_version);
            if matches && version_ok {
                found.push((resource, caps));
            }
        }
    }
    // Core and apps kinds win over a CRD of the same kind name, as kubectl does.
    found.sort_by_key(|(r, _)| !(r.group.is_empty() || r.group == "apps"));
    found.into_iter().next().with_context(|| {
        format!("unknown kind {kind:?}: use a kind the cluster serves, e.g. deployment, configmap")
    })
}

fn condition_line(obj: &Value) -> (String, String) {
    match crate::cluster::ready(obj) {
        Some((status, _, message)) if status == "True" => {
            let when = obj["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .and_then(|c| c["lastTransitionTime"].as_str())
                .unwrap_or("unknown time")
                .to_string();
            (format!("Last reconciled at {when}"), message)
        }
        Some((_, reason, message)) => (format!("Reconciliation failed ({reason})"), message),
        None => ("Unknown".into(), "waiting to be reconciled".into()),
    }
}

/// `Key:` padded to one width across all blocks, as flux trace aligns them; empty values are
/// left out.
fn block(rows: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (key, value) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        out.push_str(&format!("{:<15} {value}\n", format!("{key}:")));
    }
    out
}

/// Run `sluice trace`.
pub async fn trace(args: TraceArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let (kind, name) = match args.words.as_slice() {
        [one] => one.split_once('/').context("give `<kind> <name>` or `<kind>/<name>`")?,
        [kind, name] => (kind.as_str(), name.as_str()),
        _ => bail!("give `<kind> <name>` or `<kind>/<name>`"),
    };
    let client = flags.client().await?;
    let (resource, caps) = resolve_any_kind(&client, kind, args.api_version.as_deref()).await?;
    let namespaced = matches!(caps.scope, kube::discovery::Scope::Namespaced);
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), &flags.namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let obj = api.get_opt(name).await?.with_context(|| {
        format!("{} {name} not found in namespace {}", resource.kind, flags.namespace)
    })?;
    let obj = serde_json::to_value(obj)?;
    let labels = &obj["metadata"]["labels"];
    let (owner_kind, owner_name, owner_ns) = if let Some(n) = labels[kustomize::NAME_LABEL].as_str()
    {
        ("Kustomization", n, labels[kustomize::NAMESPACE_LABEL].as_str().unwrap_or_default())
    } else if let Some(n) = labels[helm::NAME_LABEL].as_str() {
        ("HelmRelease", n, labels[helm::NAMESPACE_LABEL].as_str().unwrap_or_default())
    } else {
        bail!(
            "{}/{name} is not managed by sluice: it has no {} or {} label",
            resource.kind,
            kustomize::NAME_LABEL,
            helm::NAME_LABEL
        );
    };
    let mut out = String::from("\n");
    out.push_str(&block(&[
        ("Object", format!("{}/{name}", resource.kind)),
        ("Namespace", if namespaced { flags.namespace.clone() } else { String::new() }),
        ("Status", "Managed by Flux".into()),
    ]));
    let owner_kind_def = kinds::by_kind_name(owner_kind).context("owner kind")?;
    let owner_api = kinds::api(&client, &owner_kind_def, Some(owner_ns));
    let owner = owner_api
        .get_opt(owner_name)
        .await?
        .with_context(|| format!("{owner_kind} {owner_ns}/{owner_name} (the owner) not found"))?;
    let owner = serde_json::to_value(owner)?;
    let (status, message) = condition_line(&owner);
    out.push_str("---\n");
    let spec = &owner["spec"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut rows = vec![
        (owner_kind, owner_name.to_string()),
        ("Namespace", owner_ns.to_string()),
        ("Target", text(&spec["targetNamespace"])),
    ];
    if owner_kind == "Kustomization" {
        rows.push(("Path", text(&spec["path"])));
        rows.push(("Revision", text(&owner["status"]["lastAppliedRevision"])));
    } else {
        rows.push(("Chart", text(&spec["chart"]["spec"]["chart"])));
        rows.push(("Version", text(&owner["status"]["history"][0]["chartVersion"])));
    }
    rows.push(("Status", status));
    rows.push(("Message", message));
    out.push_str(&block(&rows));

    let source_ref = if owner_kind == "Kustomization" {
        &spec["sourceRef"]
    } else if spec["chartRef"].is_object() {
        &spec["chartRef"]
    } else {
        &spec["chart"]["spec"]["sourceRef"]
    };
    if let (Some(source_kind), Some(source_name)) =
        (source_ref["kind"].as_str(), source_ref["name"].as_str())
    {
        let source_ns = source_ref["namespace"].as_str().unwrap_or(owner_ns);
        if let Some(source_def) = kinds::by_kind_name(source_kind) {
            let source_api = kinds::api(&client, &source_def, Some(source_ns));
            out.push_str("---\n");
            match source_api.get_opt(source_name).await? {
                Some(source) => {
                    let source = serde_json::to_value(source)?;
                    let (status, message) = condition_line(&source);
                    let reference = &source["spec"]["ref"];
                    let mut rows = vec![
                        (source_kind, source_name.to_string()),
                        ("Namespace", source_ns.to_string()),
                        ("URL", text(&source["spec"]["url"])),
                    ];
                    for key in ["branch", "tag", "semver", "commit"] {
                        let label = match key {
                            "branch" => "Branch",
                            "tag" => "Tag",
                            "semver" => "Semver",
                            _ => "Commit",
                        };
                        rows.push((label, text(&reference[key])));
                    }
                    rows.push(("Revision", text(&source["status"]["artifact"]["revision"])));
                    rows.push(("Status", status));
                    rows.push(("Message", message));
                    out.push_str(&block(&rows));
                }
                None => out.push_str(&block(&[
                    (source_kind, source_name.to_string()),
                    ("Namespace", source_ns.to_string()),
                    ("Status", "Not found".into()),
                ])),
            }
        }
    }
    crate::output::write_stdout(&out)
}

/// `sluice events`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only the events of this object: `Kind/name` (e.g. `Kustomization/apps`).
    #[arg(long = "for")]
    pub for_object: Option<String>,
    /// Events of all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only events of these types (Normal, Warning).
    #[arg(long)]
    pub types: Vec<String>,
}

fn age(timestamp: Option<jiff::Timestamp>) -> String {
    let Some(timestamp) = timestamp else { return "<unknown>".into() };
    let secs = (jiff::Timestamp::now().as_second() - timestamp.as_second()).max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// Run `sluice events`.
pub async fn events(args: EventsArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let client = flags.client().await?;
    let api: Api<Event> = if args.all_namespaces {
        Api::all(client)
    } else {
        Api::namespaced(client, &flags.namespace)
    };
    let filter = args
        .for_object
        .as_deref()
        .map(|f| {
            f.split_once('/')
                .map(|(k, n)| (k.to_lowercase(), n.to_string()))
                .with_context(|| format!("--for {f:?}: use Kind/name, e.g. Kustomization/apps"))
        })
        .transpose()?;
    let mut events: Vec<Event> = api
        .list(&ListParams::default())
        .await
        .context("listing events")?
        .items
        .into_iter()
        .filter(|e| {
            filter.as_ref().is_none_or(|(kind, name)| {
                e.involved_object.kind.as_deref().map(str::to_lowercase).as_deref()
                    == Some(kind.as_str())
                    && e.involved_object.name.as_deref() == Some(name.as_str())
            })
        })
        .filter(|e| {
            args.types.is_empty()
                || args.types.iter().any(|t| e.type_.as_deref() == Some(t.as_str()))
        })
        .collect();
    let time = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.first_timestamp.as_ref().map(|t| t.0))
    };
    events.sort_by_key(time);
    let mut rows = Vec::new();
    let mut header = Vec::new();
    if args.all_namespaces {
        header.push("NAMESPACE".to_string());
    }
    header.extend(["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"].map(String::from));
    rows.push(header);
    for event in &events {
        let mut row = Vec::new();
        if args.all_namespaces {
            row.push(event.metadata.namespace.clone().unwrap_or_default());
        }
        row.push(age(time(event)));
        row.push(event.type_.clone().unwrap_or_default());
        row.push(event.reason.clone().unwrap_or_default());
        row.push(format!(
            "{}/{}",
            event.involved_object.kind.clone().unwrap_or_default(),
            event.involved_object.name.clone().unwrap_or_default()
        ));
        row.push(event.message.clone().unwrap_or_default().replace('\n', " "));
        rows.push(row);
    }
    if events.is_empty() {
        crate::say!("no events found");
        return Ok(());
    }
    crate::output::write_stdout(&crate::cmd::objects::table(&rows))
}

/// `sluice logs`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only lines about objects of this kind (e.g. Kustomization).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only lines about objects with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only lines of this level (debug, info, error).
    #[arg(long)]
    pub level: Option<String>,
    /// Lines per controller from the end of its log.
    #[arg(long)]
    pub tail: Option<i64>,
    /// Namespace the controllers run in.
    #[arg(long, default_value = "flux-system")]
    pub flux_namespace: String,
}

/// Whether a JSON log line passes the filters (non-JSON lines pass when no filter is set).
pub fn log_line_matches(line: &str, args: &LogsArgs) -> bool {
    let filters = args.kind.is_some() || args.name.is_some() || args.level.is_some();
    let Ok(value) = serde_json::from_str::<Value>(line) else { return !filters };
    let field = |keys: &[&str]| -> Option<String> {
        keys.iter().find_map(|k| {
            let v = keys_lookup(&value, k);
            v.as_str().map(str::to_string)
        })
    };
    if let Some(level) = &args.level
        && field(&["level"]).is_none_or(|l| !l.eq_ignore_ascii_case(level))
    {
        return false;
    }
    if let Some(kind) = &args.kind {
        let text = line.to_lowercase();
        if !text.contains(&kind.to_lowercase()) {
            return false;
        }
    }
    if let Some(name) = &args.name
        && field(&["name", "fields.name", "span.name"]).as_deref() != Some(name.as_str())
        && !line.contains(&format!("\"{name}\""))
    {
        return false;
    }
    true
}

fn keys_lookup<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |v, k| &v[k])
}

/// Run `sluice logs`.
pub async fn logs(args: LogsArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let client = flags.client().await?;
    let pods: Api<Pod> = Api::namespaced(client, &args.flux_namespace);
    let selector = format!("app in ({})", crate::cmd::bootstrap::COMPONENTS.join(","));
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    let running: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect();
    if running.is_empty() {
        bail!(
            "no running controller Pods in namespace {}: the controllers do not run in this cluster (for example they run as local processes next to it); read their logs where they run",
            args.flux_namespace
        );
    }
    let mut out = String::new();
    for pod in running {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let params = LogParams {
            container: Some("manager".into()),
            tail_lines: args.tail,
            ..Default::default()
        };
        let text =
            pods.logs(&name, &params).await.with_context(|| format!("reading logs of {name}"))?;
        for line in text.lines().filter(|l| log_line_matches(l, &args)) {
            out.push_str(&format!("{name}: {line}\n"));
        }
    }
    crate::output::write_stdout(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_align_like_flux_trace() {
        let text = block(&[
            ("Kustomization", "apps".into()),
            ("Namespace", "flux-system".into()),
            ("Target", String::new()),
        ]);
        assert_eq!(text, "Kustomization:  apps\nNamespace:      flux-system\n");
    }

    #[test]
    fn log_filters() {
        let args = |level: Option<&str>, kind: Option<&str>| LogsArgs {
            kind: kind.map(String::from),
            name: None,
            level: level.map(String::from),
            tail: None,
            flux_namespace: "flux-system".into(),
        };
        let line =
            r#"{"level":"ERROR","msg":"reconcile failed","kind":"Kustomization","name":"apps"}"#;
        assert!(log_line_matches(line, &args(Some("error"), None)));
        assert!(!log_line_matches(line, &args(Some("info"), None)));
        assert!(log_line_matches(line, &args(None, Some("kustomization"))));
        assert!(!log_line_matches(line, &args(None, Some("HelmRelease"))));
        assert!(log_line_matches("plain text", &args(None, None)));
    }

    #[test]
    fn ages() {
        let now = jiff::Timestamp::now();
        assert_eq!(age(Some(now)), "0s");
        assert_eq!(age(now.checked_sub(jiff::SignedDuration::from_secs(300)).ok()), "5m");
        assert_eq!(age(None), "<unknown>");
    }
}
