//! CustomResourceDefinitions of all kinds, with Flux's CRD-level defaults and annotations added.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSON,
};
use kube::CustomResourceExt;

use crate::{helm, image, kustomize, notification, source};

/// Annotation Flux puts on its CRDs so applying them never substitutes `${…}` in the schemas.
pub const SUBSTITUTE_DISABLED_ANNOTATION: (&str, &str) =
    ("kustomize.toolkit.fluxcd.io/substitute", "disabled");

/// All CRDs, each with `status.observedGeneration` defaulting to -1 and the substitute annotation.
pub fn all() -> Vec<CustomResourceDefinition> {
    let crds = vec![
        source::GitRepository::crd(),
        source::OCIRepository::crd(),
        source::Bucket::crd(),
        source::HelmRepository::crd(),
        source::HelmChart::crd(),
        kustomize::Kustomization::crd(),
        helm::HelmRelease::crd(),
        notification::Provider::crd(),
        notification::Alert::crd(),
        notification::Receiver::crd(),
        image::ImageRepository::crd(),
        image::ImagePolicy::crd(),
        image::ImageUpdateAutomation::crd(),
    ];
    crds.into_iter().map(finish).collect()
}

fn finish(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    crd.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(SUBSTITUTE_DISABLED_ANNOTATION.0.into(), SUBSTITUTE_DISABLED_ANNOTATION.1.into());
    for version in &mut crd.spec.versions {
        let status = version
            .schema
            .as_mut()
            .and_then(|schema| schema.open_api_v3_schema.as_mut())
            .and_then(|schema| schema.properties.as_mut())
            .and_then(|properties| properties.get_mut("status"));
        if let Some(status) = status {
            status.default = Some(JSON(serde_json::json!({ "observedGeneration": -1 })));
        }
    }
    crd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_crds_with_flux_names() {
        let names: Vec<String> =
            all().into_iter().map(|crd| crd.metadata.name.unwrap_or_default()).collect();
        assert_eq!(
            names,
            [
                "gitrepositories.source.toolkit.fluxcd.io",
                "ocirepositories.source.toolkit.fluxcd.io",
                "buckets.source.toolkit.fluxcd.io",
                "helmrepositories.source.toolkit.fluxcd.io",
                "helmcharts.source.toolkit.fluxcd.io",
                "kustomizations.kustomize.toolkit.fluxcd.io",
                "helmreleases.helm.toolkit.fluxcd.io",
                "providers.notification.toolkit.fluxcd.io",
                "alerts.notification.toolkit.fluxcd.io",
                "receivers.notification.toolkit.fluxcd.io",
                "imagerepositories.image.toolkit.fluxcd.io",
                "imagepolicies.image.toolkit.fluxcd.io",
                "imageupdateautomations.image.toolkit.fluxcd.io",
            ]
        );
    }

    #[test]
    fn status_defaults_observed_generation_to_minus_one() {
        for crd in all() {
            let version = &crd.spec.versions[0];
            let props = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| s.properties.as_ref())
                .expect("schema has properties");
            if let Some(status) = props.get("status") {
                assert_eq!(
                    status.default.as_ref().map(|d| &d.0),
                    Some(&serde_json::json!({"observedGeneration": -1})),
                    "{:?}",
                    crd.metadata.name
                );
            }
        }
    }
}
