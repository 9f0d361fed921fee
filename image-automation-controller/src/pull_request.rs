//! Beyond Flux: open a pull request for the push branch, so teams that review every change keep
//! reviewing image updates.
//!
//! Enabled per ImageUpdateAutomation with annotations (Flux's API has no field for it):
//! - `image.sluice.dev/pull-request`: `github` or `gitea`;
//! - `image.sluice.dev/pull-request-api`: the API base URL (default `https://api.github.com`
//!   for GitHub, `<scheme>://<host>/api/v1` of the repository URL for Gitea).
//!
//! It applies when `spec.git.push.branch` differs from the checkout branch: after each run that
//! pushed or found the push branch, a pull request from the push branch into the checkout
//! branch is requested. An existing one (GitHub 422, Gitea 409/422) is success, so the call is
//! idempotent. The token is the GitRepository Secret's `bearerToken` or `password`.

use std::collections::BTreeMap;

/// Annotation selecting the provider.
pub const PROVIDER_ANNOTATION: &str = "image.sluice.dev/pull-request";
/// Annotation overriding the API base URL.
pub const API_ANNOTATION: &str = "image.sluice.dev/pull-request-api";

/// A pull request to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// `github` or `gitea`.
    pub provider: String,
    /// API base URL without trailing slash.
    pub api: String,
    /// Repository owner.
    pub owner: String,
    /// Repository name.
    pub repo: String,
    /// Source branch (the push branch).
    pub head: String,
    /// Target branch (the checkout branch).
    pub base: String,
}

/// Reads the annotations; `None` when no pull request is asked for.
///
/// # Errors
/// A message naming the annotation when the provider is unknown or the repository URL has no
/// owner and name.
pub fn from_annotations(
    annotations: &BTreeMap<String, String>,
    repo_url: &str,
    head: &str,
    base: &str,
) -> Result<Option<PullRequest>, String> {
    let Some(provider) = annotations.get(PROVIDER_ANNOTATION) else { return Ok(None) };
    if !matches!(provider.as_str(), "github" | "gitea") {
        return Err(format!(
            "annotation {PROVIDER_ANNOTATION}: {provider:?} must be 'github' or 'gitea'"
        ));
    }
    let (scheme, rest) = repo_url.split_once("://").unwrap_or(("https", repo_url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host_path)| host_path);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let parts: Vec<&str> =
        path.trim_end_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    let [.., owner, repo] = parts.as_slice() else {
        return Err(format!(
            "annotation {PROVIDER_ANNOTATION}: the GitRepository URL has no owner/repository path"
        ));
    };
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    let scheme = if scheme == "ssh" { "https" } else { scheme };
    let host = host.split_once(':').filter(|_| scheme == "https").map_or(host, |(h, _)| h);
    let api = match annotations.get(API_ANNOTATION) {
        Some(api) => api.trim_end_matches('/').to_string(),
        None if provider == "github" => "https://api.github.com".to_string(),
        None => format!("{scheme}://{host}/api/v1"),
    };
    Ok(Some(PullRequest {
        provider: provider.clone(),
        api,
        owner: owner.to_string(),
        repo: repo.to_string(),
        head: head.to_string(),
        base: base.to_string(),
    }))
}

/// What the provider answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// A new pull request, with its web URL when the provider sent one.
    Created(Option<String>),
    /// One already exists (or there is nothing to merge).
    Exists,
}

impl PullRequest {
    /// Opens the pull request with `title` and `body`, authenticated with `token`.
    ///
    /// # Errors
    /// A message with the status and the provider's answer (never the token).
    pub async fn open(
        &self,
        http: &reqwest::Client,
        token: Option<&str>,
        title: &str,
        body: &str,
    ) -> Result<Opened, String> {
        let url = format!("{}/repos/{}/{}/pulls", self.api, self.owner, self.repo);
        let mut request = http
            .post(&url)
            .header(reqwest::header::USER_AGENT, "sluice-image-automation")
            .json(&serde_json::json!({
                "title": title, "head": self.head, "base": self.base, "body": body,
            }));
        if self.provider == "github" {
            request = request.header(reqwest::header::ACCEPT, "application/vnd.github+json");
        }
        if let Some(token) = token {
            let value = if self.provider == "github" {
                format!("Bearer {token}")
            } else {
                format!("token {token}")
            };
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let response = request
            .send()
            .await
            .map_err(|err| format!("opening a pull request at {url}: {}", without_url(&err)))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let detail: String = text.chars().take(300).collect();
        match status {
            200 | 201 => {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                Ok(Opened::Created(json["html_url"].as_str().map(str::to_string)))
            }
            409 | 422 => Ok(Opened::Exists),
            _ => Err(format!(
                "opening a pull request from '{}' into '{}' at {url}: HTTP {status}: {detail}",
                self.head, self.base
            )),
        }
    }
}

/// The error chain of `err` without the request URL (already in the message).
fn without_url(err: &reqwest::Error) -> String {
    let mut text = sluice_runtime::conditions::error_message(err);
    if let Some(url) = err.url() {
        text = text.replace(&format!(" for url ({})", url.as_str()), "");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_and_urls() {
        let mut annotations = BTreeMap::new();
        assert_eq!(from_annotations(&annotations, "https://github.com/o/r", "a", "b"), Ok(None));
        annotations.insert(PROVIDER_ANNOTATION.to_string(), "github".to_string());
        let pr = from_annotations(&annotations, "https://github.com/org/fleet.git", "auto", "main")
            .unwrap()
            .unwrap();
        assert_eq!(pr.api, "https://api.github.com");
        assert_eq!((pr.owner.as_str(), pr.repo.as_str()), ("org", "fleet"));
        annotations.insert(PROVIDER_ANNOTATION.to_string(), "gitea".to_string());
        let pr =
            from_annotations(&annotations, "ssh://git@gitea.example.com:2222/team/app", "x", "y")
                .unwrap()
                .unwrap();
        assert_eq!(pr.api, "https://gitea.example.com/api/v1");
        annotations.insert(API_ANNOTATION.to_string(), "http://127.0.0.1:9/api/".to_string());
        let pr = from_annotations(&annotations, "http://127.0.0.1:3000/team/app.git", "x", "y")
            .unwrap()
            .unwrap();
        assert_eq!(pr.api, "http://127.0.0.1:9/api");
        annotations.insert(PROVIDER_ANNOTATION.to_string(), "bitbucket".to_string());
        assert!(from_annotations(&annotations, "https://h/o/r", "x", "y").is_err());
        annotations.insert(PROVIDER_ANNOTATION.to_string(), "github".to_string());
        assert!(from_annotations(&annotations, "https://h/", "x", "y").is_err());
    }
}
