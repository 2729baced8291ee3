//! Registry credentials: the values sent to a registry and the sources they come from.
//!
//! `imgstat check` reads them from Docker's client config ([`DockerConfig`]), so it uses
//! the same credentials as `docker pull`. Secrets are wrapped in [`Secret`], which never prints its value.

mod docker_config;
mod helper;
mod location;
#[cfg(test)]
mod test_scripts;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

pub use docker_config::{DockerConfig, registry_host};
pub use location::{LocationError, ParsedRegistryUrl, RegistryLocation, best_match};

/// A password or token. `Debug` and `Display` print `[redacted]`, so the value reaches a log
/// or an error message only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the value, for the request that sends it and for nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A username and password, sent as HTTP Basic auth or exchanged for a bearer token.
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token (Docker's `identitytoken`), exchanged at the registry's token
    /// endpoint for an access token.
    IdentityToken(Secret),
}

/// A place to look up registry credentials.
pub trait CredentialSource: Send + Sync {
    /// Looks up the credentials for `repository` on `registry`, the registry name as written
    /// in normalised references (`docker.io` for Docker Hub, `host:port` otherwise).
    /// Returns `None` when the source has no credentials for it, so the request goes
    /// anonymous.
    fn lookup<'a>(
        &'a self,
        registry: &'a str,
        repository: &'a str,
    ) -> BoxFuture<'a, Result<Option<Credential>, CredentialError>>;
}

/// A source without credentials: every registry is reached anonymously.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCredentials;

impl CredentialSource for NoCredentials {
    fn lookup<'a>(
        &'a self,
        _registry: &'a str,
        _repository: &'a str,
    ) -> BoxFuture<'a, Result<Option<Credential>, CredentialError>> {
        Box::pin(async { Ok(None) })
    }
}

/// An error from reading a Docker client config or running a credential helper. No variant
/// contains a secret or a helper's output.
///
/// Causes are kept behind `Arc` so that a cached failure can be returned to every caller.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "cannot locate the Docker client config because DOCKER_CONFIG is not set and the home \
         directory is unknown; set DOCKER_CONFIG to the directory that contains config.json"
    )]
    NoConfigDirectory,

    #[error(
        "failed to read Docker client config {}; make it readable or set DOCKER_CONFIG to \
         another directory",
        path.display()
    )]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },

    #[error(
        "invalid JSON in Docker client config {}; fix the file or set DOCKER_CONFIG to \
         another directory",
        path.display()
    )]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: Arc<serde_json::Error>,
    },

    /// Valid JSON with a wrong value. `field` is a path such as `auths["ghcr.io"].auth`.
    #[error(
        "invalid Docker client config {}: {field} {problem}; fix the entry or set \
         DOCKER_CONFIG to another directory",
        path.display()
    )]
    InvalidConfig {
        path: PathBuf,
        field: String,
        problem: &'static str,
    },

    /// `program` is the bare program name when `PATH` was searched.
    #[error(
        "credential helper {} for registry {registry} was not found; install it or remove it \
         from credsStore or credHelpers in the Docker client config",
        program.display()
    )]
    HelperNotFound {
        helper: String,
        registry: String,
        program: PathBuf,
    },

    #[error("failed to run credential helper docker-credential-{helper} for registry {registry}")]
    HelperRun {
        helper: String,
        registry: String,
        #[source]
        source: Arc<io::Error>,
    },

    #[error(
        "credential helper docker-credential-{helper} timed out after {timeout:?} for registry \
         {registry}; check that it runs without a prompt, for example with an unlocked keychain"
    )]
    HelperTimeout {
        helper: String,
        registry: String,
        timeout: Duration,
    },

    #[error(
        "credential helper docker-credential-{helper} failed with {status} for registry \
         {registry}; run `docker login {registry}`, or run the helper with `get` by hand to \
         see its message"
    )]
    HelperFailed {
        helper: String,
        registry: String,
        status: ExitStatus,
    },

    #[error(
        "credential helper docker-credential-{helper} returned invalid output for registry \
         {registry}: {problem}; run the helper with `get` by hand to see its output"
    )]
    HelperOutput {
        helper: String,
        registry: String,
        problem: &'static str,
        #[source]
        source: Option<Arc<serde_json::Error>>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_prints_redacted() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.to_string(), "[redacted]");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn credential_debug_hides_secret() {
        let credentials = [
            Credential::Basic {
                username: "alice".to_owned(),
                password: Secret::new("hunter2"),
            },
            Credential::IdentityToken(Secret::new("hunter2")),
        ];
        for credential in credentials {
            let compact = format!("{credential:?}");
            let pretty = format!("{credential:#?}");
            assert!(!compact.contains("hunter2"), "{compact}");
            assert!(!pretty.contains("hunter2"), "{pretty}");
            assert!(compact.contains("[redacted]"), "{compact}");
        }
    }

    #[test]
    fn basic_debug_keeps_username() {
        let credential = Credential::Basic {
            username: "alice".to_owned(),
            password: Secret::new("hunter2"),
        };
        assert!(format!("{credential:?}").contains("alice"));
    }

    #[tokio::test]
    async fn no_credentials_returns_none() {
        let found = NoCredentials.lookup("docker.io", "library/nginx").await;
        assert!(matches!(found, Ok(None)), "{found:?}");
    }
}
