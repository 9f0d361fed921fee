//! Render a chart like `helm template` without building the CLI: `template CHART [VALUES]`.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(chart) = args.first() else {
        eprintln!("usage: template CHART [VALUES]");
        return std::process::ExitCode::from(2);
    };
    let mut options = sluice_helm::TemplateOptions {
        release_name: "demo".to_string(),
        namespace: "prod".to_string(),
        ..sluice_helm::TemplateOptions::default()
    };
    // Optional flags for comparisons with `helm template`.
    options.kube_version = std::env::var("KUBE_VERSION").ok();
    if let Ok(list) = std::env::var("API_VERSIONS") {
        options.api_versions = list.split(',').map(str::to_string).collect();
    }
    if let Some(values) = args.get(1) {
        options.values_files.push(values.into());
    }
    match sluice_helm::template_chart_dir(std::path::Path::new(chart), &options) {
        Ok(output) => {
            print!("{output}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("Error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
