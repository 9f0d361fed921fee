//! `sluice build kustomization` and `sluice diff kustomization`: render a local directory as the
//! kustomize-controller would for a Kustomization, and compare it with the cluster through a
//! server-side dry-run apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Scope;
use serde_json::Value;
use sluice_api::kustomize::{FIELD_MANAGER, Kustomization, NAME_LABEL, NAMESPACE_LABEL};
use sluice_ssa::ObjectId;

use crate::client::KubeFlags;
use crate::say;

/// `sluice build …` / `sluice diff …`
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(subcommand)]
    pub what: BuildWhat,
}

/// What to build or diff.
#[derive(Debug, Subcommand)]
pub enum BuildWhat {
    /// A Kustomization, from a local directory instead of its source artifact.
    #[command(visible_alias = "ks")]
    Kustomization(KustomizationBuildArgs),
}

/// `sluice build|diff kustomization NAME --path DIR`
#[derive(Debug, Args, Clone)]
pub struct KustomizationBuildArgs {
    /// Name of the Kustomization.
    pub name: String,
    /// Local directory standing for the Kustomization's `spec.path`.
    #[arg(long)]
    pub path: PathBuf,
    /// A local file holding the Kustomization, instead of reading it from the cluster.
    #[arg(long)]
    pub kustomization_file: Option<PathBuf>,
    /// Do not read the cluster: needs --kustomization-file; `substituteFrom` is skipped.
    #[arg(long)]
    pub dry_run: bool,
}

fn load_kustomization(
    args: &KustomizationBuildArgs,
    namespace: &str,
) -> anyhow::Result<Option<Kustomization>> {
    let Some(file) = &args.kustomization_file else { return Ok(None) };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let docs = sluice_kustomize::parse_documents(&text)
        .map_err(|err| anyhow::anyhow!("{}: {err}", file.display()))?;
    let doc = docs
        .into_iter()
        .find(|d| d["kind"] == "Kustomization" && d["metadata"]["name"] == args.name.as_str())
        .with_context(|| {
            format!("{} holds no Kustomization named {}", file.display(), args.name)
        })?;
    let mut ks: Kustomization = serde_json::from_value(doc)
        .with_context(|| format!("{}: invalid Kustomization {}", file.display(), args.name))?;
    if ks.metadata.namespace.is_none() {
        ks.metadata.namespace = Some(namespace.to_string());
    }
    Ok(Some(ks))
}

/// The directory whose tree is copied for the build: the enclosing Git work tree, so bases
/// referenced with `../` resolve as they do in the source artifact.
fn build_root(dir: &Path) -> PathBuf {
    dir.ancestors().find(|a| a.join(".git").exists()).unwrap_or(dir).to_path_buf()
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let file_type = entry.file_type()?;
        let target = to.join(&name);
        if file_type.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if file_type.is_file() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `postBuild` variables as the controller collects them: `substituteFrom` in order, then
/// `substitute` on top. With `offline`, `substituteFrom` is skipped.
async fn substitution_vars(
    client: Option<&kube::Client>,
    ks: &Kustomization,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    let Some(post_build) = &ks.spec.post_build else { return Ok(vars) };
    let namespace = ks.metadata.namespace.clone().unwrap_or_default();
    for reference in post_build.substitute_from.iter().flatten() {
        let Some(client) = client else {
            say!(
                "◎ --dry-run: skipping postBuild.substituteFrom {} {}",
                reference.kind,
                reference.name
            );
            continue;
        };
        let optional = reference.optional.unwrap_or(false);
        let data: Option<BTreeMap<String, String>> = match reference.kind.as_str() {
            "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), &namespace)
                .get_opt(&reference.name)
                .await?
                .map(|cm| cm.data.unwrap_or_default()),
            "Secret" => Api::<Secret>::namespaced(client.clone(), &namespace)
                .get_opt(&reference.name)
                .await?
                .map(|secret| {
                    secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect()
                }),
            other => bail!("postBuild.substituteFrom kind {other:?}: use ConfigMap or Secret"),
        };
        match data {
            Some(data) => vars.extend(data),
            None if optional => {}
            None => bail!(
                "{} '{namespace}/{}' for postBuild.substituteFrom not found",
                reference.kind,
                reference.name
            ),
        }
    }
    vars.extend(post_build.substitute.clone().unwrap_or_default());
    Ok(vars)
}

/// Renders `args.path` for the Kustomization exactly as the controller's build does (generated
/// kustomization.yaml, spec overrides, substitutions, common metadata), plus the owner labels
/// the controller stamps when applying.
pub async fn render(
    args: &KustomizationBuildArgs,
    flags: &KubeFlags,
) -> anyhow::Result<(Kustomization, Vec<Value>, Option<kube::Client>)> {
    let from_file = load_kustomization(args, &flags.namespace)?;
    if args.dry_run && from_file.is_none() {
        bail!(
            "--dry-run needs --kustomization-file: without the cluster the Kustomization must come from a file"
        );
    }
    let client = if args.dry_run { None } else { Some(flags.client().await?) };
    let ks = match (from_file, &client) {
        (Some(ks), _) => ks,
        (None, Some(client)) => Api::<Kustomization>::namespaced(client.clone(), &flags.namespace)
            .get_opt(&args.name)
            .await?
            .with_context(|| {
                format!("Kustomization {}/{} not found", flags.namespace, args.name)
            })?,
        (None, None) => unreachable!("dry-run without a file was refused above"),
    };
    let vars = substitution_vars(client.as_ref(), &ks).await?;
    let dir = std::fs::canonicalize(&args.path)
        .with_context(|| format!("--path {}: no such directory", args.path.display()))?;
    if !dir.is_dir() {
        bail!("--path {} is not a directory", args.path.display());
    }
    let root = build_root(&dir);
    let relative = dir.strip_prefix(&root).unwrap_or(Path::new("")).to_string_lossy().into_owned();
    let work = tempfile::Builder::new().prefix("sluice-build-").tempdir()?;
    copy_tree(&root, work.path())?;
    let mut spec = ks.spec.clone();
    spec.path = Some(format!("./{relative}"));
    let work_path = work.path().to_path_buf();
    let objects = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Value>> {
        use kustomize_controller::build;
        let mut objects = build::build_manifests(&work_path, &spec, "local")?;
        if let Some(post_build) = &spec.post_build {
            let always = post_build.substitute_strategy.as_deref() == Some("Always");
            objects = build::substitute(objects, &vars, always, true)?;
        }
        build::add_common_metadata(&mut objects, &spec);
        Ok(objects)
    })
    .await?
    .map_err(|err| anyhow::anyhow!("{err:#}"))?;
    let name = ks.metadata.name.clone().unwrap_or_default();
    let namespace = ks.metadata.namespace.clone().unwrap_or_default();
    let objects = objects
        .into_iter()
        .map(|mut obj| {
            if let Some(metadata) = obj["metadata"].as_object_mut() {
                let labels =
                    metadata.entry("labels").or_insert_with(|| Value::Object(Default::default()));
                if let Value::Object(labels) = labels {
                    labels.insert(NAME_LABEL.into(), Value::String(name.clone()));
                    labels.insert(NAMESPACE_LABEL.into(), Value::String(namespace.clone()));
                }
            }
            obj
        })
        .collect();
    Ok((ks, objects, client))
}

/// Run `sluice build kustomization`.
pub async fn build(args: BuildArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let BuildWhat::Kustomization(args) = args.what;
    let (_, objects, _) = render(&args, flags).await?;
    crate::output::write_stdout(&sluice_kustomize::to_yaml(&objects))
}

/// Fields that change on every write or that the server owns, left out of diffs.
fn comparable(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(metadata) = obj["metadata"].as_object_mut() {
        for field in ["managedFields", "resourceVersion", "generation", "creationTimestamp", "uid"]
        {
            metadata.remove(field);
        }
        if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            if annotations.is_empty() {
                metadata.remove("annotations");
            }
        }
    }
    if let Some(map) = obj.as_object_mut() {
        map.remove("status");
    }
    obj
}

/// Replaces Secret values with `***` marks so a diff shows which keys changed, never values.
fn mask_secrets(before: &mut Value, after: &mut Value) {
    if after["kind"] != "Secret" {
        return;
    }
    for field in ["data", "stringData"] {
        let old = before[field].as_object().cloned().unwrap_or_default();
        let new = after[field].as_object().cloned().unwrap_or_default();
        for (key, value) in &new {
            let changed = old.get(key) != Some(value);
            after[field][key] = Value::String(if changed { "*** (after)" } else { "***" }.into());
        }
        for (key, value) in &old {
            let changed = new.get(key) != Some(value);
            before[field][key] = Value::String(if changed { "*** (before)" } else { "***" }.into());
        }
    }
}

/// A unified diff of two objects' YAML, indented under the `► … drifted` line.
pub fn object_diff(before: &Value, after: &Value) -> String {
    let (mut before, mut after) = (comparable(before), comparable(after));
    mask_secrets(&mut before, &mut after);
    let old = sluice_kustomize::to_yaml_document(&before);
    let new = sluice_kustomize::to_yaml_document(&after);
    let diff = similar::TextDiff::from_lines(&old, &new);
    let mut out = String::new();
    for hunk in diff.unified_diff().context_radius(2).iter_hunks() {
        out.push_str(&format!("  {}\n", hunk.header()));
        for change in hunk.iter_changes() {
            let sign = match change.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            out.push_str(&format!("  {sign}{}", change.value()));
            if change.missing_newline() {
                out.push('\n');
            }
        }
    }
    out
}

/// Run `sluice diff kustomization`: 0 when the cluster matches, 1 when it differs.
pub async fn diff(args: BuildArgs, flags: &KubeFlags) -> anyhow::Result<u8> {
    let BuildWhat::Kustomization(args) = args.what;
    if args.dry_run {
        bail!("diff compares with the cluster: drop --dry-run");
    }
    let (ks, mut objects, client) = render(&args, flags).await?;
    let client = client.context("diff needs the cluster")?;
    sluice_ssa::order::sort_for_apply(&mut objects);
    let new_kinds: BTreeSet<String> = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .filter_map(|o| o["spec"]["names"]["kind"].as_str().map(str::to_string))
        .collect();
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let mut changed = false;
    let mut out = String::new();
    let mut new_ids = BTreeSet::new();
    for obj in &objects {
        let id = ObjectId::of(obj).with_context(|| {
            format!("an object without apiVersion, kind or metadata.name: {obj}")
        })?;
        new_ids.insert((id.group.clone(), id.kind.clone(), id.namespace.clone(), id.name.clone()));
        let gvk = kube::api::GroupVersionKind::gvk(&id.group, &id.version, &id.kind);
        let (resource, caps) = match kube::discovery::oneshot::pinned_kind(&client, &gvk).await {
            Ok(found) => found,
            Err(_) if new_kinds.contains(&id.kind) => {
                out.push_str(&format!("► {id} created\n"));
                changed = true;
                continue;
            }
            Err(err) => bail!("{id}: the cluster does not serve {}: {err}", id.api_version()),
        };
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced if id.namespace.is_empty() => {
                bail!(
                    "{id}: namespaced kind without metadata.namespace: set targetNamespace or the namespace in the kustomization"
                )
            }
            Scope::Namespaced => Api::namespaced_with(client.clone(), &id.namespace, &resource),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let Some(existing) =
            api.get_opt(&id.name).await.with_context(|| format!("getting {id}"))?
        else {
            out.push_str(&format!("► {id} created\n"));
            changed = true;
            continue;
        };
        let existing = serde_json::to_value(existing)?;
        let mut desired = obj.clone();
        sluice_ssa::apply::set_native_defaults(&mut desired);
        let dry_run = api
            .patch(&id.name, &params, &Patch::Apply(&desired))
            .await
            .with_context(|| format!("server-side dry-run apply of {id}"))?;
        let dry_run = serde_json::to_value(dry_run)?;
        if comparable(&dry_run) != comparable(&existing) {
            out.push_str(&format!("► {id} drifted\n"));
            out.push_str(&object_diff(&existing, &dry_run));
            changed = true;
        }
    }
    if ks.spec.prune {
        for entry in
            ks.status.as_ref().and_then(|s| s.inventory.as_ref()).iter().flat_map(|i| &i.entries)
        {
            let Some(id) = ObjectId::from_inventory(entry) else { continue };
            let key = (id.group.clone(), id.kind.clone(), id.namespace.clone(), id.name.clone());
            if !new_ids.contains(&key) {
                out.push_str(&format!("► {id} deleted\n"));
                changed = true;
            }
        }
    }
    if changed {
        crate::output::write_stdout(&out)?;
        Ok(1)
    } else {
        say!("✔ no changes: the cluster matches {}", args.path.display());
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_ignore_server_fields_and_mask_secrets() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "1", "managedFields": [{}]},
            "data": {"color": "blue"}});
        let same = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "2"}, "data": {"color": "blue"}});
        assert_eq!(comparable(&live), comparable(&same));
        let green = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a"}, "data": {"color": "green"}});
        let text = object_diff(&live, &green);
        assert!(text.contains("  -  color: blue\n"), "{text}");
        assert!(text.contains("  +  color: green\n"), "{text}");

        let secret = |v: &str| {
            json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s"}, "data": {"token": v, "user": "YQ=="}})
        };
        let text = object_diff(&secret("b2xk"), &secret("bmV3"));
        assert!(!text.contains("b2xk") && !text.contains("bmV3"), "{text}");
        assert!(
            text.contains("-  token: '*** (before)'")
                || text.contains("-  token: \"*** (before)\""),
            "{text}"
        );
    }

    #[test]
    fn build_root_is_the_git_work_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        let nested = dir.path().join("apps/overlays/dev");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(build_root(&nested), dir.path());
        let plain = tempfile::tempdir().unwrap();
        assert_eq!(build_root(plain.path()), plain.path());
    }

    #[test]
    fn parses_build_and_diff_arguments() {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from([
            "sluice",
            "diff",
            "kustomization",
            "apps",
            "--path",
            "./apps",
            "-n",
            "team",
        ])
        .unwrap();
        let crate::Command::Diff(BuildArgs { what: BuildWhat::Kustomization(args) }) = cli.command
        else {
            panic!("not diff");
        };
        assert_eq!((args.name.as_str(), args.path.as_path()), ("apps", Path::new("./apps")));
        assert_eq!(cli.kube.namespace, "team");
        assert!(crate::Cli::try_parse_from(["sluice", "build", "ks", "apps"]).is_err());
    }
}
