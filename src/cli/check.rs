//! `imgstat check`: one engine, its containers, a table or JSON, and an exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::credentials::DockerConfig;
use crate::engine::{Engine, EngineAddress};
use crate::error_chain;
use crate::output;
use crate::registry::{AllowEntry, OutboundPolicy, RegistryClient, RegistryConfig};
use crate::rules::Status;
use crate::status::{CacheConfig, Checker, ContainerReport};

/// Exit status for usage and engine failures.
const EXIT_FAILURE: u8 = 2;

/// A progress bar appears when a check has not ended after this long.
const PROGRESS_DELAY: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Containers to check, by name or ID. Without any, every running container.
    #[arg(value_name = "CONTAINER", value_parser = parse_container)]
    pub containers: Vec<String>,

    /// Check stopped containers too, as `docker ps -a` lists them.
    #[arg(short, long)]
    pub all: bool,

    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Exit with status 1 when any container is outdated, as `git diff --exit-code` does.
    #[arg(long)]
    pub exit_code: bool,

    /// Engine address: unix:///path/to/socket or tcp://host:port. Defaults to DOCKER_HOST,
    /// then unix:///var/run/docker.sock; DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply as for
    /// the docker CLI.
    #[arg(short = 'H', long, value_name = "URL")]
    pub host: Option<String>,

    /// A registry (HOST[:PORT]) that may be reached over plain HTTP or with an unverified
    /// certificate. Repeatable. Loopback registries always may.
    #[arg(
        long = "insecure-registry",
        value_name = "HOST[:PORT]",
        env = "IMGSTAT_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,

    /// A host (HOST[:PORT]) or network (CIDR, such as 10.0.0.0/8) that registry requests
    /// may reach. Repeatable, or comma-separated in the variable. When given, requests to
    /// registries, token realms and redirect targets outside the list fail. Link-local and
    /// cloud metadata addresses are refused whatever the list contains.
    #[arg(
        long = "registry-allow",
        value_name = "HOST[:PORT]|CIDR",
        env = "IMGSTAT_REGISTRY_ALLOW",
        value_delimiter = ','
    )]
    pub registry_allow: Vec<AllowEntry>,

    /// Requests in flight at once to one registry.
    #[arg(long, value_name = "N", default_value_t = RegistryConfig::default().max_in_flight as u64, env = "IMGSTAT_MAX_IN_FLIGHT", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_in_flight: u64,

    /// Seconds one registry request may take once sent.
    #[arg(long, value_name = "SECONDS", default_value_t = RegistryConfig::default().request_timeout.as_secs(), env = "IMGSTAT_REGISTRY_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// Accepts a container name or ID as Docker writes them, so that a value such as `a/../b`
/// never reaches the engine API's path.
fn parse_container(value: &str) -> Result<String, String> {
    if crate::engine::is_valid_container_id(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "expected a container name or ID: letters, digits, '_', '.' and '-', starting \
             with a letter or digit, at most {} characters",
            crate::engine::MAX_CONTAINER_ID_LEN
        ))
    }
}

/// Runs `imgstat check` and returns the process exit status.
pub async fn run(args: CheckArgs) -> ExitCode {
    match check(&args).await {
        Ok(reports) => {
            let outdated = reports.iter().any(|r| r.status == Status::Outdated);
            if let Err(error) = print(&args, &reports) {
                eprintln!("imgstat: writing the result failed: {error}");
                return ExitCode::from(EXIT_FAILURE);
            }
            if args.exit_code && outdated {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(message) => {
            eprintln!("imgstat: {message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn check(args: &CheckArgs) -> Result<Vec<ContainerReport>, String> {
    let credentials = DockerConfig::load().map_err(|e| error_chain(&e))?;
    let registry_config = RegistryConfig {
        max_in_flight: args.max_in_flight as usize,
        request_timeout: Duration::from_secs(args.timeout),
        insecure_registries: args.insecure_registries.clone(),
        outbound: OutboundPolicy::from_allow_list(args.registry_allow.clone()),
        ..RegistryConfig::default()
    };
    let registry = RegistryClient::new(registry_config, Arc::new(credentials))
        .map_err(|e| format!("setting up the HTTP client failed: {}", error_chain(&e)))?;
    let checker = Checker::new(Arc::new(registry), CacheConfig::default());

    let address = EngineAddress::from_env(args.host.as_deref());
    let engine = Engine::connect(&address)
        .await
        .map_err(|e| error_chain(&e))?;

    if !args.containers.is_empty() {
        let progress = Progress::start(args.containers.len());
        let reports = checker
            .check_named(&engine, &args.containers, &|| progress.tick())
            .await;
        progress.finish();
        return Ok(reports);
    }

    let containers = engine
        .list_containers(args.all)
        .await
        .map_err(|e| error_chain(&e))?;
    if containers.is_empty() && !args.json {
        let which = if args.all {
            "containers"
        } else {
            "running containers"
        };
        eprintln!("imgstat: no {which} on {}", engine.url());
    }
    let progress = Progress::start(containers.len());
    let reports = checker
        .check_listed(&engine, containers, &|| progress.tick())
        .await;
    progress.finish();
    Ok(reports)
}

fn print(args: &CheckArgs, reports: &[ContainerReport]) -> std::io::Result<()> {
    // Standard output is line-buffered: one write per line for thousands of lines.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        output::write_json(&mut out, reports)?;
    } else if !reports.is_empty() {
        output::write_table(&mut out, reports)?;
    }
    out.flush()
}

/// A progress bar on stderr, drawn only on a terminal and only once the check has taken
/// longer than [`PROGRESS_DELAY`].
struct Progress {
    bar: ProgressBar,
    shown: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(total: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} containers checked") {
            bar.set_style(style);
        }
        let shown = std::io::stderr().is_terminal().then(|| {
            let bar = bar.clone();
            tokio::spawn(async move {
                tokio::time::sleep(PROGRESS_DELAY).await;
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.enable_steady_tick(Duration::from_millis(200));
            })
        });
        Self { bar, shown }
    }

    fn tick(&self) {
        self.bar.inc(1);
    }

    fn finish(self) {
        if let Some(shown) = self.shown {
            shown.abort();
        }
        self.bar.finish_and_clear();
    }
}
