//! `sluice helm template`: render a chart to YAML on stdout, like `helm template`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

/// `sluice helm …`
#[derive(Debug, Args)]
pub struct HelmArgs {
    #[command(subcommand)]
    pub command: HelmCommand,
}

/// Subcommands of `sluice helm`.
#[derive(Debug, Subcommand)]
pub enum HelmCommand {
    /// Render chart templates locally, like `helm template [NAME] CHART`.
    Template(TemplateArgs),
}

/// Flags of `sluice helm template`, named as Helm names them.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// `[NAME] CHART`: an optional release name, then a chart directory or .tgz.
    #[arg(required = true, num_args = 1..=2, value_name = "[NAME] CHART")]
    pub args: Vec<String>,
    /// Release name (overrides NAME).
    #[arg(long)]
    pub name: Option<String>,
    /// Values files, merged in order.
    #[arg(short = 'f', long = "values")]
    pub values: Vec<PathBuf>,
    /// Values on the command line (`a.b=c,d=e`), typed like Helm (ints, booleans, null).
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// String values on the command line (`a.b=c`), never typed.
    #[arg(long = "set-string")]
    pub set_string: Vec<String>,
    /// Values read from files (`key=PATH`, the file's content as a string).
    #[arg(long = "set-file")]
    pub set_file: Vec<String>,
    /// JSON values on the command line (`key=JSON` or a whole JSON object).
    #[arg(long = "set-json")]
    pub set_json: Vec<String>,
    /// Literal string values (`key=TEXT`: everything after `=`, commas included).
    #[arg(long = "set-literal")]
    pub set_literal: Vec<String>,
    /// Namespace of the release.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Kubernetes version used for Capabilities.KubeVersion (default v1.36.0).
    #[arg(long = "kube-version")]
    pub kube_version: Option<String>,
    /// Kubernetes API versions added to Capabilities.APIVersions.
    #[arg(short = 'a', long = "api-versions")]
    pub api_versions: Vec<String>,
    /// Skip test hooks in the output.
    #[arg(long = "skip-tests")]
    pub skip_tests: bool,
    /// Print the chart's `crds/` files first.
    #[arg(long = "include-crds")]
    pub include_crds: bool,
    /// Leave hooks out of the output.
    #[arg(long = "no-hooks")]
    pub no_hooks: bool,
    /// Set .Release.IsUpgrade instead of .Release.IsInstall.
    #[arg(long = "is-upgrade")]
    pub is_upgrade: bool,
}

/// Run `sluice helm …`.
pub fn run(args: HelmArgs) -> anyhow::Result<()> {
    match args.command {
        HelmCommand::Template(template) => run_template(template),
    }
}

fn run_template(args: TemplateArgs) -> anyhow::Result<()> {
    let (name_arg, chart) = match args.args.as_slice() {
        [chart] => (None, chart.clone()),
        [name, chart] => (Some(name.clone()), chart.clone()),
        _ => anyhow::bail!("expected [NAME] CHART"),
    };
    let options = sluice_helm::TemplateOptions {
        release_name: args.name.or(name_arg).unwrap_or_else(|| "release-name".to_string()),
        namespace: args.namespace,
        values_files: args.values,
        set_values: args.set,
        set_string_values: args.set_string,
        set_file_values: args.set_file,
        set_json_values: args.set_json,
        set_literal_values: args.set_literal,
        kube_version: args.kube_version,
        api_versions: args.api_versions,
        skip_tests: args.skip_tests,
        include_crds: args.include_crds,
        no_hooks: args.no_hooks,
        is_upgrade: args.is_upgrade,
        // Offline, as `helm template`: every `lookup` is an empty map.
        lookup: None,
    };
    let output = sluice_helm::template_chart_dir(std::path::Path::new(&chart), &options)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(output.as_bytes()).context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;
    Ok(())
}
