//! ImageUpdateAutomation: clone the GitRepository, run the setters with the selected images,
//! commit with the message template and push, as Flux's image-automation-controller does.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use sluice_api::image::{ImagePolicy, ImageRef, ImageUpdateAutomation};
use sluice_api::meta::reason;
use sluice_api::source::GitRepository;
use sluice_git::{Auth, CheckoutOptions, GitRef, HttpOptions, Proxy, PushOptions};
use sluice_runtime::events::Severity;
use sluice_runtime::object::parse_go_duration;
use sluice_runtime::{Outcome, StatusWriter};

use crate::setters::{self, PolicyImage, UpdateResult};
use crate::{Context, Error, finish_failed, secret_data};

const INVALID_SOURCE_CONFIGURATION: &str = "InvalidSourceConfiguration";
const SOURCE_MANAGER_FAILED: &str = "SourceManagerFailed";
const GIT_OPERATION_FAILED: &str = "GitOperationFailed";
const UPDATE_FAILED: &str = "UpdateFailed";
const INVALID_POLICY_SELECTOR: &str = "InvalidPolicySelector";
const PULL_REQUEST_FAILED: &str = "PullRequestFailed";

fn git_error(err: sluice_git::Error) -> Error {
    let message = sluice_runtime::conditions::error_message(&err);
    if err.is_stalled() {
        Error::stall(err.reason(), message)
    } else if err.reason() == "GitOperationFailed" {
        Error::retry(GIT_OPERATION_FAILED, message)
    } else {
        Error::retry(err.reason(), message)
    }
}

/// `spec.update.path` inside the clone; `..` may not leave it.
fn update_dir(root: &Path, path: Option<&str>) -> Result<PathBuf, Error> {
    let raw = path.unwrap_or("").trim();
    let mut dir = root.to_path_buf();
    for component in Path::new(raw.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => dir.push(part),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(Error::stall(
                    reason::INVALID_PATH,
                    format!("spec.update.path {raw:?} must stay inside the repository (no '..')"),
                ));
            }
        }
    }
    Ok(dir)
}

/// The label selector string of `spec.policySelector` for the list call.
fn selector_string(selector: &LabelSelector) -> Result<String, Error> {
    let mut parts = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        parts.push(format!("{key}={value}"));
    }
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.clone().unwrap_or_default().join(",");
        let part = match expression.operator.as_str() {
            "In" => format!("{} in ({values})", expression.key),
            "NotIn" => format!("{} notin ({values})", expression.key),
            "Exists" => expression.key.clone(),
            "DoesNotExist" => format!("!{}", expression.key),
            other => {
                return Err(Error::stall(
                    INVALID_POLICY_SELECTOR,
                    format!(
                        "spec.policySelector.matchExpressions operator {other:?} must be In, NotIn, Exists or DoesNotExist"
                    ),
                ));
            }
        };
        parts.push(part);
    }
    Ok(parts.join(","))
}

/// What the blocking git work produced.
struct GitRun {
    /// Whether the push branch now exists on the remote (pushed now or found).
    push_branch_exists: bool,
    result: UpdateResult,
    head_revision: String,
    pushed: Option<String>,
    message: Option<String>,
}

/// Reconciles an ImageUpdateAutomation.
pub async fn reconcile(obj: Arc<ImageUpdateAutomation>, ctx: &Context) -> Result<Action, Error> {
    let mut status = StatusWriter::new(
        &*obj,
        ctx.runtime.client.clone(),
        ctx.runtime.controller,
        &ctx.runtime.events,
    );
    status.set_field("lastAutomationRunTime", Time(jiff::Timestamp::now()));
    match automate(&obj, ctx, &mut status).await {
        Ok((outcome, action)) => {
            status.finish(&outcome).await?;
            Ok(action)
        }
        Err(err) => finish_failed(status, err).await,
    }
}

async fn automate(
    obj: &ImageUpdateAutomation,
    ctx: &Context,
    status: &mut StatusWriter<'_, ImageUpdateAutomation>,
) -> Result<(Outcome, Action), Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let spec = &obj.spec;
    let interval = parse_go_duration(&spec.interval).map_err(|message| {
        Error::stall(reason::FAILED, format!("spec.interval {:?}: {message}", spec.interval))
    })?;
    if spec.source_ref.kind != "GitRepository" {
        return Err(Error::stall(
            INVALID_SOURCE_CONFIGURATION,
            format!(
                "source kind '{}' not supported: spec.sourceRef.kind must be GitRepository",
                spec.source_ref.kind
            ),
        ));
    }
    let Some(git) = &spec.git else {
        return Err(Error::stall(
            INVALID_SOURCE_CONFIGURATION,
            "source kind 'GitRepository' necessitates field .spec.git",
        ));
    };
    if let Some(strategy) = spec.update.as_ref().and_then(|u| u.strategy.as_deref())
        && strategy != "Setters"
    {
        return Err(Error::stall(
            INVALID_SOURCE_CONFIGURATION,
            format!(
                "spec.update.strategy {strategy:?} is not supported; the only strategy is Setters"
            ),
        ));
    }
    let source_namespace = spec.source_ref.namespace.clone().unwrap_or_else(|| namespace.clone());
    ctx.runtime
        .check_namespace_ref(&namespace, Some(&source_namespace))
        .map_err(|message| Error::stall(reason::ACCESS_DENIED, message))?;
    let repos: Api<GitRepository> = Api::namespaced(ctx.runtime.client.clone(), &source_namespace);
    let source = repos
        .get_opt(&spec.source_ref.name)
        .await
        .map_err(|err| {
            Error::retry(SOURCE_MANAGER_FAILED, format!("reading GitRepository: {err}"))
        })?
        .ok_or_else(|| {
            Error::wait(
                SOURCE_MANAGER_FAILED,
                format!(
                    "referenced GitRepository '{source_namespace}/{}' does not exist",
                    spec.source_ref.name
                ),
                ctx.runtime.args.requeue_dependency,
            )
        })?;

    // What to check out and where to push.
    let checkout_ref = git
        .checkout
        .as_ref()
        .map(|c| c.reference.clone())
        .or_else(|| source.spec.reference.clone());
    let checkout = GitRef::from_spec(checkout_ref.as_ref());
    let checkout_branch = match &checkout {
        GitRef::Branch(branch) => branch.clone(),
        other => {
            return Err(Error::stall(
                INVALID_SOURCE_CONFIGURATION,
                format!(
                    "checking out {other:?} is not implemented in this build: set spec.git.checkout.ref.branch (or the GitRepository's spec.ref.branch)"
                ),
            ));
        }
    };
    let push = git.push.clone().unwrap_or_default();
    let push_branch =
        push.branch.clone().filter(|b| !b.is_empty()).unwrap_or_else(|| checkout_branch.clone());
    let refspec = push.refspec.clone().filter(|r| !r.is_empty());
    let push_options: Vec<String> = push
        .options
        .iter()
        .flatten()
        .map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") })
        .collect();

    // Credentials of the GitRepository.
    let source_ns = source.namespace().unwrap_or_default();
    let secret = match &source.spec.secret_ref {
        Some(r) => {
            secret_data(
                &ctx.runtime,
                &source_ns,
                &r.name,
                "GitRepository spec.secretRef",
                "AuthenticationFailed",
            )
            .await?
        }
        None => BTreeMap::new(),
    };
    let auth = Auth::from_secret_data(&source.spec.url, &secret).map_err(git_error)?;
    let pull_request = crate::pull_request::from_annotations(
        obj.annotations(),
        &source.spec.url,
        &push_branch,
        &checkout_branch,
    )
    .map_err(|message| Error::stall(INVALID_SOURCE_CONFIGURATION, message))?
    .filter(|_| push_branch != checkout_branch);
    let api_token = ["bearerToken", "password"]
        .iter()
        .find_map(|key| secret.get(*key).filter(|v| !v.is_empty()))
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let mut http = HttpOptions::from_secret_data(&secret);
    if let Some(r) = &source.spec.proxy_secret_ref {
        let data = secret_data(
            &ctx.runtime,
            &source_ns,
            &r.name,
            "GitRepository spec.proxySecretRef",
            "AuthenticationFailed",
        )
        .await?;
        http.proxy = Some(Proxy::from_secret_data(&data).map_err(git_error)?);
    }
    let timeout = match source.spec.timeout.as_deref() {
        Some(raw) => parse_go_duration(raw).unwrap_or(Duration::from_secs(60)),
        None => Duration::from_secs(60),
    };
    let signing_key = match &git.commit.signing_key {
        Some(key) => {
            let data = secret_data(
                &ctx.runtime,
                &namespace,
                &key.secret_ref.name,
                "spec.git.commit.signingKey.secretRef",
                INVALID_SOURCE_CONFIGURATION,
            )
            .await?;
            Some(sluice_git::CommitSigningKey::from_secret_data(&data).map_err(|err| {
                Error::stall(
                    INVALID_SOURCE_CONFIGURATION,
                    format!(
                        "spec.git.commit.signingKey: {}",
                        sluice_runtime::conditions::error_message(&err)
                    ),
                )
            })?)
        }
        None => None,
    };

    // The policies: same namespace, matching the selector, with a selected image.
    let policies_api: Api<ImagePolicy> = Api::namespaced(ctx.runtime.client.clone(), &namespace);
    let mut params = ListParams::default();
    if let Some(selector) = &spec.policy_selector {
        let selector = selector_string(selector)?;
        if !selector.is_empty() {
            params = params.labels(&selector);
        }
    }
    let policies = policies_api.list(&params).await.map_err(|err| {
        Error::retry(
            reason::FAILED,
            format!("listing ImagePolicies in namespace '{namespace}': {err}"),
        )
    })?;
    let mut observed: BTreeMap<String, ImageRef> = BTreeMap::new();
    let mut images: BTreeMap<String, PolicyImage> = BTreeMap::new();
    for policy in &policies.items {
        let Some(latest) = policy.status.as_ref().and_then(|s| s.latest_ref.clone()) else {
            continue;
        };
        images.insert(
            format!("{namespace}:{}", policy.name_any()),
            PolicyImage {
                name: latest.name.clone(),
                tag: latest.tag.clone(),
                digest: latest.digest.clone(),
            },
        );
        observed.insert(policy.name_any(), latest);
    }
    // A merge patch merges maps: policies no longer selected are removed with nulls.
    let mut observed_patch = serde_json::Map::new();
    for old in obj.status.iter().flat_map(|s| s.observed_policies.iter().flatten()) {
        observed_patch.insert(old.0.clone(), serde_json::Value::Null);
    }
    for (policy, image) in &observed {
        observed_patch.insert(policy.clone(), serde_json::to_value(image).unwrap_or_default());
    }
    status.set_field("observedPolicies", &observed_patch);

    let update_path = spec.update.as_ref().and_then(|u| u.path.clone());
    let author = sluice_git::Author {
        name: git.commit.author.name.clone().unwrap_or_else(|| "Flux".into()),
        email: git.commit.author.email.clone(),
    };
    let template = git.commit.message_template.clone();
    let values = git.commit.message_template_values.clone().unwrap_or_default();
    let url = source.spec.url.clone();
    let (auto_ns, auto_name) = (namespace.clone(), name.clone());
    let options =
        CheckoutOptions { shallow: false, timeout, http: http.clone(), ..Default::default() };
    let push_branch_for_task = push_branch.clone();
    let refspec_for_task = refspec.clone();
    let run = tokio::task::spawn_blocking(move || -> Result<GitRun, Error> {
        let work =
            tempfile::Builder::new().prefix("imageupdateautomation-").tempdir().map_err(|err| {
                Error::retry(reason::FAILED, format!("creating a work directory: {err}"))
            })?;
        let dir = work.path().join("repo");
        // Commits go on top of the push branch when it exists; else it starts from the checkout
        // branch.
        let push_exists = push_branch_for_task != checkout_branch
            && sluice_git::remote_revision(
                &url,
                &auth,
                &GitRef::Branch(push_branch_for_task.clone()),
                &options,
            )
            .is_ok();
        let base = if push_exists { &push_branch_for_task } else { &checkout_branch };
        let head = sluice_git::clone_for_write(&url, &auth, base, &dir, &options)
            .map_err(git_error)?
            .ok_or_else(|| {
                Error::retry(
                    GIT_OPERATION_FAILED,
                    format!("branch '{base}' not found in {}", sluice_git::redact_url(&url)),
                )
            })?;
        let root = update_dir(&dir, update_path.as_deref())?;
        if !root.is_dir() {
            return Err(Error::stall(
                reason::INVALID_PATH,
                format!(
                    "spec.update.path {:?} is not a directory of branch '{base}'",
                    update_path.unwrap_or_default()
                ),
            ));
        }
        let result = setters::update_dir(&root, &images).map_err(|err| {
            Error::retry(UPDATE_FAILED, sluice_runtime::conditions::error_message(&err))
        })?;
        let head_revision = head.revision.to_string();
        if result.is_empty() {
            return Ok(GitRun {
                push_branch_exists: push_exists,
                result,
                head_revision,
                pushed: None,
                message: None,
            });
        }
        let message = crate::template::commit_message(
            template.as_deref(),
            &values,
            &auto_ns,
            &auto_name,
            &result,
        )
        .map_err(|message| Error::stall(INVALID_SOURCE_CONFIGURATION, message))?;
        let commit = match &signing_key {
            Some(key) => sluice_git::commit_all_signed(&dir, &author, &message, key),
            None => sluice_git::commit_all(&dir, &author, &message),
        }
        .map_err(git_error)?;
        let Some(commit) = commit else {
            return Ok(GitRun {
                push_branch_exists: push_exists,
                result: UpdateResult::default(),
                head_revision,
                pushed: None,
                message: None,
            });
        };
        let push_options = PushOptions {
            push_options,
            refspec: refspec_for_task,
            timeout: Some(timeout),
            http,
            ..Default::default()
        };
        sluice_git::push(&dir, &auth, &push_branch_for_task, &push_options).map_err(git_error)?;
        Ok(GitRun {
            push_branch_exists: true,
            result,
            head_revision,
            pushed: Some(commit.sha),
            message: Some(message),
        })
    })
    .await
    .map_err(|err| Error::retry(reason::FAILED, format!("automation task failed: {err}")))??;

    status.set_field("observedSourceRevision", &run.head_revision);
    let previous = obj.status.clone().unwrap_or_default();
    let message = match &run.pushed {
        Some(sha) => {
            let now = Time(jiff::Timestamp::now());
            status.set_field("lastPushCommit", sha);
            status.set_field("lastPushTime", &now);
            let mut event = format!("pushed commit '{}' to branch '{push_branch}'", short(sha));
            if let Some(refspec) = &refspec {
                event.push_str(&format!(" and refspec '{refspec}'"));
            }
            if let Some(message) = &run.message {
                event.push('\n');
                event.push_str(message);
            }
            let mut metadata = BTreeMap::new();
            metadata.insert("revision".to_string(), format!("{push_branch}@sha1:{sha}"));
            ctx.runtime
                .events
                .record(obj, Severity::Info, reason::SUCCEEDED, &event, &metadata)
                .await;
            tracing::info!(imageupdateautomation = %name, commit = %sha, branch = %push_branch,
                files = run.result.files.len(), "pushed image updates");
            format!("committed and pushed commit '{}' to branch '{push_branch}'", short(sha))
        }
        None => match (&previous.last_push_commit, &previous.last_push_time) {
            (Some(commit), Some(time)) => {
                format!("no updates made; last commit {} at {}", short(commit), time.0)
            }
            _ => "no updates made".to_string(),
        },
    };
    if let Some(pr) = pull_request.filter(|_| run.push_branch_exists) {
        let commit_message =
            run.message.clone().unwrap_or_else(|| crate::template::DEFAULT_MESSAGE.into());
        let (title, rest) = commit_message.split_once('\n').unwrap_or((&commit_message, ""));
        let body =
            format!("{}\n\nOpened by sluice image automation {namespace}/{name}.", rest.trim());
        let http = reqwest::Client::new();
        match pr.open(&http, api_token.as_deref(), title, body.trim_start()).await {
            Ok(crate::pull_request::Opened::Created(url)) => {
                let event = format!(
                    "opened pull request {} from '{}' into '{}'",
                    url.unwrap_or_default(),
                    pr.head,
                    pr.base
                );
                ctx.runtime
                    .events
                    .record(obj, Severity::Info, reason::SUCCEEDED, &event, &BTreeMap::new())
                    .await;
            }
            Ok(crate::pull_request::Opened::Exists) => {}
            Err(message) => return Err(Error::retry(PULL_REQUEST_FAILED, message)),
        }
    }
    Ok((
        Outcome::Ready { reason: reason::SUCCEEDED.into(), message },
        ctx.runtime.next_action(Some(interval)),
    ))
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    #[test]
    fn update_paths_stay_inside() {
        let root = Path::new("/work/repo");
        assert_eq!(update_dir(root, None).unwrap(), root);
        assert_eq!(update_dir(root, Some("./apps/prod")).unwrap(), root.join("apps/prod"));
        assert_eq!(update_dir(root, Some("/apps")).unwrap(), root.join("apps"));
        assert!(update_dir(root, Some("apps/../../etc")).is_err());
    }

    #[test]
    fn policy_selectors() {
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([("team".to_string(), "web".to_string())])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert_eq!(selector_string(&selector).unwrap(), "team=web,tier in (a,b)");
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "x".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert!(selector_string(&bad).is_err());
    }
}
