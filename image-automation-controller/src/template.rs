//! The commit message: a Go `text/template` with Sprig's hermetic functions over Flux's
//! `TemplateData` (`.AutomationObject`, `.Changed`, `.Values`, and the older `.Updated`).

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_go_template::{Map, Object, TemplateSet, Value};

use crate::setters::{Change, ObjectId, UpdateResult};

/// Flux's message when `spec.git.commit.messageTemplate` is empty.
pub const DEFAULT_MESSAGE: &str = "Update from image update automation";

/// Sprig functions Flux leaves out (`sprig.HermeticTxtFuncMap`): their result depends on when
/// or where the template runs.
const NON_HERMETIC: &[&str] = &[
    "date",
    "date_in_zone",
    "date_modify",
    "now",
    "htmlDate",
    "htmlDateInZone",
    "dateInZone",
    "dateModify",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "randBytes",
    "uuidv4",
    "env",
    "expandenv",
    "getHostByName",
];

/// `types.NamespacedName`: prints as `namespace/name`.
struct NamespacedName {
    namespace: String,
    name: String,
}

impl Object for NamespacedName {
    fn type_name(&self) -> &str {
        "types.NamespacedName"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Name" => Some(Value::str(&self.name)),
            "Namespace" => Some(Value::str(&self.namespace)),
            "String" => Some(Value::str(&format!("{}/{}", self.namespace, self.name))),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::str(&format!("{}/{}", self.namespace, self.name))
    }
}

/// `update.ObjectIdentifier`: fields of kyaml's ResourceIdentifier.
struct Identifier(ObjectId);

impl Object for Identifier {
    fn type_name(&self) -> &str {
        "update.ObjectIdentifier"
    }
    fn field(&self, name: &str) -> Option<Value> {
        let id = &self.0;
        match name {
            "APIVersion" => Some(Value::str(&id.api_version)),
            "Kind" => Some(Value::str(&id.kind)),
            "Name" => Some(Value::str(&id.name)),
            "Namespace" => Some(Value::str(&id.namespace)),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        let id = &self.0;
        Value::str(&format!(
            "{{{{{} {}}} {{{} {}}}}}",
            id.api_version, id.kind, id.name, id.namespace
        ))
    }
}

/// A Go map keyed by `ObjectIdentifier`: ranged over with struct keys.
struct ObjectMap(Vec<(ObjectId, Value)>);

impl Object for ObjectMap {
    fn type_name(&self) -> &str {
        "update.ObjectChanges"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn to_value(&self) -> Value {
        Value::list(self.0.iter().map(|(_, v)| v.clone()).collect())
    }
    fn range_entries(&self) -> Option<Vec<(Value, Value)>> {
        Some(
            self.0
                .iter()
                .map(|(id, v)| (Value::Object(Arc::new(Identifier(id.clone()))), v.clone()))
                .collect(),
        )
    }
}

fn change_value(change: &Change) -> Value {
    let map = Map::new().with_type_name("update.Change");
    map.insert("OldValue", Value::str(&change.old_value));
    map.insert("NewValue", Value::str(&change.new_value));
    map.insert("Setter", Value::str(&change.setter));
    Value::Map(map)
}

fn object_changes(objects: &BTreeMap<ObjectId, Vec<Change>>) -> Value {
    Value::Object(Arc::new(ObjectMap(
        objects
            .iter()
            .map(|(id, changes)| {
                (id.clone(), Value::list(changes.iter().map(change_value).collect()))
            })
            .collect(),
    )))
}

/// `update.Result` with `FileChanges` and the `Changes`/`Objects` methods.
struct Changed(UpdateResult);

impl Object for Changed {
    fn type_name(&self) -> &str {
        "update.Result"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "FileChanges" => {
                let files = Map::new();
                for (file, objects) in &self.0.files {
                    files.insert(file.clone(), object_changes(objects));
                }
                Some(Value::Map(files))
            }
            "Objects" => Some(object_changes(&self.0.objects())),
            "Changes" => Some(Value::list(self.0.changes().iter().map(change_value).collect())),
            _ => None,
        }
    }
}

/// The older `update.Result` (`.Updated`): `Files` with `Objects` of image references,
/// `Objects` and `Images`.
struct Updated(UpdateResult);

fn images_of(changes: &[Change]) -> Vec<Value> {
    changes
        .iter()
        .filter(|c| c.setter.split(':').count() == 2)
        .map(|c| Value::str(&c.new_value))
        .collect()
}

fn legacy_objects(objects: &BTreeMap<ObjectId, Vec<Change>>) -> Value {
    Value::Object(Arc::new(ObjectMap(
        objects.iter().map(|(id, changes)| (id.clone(), Value::list(images_of(changes)))).collect(),
    )))
}

impl Object for Updated {
    fn type_name(&self) -> &str {
        "update.Result"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Files" => {
                let files = Map::new();
                for (file, objects) in &self.0.files {
                    let entry = Map::new().with_type_name("update.FileResult");
                    entry.insert("Objects", legacy_objects(objects));
                    files.insert(file.clone(), Value::Map(entry));
                }
                Some(Value::Map(files))
            }
            "Objects" => Some(legacy_objects(&self.0.objects())),
            "Images" => {
                let mut images: Vec<Value> = images_of(&self.0.changes());
                images.dedup_by(|a, b| a.as_str() == b.as_str());
                Some(Value::list(images))
            }
            _ => None,
        }
    }
}

/// Renders the commit message for `result` of automation `namespace/name`.
///
/// # Errors
/// The template's parse or execution error, as Go prints it.
pub fn commit_message(
    template: Option<&str>,
    values: &BTreeMap<String, String>,
    namespace: &str,
    name: &str,
    result: &UpdateResult,
) -> Result<String, String> {
    let text = template.filter(|t| !t.is_empty()).unwrap_or(DEFAULT_MESSAGE);
    let mut set = TemplateSet::new();
    for func in NON_HERMETIC {
        set.remove_func(func);
    }
    set.parse("commit message", text)
        .map_err(|err| format!("unable to create commit message template from spec: {err}"))?;
    let data = Map::new().with_type_name("source.TemplateData");
    data.insert(
        "AutomationObject",
        Value::Object(Arc::new(NamespacedName { namespace: namespace.into(), name: name.into() })),
    );
    data.insert("Changed", Value::Object(Arc::new(Changed(result.clone()))));
    data.insert("Updated", Value::Object(Arc::new(Updated(result.clone()))));
    let values_map = Map::new();
    for (key, value) in values {
        values_map.insert(key.clone(), Value::str(value));
    }
    data.insert("Values", Value::Map(values_map));
    set.execute("commit message", &Value::Map(data))
        .map_err(|err| format!("failed to run template from spec: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> UpdateResult {
        let mut result = UpdateResult::default();
        let deploy = ObjectId {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            namespace: "prod".into(),
        };
        let change = |old: &str, new: &str, setter: &str| Change {
            old_value: old.into(),
            new_value: new.into(),
            setter: setter.into(),
        };
        result.files.entry("apps/web.yaml".into()).or_default().insert(
            deploy,
            vec![change("ghcr.io/org/app:1.2.3", "ghcr.io/org/app:1.2.4", "flux-system:app")],
        );
        result.files.entry("apps/values.yaml".into()).or_default().insert(
            ObjectId { kind: "ConfigMap".into(), name: "cfg".into(), ..Default::default() },
            vec![change("1.2.3", "1.2.4", "flux-system:app:tag")],
        );
        result
    }

    #[test]
    fn flux_documented_template() {
        let template = r#"Automated image update

Automation name: {{ .AutomationObject }}

Files:
{{ range $filename, $_ := .Changed.FileChanges -}}
- {{ $filename }}
{{ end -}}

Objects:
{{ range $resource, $changes := .Changed.Objects -}}
- {{ $resource.Kind }} {{ $resource.Name }}
  Changes:
{{- range $_, $change := $changes }}
    - {{ $change.OldValue }} -> {{ $change.NewValue }}
{{ end -}}
{{ end -}}
{{ .Values.env }}"#;
        let values = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let message =
            commit_message(Some(template), &values, "flux-system", "auto", &result()).unwrap();
        assert_eq!(
            message,
            "Automated image update\n\nAutomation name: flux-system/auto\n\nFiles:\n- apps/values.yaml\n- apps/web.yaml\nObjects:\n- ConfigMap cfg\n  Changes:\n    - 1.2.3 -> 1.2.4\n- Deployment web\n  Changes:\n    - ghcr.io/org/app:1.2.3 -> ghcr.io/org/app:1.2.4\nprod"
        );
    }

    #[test]
    fn defaults_changes_and_legacy_fields() {
        let none = BTreeMap::new();
        assert_eq!(commit_message(None, &none, "ns", "a", &result()).unwrap(), DEFAULT_MESSAGE);
        let changes = "{{ range .Changed.Changes }}{{ .Setter }}={{ .NewValue }};{{ end }}";
        assert_eq!(
            commit_message(Some(changes), &none, "ns", "a", &result()).unwrap(),
            "flux-system:app:tag=1.2.4;flux-system:app=ghcr.io/org/app:1.2.4;"
        );
        let legacy = "{{ range .Updated.Images }}{{ . }} {{ end }}{{ .AutomationObject.Name }}";
        assert_eq!(
            commit_message(Some(legacy), &none, "ns", "a", &result()).unwrap(),
            "ghcr.io/org/app:1.2.4 a"
        );
        assert!(commit_message(Some("{{ now }}"), &none, "ns", "a", &result()).is_err());
        assert!(commit_message(Some("{{ .Changed.Nope }}"), &none, "ns", "a", &result()).is_err());
    }
}
