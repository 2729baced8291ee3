//! The token server grants each requested scope as far as the policy allows, signs
//! tokens the registry accepts, and records what it served.

mod common;

use std::time::Duration;

use common::{client, jwt_parts, request_token, token};
use imgstat_testkit::{Credentials, TestImage, TokenPolicy, TokenServer};
use serde_json::{Value, json};

fn alice() -> Credentials {
    Credentials::new("alice", "alice-password")
}

fn policy() -> TokenPolicy {
    TokenPolicy::new()
        .user(&alice())
        .pull("alice", "team/*")
        .pull("alice", "tools/build")
        .anonymous_pull("public/app")
}

fn access(token: &str) -> Value {
    let (_, claims) = jwt_parts(token);
    claims["access"].clone()
}

#[tokio::test]
async fn token_grants_each_allowed_scope() {
    let server = TokenServer::start(policy());
    let scopes = [
        "repository:team/web:pull",
        "repository:tools/build:pull,push",
        "repository:tools/other:pull",
    ];

    let token = token(&client(), &server.realm(), &scopes, Some(&alice())).await;

    let expected = json!([
        {"type": "repository", "name": "team/web", "actions": ["pull"]},
        {"type": "repository", "name": "tools/build", "actions": ["pull"]},
    ]);
    assert_eq!(access(&token), expected);
}

#[tokio::test]
async fn token_claims_and_header_match_registry_config() {
    let server = TokenServer::start(policy());

    let token = token(
        &client(),
        &server.realm(),
        &["repository:team/web:pull"],
        Some(&alice()),
    )
    .await;

    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], server.key_id());
    assert_eq!(claims["iss"], server.issuer());
    assert_eq!(claims["aud"], server.service());
    assert_eq!(claims["sub"], "alice");
    let issued = claims["iat"].as_u64().expect("iat is a number");
    let expires = claims["exp"].as_u64().expect("exp is a number");
    assert_eq!(expires - issued, 300);
}

#[tokio::test]
async fn key_id_is_libtrust_form() {
    let server = TokenServer::start(TokenPolicy::new());

    let groups: Vec<&str> = server.key_id().split(':').collect();

    assert_eq!(groups.len(), 12);
    for group in groups {
        assert_eq!(group.len(), 4, "{}", server.key_id());
        assert!(
            group
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
    }
}

#[tokio::test]
async fn token_response_has_docker_fields() {
    let server = TokenServer::start(policy().expires_in(Duration::from_secs(90)));

    let response = request_token(
        &client(),
        &server.realm(),
        &["repository:team/web:pull"],
        Some(&alice()),
    )
    .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    assert!(body["token"].is_string());
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["expires_in"], 90);
    let issued_at = body["issued_at"].as_str().unwrap_or_default();
    assert!(
        issued_at.ends_with('Z') && issued_at.contains('T'),
        "{issued_at}"
    );
}

#[tokio::test]
async fn anonymous_request_gets_public_pull_only() {
    let server = TokenServer::start(policy());
    let scopes = [
        "repository:public/app:pull,push",
        "repository:team/web:pull",
    ];

    let token = token(&client(), &server.realm(), &scopes, None).await;

    let expected = json!([{"type": "repository", "name": "public/app", "actions": ["pull"]}]);
    assert_eq!(access(&token), expected);
    assert_eq!(server.requests()[0].account, None);
}

#[tokio::test]
async fn wrong_password_gets_401() {
    let server = TokenServer::start(policy());
    let wrong = Credentials::new("alice", "wrong");

    let response = request_token(
        &client(),
        &server.realm(),
        &["repository:team/web:pull"],
        Some(&wrong),
    )
    .await;

    assert_eq!(response.status(), 401);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].status, 401);
    assert!(requests[0].granted.is_empty());
}

#[tokio::test]
async fn space_separated_scopes_are_split() {
    let server = TokenServer::start(policy());
    let joined = "repository:team/web:pull repository:team/api:pull";

    let token = token(&client(), &server.realm(), &[joined], Some(&alice())).await;

    assert_eq!(access(&token).as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn password_grant_by_post() {
    let server = TokenServer::start(policy());
    let form = [
        ("grant_type", "password"),
        ("service", "imgstat-testkit-registry"),
        ("username", "alice"),
        ("password", "alice-password"),
        ("scope", "repository:team/web:pull"),
    ];
    let body: String = form
        .iter()
        .map(|(key, value)| format!("{key}={}", value.replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&");

    let response = client()
        .post(server.realm())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST token");

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON body");
    let token = body["access_token"].as_str().expect("access_token");
    assert_eq!(access(token)[0]["name"], "team/web");
    assert_eq!(server.requests()[0].account.as_deref(), Some("alice"));
}

#[tokio::test]
async fn requests_are_counted_and_reset() {
    let server = TokenServer::start(policy());
    let client = client();
    let realm = server.realm();

    token(
        &client,
        &realm,
        &["repository:team/web:pull"],
        Some(&alice()),
    )
    .await;
    token(
        &client,
        &realm,
        &["repository:team/a:pull", "repository:other/b:pull"],
        Some(&alice()),
    )
    .await;

    assert_eq!(server.request_count(), 2);
    let requests = server.requests();
    assert_eq!(requests[0].scopes, ["repository:team/web:pull"]);
    assert_eq!(
        requests[1].scopes,
        ["repository:team/a:pull", "repository:other/b:pull"]
    );
    assert_eq!(requests[1].granted, ["repository:team/a:pull"]);
    assert_eq!(requests[1].account.as_deref(), Some("alice"));

    server.reset_counters();

    assert_eq!(server.request_count(), 0);
}

#[test]
fn granted_push_lets_user_docker_push() {
    let registry = imgstat_testkit::Registry::with_token_auth(policy());
    let server = registry.token_server().expect("token server");
    server.grant_push("alice", "team/web");
    server.reset_counters();

    let image = TestImage::build_and_push(registry.host(), "team/web", "1.0", Some(&alice()));

    assert!(image.digest().starts_with("sha256:"));
    let push_request = server
        .requests()
        .into_iter()
        .find(|request| !request.scopes.is_empty())
        .expect("docker push requested a scope");
    assert_eq!(push_request.account.as_deref(), Some("alice"));
    assert_eq!(push_request.granted, ["repository:team/web:push,pull"]);
}

#[test]
#[should_panic(expected = "docker")]
fn push_without_push_right_fails() {
    let registry = imgstat_testkit::Registry::with_token_auth(policy());

    TestImage::build_and_push(registry.host(), "team/web", "1.0", Some(&alice()));
}
