//! The detail fields of the status response: reference and time for every caller with
//! access, digests for admins only.

use std::time::{Duration, SystemTime};

use imgstat::server::image_status::{CheckDetail, Status, StatusReply};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{TestServer, USER_PASSWORD};

const CONTAINER_ID: &str = "3f4e8a1b2c9d";
const LOCAL_DIGEST: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const REMOTE_DIGEST: &str =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn outdated_reply() -> StatusReply {
    StatusReply {
        detail: CheckDetail {
            reference: Some("registry.example/team/api:2".to_owned()),
            // 2023-11-14T22:13:20Z
            checked_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            local_digests: vec![LOCAL_DIGEST.to_owned()],
            remote_digest: Some(REMOTE_DIGEST.to_owned()),
        },
        ..StatusReply::new(Status::Outdated)
    }
}

async fn status_body(server: &TestServer, environment_id: i64, jwt: &str) -> Value {
    let response = server
        .get(&format!(
            "/api/docker/{environment_id}/containers/{CONTAINER_ID}/image_status"
        ))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn admin_sees_digests_and_check_time() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    server.source.reply_with(outdated_reply());

    let body = status_body(&server, environment_id, &admin_jwt).await;

    assert_eq!(body["Status"], "outdated");
    assert_eq!(body["Reference"], "registry.example/team/api:2");
    assert_eq!(body["CheckedAt"], "2023-11-14T22:13:20Z");
    assert_eq!(body["LocalDigests"], serde_json::json!([LOCAL_DIGEST]));
    assert_eq!(body["RemoteDigest"], REMOTE_DIGEST);
}

#[tokio::test]
async fn standard_user_sees_no_digests() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    let user_id = server.create_user(&admin_jwt, "viewer").await;
    server.grant(&admin_jwt, environment_id, &[user_id]).await;
    let user_jwt = server.login("viewer", USER_PASSWORD).await;
    server.source.reply_with(outdated_reply());

    let body = status_body(&server, environment_id, &user_jwt).await;

    assert_eq!(body["Status"], "outdated");
    assert_eq!(body["Reference"], "registry.example/team/api:2");
    assert_eq!(body["CheckedAt"], "2023-11-14T22:13:20Z");
    assert!(body.get("LocalDigests").is_none(), "{body}");
    assert!(body.get("RemoteDigest").is_none(), "{body}");
    assert!(!body.to_string().contains("sha256:"), "{body}");
}

#[tokio::test]
async fn reply_without_detail_has_no_detail_fields() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    server
        .source
        .reply_with(StatusReply::new(Status::Processing));

    let body = status_body(&server, environment_id, &admin_jwt).await;

    assert_eq!(body, serde_json::json!({"Status": "processing"}));
}

#[tokio::test]
async fn error_has_no_reference_or_digests() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    let mut reply = outdated_reply();
    reply.status = Status::Error;
    reply.message = Some("unable to determine image status".to_owned());
    server.source.reply_with(reply);

    let body = status_body(&server, environment_id, &admin_jwt).await;

    assert_eq!(body["Status"], "error");
    assert_eq!(body["CheckedAt"], "2023-11-14T22:13:20Z");
    assert!(body.get("Reference").is_none(), "{body}");
    assert!(body.get("LocalDigests").is_none(), "{body}");
    assert!(body.get("RemoteDigest").is_none(), "{body}");
    assert!(!body.to_string().contains("registry.example"), "{body}");
}
