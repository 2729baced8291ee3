use std::error::Error;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use imgstat::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.command, cli.verbose);
    match cli.command {
        Command::Check(args) => imgstat::cli::check::run(args).await,
        Command::Serve(args) => match imgstat::server::run_command(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = &error as &dyn Error, "server failed");
                ExitCode::FAILURE
            }
        },
        Command::RotateCredentialKey(args) => {
            match imgstat::server::rotate_credential_key(args).await {
                Ok(rotation) => {
                    println!("{rotation}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    tracing::error!(
                        error = &error as &dyn Error,
                        "credential key rotation failed"
                    );
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Logs to stderr. `RUST_LOG` wins over `-v`. Without either, `check` shows only errors,
/// because it reports registry failures in its own output, and `serve` logs at info level:
/// starts, stops and one line per request.
fn init_logging(command: &Command, verbose: u8) {
    let default = match (command, verbose) {
        (Command::Check(_), 0) => "error",
        (Command::Check(_), 1) => "imgstat=debug",
        (Command::Serve(_) | Command::RotateCredentialKey(_), 0) => "info",
        (Command::Serve(_) | Command::RotateCredentialKey(_), 1) => "info,imgstat=debug",
        (_, _) => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for log files and journals.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
