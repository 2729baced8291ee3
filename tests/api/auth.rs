//! Admin creation, login, JWTs, API keys and user creation.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use imgstat::server::auth::jwt::JwtKeys;
use imgstat::server::config::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{
    ADMIN_NAME, ADMIN_PASSWORD, CapturedLogs, TestServer, USER_PASSWORD, message_of,
};

#[tokio::test]
async fn admin_init_returns_admin() {
    let server = TestServer::start().await;

    let response = server
        .post("/api/users/admin/init")
        .json(&json!({"Username": ADMIN_NAME, "Password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body["Id"].as_i64().is_some());
    assert_eq!(body["Username"], ADMIN_NAME);
    assert_eq!(body["Role"], "admin");
    assert!(body.get("Password").is_none());
}

#[tokio::test]
async fn admin_init_twice_is_conflict() {
    let server = TestServer::start().await;
    server.init_admin().await;

    let response = server
        .post("/api/users/admin/init")
        .json(&json!({"Username": "second", "Password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn admin_init_rejects_short_password() {
    let server = TestServer::start().await;

    let response = server
        .post("/api/users/admin/init")
        .json(&json!({"Username": ADMIN_NAME, "Password": "short"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(message_of(response).await.contains("password"));
}

#[tokio::test]
async fn malformed_json_is_bad_request() {
    let server = TestServer::start().await;

    let response = server
        .post("/api/users/admin/init")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn login_with_wrong_password_is_unauthorized() {
    let server = TestServer::start().await;
    server.init_admin().await;

    let response = server
        .post("/api/auth")
        .json(&json!({"Username": ADMIN_NAME, "Password": "wrong-password"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_of_unknown_user_is_unauthorized() {
    let server = TestServer::start().await;
    server.init_admin().await;

    let response = server
        .post("/api/auth")
        .json(&json!({"Username": "nobody", "Password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn request_without_credentials_is_unauthorized() {
    let server = TestServer::start().await;

    let response = server.get("/api/endpoints").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn malformed_jwt_is_unauthorized() {
    let server = TestServer::start().await;
    server.init_admin().await;

    for value in [
        "Bearer not.a.jwt",
        "Bearer",
        "Basic YWRtaW46YWRtaW4=",
        "garbage",
    ] {
        let response = server
            .get("/api/endpoints")
            .header("authorization", value)
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value}");
    }
}

#[tokio::test]
async fn jwt_signed_with_other_key_is_unauthorized() {
    let server = TestServer::start().await;
    let (admin_id, _) = server.init_admin_with_id().await;
    let other_keys = JwtKeys::new(
        b"a different secret, at least 32 bytes",
        Duration::from_secs(60),
    )
    .unwrap();

    let response = server
        .get("/api/endpoints")
        .bearer_auth(other_keys.issue(admin_id).unwrap())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_jwt_is_unauthorized() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(data_dir.path());
    config.jwt_lifetime = Duration::ZERO;
    let server = TestServer::start_with(config, data_dir).await;
    let admin_jwt = server.init_admin().await;

    // The token expires at the second it was issued; one second later it is past.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = server
        .get("/api/endpoints")
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn jwt_secret_from_config_signs_tokens() {
    let secret = "a configured secret that is long enough";
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(data_dir.path());
    config.jwt_secret = Some(secret.parse().unwrap());
    let server = TestServer::start_with(config, data_dir).await;
    let (admin_id, _) = server.init_admin_with_id().await;
    let keys = JwtKeys::new(secret.as_bytes(), Duration::from_secs(60)).unwrap();

    let response = server
        .get("/api/endpoints")
        .bearer_auth(keys.issue(admin_id).unwrap())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert!(!server.data_path().join("jwt-signing.key").exists());
}

#[tokio::test]
async fn jwt_key_file_has_mode_0600() {
    let server = TestServer::start().await;

    let metadata = std::fs::metadata(server.data_path().join("jwt-signing.key")).unwrap();

    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    assert_eq!(metadata.len(), 64);
}

#[tokio::test]
async fn api_key_authenticates_its_user() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let user_id = server.create_user(&admin_jwt, "alice").await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    server.grant(&admin_jwt, environment_id, &[user_id]).await;
    let user_jwt = server.login("alice", USER_PASSWORD).await;

    let response = server
        .post(&format!("/api/users/{user_id}/tokens"))
        .bearer_auth(&user_jwt)
        .json(&json!({"Description": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body["Id"].as_i64().is_some());
    let raw_key = body["RawAPIKey"].as_str().unwrap().to_owned();

    let response = server
        .get("/api/endpoints")
        .header("x-api-key", &raw_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let listed: Vec<Value> = response.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["Id"], environment_id);

    // The key acts as alice, a standard user, so admin routes stay closed.
    let response = server
        .post("/api/endpoints")
        .header("x-api-key", &raw_key)
        .json(&json!({"Name": "other", "URL": "unix:///run/docker.sock"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unknown_api_key_is_unauthorized() {
    let server = TestServer::start().await;
    server.init_admin().await;

    let response = server
        .get("/api/endpoints")
        .header("x-api-key", "imgstat_not-a-key")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_key_for_other_user_needs_admin() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let alice_id = server.create_user(&admin_jwt, "alice").await;
    let bob_id = server.create_user(&admin_jwt, "bob").await;
    let alice_jwt = server.login("alice", USER_PASSWORD).await;

    let response = server
        .post(&format!("/api/users/{bob_id}/tokens"))
        .bearer_auth(&alice_jwt)
        .json(&json!({"Description": "not mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let raw_key = server.create_api_key(&admin_jwt, alice_id).await;
    let response = server
        .get("/api/endpoints")
        .header("x-api-key", &raw_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn api_key_for_unknown_user_is_not_found() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;

    let response = server
        .post("/api/users/999/tokens")
        .bearer_auth(&admin_jwt)
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn create_user_needs_admin() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    server.create_user(&admin_jwt, "alice").await;
    let alice_jwt = server.login("alice", USER_PASSWORD).await;
    let body = json!({"Username": "mallory", "Password": USER_PASSWORD, "Role": "admin"});

    let anonymous = server.post("/api/users").json(&body).send().await.unwrap();
    let as_user = server
        .post("/api/users")
        .bearer_auth(&alice_jwt)
        .json(&body)
        .send()
        .await
        .unwrap();

    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(as_user.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn create_user_with_taken_name_is_conflict() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    server.create_user(&admin_jwt, "alice").await;

    let response = server
        .post("/api/users")
        .bearer_auth(&admin_jwt)
        .json(&json!({"Username": "alice", "Password": USER_PASSWORD, "Role": "user"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn create_user_rejects_unknown_role() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;

    let response = server
        .post("/api/users")
        .bearer_auth(&admin_jwt)
        .json(&json!({"Username": "alice", "Password": USER_PASSWORD, "Role": "root"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn credentials_never_reach_the_log() {
    let logs = CapturedLogs::start();
    let server = TestServer::start().await;
    let (admin_id, admin_jwt) = server.init_admin_with_id().await;
    let raw_key = server.create_api_key(&admin_jwt, admin_id).await;

    server
        .get("/api/endpoints")
        .header("x-api-key", &raw_key)
        .send()
        .await
        .unwrap();
    server
        .get("/api/endpoints")
        .header("x-api-key", "imgstat_unknown-key-value")
        .send()
        .await
        .unwrap();
    server
        .get("/api/endpoints")
        .bearer_auth("bad.jwt.value")
        .send()
        .await
        .unwrap();

    let text = logs.text();
    assert!(
        text.contains("/api/endpoints"),
        "no request was logged:\n{text}"
    );
    for secret in [
        admin_jwt.as_str(),
        raw_key.as_str(),
        ADMIN_PASSWORD,
        "imgstat_unknown-key-value",
        "bad.jwt.value",
    ] {
        assert!(
            !text.contains(secret),
            "the log contains {secret:?}:\n{text}"
        );
    }
}
