//! Flux's documented example objects of every kind parse into the types and serialize back with no field lost.

use std::path::Path;

use serde::{Serialize, de::DeserializeOwned};
use sluice_api::{helm, image, kustomize, notification, source};

fn read_example(file: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[track_caller]
fn check_round_trip<K: Serialize + DeserializeOwned>(file: &str) {
    let raw = read_example(file);
    let typed: K = serde_json::from_value(raw.clone())
        .unwrap_or_else(|err| panic!("{file} does not parse: {err}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(back, raw, "{file}: a field was lost or changed in the round trip");
}

#[test]
fn every_documented_example_round_trips() {
    check_round_trip::<source::GitRepository>("gitrepository.yaml");
    check_round_trip::<source::OCIRepository>("ocirepository.yaml");
    check_round_trip::<source::Bucket>("bucket.yaml");
    check_round_trip::<source::HelmRepository>("helmrepository.yaml");
    check_round_trip::<source::HelmChart>("helmchart.yaml");
    check_round_trip::<kustomize::Kustomization>("kustomization.yaml");
    check_round_trip::<helm::HelmRelease>("helmrelease.yaml");
    check_round_trip::<notification::Provider>("provider.yaml");
    check_round_trip::<notification::Alert>("alert.yaml");
    check_round_trip::<notification::Receiver>("receiver.yaml");
    check_round_trip::<image::ImageRepository>("imagerepository.yaml");
    check_round_trip::<image::ImagePolicy>("imagepolicy.yaml");
    check_round_trip::<image::ImageUpdateAutomation>("imageupdateautomation.yaml");
}

#[test]
fn unknown_fields_of_a_typed_example_are_reported_by_the_round_trip() {
    let mut raw = read_example("gitrepository.yaml");
    raw["spec"]["notAField"] = serde_json::json!(true);
    let typed: source::GitRepository = serde_json::from_value(raw.clone()).unwrap();
    assert_ne!(serde_json::to_value(&typed).unwrap(), raw);
}

/// Finds the schema default of `path` (dot-separated property names) in the CRD of `plural`.
fn schema_default(plural: &str, path: &str) -> Option<serde_json::Value> {
    let crd = sluice_api::crds::all()
        .into_iter()
        .find(|crd| crd.spec.names.plural == plural)
        .expect("crd exists");
    let mut schema = crd.spec.versions[0].schema.clone()?.open_api_v3_schema?;
    for segment in path.split('.') {
        schema = if segment == "[]" {
            match schema.items? {
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(s) => *s,
                _ => return None,
            }
        } else {
            schema.properties?.get(segment)?.clone()
        };
    }
    schema.default.map(|d| d.0)
}

#[test]
fn crd_defaults_match_flux() {
    use serde_json::json;
    let cases = [
        ("gitrepositories", "spec.timeout", json!("60s")),
        ("gitrepositories", "spec.verify.mode", json!("HEAD")),
        ("gitrepositories", "status", json!({"observedGeneration": -1})),
        ("ocirepositories", "spec.timeout", json!("60s")),
        ("ocirepositories", "spec.provider", json!("generic")),
        ("buckets", "spec.provider", json!("generic")),
        ("buckets", "spec.timeout", json!("60s")),
        ("helmrepositories", "spec.provider", json!("generic")),
        ("helmcharts", "spec.version", json!("*")),
        ("helmcharts", "spec.reconcileStrategy", json!("ChartVersion")),
        ("kustomizations", "spec.force", json!(false)),
        ("kustomizations", "spec.postBuild.substituteFrom.[].optional", json!(false)),
        ("kustomizations", "status", json!({"observedGeneration": -1})),
        ("helmreleases", "spec.chart.spec.version", json!("*")),
        ("helmreleases", "spec.chart.spec.reconcileStrategy", json!("ChartVersion")),
        ("alerts", "spec.eventSeverity", json!("info")),
        ("receivers", "spec.interval", json!("10m")),
        ("imagerepositories", "spec.exclusionList", json!(["^.*\\.sig$"])),
        ("imagepolicies", "spec.digestReflectionPolicy", json!("Never")),
        ("imageupdateautomations", "spec.update.strategy", json!("Setters")),
    ];
    for (plural, path, expected) in cases {
        assert_eq!(schema_default(plural, path), Some(expected), "{plural} {path}");
    }
}

#[test]
fn inventory_ids_use_flux_format() {
    let service = kustomize::ResourceRef::new("default", "podinfo", "v1", "Service");
    assert_eq!((service.id.as_str(), service.v.as_str()), ("default_podinfo__Service", "v1"));
    let deploy = kustomize::ResourceRef::new("default", "podinfo", "apps/v1", "Deployment");
    assert_eq!((deploy.id.as_str(), deploy.v.as_str()), ("default_podinfo_apps_Deployment", "v1"));
    let crd = kustomize::ResourceRef::new(
        "",
        "x.example.com",
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
    );
    assert_eq!(crd.id, "_x.example.com_apiextensions.k8s.io_CustomResourceDefinition");
}
