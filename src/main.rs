use std::process::ExitCode;

use clap::Parser;
use imgstat::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.command {
        Command::Check(args) => imgstat::cli::check::run(args).await,
    }
}

/// Logs to stderr. `RUST_LOG` wins over `-v`; without either only errors are shown,
/// because `check` reports registry failures in its own output.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "error",
        1 => "imgstat=debug",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
