//! Table tests of strategic merge patch: one line per case, JSON in, JSON out.

use serde_json::{Value, json};

use crate::{Error, ListOrder, MergeOptions, Schema, merge, merge_with};

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad test JSON {text}: {e}"))
}

/// Merge `patch` into `original`, both written as JSON, with the built-in schema.
#[track_caller]
fn check(original: &str, patch: &str, expected: &str) {
    check_with(Schema::builtin(), original, patch, expected);
}

#[track_caller]
fn check_with(schema: &Schema, original: &str, patch: &str, expected: &str) {
    let got = merge(&parse(original), &parse(patch), schema).expect("merge failed");
    let expected = if expected == "DELETED" { None } else { Some(parse(expected)) };
    assert_eq!(got, expected, "\n original: {original}\n patch: {patch}");
}

/// Merge into a Deployment's pod spec: `original` and `patch` are the `spec.template.spec`.
#[track_caller]
fn check_pod(original: &str, patch: &str, expected: &str) {
    let wrap = |spec: &str| {
        format!(
            r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"d"}},"spec":{{"template":{{"spec":{spec}}}}}}}"#
        )
    };
    let got = merge(&parse(&wrap(original)), &parse(&wrap(patch)), Schema::builtin())
        .expect("merge failed")
        .expect("object deleted");
    assert_eq!(
        got["spec"]["template"]["spec"],
        parse(expected),
        "\n original: {original}\n patch: {patch}"
    );
}

/// Merge into a custom resource (no schema): `original` and `patch` are the `spec`.
#[track_caller]
fn check_crd(original: &str, patch: &str, expected: &str) {
    let wrap = |spec: &str| {
        format!(
            r#"{{"apiVersion":"example.com/v1","kind":"Thing","metadata":{{"name":"t"}},"spec":{spec}}}"#
        )
    };
    let got = merge(&parse(&wrap(original)), &parse(&wrap(patch)), Schema::builtin())
        .expect("merge failed")
        .expect("object deleted");
    assert_eq!(got["spec"], parse(expected), "\n original: {original}\n patch: {patch}");
}

#[track_caller]
fn check_error(original: &str, patch: &str, message_part: &str) {
    let err =
        merge(&parse(original), &parse(patch), Schema::builtin()).expect_err("merge should fail");
    let message = err.to_string();
    assert!(message.contains(message_part), "error {message:?} lacks {message_part:?}");
}

#[test]
fn builtin_schema_knows_merge_keys() {
    let s = Schema::builtin();
    assert_eq!(s.version(), Some("1.20.2"));
    let pod = ["spec", "template", "spec"];
    let at = |kind: &str, api: &str, rest: &[&str]| s.list_merge_keys(api, kind, rest);
    let deploy = |rest: &[&str]| {
        let path: Vec<&str> = pod.iter().chain(rest).copied().collect();
        at("Deployment", "apps/v1", &path)
    };
    let keys = |k: &[&str]| Some(k.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(deploy(&["containers"]), keys(&["name"]));
    assert_eq!(deploy(&["initContainers"]), keys(&["name"]));
    assert_eq!(deploy(&["containers", "[]", "env"]), keys(&["name"]));
    assert_eq!(deploy(&["containers", "[]", "ports"]), keys(&["containerPort", "protocol"]));
    assert_eq!(deploy(&["containers", "[]", "volumeMounts"]), keys(&["mountPath"]));
    assert_eq!(deploy(&["containers", "[]", "volumeDevices"]), keys(&["devicePath"]));
    assert_eq!(deploy(&["volumes"]), keys(&["name"]));
    assert_eq!(deploy(&["imagePullSecrets"]), keys(&["name"]));
    assert_eq!(deploy(&["hostAliases"]), keys(&["ip"]));
    assert_eq!(deploy(&["topologySpreadConstraints"]), keys(&["topologyKey", "whenUnsatisfiable"]));
    // Atomic or unannotated lists are replaced.
    assert_eq!(deploy(&["tolerations"]), None);
    assert_eq!(deploy(&["containers", "[]", "args"]), None);
    assert_eq!(deploy(&["containers", "[]", "command"]), None);
    assert_eq!(deploy(&["containers", "[]", "envFrom"]), None);
    // Primitive sets.
    assert_eq!(at("Deployment", "apps/v1", &["metadata", "finalizers"]), keys(&[]));
    assert_eq!(at("Pod", "v1", &["spec", "containers"]), keys(&["name"]));
    assert_eq!(at("Service", "v1", &["spec", "ports"]), keys(&["port", "protocol"]));
    assert_eq!(at("Deployment", "apps/v1", &["status", "conditions"]), keys(&["type"]));
    assert_eq!(
        at(
            "CronJob",
            "batch/v1beta1",
            &["spec", "jobTemplate", "spec", "template", "spec", "containers"]
        ),
        keys(&["name"])
    );
    assert_eq!(at("Deployment", "apps/v1", &["metadata", "ownerReferences"]), keys(&["uid"]));
    assert!(s.knows_kind("apps/v1", "StatefulSet"));
    assert!(!s.knows_kind("example.com/v1", "Thing"));
}

#[test]
fn maps() {
    check(r#"{"a":1}"#, r#"{"b":2}"#, r#"{"a":1,"b":2}"#);
    check(r#"{"a":1,"b":2}"#, r#"{"a":null}"#, r#"{"b":2}"#);
    check(r#"{"a":{"x":1,"y":2}}"#, r#"{"a":{"y":3,"z":4}}"#, r#"{"a":{"x":1,"y":3,"z":4}}"#);
    check(r#"{"a":{"x":1}}"#, r#"{"a":null}"#, r#"{}"#);
    check(r#"{"a":1}"#, r#"{"missing":null}"#, r#"{"a":1}"#);
    check(r#"{"a":null}"#, r#"{"b":1}"#, r#"{"a":null,"b":1}"#);
    check(r#"{"a":{}}"#, r#"{"a":{"b":1}}"#, r#"{"a":{"b":1}}"#);
    check(r#"{"a":{"b":1}}"#, r#"{"a":{}}"#, r#"{"a":{"b":1}}"#);
    check(r#"{"a":"x"}"#, r#"{"a":"y"}"#, r#"{"a":"y"}"#);
    check(r#"{"a":1}"#, r#"{"a":true}"#, r#"{"a":true}"#);
    check(r#"{}"#, r#"{"a":{"b":null,"c":1}}"#, r#"{"a":{"c":1}}"#);
}

#[test]
fn new_fields_are_appended_sorted() {
    let got = merge(&parse(r#"{"z":1}"#), &parse(r#"{"c":1,"b":1,"a":1}"#), Schema::builtin())
        .unwrap()
        .unwrap();
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["z", "a", "b", "c"]);
}

#[test]
fn patch_directive_on_maps() {
    check(r#"{"a":{"x":1,"y":2}}"#, r#"{"a":{"$patch":"replace","z":3}}"#, r#"{"a":{"z":3}}"#);
    check(r#"{"a":{"x":1},"b":1}"#, r#"{"a":{"$patch":"delete"}}"#, r#"{"b":1}"#);
    check(r#"{"a":{"x":1}}"#, r#"{"a":{"$patch":"merge","y":2}}"#, r#"{"a":{"x":1,"y":2}}"#);
    check(r#"{"b":1}"#, r#"{"a":{"$patch":"delete"}}"#, r#"{"b":1}"#);
    check(r#"{"b":1}"#, r#"{"a":{"$patch":"replace","x":1}}"#, r#"{"a":{"x":1},"b":1}"#);
    check(r#"{"kind":"ConfigMap","apiVersion":"v1"}"#, r#"{"$patch":"delete"}"#, "DELETED");
    check(
        r#"{"apiVersion":"v1","kind":"ConfigMap","data":{"a":"1"}}"#,
        r#"{"$patch":"replace","apiVersion":"v1","kind":"ConfigMap","data":{"b":"2"}}"#,
        r#"{"apiVersion":"v1","kind":"ConfigMap","data":{"b":"2"}}"#,
    );
}

#[test]
fn merge_lists_by_key() {
    let c = |name: &str, image: &str| format!(r#"{{"name":"{name}","image":"{image}"}}"#);
    check_pod(
        &format!(r#"{{"containers":[{},{}]}}"#, c("a", "1"), c("b", "1")),
        &format!(r#"{{"containers":[{}]}}"#, c("b", "2")),
        &format!(r#"{{"containers":[{},{}]}}"#, c("b", "2"), c("a", "1")),
    );
    check_pod(
        r#"{"containers":[{"name":"a","image":"1"}]}"#,
        r#"{"containers":[{"name":"c","image":"3"}]}"#,
        r#"{"containers":[{"name":"c","image":"3"},{"name":"a","image":"1"}]}"#,
    );
    check_pod(
        r#"{"containers":[{"name":"a","image":"1"},{"name":"b"}]}"#,
        r#"{"containers":[{"name":"a","$patch":"delete"}]}"#,
        r#"{"containers":[{"name":"b"}]}"#,
    );
    // kustomize quirk: in its patch-first order the original element is set back over a
    // replaced one (kyaml `appendListNode`), so `$patch: replace` on an element has no effect.
    check_pod(
        r#"{"containers":[{"name":"b"},{"name":"a","image":"1","args":["x"]}]}"#,
        r#"{"containers":[{"name":"a","$patch":"replace","image":"2"}]}"#,
        r#"{"containers":[{"name":"a","image":"1","args":["x"]},{"name":"b"}]}"#,
    );
    check_pod(
        r#"{"containers":[{"name":"a"}]}"#,
        r#"{"containers":[{"name":"zz","$patch":"delete"}]}"#,
        r#"{"containers":[{"name":"a"}]}"#,
    );
    check_pod(
        r#"{"containers":[{"name":"a","env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}]}]}"#,
        r#"{"containers":[{"name":"a","env":[{"name":"Y","value":"3"},{"name":"Z","value":"4"}]}]}"#,
        r#"{"containers":[{"name":"a","env":[{"name":"Y","value":"3"},{"name":"Z","value":"4"},{"name":"X","value":"1"}]}]}"#,
    );
    check_pod(
        r#"{"containers":[{"name":"a","env":[{"name":"X","value":"1"}]}]}"#,
        r#"{"containers":[{"name":"a","env":[{"name":"X","value":null,"valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}]}]}"#,
        r#"{"containers":[{"name":"a","env":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}]}]}"#,
    );
    check_pod(
        r#"{"containers":[{"name":"a","volumeMounts":[{"mountPath":"/a","name":"v"}]}]}"#,
        r#"{"containers":[{"name":"a","volumeMounts":[{"mountPath":"/a","name":"w"},{"mountPath":"/b","name":"v"}]}]}"#,
        r#"{"containers":[{"name":"a","volumeMounts":[{"mountPath":"/a","name":"w"},{"mountPath":"/b","name":"v"}]}]}"#,
    );
    check_pod(
        r#"{"volumes":[{"name":"v","emptyDir":{}}]}"#,
        r#"{"volumes":[{"name":"v","emptyDir":null,"configMap":{"name":"c"}}]}"#,
        r#"{"volumes":[{"name":"v","configMap":{"name":"c"}}]}"#,
    );
    check_pod(r#"{}"#, r#"{"containers":[{"name":"a"}]}"#, r#"{"containers":[{"name":"a"}]}"#);
    check_pod(
        r#"{"containers":[{"name":"a"}]}"#,
        r#"{"containers":[]}"#,
        r#"{"containers":[{"name":"a"}]}"#,
    );
    check_pod(r#"{"containers":[{"name":"a"}]}"#, r#"{"containers":null}"#, r#"{}"#);
}

#[test]
fn ports_merge_on_port_and_protocol() {
    let p = r#"{"containers":[{"name":"a","ports":[{"containerPort":80,"protocol":"TCP","name":"http"}]}]}"#;
    // kustomize quirk: a patch port without protocol is identified with the original's
    // `80/TCP` (kyaml `mergeValues`) but then looked up by `80/TCP`, which the patch element
    // lacks, so it changes nothing.
    check_pod(p, r#"{"containers":[{"name":"a","ports":[{"containerPort":80,"name":"web"}]}]}"#, p);
    check_pod(
        p,
        r#"{"containers":[{"name":"a","ports":[{"containerPort":80,"protocol":"TCP","name":"web"}]}]}"#,
        r#"{"containers":[{"name":"a","ports":[{"containerPort":80,"protocol":"TCP","name":"web"}]}]}"#,
    );
    // Original ports with and without protocol for the same number collapse into one.
    check_pod(
        r#"{"containers":[{"name":"a","ports":[{"containerPort":80,"protocol":"TCP"},{"containerPort":80}]}]}"#,
        r#"{"containers":[{"name":"a","image":"x"}]}"#,
        r#"{"containers":[{"name":"a","ports":[{"containerPort":80}],"image":"x"}]}"#,
    );
    check_pod(
        p,
        r#"{"containers":[{"name":"a","ports":[{"containerPort":80,"protocol":"UDP","name":"dns"}]}]}"#,
        r#"{"containers":[{"name":"a","ports":[{"containerPort":80,"protocol":"UDP","name":"dns"},{"containerPort":80,"protocol":"TCP","name":"http"}]}]}"#,
    );
    check(
        r#"{"apiVersion":"v1","kind":"Service","spec":{"ports":[{"port":30900,"targetPort":30900,"protocol":"TCP"}],"type":"NodePort"}}"#,
        r#"{"apiVersion":"v1","kind":"Service","spec":{"ports":[{"port":30900,"targetPort":30900}],"selector":{"s":"w"}}}"#,
        r#"{"apiVersion":"v1","kind":"Service","spec":{"ports":[{"port":30900,"targetPort":30900,"protocol":"TCP"}],"type":"NodePort","selector":{"s":"w"}}}"#,
    );
}

#[test]
fn list_patch_directives() {
    check_pod(
        r#"{"containers":[{"name":"a"},{"name":"b"}]}"#,
        r#"{"containers":[{"$patch":"replace"},{"name":"c"}]}"#,
        r#"{"containers":[{"name":"c"}]}"#,
    );
    check_pod(
        r#"{"containers":[{"name":"a"}],"hostname":"h"}"#,
        r#"{"containers":[{"$patch":"delete"}]}"#,
        r#"{"hostname":"h"}"#,
    );
    check_pod(
        r#"{"containers":[{"name":"a"}]}"#,
        r#"{"containers":[{"$patch":"merge"},{"name":"b"}]}"#,
        r#"{"containers":[{"name":"b"},{"name":"a"}]}"#,
    );
    // Lists without a merge strategy take the patch as it is, directive included (kyaml).
    check_crd(
        r#"{"l":[1,2]}"#,
        r#"{"l":[{"$patch":"replace"},3]}"#,
        r#"{"l":[{"$patch":"replace"},3]}"#,
    );
    // A merging list the original lacks keeps the patch's directive element...
    check_pod(
        r#"{"containers":[{"name":"a"}]}"#,
        r#"{"containers":[{"name":"a","env":[{"$patch":"replace"},{"name":"X"}]}]}"#,
        r#"{"containers":[{"name":"a","env":[{"$patch":"replace"}]}]}"#,
    );
    // ... but applies it below a new element, where the patch is merged into itself.
    check_pod(
        r#"{"containers":[{"name":"a"}]}"#,
        r#"{"containers":[{"name":"b","env":[{"$patch":"replace"},{"name":"X"}]}]}"#,
        r#"{"containers":[{"name":"b","env":[{"name":"X"}]},{"name":"a"}]}"#,
    );
}

#[test]
fn atomic_and_unknown_lists_are_replaced() {
    check_pod(
        r#"{"tolerations":[{"key":"a","operator":"Exists"}]}"#,
        r#"{"tolerations":[{"key":"b","operator":"Exists"}]}"#,
        r#"{"tolerations":[{"key":"b","operator":"Exists"}]}"#,
    );
    check_pod(
        r#"{"containers":[{"name":"a","args":["1","2"]}]}"#,
        r#"{"containers":[{"name":"a","args":["3"]}]}"#,
        r#"{"containers":[{"name":"a","args":["3"]}]}"#,
    );
    check_crd(
        r#"{"items":[{"name":"a","v":1}]}"#,
        r#"{"items":[{"name":"b"}]}"#,
        r#"{"items":[{"name":"b"}]}"#,
    );
    check_crd(r#"{"l":[1,2]}"#, r#"{"l":[3]}"#, r#"{"l":[3]}"#);
    check_crd(r#"{"m":{"a":1}}"#, r#"{"m":{"b":2}}"#, r#"{"m":{"a":1,"b":2}}"#);
    check_crd(r#"{"a":1}"#, r#"{"a":null}"#, r#"{}"#);
}

#[test]
fn primitive_lists_with_merge_strategy_are_sets() {
    let meta = |f: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c","finalizers":{f}}}}}"#
        )
    };
    check(&meta(r#"["a","b"]"#), &meta(r#"["b","c"]"#), &meta(r#"["b","c","a"]"#));
    check(&meta(r#"["a","a"]"#), &meta(r#"["a"]"#), &meta(r#"["a"]"#));
    check(&meta(r#"["a","b"]"#), &meta(r#"[{"$patch":"replace"},"c"]"#), &meta(r#"["c"]"#));
}

#[test]
fn apimachinery_directives() {
    let meta = |extra: &str| {
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c"{extra}}}}}"#)
    };
    check(
        &meta(r#","finalizers":["a","b","c"]"#),
        &meta(r#","$deleteFromPrimitiveList/finalizers":["b"]"#),
        &meta(r#","finalizers":["a","c"]"#),
    );
    check_pod(
        r#"{"containers":[{"name":"a"},{"name":"b"},{"name":"c"}]}"#,
        r#"{"$setElementOrder/containers":[{"name":"c"},{"name":"a"},{"name":"b"}]}"#,
        r#"{"containers":[{"name":"c"},{"name":"a"},{"name":"b"}]}"#,
    );
    check_pod(
        r#"{"containers":[{"name":"a"},{"name":"b"}]}"#,
        r#"{"$setElementOrder/containers":[{"name":"n"},{"name":"b"}],"containers":[{"name":"n"}]}"#,
        r#"{"containers":[{"name":"n"},{"name":"a"},{"name":"b"}]}"#,
    );
    check(
        &meta(r#","finalizers":["a","b"]"#),
        &meta(r#","$setElementOrder/finalizers":["b","a"]"#),
        &meta(r#","finalizers":["b","a"]"#),
    );
    check(
        r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}}"#,
        r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}"#,
        r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"strategy":{"type":"Recreate"}}}"#,
    );
    check_pod(
        r#"{"volumes":[{"name":"v","emptyDir":{}}]}"#,
        r#"{"volumes":[{"$retainKeys":["name","hostPath"],"name":"v","hostPath":{"path":"/x"}}]}"#,
        r#"{"volumes":[{"name":"v","hostPath":{"path":"/x"}}]}"#,
    );
    // Unnamed elements go before a named one the original had after them (apimachinery
    // `mergeSortedSlice`).
    check_pod(
        r#"{"containers":[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"}]}"#,
        r#"{"$setElementOrder/containers":[{"name":"d"},{"name":"b"}]}"#,
        r#"{"containers":[{"name":"a"},{"name":"c"},{"name":"d"},{"name":"b"}]}"#,
    );
}

#[test]
fn schema_follows_the_original_kind() {
    // A patch without apiVersion still merges by the original's kind.
    check(
        r#"{"apiVersion":"apps/v1","kind":"StatefulSet","spec":{"template":{"spec":{"containers":[{"name":"a","image":"1"},{"name":"b"}]}}}}"#,
        r#"{"kind":"StatefulSet","spec":{"template":{"spec":{"containers":[{"name":"a","image":"2"}]}}}}"#,
        r#"{"apiVersion":"apps/v1","kind":"StatefulSet","spec":{"template":{"spec":{"containers":[{"name":"a","image":"2"},{"name":"b"}]}}}}"#,
    );
}

#[test]
fn extended_schema_adds_custom_kinds() {
    let doc = json!({"definitions": {
        "v1alpha1.MyCRD": {
            "properties": {"spec": {"properties": {"template": {"$ref": "#/definitions/io.k8s.api.core.v1.PodTemplateSpec"}}}},
            "x-kubernetes-group-version-kind": [
                {"group": "example.com", "kind": "MyCRD", "version": "v1alpha1"},
                {"group": "", "kind": "MyCRD", "version": "v1alpha1"}
            ]
        },
        "com.example.Other": {
            "properties": {"spec": {"properties": {"items": {
                "type": "array", "items": {"type": "object"},
                "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "id"
            }}}},
            "x-kubernetes-group-version-kind": [{"group": "example.com", "kind": "Other", "version": "v1"}]
        }
    }});
    let schema = Schema::builtin().extended(&doc).unwrap();
    for api_version in ["example.com/v1alpha1", "v1alpha1"] {
        let wrap = |containers: &str| {
            format!(
                r#"{{"apiVersion":"{api_version}","kind":"MyCRD","spec":{{"template":{{"spec":{{"containers":{containers}}}}}}}}}"#
            )
        };
        check_with(
            &schema,
            &wrap(r#"[{"name":"server","image":"server","command":"x"}]"#),
            &wrap(r#"[{"name":"server","image":"nginx"}]"#),
            &wrap(r#"[{"name":"server","image":"nginx","command":"x"}]"#),
        );
    }
    let other = |items: &str| {
        format!(r#"{{"apiVersion":"example.com/v1","kind":"Other","spec":{{"items":{items}}}}}"#)
    };
    check_with(
        &schema,
        &other(r#"[{"id":1,"a":1}]"#),
        &other(r#"[{"id":1,"b":2},{"id":2}]"#),
        &other(r#"[{"id":1,"a":1,"b":2},{"id":2}]"#),
    );
    // A schema from the document alone knows only its kinds (kustomize's `openapi: path:`).
    let custom_only = Schema::from_openapi(&doc).unwrap();
    assert!(custom_only.knows_kind("example.com/v1", "Other"));
    assert!(!custom_only.knows_kind("apps/v1", "Deployment"));
    // Without the extension the lists are replaced.
    check(&other(r#"[{"id":1,"a":1}]"#), &other(r#"[{"id":2}]"#), &other(r#"[{"id":2}]"#));
}

#[test]
fn invalid_openapi_documents_are_rejected() {
    let err = Schema::from_openapi(&json!({"swagger": "2.0"})).unwrap_err();
    assert!(matches!(err, Error::InvalidSchema { .. }), "{err}");
    let err = Schema::builtin().extended(&json!({"swagger": "2.0"})).unwrap_err();
    assert!(matches!(err, Error::InvalidSchema { .. }), "{err}");
    let err = Schema::empty()
        .extended(
            &json!({"definitions": {"x": {"x-kubernetes-group-version-kind": [{"group": "g"}]}}}),
        )
        .unwrap_err();
    assert!(err.to_string().contains("definitions.x.x-kubernetes-group-version-kind"), "{err}");
}

#[test]
fn bad_patches_name_the_field() {
    check_error(r#"{"a":{"b":1}}"#, r#"{"a":{"$patch":"explode"}}"#, "a.$patch");
    check_error(
        r#"{"a":{"b":{"c":1}}}"#,
        r#"{"a":{"b":[1]}}"#,
        "invalid patch at a.b: the patch has a list where the original has a map",
    );
    check_error(r#"{"a":{"b":1}}"#, r#"{"a":{"b":{"c":1}}}"#, "a.b");
    check_error(r#"{"a":{}}"#, r#"{"a":{"$retainKeys":"x"}}"#, "a.$retainKeys");
    check_error(r#"{"a":{}}"#, r#"{"a":{"$retainKeys":["x"],"y":1}}"#, "not listed in $retainKeys");
    check_error(
        r#"{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"a","ports":[]}]}}"#,
        r#"{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"a","ports":{"x":1}}]}}"#,
        "spec.containers[name=a].ports",
    );
}

#[test]
fn original_first_appends_new_elements() {
    let options = MergeOptions { list_order: ListOrder::OriginalFirst };
    let check_append = |original: &str, patch: &str, expected: &str| {
        let got = merge_with(&parse(original), &parse(patch), Schema::builtin(), &options).unwrap();
        assert_eq!(got, Some(parse(expected)), "\n original: {original}\n patch: {patch}");
    };
    let pod = |spec: &str| format!(r#"{{"apiVersion":"v1","kind":"Pod","spec":{spec}}}"#);
    check_append(
        &pod(r#"{"containers":[{"name":"a","image":"1"},{"name":"b"}]}"#),
        &pod(r#"{"containers":[{"name":"c"},{"name":"a","image":"2","$patch":"replace"}]}"#),
        &pod(r#"{"containers":[{"name":"a","image":"2"},{"name":"b"},{"name":"c"}]}"#),
    );
    let meta =
        |f: &str| format!(r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"finalizers":{f}}}}}"#);
    check_append(&meta(r#"["a","b"]"#), &meta(r#"["c","a"]"#), &meta(r#"["a","b","c"]"#));
}

#[test]
fn builtin_table_is_in_generated_form() {
    // The generator writes the pretty JSON of the pruned schema; a hand edit would show here.
    let regenerated = serde_json::to_string_pretty(Schema::builtin()).unwrap() + "\n";
    assert!(regenerated == include_str!("builtin_schema.json"), "run examples/gen_schema.rs");
    assert_eq!(&Schema::builtin().pruned(), Schema::builtin());
}
