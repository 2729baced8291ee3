//! Measures `imgstat serve`, the release binary as a child process, with the real status
//! source and the local Docker engine as its environment:
//!
//! - cached status requests with API-key authentication from N concurrent keep-alive
//!   clients, beside `GET /healthz`: requests per second and latency percentiles;
//! - a warm re-check of a fleet of 200 containers over 50 tags after the status and digest
//!   caches expired, with latency added to every registry request by a proxy: wall time
//!   and the registry requests of the pass.
//!
//! It prints the results, the targets and PASS or FAIL as a markdown page.
//!
//! ```text
//! cargo bench --bench server                                   # full run
//! cargo bench --bench server -- --quick                        # short smoke run
//! cargo bench --bench server -- --write docs/benchmarks/server.md
//! ```
//!
//! It needs what the tests need (`scripts/setup`): the Docker engine at the default
//! socket (or `DOCKER_HOST`), `docker-registry` and `busybox-static`. Everything it
//! creates on the engine carries a unique name and is removed at the end, also on panic.

#[path = "../common/fleet.rs"]
#[allow(
    dead_code,
    reason = "the fleet benchmark uses parts of the shared module that this one does not"
)]
mod fleet;
mod load;
#[path = "../common/machine.rs"]
mod machine;
#[path = "../common/page.rs"]
mod page;
mod report;
mod server;
mod warm;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;

use crate::fleet::{Auth, Fleet};
use crate::load::LoadPlan;
use crate::machine::{load_average, machine_facts};
use crate::report::RunInfo;

const USAGE: &str = "usage: cargo bench --bench server -- [--quick] [--write PATH]

  --quick        one round of 1-second windows and one warm pass per latency
                 (also IMGSTAT_BENCH_QUICK=1, and the default when run without
                 --bench, as `cargo test --benches` does)
  --write PATH   also write the results into the markdown page at PATH, between
                 its server-bench markers";

/// Distinct tags of the fleet, 4 containers each.
const TAGS: usize = 50;

/// Latencies the proxies add to each request during the warm passes.
const LATENCIES: [Duration; 2] = [Duration::ZERO, Duration::from_millis(100)];

const FULL_LOAD: LoadPlan = LoadPlan {
    clients: &[1, 8, 32],
    rounds: 3,
    warm_up: Duration::from_secs(1),
    window: Duration::from_secs(3),
};

const QUICK_LOAD: LoadPlan = LoadPlan {
    clients: &[1, 8, 32],
    rounds: 1,
    warm_up: Duration::from_millis(250),
    window: Duration::from_secs(1),
};

const FULL_WARM_PASSES: usize = 3;
const QUICK_WARM_PASSES: usize = 1;

struct Options {
    quick: bool,
    write: Option<PathBuf>,
    command: String,
}

fn parse_options() -> Result<Options, String> {
    let mut quick = std::env::var("IMGSTAT_BENCH_QUICK").is_ok_and(|value| value == "1");
    let mut write = None;
    let mut bench = false;
    let mut command_args = Vec::new();

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // Cargo adds `--bench` when `cargo bench` runs a target without the harness.
            "--bench" => bench = true,
            "--quick" => {
                quick = true;
                command_args.push(arg);
            }
            "--write" => {
                let value = args.next().ok_or("--write needs a path")?;
                write = Some(PathBuf::from(&value));
                command_args.extend([arg, value]);
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }

    quick |= !bench;
    let mut command = "cargo bench --bench server".to_owned();
    if !command_args.is_empty() {
        command = format!("{command} -- {}", command_args.join(" "));
    }
    Ok(Options {
        quick,
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
    let (load_plan, warm_passes) = if options.quick {
        (QUICK_LOAD, QUICK_WARM_PASSES)
    } else {
        (FULL_LOAD, FULL_WARM_PASSES)
    };

    let started = Instant::now();
    let mut loads = vec![("at the start", load_average())];
    let runtime = tokio::runtime::Runtime::new().expect("failed to start a tokio runtime");
    let docker = runtime
        .block_on(async {
            Docker::connect_with_local_defaults()?
                .negotiate_version()
                .await
        })
        .unwrap_or_else(|error| panic!("cannot reach the Docker engine: {error}"));

    let mut setup = Vec::new();
    let step = Instant::now();
    let fleet = Fleet::build(&runtime, &docker, Auth::AnonymousToken, TAGS);
    let fleet_label = format!(
        "{}, {TAGS} tags, {} containers",
        fleet.auth.describe(),
        fleet.container_count()
    );
    eprintln!(
        "server: set up {fleet_label} in {:.1} s",
        step.elapsed().as_secs_f64()
    );
    setup.push((format!("set up {fleet_label}"), step.elapsed()));

    let load = load::run(&runtime, &binary, &fleet, load_plan);
    loads.push(("after the cached-status load", load_average()));
    let warm = warm::run(&runtime, &binary, &fleet, TAGS, &LATENCIES, warm_passes);

    let step = Instant::now();
    drop(fleet);
    setup.push((format!("remove {fleet_label}"), step.elapsed()));
    loads.push(("at the end", load_average()));

    let targets = report::warm_targets(&warm);
    let info = RunInfo {
        command: options.command,
        date: httpdate::fmt_http_date(SystemTime::now()),
        machine: machine_facts(),
        setup,
        total: started.elapsed(),
        loads,
    };
    let generated = report::render(&info, &load, &warm, &targets);
    println!("{generated}");
    for target in &targets {
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
        eprintln!("server: wrote {}", path.display());
    }
}
