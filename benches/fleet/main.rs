//! Measures `imgstat check` on fleets of containers: wall time, peak memory and registry
//! requests, with latency added to every registry request by a proxy, and prints the
//! results, the targets and PASS or FAIL as a markdown page.
//!
//! ```text
//! cargo bench --bench fleet                                   # full run
//! cargo bench --bench fleet -- --quick                        # short smoke run
//! cargo bench --bench fleet -- --write docs/benchmarks/fleet.md
//! ```
//!
//! It needs what the tests need (`scripts/setup`): the Docker engine at the default
//! socket (or `DOCKER_HOST`), `docker-registry` and `busybox-static`. Everything it
//! creates on the engine carries a unique name and is removed at the end, also on panic.

#[path = "../common/fleet.rs"]
#[allow(
    dead_code,
    reason = "the server benchmark uses parts of the shared module that this one does not"
)]
mod fleet;
#[path = "../common/machine.rs"]
mod machine;
mod measure;
#[path = "../common/page.rs"]
mod page;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use imgstat::registry::RegistryConfig;

use crate::fleet::{Auth, CONTAINERS_PER_TAG, Fleet};
use crate::machine::{load_average, machine_facts};
use crate::measure::Sample;
use crate::report::{CaseResult, Limits, RunInfo};

const USAGE: &str = "usage: cargo bench --bench fleet -- [--quick] [--repeats N] [--write PATH]

  --quick        only the 50-tag fleets, at 0 and 100 ms, one run per case
                 (also IMGSTAT_BENCH_QUICK=1, and the default when run without
                 --bench, as `cargo test --benches` does)
  --repeats N    runs per case; the page shows the median (default 3)
  --write PATH   also write the results into the markdown page at PATH, between
                 its fleet-bench markers";

/// Latencies the proxies add to each request, in milliseconds.
const LATENCIES_MS: [u64; 3] = [0, 20, 100];
const QUICK_LATENCIES_MS: [u64; 2] = [0, 100];
const DEFAULT_REPEATS: usize = 3;

/// A fleet to set up and the numbers of tags checked on it. A smaller case checks the
/// containers of the fleet's first tags, spread over every repository.
struct FleetPlan {
    auth: Auth,
    tags: usize,
    cases: &'static [usize],
}

const FULL_PLAN: [FleetPlan; 2] = [
    FleetPlan {
        auth: Auth::None,
        tags: 500,
        cases: &[50, 500],
    },
    FleetPlan {
        auth: Auth::Token,
        tags: 50,
        cases: &[50],
    },
];

const QUICK_PLAN: [FleetPlan; 2] = [
    FleetPlan {
        auth: Auth::None,
        tags: 50,
        cases: &[50],
    },
    FleetPlan {
        auth: Auth::Token,
        tags: 50,
        cases: &[50],
    },
];

struct Options {
    quick: bool,
    repeats: usize,
    write: Option<PathBuf>,
    command: String,
}

fn parse_options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut quick = std::env::var("IMGSTAT_BENCH_QUICK").is_ok_and(|value| value == "1");
    let mut repeats = None;
    let mut write = None;
    let mut bench = false;
    let mut command_args = Vec::new();

    let mut args_iter = args.iter();
    while let Some(arg) = args_iter.next() {
        match arg.as_str() {
            // Cargo adds `--bench` when `cargo bench` runs a target without the harness.
            "--bench" => bench = true,
            "--quick" => {
                quick = true;
                command_args.push(arg.clone());
            }
            "--repeats" => {
                let value = args_iter.next().ok_or("--repeats needs a number")?;
                let count: usize = value
                    .parse()
                    .ok()
                    .filter(|&count| count > 0)
                    .ok_or_else(|| format!("invalid --repeats {value:?}: expected 1 or more"))?;
                repeats = Some(count);
                command_args.extend([arg.clone(), value.clone()]);
            }
            "--write" => {
                let value = args_iter.next().ok_or("--write needs a path")?;
                write = Some(PathBuf::from(value));
                command_args.extend([arg.clone(), value.clone()]);
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }

    quick |= !bench;
    let repeats = repeats.unwrap_or(if quick { 1 } else { DEFAULT_REPEATS });

    let mut command = "cargo bench --bench fleet".to_owned();
    if !command_args.is_empty() {
        command = format!("{command} -- {}", command_args.join(" "));
    }
    Ok(Options {
        quick,
        repeats,
        write,
        command,
    })
}

fn main() {
    let options = parse_options().unwrap_or_else(|message| {
        eprintln!("{message}");
        std::process::exit(2);
    });
    // Cargo builds the binary with the bench's profile (release settings) before the bench.
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_imgstat"));
    let defaults = RegistryConfig::default();
    let limits = Limits {
        max_in_flight: defaults.max_in_flight,
        scopes_per_token: defaults.scopes_per_token,
    };
    let (plans, latencies): (&[FleetPlan], &[u64]) = if options.quick {
        (&QUICK_PLAN, &QUICK_LATENCIES_MS)
    } else {
        (&FULL_PLAN, &LATENCIES_MS)
    };

    let started = Instant::now();
    let load_at_start = load_average();
    let runtime = tokio::runtime::Runtime::new().expect("failed to start a tokio runtime");
    let docker = runtime
        .block_on(async {
            Docker::connect_with_local_defaults()?
                .negotiate_version()
                .await
        })
        .unwrap_or_else(|error| panic!("cannot reach the Docker engine: {error}"));
    let scratch = tempfile::tempdir().expect("failed to create a scratch directory");

    let mut results = Vec::new();
    let mut setup = Vec::new();
    for plan in plans {
        let step = Instant::now();
        let fleet = Fleet::build(&runtime, &docker, plan.auth, plan.tags);
        let fleet_label = format!(
            "{}, {} tags, {} containers",
            plan.auth.describe(),
            plan.tags,
            fleet.container_count()
        );
        eprintln!(
            "fleet: set up {fleet_label} in {:.1} s",
            step.elapsed().as_secs_f64()
        );
        setup.push((format!("set up {fleet_label}"), step.elapsed()));

        for &tags in plan.cases {
            results.extend(measure_cases(
                &binary,
                &fleet,
                tags,
                latencies,
                options.repeats,
                scratch.path(),
            ));
        }

        let step = Instant::now();
        drop(fleet);
        setup.push((format!("remove {fleet_label}"), step.elapsed()));
    }

    let wall = report::wall_targets(&results, &limits);
    let counts = report::count_targets(&results, &limits);
    let info = RunInfo {
        command: options.command,
        date: httpdate::fmt_http_date(SystemTime::now()),
        machine: machine_facts(),
        repeats: options.repeats,
        setup,
        total: started.elapsed(),
        load: (load_at_start, load_average()),
    };
    let generated = report::render(&info, &results, &wall, &counts);
    println!("{generated}");
    for target in wall.iter().chain(&counts) {
        println!(
            "{}: {} — {}: measured {}, limit {}",
            report::pass_or_fail(target.pass),
            target.name,
            target.rule,
            target.measured,
            target.limit
        );
    }
    if let Some(path) = &options.write {
        report::write_page(path, &generated)
            .unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
        eprintln!("fleet: wrote {}", path.display());
    }
}

/// Runs one warm-up check, not counted, then `repeats` rounds over the latencies, so
/// that a slow spell of the shared engine spreads over the cases instead of hitting one.
fn measure_cases(
    binary: &Path,
    fleet: &Fleet,
    tags: usize,
    latencies: &[u64],
    repeats: usize,
    scratch: &Path,
) -> Vec<CaseResult> {
    let names = fleet.container_names(tags);
    fleet.set_latency(Duration::ZERO);
    measure::run_check(binary, fleet, &names, tags, scratch);

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); latencies.len()];
    for round in 1..=repeats {
        for (index, &latency_ms) in latencies.iter().enumerate() {
            fleet.set_latency(Duration::from_millis(latency_ms));
            let sample = measure::run_check(binary, fleet, &names, tags, scratch);
            eprintln!(
                "fleet: {}, {tags} tags, {latency_ms} ms, run {round}/{repeats}: {:.0} ms ({:.0} ms before the first registry request), {} HEAD, {} GET, {} pings, {} token requests",
                fleet.auth.describe(),
                sample.wall.as_secs_f64() * 1000.0,
                sample.before_registry.as_secs_f64() * 1000.0,
                sample.manifest_heads,
                sample.manifest_gets,
                sample.pings,
                sample.token_requests
            );
            samples[index].push(sample);
        }
    }
    fleet.set_latency(Duration::ZERO);

    latencies
        .iter()
        .zip(samples)
        .map(|(&latency_ms, samples)| CaseResult {
            auth: fleet.auth,
            tags,
            containers: tags * CONTAINERS_PER_TAG,
            latency: Duration::from_millis(latency_ms),
            samples,
        })
        .collect()
}
