//! Medians, targets and the markdown page of the server benchmark.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::load::{Endpoint, LoadCase, LoadResults};
use crate::page::PageMarkers;
use crate::warm::{EXPIRY_MARGIN, LatencyCase, PassSample, STATUS_TTL, WAIT_BOUND, WarmResults};

/// The markers around the part of the page the benchmark writes; the rest is kept.
const MARKERS: PageMarkers = PageMarkers {
    begin: "<!-- server-bench:begin: written by `cargo bench --bench server -- --write PATH`; edits up to the end marker are replaced -->",
    end: "<!-- server-bench:end -->",
    title: "Benchmark: `imgstat serve`",
};

/// Slack of the warm-pass target: one round trip for the `HEAD`s, and a fifth of one
/// for the variation of the engine's and the server's work between passes.
const WARM_RTT_FACTOR: f64 = 1.2;

/// One target and how the measurement compares with it.
pub struct Target {
    pub name: String,
    pub rule: String,
    pub measured: String,
    pub limit: String,
    pub pass: bool,
}

/// Facts about the run that go on the page.
pub struct RunInfo {
    pub command: String,
    pub date: String,
    pub machine: Vec<(String, String)>,
    pub setup: Vec<(String, Duration)>,
    pub total: Duration,
    /// 1-minute load averages, each with the moment it was read.
    pub loads: Vec<(&'static str, String)>,
}

/// Returns the middle value, or the upper of the two middle values for an even count.
fn median<T: Ord + Copy>(values: impl Iterator<Item = T>) -> T {
    let mut values: Vec<T> = values.collect();
    assert!(!values.is_empty(), "a case has at least one sample");
    values.sort_unstable();
    values[values.len() / 2]
}

fn median_wall(samples: &[PassSample]) -> Duration {
    median(samples.iter().map(|sample| sample.wall))
}

fn millis(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

/// Formats a request latency with two decimals below 10 ms and one above.
fn latency(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1_000_000.0)
}

pub fn pass_or_fail(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// Evaluates the targets of the warm passes: the wall time at the highest latency
/// against the lowest, and the request counts of every warm pass.
pub fn warm_targets(results: &WarmResults) -> Vec<Target> {
    let mut targets = Vec::new();
    let base = results.cases.iter().find(|case| case.latency.is_zero());
    let slowest = results.cases.iter().max_by_key(|case| case.latency);
    if let (Some(base), Some(slow)) = (base, slowest)
        && !slow.latency.is_zero()
    {
        let limit = median_wall(&base.warm) + slow.latency.mul_f64(WARM_RTT_FACTOR);
        let measured = median_wall(&slow.warm);
        targets.push(Target {
            name: format!("warm pass, {} ms", slow.latency.as_millis()),
            rule: format!("wall ≤ wall(0 ms) + {WARM_RTT_FACTOR} × RTT"),
            measured: millis(measured),
            limit: millis(limit),
            pass: measured <= limit,
        });
    }

    type Count = fn(&PassSample) -> u64;
    let tags = results.tags as u64;
    let rules: [(&str, u64, Count); 3] = [
        ("HEAD = distinct tags", tags, |sample| sample.manifest_heads),
        ("pings = 0", 0, |sample| sample.pings),
        ("token requests = 0", 0, |sample| sample.token_requests),
    ];
    for case in &results.cases {
        for (rule, expected, count) in rules {
            let values: Vec<u64> = case.warm.iter().map(count).collect();
            targets.push(Target {
                name: format!("warm pass, {} ms", case.latency.as_millis()),
                rule: rule.to_owned(),
                measured: join_values(&values),
                limit: expected.to_string(),
                pass: values.iter().all(|&value| value == expected),
            });
        }
    }
    targets
}

/// Returns `5` when every pass counted 5, else every pass's count: `5, 5, 6`.
fn join_values(values: &[u64]) -> String {
    if values.windows(2).all(|pair| pair[0] == pair[1]) {
        return values.first().map_or_else(String::new, u64::to_string);
    }
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders the part of the page that the benchmark writes.
pub fn render(
    info: &RunInfo,
    load: &LoadResults,
    warm: &WarmResults,
    targets: &[Target],
) -> String {
    let mut page = String::new();
    let _ = writeln!(page, "Command: `{}`, run on {}.", info.command, info.date);
    let _ = writeln!(
        page,
        "\nThe whole run took {:.1} min. Setting up and removing the fleet:\n",
        info.total.as_secs_f64() / 60.0
    );
    for (step, duration) in &info.setup {
        let _ = writeln!(page, "- {step}: {:.1} s", duration.as_secs_f64());
    }

    page.push_str("\n## Machine\n\n| | |\n|---|---|\n");
    for (name, value) in &info.machine {
        let _ = writeln!(page, "| {name} | {value} |");
    }
    let loads: Vec<String> = info
        .loads
        .iter()
        .map(|(moment, value)| format!("{value} {moment}"))
        .collect();
    let _ = writeln!(
        page,
        "| 1-minute load average (`/proc/loadavg`) | {} |",
        loads.join(", ")
    );

    render_load(&mut page, load);
    render_warm(&mut page, warm);

    page.push_str(
        "\n## Targets\n\n| case | target | measured | limit | result |\n|---|---|---:|---:|---|\n",
    );
    for target in targets {
        let _ = writeln!(
            page,
            "| {} | {} | {} | {} | {} |",
            target.name,
            target.rule,
            target.measured,
            target.limit,
            pass_or_fail(target.pass)
        );
    }
    page
}

fn render_load(page: &mut String, load: &LoadResults) {
    let plan = &load.plan;
    let _ = writeln!(
        page,
        "\n## Cached status requests\n\n\
         {} containers, each status cached by one request before the load. Each client \
         is one keep-alive HTTP/1.1 connection that sends its next request when the \
         response to the last one has arrived; status requests cycle over the containers. \
         Each case ran {} time{} for {:.1} s, of which the first {:.1} s were not counted, \
         the cases taking turns. Latency is from sending a request until its whole body \
         was read; the percentiles are over every counted request of the case.\n",
        load.containers,
        plan.rounds,
        if plan.rounds == 1 { "" } else { "s" },
        (plan.warm_up + plan.window).as_secs_f64(),
        plan.warm_up.as_secs_f64(),
    );
    page.push_str(
        "| clients | status req/s | p50 | p90 | p99 | max | healthz req/s | p50 | p90 | p99 | max |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for &clients in plan.clients {
        let mut cells = vec![clients.to_string()];
        for endpoint in [Endpoint::Status, Endpoint::Health] {
            let Some(case) = find_case(load, endpoint, clients) else {
                cells.extend(std::iter::repeat_n("–".to_owned(), 5));
                continue;
            };
            cells.push(format!("{:.0}", case.requests_per_second()));
            for quantile in [0.5, 0.9, 0.99, 1.0] {
                cells.push(latency(case.latency(quantile)));
            }
        }
        let _ = writeln!(page, "| {} |", cells.join(" | "));
    }

    page.push_str(
        "\nRequests counted and CPU time per request: of the server process (from \
         `/proc/PID/stat`, in ticks of 10 ms), the part of it on sqlx's SQLite worker \
         threads (from `/proc/PID/task/TID/stat`), and of the benchmark process, which is \
         the load generator. All share the machine's cores.\n\n\
         | clients | endpoint | requests | req/s per round | server CPU per request | on SQLite threads | load generator CPU per request |\n\
         |---:|---|---:|---|---:|---:|---:|\n",
    );
    for &clients in plan.clients {
        for endpoint in [Endpoint::Status, Endpoint::Health] {
            let Some(case) = find_case(load, endpoint, clients) else {
                continue;
            };
            let rounds: Vec<String> = case
                .windows
                .iter()
                .map(|window| format!("{:.0}", window.requests_per_second()))
                .collect();
            let _ = writeln!(
                page,
                "| {clients} | {} | {} | {} | {} | {} | {} |",
                endpoint.label(),
                case.requests(),
                rounds.join(", "),
                micros(case.server_cpu_per_request()),
                micros(case.sqlite_cpu_per_request()),
                micros(case.bench_cpu_per_request()),
            );
        }
    }

    let _ = writeln!(
        page,
        "\nEvery response was a 200 with the expected body. Over the load, the server's \
         `imgstat_status_cache_total` counted {} hits for the {} status requests sent, \
         {} misses and {} `processing`, and the registry's proxy counted {} manifest \
         requests.",
        load.cache_hits,
        load.status_requests,
        load.cache_misses,
        load.cache_pending,
        load.manifest_requests
    );
}

fn find_case(load: &LoadResults, endpoint: Endpoint, clients: usize) -> Option<&LoadCase> {
    load.cases
        .iter()
        .find(|case| case.endpoint == endpoint && case.clients == clients)
}

fn render_warm(page: &mut String, warm: &WarmResults) {
    let passes = warm.cases.first().map_or(0, |case| case.warm.len());
    let _ = writeln!(
        page,
        "\n## Warm re-check of a fleet\n\n\
         {} containers over {} tags, token auth with anonymous pull. Each RTT has a server \
         of its own, started with `--status-ttl-secs {}` (which also sets the time-to-live \
         of cached remote digests) and `--wait-bound-ms {}`. A pass requests every \
         container's status at once with the API key, over kept-alive connections. The \
         cold pass comes first. Each of the {passes} warm pass{} per RTT starts {:.1} s \
         after the previous pass of its server ended. By then every cached status and \
         digest has expired, but the server still has the registry's challenge and the \
         tokens. The RTTs take turns.\n\n\
         \"before registry\" lasts until the first request reached the registry's proxy \
         (polled every millisecond): the engine inspections of the first containers and \
         the server's work before them. \"registry\" lasts until the proxy had the last \
         manifest response ready, and \"after registry\" is the rest: comparing, caching \
         and sending the responses. Warm values are medians over the warm passes, taken \
         column by column.\n",
        warm.containers,
        warm.tags,
        STATUS_TTL.as_secs(),
        WAIT_BOUND.as_millis(),
        if passes == 1 { "" } else { "es" },
        (STATUS_TTL + EXPIRY_MARGIN).as_secs_f64(),
    );
    page.push_str(
        "| RTT | pass | wall | wall (min–max) | before registry | registry | after registry | server CPU | HEAD | GET | pings | token requests | max in flight |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for case in &warm.cases {
        render_pass_row(page, case, "cold", std::slice::from_ref(&case.cold));
        render_pass_row(page, case, "warm", &case.warm);
    }
}

fn render_pass_row(page: &mut String, case: &LatencyCase, pass: &str, samples: &[PassSample]) {
    if samples.is_empty() {
        return;
    }
    let min = samples
        .iter()
        .map(|sample| sample.wall)
        .min()
        .unwrap_or_default();
    let max = samples
        .iter()
        .map(|sample| sample.wall)
        .max()
        .unwrap_or_default();
    let registry = median(
        samples
            .iter()
            .map(|sample| sample.registry_done.saturating_sub(sample.before_registry)),
    );
    let after = median(
        samples
            .iter()
            .map(|sample| sample.wall.saturating_sub(sample.registry_done)),
    );
    let count = |value: fn(&PassSample) -> u64| median(samples.iter().map(value));
    let _ = writeln!(
        page,
        "| {} ms | {pass} | {} | {}–{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        case.latency.as_millis(),
        millis(median_wall(samples)),
        millis(min).trim_end_matches(" ms"),
        millis(max),
        millis(median(samples.iter().map(|sample| sample.before_registry))),
        millis(registry),
        millis(after),
        millis(median(samples.iter().map(|sample| sample.server_cpu))),
        count(|sample| sample.manifest_heads),
        count(|sample| sample.manifest_gets),
        count(|sample| sample.pings),
        count(|sample| sample.token_requests),
        count(|sample| sample.max_in_flight as u64),
    );
}

/// Writes `generated` into the page at `path` between the server benchmark's markers,
/// keeping the text around them.
pub fn write_page(path: &Path, generated: &str) -> std::io::Result<()> {
    crate::page::write_page(path, &MARKERS, generated)
}
