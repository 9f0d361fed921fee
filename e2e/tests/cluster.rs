//! Smoke tests against the real kube-apiserver: CRDs, documented examples, validation, printer columns, GC.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::Status;
use serde_json::Value;
use sluice_e2e::{TestEnv, wait_for};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

fn read_object(path: &Path) -> DynamicObject {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("parsing {}: {err}", path.display()))
}

async fn api_for(
    env: &TestEnv,
    object: &DynamicObject,
    namespace: &str,
) -> Result<Api<DynamicObject>> {
    let types = object.types.as_ref().context("object without apiVersion/kind")?;
    env.dynamic_api(&types.api_version, &types.kind, Some(namespace)).await
}

/// Every field of `expected` is in `actual` with the same value (the server may add defaults).
fn assert_subset(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            for (key, value) in expected {
                let child = format!("{path}.{key}");
                let other =
                    actual.get(key).unwrap_or_else(|| panic!("{child} missing in {actual:?}"));
                assert_subset(value, other, &child);
            }
        }
        _ => assert_eq!(expected, actual, "at {path}"),
    }
}

#[tokio::test]
async fn apiserver_is_v1_20_2_and_ready() {
    let env = TestEnv::shared().await.unwrap();
    let version = env.client().apiserver_version().await.unwrap();
    assert_eq!(version.git_version, "v1.20.2");
    let readyz = sluice_e2e::cluster::readyz(&env.client()).await.unwrap();
    assert_eq!(readyz.trim(), "ok");
}

#[tokio::test]
async fn all_crds_apply_and_become_established() {
    let env = TestEnv::shared().await.unwrap();
    let names = env.install_crds().await.unwrap();
    let files = sluice_e2e::env::crd_files(&sluice_e2e::env::crd_dir()).unwrap();
    assert_eq!(names.len(), files.len());
    assert!(names.len() >= 13, "expected the 13 Flux kinds, got {names:?}");
    assert!(names.contains(&"gitrepositories.source.toolkit.fluxcd.io".to_owned()));
}

#[tokio::test]
async fn one_documented_example_of_every_kind_is_created_and_read_back() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let namespace = env.namespace("examples").await.unwrap();
    let mut kinds = Vec::new();
    for file in fixtures("examples") {
        let object = read_object(&file);
        let api = api_for(&env, &object, &namespace).await.unwrap();
        let name = object.metadata.name.clone().unwrap();
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|err| panic!("creating {}: {err}", file.display()));
        let read = api.get(&name).await.unwrap();
        assert_subset(
            &object.data["spec"],
            &read.data["spec"],
            &format!("{}: spec", file.display()),
        );
        assert_eq!(read.metadata.generation, Some(1));
        kinds.push(object.types.unwrap().kind);
    }
    kinds.sort();
    let crd_kinds = sluice_e2e::env::crd_files(&sluice_e2e::env::crd_dir()).unwrap().len();
    assert_eq!(kinds.len(), crd_kinds, "one example per CRD: {kinds:?}");
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_a_message_naming_the_field() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let namespace = env.namespace("invalid").await.unwrap();
    let expectations = [
        ("gitrepository-ftp-url.yaml", "spec.url", "ftp://example.com/repo.git"),
        ("kustomization-no-prune.yaml", "spec.prune", "Required value"),
        ("provider-unknown-type.yaml", "spec.type", "carrier-pigeon"),
    ];
    for (file, field, detail) in expectations {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invalid").join(file);
        let object = read_object(&path);
        let api = api_for(&env, &object, &namespace).await.unwrap();
        let err = api.create(&PostParams::default(), &object).await.expect_err(file);
        let kube::Error::Api(status) = err else { panic!("{file}: not an API error: {err}") };
        let Status { code, reason, message, .. } = *status;
        assert_eq!((code, reason.as_str()), (422, "Invalid"), "{file}: {message}");
        assert!(message.contains(field) && message.contains(detail), "{file}: {message}");
    }
}

#[tokio::test]
async fn kubectl_get_shows_the_printer_columns() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let namespace = env.namespace("columns").await.unwrap();
    for file in fixtures("examples") {
        let object = read_object(&file);
        let api = api_for(&env, &object, &namespace).await.unwrap();
        api.create(&PostParams::default(), &object).await.unwrap();
    }
    for crd_file in sluice_e2e::env::crd_files(&sluice_e2e::env::crd_dir()).unwrap() {
        let crd: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&crd_file).unwrap()).unwrap();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap();
        let group = crd["spec"]["group"].as_str().unwrap();
        let version = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|version| version["storage"] == true)
            .unwrap();
        let columns = version["additionalPrinterColumns"].as_array().cloned().unwrap_or_default();
        // Columns with a priority above 0 show only in the wide output.
        for wide in [false, true] {
            let resource = format!("{plural}.{group}");
            let mut args = vec!["get", resource.as_str(), "-n", namespace.name()];
            if wide {
                args.extend(["-o", "wide"]);
            }
            let output = env.kubectl().args(&args).output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let header = stdout.lines().next().unwrap_or_default();
            assert!(header.starts_with("NAME"), "{plural}: {stdout}");
            for column in &columns {
                let name = column["name"].as_str().unwrap().to_uppercase();
                let shown = wide || column["priority"].as_i64().unwrap_or(0) == 0;
                assert_eq!(
                    header.contains(&name),
                    shown,
                    "{plural} (wide: {wide}): column {name} in {header:?}"
                );
            }
            assert_eq!(stdout.lines().count(), 2, "{plural}: one object expected: {stdout}");
        }
    }
    // A column's value, not only its header: GitRepository's URL.
    let output = env.kubectl().args(["get", "gitrepositories", "-n", &namespace]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("https://github.com/stefanprodan/podinfo"), "{stdout}");
}

#[tokio::test]
async fn controller_manager_collects_owned_objects_and_finalizes_namespaces() {
    let env = TestEnv::shared().await.unwrap();
    let namespace = env.namespace("gc").await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(env.client(), &namespace);
    let owner: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "owner" }, "data": { "a": "1" }
    }))
    .unwrap();
    let owner = config_maps.create(&PostParams::default(), &owner).await.unwrap();
    let child: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "child", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid.clone().unwrap(),
        }]},
    }))
    .unwrap();
    config_maps.create(&PostParams::default(), &child).await.unwrap();
    config_maps.delete("owner", &DeleteParams::background()).await.unwrap();
    wait_for(Duration::from_secs(60), "the child ConfigMap to be garbage-collected", || async {
        Ok(config_maps.get_opt("child").await?.is_none().then_some(()))
    })
    .await
    .unwrap();

    let namespaces: Api<Namespace> = Api::all(env.client());
    let doomed = env.namespace("doomed").await.unwrap();
    let name = doomed.name().to_owned();
    drop(doomed);
    wait_for(Duration::from_secs(60), "the namespace to be finalized", || async {
        Ok(namespaces.get_opt(&name).await?.is_none().then_some(()))
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn create_yaml_creates_every_document_and_kstatus_checks_the_result() {
    let env = TestEnv::shared().await.unwrap();
    let namespace = env.namespace("yaml").await.unwrap();
    let created = env
        .create_yaml(
            &namespace,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# comment only\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata:\n  name: b\nstringData:\n  k: v\n",
        )
        .await
        .unwrap();
    let names: Vec<_> =
        created.iter().map(|object| object.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    // A ConfigMap has no status at all: the checker says what is missing.
    let config_map = serde_json::to_value(&created[0]).unwrap();
    let message = sluice_e2e::check_kstatus(&config_map).unwrap_err().to_string();
    assert!(message.contains("no Ready condition"), "{message}");
}
