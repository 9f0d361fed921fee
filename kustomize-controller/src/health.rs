//! `spec.healthCheckExprs`: CEL expressions that tell the health of custom resources, evaluated
//! as Flux does: `inProgress` first, then `failed`, then `current`; when none holds the object
//! is still in progress. The object's top-level fields (`apiVersion`, `kind`, `metadata`,
//! `spec`, `status`, …) are the expression's variables.

use std::sync::Arc;

use serde_json::Value;
use sluice_api::kustomize::CustomHealthCheck;
use sluice_ssa::{Health, Status, StatusReader};

/// One compiled expression with its source, for messages.
struct Expr {
    field: &'static str,
    source: String,
    program: cel::Program,
}

struct Check {
    api_version: String,
    kind: String,
    in_progress: Option<Expr>,
    failed: Option<Expr>,
    current: Expr,
}

fn compile(index: usize, field: &'static str, source: &str) -> Result<Expr, String> {
    let program = cel::Program::compile(source).map_err(|err| {
        format!("spec.healthCheckExprs[{index}].{field} {source:?} is not valid CEL: {err}")
    })?;
    Ok(Expr { field, source: source.to_string(), program })
}

/// What an expression said about an object.
enum Verdict {
    True,
    False,
    Error(String),
}

impl Expr {
    fn evaluate(&self, obj: &Value) -> Verdict {
        let mut context = cel::Context::default();
        if let Some(fields) = obj.as_object() {
            for (name, value) in fields {
                match cel::to_value(value) {
                    Ok(value) => context.add_variable_from_value(name.clone(), value),
                    Err(err) => return Verdict::Error(format!("field {name}: {err}")),
                }
            }
        }
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(true)) => Verdict::True,
            Ok(cel::Value::Bool(false)) => Verdict::False,
            Ok(other) => Verdict::Error(format!(
                "{} expression {:?} returned {:?}, not a bool",
                self.field,
                self.source,
                other.type_of()
            )),
            Err(err) => {
                Verdict::Error(format!("{} expression {:?} failed: {err}", self.field, self.source))
            }
        }
    }
}

impl Check {
    fn matches(&self, obj: &Value) -> bool {
        obj["apiVersion"] == self.api_version.as_str()
            && (self.kind.is_empty() || obj["kind"] == self.kind.as_str())
    }

    fn health(&self, obj: &Value) -> Health {
        let mut errors = Vec::new();
        let stages = [
            (self.in_progress.as_ref(), Status::InProgress),
            (self.failed.as_ref(), Status::Failed),
            (Some(&self.current), Status::Current),
        ];
        for (expr, status) in stages {
            let Some(expr) = expr else { continue };
            match expr.evaluate(obj) {
                Verdict::True => {
                    return Health {
                        status,
                        message: format!("{} expression {:?} is true", expr.field, expr.source),
                    };
                }
                Verdict::False => {}
                Verdict::Error(message) => errors.push(message),
            }
        }
        let message = if errors.is_empty() {
            "no healthCheckExprs expression is true yet".to_string()
        } else {
            errors.join("; ")
        };
        Health { status: Status::InProgress, message }
    }
}

/// Compiles the expressions into a health reader for the resource manager; `None` when there
/// are none.
///
/// # Errors
/// An expression that does not compile, named by its index and field.
pub fn reader(exprs: &[CustomHealthCheck]) -> Result<Option<StatusReader>, String> {
    if exprs.is_empty() {
        return Ok(None);
    }
    let mut checks = Vec::new();
    for (index, expr) in exprs.iter().enumerate() {
        if expr.current.trim().is_empty() {
            return Err(format!("spec.healthCheckExprs[{index}].current must be set"));
        }
        checks.push(Check {
            api_version: expr.api_version.clone(),
            kind: expr.kind.clone(),
            in_progress: expr
                .in_progress
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| compile(index, "inProgress", s))
                .transpose()?,
            failed: expr
                .failed
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| compile(index, "failed", s))
                .transpose()?,
            current: compile(index, "current", &expr.current)?,
        });
    }
    let checks = Arc::new(checks);
    Ok(Some(Arc::new(move |obj: &Value| {
        checks.iter().find(|check| check.matches(obj)).map(|check| check.health(obj))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exprs() -> Vec<CustomHealthCheck> {
        serde_json::from_value(json!([{
            "apiVersion": "example.com/v1", "kind": "Widget",
            "inProgress": "status.phase == 'Pending'",
            "failed": "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')",
            "current": "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')"
        }]))
        .unwrap()
    }

    fn widget(status: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": status})
    }

    #[test]
    fn expressions_decide_in_flux_order() {
        let reader = reader(&exprs()).unwrap().unwrap();
        let ready =
            |s: &str| json!({"phase": "Running", "conditions": [{"type": "Ready", "status": s}]});
        assert_eq!(reader(&widget(ready("True"))).unwrap().status, Status::Current);
        assert_eq!(reader(&widget(ready("False"))).unwrap().status, Status::Failed);
        assert_eq!(reader(&widget(ready("Unknown"))).unwrap().status, Status::InProgress);
        // inProgress wins over current.
        let pending =
            json!({"phase": "Pending", "conditions": [{"type": "Ready", "status": "True"}]});
        assert_eq!(reader(&widget(pending)).unwrap().status, Status::InProgress);
        // No status yet: the expressions cannot hold, still in progress with the reason.
        let health = reader(&json!({"apiVersion": "example.com/v1", "kind": "Widget"})).unwrap();
        assert_eq!(health.status, Status::InProgress);
        assert!(health.message.contains("failed"), "{}", health.message);
        // Other kinds are left to kstatus.
        assert!(reader(&json!({"apiVersion": "v1", "kind": "ConfigMap"})).is_none());
    }

    #[test]
    fn bad_expressions_are_named() {
        let mut bad = exprs();
        bad[0].current = "status.conditions.filter(".into();
        let err = reader(&bad).err().unwrap();
        assert!(
            err.starts_with(
                "spec.healthCheckExprs[0].current \"status.conditions.filter(\" is not valid CEL"
            ),
            "{err}"
        );
        let mut not_bool = exprs();
        not_bool[0].in_progress = None;
        not_bool[0].failed = None;
        not_bool[0].current = "1 + 1".into();
        let health = reader(&not_bool).unwrap().unwrap()(&widget(json!({}))).unwrap();
        assert_eq!(health.status, Status::InProgress);
        assert!(health.message.contains("not a bool"), "{}", health.message);
    }
}
