//! The dashboard's page and assets, served from the binary.

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};

use crate::common::TestServer;

#[tokio::test]
async fn page_is_served_at_root() {
    let server = TestServer::start().await;

    let response = server.get("/").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[CACHE_CONTROL], "no-cache");
    let policy = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let page = response.text().await.unwrap();
    assert!(
        page.contains(r#"<script src="/assets/dashboard.js""#),
        "{page}"
    );
    assert!(page.contains(r#"href="/assets/dashboard.css""#), "{page}");
}

#[tokio::test]
async fn assets_have_their_content_types() {
    let server = TestServer::start().await;
    let cases = [
        ("/assets/dashboard.js", "text/javascript; charset=utf-8"),
        ("/assets/dashboard.css", "text/css; charset=utf-8"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ];

    for (path, content_type) in cases {
        let response = server.get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[CONTENT_TYPE], content_type, "{path}");
        assert!(!response.text().await.unwrap().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn page_and_assets_name_no_other_origin() {
    let server = TestServer::start().await;

    for path in [
        "/",
        "/assets/dashboard.js",
        "/assets/dashboard.css",
        "/assets/favicon.svg",
    ] {
        let text = server.get(path).send().await.unwrap().text().await.unwrap();
        for line in text.lines() {
            // The SVG namespace is an identifier, never fetched.
            let line = line.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !line.contains("http://") && !line.contains("https://") && !line.contains("//cdn"),
                "{path} names another origin: {line}"
            );
        }
    }
}

#[tokio::test]
async fn unknown_asset_is_not_found() {
    let server = TestServer::start().await;

    let response = server.get("/assets/missing.js").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
