//! imgstat: tells, for each container on a container engine, whether the registry has a
//! newer image for the reference the container was created from.

pub mod cli;
pub mod credentials;
pub mod engine;
pub mod output;
pub mod reference;
pub mod registry;
pub mod rules;
pub mod server;
pub mod status;

/// Formats an error and its sources on one line, for logs and command output.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
