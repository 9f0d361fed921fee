//! The notification-controller against the real apiserver: events to Slack, Teams and generic
//! webhooks through Alerts and Providers, rate limiting, retries, transition-only Alerts,
//! Receivers that trigger reconciles, and secrets that never leak.
//!
//! The controller runs in-process; the providers are [`CaptureServer`]s, and events are posted
//! the way the other controllers post them.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event as KubeEvent;
use kube::api::{Api, ListParams};
use notification_controller::delivery::RetryPolicy;
use notification_controller::providers::sign_sha256;
use notification_controller::{Addresses, Bound, ServerConfig};
use serde_json::{Value, json};
use sluice_api::notification::{Alert, Receiver};
use sluice_api::source::GitRepository;
use sluice_e2e::{CaptureServer, TestEnv, http_client, wait_for};
use sluice_runtime::Runtime;

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    runtime: sluice_runtime::runtime::RuntimeArgs,
}

async fn start_controller(env: &TestEnv) -> (Arc<Runtime>, Bound) {
    sluice_e2e::install_crypto_provider();
    let args = sluice_runtime::runtime::parse_args_from::<Flags, _, _>(
        "4",
        [
            "notification-controller",
            "--metrics-addr=127.0.0.1:0",
            "--health-addr=127.0.0.1:0",
            "--log-level=debug",
        ],
    )
    .runtime;
    let runtime =
        Runtime::start_with_client(notification_controller::CONTROLLER_NAME, args, env.client())
            .await
            .unwrap();
    let addresses =
        Addresses { events: Some("127.0.0.1:0".into()), receiver: Some("127.0.0.1:0".into()) };
    let config = ServerConfig {
        rate_limit_interval: Duration::from_secs(300),
        retry: RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
        },
        queue_capacity: 100,
    };
    let bound =
        notification_controller::start_servers(&runtime, &addresses, &config).await.unwrap();
    tokio::spawn(notification_controller::run(runtime.clone(), Addresses::default(), config));
    (runtime, bound)
}

/// A Flux event as kustomize-controller posts it.
fn event(namespace: &str, name: &str, severity: &str, message: &str, revision: &str) -> Value {
    json!({
        "involvedObject": {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                           "name": name, "namespace": namespace, "uid": "0c9f7a2e-uid"},
        "severity": severity, "timestamp": "2026-11-23T10:00:00Z", "message": message,
        "reason": if severity == "error" { "HealthCheckFailed" } else { "ReconciliationSucceeded" },
        "metadata": {"kustomize.toolkit.fluxcd.io/revision": revision,
                     "kustomize.toolkit.fluxcd.io/checksum": "dropped",
                     "event.toolkit.fluxcd.io/team": "payments"},
        "reportingController": "kustomize-controller", "reportingInstance": "kustomize-controller-0"
    })
}

async fn post(url: &str, body: &Value) -> u16 {
    http_client().post(url).json(body).send().await.unwrap().status().as_u16()
}

async fn last_delivery(api: &Api<Alert>, name: &str, result: &str) -> Value {
    let what = format!("alert {name} to record a {result} delivery");
    wait_for(Duration::from_secs(30), &what, || async {
        let alert = api.get(name).await?;
        let recorded = alert
            .status
            .and_then(|status| status.last_delivery)
            .map(|delivery| serde_json::to_value(delivery).unwrap_or_default());
        Ok(recorded.filter(|value| value["result"] == result))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn events_reach_slack_teams_and_generic_webhooks() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("notify").await.unwrap();
    let slack = CaptureServer::start().unwrap();
    let teams = CaptureServer::start().unwrap();
    let generic = CaptureServer::start().unwrap();
    let slack_address = slack.url_for("/services/T000/B000/SLACKSECRET");
    let yaml = format!(
        r##"apiVersion: v1
kind: Secret
metadata: {{name: slack-url}}
stringData: {{address: "{slack_address}"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: hmac}}
stringData:
  token: HMACSECRET
  headers: |
    X-Team: payments
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: slack}}
spec: {{type: slack, channel: "#deploys", secretRef: {{name: slack-url}}}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: teams}}
spec: {{type: msteams, address: "{teams}/workflows/team-a"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: webhook}}
spec: {{type: generic-hmac, address: "{generic}/hook", secretRef: {{name: hmac}}}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: slack}}
spec:
  providerRef: {{name: slack}}
  eventSources: [{{kind: Kustomization, name: "*"}}]
  eventMetadata: {{summary: "prod cluster"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: teams}}
spec:
  providerRef: {{name: teams}}
  eventSeverity: error
  eventSources: [{{kind: Kustomization, name: webapp}}]
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: webhook}}
spec:
  providerRef: {{name: webhook}}
  eventSources: [{{kind: Kustomization, name: webapp}}]
  exclusionList: ["^ignored"]
"##,
        teams = teams.url(),
        generic = generic.url()
    );
    env.create_yaml(ns.name(), &yaml).await.unwrap();
    // Alerts exist before the controller starts, so its first Alert cache sync holds them.
    let (runtime, bound) = start_controller(&env).await;
    let events_url = format!("http://{}/", bound.events.unwrap());
    let revision = "main@sha1:4f2e1c0d9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e";

    // An info event goes to Slack and the generic webhook; the Teams alert wants errors only.
    let info = event(ns.name(), "webapp", "info", "Applied revision", revision);
    assert_eq!(post(&events_url, &info).await, 202);
    let slack_requests = slack.wait_for_requests(1, Duration::from_secs(30)).await.unwrap();
    let payload = slack_requests[0].body_json().unwrap();
    assert_eq!(slack_requests[0].path, "/services/T000/B000/SLACKSECRET");
    assert_eq!(slack_requests[0].header("content-type"), Some("application/json"));
    assert_eq!(
        payload,
        json!({"channel": "#deploys", "username": "kustomize-controller", "icon_url": "",
               "icon_emoji": "", "attachments": [{
            "fallback": format!("kustomization/webapp.{}: Applied revision", ns.name()),
            "color": "good", "author_name": format!("kustomization/webapp.{}", ns.name()),
            "text": "Applied revision", "mrkdwn_in": ["text"], "fields": [
                {"title": "revision", "value": revision, "short": false},
                {"title": "summary", "value": "prod cluster", "short": false},
                {"title": "team", "value": "payments", "short": false}]}]})
    );
    let generic_requests = generic.wait_for_requests(1, Duration::from_secs(30)).await.unwrap();
    let forwarded = &generic_requests[0];
    assert_eq!(forwarded.header("gotk-component"), Some("kustomize-controller"));
    assert_eq!(forwarded.header("x-team"), Some("payments"));
    assert_eq!(
        forwarded.header("x-signature").unwrap(),
        sign_sha256(&forwarded.body, b"HMACSECRET")
    );
    let body = forwarded.body_json().unwrap();
    assert_eq!(body["metadata"], json!({"revision": revision, "team": "payments"}));
    assert_eq!(body["involvedObject"]["name"], "webapp");
    assert_eq!(body["timestamp"], "2026-11-23T10:00:00Z");

    // The same event again is a duplicate: 429, nothing sent.
    assert_eq!(post(&events_url, &info).await, 429);
    // A new revision with the same message is news.
    let next = event(
        ns.name(),
        "webapp",
        "info",
        "Applied revision",
        "main@sha1:1111111111111111111111111111111111111111",
    );
    assert_eq!(post(&events_url, &next).await, 202);
    slack.wait_for_requests(2, Duration::from_secs(30)).await.unwrap();

    // An error goes to Teams as an Adaptive Card, and to Slack in red.
    let failure = event(ns.name(), "webapp", "error", "health check failed after 5m", revision);
    assert_eq!(post(&events_url, &failure).await, 202);
    let teams_requests = teams.wait_for_requests(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(teams_requests[0].path, "/workflows/team-a");
    let card = teams_requests[0].body_json().unwrap();
    assert_eq!(card["type"], "message");
    let content = &card["attachments"][0]["content"];
    assert_eq!(card["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(
        content["body"][0]["items"][0]["text"],
        format!("kustomization/webapp.{}", ns.name())
    );
    assert_eq!(content["body"][0]["items"][1]["color"], "attention");
    assert_eq!(
        content["body"][0]["items"][2]["facts"][0],
        json!({"title": "revision", "value": revision})
    );
    let slack_requests = slack.wait_for_requests(3, Duration::from_secs(30)).await.unwrap();
    assert_eq!(slack_requests[2].body_json().unwrap()["attachments"][0]["color"], "danger");

    // Excluded messages, other objects (for the name-bound alerts) and other namespaces.
    let excluded = event(ns.name(), "webapp", "info", "ignored: nothing to do", revision);
    assert_eq!(post(&events_url, &excluded).await, 202);
    let elsewhere = event("kube-system", "webapp", "error", "elsewhere", revision);
    assert_eq!(post(&events_url, &elsewhere).await, 202);

    // Bad JSON is 400; a body over 3 MiB is 413.
    let status = http_client().post(&events_url).body("{not json").send().await.unwrap().status();
    assert_eq!(status, 400);
    let huge = "x".repeat(3 * 1024 * 1024 + 10);
    let status = http_client().post(&events_url).body(huge).send().await.unwrap().status();
    assert_eq!(status, 413);

    let alerts: Api<Alert> = Api::namespaced(env.client(), ns.name());
    let recorded = last_delivery(&alerts, "teams", "Succeeded").await;
    assert_eq!(recorded["event"], format!("Kustomization/{}/webapp", ns.name()));
    // Slack got the excluded message (its alert has no exclusion list); the webhook did not.
    slack.wait_for_requests(4, Duration::from_secs(30)).await.unwrap();
    let generic_bodies: Vec<String> = generic
        .requests()
        .iter()
        .map(|r| r.body_json().unwrap()["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        generic_bodies,
        ["Applied revision", "Applied revision", "health check failed after 5m"]
    );
    assert_eq!(teams.requests().len(), 1);
    runtime.shutdown.trigger();
}

#[tokio::test]
async fn failing_providers_are_retried_and_secrets_never_leak() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("notify-retry").await.unwrap();
    let flaky = CaptureServer::start().unwrap();
    let broken = CaptureServer::start().unwrap();
    broken.respond_with(403);
    let broken_address = broken.url_for("/services/T000/B000/LEAKYSECRET");
    let yaml = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: broken-url}}
stringData: {{address: "{broken_address}", token: "xoxb-TOKENSECRET"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: flaky}}
spec: {{type: generic, address: "{flaky}/hook"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: broken}}
spec: {{type: slack, secretRef: {{name: broken-url}}}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: flaky
  annotations: {{notification.sluice.dev/transitions-only: "true"}}
spec:
  providerRef: {{name: flaky}}
  eventSources: [{{kind: Kustomization, name: "*"}}]
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: broken}}
spec:
  providerRef: {{name: broken}}
  eventSources: [{{kind: Kustomization, name: "*"}}]
"#,
        flaky = flaky.url()
    );
    env.create_yaml(ns.name(), &yaml).await.unwrap();
    // Alerts exist before the controller starts, so its first Alert cache sync holds them.
    let (runtime, bound) = start_controller(&env).await;
    let events_url = format!("http://{}/", bound.events.unwrap());
    let revision = "main@sha1:4f2e1c0d9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e";

    // The first attempt fails with 503 and is retried; the failure is sent once even though
    // the controller reports it again (with another message, so not rate-limited), then the
    // recovery goes out.
    flaky.respond_sequence(&[503]);
    let first = event(ns.name(), "api", "error", "health check failed (attempt 1)", revision);
    assert_eq!(post(&events_url, &first).await, 202);
    let alerts: Api<Alert> = Api::namespaced(env.client(), ns.name());
    let retried = last_delivery(&alerts, "flaky", "Succeeded").await;
    assert_eq!(retried["attempts"], 2);
    let again = event(ns.name(), "api", "error", "health check failed (attempt 2)", revision);
    assert_eq!(post(&events_url, &again).await, 202);
    let recovered = event(ns.name(), "api", "info", "Applied revision", revision);
    assert_eq!(post(&events_url, &recovered).await, 202);
    let requests = flaky.wait_for_requests(3, Duration::from_secs(30)).await.unwrap();
    let messages: Vec<String> = requests
        .iter()
        .map(|r| r.body_json().unwrap()["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        messages,
        ["health check failed (attempt 1)", "health check failed (attempt 1)", "Applied revision"]
    );

    // A provider answering 403 is given up at once; the Alert says so, without secrets.
    let failed = last_delivery(&alerts, "broken", "Failed").await;
    assert!(failed["message"].as_str().unwrap().contains("403"), "{failed}");
    let broken_requests = broken.requests();
    assert_eq!(broken_requests[0].header("authorization"), Some("Bearer xoxb-TOKENSECRET"));
    let kube_events: Api<KubeEvent> = Api::namespaced(env.client(), ns.name());
    let dispatch_failed =
        wait_for(Duration::from_secs(30), "a NotificationDispatchFailed event", || async {
            let list = kube_events.list(&ListParams::default()).await?;
            Ok(list
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("NotificationDispatchFailed")))
        })
        .await
        .unwrap();
    assert!(dispatch_failed.message.unwrap_or_default().contains("403"));
    let everything =
        serde_json::to_string(&kube_events.list(&ListParams::default()).await.unwrap().items)
            .unwrap()
            + &serde_json::to_string(&alerts.list(&ListParams::default()).await.unwrap().items)
                .unwrap();
    for secret in ["LEAKYSECRET", "TOKENSECRET"] {
        assert!(!everything.contains(secret), "{secret} leaked: {everything}");
    }
    runtime.shutdown.trigger();
}

#[tokio::test]
async fn receivers_annotate_their_resources() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("receiver").await.unwrap();
    let yaml = r#"apiVersion: v1
kind: Secret
metadata: {name: webhook-token}
stringData: {token: RECEIVERSECRET}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: app}
spec: {url: "https://example.invalid/app.git", interval: 10m}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: labelled-1, labels: {team: a}}
spec: {url: "https://example.invalid/one.git", interval: 10m}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: labelled-2, labels: {team: b}}
spec: {url: "https://example.invalid/two.git", interval: 10m}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: github}
spec:
  type: github
  events: [push]
  secretRef: {name: webhook-token}
  resources:
  - {kind: GitRepository, name: app}
  - {kind: GitRepository, name: "*", matchLabels: {team: a}}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: no-secret}
spec:
  type: gitlab
  secretRef: {name: missing}
  resources: [{kind: GitRepository, name: app}]
"#;
    env.create_yaml(ns.name(), yaml).await.unwrap();
    // Alerts exist before the controller starts, so its first Alert cache sync holds them.
    let (runtime, bound) = start_controller(&env).await;
    let receiver_base = format!("http://{}", bound.receiver.unwrap());
    let receivers: Api<Receiver> = Api::namespaced(env.client(), ns.name());
    let expected_path =
        notification_controller::receiver::webhook_path("RECEIVERSECRET", "github", ns.name());
    let receiver = wait_for(Duration::from_secs(30), "the Receiver to be ready", || async {
        let receiver = receivers.get("github").await?;
        let ready = receiver
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .is_some_and(sluice_runtime::conditions::is_ready);
        Ok(ready.then_some(receiver))
    })
    .await
    .unwrap();
    let status = receiver.status.clone().unwrap();
    assert_eq!(status.webhook_path.as_deref(), Some(expected_path.as_str()));
    let ready = status.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "Succeeded");
    assert_eq!(ready.message, format!("Receiver initialized for path: {expected_path}"));
    sluice_e2e::check_kstatus(&serde_json::to_value(&receiver).unwrap()).unwrap();

    // A receiver whose Secret is missing is not ready and says which Secret to create.
    let broken = wait_for(Duration::from_secs(30), "the broken Receiver to fail", || async {
        let receiver = receivers.get("no-secret").await?;
        let ready = receiver
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.status == "False");
        Ok(ready)
    })
    .await
    .unwrap();
    assert_eq!(broken.reason, "TokenNotFound");
    assert!(broken.message.contains("/missing'"), "{}", broken.message);

    let url = format!("{receiver_base}{expected_path}");
    let payload = br#"{"ref":"refs/heads/main"}"#;
    let call = |signature: String, event: &'static str| {
        http_client()
            .post(&url)
            .header("X-Hub-Signature-256", signature)
            .header("X-GitHub-Event", event)
            .header("Content-Type", "application/json")
            .body(payload.to_vec())
            .send()
    };
    assert_eq!(call(sign_sha256(payload, b"wrong"), "push").await.unwrap().status(), 401);
    assert_eq!(call(sign_sha256(payload, b"RECEIVERSECRET"), "ping").await.unwrap().status(), 400);
    let unknown = http_client().post(format!("{receiver_base}/hook/0000")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let repos: Api<GitRepository> = Api::namespaced(env.client(), ns.name());
    let requested = |repo: GitRepository| {
        repo.metadata
            .annotations
            .unwrap_or_default()
            .get("reconcile.fluxcd.io/requestedAt")
            .cloned()
    };
    assert_eq!(requested(repos.get("app").await.unwrap()), None);
    assert_eq!(call(sign_sha256(payload, b"RECEIVERSECRET"), "push").await.unwrap().status(), 200);
    assert!(requested(repos.get("app").await.unwrap()).is_some());
    assert!(requested(repos.get("labelled-1").await.unwrap()).is_some());
    assert_eq!(requested(repos.get("labelled-2").await.unwrap()), None);
    runtime.shutdown.trigger();
}

#[tokio::test]
async fn commit_statuses_go_to_git_providers_only() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("notify-git").await.unwrap();
    let github = CaptureServer::start().unwrap();
    github.respond_with(201);
    let chat = CaptureServer::start().unwrap();
    let yaml = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: github-token}}
stringData: {{token: ghp_GITHUBSECRET}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: github}}
spec: {{type: github, address: "{github}/acme/app", secretRef: {{name: github-token}}}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {{name: chat}}
spec: {{type: slack, address: "{chat}/hook"}}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: github}}
spec:
  providerRef: {{name: github}}
  eventSources: [{{kind: Kustomization, name: webapp}}]
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {{name: chat}}
spec:
  providerRef: {{name: chat}}
  eventSources: [{{kind: Kustomization, name: webapp}}]
"#,
        github = github.url(),
        chat = chat.url()
    );
    env.create_yaml(ns.name(), &yaml).await.unwrap();
    // Alerts exist before the controller starts, so its first Alert cache sync holds them.
    let (runtime, bound) = start_controller(&env).await;
    let events_url = format!("http://{}/", bound.events.unwrap());
    let sha = "4f2e1c0d9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e";
    let revision = format!("main@sha1:{sha}");

    // A plain info event is chat news, not a commit status.
    let applied = event(ns.name(), "webapp", "info", "Applied revision", &revision);
    assert_eq!(post(&events_url, &applied).await, 202);
    chat.wait_for_requests(1, Duration::from_secs(30)).await.unwrap();
    // A commit status update goes to GitHub only; a failure goes to both.
    let mut update = event(ns.name(), "webapp", "info", "Health checks passed", &revision);
    update["metadata"]["kustomize.toolkit.fluxcd.io/commit_status"] = "update".into();
    assert_eq!(post(&events_url, &update).await, 202);
    let failure = event(ns.name(), "webapp", "error", "health check failed", &revision);
    assert_eq!(post(&events_url, &failure).await, 202);
    let posts = |github: &CaptureServer| -> Vec<sluice_e2e::CapturedRequest> {
        github.requests().into_iter().filter(|r| r.method == "POST").collect()
    };
    wait_for(Duration::from_secs(30), "two commit statuses", || async {
        Ok((posts(&github).len() >= 2).then_some(()))
    })
    .await
    .unwrap();
    let requests = github.requests();
    let path = format!("/api/v3/repos/acme/app/statuses/{sha}");
    // Each status is listed first (GET) so an equal status is not set twice.
    assert_eq!(requests[0].method, "GET");
    assert_eq!(
        requests[0].path,
        format!("/api/v3/repos/acme/app/commits/{sha}/statuses?per_page=50")
    );
    let statuses = posts(&github);
    assert_eq!(statuses[0].path, path);
    assert_eq!(statuses[0].header("authorization"), Some("Bearer ghp_GITHUBSECRET"));
    let context = statuses[0].body_json().unwrap()["context"].as_str().unwrap().to_string();
    assert!(context.starts_with("kustomization/webapp/"), "{context}");
    assert_eq!(
        statuses[0].body_json().unwrap(),
        json!({"state": "success", "description": "reconciliation succeeded", "context": context})
    );
    assert_eq!(statuses[1].body_json().unwrap()["state"], "failure");
    assert_eq!(statuses[1].body_json().unwrap()["description"], "health check failed");
    let chat_requests = chat.wait_for_requests(2, Duration::from_secs(30)).await.unwrap();
    let texts: Vec<Value> = chat_requests
        .iter()
        .map(|r| r.body_json().unwrap()["attachments"][0]["text"].clone())
        .collect();
    assert_eq!(texts, [json!("Applied revision"), json!("health check failed")]);

    // GitHub already shows this failure: the next failure report is not posted again. The
    // provider's queue is ordered, so once the later success is posted the duplicate was seen.
    github.respond_body(
        &json!([{"context": context, "state": "failure", "description": "health check failed"}])
            .to_string(),
    );
    let again = event(ns.name(), "webapp", "error", "health check failed again", &revision);
    assert_eq!(post(&events_url, &again).await, 202);
    let mut recovered = event(ns.name(), "webapp", "info", "Health checks passed again", &revision);
    recovered["metadata"]["kustomize.toolkit.fluxcd.io/commit_status"] = "update".into();
    assert_eq!(post(&events_url, &recovered).await, 202);
    wait_for(Duration::from_secs(30), "the third commit status", || async {
        Ok((posts(&github).len() >= 3).then_some(()))
    })
    .await
    .unwrap();
    let states: Vec<Value> =
        posts(&github).iter().map(|r| r.body_json().unwrap()["state"].clone()).collect();
    assert_eq!(states, [json!("success"), json!("failure"), json!("success")]);
    assert_eq!(github.requests().iter().filter(|r| r.method == "GET").count(), 4);
    runtime.shutdown.trigger();
}
