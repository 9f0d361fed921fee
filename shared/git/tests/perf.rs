//! Timing of a shallow checkout of a generated repository against `git clone --depth 1`.
//! Run with `cargo test -p sluice-git --test perf -- --ignored --nocapture`.

mod support;

use std::time::Instant;

use sluice_git::{Auth, CheckoutOptions, GitRef, checkout};
use support::{Fixture, git};

#[test]
#[ignore = "measurement, not a check: prints timings"]
fn shallow_checkout_of_3000_files() {
    let fixture = Fixture::new();
    for dir_idx in 0..30 {
        let dir = fixture.work.join(format!("apps/app-{dir_idx}"));
        std::fs::create_dir_all(&dir).unwrap();
        for file_idx in 0..100 {
            let body = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{dir_idx}-{file_idx}\ndata:\n  key: \"{}\"\n",
                "x".repeat(400)
            );
            std::fs::write(dir.join(format!("cm-{file_idx}.yaml")), body).unwrap();
        }
    }
    git(&fixture.work, &["add", "."]);
    git(&fixture.work, &["commit", "--quiet", "-m", "many files"]);
    git(&fixture.work, &["push", "--quiet", "origin", "main"]);

    let started = Instant::now();
    let dest = fixture.dest("gix");
    checkout(
        &fixture.file_url(),
        &Auth::None,
        &GitRef::Branch("main".into()),
        &dest,
        &CheckoutOptions::default(),
    )
    .unwrap();
    let gix_elapsed = started.elapsed();

    let started = Instant::now();
    let cli_dest = fixture.dest("cli");
    std::fs::create_dir_all(&cli_dest).unwrap();
    git(
        &cli_dest,
        &["clone", "--quiet", "--depth", "1", "--branch", "main", &fixture.file_url(), "."],
    );
    let cli_elapsed = started.elapsed();
    eprintln!(
        "3000-file shallow checkout: sluice-git {gix_elapsed:?}, git clone --depth 1 {cli_elapsed:?}"
    );
}
