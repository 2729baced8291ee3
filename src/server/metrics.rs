//! Prometheus metrics: the registry served at `/metrics` and the HTTP request histogram.
//! Other modules register their own collectors in [`Metrics::registry`].

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{HistogramOpts, HistogramVec, Registry, TextEncoder};
use tokio::time::Instant;

use super::AppState;
use super::error::ApiError;

/// Path label of requests that matched no route, so unknown URLs cannot grow the label set.
const UNMATCHED_PATH: &str = "unmatched";

/// The metrics registry and the collectors the HTTP layer updates; clones share them.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    http_request_duration: HistogramVec,
}

impl Metrics {
    /// Creates a registry holding the HTTP request histogram.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "imgstat_http_request_duration_seconds",
                "Time from receiving an HTTP request to sending the response head, in seconds",
            ),
            &["method", "path", "status"],
        )?;
        registry.register(Box::new(http_request_duration.clone()))?;

        Ok(Self {
            registry,
            http_request_duration,
        })
    }

    /// Returns the registry, for registering more collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Encodes every registered metric in the Prometheus text format, version 0.0.4.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

/// Middleware that records each request's latency by method, route pattern and status.
pub async fn track_http_requests(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = request.method().as_str().to_owned();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_PATH, MatchedPath::as_str)
        .to_owned();

    let response = next.run(request).await;

    metrics
        .http_request_duration
        .with_label_values(&[method.as_str(), path.as_str(), response.status().as_str()])
        .observe(start.elapsed().as_secs_f64());
    response
}

/// Serves the metrics in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses((status = 200, description = "Metrics in the Prometheus text format, version 0.0.4", content_type = "text/plain"))
)]
pub async fn serve_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = state.metrics.render().map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response())
}
