//! Writing command output to stdout, treating a closed pipe (`sluice … | head`) as success.

use std::io::Write;

/// Writes `text` to stdout; a closed pipe ends the output quietly instead of panicking.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(err.into()),
    }
}
