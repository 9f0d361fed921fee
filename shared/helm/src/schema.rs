//! values.schema.json validation of a chart and its subcharts, reporting every violation
//! (`helm/helm:pkg/chart/common/util/jsonschema.go`).

use serde_json::{Map, Value as Json};

use crate::chart::Chart;

/// Validate `values` against the schemas of `chart` and its subcharts.
///
/// # Errors
/// The report Helm prints after "values don't meet the specifications…": per chart, its name
/// and one `- at '/path': message` line per violation.
pub fn validate(chart: &Chart, values: &Map<String, Json>) -> Result<(), String> {
    let mut report = String::new();
    collect(chart, values, &mut report);
    if report.is_empty() { Ok(()) } else { Err(report.trim_end().to_string()) }
}

fn collect(chart: &Chart, values: &Map<String, Json>, report: &mut String) {
    if let Some(schema) = &chart.schema
        && let Err(message) = validate_one(schema, values)
    {
        report.push_str(&format!("{}:\n{message}", chart.name()));
    }
    for sub in &chart.subcharts {
        let sub_values = match values.get(sub.name()) {
            Some(Json::Object(map)) => map.clone(),
            _ => Map::new(),
        };
        collect(sub, &sub_values, report);
    }
}

fn validate_one(schema: &[u8], values: &Map<String, Json>) -> Result<(), String> {
    let schema: Json = serde_json::from_slice(schema)
        .map_err(|e| format!("- at '': invalid values.schema.json: {e}\n"))?;
    let validator = jsonschema::options()
        .should_validate_formats(false)
        .build(&schema)
        .map_err(|e| format!("- at '': invalid values.schema.json: {e}\n"))?;
    let instance = integral_floats_as_ints(&Json::Object(values.clone()));
    let mut entries: Vec<(String, String)> = Vec::new();
    for error in validator.iter_errors(&instance) {
        let path = error.instance_path().to_string();
        let message = helm_wording(&error);
        // Helm's validator reports all missing properties of one object in one line.
        if let jsonschema::error::ValidationErrorKind::Required { property } = error.kind()
            && let Some((last_path, last_message)) = entries.last_mut()
            && *last_path == path
            && last_message.starts_with("missing propert")
        {
            let names = last_message
                .trim_start_matches("missing properties ")
                .trim_start_matches("missing property ")
                .to_string();
            *last_message = format!("missing properties {names}, {}", quoted(property));
            continue;
        }
        entries.push((path, message));
    }
    if entries.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> =
        entries.into_iter().map(|(path, message)| format!("- at '{path}': {message}\n")).collect();
    lines.sort();
    Err(lines.concat())
}

/// A JSON value the way Helm's validator quotes it: strings in single quotes.
fn quoted(value: &Json) -> String {
    match value {
        Json::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// A number with thousands separators, as Helm's validator prints limits (`70,000`).
fn grouped(value: &Json) -> String {
    let text = match value {
        Json::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => return other.to_string(),
    };
    let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |d| ("-", d));
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.clone();
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn json_type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// The messages of Helm's validator (santhosh-tekuri/jsonschema) for common keywords; others
/// keep jsonschema's own wording.
fn helm_wording(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::{TypeKind, ValidationErrorKind as Kind};
    let instance: &Json = error.instance();
    match error.kind() {
        Kind::Required { property } => format!("missing property {}", quoted(property)),
        Kind::Type { kind } => {
            let want = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(set) => {
                    set.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" or ")
                }
            };
            format!("got {}, want {want}", json_type_name(instance))
        }
        Kind::Enum { options } => match options.as_ref() {
            Json::Array(items) => {
                format!(
                    "value must be one of {}",
                    items.iter().map(quoted).collect::<Vec<_>>().join(", ")
                )
            }
            other => format!("value must be one of {}", quoted(other)),
        },
        Kind::Constant { expected_value } => format!("value must be {}", quoted(expected_value)),
        Kind::Maximum { limit } => {
            format!("maximum: got {}, want {}", grouped(instance), grouped(limit))
        }
        Kind::Minimum { limit } => {
            format!("minimum: got {}, want {}", grouped(instance), grouped(limit))
        }
        Kind::ExclusiveMaximum { limit } => {
            format!("exclusiveMaximum: got {}, want {}", grouped(instance), grouped(limit))
        }
        Kind::ExclusiveMinimum { limit } => {
            format!("exclusiveMinimum: got {}, want {}", grouped(instance), grouped(limit))
        }
        Kind::MaxLength { limit } => {
            format!(
                "maxLength: got {}, want {limit}",
                instance.as_str().map_or(0, |s| s.chars().count())
            )
        }
        Kind::MinLength { limit } => {
            format!(
                "minLength: got {}, want {limit}",
                instance.as_str().map_or(0, |s| s.chars().count())
            )
        }
        Kind::MaxItems { limit } => {
            format!("maxItems: got {}, want {limit}", instance.as_array().map_or(0, Vec::len))
        }
        Kind::MinItems { limit } => {
            format!("minItems: got {}, want {limit}", instance.as_array().map_or(0, Vec::len))
        }
        Kind::Pattern { pattern } => {
            format!("{} does not match pattern '{pattern}'", quoted(instance))
        }
        Kind::AdditionalProperties { unexpected } => format!(
            "additional properties {} not allowed",
            unexpected.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ")
        ),
        _ => error.to_string(),
    }
}

/// Helm validates Go float64 values; JSON Schema treats `3.0` as an integer, so normalise.
fn integral_floats_as_ints(value: &Json) -> Json {
    match value {
        Json::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Json::from(f as i64),
            _ => value.clone(),
        },
        Json::Array(items) => Json::Array(items.iter().map(integral_floats_as_ints).collect()),
        Json::Object(map) => {
            Json::Object(map.iter().map(|(k, v)| (k.clone(), integral_floats_as_ints(v))).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{ChartFile, load_files};
    use serde_json::json;

    #[test]
    fn reports_every_violation() {
        let chart = load_files(vec![
            ChartFile { name: "Chart.yaml".into(), data: b"apiVersion: v2\nname: s\nversion: 1.0.0\n".to_vec() },
            ChartFile {
                name: "values.schema.json".into(),
                data: br#"{"type":"object","required":["name"],"properties":{"port":{"type":"integer","maximum":10}}}"#
                    .to_vec(),
            },
        ])
        .unwrap();
        let values = json!({"port": 11.0}).as_object().unwrap().clone();
        let report = validate(&chart, &values).unwrap_err();
        assert!(report.starts_with("s:\n"), "{report}");
        assert_eq!(
            report,
            "s:\n- at '': missing property 'name'\n- at '/port': maximum: got 11, want 10"
        );
        let ok = json!({"port": 3.0, "name": "x"}).as_object().unwrap().clone();
        assert!(validate(&chart, &ok).is_ok());
    }
}
