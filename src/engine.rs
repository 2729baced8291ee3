//! The container engine, through the Docker Engine API (Docker, or Podman's compatible
//! socket): which containers exist, what each was created from, and what its image is.

use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;

use crate::rules::{ImageFacts, Platform};

/// The engine address used when neither `--host` nor `DOCKER_HOST` is given.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Seconds bollard waits for one engine request.
const ENGINE_TIMEOUT_SECS: u64 = 60;

/// How long connecting to an engine and agreeing on an API version may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How to reach an engine: an address and, for `tcp://`, optional TLS client material.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineAddress {
    /// `unix:///path`, `tcp://host:port` or `http://host:port`.
    pub url: String,
    /// Directory with `ca.pem`, `cert.pem` and `key.pem`, as `DOCKER_CERT_PATH` names it.
    pub tls: Option<PathBuf>,
}

impl EngineAddress {
    /// The address as the docker CLI finds it: `host`, else `DOCKER_HOST`, else the default
    /// socket; TLS when `DOCKER_TLS_VERIFY` is set, with `DOCKER_CERT_PATH` or `~/.docker`.
    pub fn from_env(host: Option<&str>) -> Self {
        let url = host
            .map(str::to_owned)
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_owned());
        let verify = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
        let tls = verify.then(|| {
            std::env::var_os("DOCKER_CERT_PATH")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| home_dir().join(".docker"))
        });
        Self { url, tls }
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// The error of a failed engine request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid engine address {url:?}: expected unix:///path/to/socket or tcp://host:port")]
    InvalidAddress { url: String },

    #[error("TLS material for engine {url} is missing in {}: expected ca.pem, cert.pem and key.pem", dir.display())]
    MissingTls { url: String, dir: PathBuf },

    #[error(
        "cannot connect to the engine at {url}; check that it is running and that the address is right (--host or DOCKER_HOST for imgstat check, the environment URL for the server)"
    )]
    Unreachable {
        url: String,
        #[source]
        source: bollard::errors::Error,
    },

    #[error("the engine at {url} did not answer within {timeout:?}; check that it is running")]
    ConnectTimeout {
        url: String,
        timeout: std::time::Duration,
    },

    #[error("the engine at {url} failed to {action}")]
    Api {
        url: String,
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
}

/// One container as the engine lists or inspects it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerFacts {
    pub id: String,
    /// The name without Docker's leading `/`.
    pub name: String,
    /// `Config.Image`: the reference the container was created from, as given.
    pub config_image: String,
    /// The ID of the image the container runs.
    pub image_id: String,
    /// `running`, `exited`, `created`, …
    pub state: String,
}

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    url: String,
}

impl Engine {
    /// Connects to the engine and agrees on an API version with it.
    pub async fn connect(address: &EngineAddress) -> Result<Self, EngineError> {
        let url = address.url.clone();
        let docker = connect_docker(address)?;
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| EngineError::ConnectTimeout {
                url: url.clone(),
                timeout: CONNECT_TIMEOUT,
            })?
            .map_err(|source| EngineError::Unreachable {
                url: url.clone(),
                source,
            })?;
        Ok(Self { docker, url })
    }

    /// Returns the address this engine was reached at.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The running containers, or all of them with `all` (as `docker ps -a`).
    pub async fn list_containers(&self, all: bool) -> Result<Vec<ContainerFacts>, EngineError> {
        let options = ListContainersOptionsBuilder::new().all(all).build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|source| self.api_error("list containers", source))?;
        Ok(summaries
            .into_iter()
            .map(|summary| ContainerFacts {
                id: summary.id.unwrap_or_default(),
                name: summary
                    .names
                    .and_then(|names| names.into_iter().next())
                    .map(|name| name.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                config_image: summary.image.unwrap_or_default(),
                image_id: summary.image_id.unwrap_or_default(),
                state: summary
                    .state
                    .map(|state| state.to_string())
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// Inspects a container by ID or name; `None` when the engine has no such container.
    pub async fn inspect_container(
        &self,
        id_or_name: &str,
    ) -> Result<Option<ContainerFacts>, EngineError> {
        let inspected = match self.docker.inspect_container(id_or_name, None).await {
            Ok(inspected) => inspected,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(source) => {
                return Err(self.api_error(&format!("inspect container {id_or_name}"), source));
            }
        };
        Ok(Some(ContainerFacts {
            id: inspected.id.unwrap_or_default(),
            name: inspected
                .name
                .map(|name| name.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            config_image: inspected
                .config
                .and_then(|config| config.image)
                .unwrap_or_default(),
            image_id: inspected.image.unwrap_or_default(),
            state: inspected
                .state
                .and_then(|state| state.status)
                .map(|status| status.to_string())
                .unwrap_or_default(),
        }))
    }

    /// Inspects an image by ID: its tags, the manifest digests recorded for it, its platform.
    pub async fn inspect_image(&self, image_id: &str) -> Result<ImageFacts, EngineError> {
        let image = self
            .docker
            .inspect_image(image_id)
            .await
            .map_err(|source| self.api_error(&format!("inspect image {image_id}"), source))?;
        Ok(ImageFacts {
            id: image.id.unwrap_or_default(),
            repo_tags: image.repo_tags.unwrap_or_default(),
            repo_digests: image.repo_digests.unwrap_or_default(),
            platform: Platform {
                os: image.os.unwrap_or_default(),
                architecture: image.architecture.unwrap_or_default(),
                variant: image.variant.filter(|v| !v.is_empty()),
            },
        })
    }

    fn api_error(&self, action: &str, source: bollard::errors::Error) -> EngineError {
        if is_connection_failure(&source) {
            return EngineError::Unreachable {
                url: self.url.clone(),
                source,
            };
        }
        EngineError::Api {
            url: self.url.clone(),
            action: action.to_owned(),
            source,
        }
    }
}

/// Maximum length of a container id or name accepted from a user. Docker sets no limit on
/// names; ids are 64 hex digits, and a longer value is taken as a malformed request.
pub const MAX_CONTAINER_ID_LEN: usize = 255;

/// Tells whether `id` can be a container id or name: ASCII letters, digits, `_`, `.` and
/// `-`, starting with a letter or digit, as Docker allows for names.
pub fn is_valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    id.len() <= MAX_CONTAINER_ID_LEN
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn connect_docker(address: &EngineAddress) -> Result<Docker, EngineError> {
    let url = address.url.as_str();
    let unreachable = |source| EngineError::Unreachable {
        url: url.to_owned(),
        source,
    };
    let version = bollard::API_DEFAULT_VERSION;

    if let Some(path) = url.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(EngineError::InvalidAddress {
                url: url.to_owned(),
            });
        }
        return Docker::connect_with_socket(path, ENGINE_TIMEOUT_SECS, version)
            .map_err(unreachable);
    }

    let is_tcp =
        url.starts_with("tcp://") || url.starts_with("http://") || url.starts_with("https://");
    if !is_tcp || url.split("://").nth(1).is_none_or(str::is_empty) {
        return Err(EngineError::InvalidAddress {
            url: url.to_owned(),
        });
    }
    match &address.tls {
        Some(dir) => {
            let (ca, cert, key) = tls_files(dir);
            if !(ca.exists() && cert.exists() && key.exists()) {
                return Err(EngineError::MissingTls {
                    url: url.to_owned(),
                    dir: dir.clone(),
                });
            }
            Docker::connect_with_ssl(url, &key, &cert, &ca, ENGINE_TIMEOUT_SECS, version)
                .map_err(unreachable)
        }
        None => Docker::connect_with_http(url, ENGINE_TIMEOUT_SECS, version).map_err(unreachable),
    }
}

fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn is_connection_failure(error: &bollard::errors::Error) -> bool {
    use bollard::errors::Error;
    matches!(
        error,
        Error::HyperResponseError { .. } | Error::IOError { .. } | Error::RequestTimeoutError
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_addresses_are_rejected_with_the_value() {
        for url in [
            "",
            "unix://",
            "tcp://",
            "ftp://host",
            "/var/run/docker.sock",
        ] {
            let address = EngineAddress {
                url: url.to_owned(),
                tls: None,
            };
            let error = connect_docker(&address)
                .err()
                .unwrap_or_else(|| panic!("{url:?} accepted"));
            assert!(error.to_string().contains(&format!("{url:?}")), "{error}");
        }
    }

    #[test]
    fn container_id_accepts_ids_and_names() {
        let valid = [
            "a",
            "3f4e8a1b2c9d",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "web-1",
            "my_app.db",
        ];
        for id in valid {
            assert!(is_valid_container_id(id), "{id:?} was rejected");
        }
    }

    #[test]
    fn container_id_rejects_malformed_values() {
        let too_long = "a".repeat(MAX_CONTAINER_ID_LEN + 1);
        let invalid = [
            "",
            " ",
            ".hidden",
            "-flag",
            "_x",
            "a/b",
            "../etc",
            "a b",
            "a?b",
            "caf\u{e9}",
            too_long.as_str(),
        ];
        for id in invalid {
            assert!(!is_valid_container_id(id), "{id:?} was accepted");
        }
    }

    #[test]
    fn missing_tls_files_are_named() {
        let address = EngineAddress {
            url: "tcp://127.0.0.1:2376".to_owned(),
            tls: Some(PathBuf::from("/nonexistent/certs")),
        };
        let error = connect_docker(&address).err().unwrap();
        let message = error.to_string();
        assert!(message.contains("/nonexistent/certs"), "{message}");
        assert!(message.contains("ca.pem"), "{message}");
    }
}
