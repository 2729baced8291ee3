//! Environments (called endpoints in the API paths): creating, listing, deleting, and
//! granting standard users access.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{JsonBody, PathParams};
use crate::server::AppState;
use crate::server::auth::{AdminUser, AuthUser};
use crate::server::error::{ApiError, ErrorBody};
use crate::server::store::{Environment, NewEnvironment, StoreError, TlsMaterial};

/// Maximum length of an environment name, in characters.
const MAX_NAME_CHARS: usize = 128;

/// A new environment.
#[derive(Deserialize, ToSchema)]
pub struct CreateEndpointRequest {
    #[serde(rename = "Name")]
    pub name: String,
    /// `unix:///path/to/socket` or `tcp://host:port`.
    #[serde(rename = "URL")]
    pub url: String,
    /// Connect over TLS; implied by any of the PEM fields. Only for `tcp://`.
    #[serde(rename = "TLS", default)]
    pub tls: bool,
    /// PEM CA certificates for the engine's certificate; without it, the system roots.
    #[serde(rename = "TLSCACert")]
    pub tls_ca_cert: Option<String>,
    /// PEM client certificate; requires `TLSKey`.
    #[serde(rename = "TLSCert")]
    pub tls_cert: Option<String>,
    /// PEM private key of the client certificate; write-only, never returned.
    #[serde(rename = "TLSKey")]
    pub tls_key: Option<String>,
}

/// An environment, without its TLS material.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct EndpointResponse {
    #[serde(rename = "Id")]
    pub id: i64,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "URL")]
    pub url: String,
    /// Whether the engine is reached over TLS.
    #[serde(rename = "TLS")]
    pub tls: bool,
}

impl From<Environment> for EndpointResponse {
    fn from(environment: Environment) -> Self {
        Self {
            id: environment.id,
            name: environment.name,
            url: environment.url,
            tls: environment.tls.is_some(),
        }
    }
}

/// The standard users who may reach an environment.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct AccessRequest {
    /// Replaces the current set of granted users; an empty list revokes every grant.
    #[serde(rename = "UserIds")]
    pub user_ids: Vec<i64>,
}

/// Creates an environment.
#[utoipa::path(
    post,
    path = "/api/endpoints",
    tag = "endpoints",
    request_body = CreateEndpointRequest,
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 200, description = "The created environment", body = EndpointResponse),
        (status = 400, description = "Invalid name, URL or TLS material", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    )
)]
pub async fn create_endpoint(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateEndpointRequest>,
) -> Result<Json<EndpointResponse>, ApiError> {
    let new = check_new_environment(request)?;
    let environment = state.store.create_environment(&new).await?;

    tracing::info!(
        environment_id = environment.id,
        name = %environment.name,
        url = %environment.url,
        admin_id = admin.id,
        "environment created"
    );
    Ok(Json(environment.into()))
}

/// Lists the environments the caller may reach: all of them for an admin, the granted
/// ones for a standard user.
#[utoipa::path(
    get,
    path = "/api/endpoints",
    tag = "endpoints",
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 200, description = "The environments, ordered by id", body = [EndpointResponse]),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    )
)]
pub async fn list_endpoints(
    AuthUser(user): AuthUser,
    State(state): State<AppState>,
) -> Result<Json<Vec<EndpointResponse>>, ApiError> {
    let environments = if user.is_admin() {
        state.store.environments().await?
    } else {
        state.store.environments_granted_to(user.id).await?
    };
    Ok(Json(environments.into_iter().map(Into::into).collect()))
}

/// Deletes an environment and its grants.
#[utoipa::path(
    delete,
    path = "/api/endpoints/{id}",
    tag = "endpoints",
    params(("id" = i64, Path, description = "Environment id")),
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid environment id", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 404, description = "No such environment", body = ErrorBody),
    )
)]
pub async fn delete_endpoint(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_environment(id).await? {
        return Err(ApiError::NotFound(format!("environment {id} not found")));
    }
    tracing::info!(
        environment_id = id,
        admin_id = admin.id,
        "environment deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Sets which standard users may reach an environment.
#[utoipa::path(
    put,
    path = "/api/endpoints/{id}/access",
    tag = "endpoints",
    params(("id" = i64, Path, description = "Environment id")),
    request_body = AccessRequest,
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 204, description = "Grants replaced"),
        (status = 400, description = "Invalid environment id, or a user id names no user", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 404, description = "No such environment", body = ErrorBody),
    )
)]
pub async fn set_endpoint_access(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
    JsonBody(request): JsonBody<AccessRequest>,
) -> Result<StatusCode, ApiError> {
    match state
        .store
        .set_environment_access(id, &request.user_ids)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound {
            entity: "user",
            id: user_id,
        }) => {
            return Err(ApiError::BadRequest(format!("user {user_id} not found")));
        }
        Err(error) => return Err(error.into()),
    }

    tracing::info!(
        environment_id = id,
        user_ids = ?request.user_ids,
        admin_id = admin.id,
        "environment access set"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a create request and turns it into the fields the store keeps.
fn check_new_environment(request: CreateEndpointRequest) -> Result<NewEnvironment, ApiError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::BadRequest(format!(
            "invalid name: expected 1 to {MAX_NAME_CHARS} characters"
        )));
    }

    let scheme = engine_url_scheme(&request.url).map_err(|reason| {
        ApiError::BadRequest(format!("invalid URL {:?}: {reason}", request.url))
    })?;

    let has_material =
        request.tls_ca_cert.is_some() || request.tls_cert.is_some() || request.tls_key.is_some();
    let tls = if request.tls || has_material {
        if scheme != EngineScheme::Tcp {
            return Err(ApiError::BadRequest(
                "TLS applies to tcp:// URLs only".to_owned(),
            ));
        }
        Some(check_tls_material(
            request.tls_ca_cert,
            request.tls_cert,
            request.tls_key,
        )?)
    } else {
        None
    };

    Ok(NewEnvironment {
        name: name.to_owned(),
        url: request.url,
        tls,
    })
}

fn check_tls_material(
    ca_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
) -> Result<TlsMaterial, ApiError> {
    if cert.is_some() != key.is_some() {
        return Err(ApiError::BadRequest(
            "TLSCert and TLSKey must be given together".to_owned(),
        ));
    }
    let fields = [
        ("TLSCACert", &ca_cert),
        ("TLSCert", &cert),
        ("TLSKey", &key),
    ];
    for (field, value) in fields {
        if value
            .as_deref()
            .is_some_and(|pem| !pem.contains("-----BEGIN "))
        {
            return Err(ApiError::BadRequest(format!(
                "invalid {field}: expected PEM text"
            )));
        }
    }
    Ok(TlsMaterial { ca_cert, cert, key })
}

#[derive(Debug, PartialEq, Eq)]
enum EngineScheme {
    Unix,
    Tcp,
}

/// Checks that `url` is `unix:///absolute/path` or `tcp://host:port` and returns which.
/// The error describes the problem, for the 400 message.
fn engine_url_scheme(url: &str) -> Result<EngineScheme, String> {
    if let Some(path) = url.strip_prefix("unix://") {
        if !path.starts_with('/') || path.len() < 2 {
            return Err("expected unix:///absolute/path/to/socket".to_owned());
        }
        return Ok(EngineScheme::Unix);
    }

    if !url.starts_with("tcp://") {
        return Err("expected unix:///path/to/socket or tcp://host:port".to_owned());
    }
    let parsed = url::Url::parse(url).map_err(|error| error.to_string())?;
    let has_host = parsed.host_str().is_some_and(|host| !host.is_empty());
    let extra_parts = !parsed.username().is_empty()
        || parsed.password().is_some()
        || !matches!(parsed.path(), "" | "/")
        || parsed.query().is_some()
        || parsed.fragment().is_some();
    if !has_host || parsed.port().is_none() || extra_parts {
        return Err("expected tcp://host:port".to_owned());
    }
    Ok(EngineScheme::Tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_url_scheme_accepts_socket_and_host_port() {
        let cases = [
            ("unix:///var/run/docker.sock", EngineScheme::Unix),
            (
                "unix:///run/user/1000/podman/podman.sock",
                EngineScheme::Unix,
            ),
            ("tcp://127.0.0.1:2376", EngineScheme::Tcp),
            ("tcp://docker.example:2375", EngineScheme::Tcp),
            ("tcp://[::1]:2376", EngineScheme::Tcp),
            ("tcp://[::1]:2376/", EngineScheme::Tcp),
        ];
        for (url, expected) in cases {
            assert_eq!(engine_url_scheme(url), Ok(expected), "{url}");
        }
    }

    #[test]
    fn engine_url_scheme_rejects_other_forms() {
        let cases = [
            "",
            "/var/run/docker.sock",
            "unix://",
            "unix:///",
            "unix://var/run/docker.sock",
            "http://127.0.0.1:2375",
            "tcp://127.0.0.1",
            "tcp://:2375",
            "tcp://127.0.0.1:2375/v1.45",
            "tcp://127.0.0.1:2375?x=1",
            "tcp://user:pass@127.0.0.1:2375",
            "tcp://127.0.0.1:99999",
        ];
        for url in cases {
            assert!(engine_url_scheme(url).is_err(), "{url:?} was accepted");
        }
    }
}
