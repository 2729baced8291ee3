//! Errors of registry requests, one variant per way a registry fails.

use std::sync::Arc;
use std::time::Duration;

use crate::credentials::CredentialError;

/// Why a registry request failed. Cloneable so that one failure can answer every caller
/// that shared the request.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry {registry}; check that it is running and reachable")]
    Unreachable {
        registry: String,
        #[source]
        source: Arc<reqwest::Error>,
    },

    #[error("registry {registry} did not answer within {timeout:?}")]
    Timeout { registry: String, timeout: Duration },

    #[error(
        "registry {registry} rejected the request for {repository} as unauthenticated{}; \
         log in to the registry or check the stored credentials",
        detail_suffix(detail)
    )]
    Unauthorized {
        registry: String,
        repository: String,
        detail: String,
    },

    #[error(
        "registry {registry} denied access to {repository}{}",
        detail_suffix(detail)
    )]
    Forbidden {
        registry: String,
        repository: String,
        detail: String,
    },

    #[error(
        "{repository}:{reference} not found on registry {registry}{}",
        detail_suffix(detail)
    )]
    NotFound {
        registry: String,
        repository: String,
        reference: String,
        detail: String,
    },

    #[error(
        "registry {registry} is rate limiting requests{}",
        retry_suffix(retry_after)
    )]
    RateLimited {
        registry: String,
        retry_after: Option<Duration>,
    },

    #[error(
        "registry {registry} answered HTTP {status} to {method} {path}{}",
        detail_suffix(detail)
    )]
    Status {
        registry: String,
        method: String,
        path: String,
        status: u16,
        detail: String,
    },

    #[error("invalid answer from registry {registry}: {detail}")]
    Malformed { registry: String, detail: String },

    #[error("token request for registry {registry} to {realm} failed")]
    Token {
        registry: String,
        realm: String,
        #[source]
        source: Box<RegistryError>,
    },

    #[error("reading credentials for registry {registry} failed")]
    Credentials {
        registry: String,
        #[source]
        source: Arc<CredentialError>,
    },

    #[error("request to registry {registry} refused: {detail}")]
    Refused { registry: String, detail: String },
}

impl RegistryError {
    /// The registry the failed request went to.
    pub fn registry(&self) -> &str {
        match self {
            RegistryError::Unreachable { registry, .. }
            | RegistryError::Timeout { registry, .. }
            | RegistryError::Unauthorized { registry, .. }
            | RegistryError::Forbidden { registry, .. }
            | RegistryError::NotFound { registry, .. }
            | RegistryError::RateLimited { registry, .. }
            | RegistryError::Status { registry, .. }
            | RegistryError::Malformed { registry, .. }
            | RegistryError::Token { registry, .. }
            | RegistryError::Credentials { registry, .. }
            | RegistryError::Refused { registry, .. } => registry,
        }
    }

    /// The full cause chain on one line, for logs and for `imgstat check` output.
    pub fn chain(&self) -> String {
        crate::error_chain(self)
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

fn retry_suffix(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!("; retry after {}s", wait.as_secs().max(1)),
        None => String::new(),
    }
}
