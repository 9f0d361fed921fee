//! The `sluice` CLI against the real apiserver and a real git server, with the source- and
//! kustomize-controllers running in-process: bootstrap (and its idempotent re-run), `get`,
//! `tree`, `trace`, `build`, `diff` before and after a push, `export` and `check`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use sluice_api::kustomize::Kustomization;
use sluice_api::source::GitRepository;
use sluice_e2e::{GitServer, TestEnv, wait_for};
use sluice_runtime::Runtime;

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    runtime: sluice_runtime::runtime::RuntimeArgs,
    #[command(flatten)]
    storage: source_controller::StorageArgs,
}

const COMMON: [&str; 3] =
    ["--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", "--requeue-dependency=2s"];

async fn start_controllers(env: &TestEnv, storage: &Path) -> Vec<Arc<Runtime>> {
    let port = sluice_e2e::process::free_port().unwrap();
    let mut args = vec!["source-controller".to_string()];
    args.extend(COMMON.iter().map(|s| s.to_string()));
    args.push(format!("--storage-path={}", storage.display()));
    args.push(format!("--storage-addr=127.0.0.1:{port}"));
    args.push(format!("--storage-adv-addr=127.0.0.1:{port}"));
    let flags: Flags = sluice_runtime::runtime::parse_args_from("2", args);
    let source =
        Runtime::start_with_client("source-controller", flags.runtime, env.client()).await.unwrap();
    tokio::spawn(source_controller::run(source.clone(), flags.storage));
    let mut args = vec!["kustomize-controller".to_string()];
    args.extend(COMMON.iter().map(|s| s.to_string()));
    args.push("--storage-path=/unused".into());
    let flags: Flags = sluice_runtime::runtime::parse_args_from("4", args);
    let kustomize = Runtime::start_with_client("kustomize-controller", flags.runtime, env.client())
        .await
        .unwrap();
    tokio::spawn(kustomize_controller::run(kustomize.clone()));
    vec![source, kustomize]
}

fn configmap(color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  color: {color}\n")
}

const APPS: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: cli-apps
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps/app
  prune: true
  targetNamespace: cli-apps
  sourceRef:
    kind: GitRepository
    name: flux-system
";

/// Runs the CLI through its library entry point against the test cluster.
async fn sluice(env: &TestEnv, args: &[&str]) -> (u8, sluice_cli::Captured) {
    let kubeconfig = env.kubeconfig().to_string_lossy().into_owned();
    let mut argv = vec!["sluice", "--kubeconfig", kubeconfig.as_str()];
    argv.extend_from_slice(args);
    let (code, out) = sluice_cli::run_captured(argv.clone()).await;
    eprintln!("$ sluice {}\n{}{}(exit {code})", args.join(" "), out.stdout, out.stderr);
    (code, out)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=dev", "-c", "user.email=dev@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_diff_and_inspect() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let git_server = GitServer::start().unwrap();
    git_server
        .create_repo(
            "fleet",
            &[("apps/app/configmap.yaml", &configmap("blue")), ("clusters/dev/apps.yaml", APPS)],
        )
        .unwrap();
    let url = git_server.private_url("fleet");
    let bare = git_server.repos().bare_path("fleet");
    let storage = tempfile::tempdir().unwrap();
    let _runtimes = start_controllers(&env, storage.path()).await;

    let bootstrap = |password: &'static str| {
        let url = url.clone();
        let env = env.clone();
        async move {
            sluice(
                &env,
                &[
                    "bootstrap",
                    "git",
                    "--url",
                    &url,
                    "--path=clusters/dev",
                    "--username",
                    GitServer::USERNAME,
                    "--password",
                    password,
                    "--local-controllers",
                    "--timeout=2m",
                ],
            )
            .await
        }
    };

    // Wrong credentials fail clearly, without printing the password.
    let (code, out) = bootstrap("not-the-password").await;
    assert_eq!(code, 1);
    assert!(out.stderr.contains("✗"), "{}", out.stderr);
    assert!(!out.stderr.contains("not-the-password"), "{}", out.stderr);
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "1");

    // First bootstrap: two commits pushed, everything applied and Ready.
    let (code, out) = bootstrap(GitServer::PASSWORD).await;
    assert_eq!(code, 0, "{}", out.stderr);
    for line in [
        "► cloning branch \"main\"",
        "✔ committed component manifests to \"main\"",
        "✔ committed sync manifests to \"main\"",
        "► installing components in \"flux-system\" namespace",
        "✔ reconciled source secret",
        "✔ GitRepository reconciled successfully",
        "✔ Kustomization reconciled successfully",
    ] {
        assert!(out.stderr.contains(line), "missing {line:?} in\n{}", out.stderr);
    }
    assert!(!out.stderr.contains(GitServer::PASSWORD));
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "3");
    let files = git(&bare, &["ls-tree", "-r", "--name-only", "main"]);
    for file in ["gotk-components.yaml", "gotk-sync.yaml", "kustomization.yaml"] {
        assert!(files.contains(&format!("clusters/dev/flux-system/{file}\n")), "{files}");
    }
    let sync = git(&bare, &["show", "main:clusters/dev/flux-system/gotk-sync.yaml"]);
    assert!(sync.contains("  path: ./clusters/dev\n") && sync.contains(&format!("  url: {url}\n")));
    let head = git(&bare, &["rev-parse", "main"]).trim().to_string();
    let revision = format!("main@sha1:{head}");

    let repos: Api<GitRepository> = Api::namespaced(env.client(), "flux-system");
    let repo = repos.get("flux-system").await.unwrap();
    assert_eq!(repo.status.unwrap().artifact.unwrap().revision, revision);
    let kustomizations: Api<Kustomization> = Api::namespaced(env.client(), "flux-system");
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), "cli-apps");
    wait_for(Duration::from_secs(90), "the apps Kustomization to apply", || async {
        let applied =
            kustomizations.get("apps").await?.status.and_then(|s| s.last_applied_revision);
        let cm = configmaps.get_opt("app").await?;
        Ok((applied.as_deref() == Some(revision.as_str()) && cm.is_some()).then_some(()))
    })
    .await
    .unwrap();

    // Re-running is a no-op: no commit, still Ready.
    let (code, out) = bootstrap(GitServer::PASSWORD).await;
    assert_eq!(code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("✔ component manifests are up to date"), "{}", out.stderr);
    assert!(out.stderr.contains("✔ sync manifests are up to date"), "{}", out.stderr);
    assert!(!out.stderr.contains("pushing"), "{}", out.stderr);
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]).trim(), "3");

    // get: flux's table.
    let (code, out) = sluice(&env, &["get", "kustomizations"]).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"],
        "{}",
        out.stdout
    );
    for name in ["apps", "flux-system"] {
        let row = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{}", out.stdout));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[..4], [name, revision.as_str(), "False", "True"], "{row}");
        assert!(row.contains(&format!("Applied revision: {revision}")), "{row}");
    }
    let (code, out) = sluice(&env, &["get", "sources", "git"]).await;
    assert_eq!(code, 0);
    assert!(out.stdout.contains(&format!("flux-system   {revision}   False       True    stored artifact for revision '{revision}'")), "{}", out.stdout);

    // tree: the inventory, nested Kustomization expanded.
    let (code, out) = sluice(&env, &["tree", "kustomization", "flux-system"]).await;
    assert_eq!(code, 0);
    assert!(out.stdout.starts_with("Kustomization/flux-system/flux-system\n"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("── CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io\n")
    );
    assert!(out.stdout.contains("── Namespace/cli-apps\n"), "{}", out.stdout);
    assert!(out.stdout.contains("── Kustomization/flux-system/apps\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("│   └── ConfigMap/cli-apps/app\n")
            || out.stdout.contains("    └── ConfigMap/cli-apps/app\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.lines().last().unwrap().contains("└── "), "{}", out.stdout);

    // trace: object → Kustomization → GitRepository.
    let (code, out) = sluice(&env, &["trace", "configmap", "app", "-n", "cli-apps"]).await;
    assert_eq!(code, 0, "{}", out.stderr);
    let row = |key: &str, value: &str| format!("{:<15} {value}\n", format!("{key}:"));
    for line in [
        row("Object", "ConfigMap/app"),
        row("Namespace", "cli-apps"),
        row("Status", "Managed by Flux"),
        row("Kustomization", "apps"),
        row("Namespace", "flux-system"),
        row("Target", "cli-apps"),
        row("Path", "./apps/app"),
        row("Revision", &revision),
        row("Message", &format!("Applied revision: {revision}")),
        row("GitRepository", "flux-system"),
        row("URL", &url),
        row("Branch", "main"),
        row("Message", &format!("stored artifact for revision '{revision}'")),
    ] {
        assert!(out.stdout.contains(&line), "missing {line:?} in\n{}", out.stdout);
    }
    let (code, out) = sluice(&env, &["trace", "namespace/default"]).await;
    assert_eq!(code, 1);
    assert!(out.stderr.contains("is not managed by sluice"), "{}", out.stderr);

    // A local change: build renders it, diff reports it (exit 1) before the push and nothing after.
    let clone_dir = tempfile::tempdir().unwrap();
    let with_credentials = git_server.private_url_with_credentials("fleet");
    git(clone_dir.path(), &["clone", "--quiet", &with_credentials, "."]);
    std::fs::write(clone_dir.path().join("apps/app/configmap.yaml"), configmap("green")).unwrap();
    let app_dir = clone_dir.path().join("apps/app").to_string_lossy().into_owned();
    let (code, out) = sluice(&env, &["build", "kustomization", "apps", "--path", &app_dir]).await;
    assert_eq!(code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "apiVersion: v1\ndata:\n  color: green\nkind: ConfigMap\nmetadata:\n  labels:\n    kustomize.toolkit.fluxcd.io/name: apps\n    kustomize.toolkit.fluxcd.io/namespace: flux-system\n  name: app\n  namespace: cli-apps\n"
    );
    let (code, out) = sluice(&env, &["diff", "kustomization", "apps", "--path", &app_dir]).await;
    assert_eq!(code, 1, "{}", out.stderr);
    assert!(out.stdout.starts_with("► ConfigMap/cli-apps/app drifted\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("  -  color: blue\n") && out.stdout.contains("  +  color: green\n"),
        "{}",
        out.stdout
    );
    let (code, out) =
        sluice(&env, &["diff", "kustomization", "apps", "--path", "/does/not/exist"]).await;
    assert_eq!(code, 2, "errors exit with 2: {}", out.stderr);

    git(clone_dir.path(), &["commit", "--quiet", "-am", "Paint it green"]);
    git(clone_dir.path(), &["push", "--quiet", "origin", "main"]);
    let (code, out) =
        sluice(&env, &["reconcile", "kustomization", "apps", "--with-source", "--timeout=90s"])
            .await;
    assert_eq!(code, 0, "{}", out.stderr);
    let green = wait_for(Duration::from_secs(60), "the green ConfigMap", || async {
        Ok(configmaps.get("app").await?.data.filter(|d| d["color"] == "green"))
    })
    .await;
    assert!(green.is_ok());
    let (code, out) = sluice(&env, &["diff", "kustomization", "apps", "--path", &app_dir]).await;
    assert_eq!(code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "");

    // export: clean YAML, no status.
    let (code, out) = sluice(&env, &["export", "source", "git", "flux-system"]).await;
    assert_eq!(code, 0);
    assert!(
        out.stdout.starts_with(
            "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\n  name: flux-system\n  namespace: flux-system\nspec:\n"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("status:") && !out.stdout.contains("managedFields"),
        "{}",
        out.stdout
    );

    // check: the version and CRDs pass; the controllers run in this test process, without
    // Deployments or leader Leases, so check reports them missing.
    let (code, out) = sluice(&env, &["check", "--pre"]).await;
    assert_eq!(code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("✔ Kubernetes 1.20.2 >=1.20.0-0"), "{}", out.stderr);
    let (code, out) = sluice(&env, &["check"]).await;
    assert_eq!(code, 1);
    assert!(
        out.stderr.contains("✗ helm-controller: no Deployment in flux-system"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("✔ kustomizations.kustomize.toolkit.fluxcd.io/v1\n"),
        "{}",
        out.stderr
    );
}
