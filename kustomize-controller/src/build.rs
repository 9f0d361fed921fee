//! Building a Kustomization's manifests from an unpacked artifact as Flux does: generate a
//! kustomization.yaml when the path has none, add the spec's overrides, run the kustomize
//! engine, substitute variables, and stamp the common metadata.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};
use sluice_api::kustomize::{DECRYPT_ANNOTATION, KustomizationSpec, SUBSTITUTE_ANNOTATION};

/// Why building failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `spec.path` leaves the artifact or does not exist in it.
    #[error("spec.path {path:?} {problem} in revision {revision}")]
    InvalidPath {
        /// The configured path.
        path: String,
        /// What is wrong with it.
        problem: &'static str,
        /// The artifact revision.
        revision: String,
    },
    /// Reading or writing the unpacked artifact failed.
    #[error("{operation} {path}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kustomization file could not be parsed or updated.
    #[error("{path}: {message}")]
    Kustomization {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The kustomize build failed.
    #[error("kustomize build failed")]
    Kustomize(#[source] sluice_kustomize::Error),
    /// Variable substitution failed.
    #[error("post build substitutions failed on {object}")]
    Substitute {
        /// The object whose manifest failed.
        object: String,
        /// The cause.
        #[source]
        source: sluice_envsubst::Error,
    },
    /// A SOPS-encrypted Secret would be applied as-is.
    #[error(
        "{object} is encrypted with SOPS and spec.decryption is not set: set spec.decryption with the key Secret"
    )]
    EncryptedWithoutDecryption {
        /// The Secret.
        object: String,
    },
    /// Decrypting a SOPS-encrypted Secret failed.
    #[error("failed to decrypt and format '{object}' Secret data")]
    Decryption {
        /// The Secret, `namespace/name`.
        object: String,
        /// The cause.
        #[source]
        source: Box<sluice_sops::Error>,
    },
    /// Decrypting a SOPS-encrypted dotenv file of the artifact failed.
    #[error("failed to decrypt dotenv file '{path}'")]
    DecryptionFile {
        /// The file, relative to the artifact.
        path: String,
        /// The cause.
        #[source]
        source: Box<sluice_sops::Error>,
    },
    /// Decrypting a SOPS-encrypted file inside a Secret's data (a secretGenerator file) failed.
    #[error("failed to decrypt and format '{object}' Secret field '{field}'")]
    DecryptionField {
        /// The Secret, `namespace/name`.
        object: String,
        /// The data key.
        field: String,
        /// The cause.
        #[source]
        source: Box<sluice_sops::Error>,
    },
}

const KUSTOMIZATION_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Joins `path` to `root`, refusing anything that leaves it (Flux uses securejoin).
pub fn secure_join(root: &Path, path: &str, revision: &str) -> Result<PathBuf, BuildError> {
    let mut joined = root.to_path_buf();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => joined.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if joined == root {
                    return Err(BuildError::InvalidPath {
                        path: path.to_string(),
                        problem: "leaves the artifact",
                        revision: revision.to_string(),
                    });
                }
                joined.pop();
            }
            Component::Prefix(_) => {}
        }
    }
    if !joined.is_dir() {
        return Err(BuildError::InvalidPath {
            path: path.to_string(),
            problem: "not found",
            revision: revision.to_string(),
        });
    }
    Ok(joined)
}

fn io<'a>(
    operation: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BuildError + 'a {
    move |source| BuildError::Io { operation, path: path.to_path_buf(), source }
}

/// Whether a YAML file holds at least one Kubernetes object (apiVersion and kind).
fn holds_objects(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    sluice_kustomize::parse_documents(&text)
        .is_ok_and(|docs| docs.iter().any(|d| d["apiVersion"].is_string() && d["kind"].is_string()))
}

/// Lists the resources of a generated kustomization for `dir`, as Flux's generator does:
/// YAML files holding Kubernetes objects, and sub-directories (recursively, a sub-directory
/// with its own kustomization.yaml is included as one resource).
fn generated_resources(dir: &Path, base: &Path, out: &mut Vec<String>) -> Result<(), BuildError> {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(io("reading directory", dir))?.flatten().collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else { continue };
        let relative = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().into_owned();
        if file_type.is_dir() {
            if KUSTOMIZATION_FILES.iter().any(|f| path.join(f).is_file()) {
                out.push(relative);
            } else {
                generated_resources(&path, base, out)?;
            }
        } else if file_type.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if (name.ends_with(".yaml") || name.ends_with(".yml")) && holds_objects(&path) {
                out.push(relative);
            }
        }
    }
    Ok(())
}

/// Writes the kustomization.yaml the build uses: the existing one (or a generated one) with the
/// spec's overrides added. Returns its path.
pub fn prepare_kustomization(dir: &Path, spec: &KustomizationSpec) -> Result<PathBuf, BuildError> {
    let existing = KUSTOMIZATION_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file());
    let (path, mut kustomization) = match existing {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
            let docs = sluice_kustomize::parse_documents(&text)
                .map_err(|message| BuildError::Kustomization { path: path.clone(), message })?;
            let doc = docs.into_iter().next().unwrap_or(Value::Object(Map::new()));
            if !doc.is_object() {
                return Err(BuildError::Kustomization {
                    path,
                    message: "is not a YAML mapping".into(),
                });
            }
            (path, doc)
        }
        None => {
            let mut resources = Vec::new();
            generated_resources(dir, dir, &mut resources)?;
            let doc = serde_json::json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": resources,
            });
            (dir.join("kustomization.yaml"), doc)
        }
    };
    let map = kustomization.as_object_mut().expect("checked to be an object above");
    if let Some(namespace) = &spec.target_namespace {
        map.insert("namespace".into(), namespace.clone().into());
    }
    if let Some(prefix) = &spec.name_prefix {
        map.insert("namePrefix".into(), prefix.clone().into());
    }
    if let Some(suffix) = &spec.name_suffix {
        map.insert("nameSuffix".into(), suffix.clone().into());
    }
    let mut append = |key: &str, items: Vec<Value>| {
        if items.is_empty() {
            return;
        }
        let list = map.entry(key.to_string()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.extend(items);
        }
    };
    append(
        "patches",
        spec.patches
            .iter()
            .flatten()
            .map(|p| serde_json::to_value(p).unwrap_or_default())
            .collect(),
    );
    append(
        "images",
        spec.images.iter().flatten().map(|i| serde_json::to_value(i).unwrap_or_default()).collect(),
    );
    append(
        "components",
        spec.components.iter().flatten().map(|c| Value::String(c.clone())).collect(),
    );
    let text = sluice_kustomize::to_yaml_document(&kustomization);
    std::fs::write(&path, text).map_err(io("writing", &path))?;
    Ok(path)
}

/// Builds the manifests of `spec.path` in the unpacked artifact at `root`.
pub fn build_manifests(
    root: &Path,
    spec: &KustomizationSpec,
    revision: &str,
) -> Result<Vec<Value>, BuildError> {
    // Symlinks resolving outside the artifact are refused by the confined file system, which
    // compares canonical paths.
    let root = std::fs::canonicalize(root).map_err(io("resolving", root))?;
    let dir = secure_join(&root, spec.path.as_deref().unwrap_or("./"), revision)?;
    prepare_kustomization(&dir, spec)?;
    let fs = sluice_kustomize::ConfinedDiskFileSystem::new(&root).map_err(io("opening", &root))?;
    let options = sluice_kustomize::BuildOptions { root: Some(root.clone()) };
    sluice_kustomize::build_with_options(&fs, &dir, &options).map_err(BuildError::Kustomize)
}

fn object_name(obj: &Value) -> String {
    let namespace =
        obj["metadata"]["namespace"].as_str().map(|ns| format!("{ns}/")).unwrap_or_default();
    format!(
        "{}/{}{}",
        obj["kind"].as_str().unwrap_or("?"),
        namespace,
        obj["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn is_disabled(obj: &Value, annotation: &str) -> bool {
    obj["metadata"]["annotations"][annotation]
        .as_str()
        .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
        || obj["metadata"]["labels"][annotation]
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
}

/// The largest file decrypted in place (Flux's limit).
const MAX_ENCRYPTED_FILE: u64 = 5 << 20;

/// Decrypts, in place, the SOPS-encrypted dotenv files of the unpacked artifact, so that a
/// secretGenerator's `envs` read clear values (Flux decrypts generator sources before the
/// build). Symlinks and files over 5 MiB are left alone.
pub fn decrypt_dotenv_sources(root: &Path, keys: &sluice_sops::Keys) -> Result<(), BuildError> {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io("reading directory", &dir))?.flatten() {
            let Ok(file_type) = entry.file_type() else { continue };
            let path = entry.path();
            if file_type.is_dir() {
                pending.push(path);
                continue;
            }
            if !file_type.is_file()
                || entry.metadata().map_or(true, |m| m.len() > MAX_ENCRYPTED_FILE)
            {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            if sluice_sops::detect_format(text.as_bytes()) != Some(sluice_sops::Format::Dotenv) {
                continue;
            }
            let fail = |source| BuildError::DecryptionFile {
                path: path.strip_prefix(root).unwrap_or(&path).display().to_string(),
                source: Box::new(source),
            };
            let tree = sluice_sops::dotenv_tree(&text).map_err(fail)?;
            let plain = sluice_sops::decrypt(&tree, keys, false).map_err(fail)?;
            std::fs::write(&path, sluice_sops::emit_dotenv(&plain))
                .map_err(io("writing", &path))?;
        }
    }
    Ok(())
}

/// Decrypts the Secret data entries that hold a whole SOPS-encrypted file (what a
/// secretGenerator makes of an encrypted file), writing them back in the format the entry's
/// name asks for: `.yaml`/`.yml`, `.json`, `.env`, else the binary payload.
fn decrypt_data_fields(mut obj: Value, keys: &sluice_sops::Keys) -> Result<Value, BuildError> {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let object = format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    );
    let Some(data) = obj.get_mut("data").and_then(Value::as_object_mut) else { return Ok(obj) };
    for (field, value) in data.iter_mut() {
        // Undecodable data is the user's to fix; the apply reports it.
        let Some(bytes) = value.as_str().and_then(|v| engine.decode(v).ok()) else { continue };
        let Some(format) = sluice_sops::detect_format(&bytes) else { continue };
        let fail = |source| BuildError::DecryptionField {
            object: object.clone(),
            field: field.clone(),
            source: Box::new(source),
        };
        let text = String::from_utf8_lossy(&bytes);
        let tree = match format {
            sluice_sops::Format::Dotenv => sluice_sops::dotenv_tree(&text).map_err(fail)?,
            sluice_sops::Format::Json => serde_json::from_str(&text).map_err(|err| {
                fail(sluice_sops::Error::InvalidMetadata(format!("not JSON: {err}")))
            })?,
            sluice_sops::Format::Yaml => sluice_kustomize::parse_documents(&text)
                .map_err(|err| {
                    fail(sluice_sops::Error::InvalidMetadata(format!("not YAML: {err}")))
                })?
                .into_iter()
                .next()
                .unwrap_or_default(),
        };
        let plain = sluice_sops::decrypt(&tree, keys, false).map_err(fail)?;
        let out = if field.ends_with(".yaml") || field.ends_with(".yml") {
            sluice_kustomize::to_yaml_document(&plain)
        } else if field.ends_with(".json") {
            serde_json::to_string_pretty(&plain).unwrap_or_default()
        } else if field.ends_with(".env") {
            sluice_sops::emit_dotenv(&plain)
        } else {
            match plain.get("data").and_then(Value::as_str) {
                Some(payload) => payload.to_string(),
                None => {
                    return Err(fail(sluice_sops::Error::InvalidMetadata(
                        "a binary entry needs a 'data' value: name the entry .yaml, .json or .env"
                            .into(),
                    )));
                }
            }
        };
        *value = Value::String(engine.encode(out));
    }
    Ok(obj)
}

/// Substitutes `${var}` in every object not annotated `substitute: disabled`.
///
/// With the `WithVariables` strategy (the default) nothing happens when there are no variables.
pub fn substitute(
    objects: Vec<Value>,
    vars: &BTreeMap<String, String>,
    always: bool,
    strict: bool,
) -> Result<Vec<Value>, BuildError> {
    if vars.is_empty() && !always {
        return Ok(objects);
    }
    objects
        .into_iter()
        .map(|obj| {
            if is_disabled(&obj, SUBSTITUTE_ANNOTATION) {
                return Ok(obj);
            }
            let object = object_name(&obj);
            let text = sluice_kustomize::to_yaml_document(&obj);
            let substituted = sluice_envsubst::substitute(&text, vars, strict)
                .map_err(|source| BuildError::Substitute { object: object.clone(), source })?;
            let mut docs = sluice_kustomize::parse_documents(&substituted).map_err(|message| {
                BuildError::Substitute {
                    object: object.clone(),
                    source: sluice_envsubst::Error::BadSubstitution { offset: 0, message },
                }
            })?;
            Ok(docs.pop().unwrap_or(obj))
        })
        .collect()
}

/// Adds `spec.commonMetadata` labels and annotations to every object.
pub fn add_common_metadata(objects: &mut [Value], spec: &KustomizationSpec) {
    let Some(common) = &spec.common_metadata else { return };
    for obj in objects {
        for (field, values) in [("labels", &common.labels), ("annotations", &common.annotations)] {
            let Some(values) = values else { continue };
            if let Some(metadata) = obj["metadata"].as_object_mut() {
                let map = metadata.entry(field).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    for (key, value) in values {
                        map.insert(key.clone(), Value::String(value.clone()));
                    }
                }
            }
        }
    }
}

/// Decrypts the SOPS-encrypted Secrets (`v1` Secrets with `sops` metadata) with `keys`, the
/// keys of `spec.decryption`; `None` when the Kustomization sets no decryption, in which case an
/// encrypted Secret is refused rather than applied encrypted. Objects annotated
/// `kustomize.toolkit.fluxcd.io/decrypt: disabled` are left alone. As Flux does, the MAC is not
/// checked: kustomize changes resources after encryption (namespace, labels).
pub fn decrypt_secrets(
    objects: Vec<Value>,
    keys: Option<&sluice_sops::Keys>,
) -> Result<Vec<Value>, BuildError> {
    objects
        .into_iter()
        .map(|obj| {
            if obj["kind"] != "Secret" || obj["apiVersion"] != "v1" {
                return Ok(obj);
            }
            if !sluice_sops::is_encrypted(&obj) {
                return match keys {
                    Some(keys) if !is_disabled(&obj, DECRYPT_ANNOTATION) => {
                        decrypt_data_fields(obj, keys)
                    }
                    _ => Ok(obj),
                };
            }
            let Some(keys) = keys else {
                return Err(BuildError::EncryptedWithoutDecryption { object: object_name(&obj) });
            };
            if is_disabled(&obj, DECRYPT_ANNOTATION) {
                return Ok(obj);
            }
            let object = format!(
                "{}/{}",
                obj["metadata"]["namespace"].as_str().unwrap_or_default(),
                obj["metadata"]["name"].as_str().unwrap_or_default()
            );
            sluice_sops::decrypt(&obj, keys, false)
                .map_err(|source| BuildError::Decryption { object, source: Box::new(source) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, path: &str, text: &str) {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    fn spec(value: Value) -> KustomizationSpec {
        let mut base = json!({"interval": "1m", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "repo"}});
        base.as_object_mut().unwrap().extend(value.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  replicas: ${replicas}\n  env: ${env:=dev}\n";

    #[test]
    fn generates_a_kustomization_and_applies_overrides() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "apps/cm.yaml", CM);
        write(root.path(), "apps/README.md", "not yaml");
        write(root.path(), "apps/notes.yaml", "just: data\n");
        write(
            root.path(),
            "apps/sub/deploy.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n",
        );
        let spec = spec(json!({"path": "./apps", "targetNamespace": "prod", "namePrefix": "p-"}));
        let objects = build_manifests(root.path(), &spec, "main@sha1:abc").unwrap();
        let names: Vec<String> = objects.iter().map(object_name).collect();
        assert_eq!(names, ["ConfigMap/prod/p-settings", "Service/prod/p-web"]);
    }

    #[test]
    fn paths_must_stay_in_the_artifact() {
        let root = tempfile::tempdir().unwrap();
        let err =
            build_manifests(root.path(), &spec(json!({"path": "../../etc"})), "main@sha1:abc")
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.path \"../../etc\" leaves the artifact in revision main@sha1:abc"
        );
        let err =
            build_manifests(root.path(), &spec(json!({"path": "./missing"})), "main@sha1:abc")
                .unwrap_err();
        assert_eq!(err.to_string(), "spec.path \"./missing\" not found in revision main@sha1:abc");
    }

    #[test]
    fn substitution_types_values_like_flux() {
        let objects = vec![serde_json::from_value::<Value>(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"replicas": "${replicas}", "env": "${env:=dev}"}})).unwrap()];
        let vars = BTreeMap::from([("replicas".to_string(), "3".to_string())]);
        let out = substitute(objects.clone(), &vars, false, true).unwrap();
        assert_eq!(out[0]["data"], json!({"replicas": 3, "env": "dev"}));
        // No variables and the default strategy: nothing is substituted.
        assert_eq!(substitute(objects.clone(), &BTreeMap::new(), false, true).unwrap(), objects);
        // Strict mode names the variable.
        let err = substitute(vec![json!({"kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"x": "${missing}"}})], &vars, false, true).unwrap_err();
        assert_eq!(
            sluice_runtime::conditions::error_message(&err),
            "post build substitutions failed on ConfigMap/b: variable not set (strict mode): \"missing\""
        );
        // Opt-out annotation.
        let opted_out = json!({"kind": "ConfigMap", "metadata": {"name": "c", "annotations": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}, "data": {"x": "${missing}"}});
        assert_eq!(
            substitute(vec![opted_out.clone()], &vars, false, true).unwrap(),
            vec![opted_out]
        );
    }

    #[test]
    fn sops_secrets_are_decrypted_or_refused() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/sops/testdata");
        let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        let mut secret =
            sluice_kustomize::parse_documents(&read("secret.regex.enc.yaml")).unwrap().remove(0);
        // kustomize's edits after encryption do not break decryption.
        secret["metadata"]["labels"] = json!({"team": "web"});
        let plain = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let err = decrypt_secrets(vec![secret.clone()], None).unwrap_err();
        assert!(
            err.to_string()
                .contains("Secret/apps/db is encrypted with SOPS and spec.decryption is not set"),
            "{err}"
        );
        let mut keys = sluice_sops::Keys::new();
        keys.import("identity.agekey", read("age.agekey").as_bytes()).unwrap();
        let out = decrypt_secrets(vec![plain.clone(), secret.clone()], Some(&keys)).unwrap();
        assert_eq!(out[0], plain);
        assert_eq!(out[1]["stringData"]["password"], "s3cr3t");
        assert_eq!(out[1]["metadata"]["labels"]["team"], "web");
        assert!(out[1].get("sops").is_none());
        let mut wrong = sluice_sops::Keys::new();
        wrong.import("other.agekey", read("other.agekey").as_bytes()).unwrap();
        let err = decrypt_secrets(vec![secret.clone()], Some(&wrong)).unwrap_err();
        let message = sluice_runtime::conditions::error_message(&err);
        assert!(
            message.starts_with("failed to decrypt and format 'apps/db' Secret data: cannot get sops data key: no key in the decryption Secret matches: age recipient age1"),
            "{message}"
        );
        let mut disabled = secret;
        disabled["metadata"]["annotations"] =
            json!({"kustomize.toolkit.fluxcd.io/decrypt": "Disabled"});
        assert_eq!(decrypt_secrets(vec![disabled.clone()], Some(&wrong)).unwrap(), vec![disabled]);
    }

    #[test]
    fn encrypted_env_files_feed_secret_generators_in_clear() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/sops/testdata");
        let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "app/app.env", &read("app.enc.env"));
        write(
            root.path(),
            "app/kustomization.yaml",
            "secretGenerator:\n- name: creds\n  envs: [app.env]\n  options:\n    disableNameSuffixHash: true\n",
        );
        let mut keys = sluice_sops::Keys::new();
        keys.import("identity.agekey", read("age.agekey").as_bytes()).unwrap();
        decrypt_dotenv_sources(root.path(), &keys).unwrap();
        let objects =
            build_manifests(root.path(), &spec(json!({"path": "./app"})), "main@sha1:abc").unwrap();
        let data = objects[0]["data"].as_object().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        assert_eq!(names, ["PASSWORD", "USER"]);
        assert_eq!(data["USER"], "YWRtaW4="); // admin
        write(root.path(), "other/app.env", &read("app.enc.env"));
        let mut wrong = sluice_sops::Keys::new();
        wrong.import("other.agekey", read("other.agekey").as_bytes()).unwrap();
        let err = decrypt_dotenv_sources(root.path(), &wrong).unwrap_err();
        assert!(
            err.to_string().starts_with("failed to decrypt dotenv file 'other/app.env'"),
            "{err}"
        );
    }

    #[test]
    fn generated_secrets_holding_encrypted_files_are_decrypted() {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/sops/testdata");
        let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gen", "namespace": "apps"},
        "data": {
            "app.env": engine.encode(read("app.enc.env")),
            "values.json": engine.encode(read("values.enc.json")),
            "blob": engine.encode(read("blob.enc.json")),
            "plain": engine.encode("nothing to see"),
        }});
        let mut keys = sluice_sops::Keys::new();
        keys.import("identity.agekey", read("age.agekey").as_bytes()).unwrap();
        let out = decrypt_secrets(vec![secret.clone()], Some(&keys)).unwrap().remove(0);
        let field = |k: &str| {
            String::from_utf8(engine.decode(out["data"][k].as_str().unwrap()).unwrap()).unwrap()
        };
        assert_eq!(field("app.env"), "USER=admin\nPASSWORD=hunter2\n");
        assert_eq!(field("blob"), read("blob.txt"));
        assert_eq!(field("plain"), "nothing to see");
        let values: Value = serde_json::from_str(&field("values.json")).unwrap();
        assert_eq!(values["sub"]["k"], "v");
        // Without spec.decryption nothing is touched.
        assert_eq!(decrypt_secrets(vec![secret.clone()], None).unwrap(), vec![secret]);
    }

    #[test]
    fn common_metadata_is_stamped() {
        let mut objects = vec![json!({"kind": "ConfigMap", "metadata": {"name": "a"}})];
        add_common_metadata(
            &mut objects,
            &spec(json!({"commonMetadata": {"labels": {"team": "web"}}})),
        );
        assert_eq!(objects[0]["metadata"]["labels"], json!({"team": "web"}));
    }
}
