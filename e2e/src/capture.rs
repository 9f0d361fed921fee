//! An HTTP capture server: records every request (method, path, headers, body) and answers with scripted statuses.
//!
//! It stands in for Slack, Teams, generic webhooks and anything else a controller posts to. It
//! runs on its own thread with its own tokio runtime, so it keeps answering while a test blocks,
//! and stops when dropped.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    /// `POST`, `GET`, …
    pub method: String,
    /// The path with the query string, e.g. `/hooks/slack?x=1`.
    pub path: String,
    /// The headers in arrival order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl CapturedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Errors
    /// When the body is not JSON.
    pub fn body_json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("request body is not JSON: {}", self.body_text()))
    }
}

#[derive(Debug)]
struct Script {
    requests: Vec<CapturedRequest>,
    queued_statuses: VecDeque<u16>,
    default_status: u16,
    body: String,
}

type Shared = Arc<Mutex<Script>>;

fn lock(script: &Shared) -> MutexGuard<'_, Script> {
    script.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running capture server on 127.0.0.1 (see the module docs).
#[derive(Debug)]
pub struct CaptureServer {
    port: u16,
    script: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CaptureServer {
    /// Starts the server; it answers `200 OK` with an empty JSON object until told otherwise.
    ///
    /// # Errors
    /// When loopback cannot be bound or the runtime cannot start.
    pub fn start() -> Result<CaptureServer> {
        // Binding port 0 here, and handing the socket over, leaves no window for a port race.
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding the capture server to 127.0.0.1")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let script = Arc::new(Mutex::new(Script {
            requests: Vec::new(),
            queued_statuses: VecDeque::new(),
            default_status: 200,
            body: "{}".to_owned(),
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the capture server's runtime")?;
        let (shutdown, shutdown_signal) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new().fallback(record).with_state(script.clone());
        let thread = std::thread::Builder::new()
            .name(format!("capture-server-{port}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = shutdown_signal.await;
                        })
                        .await;
                });
            })
            .context("starting the capture server thread")?;
        Ok(CaptureServer { port, script, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port><path>` (`path` starts with `/`).
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// The requests recorded so far, oldest first.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        lock(&self.script).requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        lock(&self.script).requests.clear();
    }

    /// Answers every later request with `status` (after any queued statuses).
    pub fn respond_with(&self, status: u16) {
        lock(&self.script).default_status = status;
    }

    /// Answers the next requests with `statuses` in order, then with the default status
    /// (e.g. `[500, 500]` to test retries).
    pub fn respond_sequence(&self, statuses: &[u16]) {
        lock(&self.script).queued_statuses.extend(statuses);
    }

    /// The response body (default `{}`; Slack's API wants `{"ok":true}`).
    pub fn respond_body(&self, body: &str) {
        body.clone_into(&mut lock(&self.script).body);
    }

    /// Waits until at least `count` requests were recorded and returns them all.
    ///
    /// # Errors
    /// When fewer arrive within `timeout`.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<CapturedRequest>> {
        crate::wait_for(timeout, &format!("{count} request(s) at {}", self.url()), || async {
            let requests = self.requests();
            Ok((requests.len() >= count).then_some(requests))
        })
        .await
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Records the request and answers with the next scripted status.
async fn record(State(script): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.map(|bytes| bytes.to_vec());
    let path =
        parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |pq| pq.to_string());
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
        .collect();
    let (status, response_body) = {
        let mut script = lock(&script);
        script.requests.push(CapturedRequest {
            method: parts.method.to_string(),
            path,
            headers,
            body: body.unwrap_or_default(),
        });
        let status = script.queued_statuses.pop_front().unwrap_or(script.default_status);
        (status, script.body.clone())
    };
    let mut response = Response::new(Body::from(response_body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
