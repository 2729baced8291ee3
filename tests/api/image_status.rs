//! The image status endpoint: every request problem and the hand-off to the status source.

use imgstat::server::image_status::{Status, StatusReply};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{CapturedLogs, RecordedRequest, TestServer, USER_PASSWORD};

const CONTAINER_ID: &str = "3f4e8a1b2c9d";

fn status_path(environment_id: impl std::fmt::Display, container_id: &str) -> String {
    format!("/api/docker/{environment_id}/containers/{container_id}/image_status")
}

#[tokio::test]
async fn status_comes_from_source() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    server.source.reply_with(StatusReply::new(Status::Outdated));

    let response = server
        .get(&status_path(environment_id, CONTAINER_ID))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"Status": "outdated"}));
    assert_eq!(
        server.source.requests(),
        [RecordedRequest {
            environment_id,
            node_name: None,
            container_id: CONTAINER_ID.to_owned(),
            force: false,
        }]
    );
}

#[tokio::test]
async fn every_status_value_is_sent() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    let cases = [
        (Status::Outdated, "outdated"),
        (Status::Updated, "updated"),
        (Status::Skipped, "skipped"),
        (Status::Processing, "processing"),
        (Status::Preparing, "preparing"),
        (Status::Error, "error"),
    ];

    for (status, expected) in cases {
        server.source.reply_with(StatusReply::new(status));
        let response = server
            .get(&status_path(environment_id, CONTAINER_ID))
            .bearer_auth(&admin_jwt)
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["Status"], expected);
    }
}

#[tokio::test]
async fn message_from_source_is_sent() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    server.source.reply_with(StatusReply {
        message: Some("the reference is pinned by digest".to_owned()),
        ..StatusReply::new(Status::Skipped)
    });

    let response = server
        .get(&status_path(environment_id, CONTAINER_ID))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"Status": "skipped", "Message": "the reference is pinned by digest"})
    );
}

#[tokio::test]
async fn node_name_and_force_reach_source() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "swarm").await;

    let response = server
        .get(&status_path(environment_id, "web-1"))
        .query(&[("nodeName", "worker-2"), ("force", "true")])
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        server.source.requests(),
        [RecordedRequest {
            environment_id,
            node_name: Some("worker-2".to_owned()),
            container_id: "web-1".to_owned(),
            force: true,
        }]
    );
}

#[tokio::test]
async fn empty_node_name_means_none() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;

    server
        .get(&status_path(environment_id, CONTAINER_ID))
        .query(&[("nodeName", "")])
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(server.source.requests()[0].node_name, None);
}

#[tokio::test]
async fn source_failure_is_error_with_generic_message() {
    let logs = CapturedLogs::start();
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    let cause = "registry registry.example:5000 answered 401 for library/app:1.2";
    server.source.fail_with(cause);

    let response = server
        .get(&status_path(environment_id, CONTAINER_ID))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Status"], "error");
    assert_eq!(body["Message"], "unable to determine image status");
    let text = logs.text();
    assert!(text.contains(cause), "the cause is not logged:\n{text}");
    assert!(
        text.contains(&format!("environment_id={environment_id}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("container_id={CONTAINER_ID}")),
        "{text}"
    );
}

#[tokio::test]
async fn request_without_credentials_is_unauthorized() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;

    let response = server
        .get(&status_path(environment_id, CONTAINER_ID))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(server.source.requests().is_empty());
}

#[tokio::test]
async fn invalid_container_id_is_bad_request() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;

    for container_id in ["_x", "%2E%2E%2Fetc", "a%20b", "-rm", "caf%C3%A9"] {
        let response = server
            .get(&status_path(environment_id, container_id))
            .bearer_auth(&admin_jwt)
            .send()
            .await
            .unwrap();

        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "container id {container_id}"
        );
    }
    assert!(server.source.requests().is_empty());
}

#[tokio::test]
async fn missing_container_id_is_bad_request() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;

    let response = server
        .get(&status_path(environment_id, ""))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn invalid_force_value_is_bad_request() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;

    let response = server
        .get(&status_path(environment_id, CONTAINER_ID))
        .query(&[("force", "maybe")])
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_environment_is_not_found() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;

    let response = server
        .get(&status_path(999, CONTAINER_ID))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn non_numeric_environment_id_is_bad_request() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;

    let response = server
        .get(&status_path("local", CONTAINER_ID))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn user_without_grant_is_forbidden() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let alice_id = server.create_user(&admin_jwt, "alice").await;
    server.create_user(&admin_jwt, "bob").await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    server.grant(&admin_jwt, environment_id, &[alice_id]).await;
    let alice_jwt = server.login("alice", USER_PASSWORD).await;
    let bob_jwt = server.login("bob", USER_PASSWORD).await;

    let bob = server
        .get(&status_path(environment_id, CONTAINER_ID))
        .bearer_auth(&bob_jwt)
        .send()
        .await
        .unwrap();
    let alice = server
        .get(&status_path(environment_id, CONTAINER_ID))
        .bearer_auth(&alice_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(bob.status(), StatusCode::FORBIDDEN);
    assert_eq!(alice.status(), StatusCode::OK);
    assert_eq!(server.source.requests().len(), 1);
}

#[tokio::test]
async fn api_key_reaches_granted_environment() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let alice_id = server.create_user(&admin_jwt, "alice").await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    server.grant(&admin_jwt, environment_id, &[alice_id]).await;
    let raw_key = server.create_api_key(&admin_jwt, alice_id).await;

    let response = server
        .get(&status_path(environment_id, CONTAINER_ID))
        .header("x-api-key", &raw_key)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn force_accepts_go_boolean_forms() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;

    let cases = [
        ("1", true),
        ("t", true),
        ("TRUE", true),
        ("True", true),
        ("0", false),
        ("F", false),
        ("false", false),
        ("", false),
    ];
    for (value, _) in cases {
        let response = server
            .get(&status_path(environment_id, CONTAINER_ID))
            .query(&[("force", value)])
            .bearer_auth(&admin_jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "force={value}");
    }
    let forced: Vec<bool> = server.source.requests().iter().map(|r| r.force).collect();
    let expected: Vec<bool> = cases.iter().map(|(_, force)| *force).collect();
    assert_eq!(forced, expected);
}
