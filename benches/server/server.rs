//! `imgstat serve` as a child process with a data directory of its own, and the API calls
//! that set it up: the admin, an API key and the local engine as an environment.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempDir;

const ADMIN_USERNAME: &str = "admin";
const ADMIN_PASSWORD: &str = "bench-admin-password";

/// How long the server may take to log that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `Drop` waits after SIGTERM before it sends SIGKILL: the server's own
/// shutdown grace period is 10 seconds.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Options of `imgstat serve` that a benchmark sets, where `None` keeps the server's default.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServeOptions {
    /// `--status-ttl-secs`, which also sets the time-to-live of cached remote digests.
    pub status_ttl: Option<Duration>,
    /// `--wait-bound-ms`.
    pub wait_bound: Option<Duration>,
}

/// A running `imgstat serve`, stopped with SIGTERM on `Drop`, also on panic. The child
/// gets SIGKILL from the kernel when the thread that started it exits, so a killed
/// benchmark leaves no server behind.
pub struct ServerProcess {
    child: Child,
    url: String,
    log_path: PathBuf,
    data_dir: TempDir,
}

impl ServerProcess {
    /// Starts `BINARY serve` on a free loopback port and waits until it logs its address.
    /// Every `IMGSTAT_*` variable and `RUST_LOG` of this process are left out, so the
    /// server runs with its defaults apart from `options`, and logs at info level, one
    /// line per request, into a file. Panics when the server does not start.
    pub fn start(binary: &Path, options: ServeOptions) -> Self {
        let data_dir = tempfile::Builder::new()
            .prefix("imgstat-bench-server-")
            .tempdir()
            .expect("failed to create the server's data directory");
        let log_path = data_dir.path().join("serve.log");
        let log = std::fs::File::create(&log_path).expect("failed to create the server log");

        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir.path());
        if let Some(ttl) = options.status_ttl {
            command.args(["--status-ttl-secs", &ttl.as_secs().to_string()]);
        }
        if let Some(bound) = options.wait_bound {
            command.args(["--wait-bound-ms", &bound.as_millis().to_string()]);
        }
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("IMGSTAT_") {
                command.env_remove(name);
            }
        }
        command
            .env_remove("RUST_LOG")
            // Plain log lines, which `wait_for_address` reads.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and the closure touches no memory of the
        // parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {}: {error}", binary.display()));

        let mut server = Self {
            child,
            url: String::new(),
            log_path,
            data_dir,
        };
        server.url = format!("http://{}", server.wait_for_address());
        server
    }

    /// Returns the base URL, such as `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns what the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Returns the user and system CPU time the server has used, in total and on sqlx's
    /// SQLite worker threads, from `/proc/PID/stat` and `/proc/PID/task/TID/stat`, in
    /// clock ticks of usually 10 ms. A thread that has exited counts in the total only.
    pub fn cpu_times(&self) -> CpuTimes {
        let pid = self.child.id();
        let path = format!("/proc/{pid}/stat");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("failed to read {path}: {error}"));
        let (_, total) =
            parse_stat(&text).unwrap_or_else(|| panic!("{path} has no CPU time fields: {text}"));

        let mut sqlite_workers = 0;
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap_or_else(|error| panic!("failed to list the threads of {pid}: {error}"));
        for task in tasks.flatten() {
            // A thread that exits between the listing and the read is left out.
            let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            if let Some((name, ticks)) = parse_stat(&text)
                && name.starts_with(SQLITE_WORKER_PREFIX)
            {
                sqlite_workers += ticks;
            }
        }
        CpuTimes {
            total: ticks_to_duration(total),
            sqlite_workers: ticks_to_duration(sqlite_workers),
        }
    }

    /// Polls the log for the "server started" line and returns its `address`.
    fn wait_for_address(&mut self) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            if let Some(address) = started_address(&log) {
                return address;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("imgstat serve exited with {status} during start; its log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "imgstat serve logged no start within {START_TIMEOUT:?}; its log:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("a process id fits in pid_t");
        // SAFETY: `pid` is a child of this process that nobody has reaped, so the id still
        // names that child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "server: imgstat serve (pid {pid}, data directory {}) did not stop within \
             {STOP_TIMEOUT:?} of SIGTERM; killing it",
            self.data_dir.path().display()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The start of the names of sqlx's SQLite worker threads (`sqlx-sqlite-worker-N` in
/// sqlx-sqlite 0.9.1), cut to the 15 bytes that Linux keeps of a thread name.
const SQLITE_WORKER_PREFIX: &str = "sqlx-sqlite-wor";

/// CPU time of the server process, user and system.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    pub total: Duration,
    /// The part on the threads that run SQLite queries for sqlx.
    pub sqlite_workers: Duration,
}

impl CpuTimes {
    /// Returns the CPU time used since `earlier`.
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            total: self.total.saturating_sub(earlier.total),
            sqlite_workers: self.sqlite_workers.saturating_sub(earlier.sqlite_workers),
        }
    }
}

/// Returns the command name and the user plus system clock ticks of a `stat` file of
/// `/proc`.
fn parse_stat(text: &str) -> Option<(&str, u64)> {
    // The name is in brackets and may contain spaces and brackets, so it ends at the
    // last `)`. The fields after it start with field 3 (state); utime and stime are
    // fields 14 and 15.
    let (before, after) = text.rsplit_once(')')?;
    let (_, name) = before.split_once('(')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).unwrap_or(100).max(1);
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

/// Returns the `address` field of the log line `server started`.
fn started_address(log: &str) -> Option<String> {
    let line = log.lines().find(|line| line.contains("server started"))?;
    let (_, after) = line.split_once("address=")?;
    let address = after.split_whitespace().next()?;
    Some(address.to_owned())
}

/// Returns the address of the engine that the server gets as its environment: `DOCKER_HOST`,
/// else the default socket, as for the fleet's Docker client.
fn engine_url() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

/// An admin's API key and JWT on one server, and the local engine as an environment.
pub struct Session {
    pub base: String,
    pub api_key: String,
    pub environment: i64,
    jwt: String,
    client: reqwest::Client,
}

/// The part of a status response that the benchmarks check.
#[derive(Deserialize)]
pub struct StatusBody {
    #[serde(rename = "Status")]
    pub status: String,
}

impl Session {
    /// Creates the admin, logs in, creates an API key and adds the local engine as an
    /// environment, on a server without users. Panics when a step fails.
    pub async fn set_up(base: &str) -> Self {
        let client = new_client();
        let admin = json!({"Username": ADMIN_USERNAME, "Password": ADMIN_PASSWORD});
        let created = post(&client, base, "/api/users/admin/init", None, &admin).await;
        let login = post(&client, base, "/api/auth", None, &admin).await;
        let jwt = string_field(&login, "jwt").to_owned();

        let user = created["Id"]
            .as_i64()
            .unwrap_or_else(|| panic!("admin without an Id: {created}"));
        let path = format!("/api/users/{user}/tokens");
        let body = json!({"Description": "server benchmark"});
        let key = post(&client, base, &path, Some(&jwt), &body).await;
        let api_key = string_field(&key, "RawAPIKey").to_owned();

        let body = json!({"Name": "local", "URL": engine_url()});
        let environment = post(&client, base, "/api/endpoints", Some(&jwt), &body).await;
        let environment = environment["Id"]
            .as_i64()
            .unwrap_or_else(|| panic!("environment without an Id: {environment}"));
        Self {
            base: base.to_owned(),
            api_key,
            environment,
            jwt,
            client,
        }
    }

    /// Returns the URL of a container's status, without `force`.
    pub fn status_url(&self, container: &str) -> String {
        format!(
            "{}/api/docker/{}/containers/{container}/image_status",
            self.base, self.environment
        )
    }

    /// Requests a container's status with the API key and returns the `Status` field.
    /// Panics unless the response is a 200 with a status.
    pub async fn status(&self, container: &str) -> String {
        let url = self.status_url(container);
        let response = self
            .client
            .get(&url)
            .header("X-API-Key", &self.api_key)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {url} failed: {error}"));
        let code = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(code.is_success(), "GET {url} returned {code}: {text}");
        let body: StatusBody = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("GET {url} returned no status ({error}): {text}"));
        body.status
    }

    /// Returns the value of one sample in `/metrics`, such as
    /// `imgstat_status_cache_total{result="hit"}`, or 0 when the server has not exported it.
    pub async fn metric(&self, sample: &str) -> f64 {
        let url = format!("{}/metrics", self.base);
        let text = self
            .client
            .get(&url)
            .bearer_auth(&self.jwt)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {url} failed: {error}"))
            .text()
            .await
            .unwrap_or_else(|error| panic!("reading GET {url} failed: {error}"));
        text.lines()
            .find_map(|line| {
                let value = line.strip_prefix(sample)?.strip_prefix(' ')?;
                value.trim().parse().ok()
            })
            .unwrap_or(0.0)
    }
}

/// Returns an HTTP/1.1 client that keeps its connections open between requests and never
/// uses a proxy.
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .pool_idle_timeout(None)
        .build()
        .expect("failed to build an HTTP client")
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    jwt: Option<&str>,
    body: &Value,
) -> Value {
    let url = format!("{base}{path}");
    let mut request = client.post(&url).json(body);
    if let Some(jwt) = jwt {
        request = request.bearer_auth(jwt);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("POST {url} failed: {error}"));
    let code = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(code.is_success(), "POST {url} returned {code}: {text}");
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("POST {url} returned invalid JSON ({error}): {text}"))
}

fn string_field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("response without {name}: {value}"))
}
