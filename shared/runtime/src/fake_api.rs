//! A tiny in-memory stand-in for the apiserver, for unit tests of the exact API calls.
//!
//! It stores objects by URL path and understands GET, POST (create), PUT (replace with a
//! resourceVersion check, 409 on mismatch) and merge PATCH, and records every request so tests
//! can assert the calls the runtime makes. Nothing else (no watch, no selectors).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request the fake received.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) content_type: String,
    pub(crate) body: Value,
}

#[derive(Default)]
struct Inner {
    objects: HashMap<String, Value>,
    requests: Vec<Request>,
    next_version: u64,
}

/// The fake apiserver; dropping it leaves the server task running until the test runtime ends.
#[derive(Clone, Default)]
pub(crate) struct FakeApi {
    inner: Arc<Mutex<Inner>>,
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "reason": reason, "message": message, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

impl FakeApi {
    /// Starts the fake on 127.0.0.1 and returns it with a kube client pointed at it.
    pub(crate) async fn start() -> (FakeApi, kube::Client) {
        let fake = FakeApi::default();
        let app = Router::new().fallback(handle).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        (fake, kube::Client::try_from(config).unwrap())
    }

    /// Stores `object` at `path` (the object's URL path).
    pub(crate) fn insert(&self, path: &str, mut object: Value) {
        let mut inner = self.inner.lock().unwrap();
        inner.next_version += 1;
        object["metadata"]["resourceVersion"] = inner.next_version.to_string().into();
        inner.objects.insert(path.to_string(), object);
    }

    /// The object stored at `path`.
    pub(crate) fn get(&self, path: &str) -> Option<Value> {
        self.inner.lock().unwrap().objects.get(path).cloned()
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }
}

async fn handle(
    State(fake): State<FakeApi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let content_type =
        headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut inner = fake.inner.lock().unwrap();
    inner.requests.push(Request {
        method: method.clone(),
        path: path.clone(),
        query: uri.query().unwrap_or_default().to_string(),
        content_type: content_type.clone(),
        body: body.clone(),
    });
    inner.next_version += 1;
    let version = inner.next_version.to_string();
    match method {
        Method::GET => match inner.objects.get(&path) {
            Some(object) => axum::Json(object.clone()).into_response(),
            None => status(StatusCode::NOT_FOUND, "NotFound", &format!("{path} not found")),
        },
        Method::POST => {
            let name = body["metadata"]["name"].as_str().unwrap_or_default();
            let key = format!("{path}/{name}");
            if inner.objects.contains_key(&key) {
                return status(StatusCode::CONFLICT, "AlreadyExists", &format!("{key} exists"));
            }
            let mut object = body.clone();
            object["metadata"]["resourceVersion"] = version.into();
            inner.objects.insert(key, object.clone());
            (StatusCode::CREATED, axum::Json(object)).into_response()
        }
        Method::PUT => {
            let Some(stored) = inner.objects.get(&path) else {
                return status(StatusCode::NOT_FOUND, "NotFound", &format!("{path} not found"));
            };
            if stored["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"] {
                return status(StatusCode::CONFLICT, "Conflict", "the object has been modified");
            }
            let mut object = body.clone();
            object["metadata"]["resourceVersion"] = version.into();
            inner.objects.insert(path, object.clone());
            axum::Json(object).into_response()
        }
        Method::PATCH if content_type.starts_with("application/merge-patch+json") => {
            let object_path = path.strip_suffix("/status").unwrap_or(&path).to_string();
            let Some(stored) = inner.objects.get_mut(&object_path) else {
                return status(StatusCode::NOT_FOUND, "NotFound", &format!("{path} not found"));
            };
            merge(stored, &body);
            stored["metadata"]["resourceVersion"] = version.into();
            axum::Json(stored.clone()).into_response()
        }
        _ => {
            status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "not supported by the fake")
        }
    }
}

/// Polls `condition` every 10 ms for at most 10 s; panics with a clear message on timeout.
pub(crate) async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "condition not reached within 10s");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
