//! Runs Docker credential helpers (`docker-credential-<name> get`): the server URL goes to
//! the program's standard input, and `{"ServerURL", "Username", "Secret"}` JSON comes back.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{Credential, CredentialError, Secret};

/// Prefix of every credential helper program name.
const PROGRAM_PREFIX: &str = "docker-credential-";

/// Username with which a helper marks its secret as an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// Start of the message a helper prints with a failing exit status when it stores nothing
/// for the server. docker-credential-helpers prints "credentials not found in native keychain".
const NOT_FOUND_MESSAGE: &str = "credentials not found";

/// Maximum size of a helper's standard output. Its JSON is typically a few hundred bytes.
const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// A credential helper program and how to run it.
#[derive(Clone, Debug)]
pub(super) struct Helper<'a> {
    /// The part after `docker-credential-`, as in `credsStore` and `credHelpers`.
    pub name: &'a str,
    /// The directory that contains the program, or `None` to search `PATH`.
    pub dir: Option<&'a Path>,
    pub timeout: Duration,
}

/// A failed run, before the registry and helper name are attached.
enum RunFailure {
    Spawn(io::Error),
    Io(io::Error),
    OutputTooLarge,
    Timeout,
}

impl Helper<'_> {
    /// Runs `get` for `server_url` and returns the stored credential, or `None` when the
    /// helper reports "credentials not found". `registry` names the registry in errors and
    /// logs. Each failure is logged at warn level with the helper, the registry and the exit
    /// status or error, never with the helper's output.
    pub(super) async fn get(
        &self,
        server_url: &str,
        registry: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let program = self.program();
        let outcome = match tokio::time::timeout(self.timeout, run(&program, server_url)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(RunFailure::Timeout),
        };

        let result = match outcome {
            Ok((status, stdout)) => self.parse_output(status, &stdout, registry),
            Err(failure) => Err(self.run_error(failure, &program, registry)),
        };
        if let Err(error) = &result {
            self.log_failure(error, registry);
        }
        result
    }

    fn program(&self) -> OsString {
        let file_name = format!("{PROGRAM_PREFIX}{}", self.name);
        match self.dir {
            Some(dir) => dir.join(file_name).into_os_string(),
            None => file_name.into(),
        }
    }

    fn parse_output(
        &self,
        status: ExitStatus,
        stdout: &[u8],
        registry: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        if !status.success() {
            if is_not_found(stdout) {
                return Ok(None);
            }
            return Err(CredentialError::HelperFailed {
                helper: self.name.to_owned(),
                registry: registry.to_owned(),
                status,
            });
        }

        let invalid = |problem, source: Option<serde_json::Error>| CredentialError::HelperOutput {
            helper: self.name.to_owned(),
            registry: registry.to_owned(),
            problem,
            source: source.map(Arc::new),
        };
        // Parsing into `Value` first keeps the secret out of error messages: serde_json's
        // syntax errors carry a position, while its type errors would quote the value.
        let output: Value =
            serde_json::from_slice(stdout).map_err(|e| invalid("not valid JSON", Some(e)))?;
        let Value::Object(fields) = output else {
            return Err(invalid("not a JSON object", None));
        };
        let username = string_field(&fields, "Username")
            .ok_or_else(|| invalid("Username is not a string", None))?;
        let secret = string_field(&fields, "Secret")
            .ok_or_else(|| invalid("Secret is not a string", None))?;

        Ok(credential_from_output(username, secret))
    }

    fn run_error(
        &self,
        failure: RunFailure,
        program: &OsString,
        registry: &str,
    ) -> CredentialError {
        let helper = self.name.to_owned();
        let registry = registry.to_owned();
        match failure {
            RunFailure::Spawn(source) if source.kind() == io::ErrorKind::NotFound => {
                CredentialError::HelperNotFound {
                    helper,
                    registry,
                    program: PathBuf::from(program),
                }
            }
            RunFailure::Spawn(source) | RunFailure::Io(source) => CredentialError::HelperRun {
                helper,
                registry,
                source: Arc::new(source),
            },
            RunFailure::OutputTooLarge => CredentialError::HelperOutput {
                helper,
                registry,
                problem: "larger than 64 KiB",
                source: None,
            },
            RunFailure::Timeout => CredentialError::HelperTimeout {
                helper,
                registry,
                timeout: self.timeout,
            },
        }
    }

    fn log_failure(&self, error: &CredentialError, registry: &str) {
        let helper = format!("{PROGRAM_PREFIX}{}", self.name);
        match error {
            CredentialError::HelperFailed { status, .. } => {
                tracing::warn!(%helper, registry, %status, "credential helper failed");
            }
            CredentialError::HelperTimeout { timeout, .. } => {
                tracing::warn!(%helper, registry, ?timeout, "credential helper timed out");
            }
            other => {
                tracing::warn!(%helper, registry, error = %other, "credential helper failed");
            }
        }
    }
}

/// Runs the program with `get`, writes `server_url` to its standard input and returns its
/// exit status and standard output. Standard error is discarded, and the program is killed
/// when the returned future is dropped.
async fn run(program: &OsString, server_url: &str) -> Result<(ExitStatus, Vec<u8>), RunFailure> {
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(RunFailure::Spawn)?;

    let mut stdin = child.stdin.take().expect("stdin is piped");
    let written = stdin.write_all(server_url.as_bytes()).await;
    // A helper may exit without reading its input, so a closed pipe is not an error here.
    // The exit status and output decide.
    if let Err(error) = written
        && error.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(RunFailure::Io(error));
    }
    drop(stdin);

    let mut stdout = Vec::new();
    let limit = MAX_OUTPUT_BYTES as u64 + 1;
    child
        .stdout
        .take()
        .expect("stdout is piped")
        .take(limit)
        .read_to_end(&mut stdout)
        .await
        .map_err(RunFailure::Io)?;
    if stdout.len() > MAX_OUTPUT_BYTES {
        return Err(RunFailure::OutputTooLarge);
    }

    let status = child.wait().await.map_err(RunFailure::Io)?;
    Ok((status, stdout))
}

fn is_not_found(stdout: &[u8]) -> bool {
    String::from_utf8_lossy(stdout)
        .trim()
        .starts_with(NOT_FOUND_MESSAGE)
}

/// Reads a string field, with a missing field read as empty. Returns `None` for a field of
/// another type.
fn string_field(fields: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    match fields.get(name) {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(value)) => Some(value.clone()),
        Some(_) => None,
    }
}

/// Builds a credential from a helper's `Username` and `Secret`. An empty username or secret means none is
/// stored, and the username `<token>` marks the secret as an identity token.
fn credential_from_output(username: String, secret: String) -> Option<Credential> {
    if username.is_empty() || secret.is_empty() {
        return None;
    }
    if username == TOKEN_USERNAME {
        return Some(Credential::IdentityToken(Secret(secret)));
    }
    Some(Credential::Basic {
        username,
        password: Secret(secret),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::credentials::test_scripts::{ScriptDir, TEST_HELPER};

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn helper<'a>(dir: &'a ScriptDir, name: &'a str, timeout: Duration) -> Helper<'a> {
        Helper {
            name,
            dir: Some(dir.path()),
            timeout,
        }
    }

    #[tokio::test]
    async fn get_reads_username_and_secret() {
        let dir = ScriptDir::with_test_helper();
        let found = helper(&dir, TEST_HELPER, TIMEOUT)
            .get("https://index.docker.io/v1/", "docker.io")
            .await
            .unwrap();
        let expected = Credential::Basic {
            username: "hubuser".to_owned(),
            password: Secret::new("hubsecret"),
        };
        assert_eq!(found, Some(expected));
    }

    #[tokio::test]
    async fn get_reads_identity_token() {
        let dir = ScriptDir::with_test_helper();
        let found = helper(&dir, TEST_HELPER, TIMEOUT)
            .get("127.0.0.1:5000", "127.0.0.1:5000")
            .await
            .unwrap();
        let expected = Credential::IdentityToken(Secret::new("refresh-token"));
        assert_eq!(found, Some(expected));
    }

    #[tokio::test]
    async fn get_treats_not_found_as_none() {
        let dir = ScriptDir::with_test_helper();
        let found = helper(&dir, TEST_HELPER, TIMEOUT)
            .get("other.example.com", "other.example.com")
            .await
            .unwrap();
        assert_eq!(found, None);
    }

    #[tokio::test]
    async fn get_reports_exit_status_without_output() {
        let dir = ScriptDir::new();
        let script = "cat >/dev/null; echo 'keychain locked, secret s3cr3t'; exit 3";
        dir.write_helper("locked", script);
        let error = helper(&dir, "locked", TIMEOUT)
            .get("ghcr.io", "ghcr.io")
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(&error, CredentialError::HelperFailed { status, .. } if status.code() == Some(3)),
            "{error:?}"
        );
        assert!(message.contains("docker-credential-locked"), "{message}");
        assert!(message.contains("ghcr.io"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
    }

    #[tokio::test]
    async fn get_rejects_invalid_output() {
        // (script output, expected problem)
        let cases = [
            (
                "{\"Username\":\"u\",\"Secret\":\"s3cr3t\"",
                "not valid JSON",
            ),
            ("[\"s3cr3t\"]", "not a JSON object"),
            (
                "{\"Username\":\"u\",\"Secret\":[\"s3cr3t\"]}",
                "Secret is not a string",
            ),
            (
                "{\"Username\":7,\"Secret\":\"s3cr3t\"}",
                "Username is not a string",
            ),
        ];
        for (output, expected) in cases {
            let dir = ScriptDir::new();
            dir.write_helper("odd", &format!("cat >/dev/null; printf '%s' '{output}'"));
            let error = helper(&dir, "odd", TIMEOUT)
                .get("ghcr.io", "ghcr.io")
                .await
                .unwrap_err();
            let CredentialError::HelperOutput { problem, .. } = &error else {
                panic!("{output}: {error:?}");
            };
            assert_eq!(*problem, expected, "{output}");
            let chain = format!("{error} {:?}", std::error::Error::source(&error));
            assert!(!chain.contains("s3cr3t"), "{output}: {chain}");
        }
    }

    #[tokio::test]
    async fn get_rejects_oversized_output() {
        let dir = ScriptDir::new();
        dir.write_helper("chatty", "cat >/dev/null; exec yes");
        let error = helper(&dir, "chatty", TIMEOUT)
            .get("ghcr.io", "ghcr.io")
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                CredentialError::HelperOutput {
                    problem: "larger than 64 KiB",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn get_times_out_slow_helper() {
        let dir = ScriptDir::new();
        dir.write_helper("slow", "exec sleep 30");
        let timeout = Duration::from_millis(200);
        let started = Instant::now();
        let error = helper(&dir, "slow", timeout)
            .get("ghcr.io", "ghcr.io")
            .await
            .unwrap_err();
        assert!(
            matches!(&error, CredentialError::HelperTimeout { timeout: t, .. } if *t == timeout),
            "{error:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn get_reports_missing_program() {
        let dir = ScriptDir::new();
        let error = helper(&dir, "absent", TIMEOUT)
            .get("ghcr.io", "ghcr.io")
            .await
            .unwrap_err();
        let CredentialError::HelperNotFound { program, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(program, &dir.path().join("docker-credential-absent"));
        assert!(error.to_string().contains("install it"), "{error}");
    }

    #[tokio::test]
    async fn get_accepts_helper_that_ignores_input() {
        let dir = ScriptDir::new();
        let script = "printf '%s' '{\"Username\":\"u\",\"Secret\":\"p\"}'";
        dir.write_helper("deaf", script);
        let found = helper(&dir, "deaf", TIMEOUT)
            .get("ghcr.io", "ghcr.io")
            .await;
        assert!(
            matches!(found, Ok(Some(Credential::Basic { .. }))),
            "{found:?}"
        );
    }

    #[test]
    fn output_without_secret_is_none() {
        // (username, secret, expected)
        let cases = [
            ("", "", None),
            ("alice", "", None),
            ("", "orphan", None),
            ("<token>", "", None),
            (
                "<token>",
                "t",
                Some(Credential::IdentityToken(Secret::new("t"))),
            ),
            (
                "alice",
                "p",
                Some(Credential::Basic {
                    username: "alice".to_owned(),
                    password: Secret::new("p"),
                }),
            ),
        ];
        for (username, secret, expected) in cases {
            let found = credential_from_output(username.to_owned(), secret.to_owned());
            assert_eq!(found, expected, "username {username:?}, secret {secret:?}");
        }
    }

    #[test]
    fn not_found_message_forms() {
        assert!(is_not_found(b"credentials not found in native keychain\n"));
        assert!(is_not_found(b"credentials not found"));
        assert!(!is_not_found(b"error: keychain locked"));
        assert!(!is_not_found(b""));
    }
}
