//! Build behaviour on small in-memory trees: one `check` per feature, expected output as kustomize prints it.

use std::path::Path;

use sluice_kustomize::{BuildOptions, MemoryFileSystem, build, build_with_options, to_yaml};

fn fs_of(files: &[(&str, &str)]) -> MemoryFileSystem {
    let mut fs = MemoryFileSystem::new();
    for (path, content) in files {
        fs.add_file(Path::new("/src").join(path), content.as_bytes());
    }
    fs
}

#[track_caller]
fn check(files: &[(&str, &str)], expected: &str) {
    let fs = fs_of(files);
    let objects = build(&fs, Path::new("/src")).unwrap_or_else(|e| panic!("build failed: {e}"));
    assert_eq!(to_yaml(&objects), expected);
}

#[track_caller]
fn check_error(files: &[(&str, &str)], dir: &str, expected_fragment: &str) {
    let fs = fs_of(files);
    let options = BuildOptions { root: Some("/src".into()) };
    match build_with_options(&fs, &Path::new("/src").join(dir), &options) {
        Ok(objects) => panic!("expected an error, got:\n{}", to_yaml(&objects)),
        Err(e) => assert!(
            e.to_string().contains(expected_fragment),
            "error {e:?} lacks {expected_fragment:?}"
        ),
    }
}

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: app
        image: nginx:1.0
        envFrom:
        - configMapRef:
            name: cfg
";

#[test]
fn prefix_namespace_and_name_references() {
    check(
        &[
            (
                "kustomization.yaml",
                "namePrefix: p-\nnamespace: ns\nresources: [deploy.yaml]\nconfigMapGenerator:\n- name: cfg\n  literals: [a=b]\n",
            ),
            ("deploy.yaml", DEPLOY),
        ],
        "apiVersion: v1
data:
  a: b
kind: ConfigMap
metadata:
  name: p-cfg-4h2mbtbbt6
  namespace: ns
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: p-web
  namespace: ns
spec:
  template:
    spec:
      containers:
      - envFrom:
        - configMapRef:
            name: p-cfg-4h2mbtbbt6
        image: nginx:1.0
        name: app
",
    );
}

#[test]
fn common_labels_reach_selectors_and_templates() {
    check(
        &[
            ("kustomization.yaml", "commonLabels: {app: x}\nresources: [d.yaml]\n"),
            ("d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"),
        ],
        "apiVersion: apps/v1
kind: Deployment
metadata:
  labels:
    app: x
  name: d
spec:
  selector:
    matchLabels:
      app: x
  template:
    metadata:
      labels:
        app: x
",
    );
}

#[test]
fn images_and_replicas() {
    check(
        &[
            (
                "kustomization.yaml",
                "resources: [d.yaml]\nimages:\n- name: nginx\n  newTag: \"2.0\"\nreplicas:\n- name: web\n  count: 3\n",
            ),
            ("d.yaml", DEPLOY),
        ],
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  template:
    spec:
      containers:
      - envFrom:
        - configMapRef:
            name: cfg
        image: nginx:2.0
        name: app
",
    );
}

#[test]
fn json_patch_with_target() {
    check(
        &[
            (
                "kustomization.yaml",
                "resources: [d.yaml]\npatches:\n- target: {kind: Deployment, name: w.*}\n  patch: |-\n    - op: replace\n      path: /metadata/name\n      value: renamed\n",
            ),
            ("d.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"),
        ],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: renamed\n",
    );
}

#[test]
fn overlay_merges_generated_config_map() {
    check(
        &[
            (
                "kustomization.yaml",
                "resources: [base]\nconfigMapGenerator:\n- name: c\n  behavior: merge\n  literals: [b=2]\n",
            ),
            ("base/kustomization.yaml", "configMapGenerator:\n- name: c\n  literals: [a=1]\n"),
        ],
        "apiVersion: v1\ndata:\n  a: \"1\"\n  b: \"2\"\nkind: ConfigMap\nmetadata:\n  name: c-7gdc49gk6d\n",
    );
}

#[test]
fn components_apply_after_resources() {
    check(
        &[
            ("kustomization.yaml", "resources: [cm.yaml]\ncomponents: [comp]\n"),
            ("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"),
            (
                "comp/kustomization.yaml",
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nnameSuffix: -s\n",
            ),
        ],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c-s\n",
    );
}

#[test]
fn errors_name_what_to_fix() {
    check_error(&[], ".", "unable to find one of 'kustomization.yaml'");
    check_error(&[("kustomization.yaml", "resources: [missing.yaml]\n")], ".", "missing.yaml");
    check_error(
        &[("kustomization.yaml", "resources: [https://github.com/x/y]\n")],
        ".",
        "remote resource",
    );
    check_error(&[("kustomization.yaml", "bogusField: 1\n")], ".", "bogusField");
    check_error(
        &[("a/kustomization.yaml", "resources: [../../outside]\n")],
        "a",
        "is not in or below",
    );
    check_error(
        &[("a/kustomization.yaml", "resources: [../b.yaml]\n"), ("b.yaml", "kind: ConfigMap\n")],
        "a",
        "is not in or below",
    );
    check_error(
        &[
            ("kustomization.yaml", "resources: [a.yaml, b.yaml]\n"),
            ("a.yaml", "kind: X\nmetadata: {name: n}\n"),
            ("b.yaml", "kind: X\nmetadata: {name: n}\n"),
        ],
        ".",
        "already registered id",
    );
}

#[test]
fn generated_kustomization_overlays_a_tree() {
    let base = fs_of(&[("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")]);
    let mut kustomization =
        sluice_kustomize::Kustomization::from_yaml("resources: [cm.yaml]\n").unwrap();
    kustomization.namespace = "apps".into();
    kustomization.common_annotations.insert("owner".into(), "flux".into());
    let overlay =
        MemoryFileSystem::new().with_file("/src/app/kustomization.yaml", kustomization.to_yaml());
    let fs = sluice_kustomize::OverlayFileSystem::new(&base, overlay);
    let objects = build(&fs, Path::new("/src/app")).unwrap();
    assert_eq!(
        to_yaml(&objects),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  annotations:\n    owner: flux\n  name: c\n  namespace: apps\n"
    );
}

#[test]
fn kustomization_round_trips_through_yaml() {
    let text = "namePrefix: p-\nNAMESPACE: x\nimages:\n- name: nginx\n  newTag: \"1.2\"\n";
    let k = sluice_kustomize::Kustomization::from_yaml(text).unwrap();
    assert_eq!(k.namespace, "x");
    let again = sluice_kustomize::Kustomization::from_yaml(&k.to_yaml()).unwrap();
    assert_eq!(k, again);
}
