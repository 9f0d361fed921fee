//! Provider payloads: the HTTP request each Provider type makes for an event.
//!
//! [`build_request`] is pure: settings and event in, the URL, headers and body out, so every
//! payload shape is a table test. The shapes follow fluxcd/notification-controller
//! `internal/notifier/{slack,teams,forwarder,github,gitlab,google_chat,discord,telegram}.go`;
//! metadata is sent sorted by key where Flux iterates a Go map.
//!
//! Errors never quote the address or the token: a webhook URL is itself a secret.

use std::collections::BTreeMap;

use reqwest::Url;
use ring::hmac;
use serde_json::{Value, json};

use crate::event::Event;

/// The Provider types this build delivers to.
pub const SUPPORTED_TYPES: &[&str] = &[
    "generic",
    "generic-hmac",
    "slack",
    "msteams",
    "discord",
    "googlechat",
    "telegram",
    "github",
    "gitlab",
];

/// Slack's Web API endpoint; answers 200 with `{"ok": false}` on failure.
pub const SLACK_CHAT_POST_MESSAGE: &str = "https://slack.com/api/chat.postMessage";

/// Header that names the sending controller on generic webhooks.
pub const COMPONENT_HEADER: &str = "gotk-component";

/// Everything a Provider resolves to, with secrets already read.
///
/// `Debug` prints the type and channel only: the other fields may be secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderSettings {
    /// `spec.type`.
    pub type_: String,
    /// The address (`spec.address`, or the Secret's `address` key).
    pub address: String,
    /// `spec.channel`.
    pub channel: String,
    /// `spec.username`.
    pub username: String,
    /// The Secret's `token` key.
    pub token: String,
    /// The Secret's `password` key (GitLab accepts it as the token).
    pub password: String,
    /// The Secret's `headers` key (a YAML map), added to generic requests.
    pub headers: BTreeMap<String, String>,
    /// The commit status context of git providers.
    pub commit_status: String,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("type_", &self.type_)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl ProviderSettings {
    /// The values that must never appear in logs or events: address, token, password and
    /// header values.
    pub fn secret_values(&self) -> Vec<String> {
        let mut values = vec![self.address.clone(), self.token.clone(), self.password.clone()];
        values.extend(self.headers.values().cloned());
        values.retain(|value| value.len() >= 4);
        values
    }
}

/// How a response is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseCheck {
    /// Any 2xx status is a success.
    Status,
    /// Slack's Web API: a 2xx status and a body with `"ok": true`.
    SlackApi,
}

/// One HTTP POST to a provider.
///
/// `Debug` prints header names only and no URL: both may carry secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// Where to POST; may carry secrets, never logged.
    pub url: String,
    /// Extra headers (`Content-Type: application/json` is always sent).
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
    /// How to judge the response.
    pub check: ResponseCheck,
    /// A GET that lists existing commit statuses; the POST is skipped when one of them is
    /// already the status to set (Flux's `duplicateGithubStatus`/`duplicateGitlabStatus`).
    pub duplicate_check: Option<DuplicateCheck>,
}

/// How to find out that a commit status is already set.
#[derive(Clone, PartialEq, Eq)]
pub struct DuplicateCheck {
    /// The listing URL (may carry secrets, never logged).
    pub url: String,
    /// The status fields that must all be equal in a listed status, the first being the key
    /// (`context` for GitHub, `sha` for GitLab).
    pub fields: Vec<(String, String)>,
    /// GitHub lists the newest status first and only the first with our context counts;
    /// GitLab's listing is filtered by name and any equal status counts.
    pub first_with_key_only: bool,
}

impl DuplicateCheck {
    /// Whether `listing` (the JSON array the GET answered) already holds the status.
    pub fn is_duplicate(&self, listing: &Value) -> bool {
        let Some(items) = listing.as_array() else { return false };
        let Some((key_field, key_value)) = self.fields.first() else { return false };
        let has = |item: &Value, field: &str, value: &str| {
            item.get(field).and_then(Value::as_str) == Some(value)
        };
        for item in items {
            if !has(item, key_field, key_value) {
                continue;
            }
            let equal = self.fields.iter().all(|(field, value)| has(item, field, value));
            if equal || self.first_with_key_only {
                return equal;
            }
        }
        false
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Request")
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

/// Why a provider cannot make a request for an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// The type is not delivered by this build.
    #[error("provider type {0:?} is not supported; supported types: {types}", types = SUPPORTED_TYPES.join(", "))]
    Unsupported(String),
    /// No address in `spec.address` nor in the Secret's `address` key.
    #[error(
        "provider type {0:?} needs an address: set spec.address or the 'address' key of spec.secretRef"
    )]
    MissingAddress(String),
    /// The address does not parse (the value is not quoted: it may be secret).
    #[error("invalid address of provider type {type_:?}: {reason}")]
    InvalidAddress {
        /// The provider type.
        type_: String,
        /// What is wrong.
        reason: String,
    },
    /// A token is required.
    #[error(
        "provider type {0:?} needs a token: set the 'token' key of the Secret in spec.secretRef"
    )]
    MissingToken(String),
    /// A channel is required.
    #[error("provider type {0:?} needs spec.channel")]
    MissingChannel(String),
    /// A git commit status needs the revision metadata.
    #[error("missing revision metadata")]
    MissingRevision,
    /// The revision has no commit hash.
    #[error("failed to extract commit hash from '{0}' revision")]
    InvalidRevision(String),
}

fn require_address(settings: &ProviderSettings) -> Result<Url, ProviderError> {
    if settings.address.trim().is_empty() {
        return Err(ProviderError::MissingAddress(settings.type_.clone()));
    }
    parse_url(settings, settings.address.trim())
}

fn parse_url(settings: &ProviderSettings, address: &str) -> Result<Url, ProviderError> {
    let url = Url::parse(address).map_err(|error| ProviderError::InvalidAddress {
        type_: settings.type_.clone(),
        reason: error.to_string(),
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ProviderError::InvalidAddress {
            type_: settings.type_.clone(),
            reason: format!("scheme {:?} is not http or https", url.scheme()),
        });
    }
    Ok(url)
}

fn json_request(url: String, body: &Value, headers: Vec<(String, String)>) -> Request {
    Request {
        url,
        headers,
        body: serde_json::to_vec(body).unwrap_or_default(),
        check: ResponseCheck::Status,
        duplicate_check: None,
    }
}

/// The request `settings` makes for `event`, whose metadata is already combined for the Alert;
/// `None` when the provider skips the event (git providers skip `Progressing`).
///
/// # Errors
/// When the settings lack what the type needs or the event lacks a revision for a commit status.
pub fn build_request(
    settings: &ProviderSettings,
    event: &Event,
) -> Result<Option<Request>, ProviderError> {
    let request = match settings.type_.as_str() {
        "generic" => generic(settings, event, None)?,
        "generic-hmac" => {
            if settings.token.is_empty() {
                return Err(ProviderError::MissingToken(settings.type_.clone()));
            }
            generic(settings, event, Some(settings.token.as_bytes()))?
        }
        "slack" => slack(settings, event)?,
        "discord" => discord(settings, event)?,
        "msteams" => msteams(settings, event)?,
        "googlechat" => google_chat(settings, event)?,
        "telegram" => telegram(settings, event)?,
        "github" | "gitlab" => {
            if event.reason == sluice_api::meta::reason::PROGRESSING {
                return Ok(None);
            }
            if settings.type_ == "github" {
                github(settings, event)?
            } else {
                gitlab(settings, event)?
            }
        }
        other => return Err(ProviderError::Unsupported(other.to_string())),
    };
    Ok(Some(request))
}

/// `sha256=<hex HMAC-SHA256(body, key)>`, the `X-Signature` of generic-hmac.
pub fn sign_sha256(body: &[u8], key: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    format!("sha256={}", hex::encode(hmac::sign(&key, body).as_ref()))
}

fn generic(
    settings: &ProviderSettings,
    event: &Event,
    hmac_key: Option<&[u8]>,
) -> Result<Request, ProviderError> {
    let url = require_address(settings)?;
    let body = serde_json::to_vec(event).unwrap_or_default();
    let mut headers = vec![(COMPONENT_HEADER.to_string(), event.reporting_controller.clone())];
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(key) = hmac_key {
        headers.push(("X-Signature".to_string(), sign_sha256(&body, key)));
    }
    Ok(Request {
        url: url.to_string(),
        headers,
        body,
        check: ResponseCheck::Status,
        duplicate_check: None,
    })
}

fn slack_payload(settings: &ProviderSettings, event: &Event, fallback: bool) -> Value {
    let username = if settings.username.is_empty() {
        event.reporting_controller.clone()
    } else {
        settings.username.clone()
    };
    let color = if event.is_error() { "danger" } else { "good" };
    let fields: Vec<Value> = event
        .metadata
        .iter()
        .map(|(k, v)| json!({"title": k, "value": v, "short": false}))
        .collect();
    let author = event.object_title();
    let mut attachment = serde_json::Map::new();
    if fallback {
        let first_line = event.message.split('\n').next().unwrap_or_default();
        attachment.insert("fallback".into(), format!("{author}: {first_line}").into());
    }
    attachment.insert("color".into(), color.into());
    attachment.insert("author_name".into(), author.into());
    attachment.insert("text".into(), event.message.clone().into());
    attachment.insert("mrkdwn_in".into(), json!(["text"]));
    attachment.insert("fields".into(), fields.into());
    json!({
        "channel": settings.channel,
        "username": username,
        "icon_url": "",
        "icon_emoji": "",
        "attachments": [attachment],
    })
}

fn slack(settings: &ProviderSettings, event: &Event) -> Result<Request, ProviderError> {
    let url = require_address(settings)?;
    let mut headers = Vec::new();
    if !settings.token.is_empty() {
        headers.push(("Authorization".to_string(), format!("Bearer {}", settings.token)));
    }
    let mut request = json_request(url.to_string(), &slack_payload(settings, event, true), headers);
    // chat.postMessage answers 200 even on failure; the verdict is in the body.
    if url.as_str() == SLACK_CHAT_POST_MESSAGE || url.path().ends_with("/api/chat.postMessage") {
        request.check = ResponseCheck::SlackApi;
    }
    Ok(request)
}

fn discord(settings: &ProviderSettings, event: &Event) -> Result<Request, ProviderError> {
    let mut url = require_address(settings)?;
    // Discord serves a Slack-compatible endpoint under `<webhook>/slack`.
    if !url.path().ends_with("/slack") {
        let path = format!("{}/slack", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    let mut payload = slack_payload(settings, event, false);
    // Flux's Discord notifier never fills the channel: the webhook decides it.
    payload["channel"] = "".into();
    Ok(json_request(url.to_string(), &payload, Vec::new()))
}

/// Whether a Teams webhook is the retired Office 365 connector, which wants a MessageCard.
fn is_office_connector(url: &Url) -> bool {
    url.host_str().is_some_and(|host| host.ends_with(".webhook.office.com"))
}

fn msteams(settings: &ProviderSettings, event: &Event) -> Result<Request, ProviderError> {
    let url = require_address(settings)?;
    let title = event.object_title();
    let payload = if is_office_connector(&url) {
        let facts: Vec<Value> =
            event.metadata.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
        json!({
            "@type": "MessageCard",
            "@context": "http://schema.org/extensions",
            "themeColor": if event.is_error() { "FF0000" } else { "0076D7" },
            "summary": title,
            "sections": [{"activityTitle": event.message, "activitySubtitle": title, "facts": facts}],
        })
    } else {
        let mut message = json!({"type": "TextBlock", "text": event.message, "wrap": true});
        if event.is_error() {
            message["color"] = "attention".into();
        }
        let mut facts = Vec::new();
        if let Some(summary) = event.metadata.get("summary") {
            facts.push(json!({"title": "summary", "value": summary}));
        }
        facts.extend(
            event
                .metadata
                .iter()
                .filter(|(k, _)| *k != "summary")
                .map(|(k, v)| json!({"title": k, "value": v})),
        );
        let mut fact_set = json!({"type": "FactSet"});
        if !facts.is_empty() {
            fact_set["facts"] = facts.into();
        }
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [{"type": "Container", "items": [
                        {"type": "TextBlock", "text": title, "size": "large", "weight": "bolder", "wrap": true},
                        message,
                        fact_set,
                    ]}],
                    "msteams": {"width": "Full"},
                },
            }],
        })
    };
    Ok(json_request(url.to_string(), &payload, Vec::new()))
}

fn google_chat(settings: &ProviderSettings, event: &Event) -> Result<Request, ProviderError> {
    let url = require_address(settings)?;
    let text = if event.is_error() {
        format!("<font color=\"#ff0000\">{}</font>", event.message)
    } else {
        event.message.clone()
    };
    let mut sections = vec![json!({"header": "", "widgets": [
        {"textParagraph": {"text": text}, "keyValue": null}]})];
    if !event.metadata.is_empty() {
        let widgets: Vec<Value> = event
            .metadata
            .iter()
            .map(|(k, v)| {
                json!({"textParagraph": null, "keyValue": {"topLabel": k, "content": v,
                    "contentMultiline": false, "bottomLabel": null, "icon": null}})
            })
            .collect();
        sections.push(json!({"header": "", "widgets": widgets}));
    }
    let payload = json!({"cards": [{
        "header": {"title": event.object_title(), "subtitle": event.reporting_controller,
                   "imageUrl": null, "imageStyle": null},
        "sections": sections,
    }]});
    Ok(json_request(url.to_string(), &payload, Vec::new()))
}

/// Escapes Telegram MarkdownV2 special characters.
fn telegram_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.-_[]()~>`#+=|{}!*".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn telegram(settings: &ProviderSettings, event: &Event) -> Result<Request, ProviderError> {
    if settings.channel.is_empty() {
        return Err(ProviderError::MissingChannel(settings.type_.clone()));
    }
    if settings.token.is_empty() {
        return Err(ProviderError::MissingToken(settings.type_.clone()));
    }
    // The Bot API lives at api.telegram.org; an address overrides it (proxies, tests).
    let base = if settings.address.trim().is_empty() {
        "https://api.telegram.org".to_string()
    } else {
        parse_url(settings, settings.address.trim())?.as_str().trim_end_matches('/').to_string()
    };
    let emoji = if event.is_error() { "🚨" } else { "💫" };
    let object = &event.involved_object;
    let heading = format!(
        "{emoji} {}/{}/{}",
        object.kind.as_deref().unwrap_or_default().to_lowercase(),
        object.name.as_deref().unwrap_or_default(),
        object.namespace.as_deref().unwrap_or_default()
    );
    let metadata: String = event
        .metadata
        .iter()
        .map(|(k, v)| format!("\\- *{}*: {}\n", telegram_escape(k), telegram_escape(v)))
        .collect();
    let text =
        format!("*{}*\n{}\n{metadata}", telegram_escape(&heading), telegram_escape(&event.message));
    let (chat_id, thread) = match settings.channel.split_once(':') {
        Some((chat, thread)) => (chat, Some(thread)),
        None => (settings.channel.as_str(), None),
    };
    let mut payload = json!({"chat_id": chat_id});
    if let Some(thread) = thread {
        payload["message_thread_id"] = thread.into();
    }
    payload["text"] = text.into();
    payload["parse_mode"] = "MarkdownV2".into();
    let url = format!("{base}/bot{}/sendMessage", settings.token);
    Ok(json_request(url, &payload, Vec::new()))
}

/// Splits a CamelCase reason into lower-case words: `ReconciliationSucceeded` becomes
/// `reconciliation succeeded` (Flux's `formatNameAndDescription`).
pub fn describe_reason(reason: &str) -> String {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Lower,
        Upper,
        Digit,
        Other,
    }
    let class = |c: char| {
        if c.is_lowercase() {
            Class::Lower
        } else if c.is_uppercase() {
            Class::Upper
        } else if c.is_numeric() {
            Class::Digit
        } else {
            Class::Other
        }
    };
    let mut runs: Vec<(Class, Vec<char>)> = Vec::new();
    for c in reason.chars() {
        match runs.last_mut() {
            Some((last, run)) if *last == class(c) => run.push(c),
            _ => runs.push((class(c), vec![c])),
        }
    }
    // "PDFLoader" is "PDF" + "Loader": an upper-case run gives its last letter to a lower run.
    for idx in 0..runs.len().saturating_sub(1) {
        if runs[idx].0 == Class::Upper
            && runs[idx + 1].0 == Class::Lower
            && let Some(moved) = runs[idx].1.pop()
        {
            runs[idx + 1].1.insert(0, moved);
        }
    }
    runs.into_iter()
        .filter(|(_, run)| !run.is_empty())
        .map(|(_, run)| run.into_iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The commit hash of a Flux revision: `main@sha1:<hex>`, `sha1:<hex>`, the legacy
/// `main/<hex>`, or a bare hash.
///
/// # Errors
/// When no 40- or 64-digit hex hash is found.
pub fn commit_from_revision(revision: &str) -> Result<String, ProviderError> {
    let after_ref = revision.rsplit_once('@').map_or(revision, |(_, digest)| digest);
    let hash = match after_ref.split_once(':') {
        Some(("sha1" | "sha256", hash)) => hash,
        Some(_) => return Err(ProviderError::InvalidRevision(revision.to_string())),
        None => after_ref.rsplit_once('/').map_or(after_ref, |(_, hash)| hash),
    };
    let is_hash =
        (hash.len() == 40 || hash.len() == 64) && hash.chars().all(|c| c.is_ascii_hexdigit());
    if !is_hash {
        return Err(ProviderError::InvalidRevision(revision.to_string()));
    }
    Ok(hash.to_string())
}

/// The default commit status context: `<kind>/<name>/<first segment of the Provider UID>`,
/// lower-cased.
pub fn default_commit_status(provider_uid: &str, event: &Event) -> String {
    let uid_part = provider_uid.split('-').next().unwrap_or_default();
    format!(
        "{}/{}/{uid_part}",
        event.involved_object.kind.as_deref().unwrap_or_default(),
        event.involved_object.name.as_deref().unwrap_or_default()
    )
    .to_lowercase()
}

/// `(https://host, owner/repo)` of a git address: https, ssh and scp-like forms.
fn parse_git_address(settings: &ProviderSettings) -> Result<(String, String), ProviderError> {
    let address = settings.address.trim();
    if address.is_empty() {
        return Err(ProviderError::MissingAddress(settings.type_.clone()));
    }
    let normalized = if address.contains("://") {
        address.to_string()
    } else if let Some((user_host, path)) = address.split_once(':') {
        // scp-like `git@github.com:owner/repo.git`.
        format!("ssh://{user_host}/{path}")
    } else {
        address.to_string()
    };
    let url = Url::parse(&normalized).map_err(|error| ProviderError::InvalidAddress {
        type_: settings.type_.clone(),
        reason: error.to_string(),
    })?;
    let scheme = if url.scheme() == "ssh" { "https" } else { url.scheme() };
    let host = url.host_str().ok_or_else(|| ProviderError::InvalidAddress {
        type_: settings.type_.clone(),
        reason: "no host".to_string(),
    })?;
    let host = match url.port() {
        // An ssh port says nothing about the https API.
        Some(port) if url.scheme() != "ssh" => format!("{host}:{port}"),
        _ => host.to_string(),
    };
    let id = url.path().trim_start_matches('/').trim_end_matches(".git").to_string();
    Ok((format!("{scheme}://{host}"), id))
}

fn commit_and_state(event: &Event) -> Result<(String, bool), ProviderError> {
    let revision = event.metadata.get("revision").ok_or(ProviderError::MissingRevision)?;
    Ok((commit_from_revision(revision)?, event.is_error()))
}

fn github(settings: &ProviderSettings, event: &Event) -> Result<Request, ProviderError> {
    let (host, id) = parse_git_address(settings)?;
    let parts: Vec<&str> = id.split('/').collect();
    if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(ProviderError::InvalidAddress {
            type_: settings.type_.clone(),
            reason: "the repository path must be <owner>/<repository>".to_string(),
        });
    }
    if settings.token.is_empty() {
        return Err(ProviderError::MissingToken(settings.type_.clone()));
    }
    let (sha, failed) = commit_and_state(event)?;
    let api = if host == "https://github.com" {
        "https://api.github.com".to_string()
    } else {
        format!("{host}/api/v3")
    };
    let state = if failed { "failure" } else { "success" };
    let description = describe_reason(&event.reason);
    let body =
        json!({"state": state, "description": description, "context": settings.commit_status});
    let headers = vec![
        ("Authorization".to_string(), format!("Bearer {}", settings.token)),
        ("Accept".to_string(), "application/vnd.github+json".to_string()),
    ];
    let repo = format!("{api}/repos/{}/{}", parts[0], parts[1]);
    let mut request = json_request(format!("{repo}/statuses/{sha}"), &body, headers);
    request.duplicate_check = Some(DuplicateCheck {
        url: format!("{repo}/commits/{sha}/statuses?per_page=50"),
        fields: vec![
            ("context".into(), settings.commit_status.clone()),
            ("state".into(), state.into()),
            ("description".into(), description),
        ],
        first_with_key_only: true,
    });
    Ok(request)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn gitlab(settings: &ProviderSettings, event: &Event) -> Result<Request, ProviderError> {
    let (host, id) = parse_git_address(settings)?;
    let token = if settings.token.is_empty() { &settings.password } else { &settings.token };
    if token.is_empty() {
        return Err(ProviderError::MissingToken(settings.type_.clone()));
    }
    let (sha, failed) = commit_and_state(event)?;
    let project = percent_encode(&id);
    let state = if failed { "failed" } else { "success" };
    let description = describe_reason(&event.reason);
    let body = json!({"state": state, "name": settings.commit_status, "description": description});
    let headers = vec![("PRIVATE-TOKEN".to_string(), token.clone())];
    let project_url = format!("{host}/api/v4/projects/{project}");
    let mut request = json_request(format!("{project_url}/statuses/{sha}"), &body, headers);
    request.duplicate_check = Some(DuplicateCheck {
        url: format!(
            "{project_url}/repository/commits/{sha}/statuses?name={}",
            percent_encode(&settings.commit_status)
        ),
        fields: vec![
            ("sha".into(), sha.clone()),
            ("status".into(), state.into()),
            ("description".into(), description),
            ("name".into(), settings.commit_status.clone()),
        ],
        first_with_key_only: false,
    });
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(severity: &str, metadata: &[(&str, &str)]) -> Event {
        let mut event: Event = serde_json::from_value(json!({
            "involvedObject": {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                               "name": "webapp", "namespace": "apps", "uid": "u-1"},
            "severity": severity, "timestamp": "2022-10-28T07:26:19Z",
            "message": "Applied revision\nsecond line", "reason": "ReconciliationSucceeded",
            "reportingController": "kustomize-controller", "reportingInstance": "pod-1"
        }))
        .unwrap();
        event.metadata = metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        event
    }

    fn settings(type_: &str, address: &str) -> ProviderSettings {
        ProviderSettings { type_: type_.into(), address: address.into(), ..Default::default() }
    }

    fn body(request: &Request) -> Value {
        serde_json::from_slice(&request.body).unwrap()
    }

    #[track_caller]
    fn check(settings: &ProviderSettings, event: &Event, url: &str, expected: Value) -> Request {
        let request = build_request(settings, event).unwrap().unwrap();
        assert_eq!(request.url, url);
        assert_eq!(body(&request), expected);
        request
    }

    #[test]
    fn slack_webhook_payload() {
        let mut s = settings("slack", "https://hooks.slack.com/services/T/B/X");
        s.channel = "#ops".into();
        let request = check(
            &s,
            &event("error", &[("revision", "main@sha1:abc"), ("summary", "prod")]),
            "https://hooks.slack.com/services/T/B/X",
            json!({"channel": "#ops", "username": "kustomize-controller", "icon_url": "",
                   "icon_emoji": "", "attachments": [{
                "fallback": "kustomization/webapp.apps: Applied revision", "color": "danger",
                "author_name": "kustomization/webapp.apps", "text": "Applied revision\nsecond line",
                "mrkdwn_in": ["text"], "fields": [
                    {"title": "revision", "value": "main@sha1:abc", "short": false},
                    {"title": "summary", "value": "prod", "short": false}]}]}),
        );
        assert_eq!(request.check, ResponseCheck::Status);
        assert!(request.headers.is_empty());
    }

    #[test]
    fn slack_api_with_token() {
        let mut s = settings("slack", SLACK_CHAT_POST_MESSAGE);
        s.token = "xoxb-secret".into();
        s.username = "flux".into();
        let request = build_request(&s, &event("info", &[])).unwrap().unwrap();
        assert_eq!(request.check, ResponseCheck::SlackApi);
        assert_eq!(request.headers, [("Authorization".into(), "Bearer xoxb-secret".into())]);
        let body = body(&request);
        assert_eq!(body["username"], "flux");
        assert_eq!(body["attachments"][0]["color"], "good");
        assert_eq!(body["attachments"][0]["fields"], json!([]));
    }

    #[test]
    fn teams_adaptive_card_puts_summary_first() {
        let s = settings("msteams", "https://prod.westeurope.logic.azure.com/workflows/x");
        check(
            &s,
            &event("error", &[("revision", "r1"), ("summary", "prod"), ("cluster", "c1")]),
            "https://prod.westeurope.logic.azure.com/workflows/x",
            json!({"type": "message", "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard", "version": "1.4",
                    "body": [{"type": "Container", "items": [
                        {"type": "TextBlock", "text": "kustomization/webapp.apps", "size": "large",
                         "weight": "bolder", "wrap": true},
                        {"type": "TextBlock", "text": "Applied revision\nsecond line", "wrap": true,
                         "color": "attention"},
                        {"type": "FactSet", "facts": [
                            {"title": "summary", "value": "prod"},
                            {"title": "cluster", "value": "c1"},
                            {"title": "revision", "value": "r1"}]}]}],
                    "msteams": {"width": "Full"}}}]}),
        );
        // Info messages carry no colour; no metadata leaves the FactSet without facts.
        let request = build_request(&s, &event("info", &[])).unwrap().unwrap();
        let items = &body(&request)["attachments"][0]["content"]["body"][0]["items"];
        assert_eq!(
            items[1],
            json!({"type": "TextBlock", "text": "Applied revision\nsecond line", "wrap": true})
        );
        assert_eq!(items[2], json!({"type": "FactSet"}));
    }

    #[test]
    fn teams_office_connector_gets_a_message_card() {
        let s = settings("msteams", "https://acme.webhook.office.com/webhookb2/x");
        check(
            &s,
            &event("info", &[("revision", "r1")]),
            "https://acme.webhook.office.com/webhookb2/x",
            json!({"@type": "MessageCard", "@context": "http://schema.org/extensions",
                   "themeColor": "0076D7", "summary": "kustomization/webapp.apps",
                   "sections": [{"activityTitle": "Applied revision\nsecond line",
                                 "activitySubtitle": "kustomization/webapp.apps",
                                 "facts": [{"name": "revision", "value": "r1"}]}]}),
        );
        let request = build_request(&s, &event("error", &[])).unwrap().unwrap();
        assert_eq!(body(&request)["themeColor"], "FF0000");
    }

    #[test]
    fn generic_posts_the_event_with_headers() {
        let mut s = settings("generic", "http://hook.example/x");
        s.headers = BTreeMap::from([("X-Team".into(), "a".into())]);
        let e = event("info", &[("revision", "r1")]);
        let request = build_request(&s, &e).unwrap().unwrap();
        assert_eq!(
            request.headers,
            [
                ("gotk-component".into(), "kustomize-controller".into()),
                ("X-Team".into(), "a".into())
            ]
        );
        assert_eq!(serde_json::from_slice::<Event>(&request.body).unwrap(), e);
        assert_eq!(body(&request)["timestamp"], "2022-10-28T07:26:19Z");
    }

    #[test]
    fn generic_hmac_signs_the_exact_body() {
        let mut s = settings("generic-hmac", "http://hook.example/x");
        assert_eq!(
            build_request(&s, &event("info", &[])).unwrap_err(),
            ProviderError::MissingToken("generic-hmac".into())
        );
        s.token = "key".into();
        let request = build_request(&s, &event("info", &[])).unwrap().unwrap();
        let signature = &request.headers.iter().find(|(k, _)| k == "X-Signature").unwrap().1;
        assert_eq!(*signature, sign_sha256(&request.body, b"key"));
        // RFC 4231 test case 2.
        assert_eq!(
            sign_sha256(b"what do ya want for nothing?", b"Jefe"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn discord_uses_the_slack_endpoint() {
        let s = settings("discord", "https://discord.com/api/webhooks/1/abc");
        let request = build_request(&s, &event("info", &[])).unwrap().unwrap();
        assert_eq!(request.url, "https://discord.com/api/webhooks/1/abc/slack");
        assert!(body(&request)["attachments"][0].get("fallback").is_none());
        assert_eq!(body(&request)["channel"], "");
        let s = settings("discord", "https://discord.com/api/webhooks/1/abc/slack");
        assert_eq!(build_request(&s, &event("info", &[])).unwrap().unwrap().url, s.address);
    }

    #[test]
    fn google_chat_card() {
        let s = settings("googlechat", "https://chat.googleapis.com/v1/spaces/x/messages?key=k");
        let request = build_request(&s, &event("error", &[("revision", "r1")])).unwrap().unwrap();
        let body = body(&request);
        assert_eq!(body["cards"][0]["header"]["title"], "kustomization/webapp.apps");
        assert_eq!(
            body["cards"][0]["sections"][0]["widgets"][0]["textParagraph"]["text"],
            "<font color=\"#ff0000\">Applied revision\nsecond line</font>"
        );
        assert_eq!(
            body["cards"][0]["sections"][1]["widgets"][0]["keyValue"]["topLabel"],
            "revision"
        );
    }

    #[test]
    fn telegram_message() {
        let mut s = settings("telegram", "");
        assert!(matches!(
            build_request(&s, &event("info", &[])),
            Err(ProviderError::MissingChannel(_))
        ));
        s.channel = "-100123:7".into();
        s.token = "123:abc".into();
        let request =
            build_request(&s, &event("info", &[("revision", "main@sha1:1")])).unwrap().unwrap();
        assert_eq!(request.url, "https://api.telegram.org/bot123:abc/sendMessage");
        assert_eq!(
            body(&request),
            json!({"chat_id": "-100123", "message_thread_id": "7",
                   "text": "*💫 kustomization/webapp/apps*\nApplied revision\nsecond line\n\\- *revision*: main@sha1:1\n",
                   "parse_mode": "MarkdownV2"})
        );
    }

    #[track_caller]
    fn check_revision(revision: &str, expected: Option<&str>) {
        assert_eq!(commit_from_revision(revision).ok().as_deref(), expected, "{revision}");
    }

    #[test]
    fn revisions_to_commits() {
        let sha = "4f2e1c0d9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e";
        check_revision(&format!("main@sha1:{sha}"), Some(sha));
        check_revision(&format!("refs/heads/feature/x@sha1:{sha}"), Some(sha));
        check_revision(&format!("sha1:{sha}"), Some(sha));
        check_revision(&format!("main/{sha}"), Some(sha));
        check_revision(sha, Some(sha));
        check_revision("v1.0.0@sha256:abc", None);
        check_revision("main@sha1:xyz", None);
        check_revision("6.1.0", None);
    }

    #[test]
    fn reasons_become_descriptions() {
        for (reason, expected) in [
            ("ReconciliationSucceeded", "reconciliation succeeded"),
            ("HealthCheckFailed", "health check failed"),
            ("PDFLoader", "pdf loader"),
            ("", ""),
        ] {
            assert_eq!(describe_reason(reason), expected);
        }
    }

    #[test]
    fn github_commit_status() {
        let sha = "4f2e1c0d9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e";
        let mut s = settings("github", "https://github.com/acme/app.git");
        s.token = "ghp_x".into();
        s.commit_status = default_commit_status("0c9f7a2e-1111-2222", &event("info", &[]));
        assert_eq!(s.commit_status, "kustomization/webapp/0c9f7a2e");
        let request = check(
            &s,
            &event("error", &[("revision", &format!("main@sha1:{sha}"))]),
            &format!("https://api.github.com/repos/acme/app/statuses/{sha}"),
            json!({"state": "failure", "description": "reconciliation succeeded",
                   "context": "kustomization/webapp/0c9f7a2e"}),
        );
        assert!(request.headers.contains(&("Authorization".into(), "Bearer ghp_x".into())));
        assert_eq!(
            request.duplicate_check.as_ref().unwrap().url,
            format!("https://api.github.com/repos/acme/app/commits/{sha}/statuses?per_page=50")
        );
        // Enterprise hosts use /api/v3; ssh and scp-like addresses work.
        for address in [
            "https://ghe.acme.io/acme/app",
            "ssh://git@ghe.acme.io/acme/app",
            "git@ghe.acme.io:acme/app.git",
        ] {
            s.address = address.into();
            let request = build_request(&s, &event("info", &[("revision", sha)])).unwrap().unwrap();
            assert_eq!(
                request.url,
                format!("https://ghe.acme.io/api/v3/repos/acme/app/statuses/{sha}"),
                "{address}"
            );
        }
        assert_eq!(
            build_request(&s, &event("info", &[])).unwrap_err(),
            ProviderError::MissingRevision
        );
        let mut progressing = event("info", &[]);
        progressing.reason = "Progressing".into();
        assert_eq!(build_request(&s, &progressing).unwrap(), None);
        s.address = "https://github.com/acme".into();
        assert!(matches!(
            build_request(&s, &event("info", &[("revision", sha)])),
            Err(ProviderError::InvalidAddress { .. })
        ));
    }

    #[test]
    fn duplicate_commit_statuses() {
        let check = |first_with_key_only| DuplicateCheck {
            url: String::new(),
            fields: vec![("context".into(), "ks/web/1".into()), ("state".into(), "success".into())],
            first_with_key_only,
        };
        let newest_differs = json!([
            {"context": "other", "state": "success"},
            {"context": "ks/web/1", "state": "failure"},
            {"context": "ks/web/1", "state": "success"}]);
        assert!(!check(true).is_duplicate(&newest_differs));
        assert!(check(false).is_duplicate(&newest_differs));
        assert!(
            check(true).is_duplicate(&json!([{"context": "ks/web/1", "state": "success", "x": 1}]))
        );
        assert!(!check(true).is_duplicate(&json!([])));
        assert!(!check(true).is_duplicate(&json!({"message": "Not Found"})));
    }

    #[test]
    fn gitlab_commit_status() {
        let sha = "4f2e1c0d9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e";
        let mut s = settings("gitlab", "http://127.0.0.1:8080/group/sub/app.git");
        s.password = "glpat".into();
        s.commit_status = "kustomization/webapp/0c9f7a2e".into();
        let request = check(
            &s,
            &event("info", &[("revision", &format!("main@sha1:{sha}"))]),
            &format!("http://127.0.0.1:8080/api/v4/projects/group%2Fsub%2Fapp/statuses/{sha}"),
            json!({"state": "success", "name": "kustomization/webapp/0c9f7a2e",
                   "description": "reconciliation succeeded"}),
        );
        assert_eq!(request.headers, [("PRIVATE-TOKEN".into(), "glpat".into())]);
        assert_eq!(
            request.duplicate_check.unwrap().url,
            format!(
                "http://127.0.0.1:8080/api/v4/projects/group%2Fsub%2Fapp/repository/commits/{sha}/statuses?name=kustomization%2Fwebapp%2F0c9f7a2e"
            )
        );
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut s = settings("slack", "https://hooks.slack.com/services/T/B/SECRET");
        s.token = "TOKEN".into();
        s.headers = BTreeMap::from([("X-Key".into(), "HEADER".into())]);
        let request = build_request(&s, &event("info", &[])).unwrap().unwrap();
        let printed = format!("{s:?} {request:?}");
        for secret in ["SECRET", "TOKEN", "HEADER"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("Authorization"), "{printed}");
    }

    #[test]
    fn errors_never_quote_the_address() {
        for type_ in ["slack", "msteams", "generic", "discord", "googlechat"] {
            let s = settings(type_, "not a url with secret-token");
            let error = build_request(&s, &event("info", &[])).unwrap_err().to_string();
            assert!(!error.contains("secret-token"), "{error}");
            assert!(error.starts_with("invalid address"), "{error}");
            let missing = build_request(&settings(type_, ""), &event("info", &[])).unwrap_err();
            assert_eq!(missing, ProviderError::MissingAddress(type_.into()));
        }
        let unsupported = build_request(&settings("pagerduty", "https://x"), &event("info", &[]));
        assert!(unsupported.unwrap_err().to_string().contains("not supported"));
    }
}
