//! The JSON API under `/api`, the health check, and the OpenAPI document that describes
//! them.

pub mod access;
pub mod containers;
pub mod endpoints;
pub mod extract;
pub mod image_status;
pub mod login;
pub mod registries;
pub mod users;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::AppState;
use super::error::ErrorBody;

/// The OpenAPI document of every route the server serves.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "imgstat",
        description = "Tells which containers run an image that is outdated in its registry."
    ),
    paths(
        users::init_admin,
        users::create_user,
        users::create_api_key,
        login::login,
        endpoints::create_endpoint,
        endpoints::list_endpoints,
        endpoints::delete_endpoint,
        endpoints::set_endpoint_access,
        registries::create_registry,
        registries::list_registries,
        registries::get_registry,
        registries::update_registry,
        registries::delete_registry,
        image_status::image_status,
        containers::list_containers,
        health,
        super::metrics::serve_metrics,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Logging in"),
        (name = "users", description = "Users and API keys"),
        (name = "endpoints", description = "Environments: the container engines"),
        (name = "registries", description = "Registry credentials and connection options"),
        (name = "docker", description = "Containers and the image status of each"),
        (name = "service", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// Adds the two ways to authenticate: `jwt` (bearer token) and `ApiKeyAuth` (`X-API-Key`).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "ApiKeyAuth",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Returns the API routes and `/healthz`, without the state and the middleware.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users/admin/init", post(users::init_admin))
        .route("/api/users", post(users::create_user))
        .route("/api/users/{id}/tokens", post(users::create_api_key))
        .route("/api/auth", post(login::login))
        .route(
            "/api/endpoints",
            post(endpoints::create_endpoint).get(endpoints::list_endpoints),
        )
        .route("/api/endpoints/{id}", delete(endpoints::delete_endpoint))
        .route(
            "/api/endpoints/{id}/access",
            put(endpoints::set_endpoint_access),
        )
        .route(
            "/api/registries",
            post(registries::create_registry).get(registries::list_registries),
        )
        .route(
            "/api/registries/{id}",
            get(registries::get_registry)
                .put(registries::update_registry)
                .delete(registries::delete_registry),
        )
        .route(
            "/api/docker/{id}/containers",
            get(containers::list_containers),
        )
        .route(
            "/api/docker/{id}/containers/{containerId}/image_status",
            get(image_status::image_status),
        )
        .route("/healthz", get(health))
}

/// Body of the health check.
#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`, or `unavailable` when the database does not respond.
    pub status: &'static str,
}

/// Reports whether the server can serve requests, which needs its database.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    responses(
        (status = 200, description = "The server and its database respond", body = HealthResponse),
        (status = 503, description = "The database does not respond", body = HealthResponse),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(HealthResponse { status: "ok" })),
        Err(error) => {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "health check failed"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(HealthResponse {
                    status: "unavailable",
                }),
            )
        }
    }
}
