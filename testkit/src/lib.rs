//! Real parts for imgstat's tests: registries on loopback (no auth, htpasswd, token),
//! a token server, a counting reverse proxy, and images and containers on the local
//! Docker engine, each removed again on `Drop`.
//!
//! Every helper is synchronous and blocks the calling thread. The servers run on
//! threads of their own, so they keep serving while a test blocks, whether it is a
//! `#[test]` or a `#[tokio::test]` of either runtime flavour.

mod command;
mod credentials;
mod names;
mod process;
mod registry;
mod server;
mod signing;
mod token_policy;
mod token_server;

pub use credentials::Credentials;
pub use names::unique_name;
pub use registry::{MANIFEST_ACCEPT, Registry, RegistryBuilder};
pub use token_policy::{RepoPattern, TokenPolicy};
pub use token_server::{TokenRequest, TokenServer};
