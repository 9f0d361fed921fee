//! Running the `git` CLI (push, submodules) with credentials in its environment, never in argv.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::Error;
use crate::auth::PreparedAuth;

/// The result of one `git` invocation.
pub(crate) struct GitOutput {
    pub(crate) success: bool,
    pub(crate) timed_out: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Run `git <args>` in `dir` with the prepared credentials, killing it after `timeout`.
///
/// The inherited environment is kept except for variables that would redirect git
/// (`GIT_DIR`, `GIT_WORK_TREE`, …) or prompt for input.
pub(crate) fn run_git(
    dir: &Path,
    args: &[&str],
    prepared: &PreparedAuth,
    timeout: Duration,
) -> Result<GitOutput, Error> {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for variable in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
    ] {
        command.env_remove(variable);
    }
    for variable in &prepared.unset_env {
        command.env_remove(variable);
    }
    command.envs(prepared.git_env());
    let mut child = command.spawn().map_err(|err| Error::io("running git in", dir, err))?;
    let stdout_reader = child.stdout.take().map(spawn_reader);
    let stderr_reader = child.stderr.take().map(spawn_reader);
    let started = std::time::Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => {
                timed_out = true;
                // Kill only our own child; its pipes then close and the readers finish.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(err) => return Err(Error::io("waiting for git in", dir, err)),
        }
    };
    let collect = |reader: Option<std::thread::JoinHandle<String>>| {
        reader.and_then(|handle| handle.join().ok()).unwrap_or_default()
    };
    Ok(GitOutput {
        success: status.is_some_and(|status| status.success()),
        timed_out,
        stdout: collect(stdout_reader),
        stderr: prepared.redact(&collect(stderr_reader)),
    })
}

fn spawn_reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
