//! Real parts for imgstat's tests: registries on loopback (no auth, htpasswd, token),
//! a token server, a counting reverse proxy, and images and containers on the local
//! Docker engine, each removed again on `Drop`.
//!
//! Every helper is synchronous and blocks the calling thread. The servers run on
//! threads of their own, so they keep serving while a test blocks, whether it is a
//! `#[test]` or a `#[tokio::test]` of either runtime flavour.

mod command;
mod container;
mod credentials;
mod docker_config;
mod image;
mod names;
mod process;
mod proxy;
mod registry;
mod server;
mod signing;
mod sweep;
mod token_policy;
mod token_server;

pub use container::TestContainer;
pub use credentials::Credentials;
pub use docker_config::DockerConfigDir;
pub use image::TestImage;
pub use names::unique_name;
pub use proxy::{Fault, Proxy, ProxyStats, RecordedRequest, RequestKind};
pub use registry::{MANIFEST_ACCEPT, Registry, RegistryBuilder};
pub use sweep::sweep_leftovers;
pub use token_policy::{RepoPattern, TokenPolicy};
pub use token_server::{TokenRequest, TokenServer};
