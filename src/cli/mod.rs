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

#[cfg(test)]
mod tests {
    use clap::Parser;
    use clap::error::ErrorKind;

    use super::*;
    use crate::registry::OutboundPolicy;
    use crate::server::config::ServerConfig;

    /// Parses `imgstat ARGS` and returns the outbound policy each command would use.
    fn outbound_policy(args: &[&str]) -> OutboundPolicy {
        let cli = Cli::try_parse_from(["imgstat"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Check(check) => OutboundPolicy::from_allow_list(check.registry_allow),
            Command::Serve(serve) => ServerConfig::try_from(serve).unwrap().registry.outbound,
            Command::RotateCredentialKey(_) => panic!("no outbound policy"),
        }
    }

    #[test]
    fn registry_allow_on_check_and_serve() {
        let expected: Vec<String> = ["registry.example.com:5000", "10.0.0.0/8", "[::1]"]
            .map(String::from)
            .to_vec();
        let commands: [&[&str]; 2] = [&["check"], &["serve", "--data-dir", "/nonexistent"]];
        for command in commands {
            let mut args = command.to_vec();
            args.extend([
                "--registry-allow",
                "registry.example.com:5000",
                "--registry-allow",
                "10.0.0.0/8,::1",
            ]);
            let policy = outbound_policy(&args);
            let listed: Vec<String> = policy
                .allow_list()
                .unwrap_or_else(|| panic!("{command:?}: no allow-list"))
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(listed, expected, "{command:?}");
        }
    }

    #[test]
    fn invalid_registry_allow_is_usage_error() {
        for command in ["check", "serve"] {
            let error =
                Cli::try_parse_from(["imgstat", command, "--registry-allow", "10.0.0.0/33"])
                    .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::ValueValidation, "{command}");
            let message = error.to_string();
            assert!(message.contains("'10.0.0.0/33'"), "{command}: {message}");
            assert!(message.contains("prefix length"), "{command}: {message}");
        }
    }
}
