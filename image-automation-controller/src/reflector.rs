//! ImageRepository (registry scan into the tag store) and ImagePolicy (tag selection), as
//! Flux's image-reflector-controller reconciles them.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use sluice_api::image::{ImagePolicy, ImageRef, ImageRepository, ScanResult};
use sluice_api::meta::reason;
use sluice_runtime::object::parse_go_duration;
use sluice_runtime::{FluxObject, Outcome, StatusWriter};

use crate::policy::{Filter, Policer, select};
use crate::registry::{self, Credentials, ImageName};
use crate::{Context, Error, finish_failed, secret_data};

/// Flux's default `spec.exclusionList`.
pub const DEFAULT_EXCLUSION: &str = "^.*\\.sig$";

const IMAGE_URL_INVALID: &str = "ImageURLInvalid";
const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
const READ_OPERATION_FAILED: &str = "ReadOperationFailed";
const INTERVAL_NOT_CONFIGURED: &str = "IntervalNotConfigured";
const INVALID_POLICY: &str = "InvalidPolicy";

fn duration(field: &str, raw: Option<&str>, default: Duration) -> Result<Duration, Error> {
    match raw {
        None => Ok(default),
        Some(raw) => parse_go_duration(raw).map_err(|message| {
            Error::stall(reason::FAILED, format!("spec.{field} {raw:?}: {message}"))
        }),
    }
}

/// The registry credentials of `repo`: its `secretRef` (dockerconfigjson), then the image pull
/// secrets of its `serviceAccountName`; anonymous when none has an entry for the registry.
pub async fn credentials(
    ctx: &Context,
    repo: &ImageRepository,
    name: &ImageName,
) -> Result<Credentials, Error> {
    let namespace = repo.namespace().unwrap_or_default();
    let mut secrets = Vec::new();
    if let Some(reference) = &repo.spec.secret_ref {
        secrets.push((reference.name.clone(), "spec.secretRef".to_string()));
    }
    if let Some(account) = &repo.spec.service_account_name {
        let api: Api<ServiceAccount> = Api::namespaced(ctx.runtime.client.clone(), &namespace);
        let sa = api.get_opt(account).await.map_err(|err| {
            Error::retry(
                AUTHENTICATION_FAILED,
                format!(
                    "reading ServiceAccount '{namespace}/{account}': {}",
                    sluice_runtime::conditions::error_message(&err)
                ),
            )
        })?;
        let sa = sa.ok_or_else(|| {
            Error::retry(
                AUTHENTICATION_FAILED,
                format!(
                    "spec.serviceAccountName: ServiceAccount '{namespace}/{account}' not found"
                ),
            )
        })?;
        for pull in sa.image_pull_secrets.unwrap_or_default() {
            secrets.push((pull.name, format!("imagePullSecrets of ServiceAccount '{account}'")));
        }
    }
    for (secret, field) in secrets {
        let data =
            secret_data(&ctx.runtime, &namespace, &secret, &field, AUTHENTICATION_FAILED).await?;
        let found =
            registry::docker_config_credentials(&data, &name.registry).map_err(|message| {
                Error::stall(
                    AUTHENTICATION_FAILED,
                    format!("{field}: Secret '{namespace}/{secret}': {message}"),
                )
            })?;
        if let Some(found) = found {
            return Ok(found);
        }
    }
    Ok(Credentials::default())
}

/// Validates the parts of an ImageRepository spec this build cannot honour.
fn check_supported(repo: &ImageRepository) -> Result<(), Error> {
    let provider = repo.spec.provider.as_deref().unwrap_or("generic");
    if provider != "generic" {
        return Err(Error::stall(
            reason::FAILED,
            format!(
                "spec.provider '{provider}' is not implemented in this build; use 'generic' with spec.secretRef"
            ),
        ));
    }
    if repo.spec.cert_secret_ref.is_some() {
        return Err(Error::stall(
            reason::FAILED,
            "spec.certSecretRef is not implemented in this build; remove it or use a registry with a publicly trusted certificate",
        ));
    }
    if repo.spec.proxy_secret_ref.is_some() {
        return Err(Error::stall(
            reason::FAILED,
            "spec.proxySecretRef is not implemented in this build; remove it",
        ));
    }
    Ok(())
}

/// Reconciles an ImageRepository: scans when due (interval passed, spec or request changed,
/// or the store lost the tags), else keeps the last result.
pub async fn reconcile_image_repository(
    obj: Arc<ImageRepository>,
    ctx: &Context,
) -> Result<Action, Error> {
    let mut status = StatusWriter::new(
        &*obj,
        ctx.runtime.client.clone(),
        ctx.runtime.controller,
        &ctx.runtime.events,
    );
    match scan(&obj, ctx, &mut status).await {
        Ok((outcome, action)) => {
            status.finish(&outcome).await?;
            Ok(action)
        }
        Err(err) => finish_failed(status, err).await,
    }
}

async fn scan(
    obj: &ImageRepository,
    ctx: &Context,
    status: &mut StatusWriter<'_, ImageRepository>,
) -> Result<(Outcome, Action), Error> {
    let interval = duration("interval", Some(&obj.spec.interval), Duration::from_secs(600))?;
    let timeout = duration("timeout", obj.spec.timeout.as_deref(), Duration::from_secs(60))?;
    let image = obj.spec.image.clone().unwrap_or_default();
    let name =
        ImageName::parse(&image).map_err(|message| Error::stall(IMAGE_URL_INVALID, message))?;
    check_supported(obj)?;
    let canonical = name.canonical();
    let exclusion =
        obj.spec.exclusion_list.clone().unwrap_or_else(|| vec![DEFAULT_EXCLUSION.to_string()]);
    let mut excluded = Vec::new();
    for (idx, pattern) in exclusion.iter().enumerate() {
        excluded.push(regex::Regex::new(pattern).map_err(|err| {
            Error::stall(
                READ_OPERATION_FAILED,
                format!(
                    "spec.exclusionList[{idx}] {pattern:?} is not a valid regular expression: {err}"
                ),
            )
        })?);
    }

    // Skip the registry when the last successful scan is still current.
    let previous = obj.status.clone().unwrap_or_default();
    let ready = sluice_runtime::conditions::get(obj.conditions(), "Ready");
    let now = jiff::Timestamp::now();
    let next_scan =
        previous.last_scan_result.as_ref().and_then(|scan| scan.scan_time.as_ref()).and_then(
            |time| time.0.checked_add(jiff::SignedDuration::try_from(interval).ok()?).ok(),
        );
    let current = previous.observed_generation == obj.metadata.generation
        && obj.reconcile_request() == previous.last_handled_reconcile_at.as_deref()
        && previous.canonical_image_name.as_deref() == Some(canonical.as_str())
        && previous.observed_exclusion_list.as_ref() == Some(&exclusion)
        && ready.is_some_and(|c| c.status == "True");
    if current
        && let Some(next_scan) = next_scan
        && next_scan > now
        && ctx.store.get(&canonical).is_some()
        && let Some(ready) = ready
    {
        let wait = Duration::try_from(next_scan.duration_since(now)).unwrap_or(interval);
        return Ok((
            Outcome::Ready { reason: ready.reason.clone(), message: ready.message.clone() },
            Action::requeue(wait.max(Duration::from_secs(1))),
        ));
    }

    let credentials = credentials(ctx, obj, &name).await?;
    let insecure = obj.spec.insecure.unwrap_or(false);
    let tags =
        registry::list_tags(&name, &credentials, insecure, timeout).await.map_err(|err| {
            Error::retry(err.reason(), sluice_runtime::conditions::error_message(&err))
        })?;
    let tags: Vec<String> =
        tags.into_iter().filter(|tag| !excluded.iter().any(|re| re.is_match(tag))).collect();
    ctx.store.set(&canonical, &tags).map_err(|err| {
        Error::retry(
            reason::FAILED,
            format!("writing the tags of {canonical} to the tag store: {err}"),
        )
    })?;
    let result = ScanResult {
        revision: Some(registry::tags_revision(&tags)),
        tag_count: tags.len() as i64,
        scan_time: Some(Time(jiff::Timestamp::now())),
        latest_tags: Some(registry::latest_tags(&tags)),
    };
    status.set_field("canonicalImageName", &canonical);
    status.set_field("lastScanResult", &result);
    status.set_field("observedExclusionList", &exclusion);
    tracing::info!(imagerepository = %obj.name_any(), image = %canonical, tags = tags.len(), "scanned");
    Ok((
        Outcome::Ready {
            reason: reason::SUCCEEDED.into(),
            message: format!("successful scan: found {} tags", tags.len()),
        },
        ctx.runtime.next_action(Some(interval)),
    ))
}

/// Whether `policy_namespace` may use an ImageRepository in another namespace (its
/// `spec.accessFrom` namespace selectors).
async fn access_allowed(
    ctx: &Context,
    repo: &ImageRepository,
    policy_namespace: &str,
) -> Result<bool, Error> {
    if repo.namespace().as_deref() == Some(policy_namespace) {
        return Ok(true);
    }
    let Some(access) = &repo.spec.access_from else { return Ok(false) };
    let api: Api<Namespace> = Api::all(ctx.runtime.client.clone());
    let namespace = api.get_opt(policy_namespace).await.map_err(|err| {
        Error::retry(reason::FAILED, format!("reading Namespace '{policy_namespace}': {err}"))
    })?;
    let labels = namespace.map(|ns| ns.labels().clone()).unwrap_or_default();
    Ok(access.namespace_selectors.iter().any(|selector| {
        selector.match_labels.iter().flatten().all(|(key, value)| labels.get(key) == Some(value))
    }))
}

/// Reconciles an ImagePolicy: reads the repository's stored tags, filters, selects and
/// reflects the digest when asked.
pub async fn reconcile_image_policy(obj: Arc<ImagePolicy>, ctx: &Context) -> Result<Action, Error> {
    let mut status = StatusWriter::new(
        &*obj,
        ctx.runtime.client.clone(),
        ctx.runtime.controller,
        &ctx.runtime.events,
    );
    match apply_policy(&obj, ctx, &mut status).await {
        Ok((outcome, action)) => {
            status.finish(&outcome).await?;
            Ok(action)
        }
        Err(err) => finish_failed(status, err).await,
    }
}

async fn apply_policy(
    obj: &ImagePolicy,
    ctx: &Context,
    status: &mut StatusWriter<'_, ImagePolicy>,
) -> Result<(Outcome, Action), Error> {
    let reflect = obj.spec.digest_reflection_policy.as_deref().unwrap_or("Never");
    if !matches!(reflect, "Never" | "IfNotPresent" | "Always") {
        return Err(Error::stall(
            INVALID_POLICY,
            format!(
                "spec.digestReflectionPolicy {reflect:?} must be Never, IfNotPresent or Always"
            ),
        ));
    }
    let interval = match (&obj.spec.interval, reflect) {
        (None, "Always") => {
            return Err(Error::stall(
                INTERVAL_NOT_CONFIGURED,
                "spec.interval must be set when spec.digestReflectionPolicy is set to 'Always'",
            ));
        }
        (Some(raw), _) => Some(duration("interval", Some(raw), Duration::from_secs(600))?),
        (None, _) => None,
    };
    let policer = Policer::from_spec(&obj.spec.policy)
        .map_err(|err| Error::stall(INVALID_POLICY, err.to_string()))?;
    let filter = obj
        .spec
        .filter_tags
        .as_ref()
        .map(Filter::new)
        .transpose()
        .map_err(|err| Error::stall(INVALID_POLICY, err.to_string()))?;

    let namespace = obj.namespace().unwrap_or_default();
    let reference = &obj.spec.image_repository_ref;
    let repo_namespace = reference.namespace.clone().unwrap_or_else(|| namespace.clone());
    ctx.runtime
        .check_namespace_ref(&namespace, Some(&repo_namespace))
        .map_err(|message| Error::stall(reason::ACCESS_DENIED, message))?;
    let repos: Api<ImageRepository> = Api::namespaced(ctx.runtime.client.clone(), &repo_namespace);
    let dependency_wait = ctx.runtime.args.requeue_dependency;
    let repo = repos
        .get_opt(&reference.name)
        .await
        .map_err(|err| Error::retry(reason::FAILED, format!("reading ImageRepository: {err}")))?
        .ok_or_else(|| {
            Error::wait(
                reason::DEPENDENCY_NOT_READY,
                format!(
                    "failed to get the referred ImageRepository: referenced ImageRepository '{repo_namespace}/{}' does not exist",
                    reference.name
                ),
                dependency_wait,
            )
        })?;
    if !access_allowed(ctx, &repo, &namespace).await? {
        return Err(Error::stall(
            reason::ACCESS_DENIED,
            format!(
                "ImageRepository '{repo_namespace}/{}' does not allow access from namespace '{namespace}' (spec.accessFrom)",
                reference.name
            ),
        ));
    }
    let image = repo.spec.image.clone().unwrap_or_default();
    let name =
        ImageName::parse(&image).map_err(|message| Error::stall(IMAGE_URL_INVALID, message))?;
    let canonical = repo
        .status
        .as_ref()
        .and_then(|s| s.canonical_image_name.clone())
        .unwrap_or_else(|| name.canonical());
    let tags = ctx.store.get(&canonical).unwrap_or_default();
    if tags.is_empty() {
        return Err(Error::wait(
            reason::DEPENDENCY_NOT_READY,
            format!(
                "no tags in database for {canonical}: ImageRepository '{repo_namespace}/{}' has not scanned any yet",
                reference.name
            ),
            dependency_wait,
        ));
    }
    let tag = select(&policer, filter.as_ref(), &tags).map_err(|err| {
        Error::retry("Failure", format!("cannot determine latest tag for policy: {err}"))
    })?;

    let previous = obj.status.as_ref().and_then(|s| s.latest_ref.clone());
    let mut latest = ImageRef { name: image.clone(), tag: tag.clone(), digest: None };
    let fetch = match reflect {
        "Always" => true,
        "IfNotPresent" => {
            let keep = previous.as_ref().filter(|p| p.name == latest.name && p.tag == latest.tag);
            match keep.and_then(|p| p.digest.clone()).filter(|d| !d.is_empty()) {
                Some(digest) => {
                    latest.digest = Some(digest);
                    false
                }
                None => true,
            }
        }
        _ => false,
    };
    if fetch {
        let credentials = credentials(ctx, &repo, &name).await?;
        let timeout = duration("timeout", repo.spec.timeout.as_deref(), Duration::from_secs(60))?;
        let digest = registry::manifest_digest(
            &name,
            &tag,
            &credentials,
            repo.spec.insecure.unwrap_or(false),
            timeout,
        )
        .await
        .map_err(|err| {
            Error::retry(
                err.reason(),
                format!(
                    "failed fetching digest of {image}:{tag}: {}",
                    sluice_runtime::conditions::error_message(&err)
                ),
            )
        })?;
        latest.digest = Some(digest);
    }
    let observed_previous = obj.status.as_ref().and_then(|s| s.observed_previous_ref.clone());
    let previous_ref =
        if previous.as_ref() != Some(&latest) { previous } else { observed_previous };
    let mut message = format!("Latest image tag for {} resolved to {}", latest.name, latest.tag);
    if let Some(digest) = &latest.digest {
        message.push_str(&format!(" with digest {digest}"));
    }
    if let Some(prev) = previous_ref.as_ref().filter(|p| **p != latest) {
        message.push_str(&format!(" (previously {}:{}", prev.name, prev.tag));
        if let Some(digest) = &prev.digest {
            message.push_str(&format!("@{digest}"));
        }
        message.push(')');
    }
    status.set_field("latestRef", &latest);
    if let Some(prev) = &previous_ref {
        status.set_field("observedPreviousRef", prev);
    }
    status.set_event_metadata("revision", &format!("{}:{}", latest.name, latest.tag));
    let action = match interval {
        Some(interval) if reflect == "Always" => ctx.runtime.next_action(Some(interval)),
        _ => Action::await_change(),
    };
    Ok((Outcome::Ready { reason: reason::SUCCEEDED.into(), message }, action))
}
