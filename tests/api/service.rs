//! Health check, metrics, the OpenAPI document, the API documentation page, unknown
//! routes, and the router driven in-process.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use imgstat::server::auth::jwt::JwtKeys;
use imgstat::server::credential_key::{CredentialKey, KeyBytes, KeyOrigin};
use imgstat::server::metrics::Metrics;
use imgstat::server::registry_directory::RegistryDirectory;
use imgstat::server::store::Store;
use imgstat::server::{AppState, app};
use reqwest::StatusCode;
use serde_json::Value;
use tower::ServiceExt;

use crate::common::{FakeStatusSource, TestServer};

#[tokio::test]
async fn healthz_is_ok() {
    let server = TestServer::start().await;

    let response = server.get("/healthz").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn metrics_record_request_latency() {
    let server = TestServer::start().await;
    server.get("/healthz").send().await.unwrap();
    server.get("/api/endpoints").send().await.unwrap();

    let response = server.get("/metrics").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    assert!(text.contains("# TYPE imgstat_http_request_duration_seconds histogram"));
    assert!(text.contains(
        r#"imgstat_http_request_duration_seconds_count{method="GET",path="/healthz",status="200"} 1"#
    ), "{text}");
    assert!(text.contains(
        r#"imgstat_http_request_duration_seconds_count{method="GET",path="/api/endpoints",status="401"} 1"#
    ), "{text}");
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let server = TestServer::start().await;

    let response = server.get("/api/openapi.json").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    let routes = [
        ("/api/users/admin/init", "post"),
        ("/api/users", "post"),
        ("/api/users/{id}/tokens", "post"),
        ("/api/auth", "post"),
        ("/api/endpoints", "post"),
        ("/api/endpoints", "get"),
        ("/api/endpoints/{id}", "delete"),
        ("/api/endpoints/{id}/access", "put"),
        ("/api/registries", "post"),
        ("/api/registries", "get"),
        ("/api/registries/{id}", "get"),
        ("/api/registries/{id}", "put"),
        ("/api/registries/{id}", "delete"),
        (
            "/api/docker/{id}/containers/{containerId}/image_status",
            "get",
        ),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ];
    for (path, method) in routes {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} is missing"
        );
    }
    let schemes = &document["components"]["securitySchemes"];
    assert!(schemes["jwt"].is_object());
    assert!(schemes["ApiKeyAuth"].is_object());
}

#[tokio::test]
async fn openapi_status_schema_lists_statuses() {
    let server = TestServer::start().await;

    let document: Value = server
        .get("/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let statuses = &document["components"]["schemas"]["ImageStatus"]["enum"];
    let expected = [
        "outdated",
        "updated",
        "skipped",
        "processing",
        "preparing",
        "error",
    ];
    assert_eq!(statuses, &serde_json::json!(expected));
}

#[tokio::test]
async fn docs_page_is_served() {
    let server = TestServer::start().await;

    let response = server.get("/api/docs/").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains("swagger-ui"), "{text}");
}

#[tokio::test]
async fn unknown_route_is_json_not_found() {
    let server = TestServer::start().await;

    let response = server.get("/api/nothing-here").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn app_serves_without_listener() {
    let store = Store::open_in_memory().await.unwrap();
    let jwt = JwtKeys::new(
        b"an in-memory test secret of 32 bytes",
        Duration::from_secs(60),
    )
    .unwrap();
    let key = CredentialKey::new(&KeyBytes::generate().unwrap(), KeyOrigin::Environment);
    let state = AppState::new(
        store,
        jwt,
        key,
        Arc::new(FakeStatusSource::default()),
        Arc::new(RegistryDirectory::new()),
        Metrics::new().unwrap(),
    );

    let response = app(state)
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();

    assert_eq!(response.status(), axum::http::StatusCode::OK);
}
