//! Command output: stdout for results, stderr for progress lines (`►`, `✔`, `✗`, `◎`).
//!
//! A closed pipe (`sluice … | head`) ends the output quietly. Inside [`capture`] both streams go
//! to memory instead, so tests and embedders can run a command and read what it printed.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// What a command printed while captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The results (tables, YAML, diffs).
    pub stdout: String,
    /// The progress and error lines.
    pub stderr: String,
}

tokio::task_local! {
    static CAPTURE: Arc<Mutex<Captured>>;
}

fn captured(f: impl FnOnce(&mut Captured)) -> bool {
    CAPTURE
        .try_with(|buffer| {
            let mut guard = buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard);
        })
        .is_ok()
}

/// Runs `future` with its output captured in memory.
pub async fn capture<F: Future>(future: F) -> (F::Output, Captured) {
    let buffer = Arc::new(Mutex::new(Captured::default()));
    let output = CAPTURE.scope(buffer.clone(), future).await;
    let text = buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    (output, text)
}

/// Writes `text` to stdout; a closed pipe ends the output quietly instead of panicking.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    if captured(|c| c.stdout.push_str(text)) {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Writes one progress line to stderr.
pub fn progress(line: &str) {
    if captured(|c| {
        c.stderr.push_str(line);
        c.stderr.push('\n');
    }) {
        return;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// Prints a progress line to stderr (or the capture buffer): `say!("► cloning {url}")`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::progress(&format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capture_collects_both_streams() {
        let ((), text) = capture(async {
            write_stdout("table\n").unwrap();
            crate::say!("✔ done {}", 1);
        })
        .await;
        assert_eq!(text, Captured { stdout: "table\n".into(), stderr: "✔ done 1\n".into() });
    }
}
