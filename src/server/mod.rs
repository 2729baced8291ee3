//! `imgstat serve`: the multi-user HTTP service. It keeps users, API keys, environments and
//! registries in SQLite, authenticates requests, and hands image status requests to an
//! [`ImageStatusSource`](image_status::ImageStatusSource).

pub mod api;
pub mod auth;
pub mod config;
pub mod containers;
pub mod credential_key;
pub mod dashboard;
pub mod error;
pub mod image_status;
pub mod key_file;
pub mod metrics;
pub mod registry_directory;
mod rotate;
mod run;
pub mod status_source;
pub mod store;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Request;
use tower_http::LatencyUnit;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use rotate::{NewKeyLocation, RotateArgs, RotateError, Rotation, rotate_credential_key};
pub use run::{
    RunningServer, ServeError, engine_status_source, open_engine_state, open_state, run,
    run_command, start,
};

use auth::jwt::JwtKeys;
use credential_key::CredentialKey;
use error::ApiError;
use image_status::ImageStatusSource;
use metrics::Metrics;
use registry_directory::RegistryDirectory;
use store::Store;

/// Maximum size of a request body, in bytes. The largest bodies are PEM files.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything a handler needs; cheap to clone, clones share the same store and keys.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub jwt: Arc<JwtKeys>,
    pub image_status: Arc<dyn ImageStatusSource>,
    /// The stored registries as the registry client sees them, reloaded after each change.
    pub registries: Arc<RegistryDirectory>,
    /// Seals registry passwords.
    pub credential_key: Arc<CredentialKey>,
    pub metrics: Metrics,
    /// Shared lock on the data directory, held while any clone lives, so that a key
    /// rotation cannot run under a running server.
    data_dir_lock: Option<Arc<std::fs::File>>,
}

/// Builds the router with every route, the API documentation, request logging and metrics.
pub fn app(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(request_span)
        .on_request(())
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(LatencyUnit::Millis),
        )
        // ApiError already logs the cause of every 5xx, once.
        .on_failure(());

    api::routes()
        .merge(dashboard::routes())
        .route("/metrics", axum::routing::get(metrics::serve_metrics))
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", api::ApiDoc::openapi()))
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track_http_requests,
        ))
        .layer(trace)
        .with_state(state)
}

/// Opens the span of one request with its method and route pattern. Headers stay out of
/// it, since `Authorization` and `X-API-Key` carry credentials.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!("request", method = %request.method(), path)
}

async fn unknown_route() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

impl AppState {
    /// Assembles the state from its parts; [`open_state`] does this from a configuration.
    pub fn new(
        store: Store,
        jwt: JwtKeys,
        credential_key: CredentialKey,
        image_status: Arc<dyn ImageStatusSource>,
        registries: Arc<RegistryDirectory>,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            jwt: Arc::new(jwt),
            image_status,
            registries,
            credential_key: Arc::new(credential_key),
            metrics,
            data_dir_lock: None,
        }
    }
}
