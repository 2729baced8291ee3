//! Cached status requests under load: N concurrent keep-alive clients, each waiting for
//! its response before sending the next request, for a fixed time, on
//! `GET /api/docker/{id}/containers/{containerId}/image_status` with `X-API-Key` and on
//! `GET /healthz`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::fleet::Fleet;
use crate::server::{CpuTimes, ServeOptions, ServerProcess, Session, StatusBody, new_client};

/// Tags whose containers get requests: 2 tags of 4 containers each.
const TAGS: usize = 2;

/// The status every container of the fleet has.
const EXPECTED_STATUS: &str = "updated";

const CACHE_HIT: &str = "imgstat_status_cache_total{result=\"hit\"}";
const CACHE_MISS: &str = "imgstat_status_cache_total{result=\"miss\"}";
const CACHE_PENDING: &str = "imgstat_status_cache_total{result=\"pending\"}";

/// The route a case loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Status,
    Health,
}

impl Endpoint {
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Status => "status",
            Endpoint::Health => "healthz",
        }
    }
}

/// How long and how often each case runs.
#[derive(Clone, Copy, Debug)]
pub struct LoadPlan {
    pub clients: &'static [usize],
    /// Rounds over every case, so that a busy spell of the machine spreads over them.
    pub rounds: usize,
    /// Time at the start of each window whose requests are not counted.
    pub warm_up: Duration,
    /// Time of each window whose requests are counted.
    pub window: Duration,
}

/// The counted part of one window.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Requests sent in the counted time, each with a valid response.
    pub requests: u64,
    pub duration: Duration,
    /// CPU time of the server during the counted time.
    pub server_cpu: CpuTimes,
    /// CPU time of this process, the load generator, during the counted time.
    pub bench_cpu: Duration,
}

impl Window {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64()
    }
}

/// One endpoint at one number of clients, over every round.
pub struct LoadCase {
    pub endpoint: Endpoint,
    pub clients: usize,
    pub windows: Vec<Window>,
    /// Latency of every counted request, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl LoadCase {
    pub fn requests(&self) -> u64 {
        self.windows.iter().map(|window| window.requests).sum()
    }

    /// Requests per second over every round's counted time.
    pub fn requests_per_second(&self) -> f64 {
        let time: f64 = self
            .windows
            .iter()
            .map(|window| window.duration.as_secs_f64())
            .sum();
        self.requests() as f64 / time
    }

    /// Returns the latency below which `quantile` of the requests finished (nearest rank).
    pub fn latency(&self, quantile: f64) -> Duration {
        let count = self.latencies_us.len();
        assert!(count > 0, "a case has at least one request");
        let rank = ((quantile * count as f64).ceil() as usize).clamp(1, count);
        Duration::from_micros(u64::from(self.latencies_us[rank - 1]))
    }

    /// Server CPU time per counted request.
    pub fn server_cpu_per_request(&self) -> Duration {
        self.per_request(|window| window.server_cpu.total)
    }

    /// CPU time of the server's SQLite worker threads per counted request.
    pub fn sqlite_cpu_per_request(&self) -> Duration {
        self.per_request(|window| window.server_cpu.sqlite_workers)
    }

    /// CPU time of the load generator per counted request.
    pub fn bench_cpu_per_request(&self) -> Duration {
        self.per_request(|window| window.bench_cpu)
    }

    fn per_request(&self, cpu: impl Fn(&Window) -> Duration) -> Duration {
        let total: Duration = self.windows.iter().map(cpu).sum();
        total / u32::try_from(self.requests().max(1)).unwrap_or(u32::MAX)
    }
}

/// Measurements of the load part, with the counters that show whether every status
/// request was served from the status cache.
pub struct LoadResults {
    pub plan: LoadPlan,
    pub containers: usize,
    pub cases: Vec<LoadCase>,
    /// Status requests sent during the windows, warm-up time included.
    pub status_requests: u64,
    /// Change of the server's status cache counters over the windows.
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_pending: u64,
    /// Manifest requests at the registry's proxy over the windows.
    pub manifest_requests: u64,
}

/// Starts a server with its default options, requests each container's status once to
/// fill the status cache, and runs every case. Panics when any response is not a 200 with
/// the expected body, because such a run measures something else.
pub fn run(
    runtime: &Runtime,
    binary: &std::path::Path,
    fleet: &Fleet,
    plan: LoadPlan,
) -> LoadResults {
    let server = ServerProcess::start(binary, ServeOptions::default());
    let session = runtime.block_on(Session::set_up(server.url()));
    let containers = fleet.container_ids(TAGS);

    runtime.block_on(async {
        for container in &containers {
            let status = session.status(container).await;
            assert_eq!(
                status, EXPECTED_STATUS,
                "the warm-up request for container {container} returned {status}"
            );
        }
    });
    let hits_before = runtime.block_on(session.metric(CACHE_HIT));
    let misses_before = runtime.block_on(session.metric(CACHE_MISS));
    let pending_before = runtime.block_on(session.metric(CACHE_PENDING));
    fleet.reset_counters();

    let mut cases: Vec<LoadCase> = Vec::new();
    let mut status_requests = 0;
    for round in 1..=plan.rounds {
        for &clients in plan.clients {
            for endpoint in [Endpoint::Status, Endpoint::Health] {
                let outcome = runtime.block_on(run_window(
                    &session,
                    &server,
                    endpoint,
                    &containers,
                    clients,
                    plan,
                ));
                let outcome = outcome.unwrap_or_else(|message| {
                    panic!(
                        "{} with {clients} clients: {message}; the run is invalid",
                        endpoint.label()
                    )
                });
                eprintln!(
                    "server: {} with {clients} clients, round {round}/{}: {:.0} requests/s",
                    endpoint.label(),
                    plan.rounds,
                    outcome.window.requests_per_second()
                );
                if endpoint == Endpoint::Status {
                    status_requests += outcome.sent;
                }
                let position = cases
                    .iter()
                    .position(|case| case.endpoint == endpoint && case.clients == clients);
                let case = match position {
                    Some(index) => &mut cases[index],
                    None => {
                        cases.push(LoadCase {
                            endpoint,
                            clients,
                            windows: Vec::new(),
                            latencies_us: Vec::new(),
                        });
                        cases.last_mut().expect("a case was just added")
                    }
                };
                case.windows.push(outcome.window);
                case.latencies_us.extend(outcome.latencies_us);
            }
        }
    }
    for case in &mut cases {
        case.latencies_us.sort_unstable();
    }

    let delta = |sample: &str, before: f64| {
        let after = runtime.block_on(session.metric(sample));
        (after - before).max(0.0) as u64
    };
    let results = LoadResults {
        plan,
        containers: containers.len(),
        cases,
        status_requests,
        cache_hits: delta(CACHE_HIT, hits_before),
        cache_misses: delta(CACHE_MISS, misses_before),
        cache_pending: delta(CACHE_PENDING, pending_before),
        manifest_requests: fleet
            .proxy
            .stats()
            .count_kind(imgstat_testkit::RequestKind::Manifest),
    };
    let all_cached = results.cache_hits == results.status_requests
        && results.cache_misses == 0
        && results.cache_pending == 0
        && results.manifest_requests == 0;
    assert!(
        all_cached,
        "not every status came from the status cache, so the run is invalid: {} status \
         requests, {} cache hits, {} misses, {} processing, {} manifest requests",
        results.status_requests,
        results.cache_hits,
        results.cache_misses,
        results.cache_pending,
        results.manifest_requests
    );
    results
}

/// One window of one case.
struct WindowOutcome {
    window: Window,
    latencies_us: Vec<u32>,
    /// Requests sent, warm-up time included.
    sent: u64,
}

/// Latencies and request count of one client in a window.
#[derive(Default)]
struct ClientOutcome {
    latencies_us: Vec<u32>,
    sent: u64,
}

/// The part of the `/healthz` response that the benchmark checks.
#[derive(Deserialize)]
struct HealthBody {
    status: String,
}

/// Runs `clients` clients for the warm-up and the counted time of `plan`. A request
/// counts when it was sent within the counted time.
async fn run_window(
    session: &Session,
    server: &ServerProcess,
    endpoint: Endpoint,
    containers: &[String],
    clients: usize,
    plan: LoadPlan,
) -> Result<WindowOutcome, String> {
    let urls: Arc<Vec<String>> = Arc::new(match endpoint {
        Endpoint::Status => containers
            .iter()
            .map(|container| session.status_url(container))
            .collect(),
        Endpoint::Health => vec![format!("{}/healthz", session.base)],
    });
    let api_key: Arc<str> = Arc::from(session.api_key.as_str());
    let started = Instant::now();
    let counted_from = started + plan.warm_up;
    let counted_until = counted_from + plan.window;

    let tasks: Vec<_> = (0..clients)
        .map(|client_index| {
            let urls = Arc::clone(&urls);
            let api_key = Arc::clone(&api_key);
            tokio::spawn(async move {
                let client = new_client();
                let mut outcome = ClientOutcome::default();
                let mut next = client_index;
                loop {
                    let sent_at = Instant::now();
                    if sent_at >= counted_until {
                        break;
                    }
                    let url = &urls[next % urls.len()];
                    next += 1;
                    send(&client, endpoint, url, &api_key).await?;
                    outcome.sent += 1;
                    if sent_at >= counted_from {
                        let micros = sent_at.elapsed().as_micros();
                        outcome
                            .latencies_us
                            .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    }
                }
                Ok::<ClientOutcome, String>(outcome)
            })
        })
        .collect();

    tokio::time::sleep_until(counted_from).await;
    let server_cpu_before = server.cpu_times();
    let bench_cpu_before = own_cpu_time();
    tokio::time::sleep_until(counted_until).await;
    let server_cpu = server.cpu_times().since(server_cpu_before);
    let bench_cpu = own_cpu_time().saturating_sub(bench_cpu_before);

    let mut latencies_us = Vec::new();
    let mut sent = 0;
    for task in tasks {
        let outcome = task
            .await
            .map_err(|error| format!("a client task failed: {error}"))??;
        latencies_us.extend(outcome.latencies_us);
        sent += outcome.sent;
    }
    Ok(WindowOutcome {
        window: Window {
            requests: latencies_us.len() as u64,
            duration: plan.window,
            server_cpu,
            bench_cpu,
        },
        latencies_us,
        sent,
    })
}

/// Sends one request and checks that the response is a 200 with the expected body.
async fn send(
    client: &reqwest::Client,
    endpoint: Endpoint,
    url: &str,
    api_key: &str,
) -> Result<(), String> {
    let mut request = client.get(url);
    if endpoint == Endpoint::Status {
        request = request.header("X-API-Key", api_key);
    }
    let response = request
        .send()
        .await
        .map_err(|error| format!("GET {url} failed: {error}"))?;
    let code = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| format!("reading GET {url} failed: {error}"))?;
    let text = || String::from_utf8_lossy(&body).into_owned();
    if code != reqwest::StatusCode::OK {
        return Err(format!("GET {url} returned {code}: {}", text()));
    }
    let (field, expected) = match endpoint {
        Endpoint::Status => {
            let parsed: StatusBody = serde_json::from_slice(&body)
                .map_err(|error| format!("GET {url} returned no status ({error}): {}", text()))?;
            (parsed.status, EXPECTED_STATUS)
        }
        Endpoint::Health => {
            let parsed: HealthBody = serde_json::from_slice(&body)
                .map_err(|error| format!("GET {url} returned no status ({error}): {}", text()))?;
            (parsed.status, "ok")
        }
    };
    if field != expected {
        return Err(format!(
            "GET {url} returned status {field}, expected {expected}: {}",
            text()
        ));
    }
    Ok(())
}

/// Returns the user and system CPU time of this process, all threads.
fn own_cpu_time() -> Duration {
    // SAFETY: rusage is plain old data, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is valid for writes for the duration of the call.
    let result = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(
        result,
        0,
        "getrusage failed: {}",
        std::io::Error::last_os_error()
    );
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn timeval(value: libc::timeval) -> Duration {
    let seconds = u64::try_from(value.tv_sec).unwrap_or(0);
    let micros = u32::try_from(value.tv_usec).unwrap_or(0);
    Duration::from_secs(seconds) + Duration::from_micros(u64::from(micros))
}
