//! The container listing: what the source lists, and the access rules it shares with the
//! status endpoint.

use imgstat::server::containers::ListedContainer;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{CapturedLogs, TestServer, USER_PASSWORD, message_of};

fn containers_path(environment_id: impl std::fmt::Display) -> String {
    format!("/api/docker/{environment_id}/containers")
}

fn container(id: &str, name: &str, image: &str, state: &str) -> ListedContainer {
    ListedContainer {
        id: id.to_owned(),
        name: name.to_owned(),
        image: image.to_owned(),
        state: state.to_owned(),
        node: None,
    }
}

#[tokio::test]
async fn listing_returns_source_containers() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    server.source.list_with(vec![
        container("a1", "api", "registry.example/api:2", "running"),
        container("b2", "worker", "registry.example/worker:1", "exited"),
    ]);

    let response = server
        .get(&containers_path(environment_id))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!([
            {
                "Id": "a1",
                "Name": "api",
                "Image": "registry.example/api:2",
                "State": "running",
                "Node": null,
            },
            {
                "Id": "b2",
                "Name": "worker",
                "Image": "registry.example/worker:1",
                "State": "exited",
                "Node": null,
            },
        ])
    );
    assert_eq!(server.source.listed_environments(), [environment_id]);
    assert!(
        server.source.requests().is_empty(),
        "a listing must not check statuses"
    );
}

#[tokio::test]
async fn listing_without_credentials_is_unauthorized() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;

    let response = server
        .get(&containers_path(environment_id))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(server.source.listed_environments().is_empty());
}

#[tokio::test]
async fn listing_of_unknown_environment_is_not_found() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;

    let response = server
        .get(&containers_path(42))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(message_of(response).await, "environment 42 not found");
}

#[tokio::test]
async fn listing_with_invalid_environment_id_is_bad_request() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;

    let response = server
        .get(&containers_path("local"))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn user_without_grant_sees_no_environment_or_containers() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let shared = server.create_environment(&admin_jwt, "shared").await;
    let private = server.create_environment(&admin_jwt, "private").await;
    let user_id = server.create_user(&admin_jwt, "viewer").await;
    server.grant(&admin_jwt, shared, &[user_id]).await;
    let user_jwt = server.login("viewer", USER_PASSWORD).await;
    server.source.list_with(vec![container(
        "a1",
        "api",
        "registry.example/api:2",
        "running",
    )]);

    assert_eq!(server.listed_environment_ids(&user_jwt).await, [shared]);

    let response = server
        .get(&containers_path(private))
        .bearer_auth(&user_jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        message_of(response).await,
        format!("no access to environment {private}")
    );

    let response = server
        .get(&containers_path(shared))
        .bearer_auth(&user_jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body[0]["Name"], "api");

    assert_eq!(
        server.source.listed_environments(),
        [shared],
        "the forbidden environment reached the source"
    );
}

#[tokio::test]
async fn listing_after_revoked_grant_is_forbidden() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    let user_id = server.create_user(&admin_jwt, "viewer").await;
    server.grant(&admin_jwt, environment_id, &[user_id]).await;
    let user_jwt = server.login("viewer", USER_PASSWORD).await;

    server.grant(&admin_jwt, environment_id, &[]).await;
    let response = server
        .get(&containers_path(environment_id))
        .bearer_auth(&user_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn listing_with_api_key_works() {
    let server = TestServer::start().await;
    let (admin_id, admin_jwt) = server.init_admin_with_id().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    let api_key = server.create_api_key(&admin_jwt, admin_id).await;

    let response = server
        .get(&containers_path(environment_id))
        .header("X-API-Key", api_key)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!([]));
}

#[tokio::test]
async fn listing_failure_is_bad_gateway_without_cause() {
    let logs = CapturedLogs::start();
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    let cause = "cannot connect to the engine at unix:///run/secret-engine.sock";
    server.source.fail_listing_with(cause);

    let response = server
        .get(&containers_path(environment_id))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let message = message_of(response).await;
    assert!(message.contains(&environment_id.to_string()), "{message}");
    assert!(!message.contains("secret-engine"), "{message}");
    let text = logs.text();
    assert!(text.contains(cause), "the cause is not logged:\n{text}");
}

#[tokio::test]
async fn listing_is_in_openapi_document() {
    let server = TestServer::start().await;

    let response = server.get("/api/openapi.json").send().await.unwrap();

    let document: Value = response.json().await.unwrap();
    let operation = &document["paths"]["/api/docker/{id}/containers"]["get"];
    assert!(
        operation.is_object(),
        "GET /api/docker/{{id}}/containers is missing"
    );
    for code in ["200", "401", "403", "404", "502"] {
        assert!(
            operation["responses"][code].is_object(),
            "response {code} is not documented"
        );
    }
}
