//! Alerts end to end: a Kustomization that fails and is then fixed, reconciled by the real
//! kustomize-controller, whose events go through the notification-controller to Slack and Teams.

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use notification_controller::delivery::RetryPolicy;
use notification_controller::{Addresses, ServerConfig};
use serde_json::{Value, json};
use sluice_api::kustomize::Kustomization;
use sluice_api::source::GitRepository;
use sluice_artifact::Storage;
use sluice_e2e::{CaptureServer, TestEnv, wait_for};
use sluice_runtime::Runtime;

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    runtime: sluice_runtime::runtime::RuntimeArgs,
}

fn flags(name: &str, extra: &[String]) -> sluice_runtime::runtime::RuntimeArgs {
    let mut args = vec![
        name.to_string(),
        "--metrics-addr=127.0.0.1:0".into(),
        "--health-addr=127.0.0.1:0".into(),
        "--requeue-dependency=2s".into(),
    ];
    args.extend(extra.iter().cloned());
    sluice_runtime::runtime::parse_args_from::<Flags, _, _>("4", args).runtime
}

/// Waits for `n` captured JSON bodies and returns them.
async fn bodies(server: &CaptureServer, n: usize, what: &str) -> Vec<Value> {
    wait_for(Duration::from_secs(60), what, || async {
        let bodies: Vec<Value> =
            server.requests().iter().filter_map(|r| r.body_json().ok()).collect();
        Ok((bodies.len() >= n).then_some(bodies))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_failing_then_fixed_kustomization_notifies_slack_and_teams() {
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("alerts").await.unwrap();
    let slack = CaptureServer::start().unwrap();
    let teams = CaptureServer::start().unwrap();

    // notification-controller with its event server on a free loopback port.
    let notification = Runtime::start_with_client(
        notification_controller::CONTROLLER_NAME,
        flags("notification-controller", &[]),
        env.client(),
    )
    .await
    .unwrap();
    let config = ServerConfig {
        rate_limit_interval: Duration::from_secs(300),
        retry: RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
        },
        queue_capacity: 100,
    };
    let addresses =
        Addresses { events: Some("127.0.0.1:0".into()), receiver: Some("127.0.0.1:0".into()) };
    let bound =
        notification_controller::start_servers(&notification, &addresses, &config).await.unwrap();
    tokio::spawn(notification_controller::run(notification.clone(), Addresses::default(), config));
    let events_url = format!("http://{}/", bound.events.unwrap());

    // Providers and an Alert that only wants errors and successes of this Kustomization.
    env.create_yaml(
        ns.name(),
        &format!(
            r#"apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: slack}}
spec: {{type: slack, channel: "deploys", address: "{}"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: teams}}
spec: {{type: msteams, address: "{}"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: slack}}
spec:
  providerRef: {{name: slack}}
  eventSources: [{{kind: Kustomization, name: apps}}]
  exclusionList: ["^Building manifests"]
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: teams}}
spec:
  providerRef: {{name: teams}}
  eventSeverity: error
  eventSources: [{{kind: Kustomization, name: "*"}}]
"#,
            slack.url_for("/services/T0/B0/X"),
            teams.url_for("/workflows/team-a")
        ),
    )
    .await
    .unwrap();

    // A source: an artifact server and a GitRepository whose status this test writes.
    let storage_dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(sluice_artifact::server::serve(
        storage_dir.path().to_path_buf(),
        listener,
        std::future::pending(),
    ));
    let storage =
        Storage::new(storage_dir.path(), address.to_string(), Duration::from_secs(60), 2).unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("apps")).unwrap();
    std::fs::write(
        src.path().join("apps/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: b\n",
    )
    .unwrap();
    let stored = storage.archive("gitrepository/x/apps/abc.tar.gz", src.path(), None).unwrap();
    let revision = format!("main@sha1:{}", "a".repeat(40));
    let artifact = storage.artifact(&stored, revision.clone(), None);
    env.create_yaml(ns.name(), "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: apps}\nspec: {url: 'https://example.invalid/apps.git', interval: 10m}\n")
        .await
        .unwrap();
    let repos: Api<GitRepository> = Api::namespaced(env.client(), ns.name());
    let status = json!({"status": {"artifact": artifact}});
    repos.patch_status("apps", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();

    // kustomize-controller posting its events to the notification-controller.
    let kustomize = Runtime::start_with_client(
        "kustomize-controller",
        flags("kustomize-controller", &[format!("--events-addr={events_url}")]),
        env.client(),
    )
    .await
    .unwrap();
    tokio::spawn(kustomize_controller::run(kustomize.clone()));

    // A broken path: an error reaches both Slack and Teams.
    env.create_yaml(
        ns.name(),
        &format!("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {{name: apps}}\nspec: {{interval: 10m, prune: true, path: ./missing, targetNamespace: {}, sourceRef: {{kind: GitRepository, name: apps}}}}\n", ns.name()),
    )
    .await
    .unwrap();
    let slack_error = bodies(&slack, 1, "the failure on Slack").await.remove(0);
    let attachment = &slack_error["attachments"][0];
    assert_eq!(slack_error["channel"], "deploys");
    assert_eq!(slack_error["username"], "kustomize-controller");
    assert_eq!(attachment["color"], "danger");
    assert_eq!(attachment["author_name"], format!("kustomization/apps.{}", ns.name()));
    assert_eq!(attachment["mrkdwn_in"], json!(["text"]));
    let text = attachment["text"].as_str().unwrap();
    assert!(text.contains("spec.path \"./missing\" not found"), "{text}");
    assert!(
        attachment["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["title"] == "revision" && f["value"] == revision.as_str()),
        "{attachment}"
    );

    let teams_error = bodies(&teams, 1, "the failure on Teams").await.remove(0);
    assert_eq!(teams_error["type"], "message");
    let card = &teams_error["attachments"][0];
    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
    let items = &card["content"]["body"][0]["items"];
    assert_eq!(items[0]["text"], format!("kustomization/apps.{}", ns.name()));
    assert_eq!(items[1]["color"], "attention");
    assert!(items[1]["text"].as_str().unwrap().contains("not found"), "{items}");

    // Fixing the path: the recovery reaches Slack (info), not Teams (errors only).
    let api: Api<Kustomization> = Api::namespaced(env.client(), ns.name());
    api.patch("apps", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"path": "./apps"}})))
        .await
        .unwrap();
    let slack_bodies = wait_for(Duration::from_secs(60), "the recovery on Slack", || async {
        let bodies: Vec<Value> =
            slack.requests().iter().filter_map(|r| r.body_json().ok()).collect();
        Ok(bodies
            .iter()
            .any(|b| {
                b["attachments"][0]["color"] == "good"
                    && b["attachments"][0]["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("Applied revision"))
            })
            .then_some(bodies))
    })
    .await
    .unwrap();
    assert!(
        slack_bodies.iter().all(|b| !b["attachments"][0]["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("Building manifests")),
        "the exclusion list filters progress messages"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let teams_bodies: Vec<Value> =
        teams.requests().iter().filter_map(|r| r.body_json().ok()).collect();
    assert!(
        teams_bodies
            .iter()
            .all(|b| b["attachments"][0]["content"]["body"][0]["items"][1]["color"] == "attention"),
        "only errors reach Teams: {teams_bodies:?}"
    );
    for runtime in [notification, kustomize] {
        runtime.shutdown.trigger();
    }
}
