//! Render a chart like `helm template` without building the CLI:
//! `template CHART [VALUES] [--kube-version V] [--api-versions A]... [--skip-tests]`
//! (release `demo`, namespace `prod`; `KUBE_VERSION` and `API_VERSIONS=a,b` also work).

/// The allocator of the `sluice` binary, so timings match the CLI.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut options = sluice_helm::TemplateOptions {
        release_name: "demo".to_string(),
        namespace: "prod".to_string(),
        ..sluice_helm::TemplateOptions::default()
    };
    options.kube_version = std::env::var("KUBE_VERSION").ok();
    if let Ok(list) = std::env::var("API_VERSIONS") {
        options.api_versions = list.split(',').map(str::to_string).collect();
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kube-version" => options.kube_version = args.next(),
            "--api-versions" => options.api_versions.extend(args.next()),
            "--skip-tests" => options.skip_tests = true,
            _ => positional.push(arg),
        }
    }
    let Some(chart) = positional.first() else {
        eprintln!(
            "usage: template CHART [VALUES] [--kube-version V] [--api-versions A]... [--skip-tests]"
        );
        return std::process::ExitCode::from(2);
    };
    if let Some(values) = positional.get(1) {
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
