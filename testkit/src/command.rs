//! Runs external tools (`docker`, `openssl`, `htpasswd`) and turns a failure into a
//! message that names the command and carries its stderr.

use std::io::Write;
use std::process::{Command, Stdio};

/// Returns a `docker` command that talks to the engine at the default socket.
pub(crate) fn docker() -> Command {
    Command::new("docker")
}

/// Runs `command`, feeding it `input` on stdin, and returns its stdout, or an error
/// message with the command line, the exit status and stderr.
pub(crate) fn try_run_with_input(command: &mut Command, input: &[u8]) -> Result<String, String> {
    let line = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("failed to start {line}: {error}"))?;

    // Writing before reading is safe here because the inputs are small or the tools
    // (`docker import -`) consume stdin before they print anything.
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let write_result = stdin.write_all(input);
    drop(stdin);

    let output = child
        .wait_with_output()
        .map_err(|error| format!("failed to wait for {line}: {error}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "{line} failed with {}: {}",
            output.status,
            stderr.trim()
        ));
    }
    write_result.map_err(|error| format!("failed to write stdin of {line}: {error}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `command` with empty stdin and returns its stdout or an error message.
pub(crate) fn try_run(command: &mut Command) -> Result<String, String> {
    try_run_with_input(command, &[])
}

/// Runs `command` and returns its stdout, and panics with the error message on failure.
pub(crate) fn run(command: &mut Command) -> String {
    try_run(command).unwrap_or_else(|message| panic!("{message}"))
}

/// Runs `command` with `input` on stdin and returns its stdout, and panics on failure.
pub(crate) fn run_with_input(command: &mut Command, input: &[u8]) -> String {
    try_run_with_input(command, input).unwrap_or_else(|message| panic!("{message}"))
}
