//! Renders per second of a generated 300-template chart (`cargo bench -p sluice-helm`).
//!
//! The chart is built in memory: a helpers file with nested `define`s, and templates using
//! `include`, `range`, `toYaml`, `nindent`, `tpl`, `default` and `quote` over a values tree of
//! 500 services. The number tracked is renders/s of `render_chart` + output formatting.

use std::time::Instant;

use serde_json::{Map, Value as Json, json};
use sluice_helm::chart::{ChartFile, load_files};
use sluice_helm::{OutputOptions, TemplateOptions, output, render_chart};

const N_TEMPLATES: usize = 300;
const N_SERVICES: usize = 500;

fn file(name: &str, data: String) -> ChartFile {
    ChartFile { name: name.to_string(), data: data.into_bytes() }
}

fn generated_chart() -> Vec<ChartFile> {
    let mut services = Vec::new();
    for i in 0..N_SERVICES {
        services.push(json!({
            "name": format!("svc-{i}"),
            "group": i % N_TEMPLATES,
            "port": 8000 + i,
            "labels": {"tier": if i % 2 == 0 { "web" } else { "api" }, "index": i},
            "env": [{"name": "A", "value": "{{ .Release.Name }}"}, {"name": "B", "value": i.to_string()}],
        }));
    }
    let values = json!({"image": {"repository": "nginx", "tag": "1.27"}, "services": services});
    let mut files = vec![
        file(
            "Chart.yaml",
            "apiVersion: v2\nname: bench\nversion: 1.0.0\nappVersion: \"1.0\"\n".to_string(),
        ),
        file("values.yaml", sluice_helm::yaml_emit::to_yaml(&values)),
        file(
            "templates/_helpers.tpl",
            r#"{{- define "bench.name" -}}{{ .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end }}
{{- define "bench.labels" -}}
app.kubernetes.io/name: {{ include "bench.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}"#
                .to_string(),
        ),
    ];
    for t in 0..N_TEMPLATES {
        files.push(file(
            &format!("templates/deploy-{t:03}.yaml"),
            format!(
                r#"{{{{- range .Values.services }}}}{{{{- if eq (int .group) {t} }}}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ $.Release.Name }}}}-{{{{ .name }}}}
  labels:
    {{{{- include "bench.labels" $ | nindent 4 }}}}
    {{{{- toYaml .labels | nindent 4 }}}}
spec:
  template:
    spec:
      containers:
        - name: {{{{ .name | quote }}}}
          image: "{{{{ $.Values.image.repository }}}}:{{{{ $.Values.image.tag | default "latest" }}}}"
          ports:
            - containerPort: {{{{ .port }}}}
          env:
          {{{{- range .env }}}}
            - name: {{{{ .name }}}}
              value: {{{{ tpl .value $ | quote }}}}
          {{{{- end }}}}
{{{{- end }}}}{{{{- end }}}}
"#
            ),
        ));
    }
    files
}

fn main() {
    let files = generated_chart();
    let options = TemplateOptions {
        release_name: "demo".into(),
        namespace: "prod".into(),
        ..TemplateOptions::default()
    };
    let render_once = || {
        let chart = load_files(files.clone()).expect("generated chart loads");
        let rendered = render_chart(chart, &Map::<String, Json>::new(), &options)
            .expect("generated chart renders");
        output::format_output(&rendered.sorted, &OutputOptions::default())
    };
    let bytes = render_once().len();
    let runs = 10;
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(render_once());
    }
    let per_render = start.elapsed() / runs;
    println!(
        "helm render: {N_TEMPLATES} templates, {N_SERVICES} services, {bytes} bytes: {:.1} ms/render, {:.2} renders/s",
        per_render.as_secs_f64() * 1000.0,
        1.0 / per_render.as_secs_f64()
    );
}
