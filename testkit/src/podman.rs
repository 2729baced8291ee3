//! A rootful Podman with storage of its own in a temporary directory, serving its
//! Docker-compatible API on a unix socket, so a test can point a Docker client at it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::command::{run, try_run};
use crate::names::{temp_dir, unique_name};
use crate::process::spawn_tied_to_process;

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `podman system service` on a socket in a fresh directory that also contains the
/// storage (`vfs`), run and temporary directories, so nothing touches the machine's
/// own Podman state. `Drop` removes the containers and images, stops the service and
/// deletes the directory; the service also dies with the test process.
///
/// Images are pulled with `--tls-verify=false`, as loopback test registries need.
pub struct Podman {
    dir: TempDir,
    child: Child,
}

impl Podman {
    /// Starts the service and waits until `GET /_ping` on its socket returns `OK`.
    /// Panics with the service's output when it does not respond in time.
    pub fn start() -> Self {
        let dir = temp_dir("podman");
        let log_path = dir.path().join("service.log");
        let log = std::fs::File::create(&log_path).expect("failed to create the podman log");
        let log_copy = log.try_clone().expect("failed to duplicate the log handle");

        let mut command = Command::new("podman");
        command
            .args(global_options(dir.path()))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket_path(dir.path()).display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_copy);
        let child = spawn_tied_to_process(command)
            .unwrap_or_else(|error| panic!("failed to start podman: {error}; install podman"));
        let mut podman = Self { dir, child };

        let deadline = Instant::now() + START_TIMEOUT;
        while !podman.answers_ping() {
            if let Ok(Some(status)) = podman.child.try_wait() {
                panic!(
                    "podman system service exited with {status}; its output:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "podman system service did not respond within {START_TIMEOUT:?}; its output:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        podman
    }

    /// Returns `unix:///…/podman.sock`, the value for `--host` or `DOCKER_HOST`.
    pub fn url(&self) -> String {
        format!("unix://{}", socket_path(self.dir.path()).display())
    }

    /// Runs `podman pull REFERENCE` and returns the image ID. For a multi-platform
    /// index Podman records the index digest and the host platform's manifest digest.
    pub fn pull(&self, reference: &str) -> String {
        run(self
            .command()
            .args(["pull", "--quiet", "--tls-verify=false", reference]))
        .trim()
        .to_owned()
    }

    /// Creates a container from `image` without starting it and returns its name,
    /// `name` with a unique suffix.
    pub fn create(&self, image: &str, name: &str) -> String {
        let name = unique_name(name);
        run(self
            .command()
            .args(["create", "--network", "none", "--name", &name, image]));
        name
    }

    /// Runs `podman image inspect` on `image` with a Go template.
    pub fn inspect_image(&self, image: &str, format: &str) -> String {
        run(self
            .command()
            .args(["image", "inspect", "--format", format, image]))
        .trim()
        .to_owned()
    }

    fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command.args(global_options(self.dir.path()));
        command
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = UnixStream::connect(socket_path(self.dir.path())) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /_ping HTTP/1.1\r\nHost: podman\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.starts_with("HTTP/1.1 200") && response.ends_with("OK")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for arguments in [["rm", "--all", "--force"], ["rmi", "--all", "--force"]] {
            if let Err(message) = try_run(self.command().args(arguments)) {
                eprintln!("imgstat-testkit: podman {arguments:?} failed: {message}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options that give this instance storage, run state and events of its own.
fn global_options(dir: &Path) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    vec![
        format!("--root={}", path("storage")),
        format!("--runroot={}", path("run")),
        format!("--tmpdir={}", path("tmp")),
        "--storage-driver=vfs".to_owned(),
        "--cgroup-manager=cgroupfs".to_owned(),
        "--events-backend=file".to_owned(),
    ]
}

fn socket_path(dir: &Path) -> PathBuf {
    dir.join("podman.sock")
}
