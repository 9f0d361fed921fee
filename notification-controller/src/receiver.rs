//! Receivers: the webhook path, payload validation per type, and the reconcile requests.
//!
//! A Receiver's path is `/hook/` + hex(sha256(token + name + namespace)), written to
//! `status.webhookPath` by the reconciler. A call to that path is validated as its `type`
//! says (fluxcd/notification-controller `internal/server/receiver_handlers.go`), and then every
//! resource in `spec.resources` is annotated with `reconcile.fluxcd.io/requestedAt`.

use std::collections::BTreeMap;

use ring::{digest, hmac};

/// The prefix of every webhook path.
pub const WEBHOOK_PATH_PREFIX: &str = "/hook/";

/// The Receiver types this build validates.
pub const SUPPORTED_TYPES: &[&str] = &[
    "generic",
    "generic-hmac",
    "github",
    "gitlab",
    "bitbucket",
    "harbor",
    "quay",
    "dockerhub",
    "acr",
    "nexus",
];

/// `/hook/<hex sha256(token + name + namespace)>`.
pub fn webhook_path(token: &str, name: &str, namespace: &str) -> String {
    let digest = digest::digest(&digest::SHA256, format!("{token}{name}{namespace}").as_bytes());
    format!("{WEBHOOK_PATH_PREFIX}{}", hex::encode(digest.as_ref()))
}

/// The API version used when a resource reference has none (Flux's defaults).
pub fn default_api_version(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Bucket" | "HelmChart" | "HelmRepository" | "GitRepository" | "OCIRepository" => {
            "source.toolkit.fluxcd.io/v1"
        }
        "ImageRepository" => "image.toolkit.fluxcd.io/v1",
        "ArtifactGenerator" => "source.extensions.fluxcd.io/v1beta1",
        _ => return None,
    })
}

/// An incoming webhook call, as the validation sees it.
#[derive(Debug, Default, Clone)]
pub struct Call {
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Call {
    fn header(&self, name: &str) -> &str {
        self.headers.get(&name.to_ascii_lowercase()).map_or("", String::as_str)
    }
}

/// Checks `<algo>=<hex>` against the HMAC of `body` with `key` (sha1, sha256 or sha512), in
/// constant time, as go-github's `ValidateSignature`.
///
/// # Errors
/// A message naming what is wrong (never the key).
pub fn check_signature(signature: &str, body: &[u8], key: &[u8]) -> Result<(), String> {
    let (algorithm, hex_mac) = signature
        .split_once('=')
        .ok_or_else(|| "missing signature: expected '<algorithm>=<hex>'".to_string())?;
    let algorithm = match algorithm {
        "sha1" => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        "sha256" => hmac::HMAC_SHA256,
        "sha512" => hmac::HMAC_SHA512,
        other => return Err(format!("unknown signature algorithm {other:?}")),
    };
    let mac = hex::decode(hex_mac).map_err(|_| "signature is not hex".to_string())?;
    hmac::verify(&hmac::Key::new(algorithm, key), body, &mac)
        .map_err(|_| "payload signature check failed".to_string())
}

fn check_event(kind: &str, event: &str, allowed: &[String]) -> Result<(), String> {
    if allowed.is_empty() || allowed.iter().any(|e| e.eq_ignore_ascii_case(event)) {
        Ok(())
    } else {
        Err(format!("the {kind} event {event:?} is not authorised"))
    }
}

/// Why a webhook call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The signature or token does not prove the sender knows the Receiver's token: 401.
    Unauthorized(String),
    /// The call is authentic but not acceptable (filtered event, bad payload, unsupported type): 400.
    Invalid(String),
}

impl Rejection {
    /// The message; the token never appears in it.
    pub fn message(&self) -> &str {
        match self {
            Rejection::Unauthorized(message) | Rejection::Invalid(message) => message,
        }
    }

    /// Whether the caller failed to authenticate.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Rejection::Unauthorized(_))
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Validates `call` for a Receiver of `type_` with `token` and the `events` filter.
///
/// # Errors
/// Why the call is refused: [`Rejection::Unauthorized`] when a signature or token check fails,
/// [`Rejection::Invalid`] otherwise. The token never appears in the message.
pub fn validate(type_: &str, token: &str, events: &[String], call: &Call) -> Result<(), Rejection> {
    let unauthorized = Rejection::Unauthorized;
    let invalid = |result: Result<(), String>| result.map_err(Rejection::Invalid);
    let json_payload = |what: &str| {
        invalid(
            serde_json::from_slice::<serde_json::Value>(&call.body)
                .map(|_| ())
                .map_err(|error| format!("cannot decode {what} webhook payload: {error}")),
        )
    };
    match type_ {
        "generic" => Ok(()),
        "generic-hmac" => check_signature(call.header("X-Signature"), &call.body, token.as_bytes())
            .map_err(|error| unauthorized(format!("unable to validate HMAC signature: {error}"))),
        "github" => {
            let signature = match call.header("X-Hub-Signature-256") {
                "" => call.header("X-Hub-Signature"),
                sha256 => sha256,
            };
            check_signature(signature, &call.body, token.as_bytes()).map_err(|error| {
                unauthorized(format!("the GitHub signature header is invalid: {error}"))
            })?;
            invalid(check_event("GitHub", call.header("X-GitHub-Event"), events))
        }
        "gitlab" => {
            if !constant_time_eq(call.header("X-Gitlab-Token"), token) {
                return Err(unauthorized(
                    "the X-Gitlab-Token header value does not match the receiver token".into(),
                ));
            }
            invalid(check_event("GitLab", call.header("X-Gitlab-Event"), events))
        }
        "bitbucket" => {
            check_signature(call.header("X-Hub-Signature"), &call.body, token.as_bytes()).map_err(
                |error| {
                    unauthorized(format!(
                        "the Bitbucket server signature header is invalid: {error}"
                    ))
                },
            )?;
            invalid(check_event("Bitbucket server", call.header("X-Event-Key"), events))
        }
        "harbor" => {
            if constant_time_eq(call.header("Authorization"), token) {
                Ok(())
            } else {
                Err(unauthorized(
                    "the Harbor Authorization header value does not match the receiver token"
                        .into(),
                ))
            }
        }
        "quay" => json_payload("Quay"),
        "dockerhub" => json_payload("DockerHub"),
        "acr" => json_payload("ACR"),
        "nexus" => {
            let signature = call.header("X-Nexus-Webhook-Signature");
            if signature.is_empty() {
                return Err(unauthorized("the Nexus signature is missing from header".into()));
            }
            check_signature(&format!("sha1={signature}"), &call.body, token.as_bytes())
                .map_err(|_| unauthorized("invalid Nexus signature".to_string()))?;
            json_payload("Nexus")
        }
        other => Err(Rejection::Invalid(format!("receiver type {other:?} is not supported"))),
    }
}

/// Compares two strings without an early exit on the first difference.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(algorithm: hmac::Algorithm, prefix: &str, body: &[u8], key: &str) -> String {
        let tag = hmac::sign(&hmac::Key::new(algorithm, key.as_bytes()), body);
        format!("{prefix}{}", hex::encode(tag.as_ref()))
    }

    fn call(headers: &[(&str, &str)], body: &str) -> Call {
        Call {
            headers: headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn webhook_path_is_flux_digest() {
        let expected =
            hex::encode(digest::digest(&digest::SHA256, b"s3cretwebappflux-system").as_ref());
        assert_eq!(webhook_path("s3cret", "webapp", "flux-system"), format!("/hook/{expected}"));
        assert_ne!(
            webhook_path("s3cret", "webapp", "other"),
            webhook_path("s3cret", "webapp", "flux-system")
        );
    }

    #[test]
    fn validation_table() {
        let body = r#"{"ref":"refs/heads/main"}"#;
        let gh256 = sign(hmac::HMAC_SHA256, "sha256=", body.as_bytes(), "tok");
        let gh1 = sign(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, "sha1=", body.as_bytes(), "tok");
        let gh512 = sign(hmac::HMAC_SHA512, "sha512=", body.as_bytes(), "tok");
        let wrong = sign(hmac::HMAC_SHA256, "sha256=", body.as_bytes(), "other");
        let nexus = sign(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, "", body.as_bytes(), "tok");
        let push = vec!["push".to_string()];
        // (type, events, headers, body, accepted)
        type Case<'a> = (&'a str, &'a [String], Vec<(&'a str, &'a str)>, &'a str, bool);
        let cases: Vec<Case> = vec![
            ("generic", &[], vec![], "anything", true),
            ("generic-hmac", &[], vec![("X-Signature", &gh256)], body, true),
            ("generic-hmac", &[], vec![("X-Signature", &gh512)], body, true),
            ("generic-hmac", &[], vec![("X-Signature", &gh1)], body, true),
            ("generic-hmac", &[], vec![("X-Signature", &wrong)], body, false),
            ("generic-hmac", &[], vec![], body, false),
            ("generic-hmac", &[], vec![("X-Signature", "md5=00")], body, false),
            (
                "github",
                &push,
                vec![("X-Hub-Signature-256", &gh256), ("X-GitHub-Event", "push")],
                body,
                true,
            ),
            (
                "github",
                &push,
                vec![("X-Hub-Signature-256", &gh256), ("X-GitHub-Event", "Push")],
                body,
                true,
            ),
            (
                "github",
                &push,
                vec![("X-Hub-Signature-256", &gh256), ("X-GitHub-Event", "ping")],
                body,
                false,
            ),
            (
                "github",
                &[],
                vec![("X-Hub-Signature-256", &gh256), ("X-GitHub-Event", "ping")],
                body,
                true,
            ),
            (
                "github",
                &[],
                vec![("X-Hub-Signature", &gh1), ("X-GitHub-Event", "push")],
                body,
                true,
            ),
            (
                "github",
                &[],
                vec![("X-Hub-Signature-256", &wrong), ("X-GitHub-Event", "push")],
                body,
                false,
            ),
            ("github", &[], vec![("X-GitHub-Event", "push")], body, false),
            ("gitlab", &[], vec![("X-Gitlab-Token", "tok")], body, true),
            ("gitlab", &[], vec![("X-Gitlab-Token", "tok2")], body, false),
            (
                "gitlab",
                &push,
                vec![("X-Gitlab-Token", "tok"), ("X-Gitlab-Event", "Tag Push Hook")],
                body,
                false,
            ),
            (
                "bitbucket",
                &[],
                vec![("X-Hub-Signature", &gh256), ("X-Event-Key", "repo:refs_changed")],
                body,
                true,
            ),
            ("bitbucket", &[], vec![("X-Hub-Signature", &wrong)], body, false),
            ("harbor", &[], vec![("Authorization", "tok")], body, true),
            ("harbor", &[], vec![("Authorization", "Bearer tok")], body, false),
            ("quay", &[], vec![], body, true),
            ("quay", &[], vec![], "not json", false),
            ("dockerhub", &[], vec![], body, true),
            ("acr", &[], vec![], body, true),
            ("nexus", &[], vec![("X-Nexus-Webhook-Signature", &nexus)], body, true),
            ("nexus", &[], vec![], body, false),
            ("gcr", &[], vec![], body, false),
        ];
        for (type_, events, headers, payload, accepted) in cases {
            let result = validate(type_, "tok", events, &call(&headers, payload));
            assert_eq!(result.is_ok(), accepted, "{type_} {headers:?}: {result:?}");
            if let Err(rejection) = result {
                assert!(!rejection.message().contains("tok\""), "{rejection}");
            }
        }
    }

    #[test]
    fn default_api_versions() {
        assert_eq!(default_api_version("GitRepository"), Some("source.toolkit.fluxcd.io/v1"));
        assert_eq!(default_api_version("ImageRepository"), Some("image.toolkit.fluxcd.io/v1"));
        assert_eq!(default_api_version("Kustomization"), None);
    }
}
