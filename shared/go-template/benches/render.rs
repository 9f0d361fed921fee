//! Render benchmark: 50 generated templates over 500 list items, Helm-style helpers.
//!
//! Tracks: milliseconds per render of the whole set (run with `cargo bench -p sluice-go-template`).

use std::time::Instant;

use sluice_go_template::{
    Func, FuncError, MissingKey, Options, Param, Signature, TemplateSet, Value,
};

const HELPERS: &str = r#"
{{- define "bench.name" -}}{{ default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "bench.labels" -}}
app.kubernetes.io/name: {{ include "bench.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
component: {{ .svc.name | quote }}
{{- with .svc.labels }}
extra: {{ toJson . | quote }}
{{- end }}
{{- end -}}
"#;

const TEMPLATE: &str = r#"
{{- $root := . -}}
{{- range $i, $svc := .Values.services }}
{{- if and $svc.enabled (eq (mod (int $svc.group) 10) GROUP) }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ printf "%s-%s" (include "bench.name" $root) $svc.name | trunc 63 }}
  labels:
    {{- include "bench.labels" (dict "root" $root "svc" $svc) | nindent 4 }}
spec:
  replicas: {{ $svc.replicas | default 1 }}
  template:
    spec:
      containers:
        - name: {{ $svc.name }}
          image: "{{ $svc.image.repository }}:{{ $svc.image.tag | default $root.Chart.AppVersion }}"
          env:
          {{- range $k, $v := $svc.env }}
            - name: {{ $k | upper }}
              value: {{ $v | toString | quote }}
          {{- end }}
{{- end }}
{{- end }}
"#;

fn values() -> Value {
    let services: Vec<serde_json::Value> = (0..500)
        .map(|i| {
            serde_json::json!({
                "name": format!("svc-{i}"), "enabled": i % 7 != 0, "group": i % 10, "replicas": i % 3,
                "image": {"repository": "example.com/app", "tag": if i % 2 == 0 { "" } else { "1.2.3" }},
                "labels": {"tier": "backend", "index": i},
                "env": {"mode": "prod", "level": i, "ratio": 1.5},
            })
        })
        .collect();
    Value::from_json(&serde_json::json!({
        "Values": {"services": services, "nameOverride": ""},
        "Chart": {"Name": "bench", "AppVersion": "9.9.9"},
        "Release": {"Name": "demo", "Namespace": "prod"},
    }))
}

fn main() {
    let mut set = TemplateSet::new();
    set.set_options(Options { missing_key: MissingKey::Zero, ..Options::default() });
    set.add_func(
        "include",
        Func::new(Signature::fixed(&[Param::String, Param::Any]), |ctx, args| {
            let name = args[0].as_str().unwrap_or_default().to_string();
            ctx.execute_template(&name, &args[1]).map(Value::from).map_err(FuncError::from)
        }),
    );
    set.parse("bench/templates/_helpers.tpl", HELPERS).expect("helpers parse");
    let names: Vec<String> =
        (0..50).map(|i| format!("bench/templates/deploy-{i:03}.yaml")).collect();
    for (i, name) in names.iter().enumerate() {
        set.parse(name, &TEMPLATE.replace("GROUP", &(i % 10).to_string())).expect("template parse");
    }
    let data = values();
    let render = || -> usize {
        names.iter().map(|name| set.execute(name, &data).expect("render").len()).sum()
    };
    let bytes = render();
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(render());
    }
    let per_render = start.elapsed().as_secs_f64() * 1e3 / f64::from(runs);
    println!("render: {per_render:.2} ms per render of 50 templates ({bytes} bytes of output)");
}
