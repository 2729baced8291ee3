//! Real parts for imgstat's tests, each removed again on `Drop`: registries on loopback
//! (no auth, htpasswd, token, HTTPS), a token server, a counting reverse proxy with
//! fault rules, and a fake registry whose responses never end. Also single- and
//! multi-platform images, containers on the local Docker engine, a Podman with storage
//! of its own, and a chromedriver for browser tests.
//!
//! Every helper is synchronous and blocks the calling thread. The servers run on
//! threads of their own, so they keep serving while a test blocks, whether it is a
//! `#[test]` or a `#[tokio::test]` of either runtime flavour.
//!
//! ```no_run
//! use imgstat_testkit::{Proxy, Registry, TestContainer, TestImage};
//!
//! let registry = Registry::start();
//! let mut image = TestImage::build(&registry, "team/web", "1.0");
//! let container = TestContainer::run(image.reference(), "web");
//! let old_digest = image.digest().to_owned();
//! image.push_new_content(); // the tag moves: the container's image is now outdated
//! let proxy = Proxy::in_front_of(&registry); // point the code under test at proxy.host()
//! # let _ = (container, old_digest, proxy);
//! ```

mod chromedriver;
mod command;
mod container;
mod credentials;
mod docker_config;
mod endless_server;
mod image;
mod index;
mod index_content;
mod names;
mod podman;
mod process;
mod proxy;
mod registry;
mod server;
mod signing;
mod sweep;
mod token_policy;
mod token_server;

pub use chromedriver::ChromeDriver;
pub use container::TestContainer;
pub use credentials::Credentials;
pub use docker_config::DockerConfigDir;
pub use endless_server::{Endless, EndlessServer};
pub use image::TestImage;
pub use index::TestIndex;
pub use index_content::IndexFormat;
pub use names::{OWNER_LABEL, unique_name};
pub use podman::Podman;
pub use proxy::{Fault, Proxy, ProxyStats, RecordedRequest, RequestKind};
pub use registry::{MANIFEST_ACCEPT, Registry, RegistryBuilder};
pub use sweep::sweep_leftovers;
pub use token_policy::{RepoPattern, TokenPolicy};
pub use token_server::{TokenRequest, TokenServer};
