//! One run of `imgstat check --json`: wall time and peak memory of the child process,
//! the requests the proxies counted, and the check that every container came out
//! `updated`.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use imgstat_testkit::{Proxy, RequestKind};
use reqwest::Method;
use serde_json::Value;

use crate::fleet::Fleet;

/// Costs of one run of `imgstat check`.
#[derive(Clone, Debug)]
pub struct Sample {
    pub wall: Duration,
    /// From the start of imgstat until its first request reached the registry's proxy:
    /// process start, engine inspection and the failed HTTPS attempt before the ping.
    pub before_registry: Duration,
    /// From the registry's last response, when the proxy recorded it, until imgstat
    /// exited: comparing, printing the JSON and exiting.
    pub after_registry: Duration,
    /// CPU time of the imgstat process, user and system.
    pub cpu: Duration,
    /// Peak resident set size of the imgstat process (`ru_maxrss`), in KiB.
    pub max_rss_kib: u64,
    pub manifest_heads: u64,
    pub manifest_gets: u64,
    /// `GET /v2/` requests at the registry's proxy.
    pub pings: u64,
    /// Requests at the token realm's proxy.
    pub token_requests: u64,
    /// Maximum requests in progress at once at the registry's proxy.
    pub max_in_flight: usize,
}

impl Sample {
    pub fn manifest_requests(&self) -> u64 {
        self.manifest_heads + self.manifest_gets
    }
}

/// How often the proxy's counters are read while imgstat runs, which is also the
/// resolution of the times in a [`Sample`].
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Runs `BINARY check --json NAMES…` with the fleet's `DOCKER_CONFIG`, writing its output
/// under `scratch`, and returns what it cost. `tags` is the number of distinct tags of
/// `names`. Panics when imgstat fails or any container is not `updated`, because such a
/// run measures something else.
pub fn run_check(
    binary: &Path,
    fleet: &Fleet,
    names: &[String],
    tags: usize,
    scratch: &Path,
) -> Sample {
    let stdout_path = scratch.join("check.json");
    let stderr_path = scratch.join("check.stderr");
    let stdout = File::create(&stdout_path).expect("failed to create the stdout file");
    let stderr = File::create(&stderr_path).expect("failed to create the stderr file");
    let mut command = Command::new(binary);
    command
        .arg("check")
        .arg("--json")
        .args(names)
        .env("DOCKER_CONFIG", fleet.docker_config.path())
        // The defaults are what the targets assume.
        .env_remove("IMGSTAT_MAX_IN_FLIGHT")
        .env_remove("IMGSTAT_REGISTRY_TIMEOUT")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);

    fleet.reset_counters();
    let started = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "the loop below reaps the child with wait4, which Child::wait cannot replace"
    )]
    let child = command
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start {}: {error}", binary.display()));
    let pid = libc::pid_t::try_from(child.id()).expect("a process id fits in pid_t");

    // The proxy counts a request when it arrives, so polling its counters shows when
    // imgstat's phases start without changing imgstat.
    let mut first_request = None;
    let mut last_response = None;
    let (status, usage) = loop {
        if let Some(exited) = try_wait_with_usage(pid).expect("wait4 on the imgstat process failed")
        {
            break exited;
        }
        let stats = fleet.proxy.stats();
        if first_request.is_none() && stats.total() > 0 {
            first_request = Some(started.elapsed());
        }
        // The proxy records a request once its response is ready, so once every manifest
        // request has arrived and every arrival is recorded, the registry is done.
        let all_arrived = stats.count_kind(RequestKind::Manifest) >= tags as u64;
        if last_response.is_none()
            && all_arrived
            && fleet.proxy.requests().len() as u64 >= stats.total()
        {
            last_response = Some(started.elapsed());
        }
        thread::sleep(POLL_INTERVAL);
    };
    let wall = started.elapsed();

    let stderr_text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "imgstat check exited with wait status {status:#x}; its stderr:\n{stderr_text}"
    );
    let output = std::fs::read(&stdout_path).expect("failed to read imgstat's output");
    check_all_updated(&output, names);

    let registry = fleet.proxy.stats();
    Sample {
        wall,
        before_registry: first_request.unwrap_or(wall),
        after_registry: wall - last_response.unwrap_or(wall),
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        manifest_heads: registry.count(&Method::HEAD, RequestKind::Manifest),
        manifest_gets: registry.count(&Method::GET, RequestKind::Manifest),
        pings: registry.count_kind(RequestKind::Ping),
        token_requests: registry.count_kind(RequestKind::Token)
            + fleet.realm_proxy.as_ref().map_or(0, token_requests),
        max_in_flight: registry.max_in_flight,
    }
}

fn token_requests(proxy: &Proxy) -> u64 {
    proxy.stats().count_kind(RequestKind::Token)
}

/// Reaps the child `pid` if it has exited, with `wait4`, which also returns the resource
/// usage of that child alone. Returns its wait status and usage, or `None` while it runs.
fn try_wait_with_usage(pid: libc::pid_t) -> io::Result<Option<(i32, libc::rusage)>> {
    let mut status = 0;
    // SAFETY: rusage is plain old data, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are valid for writes for the duration of the call, and
        // `pid` is a child of this process that nothing else waits for.
        let result = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if result == pid {
            return Ok(Some((status, usage)));
        }
        if result == 0 {
            return Ok(None);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

fn timeval(value: libc::timeval) -> Duration {
    let seconds = u64::try_from(value.tv_sec).unwrap_or(0);
    let micros = u32::try_from(value.tv_usec).unwrap_or(0);
    Duration::from_secs(seconds) + Duration::from_micros(u64::from(micros))
}

/// Panics unless the output is one report per name, each `updated`.
fn check_all_updated(output: &[u8], names: &[String]) {
    let reports: Vec<Value> = serde_json::from_slice(output).unwrap_or_else(|error| {
        let text = String::from_utf8_lossy(output);
        panic!("imgstat printed invalid JSON ({error}): {text:.2000}")
    });
    assert_eq!(
        reports.len(),
        names.len(),
        "imgstat reported {} containers for {} names",
        reports.len(),
        names.len()
    );
    let not_updated: Vec<&Value> = reports
        .iter()
        .filter(|report| report["status"] != "updated")
        .collect();
    if let Some(first) = not_updated.first() {
        panic!(
            "{} of {} containers are not updated, so the run is invalid; the first: {first}",
            not_updated.len(),
            reports.len()
        );
    }
}
