//! The web dashboard at `/`: one HTML page, its script and its style sheet, built into the
//! binary. The page calls the JSON API with the token the user logs in with.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

const INDEX_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// Resources the page may load: its own script, style sheet, icon and API, and nothing
/// from another origin. No inline script or style is allowed, and no page may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Returns the routes of the page and its assets.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/dashboard.js", get(script))
        .route("/assets/dashboard.css", get(style_sheet))
        .route("/assets/favicon.svg", get(favicon))
}

async fn index() -> impl IntoResponse {
    asset(
        "text/html; charset=utf-8",
        INDEX_HTML,
        Some(CONTENT_SECURITY_POLICY),
    )
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS, None)
}

async fn style_sheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", DASHBOARD_CSS, None)
}

async fn favicon() -> impl IntoResponse {
    asset("image/svg+xml", FAVICON_SVG, None)
}

/// Builds the response for a static asset, with headers that make the browser revalidate
/// it after an upgrade of the binary and keep it from guessing another content type.
fn asset(
    content_type: &'static str,
    body: &'static str,
    policy: Option<&'static str>,
) -> impl IntoResponse {
    let mut headers = vec![
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if let Some(policy) = policy {
        headers.push((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        ));
    }
    (HeaderMap::from_iter(headers), body)
}
