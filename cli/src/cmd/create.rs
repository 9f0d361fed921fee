//! `sluice export` and `sluice create`: sluice objects as clean YAML, and new ones from flags.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kube::api::ListParams;
use serde_json::{Map, Value, json};

use crate::client::KubeFlags;
use crate::cluster::{self, go_duration, parse_duration};
use crate::kinds;
use crate::say;

/// `sluice export <kind> [name] [--all]`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The kind (`source git`, `kustomization`, `hr`, …) and optionally a name.
    #[arg(required = true, num_args = 1..)]
    pub words: Vec<String>,
    /// Export every object of the kind in the namespace.
    #[arg(long)]
    pub all: bool,
}

/// Annotations the cluster or the CLI adds, left out of exports.
const TRANSIENT_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    sluice_api::meta::RECONCILE_REQUEST_ANNOTATION,
];

/// An object as `flux export` writes it: apiVersion, kind, name, namespace, labels,
/// annotations and spec; no status, managedFields or server fields.
pub fn clean(obj: &Value) -> Value {
    let mut metadata = Map::new();
    for key in ["name", "namespace"] {
        if let Some(v) = obj["metadata"].get(key) {
            metadata.insert(key.into(), v.clone());
        }
    }
    if let Some(labels) = obj["metadata"]["labels"].as_object().filter(|l| !l.is_empty()) {
        metadata.insert("labels".into(), Value::Object(labels.clone()));
    }
    if let Some(annotations) = obj["metadata"]["annotations"].as_object() {
        let kept: Map<String, Value> = annotations
            .iter()
            .filter(|(k, _)| !TRANSIENT_ANNOTATIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !kept.is_empty() {
            metadata.insert("annotations".into(), Value::Object(kept));
        }
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), obj["apiVersion"].clone());
    out.insert("kind".into(), obj["kind"].clone());
    out.insert("metadata".into(), Value::Object(metadata));
    if let Some(spec) = obj.get("spec") {
        out.insert("spec".into(), spec.clone());
    }
    Value::Object(out)
}

/// Objects as a `---` separated YAML stream.
pub fn yaml_stream(objects: &[Value]) -> String {
    objects.iter().map(|o| format!("---\n{}", sluice_kustomize::to_yaml_document(o))).collect()
}

/// Run `sluice export`.
pub async fn export(args: ExportArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let (kind, used) = kinds::resolve(&args.words).with_context(|| {
        format!("unknown kind {:?}: use e.g. `source git`, `kustomization`", args.words.join(" "))
    })?;
    let name = args.words.get(used);
    let client = flags.client().await?;
    let api = kinds::api(&client, &kind, Some(&flags.namespace));
    let objects = match (name, args.all) {
        (Some(name), false) => vec![api.get_opt(name).await?.with_context(|| {
            format!("{} {}/{name} not found", kind.resource.kind, flags.namespace)
        })?],
        (None, true) => api.list(&ListParams::default()).await?.items,
        (Some(_), true) => bail!("give a name or --all, not both"),
        (None, false) => bail!("give the name of the {} to export, or --all", kind.resource.kind),
    };
    let cleaned: Vec<Value> = objects
        .iter()
        .map(|o| serde_json::to_value(o).map(|v| clean(&v)))
        .collect::<Result<_, _>>()?;
    crate::output::write_stdout(&yaml_stream(&cleaned))
}

/// `sluice create …`
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(subcommand)]
    pub what: CreateWhat,
    /// Print the object as YAML instead of applying it.
    #[arg(long, global = true)]
    pub export: bool,
    /// How long to wait for the new object to be Ready.
    #[arg(long, global = true, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// What to create.
#[derive(Debug, Subcommand)]
pub enum CreateWhat {
    /// A source: `create source git|helm|oci NAME …`.
    Source {
        #[command(subcommand)]
        kind: SourceKind,
    },
    /// A Kustomization.
    #[command(visible_alias = "ks")]
    Kustomization(KustomizationFlags),
    /// A HelmRelease.
    #[command(visible_alias = "hr")]
    Helmrelease(HelmReleaseFlags),
}

/// Source kinds `create source` makes.
#[derive(Debug, Subcommand)]
pub enum SourceKind {
    /// A GitRepository.
    Git(GitFlags),
    /// A HelmRepository.
    Helm(HelmRepositoryFlags),
    /// An OCIRepository.
    Oci(OciFlags),
}

/// `create source git`
#[derive(Debug, Args)]
pub struct GitFlags {
    pub name: String,
    /// Repository URL.
    #[arg(long)]
    pub url: String,
    /// Branch to follow.
    #[arg(long)]
    pub branch: Option<String>,
    /// Tag to check out.
    #[arg(long)]
    pub tag: Option<String>,
    /// Semver range of tags.
    #[arg(long = "tag-semver")]
    pub semver: Option<String>,
    /// Commit SHA to check out.
    #[arg(long)]
    pub commit: Option<String>,
    /// Secret with the credentials.
    #[arg(long)]
    pub secret_ref: Option<String>,
    /// Reconcile interval.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Paths to ignore (.gitignore format), one flag per line.
    #[arg(long)]
    pub ignore_paths: Vec<String>,
}

/// `create source helm`
#[derive(Debug, Args)]
pub struct HelmRepositoryFlags {
    pub name: String,
    /// Repository URL (https:// or oci://).
    #[arg(long)]
    pub url: String,
    /// Secret with the credentials.
    #[arg(long)]
    pub secret_ref: Option<String>,
    /// Reconcile interval.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub interval: Duration,
}

/// `create source oci`
#[derive(Debug, Args)]
pub struct OciFlags {
    pub name: String,
    /// Artifact URL (oci://registry/repo).
    #[arg(long)]
    pub url: String,
    /// Tag to pull.
    #[arg(long)]
    pub tag: Option<String>,
    /// Semver range of tags.
    #[arg(long = "tag-semver")]
    pub semver: Option<String>,
    /// Digest to pull.
    #[arg(long)]
    pub digest: Option<String>,
    /// Secret with the registry credentials.
    #[arg(long)]
    pub secret_ref: Option<String>,
    /// Reconcile interval.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub interval: Duration,
}

/// `create kustomization`
#[derive(Debug, Args)]
pub struct KustomizationFlags {
    pub name: String,
    /// Source: `[Kind/]name[.namespace]` (Kind defaults to GitRepository).
    #[arg(long)]
    pub source: String,
    /// Path in the source.
    #[arg(long, default_value = "./")]
    pub path: String,
    /// Delete what left the source.
    #[arg(long)]
    pub prune: bool,
    /// Wait for the applied objects to be healthy.
    #[arg(long)]
    pub wait: bool,
    /// Reconcile interval.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Namespace of the applied objects.
    #[arg(long)]
    pub target_namespace: Option<String>,
    /// Kustomizations to apply first: `name` or `namespace/name`.
    #[arg(long)]
    pub depends_on: Vec<String>,
    /// Service account to impersonate.
    #[arg(long)]
    pub service_account: Option<String>,
}

/// `create helmrelease`
#[derive(Debug, Args)]
pub struct HelmReleaseFlags {
    pub name: String,
    /// Chart source: `Kind/name[.namespace]` (HelmRepository, GitRepository, Bucket).
    #[arg(long)]
    pub source: String,
    /// Chart name (or path in a Git/Bucket source).
    #[arg(long)]
    pub chart: String,
    /// Chart version or semver range.
    #[arg(long)]
    pub chart_version: Option<String>,
    /// Namespace to install into.
    #[arg(long)]
    pub target_namespace: Option<String>,
    /// Release name (default: target namespace-name as Helm controller does).
    #[arg(long)]
    pub release_name: Option<String>,
    /// Values file merged into spec.values.
    #[arg(long)]
    pub values: Option<std::path::PathBuf>,
    /// Reconcile interval.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Create the target namespace.
    #[arg(long)]
    pub create_target_namespace: bool,
}

/// Parses `[Kind/]name[.namespace]`.
pub fn parse_source(
    text: &str,
    default_kind: &str,
) -> anyhow::Result<(String, String, Option<String>)> {
    let (kind, rest) = match text.split_once('/') {
        Some((kind, rest)) => (kind.to_string(), rest),
        None => (default_kind.to_string(), text),
    };
    let known = ["GitRepository", "OCIRepository", "Bucket", "HelmRepository", "HelmChart"];
    let Some(kind) = known.iter().find(|k| k.eq_ignore_ascii_case(&kind)) else {
        bail!("--source {text:?}: unknown kind {kind:?}; use one of {}", known.join(", "));
    };
    let (name, namespace) = match rest.split_once('.') {
        Some((name, ns)) => (name.to_string(), Some(ns.to_string())),
        None => (rest.to_string(), None),
    };
    if name.is_empty() {
        bail!("--source {text:?}: missing name");
    }
    Ok((kind.to_string(), name, namespace))
}

fn object(api_version: &str, kind: &str, name: &str, namespace: &str, spec: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

/// The object `sluice create …` makes.
pub fn build_object(what: &CreateWhat, namespace: &str) -> anyhow::Result<Value> {
    Ok(match what {
        CreateWhat::Source { kind: SourceKind::Git(f) } => {
            let reference = match (&f.branch, &f.tag, &f.semver, &f.commit) {
                (_, _, _, Some(commit)) => json!({"commit": commit}),
                (_, _, Some(semver), None) => json!({"semver": semver}),
                (_, Some(tag), None, None) => json!({"tag": tag}),
                (Some(branch), None, None, None) => json!({"branch": branch}),
                (None, None, None, None) => json!({"branch": "master"}),
            };
            let mut spec =
                json!({"interval": go_duration(f.interval), "ref": reference, "url": f.url});
            if let Some(secret) = &f.secret_ref {
                spec["secretRef"] = json!({"name": secret});
            }
            if !f.ignore_paths.is_empty() {
                spec["ignore"] = Value::String(f.ignore_paths.join("\n"));
            }
            object("source.toolkit.fluxcd.io/v1", "GitRepository", &f.name, namespace, spec)
        }
        CreateWhat::Source { kind: SourceKind::Helm(f) } => {
            let mut spec = json!({"interval": go_duration(f.interval), "url": f.url});
            if f.url.starts_with("oci://") {
                spec["type"] = json!("oci");
            }
            if let Some(secret) = &f.secret_ref {
                spec["secretRef"] = json!({"name": secret});
            }
            object("source.toolkit.fluxcd.io/v1", "HelmRepository", &f.name, namespace, spec)
        }
        CreateWhat::Source { kind: SourceKind::Oci(f) } => {
            if !f.url.starts_with("oci://") {
                bail!("--url {:?}: an OCIRepository URL starts with oci://", f.url);
            }
            let reference = match (&f.digest, &f.semver, &f.tag) {
                (Some(digest), _, _) => json!({"digest": digest}),
                (None, Some(semver), _) => json!({"semver": semver}),
                (None, None, Some(tag)) => json!({"tag": tag}),
                (None, None, None) => json!({"tag": "latest"}),
            };
            let mut spec =
                json!({"interval": go_duration(f.interval), "ref": reference, "url": f.url});
            if let Some(secret) = &f.secret_ref {
                spec["secretRef"] = json!({"name": secret});
            }
            object("source.toolkit.fluxcd.io/v1", "OCIRepository", &f.name, namespace, spec)
        }
        CreateWhat::Kustomization(f) => {
            let (kind, name, source_ns) = parse_source(&f.source, "GitRepository")?;
            let mut source_ref = json!({"kind": kind, "name": name});
            if let Some(ns) = source_ns {
                source_ref["namespace"] = json!(ns);
            }
            let mut spec = json!({"interval": go_duration(f.interval), "path": f.path,
                "prune": f.prune, "sourceRef": source_ref});
            if f.wait {
                spec["wait"] = json!(true);
            }
            if let Some(ns) = &f.target_namespace {
                spec["targetNamespace"] = json!(ns);
            }
            if let Some(sa) = &f.service_account {
                spec["serviceAccountName"] = json!(sa);
            }
            if !f.depends_on.is_empty() {
                let deps: Vec<Value> = f
                    .depends_on
                    .iter()
                    .map(|d| match d.split_once('/') {
                        Some((ns, name)) => json!({"name": name, "namespace": ns}),
                        None => json!({"name": d}),
                    })
                    .collect();
                spec["dependsOn"] = Value::Array(deps);
            }
            object("kustomize.toolkit.fluxcd.io/v1", "Kustomization", &f.name, namespace, spec)
        }
        CreateWhat::Helmrelease(f) => {
            let (kind, name, source_ns) = parse_source(&f.source, "HelmRepository")?;
            let mut source_ref = json!({"kind": kind, "name": name});
            if let Some(ns) = source_ns {
                source_ref["namespace"] = json!(ns);
            }
            let mut chart_spec = json!({"chart": f.chart, "sourceRef": source_ref});
            if let Some(version) = &f.chart_version {
                chart_spec["version"] = json!(version);
            }
            let mut spec =
                json!({"chart": {"spec": chart_spec}, "interval": go_duration(f.interval)});
            if let Some(ns) = &f.target_namespace {
                spec["targetNamespace"] = json!(ns);
            }
            if f.create_target_namespace {
                spec["install"] = json!({"createNamespace": true});
            }
            if let Some(release) = &f.release_name {
                spec["releaseName"] = json!(release);
            }
            if let Some(file) = &f.values {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading --values {}", file.display()))?;
                let docs = sluice_kustomize::parse_documents(&text)
                    .map_err(|err| anyhow::anyhow!("--values {}: {err}", file.display()))?;
                let values = docs.into_iter().next().unwrap_or_else(|| json!({}));
                if !values.is_object() {
                    bail!("--values {}: the values must be a YAML mapping", file.display());
                }
                spec["values"] = values;
            }
            object("helm.toolkit.fluxcd.io/v2", "HelmRelease", &f.name, namespace, spec)
        }
    })
}

/// Run `sluice create`.
pub async fn create(args: CreateArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let obj = build_object(&args.what, &flags.namespace)?;
    if args.export {
        return crate::output::write_stdout(&yaml_stream(&[obj]));
    }
    let kind_name = obj["kind"].as_str().unwrap_or_default().to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let client = flags.client().await?;
    say!("► applying {kind_name} {}/{name}", flags.namespace);
    cluster::apply_staged(&client, std::slice::from_ref(&obj)).await?;
    say!("✔ {kind_name} created");
    say!("◎ waiting for {kind_name} reconciliation");
    let kind = kinds::by_kind_name(&kind_name).context("kind")?;
    let api = kinds::api(&client, &kind, Some(&flags.namespace));
    let value = cluster::wait_until(&api, &name, args.timeout, |_| true).await?;
    say!("✔ {kind_name} {name} is ready");
    let revision = kinds::revision(&kind, &value);
    if !revision.is_empty() {
        say!("✔ applied revision {revision}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn created(args: &[&str]) -> Value {
        let mut argv = vec!["sluice", "create"];
        argv.extend(args);
        let cli = crate::Cli::try_parse_from(argv).unwrap();
        let crate::Command::Create(create) = cli.command else { panic!("not create") };
        assert!(create.export);
        build_object(&create.what, &cli.kube.namespace).unwrap()
    }

    #[test]
    fn creates_what_flux_creates() {
        assert_eq!(
            created(&[
                "source",
                "git",
                "podinfo",
                "--url=https://github.com/stefanprodan/podinfo",
                "--branch=master",
                "--export"
            ]),
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                "metadata": {"name": "podinfo", "namespace": "flux-system"},
                "spec": {"interval": "1m0s", "ref": {"branch": "master"}, "url": "https://github.com/stefanprodan/podinfo"}})
        );
        let ks = created(&[
            "kustomization",
            "apps",
            "--source=GitRepository/podinfo.infra",
            "--path=./kustomize",
            "--prune",
            "--interval=10m",
            "--target-namespace=default",
            "--depends-on=infra",
            "--export",
            "-n",
            "team",
        ]);
        assert_eq!(
            ks["spec"],
            json!({"interval": "10m0s", "path": "./kustomize", "prune": true,
                "sourceRef": {"kind": "GitRepository", "name": "podinfo", "namespace": "infra"},
                "targetNamespace": "default", "dependsOn": [{"name": "infra"}]})
        );
        assert_eq!(ks["metadata"]["namespace"], "team");
        let hr = created(&[
            "hr",
            "podinfo",
            "--source=HelmRepository/podinfo",
            "--chart=podinfo",
            "--chart-version=>=6.0.0",
            "--export",
        ]);
        assert_eq!(hr["apiVersion"], "helm.toolkit.fluxcd.io/v2");
        assert_eq!(
            hr["spec"]["chart"]["spec"],
            json!({"chart": "podinfo", "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}, "version": ">=6.0.0"})
        );
        let helm =
            created(&["source", "helm", "charts", "--url=oci://ghcr.io/org/charts", "--export"]);
        assert_eq!(helm["spec"]["type"], "oci");
        let oci = created(&[
            "source",
            "oci",
            "manifests",
            "--url=oci://ghcr.io/org/manifests",
            "--tag-semver=1.x",
            "--export",
        ]);
        assert_eq!(oci["spec"]["ref"], json!({"semver": "1.x"}));
    }

    #[test]
    fn source_references() {
        assert_eq!(
            parse_source("podinfo", "GitRepository").unwrap(),
            ("GitRepository".into(), "podinfo".into(), None)
        );
        assert_eq!(
            parse_source("ocirepository/app.ns", "GitRepository").unwrap(),
            ("OCIRepository".into(), "app".into(), Some("ns".into()))
        );
        assert!(parse_source("Svn/x", "GitRepository").is_err());
    }

    #[test]
    fn exports_drop_status_and_server_fields() {
        let live = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "a", "namespace": "flux-system", "uid": "x", "resourceVersion": "9",
                "generation": 2, "managedFields": [{}], "finalizers": ["finalizers.fluxcd.io"],
                "annotations": {"reconcile.fluxcd.io/requestedAt": "now"}, "labels": {"team": "a"}},
            "spec": {"url": "u"}, "status": {"conditions": []}});
        assert_eq!(
            yaml_stream(&[clean(&live)]),
            "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  labels:\n    team: a\n  name: a\n  namespace: flux-system\nspec:\n  url: u\n"
        );
    }
}
