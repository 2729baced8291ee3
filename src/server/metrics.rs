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

/// Exports the status library's own counters at scrape time: requests per registry and
/// kind, the most requests in flight per registry, and remote digest cache hits.
pub struct CheckerCollector {
    service: std::sync::Arc<crate::status::StatusService>,
    registry_requests: prometheus::IntCounterVec,
    registry_max_in_flight: prometheus::IntGaugeVec,
    digest_cache: prometheus::IntCounterVec,
    /// Scrapes reset and refill the vectors above, one at a time.
    filling: std::sync::Mutex<()>,
}

impl CheckerCollector {
    pub fn new(service: std::sync::Arc<crate::status::StatusService>) -> Self {
        let registry_requests = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "imgstat_registry_requests_total",
                "Requests sent to registries and their token realms, by registry, method and kind",
            ),
            &["registry", "method", "kind"],
        )
        .expect("registry request metric options are valid");
        let registry_max_in_flight = prometheus::IntGaugeVec::new(
            prometheus::Opts::new(
                "imgstat_registry_max_in_flight",
                "The most requests that were in flight at once to one registry",
            ),
            &["registry"],
        )
        .expect("in-flight metric options are valid");
        let digest_cache = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "imgstat_digest_cache_total",
                "Remote digest lookups answered from the cache (hit) or by the registry (miss)",
            ),
            &["result"],
        )
        .expect("digest cache metric options are valid");
        Self {
            service,
            registry_requests,
            registry_max_in_flight,
            digest_cache,
            filling: std::sync::Mutex::new(()),
        }
    }
}

impl prometheus::core::Collector for CheckerCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        let mut descs = self.registry_requests.desc();
        descs.extend(self.registry_max_in_flight.desc());
        descs.extend(self.digest_cache.desc());
        descs
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use std::sync::atomic::Ordering;

        let _filling = self
            .filling
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.registry_requests.reset();
        self.registry_max_in_flight.reset();
        let checker = self.service.checker();
        for stats in checker.registry().stats() {
            let registry = stats.registry.as_str();
            let counts = [
                ("GET", "ping", stats.pings),
                ("HEAD", "manifest", stats.manifest_heads),
                ("GET", "manifest", stats.manifest_gets),
                ("GET", "token", stats.token_requests),
            ];
            for (method, kind, count) in counts {
                self.registry_requests
                    .with_label_values(&[registry, method, kind])
                    .inc_by(count);
            }
            self.registry_max_in_flight
                .with_label_values(&[registry])
                .set(i64::try_from(stats.max_in_flight).unwrap_or(i64::MAX));
        }

        self.digest_cache.reset();
        let counters = checker.counters();
        self.digest_cache
            .with_label_values(&["hit"])
            .inc_by(counters.digest_hits.load(Ordering::Relaxed));
        self.digest_cache
            .with_label_values(&["miss"])
            .inc_by(counters.digest_misses.load(Ordering::Relaxed));

        let mut families = self.registry_requests.collect();
        families.extend(self.registry_max_in_flight.collect());
        families.extend(self.digest_cache.collect());
        families
    }
}
