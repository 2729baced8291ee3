//! Shell scripts that stand in for credential helpers in tests.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

/// Name of the helper that [`ScriptDir::with_test_helper`] writes.
pub(super) const TEST_HELPER: &str = "test";

/// A `docker-credential-test` that stores `hubuser`/`hubsecret` for Docker Hub and an
/// identity token for `127.0.0.1:5000`. It appends each server URL it receives to
/// `calls.log` beside itself, so tests can count its runs.
const TEST_HELPER_SCRIPT: &str = r#"
[ "$1" = get ] || exit 2
url=$(cat)
echo "$url" >> "$(dirname "$0")/calls.log"
case "$url" in
  https://index.docker.io/v1/)
    printf '{"ServerURL":"%s","Username":"hubuser","Secret":"hubsecret"}\n' "$url" ;;
  127.0.0.1:5000)
    printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh-token"}\n' "$url" ;;
  *)
    echo "credentials not found in native keychain"
    exit 1 ;;
esac
"#;

/// A temporary directory of helper scripts, removed on drop.
pub(super) struct ScriptDir {
    dir: TempDir,
}

impl ScriptDir {
    pub(super) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    pub(super) fn with_test_helper() -> Self {
        let dir = Self::new();
        dir.write_helper(TEST_HELPER, TEST_HELPER_SCRIPT);
        dir
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `docker-credential-<name>` as an executable `/bin/sh` script with `body`.
    ///
    /// A child process writes the file. Linux refuses to execute a file that some process
    /// holds open for writing ("text file busy"), and a helper spawned by a parallel test
    /// would inherit this process's descriptor for the moment between fork and exec.
    pub(super) fn write_helper(&self, name: &str, body: &str) {
        let path = self.path().join(format!("docker-credential-{name}"));
        let script = format!("#!/bin/sh\n{body}\n");
        let status = Command::new("/bin/sh")
            .args([
                "-c",
                "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"",
                "sh",
            ])
            .arg(&script)
            .arg(&path)
            .status()
            .expect("run /bin/sh");
        assert!(
            status.success(),
            "writing {} failed: {status}",
            path.display()
        );
    }

    /// Returns the number of times the test helper ran.
    pub(super) fn test_helper_calls(&self) -> usize {
        match std::fs::read_to_string(self.path().join("calls.log")) {
            Ok(log) => log.lines().count(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => panic!("read calls.log: {error}"),
        }
    }
}
