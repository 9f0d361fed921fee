//! `sluice check [--pre]` and `sluice uninstall`.

use anyhow::{Context, bail};
use clap::Args;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::Scope;
use serde_json::Value;
use std::io::BufRead;

use crate::client::KubeFlags;
use crate::cmd::bootstrap::COMPONENTS;
use crate::say;

/// The oldest Kubernetes sluice is tested against (the e2e harness runs v1.20.2).
pub const MIN_KUBERNETES: (u64, u64) = (1, 20);

/// `sluice check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only check the prerequisites (Kubernetes version).
    #[arg(long)]
    pub pre: bool,
    /// The controllers to check.
    #[arg(long, value_delimiter = ',', default_values_t = COMPONENTS.iter().map(|c| c.to_string()))]
    pub components: Vec<String>,
}

/// Parses `1`, `20+` from the version endpoint into numbers.
pub fn version_ok(major: &str, minor: &str) -> Option<bool> {
    let digits = |s: &str| {
        s.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u64>().ok()
    };
    Some((digits(major)?, digits(minor)?) >= MIN_KUBERNETES)
}

/// Run `sluice check`.
pub async fn check(args: CheckArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let client = flags.client().await?;
    say!("► checking prerequisites");
    let version = client.apiserver_version().await.context("reading the Kubernetes version")?;
    let constraint = format!(">={}.{}.0-0", MIN_KUBERNETES.0, MIN_KUBERNETES.1);
    match version_ok(&version.major, &version.minor) {
        Some(true) => {
            say!("✔ Kubernetes {} {constraint}", version.git_version.trim_start_matches('v'))
        }
        Some(false) => bail!("Kubernetes {} does not match {constraint}", version.git_version),
        None => bail!("cannot read the Kubernetes version {:?}", version.git_version),
    }
    if args.pre {
        say!("✔ prerequisites checks passed");
        return Ok(());
    }
    let mut failed = 0;
    say!("► checking controllers");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &flags.namespace);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &flags.namespace);
    for component in &args.components {
        if let Some(deployment) = deployments.get_opt(component).await? {
            let value = serde_json::to_value(&deployment)?;
            let health = sluice_ssa::kstatus::compute(&value);
            let image = value["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if health.status == sluice_ssa::Status::Current {
                say!("✔ {component}: deployment ready");
                say!("► {image}");
            } else {
                say!("✗ {component}: deployment not ready: {}", health.message);
                failed += 1;
            }
            continue;
        }
        let lease_name = format!("{component}-leader-election");
        match leases.get_opt(&lease_name).await? {
            Some(lease) => {
                let spec = lease.spec.unwrap_or_default();
                let holder = spec.holder_identity.unwrap_or_default();
                let renewed = spec.renew_time.map(|t| t.0);
                let age = renewed.map(|t| jiff::Timestamp::now().as_second() - t.as_second());
                let fresh = age
                    .is_some_and(|a| a <= i64::from(spec.lease_duration_seconds.unwrap_or(40)) * 2);
                if fresh && !holder.is_empty() {
                    say!(
                        "✔ {component}: running outside the cluster (Lease {lease_name} held by {holder})"
                    );
                } else {
                    say!("✗ {component}: no Deployment, and Lease {lease_name} is stale");
                    failed += 1;
                }
            }
            None => {
                say!(
                    "✗ {component}: no Deployment in {} and no leader Lease {lease_name}",
                    flags.namespace
                );
                failed += 1;
            }
        }
    }
    say!("► checking crds");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for expected in sluice_api::crds::all() {
        let name = expected.metadata.name.clone().unwrap_or_default();
        let storage = expected
            .spec
            .versions
            .iter()
            .find(|v| v.storage)
            .map(|v| v.name.clone())
            .unwrap_or_default();
        match crds.get_opt(&name).await? {
            Some(crd) => {
                let established =
                    crd.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                        c.iter().any(|c| c.type_ == "Established" && c.status == "True")
                    });
                let served = crd.spec.versions.iter().any(|v| v.name == storage && v.served);
                if established && served {
                    say!("✔ {name}/{storage}");
                } else {
                    say!("✗ {name}: not established or {storage} not served");
                    failed += 1;
                }
            }
            None => {
                say!("✗ {name}: not installed (run `sluice install` or `sluice bootstrap`)");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("check failed: {failed} problems");
    }
    say!("✔ all checks passed");
    Ok(())
}

/// `sluice uninstall`
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Keep the namespace.
    #[arg(long)]
    pub keep_namespace: bool,
    /// Do not ask for confirmation.
    #[arg(short = 's', long)]
    pub silent: bool,
    /// Only print what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

async fn dynamic_api(client: &kube::Client, obj: &Value) -> Option<Api<DynamicObject>> {
    let id = sluice_ssa::ObjectId::of(obj)?;
    let gvk = kube::api::GroupVersionKind::gvk(&id.group, &id.version, &id.kind);
    let (resource, caps) = kube::discovery::oneshot::pinned_kind(client, &gvk).await.ok()?;
    Some(match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), &id.namespace, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    })
}

/// Run `sluice uninstall`: the controllers, then the finalizers of every sluice object, then the
/// CRDs (which deletes the objects), then the namespace.
pub async fn uninstall(args: UninstallArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    if !args.silent && !args.dry_run {
        say!("Are you sure you want to delete sluice and its custom resource definitions? [y/N]");
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") {
            bail!("aborted");
        }
    }
    let client = flags.client().await?;
    let objects = crate::cmd::install::manifests()?;
    let delete = DeleteParams::background();
    let delete_params =
        if args.dry_run { DeleteParams { dry_run: true, ..delete } } else { delete };
    say!("► deleting components in {} namespace", flags.namespace);
    for obj in objects
        .iter()
        .filter(|o| !matches!(o["kind"].as_str(), Some("CustomResourceDefinition" | "Namespace")))
    {
        let Some(api) = dynamic_api(&client, obj).await else { continue };
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if api.delete(name, &delete_params).await.is_ok() {
            say!("✔ {}/{name} deleted", obj["kind"].as_str().unwrap_or_default());
        }
    }
    say!("► deleting toolkit.fluxcd.io finalizers in all namespaces");
    for kind in crate::kinds::all().into_iter().chain(crate::kinds::notification()) {
        let api = crate::kinds::api(&client, &kind, None);
        let Ok(list) = api.list(&ListParams::default()).await else { continue };
        for obj in list.items {
            let name = obj.metadata.name.clone().unwrap_or_default();
            let ns = obj.metadata.namespace.clone().unwrap_or_default();
            if obj.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty()) && !args.dry_run {
                let api = crate::kinds::api(&client, &kind, Some(&ns));
                let patch = serde_json::json!({"metadata": {"finalizers": null}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .with_context(|| {
                        format!("removing finalizers of {} {ns}/{name}", kind.resource.kind)
                    })?;
            }
            say!("✔ {}/{ns}/{name} finalizers deleted", kind.resource.kind);
        }
    }
    say!("► deleting toolkit.fluxcd.io custom resource definitions");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in sluice_api::crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        if crds.delete(&name, &delete_params).await.is_ok() {
            say!("✔ CustomResourceDefinition/{name} deleted");
        }
    }
    if !args.keep_namespace {
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        if namespaces.delete(&flags.namespace, &delete_params).await.is_ok() {
            say!("✔ Namespace/{} deleted", flags.namespace);
        }
    }
    say!("✔ uninstall finished");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_versions() {
        assert_eq!(version_ok("1", "20"), Some(true));
        assert_eq!(version_ok("1", "33+"), Some(true));
        assert_eq!(version_ok("1", "19"), Some(false));
        assert_eq!(version_ok("x", "1"), None);
    }

    #[test]
    fn check_flags() {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from([
            "sluice",
            "check",
            "--components=source-controller,kustomize-controller",
        ])
        .unwrap();
        let crate::Command::Check(args) = cli.command else { panic!("not check") };
        assert_eq!(args.components, ["source-controller", "kustomize-controller"]);
        let cli = crate::Cli::try_parse_from(["sluice", "check", "--pre"]).unwrap();
        let crate::Command::Check(args) = cli.command else { panic!("not check") };
        assert!(args.pre);
        assert_eq!(args.components.len(), 5);
    }
}
