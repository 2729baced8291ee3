//! Helpers shared by the test kit's own integration tests.
#![allow(dead_code)]

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use imgstat_testkit::{Credentials, MANIFEST_ACCEPT};
use reqwest::{Client, Response};
use serde_json::Value;

pub const DOCKER_V2_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Returns an HTTP client that ignores proxy settings from the environment.
pub fn client() -> Client {
    Client::builder()
        .no_proxy()
        .build()
        .expect("failed to build an HTTP client")
}

pub fn basic(credentials: &Credentials) -> String {
    format!("Basic {}", credentials.basic())
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Sends `HEAD /v2/REPOSITORY/manifests/REFERENCE` to `base_url` with the full
/// manifest `Accept` list.
pub async fn head_manifest(
    client: &Client,
    base_url: &str,
    repository: &str,
    reference: &str,
    authorization: Option<&str>,
) -> Response {
    let url = format!("{base_url}/v2/{repository}/manifests/{reference}");
    let mut request = client.head(&url).header("Accept", MANIFEST_ACCEPT);
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    request
        .send()
        .await
        .unwrap_or_else(|error| panic!("HEAD {url} failed: {error}"))
}

/// Requests a token from `realm` for `scopes`, as one request with one `scope`
/// parameter per scope.
pub async fn request_token(
    client: &Client,
    realm: &str,
    scopes: &[&str],
    credentials: Option<&Credentials>,
) -> Response {
    let mut query: Vec<(&str, &str)> = vec![("service", "imgstat-testkit-registry")];
    query.extend(scopes.iter().map(|scope| ("scope", *scope)));
    let mut request = client.get(realm).query(&query);
    if let Some(credentials) = credentials {
        request = request.header("Authorization", basic(credentials));
    }
    request
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {realm} failed: {error}"))
}

/// Requests a token and returns it, panicking unless the status is 200.
pub async fn token(
    client: &Client,
    realm: &str,
    scopes: &[&str],
    credentials: Option<&Credentials>,
) -> String {
    let response = request_token(client, realm, scopes, credentials).await;
    assert_eq!(response.status(), 200, "token request for {scopes:?}");
    let body: Value = response.json().await.expect("token response is JSON");
    body["token"]
        .as_str()
        .expect("token response has a token")
        .to_owned()
}

/// Returns the decoded header and claims of a JWT, without checking its signature.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = || {
        let part = parts.next().expect("a JWT has three parts");
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .expect("JWT parts are base64url");
        serde_json::from_slice::<Value>(&bytes).expect("JWT parts are JSON")
    };
    (decode(), decode())
}

pub fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// Runs `docker inspect --format FORMAT ID` and returns the trimmed output, or `None`
/// when the object does not exist.
pub fn docker_inspect(id: &str, format: &str) -> Option<String> {
    let output = Command::new("docker")
        .args(["inspect", "--format", format, id])
        .output()
        .expect("failed to run docker inspect");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

pub fn base64_decode(text: &str) -> Vec<u8> {
    STANDARD.decode(text).expect("valid base64")
}
