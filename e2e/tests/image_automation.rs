//! Image automation on the real apiserver: a docker-registry on loopback, a git server, and
//! image-automation-controller running in-process. New tags are scanned, selected by policy and
//! committed to Git touching only the marked lines.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use sluice_api::image::{ImagePolicy, ImageRepository, ImageUpdateAutomation};
use sluice_api::meta::Condition;
use sluice_api::source::GitRepository;
use sluice_e2e::registry::Layer;
use sluice_e2e::{GitServer, Registry, TestEnv, wait_for};
use sluice_runtime::Runtime;

const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    runtime: sluice_runtime::runtime::RuntimeArgs,
    #[command(flatten)]
    image: image_automation_controller::ImageArgs,
}

/// A client whose default namespace is `namespace`, so a controller started with
/// `--watch-all-namespaces=false` watches only this test's namespace.
async fn namespaced_client(env: &TestEnv, namespace: &str) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(env.kubeconfig())?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    config.default_namespace = namespace.to_string();
    Ok(kube::Client::try_from(config)?)
}

/// Starts the controller for `namespace` with its tag store in `storage`.
async fn start_controller(env: &TestEnv, namespace: &str, storage: &Path) -> Result<Arc<Runtime>> {
    let args = vec![
        "image-automation-controller".to_string(),
        "--metrics-addr=127.0.0.1:0".into(),
        "--health-addr=127.0.0.1:0".into(),
        "--watch-all-namespaces=false".into(),
        "--requeue-dependency=1s".into(),
        "--min-retry-delay=500ms".into(),
        "--max-retry-delay=2s".into(),
        format!("--storage-path={}", storage.display()),
    ];
    let flags: Flags = sluice_runtime::runtime::parse_args_from("4", args);
    let client = namespaced_client(env, namespace).await?;
    let runtime = Runtime::start_with_client(
        image_automation_controller::CONTROLLER_NAME,
        flags.runtime,
        client,
    )
    .await?;
    tokio::spawn(image_automation_controller::run(runtime.clone(), flags.image));
    Ok(runtime)
}

/// Pushes a minimal image (config + one layer) as `repository:tag`; returns its digest.
async fn push_image(registry: &Registry, repository: &str, tag: &str) -> Result<String> {
    let config =
        json!({"architecture": "amd64", "os": "linux", "config": {"Labels": {"tag": tag}}});
    registry
        .push_artifact(
            repository,
            tag,
            "application/vnd.oci.image.config.v1+json",
            config.to_string().as_bytes(),
            &[Layer {
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                data: format!("layer of {tag}").into_bytes(),
            }],
            &serde_json::Map::new(),
        )
        .await
}

fn git(bare: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git").arg("--git-dir").arg(bare).args(args).output()?;
    if !output.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn ready(conditions: Option<&Vec<Condition>>) -> Option<(String, String, String)> {
    conditions?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn create<K>(api: &Api<K>, value: serde_json::Value) -> Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value)?;
    Ok(api.create(&PostParams::default(), &obj).await?)
}

async fn request_reconcile<K>(api: &Api<K>, name: &str) -> Result<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let token = jiff::Timestamp::now().to_string();
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(token)
}

async fn basic_git_secret(env: &TestEnv, namespace: &str) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(env.client(), namespace);
    create(
        &secrets,
        json!({"metadata": {"name": "git-auth"}, "stringData": {"username": GitServer::USERNAME, "password": GitServer::PASSWORD}}),
    )
    .await?;
    Ok(())
}

fn automation(name: &str, repo: &str, path: &str, template: &str) -> serde_json::Value {
    json!({
        "apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageUpdateAutomation",
        "metadata": {"name": name},
        "spec": {
            "interval": "2s",
            "sourceRef": {"kind": "GitRepository", "name": repo},
            "git": {
                "checkout": {"ref": {"branch": "main"}},
                "commit": {"author": {"name": "fluxbot", "email": "fluxbot@example.com"}, "messageTemplate": template},
                "push": {"branch": "main"}
            },
            "update": {"strategy": "Setters", "path": path}
        }
    })
}

fn git_repository(name: &str, url: &str) -> serde_json::Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": name},
        "spec": {"url": url, "interval": "10m", "ref": {"branch": "main"}, "secretRef": {"name": "git-auth"}}
    })
}

const DEPLOY: &str = r#"# The web tier.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # keep this comment
spec:
  template:
    spec:
      containers:
        - name:   web
          image: "HOST/app:1.2.3" # {"$imagepolicy": "NS:app"}
          args: [ "--port=80",   "--mode=fast" ]
        - name: sidecar
          image: HOST/app:1.2.3
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: values
data:
  tag: '1.2.3'    # {"$imagepolicy": "NS:app:tag"}
  repository: HOST/app # {"$imagepolicy": "NS:app:name"}
"#;

#[tokio::test]
async fn new_tags_are_committed_to_git_touching_only_marked_lines() -> Result<()> {
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await?;
    env.install_crds().await?;
    let ns = env.namespace("image-auto").await?;
    let namespace = ns.name();
    let registry = Registry::start(false)?;
    let host = registry.host();
    push_image(&registry, "app", "1.2.3").await?;
    push_image(&registry, "app", "1.2.3.sig").await?;

    let git_server = GitServer::start()?;
    let deploy = DEPLOY.replace("HOST", &host).replace("NS", namespace);
    let untouched =
        format!("image: {host}/app:1.2.3 # {{\"$imagepolicy\": \"{namespace}:app\"}}\n");
    let initial = git_server.create_repo(
        "fleet",
        &[("apps/deploy.yaml", &deploy), ("other/outside.yaml", &untouched)],
    )?;
    let bare = git_server.repos().bare_path("fleet");

    let storage = tempfile::tempdir()?;
    let runtime = start_controller(&env, namespace, storage.path()).await?;
    let client = env.client();
    basic_git_secret(&env, namespace).await?;
    let sources: Api<GitRepository> = Api::namespaced(client.clone(), namespace);
    create(&sources, git_repository("fleet", &git_server.private_url("fleet"))).await?;
    let repos: Api<ImageRepository> = Api::namespaced(client.clone(), namespace);
    create(
        &repos,
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository", "metadata": {"name": "app"},
               "spec": {"image": format!("{host}/app"), "interval": "2s"}}),
    )
    .await?;
    let policies: Api<ImagePolicy> = Api::namespaced(client.clone(), namespace);
    create(
        &policies,
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "app"},
               "spec": {"imageRepositoryRef": {"name": "app"}, "policy": {"semver": {"range": ">=1.0.0 <2.0.0"}}}}),
    )
    .await?;

    // The scan: the .sig tag is excluded by default; the status has Flux's fields.
    let scanned = wait_for(TIMEOUT, "the first scan", || async {
        let repo = repos.get("app").await?;
        Ok(repo.status.clone().filter(|s| s.last_scan_result.is_some()).map(|_| repo))
    })
    .await?;
    let status = scanned.status.clone().context("status")?;
    assert_eq!(status.canonical_image_name.as_deref(), Some(format!("{host}/app").as_str()));
    let scan = status.last_scan_result.clone().context("scan")?;
    assert_eq!(scan.tag_count, 1);
    assert_eq!(scan.latest_tags, Some(vec!["1.2.3".to_string()]));
    assert_eq!(status.observed_exclusion_list, Some(vec!["^.*\\.sig$".to_string()]));
    assert_eq!(
        ready(status.conditions.as_ref()),
        Some(("True".into(), "Succeeded".into(), "successful scan: found 1 tags".into()))
    );
    sluice_e2e::check_kstatus(&serde_json::to_value(&scanned)?)?;

    wait_for(TIMEOUT, "the policy to select 1.2.3", || async {
        let policy = policies.get("app").await?;
        Ok(policy.status.and_then(|s| s.latest_ref).filter(|r| r.tag == "1.2.3").map(|_| ()))
    })
    .await?;

    let template = "Update images\n\n{{ range $resource, $changes := .Changed.Objects -}}\n- {{ $resource.Kind }} {{ $resource.Name }}:{{ range $changes }} {{ .OldValue }} -> {{ .NewValue }};{{ end }}\n{{ end -}}\nby {{ .AutomationObject }}";
    let automations: Api<ImageUpdateAutomation> = Api::namespaced(client.clone(), namespace);
    create(&automations, automation("auto", "fleet", "./apps", template)).await?;

    // The marked values already match the policy: no commit.
    let first = wait_for(TIMEOUT, "the first automation run", || async {
        let auto = automations.get("auto").await?;
        let status = auto.status.clone().unwrap_or_default();
        Ok(ready(status.conditions.as_ref()).filter(|r| r.0 == "True").map(|_| auto))
    })
    .await?;
    let status = first.status.clone().unwrap_or_default();
    assert_eq!(ready(status.conditions.as_ref()).unwrap().2, "no updates made");
    assert_eq!(status.observed_source_revision, Some(format!("main@sha1:{initial}")));
    assert_eq!(status.observed_policies.unwrap()["app"].tag, "1.2.3");
    assert_eq!(git(&bare, &["rev-parse", "main"])?.trim(), initial);

    // A new tag in range: the policy picks it and one commit lands within the intervals.
    let pushed_at = std::time::Instant::now();
    push_image(&registry, "app", "1.2.4").await?;
    let head = wait_for(TIMEOUT, "a commit on main", || async {
        let head = git(&bare, &["rev-parse", "main"])?.trim().to_string();
        Ok((head != initial).then_some(head))
    })
    .await?;
    eprintln!("image-automation: tag push to commit in {:.1?}", pushed_at.elapsed());
    assert_eq!(git(&bare, &["rev-parse", "main~1"])?.trim(), initial, "exactly one new commit");
    assert_eq!(git(&bare, &["diff", "--name-only", "main~1", "main"])?, "apps/deploy.yaml\n");
    let expected = deploy
        .replacen(&format!("\"{host}/app:1.2.3\""), &format!("\"{host}/app:1.2.4\""), 1)
        .replace("tag: '1.2.3'", "tag: '1.2.4'");
    assert_eq!(git(&bare, &["show", "main:apps/deploy.yaml"])?, expected);
    let diff = git(&bare, &["diff", "-U0", "main~1", "main"])?;
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(changed.len(), 4, "two marked lines replaced:\n{diff}");
    assert_eq!(git(&bare, &["show", "main:other/outside.yaml"])?, untouched);
    let log = git(&bare, &["log", "-1", "--format=%an <%ae>%n%B", "main"])?;
    assert_eq!(
        log.trim_end(),
        format!(
            "fluxbot <fluxbot@example.com>\nUpdate images\n\n- Deployment web: {host}/app:1.2.3 -> {host}/app:1.2.4;\n- ConfigMap values: 1.2.3 -> 1.2.4;\nby {namespace}/auto"
        )
    );
    let pushed = wait_for(TIMEOUT, "lastPushCommit", || async {
        let auto = automations.get("auto").await?;
        let status = auto.status.clone().unwrap_or_default();
        Ok((status.last_push_commit.as_deref() == Some(head.as_str())).then_some(status))
    })
    .await?;
    assert!(pushed.last_push_time.is_some() && pushed.last_automation_run_time.is_some());
    assert_eq!(pushed.observed_policies.unwrap()["app"].tag, "1.2.4");
    let policy = policies.get("app").await?.status.unwrap_or_default();
    assert_eq!(policy.observed_previous_ref.map(|r| r.tag).as_deref(), Some("1.2.3"));

    // Running again makes no empty commit.
    let token = request_reconcile(&automations, "auto").await?;
    let again = wait_for(TIMEOUT, "the requested automation run", || async {
        let auto = automations.get("auto").await?;
        let status = auto.status.clone().unwrap_or_default();
        Ok((status.last_handled_reconcile_at.as_deref() == Some(token.as_str())).then_some(status))
    })
    .await?;
    let message = ready(again.conditions.as_ref()).unwrap().2;
    assert!(
        message.starts_with(&format!("no updates made; last commit {}", &head[..7])),
        "{message}"
    );
    assert_eq!(git(&bare, &["rev-parse", "main"])?.trim(), head);

    // A tag outside the range changes nothing.
    push_image(&registry, "app", "2.0.0").await?;
    wait_for(TIMEOUT, "the scan to see 2.0.0", || async {
        let repo = repos.get("app").await?;
        Ok(repo.status.and_then(|s| s.last_scan_result).filter(|s| s.tag_count == 3).map(|_| ()))
    })
    .await?;
    let token = request_reconcile(&policies, "app").await?;
    wait_for(TIMEOUT, "the policy to re-run", || async {
        let policy = policies.get("app").await?;
        let status = policy.status.unwrap_or_default();
        Ok((status.last_handled_reconcile_at.as_deref() == Some(token.as_str())).then_some(status))
    })
    .await
    .map(|status| assert_eq!(status.latest_ref.unwrap().tag, "1.2.4"))?;
    let token = request_reconcile(&automations, "auto").await?;
    wait_for(TIMEOUT, "another automation run", || async {
        let auto = automations.get("auto").await?;
        let status = auto.status.unwrap_or_default();
        Ok((status.last_handled_reconcile_at.as_deref() == Some(token.as_str())).then_some(()))
    })
    .await?;
    assert_eq!(git(&bare, &["rev-parse", "main"])?.trim(), head);

    // A restart keeps the scanned tags on disk: with the registry gone, the policy still
    // resolves from the store.
    runtime.shutdown.trigger();
    drop(registry);
    let runtime = start_controller(&env, namespace, storage.path()).await?;
    let token = request_reconcile(&policies, "app").await?;
    let after = wait_for(TIMEOUT, "the policy after a restart", || async {
        let policy = policies.get("app").await?;
        let status = policy.status.unwrap_or_default();
        Ok((status.last_handled_reconcile_at.as_deref() == Some(token.as_str())).then_some(status))
    })
    .await?;
    assert_eq!(ready(after.conditions.as_ref()).unwrap().0, "True");
    assert_eq!(after.latest_ref.unwrap().tag, "1.2.4");
    runtime.shutdown.trigger();
    Ok(())
}

#[tokio::test]
async fn bad_credentials_rejected_pushes_and_missing_repositories_are_reported() -> Result<()> {
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await?;
    env.install_crds().await?;
    let ns = env.namespace("image-fail").await?;
    let namespace = ns.name();
    let registry = Registry::start(true)?;
    let host = registry.host();
    push_image(&registry, "team/app", "1.0.0").await?;
    push_image(&registry, "team/app", "1.1.0").await?;
    let storage = tempfile::tempdir()?;
    let runtime = start_controller(&env, namespace, storage.path()).await?;
    let client = env.client();

    // Wrong registry password: AuthenticationFailed, and the password is in no message.
    let docker_config = |password: &str| {
        json!({"auths": {host.clone(): {"username": Registry::USERNAME, "password": password}}})
            .to_string()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    create(
        &secrets,
        json!({"metadata": {"name": "registry"}, "type": "kubernetes.io/dockerconfigjson",
               "stringData": {".dockerconfigjson": docker_config("wrong-password")}}),
    )
    .await?;
    let repos: Api<ImageRepository> = Api::namespaced(client.clone(), namespace);
    create(
        &repos,
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository", "metadata": {"name": "app"},
               "spec": {"image": format!("{host}/team/app"), "interval": "1m", "secretRef": {"name": "registry"}}}),
    )
    .await?;
    let failed = wait_for(TIMEOUT, "AuthenticationFailed", || async {
        let repo = repos.get("app").await?;
        Ok(ready(repo.status.as_ref().and_then(|s| s.conditions.as_ref()))
            .filter(|r| r.0 == "False"))
    })
    .await?;
    assert_eq!(failed.1, "AuthenticationFailed", "{failed:?}");
    assert!(failed.2.contains(&format!("{host}/team/app")), "{}", failed.2);
    assert!(!failed.2.contains("wrong-password"));

    // The right password, and a reconcile request: the scan succeeds.
    let fixed = json!({"stringData": {".dockerconfigjson": docker_config(Registry::PASSWORD)}});
    secrets.patch("registry", &PatchParams::default(), &Patch::Merge(&fixed)).await?;
    request_reconcile(&repos, "app").await?;
    wait_for(TIMEOUT, "a scan with the right credentials", || async {
        let repo = repos.get("app").await?;
        let status = repo.status.unwrap_or_default();
        Ok(status.last_scan_result.filter(|s| s.tag_count == 2).map(|_| ()))
    })
    .await?;

    // A policy whose repository does not exist says so.
    let policies: Api<ImagePolicy> = Api::namespaced(client.clone(), namespace);
    create(
        &policies,
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "orphan"},
               "spec": {"imageRepositoryRef": {"name": "missing"}, "policy": {"alphabetical": {}}}}),
    )
    .await?;
    let orphan = wait_for(TIMEOUT, "the orphan policy's condition", || async {
        let policy = policies.get("orphan").await?;
        Ok(ready(policy.status.as_ref().and_then(|s| s.conditions.as_ref())))
    })
    .await?;
    assert_eq!((orphan.0.as_str(), orphan.1.as_str()), ("False", "DependencyNotReady"));
    assert!(orphan.2.contains(&format!("'{namespace}/missing' does not exist")), "{}", orphan.2);
    create(
        &policies,
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "app"},
               "spec": {"imageRepositoryRef": {"name": "app"}, "policy": {"semver": {"range": "1.x"}},
                        "digestReflectionPolicy": "IfNotPresent"}}),
    )
    .await?;
    let digest = push_image(&registry, "team/app", "1.1.0").await?;
    let latest = wait_for(TIMEOUT, "the policy with digest", || async {
        let policy = policies.get("app").await?;
        Ok(policy.status.and_then(|s| s.latest_ref).filter(|r| r.tag == "1.1.0"))
    })
    .await?;
    assert_eq!(latest.digest.as_deref(), Some(digest.as_str()));

    // The git server declines every push: the automation says the push was rejected.
    let git_server = GitServer::start()?;
    let file = format!(
        "repository: {host}/team/app # {{\"$imagepolicy\": \"{namespace}:app:name\"}}\ntag: 1.0.0 # {{\"$imagepolicy\": \"{namespace}:app:tag\"}}\n"
    );
    let initial = git_server.create_repo("locked", &[("app.yaml", &file)])?;
    let bare = git_server.repos().bare_path("locked");
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'pushes are frozen' >&2\nexit 1\n")?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    }
    basic_git_secret(&env, namespace).await?;
    let sources: Api<GitRepository> = Api::namespaced(client.clone(), namespace);
    create(&sources, git_repository("locked", &git_server.private_url("locked"))).await?;
    let automations: Api<ImageUpdateAutomation> = Api::namespaced(client.clone(), namespace);
    create(&automations, automation("locked", "locked", "", "")).await?;
    let rejected = wait_for(TIMEOUT, "the rejected push condition", || async {
        let auto = automations.get("locked").await?;
        Ok(ready(auto.status.as_ref().and_then(|s| s.conditions.as_ref()))
            .filter(|r| r.0 == "False"))
    })
    .await?;
    assert_eq!(rejected.1, "GitOperationFailed", "{rejected:?}");
    assert!(rejected.2.contains("rejected"), "{}", rejected.2);
    assert!(!rejected.2.contains(GitServer::PASSWORD));
    assert_eq!(git(&bare, &["rev-parse", "main"])?.trim(), initial);

    runtime.shutdown.trigger();
    Ok(())
}

#[tokio::test]
async fn a_pull_request_is_opened_for_the_push_branch() -> Result<()> {
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await?;
    env.install_crds().await?;
    let ns = env.namespace("image-pr").await?;
    let namespace = ns.name();
    let registry = Registry::start(false)?;
    let host = registry.host();
    push_image(&registry, "app", "1.0.0").await?;
    push_image(&registry, "app", "1.1.0").await?;
    let api = sluice_e2e::CaptureServer::start()?;
    api.respond_with(201);
    api.respond_body(r#"{"html_url": "http://gitea.example/team/prs/pulls/1"}"#);
    let git_server = GitServer::start()?;
    let file = format!("tag: 1.0.0 # {{\"$imagepolicy\": \"{namespace}:app:tag\"}}\n");
    let initial = git_server.create_repo("prs", &[("app.yaml", &file)])?;
    let bare = git_server.repos().bare_path("prs");
    let storage = tempfile::tempdir()?;
    let runtime = start_controller(&env, namespace, storage.path()).await?;
    let client = env.client();
    basic_git_secret(&env, namespace).await?;
    let sources: Api<GitRepository> = Api::namespaced(client.clone(), namespace);
    create(&sources, git_repository("prs", &git_server.private_url("prs"))).await?;
    let repos: Api<ImageRepository> = Api::namespaced(client.clone(), namespace);
    create(
        &repos,
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository", "metadata": {"name": "app"},
               "spec": {"image": format!("{host}/app"), "interval": "1m"}}),
    )
    .await?;
    let policies: Api<ImagePolicy> = Api::namespaced(client.clone(), namespace);
    create(
        &policies,
        json!({"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "app"},
               "spec": {"imageRepositoryRef": {"name": "app"}, "policy": {"semver": {"range": "1.x"}}}}),
    )
    .await?;
    let mut auto = automation("prs", "prs", "", "");
    auto["spec"]["git"]["push"]["branch"] = json!("image-updates");
    auto["metadata"]["annotations"] = json!({
        "image.sluice.dev/pull-request": "gitea",
        "image.sluice.dev/pull-request-api": api.url_for("/api/v1"),
    });
    let automations: Api<ImageUpdateAutomation> = Api::namespaced(client.clone(), namespace);
    create(&automations, auto).await?;

    // The update goes to the push branch, created from main, and main stays as it was.
    let pushed = wait_for(TIMEOUT, "the push branch", || async {
        Ok(git(&bare, &["rev-parse", "refs/heads/image-updates"]).ok())
    })
    .await?;
    assert_eq!(git(&bare, &["rev-parse", "image-updates~1"])?.trim(), initial);
    assert_eq!(git(&bare, &["rev-parse", "main"])?.trim(), initial);
    assert_eq!(git(&bare, &["show", "image-updates:app.yaml"])?, file.replace("1.0.0", "1.1.0"));

    let requests = api.wait_for_requests(1, TIMEOUT).await?;
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/api/v1/repos/private/prs/pulls")
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("token {}", GitServer::PASSWORD).as_str())
    );
    let body = request.body_json()?;
    assert_eq!(body["head"], "image-updates");
    assert_eq!(body["base"], "main");
    assert_eq!(body["title"], "Update from image update automation");
    wait_for(TIMEOUT, "the automation to be ready", || async {
        let auto = automations.get("prs").await?;
        let status = auto.status.unwrap_or_default();
        Ok(status.last_push_commit.filter(|c| c == pushed.trim()).map(|_| ()))
    })
    .await?;

    // Later runs find the pull request open (409) and stay ready without a new commit.
    api.respond_with(409);
    let token = request_reconcile(&automations, "prs").await?;
    let again = wait_for(TIMEOUT, "another run", || async {
        let auto = automations.get("prs").await?;
        let status = auto.status.unwrap_or_default();
        Ok((status.last_handled_reconcile_at.as_deref() == Some(token.as_str())).then_some(status))
    })
    .await?;
    assert_eq!(ready(again.conditions.as_ref()).map(|r| r.0), Some("True".to_string()));
    assert!(api.requests().len() >= 2);
    assert_eq!(git(&bare, &["rev-parse", "image-updates"])?.trim(), pushed.trim());
    runtime.shutdown.trigger();
    Ok(())
}
