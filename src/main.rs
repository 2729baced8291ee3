//! The `imgstat` command: parses arguments, sets up logging and calls the library.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Tells which running containers use an image that is outdated in its registry.
#[derive(Parser)]
#[command(name = "imgstat", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the multi-user HTTP service (JSON API, OpenAPI document, metrics).
    Serve(imgstat::server::config::ServeArgs),
    // The one-shot `check` subcommand is added with `imgstat::cli::check`:
    // Check(imgstat::cli::check::CheckArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => imgstat::server::run_command(args).await?,
    }
    Ok(())
}
