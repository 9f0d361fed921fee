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
    if report.is_empty() { Ok(()) } else { Err(report) }
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
    let mut lines: Vec<String> = validator
        .iter_errors(&instance)
        .map(|error| format!("- at '{}': {}\n", error.instance_path(), error))
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    lines.sort();
    Err(lines.concat())
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
        assert_eq!(report.matches("- at").count(), 2, "{report}");
        let ok = json!({"port": 3.0, "name": "x"}).as_object().unwrap().clone();
        assert!(validate(&chart, &ok).is_ok());
    }
}
