//! A restart on the same data directory keeps users, keys, environments, grants and the
//! JWT signing key, in files only their owner can read.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use imgstat::server::config::ServerConfig;

use reqwest::StatusCode;

use crate::common::{ADMIN_NAME, ADMIN_PASSWORD, TestServer, USER_PASSWORD};

#[tokio::test]
async fn restart_keeps_state_and_tokens() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let alice_id = server.create_user(&admin_jwt, "alice").await;
    server.create_user(&admin_jwt, "bob").await;
    let granted = server.create_environment(&admin_jwt, "granted").await;
    let other = server.create_environment(&admin_jwt, "other").await;
    server.grant(&admin_jwt, granted, &[alice_id]).await;
    let alice_jwt = server.login("alice", USER_PASSWORD).await;
    let alice_key = server.create_api_key(&alice_jwt, alice_id).await;

    let server = server.restart().await;

    // Tokens issued before the restart still authenticate.
    assert_eq!(
        server.listed_environment_ids(&admin_jwt).await,
        [granted, other]
    );
    assert_eq!(server.listed_environment_ids(&alice_jwt).await, [granted]);
    let response = server
        .get("/api/endpoints")
        .header("x-api-key", &alice_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Passwords still verify, and the grant still gates the status endpoint.
    server.login(ADMIN_NAME, ADMIN_PASSWORD).await;
    let bob_jwt = server.login("bob", USER_PASSWORD).await;
    let path = format!("/api/docker/{granted}/containers/web/image_status");
    let alice = server
        .get(&path)
        .bearer_auth(&alice_jwt)
        .send()
        .await
        .unwrap();
    let bob = server
        .get(&path)
        .bearer_auth(&bob_jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(alice.status(), StatusCode::OK);
    assert_eq!(bob.status(), StatusCode::FORBIDDEN);

    // The admin exists, so a second init still fails.
    let response = server
        .post("/api/users/admin/init")
        .json(&serde_json::json!({"Username": "again", "Password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn restart_keeps_signing_key_file() {
    let server = TestServer::start().await;
    let key_path = server.data_path().join("jwt-signing.key");
    let before = std::fs::read(&key_path).unwrap();

    let server = server.restart().await;

    assert_eq!(std::fs::read(&key_path).unwrap(), before);
    drop(server);
}

#[tokio::test]
async fn data_files_are_owner_only() {
    let temp_dir = tempfile::tempdir().unwrap();
    let data_dir = temp_dir.path().join("nested").join("data");
    let config = ServerConfig::new(&data_dir);
    let server = TestServer::start_with(config, temp_dir).await;
    server.init_admin().await;

    let mode_of = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode_of(&data_dir), 0o700);
    for file in [
        "imgstat.db",
        "imgstat.db-wal",
        "imgstat.db-shm",
        "jwt-signing.key",
    ] {
        assert_eq!(mode_of(&data_dir.join(file)), 0o600, "{file}");
    }
}
