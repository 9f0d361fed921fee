//! The HTTP servers: the event server (`--events-addr`) and the webhook receiver (`--receiverAddr`).
//!
//! Event pipeline (fluxcd/notification-controller `internal/server/event_server.go` and
//! `event_handlers.go`): body limit (413) → JSON decode (400) → metadata cleanup → rate limit
//! of identical events (429) → internal metadata dropped → Alerts matched → per Alert: the
//! Provider read, its Secrets resolved, the request built and queued → `202 Accepted`.
//! Deliveries and their results are in [`crate::delivery`]; the last result of each Alert is
//! written to its `status.lastDelivery` (`Succeeded`, `Retrying` or `Failed`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use sluice_api::meta::RECONCILE_REQUEST_ANNOTATION;
use sluice_api::notification::{Alert, CrossNamespaceObjectReference, Provider, Receiver};
use sluice_runtime::Runtime;
use sluice_runtime::events::Severity;
use tokio::sync::mpsc;

use crate::alert::{
    SourceMatch, TransitionTracker, combine_metadata, is_transitions_only, labels_match,
    message_allowed, source_matches,
};
use crate::delivery::{
    AlertRef, Delivery, DeliveryOutcome, DeliveryQueue, DeliveryResult, RetryPolicy, Transport,
    mask,
};
use crate::event::{
    EVENT_GROUP, Event, MAX_REQUEST_BYTES, cleanup_metadata, exclude_internal_metadata,
    rate_limit_key,
};
use crate::providers::{ProviderSettings, build_request, default_commit_status};
use crate::ratelimit::RateLimiter;
use crate::receiver::{Call, default_api_version, validate};

/// The default Provider timeout (Flux's 15 s).
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of the servers.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// One event per key per this interval (`--rate-limit-interval`).
    pub rate_limit_interval: Duration,
    /// How failing deliveries are retried.
    pub retry: RetryPolicy,
    /// Notifications held per Provider queue.
    pub queue_capacity: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            rate_limit_interval: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            queue_capacity: 1000,
        }
    }
}

/// State of the event server.
pub struct EventServer {
    runtime: Arc<Runtime>,
    limiter: RateLimiter,
    queue: DeliveryQueue,
    transitions: TransitionTracker,
    alerts: reflector::Store<Alert>,
}

impl EventServer {
    /// An event server delivering through a fresh queue; starts the task that records delivery
    /// results on the Alerts, and a watch that caches the Alerts (events arrive far more often
    /// than Alerts change; listing them per event would load the apiserver).
    pub fn new(runtime: Arc<Runtime>, config: &ServerConfig) -> Arc<Self> {
        let (results, reported) = mpsc::unbounded_channel();
        tokio::spawn(record_results(runtime.clone(), reported));
        let (alerts, writer) = reflector::store();
        let stream = watcher(
            alerts_api(&runtime),
            watcher::Config { page_size: None, ..watcher::Config::default().any_semantic() },
        )
        .default_backoff()
        .reflect(writer)
        .applied_objects();
        let shutdown = runtime.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stream.for_each(|_| std::future::ready(())) => {}
                _ = shutdown.wait() => {}
            }
        });
        Arc::new(EventServer {
            runtime,
            limiter: RateLimiter::new(config.rate_limit_interval),
            queue: DeliveryQueue::new(config.retry, config.queue_capacity, results),
            transitions: TransitionTracker::default(),
            alerts,
        })
    }

    /// The Alerts: from the watch cache once it has synced, else listed.
    async fn list_alerts(&self) -> Vec<Alert> {
        let synced = tokio::time::timeout(Duration::from_secs(5), self.alerts.wait_until_ready())
            .await
            .is_ok_and(|ready| ready.is_ok());
        if synced {
            return self.alerts.state().iter().map(|alert| (**alert).clone()).collect();
        }
        match alerts_api(&self.runtime).list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(error) => {
                tracing::error!(error = %sluice_runtime::conditions::error_message(&error), "failed listing alerts");
                Vec::new()
            }
        }
    }

    /// The router: every path and method is the event endpoint, as in Flux.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .fallback(handle_event)
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(self)
    }

    /// Handles one decoded event; returns the HTTP status.
    pub async fn dispatch(&self, mut event: Event) -> StatusCode {
        cleanup_metadata(&mut event);
        if !self.limiter.allow(&rate_limit_key(&event)) {
            tracing::debug!(object = %event.object_string(), "discarding event, rate limiting duplicate events");
            return StatusCode::TOO_MANY_REQUESTS;
        }
        exclude_internal_metadata(&mut event);
        let alerts = self.list_alerts().await;
        let mut matched = Vec::new();
        for alert in alerts {
            if self.matches(&alert, &event).await {
                matched.push(alert);
            }
        }
        if matched.is_empty() {
            tracing::info!(object = %event.object_string(), "discarding event, no alerts found for the involved object");
            return StatusCode::ACCEPTED;
        }
        tracing::info!(object = %event.object_string(), message = %event.message, "dispatching event");
        for alert in &matched {
            if let Err(message) = self.dispatch_to(alert, &event).await {
                tracing::error!(alert = %alert.name_any(), error = %message, "failed to dispatch notification");
                self.warn(
                    alert,
                    "NotificationDispatchFailed",
                    &format!(
                        "failed to dispatch notification for {}: {message}",
                        event.object_string()
                    ),
                )
                .await;
            }
        }
        StatusCode::ACCEPTED
    }

    async fn warn(&self, alert: &Alert, reason: &str, message: &str) {
        self.runtime.events.record(alert, Severity::Error, reason, message, &BTreeMap::new()).await;
    }

    async fn matches(&self, alert: &Alert, event: &Event) -> bool {
        if alert.spec.suspend.unwrap_or(false) {
            return false;
        }
        let mut matched = false;
        for source in &alert.spec.event_sources {
            match source_matches(alert, source, event) {
                SourceMatch::No => {}
                SourceMatch::Yes => matched = true,
                SourceMatch::IfLabels(wanted) => match self.object_labels(event).await {
                    Ok(labels) => matched = labels_match(wanted, &labels),
                    Err(message) => {
                        self.warn(
                            alert,
                            "SourceFetchFailed",
                            &format!(
                                "error getting source object {}: {message}",
                                event.object_string()
                            ),
                        )
                        .await;
                    }
                },
            }
            if matched {
                break;
            }
        }
        if !matched {
            return false;
        }
        let (allowed, invalid) = message_allowed(alert, &event.message);
        for regex in invalid {
            self.warn(
                alert,
                "InvalidConfig",
                &format!("failed to compile {} regex: {}", regex.list, regex.expression),
            )
            .await;
        }
        allowed
    }

    async fn object_labels(&self, event: &Event) -> Result<BTreeMap<String, String>, String> {
        let object = &event.involved_object;
        let api_version = object.api_version.as_deref().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, object.kind.as_deref().unwrap_or_default());
        let resource = ApiResource::from_gvk(&gvk);
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.runtime.client.clone(),
            object.namespace.as_deref().unwrap_or_default(),
            &resource,
        );
        let meta = api
            .get_metadata(object.name.as_deref().unwrap_or_default())
            .await
            .map_err(|error| sluice_runtime::conditions::error_message(&error))?;
        Ok(meta.metadata.labels.unwrap_or_default())
    }

    async fn dispatch_to(&self, alert: &Alert, event: &Event) -> Result<(), String> {
        let alert_namespace = alert.namespace().unwrap_or_default();
        if self.runtime.args.no_cross_namespace_refs
            && event.involved_object.namespace.as_deref() != Some(alert_namespace.as_str())
        {
            return Err(format!(
                "discarding event, access denied to cross-namespace sources: alert '{alert_namespace}/{}' \
                 can't process event from '{}', cross-namespace references have been blocked",
                alert.name_any(),
                event.object_string()
            ));
        }
        let providers: Api<Provider> =
            Api::namespaced(self.runtime.client.clone(), &alert_namespace);
        let provider_name = &alert.spec.provider_ref.name;
        let provider = providers.get(provider_name).await.map_err(|error| {
            format!(
                "failed to read provider: {}",
                sluice_runtime::conditions::error_message(&error)
            )
        })?;
        if provider.spec.suspend.unwrap_or(false) {
            return Ok(());
        }
        let type_ = provider.spec.type_.as_str();
        let commit_status_update = event.group_metadata("commit_status") == Some("update");
        let is_git = matches!(
            type_,
            "github" | "gitlab" | "gitea" | "bitbucket" | "bitbucketserver" | "azuredevops"
        );
        let is_generic = matches!(type_, "generic" | "generic-hmac");
        // Commit status updates are for git providers (and forwarded by generic webhooks);
        // git providers only take events about a commit, status updates and failures.
        if !is_git && !is_generic && commit_status_update {
            return Ok(());
        }
        let has_commit =
            event.metadata.get(&format!("{EVENT_GROUP}/commit")).is_some_and(|c| !c.is_empty());
        if is_git && !has_commit && !commit_status_update && !event.is_error() {
            tracing::info!(alert = %alert.name_any(), "event dropped for commit status providers due to missing commit metadata key");
            return Ok(());
        }
        let (metadata, conflicts) = combine_metadata(event, alert);
        if !conflicts.is_empty() {
            tracing::info!(alert = %alert.name_any(), conflicting_keys = ?conflicts,
                "warning: metadata key conflicts detected");
            self.warn(alert, "MetadataAppendFailed",
                "metadata key conflicts detected (please refer to the Alert API docs and Flux RFC 0008 for more information)").await;
        }
        let mut notification = event.clone();
        if !metadata.is_empty() {
            notification.metadata = metadata;
        }
        let alert_key = format!("{alert_namespace}/{}", alert.name_any());
        let transitions_only = is_transitions_only(alert);
        if transitions_only
            && !self.transitions.should_send(&alert_key, &event.object_string(), event.is_error())
        {
            tracing::debug!(alert = %alert_key, object = %event.object_string(),
                "transition-only alert: the object is still failing, not sending again");
            return Ok(());
        }
        let (mut settings, transport) = resolve_provider(&self.runtime.client, &provider).await?;
        if is_git {
            settings.commit_status = default_commit_status(
                provider.meta().uid.as_deref().unwrap_or_default(),
                &notification,
            );
        }
        let secrets = settings.secret_values();
        let request = match build_request(&settings, &notification) {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(error) => {
                return Err(mask(
                    &format!(
                        "failed to initialize notifier for provider '{provider_name}': {error}"
                    ),
                    &secrets,
                ));
            }
        };
        let delivery = Delivery {
            alert: AlertRef { namespace: alert_namespace.clone(), name: alert.name_any() },
            provider: format!("{alert_namespace}/{provider_name}"),
            object: event.object_string(),
            request,
            transport,
            secrets,
        };
        self.queue.enqueue(delivery).map_err(|error| error.to_string())?;
        if transitions_only {
            self.transitions.record_sent(&alert_key, &event.object_string(), event.is_error());
        }
        Ok(())
    }
}

/// The Alerts this process serves: all namespaces, or the runtime's (`--watch-all-namespaces`).
fn alerts_api(runtime: &Runtime) -> Api<Alert> {
    let client = runtime.client.clone();
    if runtime.args.watch_all_namespaces {
        Api::all(client)
    } else {
        Api::namespaced(client, &runtime.namespace)
    }
}

async fn handle_event(State(server): State<Arc<EventServer>>, body: Bytes) -> StatusCode {
    let event: Event = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(error) => {
            tracing::error!(%error, "decoding the request body failed");
            return StatusCode::BAD_REQUEST;
        }
    };
    server.dispatch(event).await
}

async fn read_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets.get(name).await.map_err(|error| {
        format!(
            "failed to get secret '{namespace}/{name}': {}",
            sluice_runtime::conditions::error_message(&error)
        )
    })?;
    let mut data: BTreeMap<String, Vec<u8>> =
        secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    for (key, value) in secret.string_data.unwrap_or_default() {
        data.insert(key, value.into_bytes());
    }
    Ok(data)
}

fn text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Option<String> {
    data.get(key).map(|value| String::from_utf8_lossy(value).trim().to_string())
}

/// Reads a Provider's Secrets into settings and transport.
///
/// # Errors
/// A message naming the Secret or key to fix; never a secret value.
pub async fn resolve_provider(
    client: &kube::Client,
    provider: &Provider,
) -> Result<(ProviderSettings, Transport), String> {
    let namespace = provider.namespace().unwrap_or_default();
    let spec = &provider.spec;
    let mut settings = ProviderSettings {
        type_: spec.type_.clone(),
        address: spec.address.clone().unwrap_or_default(),
        channel: spec.channel.clone().unwrap_or_default(),
        username: spec.username.clone().unwrap_or_default(),
        ..Default::default()
    };
    let timeout = match spec.timeout.as_deref() {
        Some(raw) => sluice_runtime::object::parse_go_duration(raw)
            .map_err(|error| format!("invalid spec.timeout {raw:?}: {error}"))?,
        None => DEFAULT_PROVIDER_TIMEOUT,
    };
    let mut transport = Transport {
        proxy: spec.proxy.clone().filter(|p| !p.is_empty()),
        timeout,
        ..Default::default()
    };
    let mut secret_data = None;
    if let Some(secret_ref) = &spec.secret_ref {
        let data = read_secret(client, &namespace, &secret_ref.name).await?;
        if let Some(address) = text(&data, "address") {
            if address.len() > 2048 {
                return Err(
                    "invalid address in secret: address exceeds maximum length of 2048 bytes"
                        .into(),
                );
            }
            settings.address = address;
        }
        if let Some(token) = text(&data, "token") {
            settings.token = token;
        }
        if let Some(password) = text(&data, "password") {
            settings.password = password;
        }
        if let Some(username) = text(&data, "username").filter(|u| !u.is_empty())
            && settings.username.is_empty()
        {
            settings.username = username;
        }
        if let Some(proxy) = text(&data, "proxy").filter(|p| !p.is_empty()) {
            transport.proxy = Some(proxy);
        }
        if let Some(headers) = text(&data, "headers") {
            settings.headers = serde_saphyr::from_str(&headers).map_err(|_| {
                format!("failed to read headers from secret '{namespace}/{}': the 'headers' key must be a YAML map of strings", secret_ref.name)
            })?;
        }
        secret_data = Some(data);
    }
    if let Some(proxy_ref) = &spec.proxy_secret_ref {
        let data = read_secret(client, &namespace, &proxy_ref.name).await?;
        let address = text(&data, "address").filter(|a| !a.is_empty()).ok_or_else(|| {
            format!(
                "failed to get proxy URL: secret '{namespace}/{}' has no 'address' key",
                proxy_ref.name
            )
        })?;
        let mut url = reqwest::Url::parse(&address).map_err(|_| {
            format!(
                "failed to get proxy URL: invalid 'address' in secret '{namespace}/{}'",
                proxy_ref.name
            )
        })?;
        if let Some(username) = text(&data, "username").filter(|u| !u.is_empty()) {
            let _ = url.set_username(&username);
            let _ = url.set_password(text(&data, "password").as_deref());
        }
        transport.proxy = Some(url.to_string());
    }
    let tls_data = match &spec.cert_secret_ref {
        Some(cert_ref) => Some(read_secret(client, &namespace, &cert_ref.name).await?),
        // Git providers also take a CA from their token Secret.
        None if matches!(spec.type_.as_str(), "github" | "gitlab") => {
            secret_data.filter(|data| data.contains_key("ca.crt"))
        }
        None => None,
    };
    if let Some(data) = tls_data {
        transport.ca_pem = data.get("ca.crt").or_else(|| data.get("caFile")).cloned();
        if let (Some(cert), Some(key)) = (data.get("tls.crt"), data.get("tls.key")) {
            let mut identity = cert.clone();
            identity.push(b'\n');
            identity.extend_from_slice(key);
            transport.identity_pem = Some(identity);
        }
    }
    Ok((settings, transport))
}

/// Records every delivery result on its Alert: `status.lastDelivery`, and a
/// `NotificationDispatchFailed` Warning event when a notification is given up.
async fn record_results(
    runtime: Arc<Runtime>,
    mut results: mpsc::UnboundedReceiver<DeliveryResult>,
) {
    while let Some(result) = results.recv().await {
        let alerts: Api<Alert> = Api::namespaced(runtime.client.clone(), &result.alert.namespace);
        let patch = json!({"status": {"lastDelivery": {
            "time": jiff::Timestamp::now().to_string(),
            "result": result.outcome.as_str(),
            "attempts": result.attempts,
            "event": result.object,
            "message": result.message,
        }}});
        let params = PatchParams {
            field_manager: Some(runtime.controller.to_string()),
            ..Default::default()
        };
        match alerts.patch_status(&result.alert.name, &params, &Patch::Merge(&patch)).await {
            Ok(alert) => {
                if result.outcome == DeliveryOutcome::Failed {
                    let message = format!(
                        "failed to send notification for {}: {}",
                        result.object, result.message
                    );
                    runtime
                        .events
                        .record(
                            &alert,
                            Severity::Error,
                            "NotificationDispatchFailed",
                            &message,
                            &BTreeMap::new(),
                        )
                        .await;
                }
            }
            Err(error) => {
                tracing::warn!(alert = %result.alert.name, namespace = %result.alert.namespace,
                error = %sluice_runtime::conditions::error_message(&error), "failed to record the delivery result")
            }
        }
    }
}

/// State of the webhook receiver server.
pub struct ReceiverServer {
    runtime: Arc<Runtime>,
}

impl ReceiverServer {
    /// A receiver server on the runtime's client.
    pub fn new(runtime: Arc<Runtime>) -> Arc<Self> {
        Arc::new(ReceiverServer { runtime })
    }

    /// The router: `/hook/<digest>` for every method.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .fallback(handle_hook)
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(self)
    }

    fn receivers_api(&self) -> Api<Receiver> {
        let client = self.runtime.client.clone();
        if self.runtime.args.watch_all_namespaces {
            Api::all(client)
        } else {
            Api::namespaced(client, &self.runtime.namespace)
        }
    }

    /// Handles a call to `path`; returns the HTTP status.
    pub async fn handle(&self, path: &str, call: Call) -> StatusCode {
        let receivers = match self.receivers_api().list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(error) => {
                tracing::error!(error = %sluice_runtime::conditions::error_message(&error), "unable to list receivers");
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
        };
        let Some(receiver) = receivers
            .into_iter()
            .find(|r| r.status.as_ref().and_then(|s| s.webhook_path.as_deref()) == Some(path))
        else {
            return StatusCode::NOT_FOUND;
        };
        let namespace = receiver.namespace().unwrap_or_default();
        let name = receiver.name_any();
        let ready = receiver
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .is_some_and(sluice_runtime::conditions::is_ready);
        if receiver.spec.suspend.unwrap_or(false) || !ready {
            tracing::error!(%namespace, %name, suspended = receiver.spec.suspend.unwrap_or(false),
                "unable to process request: receiver is suspended or not ready");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let token = match read_secret(
            &self.runtime.client,
            &namespace,
            &receiver.spec.secret_ref.name,
        )
        .await
        {
            Ok(data) => match data.get("token") {
                Some(token) => String::from_utf8_lossy(token).to_string(),
                None => {
                    tracing::error!(%namespace, %name, "unable to validate payload: secret has no 'token' key");
                    return StatusCode::BAD_REQUEST;
                }
            },
            Err(message) => {
                tracing::error!(%namespace, %name, error = %message, "unable to validate payload");
                return StatusCode::BAD_REQUEST;
            }
        };
        let events = receiver.spec.events.clone().unwrap_or_default();
        if let Err(rejection) = validate(&receiver.spec.type_, &token, &events, &call) {
            tracing::error!(%namespace, %name, error = %mask(rejection.message(), &[token]), "unable to validate payload");
            // A failed signature or token check is an authentication failure; Flux answers
            // 400 for every refusal, we answer 401 so senders and operators can tell them apart.
            return if rejection.is_unauthorized() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            };
        }
        tracing::info!(%namespace, %name, type_ = %receiver.spec.type_, "handling webhook");
        let mut failed = false;
        for resource in &receiver.spec.resources {
            if let Err(message) = self.request_reconciliation(resource, &namespace).await {
                tracing::error!(%namespace, %name, kind = %resource.kind, resource = %resource.name,
                    error = %message, "unable to request reconciliation");
                failed = true;
            }
        }
        if failed { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
    }

    async fn request_reconciliation(
        &self,
        resource: &CrossNamespaceObjectReference,
        default_namespace: &str,
    ) -> Result<(), String> {
        let namespace = match resource.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(other)
                if other != default_namespace && self.runtime.args.no_cross_namespace_refs =>
            {
                return Err("cross-namespace references are not allowed".into());
            }
            Some(other) => other,
            None => default_namespace,
        };
        let api_version = match resource.api_version.as_deref().filter(|v| !v.is_empty()) {
            Some(version) => version.to_string(),
            None => default_api_version(&resource.kind)
                .ok_or_else(|| {
                    format!("apiVersion must be specified for kind {:?}", resource.kind)
                })?
                .to_string(),
        };
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version.as_str()));
        let api_resource =
            ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &resource.kind));
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.runtime.client.clone(), namespace, &api_resource);
        let names = if resource.name == "*" {
            let labels = resource
                .match_labels
                .as_ref()
                .ok_or("matchLabels field not set when using wildcard '*' as name")?;
            let selector =
                labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            let list = api.list_metadata(&ListParams::default().labels(&selector)).await.map_err(|error| {
                format!("failed listing resources in namespace {namespace:?} by matching labels: {}",
                    sluice_runtime::conditions::error_message(&error))
            })?;
            if list.items.is_empty() {
                tracing::warn!(kind = %resource.kind, %namespace, %selector, "no resources found with matching labels");
            }
            list.items.into_iter().map(|item| item.name_any()).collect()
        } else {
            vec![resource.name.clone()]
        };
        let token = jiff::Timestamp::now().to_string();
        let patch = json!({"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: token}}});
        let params = PatchParams {
            field_manager: Some(self.runtime.controller.to_string()),
            ..Default::default()
        };
        for name in names {
            api.patch_metadata(&name, &params, &Patch::Merge(&patch)).await.map_err(|error| {
                format!(
                    "unable to annotate {} '{namespace}/{name}': {}",
                    resource.kind,
                    sluice_runtime::conditions::error_message(&error)
                )
            })?;
            tracing::info!(kind = %resource.kind, %namespace, %name, "resource annotated");
        }
        Ok(())
    }
}

async fn handle_hook(State(server): State<Arc<ReceiverServer>>, request: Request) -> StatusCode {
    let path = request.uri().path().to_string();
    if !path.starts_with(crate::receiver::WEBHOOK_PATH_PREFIX) {
        return StatusCode::NOT_FOUND;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE,
    };
    server.handle(&path, Call { headers: header_map(&parts.headers), body: body.to_vec() }).await
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (name, value) in headers {
        map.entry(name.as_str().to_ascii_lowercase())
            .or_insert_with(|| String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    map
}
