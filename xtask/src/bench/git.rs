//! `cargo xtask bench git`: a GitRepository artifact built by the reconcile's core
//! (`source-controller/examples/git_artifact.rs`: shallow checkout with gix, ignore rules,
//! reproducible tar.gz into the storage) against `git clone --depth 1` plus `tar czf` of the
//! same tree, both from the repository made by `../shared/bench/gen_repo.sh`, served by a
//! `git daemon` on loopback. The server is a process of its own, as a git server is for the
//! controller: neither side's peak memory includes the server's `upload-pack` (a `file://`
//! remote would run it as a child of the measured process and count it).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::{Measured, best_of};

/// The generated repository, cached across runs (generation takes minutes; it is
/// deterministic, so the cache is keyed by its size parameters).
fn generated_repo(root: &Path, bench: &Path, files: u32, mb: u32) -> anyhow::Result<PathBuf> {
    let dir = sluice_e2e::paths::cache_dir().join(format!("bench-repo-{files}f-{mb}mb"));
    let marker = dir.join(".git/sluice-generated");
    if marker.is_file() {
        eprintln!("using the generated repository {}", dir.display());
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    crate::tasks::run_cmd(
        root,
        "bash",
        &[
            &bench.join("gen_repo.sh").to_string_lossy(),
            &dir.to_string_lossy(),
            "--files",
            &files.to_string(),
            "--mb",
            &mb.to_string(),
        ],
    )?;
    std::fs::write(&marker, b"")?;
    Ok(dir)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs the git benchmark: `size` files (default 20,000; the checked-out size scales with it,
/// 200 MB at 20,000), best of `runs` for each side.
pub fn run(
    root: &Path,
    bench: &Path,
    cargo: &str,
    target: &Path,
    size: Option<u32>,
    runs: u32,
) -> anyhow::Result<()> {
    let files = size.unwrap_or(20_000);
    let mb = (u64::from(files) * 200 / 20_000).max(1) as u32;
    let repo = generated_repo(root, bench, files, mb)?;
    let daemon = GitDaemon::start(repo.parent().context("the generated repository's parent")?)?;
    let name = repo.file_name().context("the generated repository's name")?.to_string_lossy();
    let url = format!("git://127.0.0.1:{}/{name}", daemon.port);
    crate::tasks::run_cmd(
        root,
        cargo,
        &["build", "--release", "-p", "source-controller", "--example", "git_artifact"],
    )?;
    let binary = target.join("release/examples/git_artifact");
    let scratch = super::tempfile_path("git");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;

    let mut run_index = 0;
    let ours = best_of(runs, || {
        run_index += 1;
        let storage = scratch.join(format!("storage-{run_index}"));
        let mut command = Command::new(&binary);
        command.arg(&url).arg(&storage).arg("main");
        command
    })?;
    let ours_line = String::from_utf8_lossy(&ours.stdout).trim().to_string();

    let mut ref_index = 0;
    let theirs = best_of(runs, || {
        ref_index += 1;
        let clone = scratch.join(format!("clone-{ref_index}"));
        let archive = scratch.join(format!("ref-{ref_index}.tar.gz"));
        let script = format!(
            "git clone -q --depth 1 --branch main '{url}' '{clone}' && \
             tar czf '{archive}' --exclude=.git -C '{clone}' .",
            clone = clone.display(),
            archive = archive.display()
        );
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        command
    })?;
    let reference_size = std::fs::metadata(scratch.join("ref-1.tar.gz")).map(|m| m.len()).ok();
    let _ = std::fs::remove_dir_all(&scratch);

    let fields: Vec<&str> = ours_line.split_whitespace().collect();
    if fields.len() != 4 {
        bail!("unexpected output of git_artifact: {ours_line:?}");
    }
    let core_seconds: f64 = fields[3].parse().context("seconds in git_artifact output")?;
    println!(
        "GitRepository artifact of gen_repo.sh --files {files} --mb {mb} (git daemon on loopback, best of {runs}):"
    );
    print_table(&ours, &theirs);
    println!(
        "revision {}, artifact {} bytes ({}), reference tar.gz {} bytes; build core {:.2} s of the {:.2} s process",
        fields[0],
        fields[2],
        fields[1],
        reference_size.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
        core_seconds,
        ours.seconds
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "target no slower than the pair: {}; target peak memory < 100 MiB: {}",
        verdict(ours.seconds <= theirs.seconds),
        verdict(mib(ours.peak_kib) < 100.0)
    );
    Ok(())
}

/// `git-daemon` serving the repositories under a directory on a free loopback port; stopped
/// (by its PID) when dropped.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> anyhow::Result<GitDaemon> {
        // The daemon binary itself: `git daemon` would run it as a child that outlives a kill.
        let exec_path = Command::new("git").arg("--exec-path").output()?;
        let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_string();
        let port = sluice_e2e::process::free_port()?;
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting git-daemon")?;
        let daemon = GitDaemon { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                bail!("git-daemon did not listen on 127.0.0.1:{port} within 15 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(daemon)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn print_table(ours: &Measured, theirs: &Measured) {
    println!("| tool | wall | peak memory |");
    println!("|---|---|---|");
    println!(
        "| sluice GitRepository reconcile core | {:.2} s | {:.1} MiB |",
        ours.seconds,
        mib(ours.peak_kib)
    );
    println!(
        "| git clone --depth 1 + tar czf | {:.2} s | {:.1} MiB |",
        theirs.seconds,
        mib(theirs.peak_kib)
    );
    println!(
        "speed: {:.2}x the reference's; memory: {:.2} of the reference",
        theirs.seconds / ours.seconds.max(0.001),
        ours.peak_kib as f64 / theirs.peak_kib.max(1) as f64
    );
}
