//! A warm re-check of a fleet: every container's status requested at once from a server
//! whose status and remote digest caches have expired, while it still has the registry's
//! challenge and the tokens from the cold pass before.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use imgstat_testkit::{Proxy, RequestKind};
use reqwest::Method;
use tokio::runtime::Runtime;

use crate::fleet::{CONTAINERS_PER_TAG, Fleet};
use crate::server::{ServeOptions, ServerProcess, Session, StatusBody, new_client};

/// `--status-ttl-secs` of the servers, which also sets how long remote digests are cached.
pub const STATUS_TTL: Duration = Duration::from_secs(2);

/// `--wait-bound-ms` of the servers: longer than any pass, so that no request returns
/// `processing`.
pub const WAIT_BOUND: Duration = Duration::from_secs(30);

/// Time added to the TTL before a warm pass, so that every cached entry has expired.
pub const EXPIRY_MARGIN: Duration = Duration::from_millis(300);

/// How often the proxy's counters are read during a pass, which is also the resolution
/// of the phase times of a [`PassSample`].
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Costs of one pass over every container of the fleet.
#[derive(Clone, Debug)]
pub struct PassSample {
    /// From the first request sent until the last response received.
    pub wall: Duration,
    /// From the start until the first request reached the registry's proxy: the engine
    /// inspections of the first containers and the status service's work before them.
    pub before_registry: Duration,
    /// From the start until the proxy had every manifest response ready.
    pub registry_done: Duration,
    pub manifest_heads: u64,
    pub manifest_gets: u64,
    /// `GET /v2/` requests at the registry's proxy.
    pub pings: u64,
    /// Requests at the token realm's proxy and at the registry's.
    pub token_requests: u64,
    /// Maximum requests in progress at once at the registry's proxy.
    pub max_in_flight: usize,
    /// CPU time of the server during the pass.
    pub server_cpu: Duration,
}

/// The passes at one latency, on a server of their own.
pub struct LatencyCase {
    pub latency: Duration,
    pub cold: PassSample,
    pub warm: Vec<PassSample>,
}

pub struct WarmResults {
    pub tags: usize,
    pub containers: usize,
    pub cases: Vec<LatencyCase>,
}

/// Starts one server per latency and runs its cold pass. Then runs `passes` rounds of warm
/// passes over the latencies, so that a busy spell of the machine spreads over them.
/// Panics when any response is not a 200 with status `updated`.
pub fn run(
    runtime: &Runtime,
    binary: &Path,
    fleet: &Fleet,
    tags: usize,
    latencies: &[Duration],
    passes: usize,
) -> WarmResults {
    let containers = fleet.container_ids(tags);
    let options = ServeOptions {
        status_ttl: Some(STATUS_TTL),
        wait_bound: Some(WAIT_BOUND),
    };
    let client = new_client();

    struct Slot {
        latency: Duration,
        server: ServerProcess,
        session: Session,
        cold: PassSample,
        warm: Vec<PassSample>,
        last_pass_end: Instant,
    }
    let mut slots = Vec::new();
    for &latency in latencies {
        let server = ServerProcess::start(binary, options);
        let session = runtime.block_on(Session::set_up(server.url()));
        fleet.set_latency(latency);
        let cold = run_pass(
            runtime,
            fleet,
            &server,
            &session,
            &client,
            &containers,
            tags,
        );
        log_pass("cold", latency, &cold);
        slots.push(Slot {
            latency,
            server,
            session,
            cold,
            warm: Vec::new(),
            last_pass_end: Instant::now(),
        });
    }

    for round in 1..=passes {
        for slot in &mut slots {
            fleet.set_latency(slot.latency);
            let expired_at = slot.last_pass_end + STATUS_TTL + EXPIRY_MARGIN;
            thread::sleep(expired_at.saturating_duration_since(Instant::now()));
            let sample = run_pass(
                runtime,
                fleet,
                &slot.server,
                &slot.session,
                &client,
                &containers,
                tags,
            );
            log_pass(&format!("warm {round}/{passes}"), slot.latency, &sample);
            slot.warm.push(sample);
            slot.last_pass_end = Instant::now();
        }
    }
    fleet.set_latency(Duration::ZERO);

    WarmResults {
        tags,
        containers: tags * CONTAINERS_PER_TAG,
        cases: slots
            .into_iter()
            .map(|slot| LatencyCase {
                latency: slot.latency,
                cold: slot.cold,
                warm: slot.warm,
            })
            .collect(),
    }
}

fn log_pass(pass: &str, latency: Duration, sample: &PassSample) {
    eprintln!(
        "server: {pass} pass at {} ms: {:.0} ms ({:.0} ms before the first registry request), {} HEAD, {} GET, {} pings, {} token requests",
        latency.as_millis(),
        sample.wall.as_secs_f64() * 1000.0,
        sample.before_registry.as_secs_f64() * 1000.0,
        sample.manifest_heads,
        sample.manifest_gets,
        sample.pings,
        sample.token_requests
    );
}

/// Requests every container's status at once and returns what the pass cost. `tags` is
/// the number of distinct tags of `containers`.
fn run_pass(
    runtime: &Runtime,
    fleet: &Fleet,
    server: &ServerProcess,
    session: &Session,
    client: &reqwest::Client,
    containers: &[String],
    tags: usize,
) -> PassSample {
    fleet.reset_counters();
    let cpu_before = server.cpu_times();
    let finished = AtomicBool::new(false);
    let started = Instant::now();

    let (result, phases) = thread::scope(|scope| {
        let poller = scope.spawn(|| poll_phases(&fleet.proxy, started, &finished, tags));
        let result = runtime.block_on(request_all(session, client, containers));
        finished.store(true, Ordering::SeqCst);
        let phases = poller.join().expect("the proxy poller panicked");
        (result, phases)
    });
    let wall = result.unwrap_or_else(|message| {
        panic!(
            "{message}; the run is invalid. The server's log ends with:\n{}",
            log_tail(&server.log())
        )
    });
    let server_cpu = server.cpu_times().since(cpu_before).total;

    let registry = fleet.proxy.stats();
    let realm_tokens = fleet
        .realm_proxy
        .as_ref()
        .map_or(0, |proxy| proxy.stats().count_kind(RequestKind::Token));
    PassSample {
        wall,
        before_registry: phases.first_request.unwrap_or(wall),
        registry_done: phases.last_response.unwrap_or(wall),
        manifest_heads: registry.count(&Method::HEAD, RequestKind::Manifest),
        manifest_gets: registry.count(&Method::GET, RequestKind::Manifest),
        pings: registry.count_kind(RequestKind::Ping),
        token_requests: registry.count_kind(RequestKind::Token) + realm_tokens,
        max_in_flight: registry.max_in_flight,
        server_cpu,
    }
}

/// Sends one status request per container at once and returns the time until the last
/// response, or what was wrong with the first invalid response.
async fn request_all(
    session: &Session,
    client: &reqwest::Client,
    containers: &[String],
) -> Result<Duration, String> {
    let started = Instant::now();
    let requests = containers.iter().map(|container| async move {
        let url = session.status_url(container);
        let response = client
            .get(&url)
            .header("X-API-Key", &session.api_key)
            .send()
            .await
            .map_err(|error| format!("GET {url} failed: {error}"))?;
        let code = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| format!("reading GET {url} failed: {error}"))?;
        if code != reqwest::StatusCode::OK {
            return Err(format!("GET {url} returned {code}: {text}"));
        }
        let body: StatusBody = serde_json::from_str(&text)
            .map_err(|error| format!("GET {url} returned no status ({error}): {text}"))?;
        if body.status != "updated" {
            return Err(format!(
                "GET {url} returned {text}, expected status updated"
            ));
        }
        Ok(())
    });
    let results = futures::future::join_all(requests).await;
    let wall = started.elapsed();
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    match failures.first() {
        None => Ok(wall),
        Some(first) => Err(format!(
            "{} of {} status requests failed, the first: {first}",
            failures.len(),
            containers.len()
        )),
    }
}

/// When the registry's proxy saw the first request and had the last manifest response
/// ready, from the pass's start.
struct Phases {
    first_request: Option<Duration>,
    last_response: Option<Duration>,
}

/// Reads the proxy's counters every [`POLL_INTERVAL`] until `finished` is set. The proxy
/// counts a request when it arrives and records it when its response is ready, so once
/// every manifest request has arrived and every arrival is recorded, the registry is done.
fn poll_phases(proxy: &Proxy, started: Instant, finished: &AtomicBool, tags: usize) -> Phases {
    let mut phases = Phases {
        first_request: None,
        last_response: None,
    };
    while !finished.load(Ordering::SeqCst) {
        let stats = proxy.stats();
        if phases.first_request.is_none() && stats.total() > 0 {
            phases.first_request = Some(started.elapsed());
        }
        let all_arrived = stats.count_kind(RequestKind::Manifest) >= tags as u64;
        if phases.last_response.is_none()
            && all_arrived
            && proxy.requests().len() as u64 >= stats.total()
        {
            phases.last_response = Some(started.elapsed());
        }
        thread::sleep(POLL_INTERVAL);
    }
    phases
}

/// Returns the last 40 lines of a log.
fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
