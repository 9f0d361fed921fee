//! Server processes that never outlive the test run: a per-process watchdog, free ports, readiness polls.
//!
//! Every server the harness starts is a [`ServerProcess`]. It is spawned in its own process group
//! (so a Ctrl-C in the terminal reaches only the test binary, and the harness stops the servers
//! in the right order), its output goes to a log file, and its PID is registered with the
//! **watchdog**: one `bash` process per test process that reads PIDs on its stdin. When the test
//! process exits for any reason (normal exit, panic, `SIGKILL`), the kernel closes the pipe, the
//! watchdog reads end-of-file and stops the registered PIDs newest first (`SIGTERM`, up to 10 s of
//! grace, then `SIGKILL`), then removes the registered temporary directories. Dropping a
//! [`ServerProcess`] stops it at once and unregisters it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The watchdog script: remembers `pid N` / `dir PATH` lines, forgets `unpid N` / `undir PATH`,
/// and on end-of-file stops the PIDs newest first, then removes the directories.
const WATCHDOG_SCRIPT: &str = r#"
trap '' INT HUP PIPE TERM
pids=(); dirs=()
while IFS=' ' read -r verb arg; do
  case "$verb" in
    pid) pids+=("$arg") ;;
    unpid) keep=(); for p in "${pids[@]}"; do [ "$p" = "$arg" ] || keep+=("$p"); done; pids=("${keep[@]}") ;;
    dir) dirs+=("$arg") ;;
    undir) keep=(); for d in "${dirs[@]}"; do [ "$d" = "$arg" ] || keep+=("$d"); done; dirs=("${keep[@]}") ;;
  esac
done
# A zombie (exited, not yet reaped by init) counts as stopped.
alive() { [ -e "/proc/$1" ] && ! grep -qE '^[0-9]+ \(.*\) Z' "/proc/$1/stat" 2>/dev/null; }
for ((i=${#pids[@]}-1; i>=0; i--)); do
  p=${pids[i]}
  alive "$p" || continue
  kill -TERM "$p" 2>/dev/null
  for _ in $(seq 100); do alive "$p" || break; sleep 0.1; done
  alive "$p" && kill -KILL "$p" 2>/dev/null
done
for d in "${dirs[@]}"; do rm -rf -- "$d"; done
"#;

/// The per-process watchdog (see the module docs).
struct Watchdog {
    stdin: Mutex<ChildStdin>,
}

static WATCHDOG: OnceLock<Result<Watchdog, String>> = OnceLock::new();

fn watchdog() -> Result<&'static Watchdog> {
    let watchdog = WATCHDOG.get_or_init(|| {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|err| format!("starting the watchdog (bash): {err}; is bash installed?"))?;
        let stdin = child.stdin.take().ok_or("the watchdog has no stdin pipe")?;
        // The Child handle is dropped on purpose: the watchdog lives exactly as long as this
        // process keeps the write end of its stdin open, i.e. until this process exits.
        Ok(Watchdog { stdin: Mutex::new(stdin) })
    });
    watchdog.as_ref().map_err(|err| anyhow::anyhow!("{err}"))
}

fn tell_watchdog(line: &str) -> Result<()> {
    let watchdog = watchdog()?;
    let mut stdin = watchdog.stdin.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    writeln!(stdin, "{line}").context("writing to the watchdog")?;
    stdin.flush().context("writing to the watchdog")
}

/// Registers a directory that the watchdog removes when this process exits.
pub fn remove_dir_at_exit(dir: &Path) -> Result<()> {
    tell_watchdog(&format!("dir {}", dir.display()))
}

/// Cancels [`remove_dir_at_exit`] (after the caller removed the directory itself).
pub fn forget_dir(dir: &Path) {
    let _ = tell_watchdog(&format!("undir {}", dir.display()));
}

/// Whether to tie a process to the watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Stopped when the handle is dropped or this process exits (tests).
    Guarded,
    /// Survives this process (`cargo xtask cluster up --detach`); stop it by PID later.
    Detached,
}

/// A running server: its child process, name and log file.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
    log: PathBuf,
    lifetime: Lifetime,
    stopped: bool,
}

impl ServerProcess {
    /// Spawns `command` as `name` with stdout and stderr appended to `log`, in its own process group.
    ///
    /// # Errors
    /// When the program cannot be started (the message names it and what to install).
    pub fn spawn(
        name: &str,
        mut command: Command,
        log: &Path,
        lifetime: Lifetime,
    ) -> Result<ServerProcess> {
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening log file {}", log.display()))?;
        let program = command.get_program().to_string_lossy().into_owned();
        if lifetime == Lifetime::Guarded {
            // Start the watchdog before the child, so a failure leaves nothing running.
            watchdog()?;
        }
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("duplicating the log file handle")?)
            .stderr(log_file)
            .process_group(0);
        let child = command.spawn().with_context(|| {
            format!(
                "starting {name} ({program}): is it installed? `cargo xtask e2e` installs every \
                 server the tests use"
            )
        })?;
        let process = ServerProcess {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            lifetime,
            stopped: false,
        };
        if lifetime == Lifetime::Guarded {
            tell_watchdog(&format!("pid {}", process.pid()))?;
        }
        Ok(process)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's name, as used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file with the server's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `max_bytes` of the log, for error messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        log_tail(&self.log, max_bytes)
    }

    /// Fails when the process has exited, with its exit status and the end of its log.
    ///
    /// # Errors
    /// When the process is no longer running.
    pub fn ensure_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.stopped = true;
                bail!(
                    "{} exited early ({status}); end of its log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(3000)
                )
            }
            Err(err) => bail!("checking on {}: {err}", self.name),
        }
    }

    /// Whether the log says the listen address was taken (so a retry on other ports may help).
    pub fn failed_on_port_in_use(&self) -> bool {
        let tail = self.log_tail(8000).to_lowercase();
        tail.contains("address already in use") || tail.contains("bind: address")
    }

    /// Stops the process: `SIGTERM`, up to `grace` to exit, then `SIGKILL`; waits for it.
    pub fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.pid();
        if let Ok(None) = self.child.try_wait() {
            // std has no SIGTERM without `unsafe`; the `kill` utility sends it.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        if self.lifetime == Lifetime::Guarded {
            let _ = tell_watchdog(&format!("unpid {pid}"));
        }
    }

    /// Leaves the process running and forgets it (for `--detach`).
    pub fn release(mut self) {
        self.stopped = true;
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.lifetime == Lifetime::Guarded {
            self.stop(Duration::from_secs(10));
        }
    }
}

/// The last `max_bytes` of a file, lossily decoded; empty when unreadable.
pub fn log_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else { return String::new() };
    let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free TCP port on 127.0.0.1, never the same twice in this process.
///
/// # Errors
/// When the loopback interface refuses to bind.
pub fn free_port() -> Result<u16> {
    for _ in 0..50 {
        let listener = TcpListener::bind("127.0.0.1:0")
            .context("binding 127.0.0.1:0 to find a free port: is the loopback interface up?")?;
        let port = listener.local_addr()?.port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if handed_out.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    bail!("no free port found on 127.0.0.1 after 50 tries")
}

/// Polls until `port` on 127.0.0.1 accepts connections, failing early when `process` exits.
///
/// # Errors
/// When the process exits or `timeout` passes (the message includes the end of the log).
pub fn wait_for_port(process: &mut ServerProcess, port: u16, timeout: Duration) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        process.ensure_running()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on {addr} within {timeout:?}; end of its log {}:\n{}",
                process.name(),
                process.log_path().display(),
                process.log_tail(3000)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a short helper command (ssh-keygen, htpasswd, git, openssl) and returns its stdout.
///
/// # Errors
/// When it cannot start or exits non-zero; the message has the command line and its stderr.
pub fn run_tool(command: &mut Command) -> Result<String> {
    let line = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command.get_args().map(|arg| arg.to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    let output = command.stdin(Stdio::null()).output().with_context(|| {
        format!("running `{line}`: is it installed? `cargo xtask e2e` installs the test tools")
    })?;
    if !output.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `n_bytes` random bytes as hex, read from `/dev/urandom` (tokens, name suffixes).
pub fn random_hex(n_bytes: usize) -> String {
    let mut bytes = vec![0u8; n_bytes];
    if File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes)).is_err() {
        // Fall back on the clock: uniqueness, not secrecy, is what tests need.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        return format!("{nanos:x}{:x}", std::process::id());
    }
    hex::encode(bytes)
}

/// Whether process `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: `123 (etcd) S …`.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Stops a process that is not our child (e.g. a detached cluster): `SIGTERM`, up to `grace`,
/// then `SIGKILL`. Returns whether it was running.
pub fn stop_pid(pid: u32, grace: Duration) -> bool {
    if !is_alive(pid) {
        return false;
    }
    let signal = |name: &str| {
        let _ = Command::new("kill").args([name, &pid.to_string()]).stderr(Stdio::null()).status();
    };
    signal("-TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && is_alive(pid) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if is_alive(pid) {
        signal("-KILL");
    }
    true
}

/// A temporary directory removed when dropped, or by the watchdog if this process dies first.
#[derive(Debug)]
pub struct ScratchDir {
    dir: tempfile::TempDir,
}

impl ScratchDir {
    /// Creates `$TMPDIR/<prefix>XXXXXX`.
    ///
    /// # Errors
    /// When the directory cannot be created or the watchdog cannot start.
    pub fn new(prefix: &str) -> Result<ScratchDir> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .with_context(|| format!("creating a temporary directory {prefix}*"))?;
        remove_dir_at_exit(dir.path())?;
        Ok(ScratchDir { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        forget_dir(self.dir.path());
    }
}
