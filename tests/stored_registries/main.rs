//! Registry credentials stored through the API, used by the server's real status source
//! against the machine's Docker engine and real registries on loopback: htpasswd and token
//! auth, path prefixes, token refresh, changes without a restart, and key rotation. The
//! requests that carry them pass the outbound policy and the response bounds.
//!
//! Tests run on a current-thread runtime, so that the server's tasks log on the test's
//! thread, where [`CapturedLogs`] collects the lines.

mod common;

mod auth_flows;
mod policy;
mod prefixes;
mod rotation;
