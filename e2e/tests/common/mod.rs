//! What the source-controller tests share: an in-process source-controller that sees only the
//! objects of one test (the tests of a file run in parallel against one apiserver).

use std::path::Path;
use std::sync::Arc;

use sluice_e2e::TestEnv;
use sluice_runtime::Runtime;

/// The label that assigns an object to one test's controller.
pub const SUITE_LABEL: &str = "sluice.test/suite";

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    runtime: sluice_runtime::runtime::RuntimeArgs,
    #[command(flatten)]
    storage: source_controller::StorageArgs,
}

/// Starts a source-controller serving artifacts from `storage` on a free loopback port, watching
/// only objects labelled `sluice.test/suite=<suite>`, with `extra` flags.
pub async fn start_source_controller(
    env: &TestEnv,
    storage: &Path,
    suite: &str,
    extra: &[String],
) -> Arc<Runtime> {
    let port = sluice_e2e::process::free_port().unwrap();
    let mut args = vec![
        "source-controller".to_string(),
        "--metrics-addr=127.0.0.1:0".into(),
        "--health-addr=127.0.0.1:0".into(),
        format!("--storage-path={}", storage.display()),
        format!("--storage-addr=127.0.0.1:{port}"),
        format!("--storage-adv-addr=127.0.0.1:{port}"),
        format!("--watch-label-selector={SUITE_LABEL}={suite}"),
    ];
    args.extend(extra.iter().cloned());
    let flags: Flags = sluice_runtime::runtime::parse_args_from("4", args);
    let runtime =
        Runtime::start_with_client("source-controller", flags.runtime, env.client()).await.unwrap();
    tokio::spawn(source_controller::run(runtime.clone(), flags.storage));
    runtime
}
