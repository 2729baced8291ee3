//! Medians, targets and the markdown page of the fleet benchmark.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::fleet::{Auth, REPOSITORIES};
use crate::measure::Sample;
use crate::page::PageMarkers;

/// The markers around the part of the page the benchmark writes; the rest is kept.
const MARKERS: PageMarkers = PageMarkers {
    begin: "<!-- fleet-bench:begin: written by `cargo bench --bench fleet -- --write PATH`; edits up to the end marker are replaced -->",
    end: "<!-- fleet-bench:end -->",
    title: "Benchmark: `imgstat check` on container fleets",
};

/// The samples of one case: one fleet size, auth mode and latency.
pub struct CaseResult {
    pub auth: Auth,
    pub tags: usize,
    pub containers: usize,
    pub latency: Duration,
    pub samples: Vec<Sample>,
}

impl CaseResult {
    pub fn median_wall(&self) -> Duration {
        median(self.samples.iter().map(|sample| sample.wall))
    }

    fn median_of(&self, value: impl Fn(&Sample) -> u64) -> u64 {
        median(self.samples.iter().map(value))
    }

    fn label(&self) -> String {
        format!(
            "{} tags, {}, {} ms",
            self.tags,
            self.auth.describe(),
            self.latency.as_millis()
        )
    }
}

/// Returns the middle value, or the upper of the two middle values for an even count.
fn median<T: Ord + Copy>(values: impl Iterator<Item = T>) -> T {
    let mut values: Vec<T> = values.collect();
    assert!(!values.is_empty(), "a case has at least one sample");
    values.sort_unstable();
    values[values.len() / 2]
}

/// Limits of imgstat that the targets are computed from.
pub struct Limits {
    /// `--max-in-flight`, requests in flight per registry.
    pub max_in_flight: usize,
    /// Repository scopes that imgstat requests in one token request.
    pub scopes_per_token: usize,
}

/// One target and how the measurement compares with it.
pub struct Target {
    pub name: String,
    pub rule: String,
    pub measured: String,
    pub limit: String,
    pub pass: bool,
}

fn find(results: &[CaseResult], auth: Auth, tags: usize, latency_ms: u64) -> Option<&CaseResult> {
    results.iter().find(|case| {
        case.auth == auth && case.tags == tags && case.latency == Duration::from_millis(latency_ms)
    })
}

fn millis(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

/// Evaluates the wall-time targets for the cases that were run.
pub fn wall_targets(results: &[CaseResult], limits: &Limits) -> Vec<Target> {
    let mut targets = Vec::new();

    // One round trip learns the registry (`GET /v2/`), one carries all HEADs.
    if let (Some(slow), Some(base)) = (
        find(results, Auth::None, 50, 100),
        find(results, Auth::None, 50, 0),
    ) {
        let limit = base.median_wall() + slow.latency.mul_f64(2.2);
        targets.push(Target {
            name: slow.label(),
            rule: "wall ≤ wall(0 ms) + 2.2 × RTT".to_owned(),
            measured: millis(slow.median_wall()),
            limit: millis(limit),
            pass: slow.median_wall() <= limit,
        });
    }

    // One round trip learns the registry, then ceil(tags / max_in_flight) rounds of HEADs.
    for latency_ms in [20, 100] {
        let (Some(slow), Some(base)) = (
            find(results, Auth::None, 500, latency_ms),
            find(results, Auth::None, 500, 0),
        ) else {
            continue;
        };
        let rounds = slow.tags.div_ceil(limits.max_in_flight);
        let rtt = slow.latency;
        let rounds_u32 = u32::try_from(rounds).expect("the number of rounds fits in u32");
        let limit = (base.median_wall() + rtt + rtt * rounds_u32).mul_f64(1.1);
        targets.push(Target {
            name: slow.label(),
            rule: format!("wall ≤ 1.1 × (wall(0 ms) + RTT + {rounds} rounds × RTT)"),
            measured: millis(slow.median_wall()),
            limit: millis(limit),
            pass: slow.median_wall() <= limit,
        });
    }

    // Derived here from the same reasoning: under token auth one more round trip gets
    // the token for every repository before the HEADs.
    if let (Some(slow), Some(base)) = (
        find(results, Auth::Token, 50, 100),
        find(results, Auth::Token, 50, 0),
    ) {
        let limit = base.median_wall() + slow.latency.mul_f64(3.3);
        targets.push(Target {
            name: slow.label(),
            rule: "wall ≤ wall(0 ms) + 3.3 × RTT (derived: ping, token, HEADs)".to_owned(),
            measured: millis(slow.median_wall()),
            limit: millis(limit),
            pass: slow.median_wall() <= limit,
        });
    }
    targets
}

/// Reads one request count of a sample.
type SampleCount = fn(&Sample) -> u64;

/// Evaluates the request counts of every run of every case: one manifest request per
/// distinct tag, one ping for the one registry, one token request per batch of
/// repositories under token auth.
pub fn count_targets(results: &[CaseResult], limits: &Limits) -> Vec<Target> {
    let mut targets = Vec::new();
    for case in results {
        let expected_tokens = match case.auth {
            Auth::None => 0,
            Auth::Token | Auth::AnonymousToken => {
                REPOSITORIES.div_ceil(limits.scopes_per_token) as u64
            }
        };
        let checks: [(&str, u64, SampleCount); 3] = [
            (
                "manifest requests = distinct tags",
                case.tags as u64,
                Sample::manifest_requests,
            ),
            ("pings = 1 per registry", 1, |sample| sample.pings),
            (
                "token requests = 1 per batch of repositories",
                expected_tokens,
                |sample| sample.token_requests,
            ),
        ];
        for (rule, expected, value) in checks {
            let values: Vec<u64> = case.samples.iter().map(value).collect();
            targets.push(Target {
                name: case.label(),
                rule: rule.to_owned(),
                measured: join_values(&values),
                limit: expected.to_string(),
                pass: values.iter().all(|&measured| measured == expected),
            });
        }
    }
    targets
}

/// Returns `5` when every run counted 5, else every run's count: `5, 5, 6`.
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

/// Facts about the run that go on the page.
pub struct RunInfo {
    pub command: String,
    pub date: String,
    pub machine: Vec<(String, String)>,
    pub repeats: usize,
    pub setup: Vec<(String, Duration)>,
    pub total: Duration,
    /// 1-minute load average at the start and at the end of the run.
    pub load: (String, String),
}

/// Renders the part of the page that the benchmark writes.
pub fn render(
    info: &RunInfo,
    results: &[CaseResult],
    wall: &[Target],
    counts: &[Target],
) -> String {
    let mut page = String::new();
    let _ = writeln!(page, "Command: `{}`, run on {}.", info.command, info.date);
    let _ = writeln!(
        page,
        "\nThe whole run took {:.1} min. Setting up and removing the fleets:\n",
        info.total.as_secs_f64() / 60.0
    );
    for (step, duration) in &info.setup {
        let _ = writeln!(page, "- {step}: {:.1} s", duration.as_secs_f64());
    }

    page.push_str("\n## Machine\n\n| | |\n|---|---|\n");
    for (name, value) in &info.machine {
        let _ = writeln!(page, "| {name} | {value} |");
    }
    let _ = writeln!(
        page,
        "| 1-minute load average (`/proc/loadavg`) | {} at the start, {} at the end |",
        info.load.0, info.load.1
    );

    let _ = writeln!(
        page,
        "\n## Results\n\nEach value is the median of {} runs of the case, taken column by \
         column. RTT is the latency each proxy adds to every request. The benchmark reads \
         the proxy's counters every millisecond while imgstat runs. \"before registry\" \
         lasts until imgstat's first request reached the registry's proxy: process \
         start, engine inspection and the HTTPS attempt before the plain-HTTP ping. \
         \"registry\" lasts until the proxy had the last response ready. \"after \
         registry\" is the rest: comparing, printing the JSON and exiting. CPU is \
         imgstat's user and system time.\n",
        info.repeats
    );
    page.push_str(
        "| auth | tags | containers | RTT | wall | wall (min–max) | before registry | registry | after registry | CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for case in results {
        let walls: Vec<Duration> = case.samples.iter().map(|sample| sample.wall).collect();
        let min = walls.iter().min().copied().unwrap_or_default();
        let max = walls.iter().max().copied().unwrap_or_default();
        let registry = median(
            case.samples
                .iter()
                .map(|sample| sample.wall - sample.before_registry - sample.after_registry),
        );
        let _ = writeln!(
            page,
            "| {} | {} | {} | {} ms | {} | {}–{} | {} | {} | {} | {} |",
            case.auth.label(),
            case.tags,
            case.containers,
            case.latency.as_millis(),
            millis(case.median_wall()),
            millis(min).trim_end_matches(" ms"),
            millis(max),
            millis(median(
                case.samples.iter().map(|sample| sample.before_registry)
            )),
            millis(registry),
            millis(median(
                case.samples.iter().map(|sample| sample.after_registry)
            )),
            millis(median(case.samples.iter().map(|sample| sample.cpu))),
        );
    }

    page.push_str(
        "\nRequests counted at the proxies and peak memory of imgstat. \"max in flight\" is \
         the most requests in progress at once at the registry's proxy, from arrival \
         until the response was sent.\n\n\
         | auth | tags | RTT | peak RSS | HEAD | GET | pings | token requests | max in flight |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for case in results {
        let rss_mib = case.median_of(|sample| sample.max_rss_kib) as f64 / 1024.0;
        let _ = writeln!(
            page,
            "| {} | {} | {} ms | {:.1} MiB | {} | {} | {} | {} | {} |",
            case.auth.label(),
            case.tags,
            case.latency.as_millis(),
            rss_mib,
            case.median_of(|sample| sample.manifest_heads),
            case.median_of(|sample| sample.manifest_gets),
            case.median_of(|sample| sample.pings),
            case.median_of(|sample| sample.token_requests),
            case.median_of(|sample| sample.max_in_flight as u64),
        );
    }

    page.push_str("\n## Targets\n\n### Wall time\n\n");
    render_wall_targets(&mut page, wall);
    page.push_str(
        "\n### Requests, in every run\n\nEach cell is the count measured, the count \
         expected, and the result. One value stands for every run of the case.\n\n",
    );
    render_count_targets(&mut page, counts);
    page
}

fn render_wall_targets(page: &mut String, targets: &[Target]) {
    if targets.is_empty() {
        page.push_str("No case with a wall-time target was run.\n");
        return;
    }
    page.push_str("| case | target | measured | limit | result |\n|---|---|---:|---:|---|\n");
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
}

/// Renders one row per case and one column per rule, as `count_targets` orders them.
fn render_count_targets(page: &mut String, targets: &[Target]) {
    let mut rules: Vec<&str> = Vec::new();
    for target in targets {
        if !rules.contains(&target.rule.as_str()) {
            rules.push(&target.rule);
        }
    }
    let _ = writeln!(
        page,
        "| case | {} |\n|---|{}",
        rules.join(" | "),
        "---|".repeat(rules.len())
    );
    for row in targets.chunks(rules.len().max(1)) {
        let cells: Vec<String> = row
            .iter()
            .map(|target| {
                format!(
                    "{} / {} {}",
                    target.measured,
                    target.limit,
                    pass_or_fail(target.pass)
                )
            })
            .collect();
        let _ = writeln!(page, "| {} | {} |", row[0].name, cells.join(" | "));
    }
}

pub fn pass_or_fail(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// Writes `generated` into the page at `path` between the fleet benchmark's markers,
/// keeping the text around them.
pub fn write_page(path: &Path, generated: &str) -> std::io::Result<()> {
    crate::page::write_page(path, &MARKERS, generated)
}
