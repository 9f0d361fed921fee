//! The delivery queue: one ordered queue per Provider, retried with backoff, results reported.
//!
//! Flux posts each notification once from a goroutine (with four quick HTTP retries) and only
//! logs a failure. Here every notification goes into its Provider's queue; a worker sends the
//! head, and on a transient failure (connection error, timeout, 429, 5xx) waits with a doubling
//! delay and sends it again, up to [`RetryPolicy::max_attempts`]; later notifications wait
//! behind it so a provider sees events in order. Every attempt's outcome is sent as a
//! [`DeliveryResult`] to the caller, which records it on the Alert.
//!
//! Secrets (address, token, header values) are masked out of every message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::providers::{Request, ResponseCheck};

/// How failing deliveries are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per notification, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each later one.
    pub min_delay: Duration,
    /// The longest wait between attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts over about eight minutes: 2 s, 4 s, … capped at 5 min.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            min_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.min_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// How to reach a provider: proxy, TLS material and timeout.
///
/// `Debug` says which parts are set, not their values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Transport {
    /// Proxy URL (may carry credentials; never logged).
    pub proxy: Option<String>,
    /// PEM CA bundle to trust in addition to the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate followed by its key.
    pub identity_pem: Option<Vec<u8>>,
    /// Timeout of one attempt (the Provider's `spec.timeout`, default 15 s).
    pub timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("proxy", &self.proxy.is_some())
            .field("ca", &self.ca_pem.is_some())
            .field("identity", &self.identity_pem.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The Alert a delivery belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AlertRef {
    /// Namespace of the Alert.
    pub namespace: String,
    /// Name of the Alert.
    pub name: String,
}

/// One notification waiting to be sent (`Debug` leaves the secrets out).
#[derive(Clone)]
pub struct Delivery {
    /// The Alert that matched.
    pub alert: AlertRef,
    /// The queue key: `<namespace>/<provider name>`.
    pub provider: String,
    /// The involved object, `<Kind>/<namespace>/<name>`.
    pub object: String,
    /// The request to make.
    pub request: Request,
    /// How to reach the provider.
    pub transport: Transport,
    /// Values to mask out of messages.
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("alert", &self.alert)
            .field("provider", &self.provider)
            .field("object", &self.object)
            .field("request", &self.request)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// The outcome of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The provider accepted the notification.
    Succeeded,
    /// The attempt failed and another will follow after `retry_in`.
    Retrying {
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// The notification was given up.
    Failed,
}

impl DeliveryOutcome {
    /// `Succeeded`, `Retrying` or `Failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryOutcome::Succeeded => "Succeeded",
            DeliveryOutcome::Retrying { .. } => "Retrying",
            DeliveryOutcome::Failed => "Failed",
        }
    }
}

/// What happened to a notification, reported after every attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryResult {
    /// The Alert the notification belongs to.
    pub alert: AlertRef,
    /// The involved object, `<Kind>/<namespace>/<name>`.
    pub object: String,
    /// The outcome.
    pub outcome: DeliveryOutcome,
    /// Attempts made so far.
    pub attempts: u32,
    /// The failure (masked), empty on success.
    pub message: String,
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// What went wrong (not yet masked).
    pub message: String,
}

/// Replaces every secret value in `text` with `*****`.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut masked = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        masked = masked.replace(secret.as_str(), "*****");
    }
    masked
}

/// The error chain of a reqwest error, without the URL it carries.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn build_client(transport: &Transport) -> Result<reqwest::Client, SendError> {
    let permanent = |message: String| SendError { retryable: false, message };
    let mut builder = reqwest::Client::builder().timeout(transport.timeout);
    if let Some(proxy) = &transport.proxy {
        let proxy = reqwest::Proxy::all(proxy.as_str())
            .map_err(|error| permanent(format!("invalid proxy address: {}", describe(error))))?;
        builder = builder.proxy(proxy);
    }
    if let Some(ca) = &transport.ca_pem {
        for certificate in reqwest::Certificate::from_pem_bundle(ca)
            .map_err(|error| permanent(format!("invalid CA certificate: {}", describe(error))))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some(identity) = &transport.identity_pem {
        let identity = reqwest::Identity::from_pem(identity).map_err(|error| {
            permanent(format!("invalid client certificate or key: {}", describe(error)))
        })?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|error| permanent(format!("building the HTTP client: {}", describe(error))))
}

/// Makes one attempt to deliver `request`.
///
/// # Errors
/// A [`SendError`] saying whether a retry may help.
pub async fn send(request: &Request, transport: &Transport) -> Result<(), SendError> {
    send_with(&build_client(transport)?, request).await
}

/// Judges a failed response status like Flux's HTTP client: 408, 429 and 5xx (but 501) may
/// pass on a retry.
fn status_error(status: reqwest::StatusCode, body: &[u8]) -> SendError {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(256).collect();
    SendError {
        retryable: status.as_u16() == 429
            || status.as_u16() == 408
            || (status.is_server_error() && status.as_u16() != 501),
        message: format!("request failed with status code {}: {text}", status.as_u16()),
    }
}

/// Whether the commit status the request would set is already there.
async fn is_duplicate(client: &reqwest::Client, request: &Request) -> Result<bool, SendError> {
    let Some(check) = &request.duplicate_check else { return Ok(false) };
    let mut builder = client.get(&check.url);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = builder.send().await.map_err(|error| SendError {
        retryable: true,
        message: format!("could not list commit statuses: {}", describe(error)),
    })?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        let error = status_error(status, &body);
        return Err(SendError {
            message: format!("could not list commit statuses: {}", error.message),
            ..error
        });
    }
    let listing: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    Ok(check.is_duplicate(&listing))
}

/// [`send`] with a client built for the request's transport.
async fn send_with(client: &reqwest::Client, request: &Request) -> Result<(), SendError> {
    if is_duplicate(client, request).await? {
        return Ok(());
    }
    let mut builder = client
        .post(&request.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(request.body.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = builder.send().await.map_err(|error| SendError {
        retryable: true,
        message: format!("failed to execute request: {}", describe(error)),
    })?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        return Err(status_error(status, &body));
    }
    if request.check == ResponseCheck::SlackApi {
        #[derive(serde::Deserialize)]
        struct SlackResponse {
            #[serde(default)]
            ok: bool,
            #[serde(default)]
            error: String,
        }
        let answer: SlackResponse = serde_json::from_slice(&body).map_err(|error| SendError {
            retryable: false,
            message: format!("unable to unmarshal response body: {error}"),
        })?;
        if !answer.ok {
            return Err(SendError {
                retryable: answer.error == "ratelimited",
                message: format!("Slack responded with error: {}", answer.error),
            });
        }
    }
    Ok(())
}

/// The per-Provider queues and their workers.
pub struct DeliveryQueue {
    policy: RetryPolicy,
    capacity: usize,
    queues: Mutex<HashMap<String, mpsc::Sender<Delivery>>>,
    results: mpsc::UnboundedSender<DeliveryResult>,
}

/// The queue of a provider is full; the notification was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the delivery queue of provider {provider} is full ({capacity} notifications waiting)")]
pub struct QueueFull {
    /// `<namespace>/<name>` of the Provider.
    pub provider: String,
    /// The queue capacity.
    pub capacity: usize,
}

impl DeliveryQueue {
    /// Queues retrying with `policy`, holding up to `capacity` notifications per provider, and
    /// reporting every attempt to `results`.
    pub fn new(
        policy: RetryPolicy,
        capacity: usize,
        results: mpsc::UnboundedSender<DeliveryResult>,
    ) -> Self {
        DeliveryQueue { policy, capacity, queues: Mutex::new(HashMap::new()), results }
    }

    /// Queues `delivery` behind the other notifications of its provider.
    ///
    /// # Errors
    /// When the provider's queue is full.
    pub fn enqueue(&self, delivery: Delivery) -> Result<(), QueueFull> {
        let mut queues = self.queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = delivery.provider.clone();
        let sender = queues.entry(key.clone()).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(self.capacity);
            tokio::spawn(work(receiver, self.policy, self.results.clone()));
            sender
        });
        match sender.try_send(delivery) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(QueueFull { provider: key, capacity: self.capacity })
            }
            Err(mpsc::error::TrySendError::Closed(delivery)) => {
                // The worker ended (runtime shutting down); start a new one.
                let (sender, receiver) = mpsc::channel(self.capacity);
                tokio::spawn(work(receiver, self.policy, self.results.clone()));
                let result = sender.try_send(delivery);
                queues.insert(key.clone(), sender);
                result.map_err(|_| QueueFull { provider: key, capacity: self.capacity })
            }
        }
    }
}

async fn work(
    mut receiver: mpsc::Receiver<Delivery>,
    policy: RetryPolicy,
    results: mpsc::UnboundedSender<DeliveryResult>,
) {
    // A provider's notifications share one transport; building a client (TLS roots, proxy)
    // per notification would cost more than the POST.
    let mut cached: Option<(Transport, reqwest::Client)> = None;
    while let Some(delivery) = receiver.recv().await {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let client = match &cached {
                Some((transport, client)) if *transport == delivery.transport => Ok(client.clone()),
                _ => build_client(&delivery.transport).inspect(|client| {
                    cached = Some((delivery.transport.clone(), client.clone()));
                }),
            };
            let result = match client {
                Ok(client) => send_with(&client, &delivery.request).await,
                Err(error) => Err(error),
            };
            let (outcome, message) = match result {
                Ok(()) => (DeliveryOutcome::Succeeded, String::new()),
                Err(error) if error.retryable && attempts < policy.max_attempts => {
                    (DeliveryOutcome::Retrying { retry_in: policy.delay(attempts) }, error.message)
                }
                Err(error) => (DeliveryOutcome::Failed, error.message),
            };
            let message = mask(&message, &delivery.secrets);
            if !message.is_empty() {
                tracing::warn!(alert = %format!("{}/{}", delivery.alert.namespace, delivery.alert.name),
                    provider = %delivery.provider, object = %delivery.object, attempts,
                    result = outcome.as_str(), error = %message, "notification delivery failed");
            }
            let retry_in = match &outcome {
                DeliveryOutcome::Retrying { retry_in } => Some(*retry_in),
                _ => None,
            };
            let _ = results.send(DeliveryResult {
                alert: delivery.alert.clone(),
                object: delivery.object.clone(),
                outcome,
                attempts,
                message,
            });
            match retry_in {
                Some(wait) => tokio::time::sleep(wait).await,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..=9).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(policy.delay(1000), Duration::from_secs(300));
    }

    #[test]
    fn masking() {
        let secrets =
            vec!["https://hooks.slack.com/services/T/B/X".to_string(), "tok3n".to_string()];
        assert_eq!(
            mask("posting to https://hooks.slack.com/services/T/B/X with tok3n failed", &secrets),
            "posting to ***** with ***** failed"
        );
        assert_eq!(mask("nothing", &[String::new()]), "nothing");
    }

    /// A loopback server answering with `statuses` in turn (then 200), counting requests.
    async fn server(statuses: Vec<u16>, body: &'static str) -> (String, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let app = axum::Router::new().fallback(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let status = statuses.get(n).copied().unwrap_or(200);
            async move { (StatusCode::from_u16(status).unwrap(), body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, count)
    }

    fn delivery(url: &str) -> Delivery {
        Delivery {
            alert: AlertRef { namespace: "apps".into(), name: "a".into() },
            provider: "apps/p".into(),
            object: "Kustomization/apps/web".into(),
            request: Request {
                url: url.to_string(),
                headers: vec![],
                body: b"{}".to_vec(),
                check: ResponseCheck::Status,
                duplicate_check: None,
            },
            transport: Transport { timeout: Duration::from_secs(5), ..Default::default() },
            secrets: vec![url.to_string()],
        }
    }

    fn install_crypto() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[tokio::test]
    async fn send_judges_statuses_and_slack_answers() {
        install_crypto();
        let (url, _) = server(vec![500, 404, 429], "{}").await;
        let request = delivery(&url).request;
        let transport = delivery(&url).transport;
        let first = send(&request, &transport).await.unwrap_err();
        assert!(first.retryable);
        assert_eq!(first.message, "request failed with status code 500: {}");
        assert!(!send(&request, &transport).await.unwrap_err().retryable);
        assert!(send(&request, &transport).await.unwrap_err().retryable);
        send(&request, &transport).await.unwrap();

        let (url, _) = server(vec![], r#"{"ok":false,"error":"channel_not_found"}"#).await;
        let mut slack = delivery(&url).request;
        slack.check = ResponseCheck::SlackApi;
        let error = send(&slack, &transport).await.unwrap_err();
        assert_eq!(error.message, "Slack responded with error: channel_not_found");
        slack.check = ResponseCheck::Status;
        send(&slack, &transport).await.unwrap();
    }

    #[tokio::test]
    async fn requests_go_through_the_proxy() {
        install_crypto();
        let (proxy_url, count) = server(vec![], "{}").await;
        let proxy = proxy_url.trim_end_matches("/hook").to_string();
        let mut d = delivery("http://provider.invalid/hook");
        d.transport.proxy = Some(proxy);
        send(&d.request, &d.transport).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        d.transport.proxy = Some("::not a url::".into());
        let error = send(&d.request, &d.transport).await.unwrap_err();
        assert!(!error.retryable);
        assert!(error.message.starts_with("invalid proxy address"), "{}", error.message);
    }

    #[tokio::test]
    async fn connection_errors_do_not_leak_the_url() {
        install_crypto();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/services/SECRET", listener.local_addr().unwrap());
        drop(listener);
        let d = delivery(&url);
        let error = send(&d.request, &d.transport).await.unwrap_err();
        assert!(error.retryable);
        assert!(!error.message.contains("SECRET"), "{}", error.message);
    }

    #[tokio::test]
    async fn queue_retries_then_reports_success() {
        install_crypto();
        let (url, count) = server(vec![503, 503], "{}").await;
        let (results, mut reported) = mpsc::unbounded_channel();
        let policy = RetryPolicy {
            max_attempts: 5,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        };
        let queue = DeliveryQueue::new(policy, 10, results);
        queue.enqueue(delivery(&url)).unwrap();
        let mut outcomes = Vec::new();
        while let Some(result) = reported.recv().await {
            assert!(!result.message.contains(&url));
            outcomes.push((result.outcome.as_str(), result.attempts));
            if result.outcome == DeliveryOutcome::Succeeded {
                break;
            }
        }
        assert_eq!(outcomes, [("Retrying", 1), ("Retrying", 2), ("Succeeded", 3)]);
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn queue_gives_up_after_max_attempts_and_on_permanent_errors() {
        install_crypto();
        let (url, _) = server(vec![500, 500, 500, 400], "{}").await;
        let (results, mut reported) = mpsc::unbounded_channel();
        let policy = RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(5),
        };
        let queue = DeliveryQueue::new(policy, 10, results);
        queue.enqueue(delivery(&url)).unwrap();
        queue.enqueue(delivery(&url)).unwrap();
        let mut outcomes = Vec::new();
        while outcomes.len() < 4 {
            let result = reported.recv().await.unwrap();
            outcomes.push((result.outcome.as_str(), result.attempts));
        }
        // The second notification waited behind the first, then failed at once on a 400.
        assert_eq!(outcomes, [("Retrying", 1), ("Retrying", 2), ("Failed", 3), ("Failed", 1)]);
    }
}
