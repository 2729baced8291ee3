//! Command-line interface: argument definitions and the `check` command.

pub mod check;

use clap::{Parser, Subcommand};

/// Tells which containers run an outdated image, by comparing the image digests the
/// engine recorded with the registry's current digest for the same tag.
#[derive(Debug, Parser)]
#[command(name = "imgstat", version, about)]
pub struct Cli {
    /// Log more: -v for details of each request, -vv for everything.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check containers of one engine against their registries.
    Check(check::CheckArgs),

    /// Run the multi-user HTTP service (JSON API, OpenAPI document, metrics).
    Serve(crate::server::config::ServeArgs),

    /// Re-seal the server's stored registry passwords with a new credential key. Stop the
    /// server first.
    RotateCredentialKey(crate::server::RotateArgs),
}
