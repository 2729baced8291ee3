//! Stored registries through the API: validation, admin-only access, a write-only
//! password that no response, log line or database file contains, the credential key
//! check at start, and key rotation.

use std::path::Path;
use std::process::Command;

use imgstat::server::config::ServerConfig;
use imgstat::server::credential_key::KeyBytes;
use imgstat::server::metrics::Metrics;
use imgstat::server::registry_directory::RegistryDirectory;
use imgstat::server::{NewKeyLocation, RotateArgs, open_state, rotate_credential_key};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{CapturedLogs, FakeStatusSource, TestServer, USER_PASSWORD, message_of};

/// A password that occurs nowhere else, so finding it anywhere is a leak.
const PASSWORD: &str = "Zq7-registry-password-never-shown";

/// Creates a registry as the admin and returns the response status and body text.
async fn create(server: &TestServer, jwt: &str, body: Value) -> (StatusCode, String) {
    let response = server
        .post("/api/registries")
        .bearer_auth(jwt)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

fn team_registry() -> Value {
    json!({
        "Name": "team",
        "URL": "https://Registry.Example.com:5000/team/",
        "Username": "alice",
        "Password": PASSWORD,
    })
}

/// Generates a self-signed certificate with openssl and returns its PEM text.
fn self_signed_cert(dir: &Path) -> String {
    let cert = dir.join("ca.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=imgstat test CA"])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("failed to run openssl");
    assert!(status.status.success(), "{status:?}");
    std::fs::read_to_string(cert).unwrap()
}

#[tokio::test]
async fn create_returns_registry_without_password() {
    let server = TestServer::start().await;
    let jwt = server.init_admin().await;

    let (status, text) = create(&server, &jwt, team_registry()).await;

    assert_eq!(status, StatusCode::OK, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["Id"].as_i64().is_some());
    assert_eq!(body["Name"], "team");
    assert_eq!(body["URL"], "registry.example.com:5000/team");
    assert_eq!(body["Username"], "alice");
    assert_eq!(body["Insecure"], false);
    assert!(body["CACert"].is_null());
    assert!(body.get("Password").is_none(), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn get_list_update_delete_round_trip() {
    let server = TestServer::start().await;
    let jwt = server.init_admin().await;
    let (_, text) = create(&server, &jwt, team_registry()).await;
    let id = serde_json::from_str::<Value>(&text).unwrap()["Id"]
        .as_i64()
        .unwrap();
    let ca = self_signed_cert(server.data_path());

    let one = server
        .get(&format!("/api/registries/{id}"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    let one = one.text().await.unwrap();
    assert!(!one.contains(PASSWORD), "{one}");

    // Without Password, the stored password stays while host and username stay.
    let response = server
        .put(&format!("/api/registries/{id}"))
        .bearer_auth(&jwt)
        .json(&json!({
            "Name": "team-renamed",
            "URL": "registry.example.com:5000/team/app",
            "Username": "alice",
            "Insecure": true,
            "CACert": ca,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["Name"], "team-renamed");
    assert_eq!(updated["URL"], "registry.example.com:5000/team/app");
    assert_eq!(updated["Username"], "alice");
    assert_eq!(updated["Insecure"], true);
    assert_eq!(updated["CACert"], ca.as_str());

    let list = server
        .get("/api/registries")
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let list: Vec<Value> = list.json().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["Name"], "team-renamed");

    let deleted = server
        .delete(&format!("/api/registries/{id}"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = server
        .get(&format!("/api/registries/{id}"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let again = server
        .delete(&format!("/api/registries/{id}"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn update_needs_password_for_new_host() {
    let server = TestServer::start().await;
    let jwt = server.init_admin().await;
    let (_, text) = create(&server, &jwt, team_registry()).await;
    let id = serde_json::from_str::<Value>(&text).unwrap()["Id"]
        .as_i64()
        .unwrap();

    let cases = [
        json!({"Name": "team", "URL": "other.example.com/team", "Username": "alice"}),
        json!({"Name": "team", "URL": "registry.example.com:5000/team", "Username": "bob"}),
    ];
    for body in cases {
        let response = server
            .put(&format!("/api/registries/{id}"))
            .bearer_auth(&jwt)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let message = message_of(response).await;
        assert!(message.contains("Password is required"), "{message}");
    }

    // With a new password the host may change; without a username the credentials go.
    let moved = json!({"Name": "team", "URL": "other.example.com", "Username": "alice", "Password": "new-password"});
    let response = server
        .put(&format!("/api/registries/{id}"))
        .bearer_auth(&jwt)
        .json(&moved)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let anonymous = json!({"Name": "team", "URL": "other.example.com"});
    let response = server
        .put(&format!("/api/registries/{id}"))
        .bearer_auth(&jwt)
        .json(&anonymous)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body["Username"].is_null(), "{body}");
}

#[tokio::test]
async fn invalid_input_is_400_naming_value() {
    let server = TestServer::start().await;
    let jwt = server.init_admin().await;

    let cases = [
        (
            json!({"Name": "a", "URL": "ftp://registry.example.com"}),
            "\"ftp://registry.example.com\"",
        ),
        (
            json!({"Name": "a", "URL": "registry.example.com/Team"}),
            "\"registry.example.com/Team\"",
        ),
        (
            json!({"Name": "a", "URL": "registry.example.com:70000"}),
            "\"registry.example.com:70000\"",
        ),
        (
            json!({"Name": "a", "URL": "http://registry.example.com"}),
            "needs \"Insecure\": true",
        ),
        (
            json!({"Name": "", "URL": "registry.example.com"}),
            "invalid Name",
        ),
        (
            json!({"Name": "a", "URL": "registry.example.com", "Username": "alice"}),
            "Password is required",
        ),
        (
            json!({"Name": "a", "URL": "registry.example.com", "Password": PASSWORD}),
            "Username is required",
        ),
        (
            json!({"Name": "a", "URL": "registry.example.com", "Username": "a:b", "Password": PASSWORD}),
            "invalid Username \"a:b\"",
        ),
        (
            json!({"Name": "a", "URL": "registry.example.com", "Username": "alice", "Password": 12345}),
            "invalid Password",
        ),
        (
            json!({"Name": "a", "URL": "registry.example.com", "CACert": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"}),
            "invalid CACert",
        ),
        (
            json!({"Name": "a", "URL": "registry.example.com", "Insecure": "yes"}),
            "Insecure",
        ),
    ];
    for (body, expected) in cases {
        let (status, text) = create(&server, &jwt, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {text}");
        let message: Value = serde_json::from_str(&text).unwrap();
        let message = message["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
        assert!(!text.contains(PASSWORD), "{text}");
    }
}

#[tokio::test]
async fn duplicates_are_409() {
    let server = TestServer::start().await;
    let jwt = server.init_admin().await;
    create(&server, &jwt, team_registry()).await;

    let same_name = json!({"Name": "team", "URL": "other.example.com"});
    let same_location = json!({"Name": "other", "URL": "registry.example.com:5000/team"});
    for body in [same_name, same_location] {
        let (status, text) = create(&server, &jwt, body.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}: {text}");
    }

    // Another prefix on the same host is another entry.
    let other_prefix = json!({"Name": "other", "URL": "registry.example.com:5000/ops"});
    let (status, text) = create(&server, &jwt, other_prefix).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[tokio::test]
async fn registries_are_admin_only() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    server.create_user(&admin_jwt, "alice").await;
    let user_jwt = server.login("alice", USER_PASSWORD).await;

    let requests = [
        server.post("/api/registries").json(&team_registry()),
        server.get("/api/registries"),
        server.get("/api/registries/1"),
        server.put("/api/registries/1").json(&team_registry()),
        server.delete("/api/registries/1"),
    ];
    for request in requests {
        let request = request.try_clone().unwrap();
        let anonymous = request.try_clone().unwrap().send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        let as_user = request.bearer_auth(&user_jwt).send().await.unwrap();
        assert_eq!(as_user.status(), StatusCode::FORBIDDEN);
    }
}

/// Returns whether `needle` occurs in any of the database files of `data_dir`.
fn database_files_contain(data_dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for name in ["imgstat.db", "imgstat.db-wal", "imgstat.db-shm"] {
        let Ok(bytes) = std::fs::read(data_dir.join(name)) else {
            continue;
        };
        if bytes.windows(needle.len()).any(|window| window == needle) {
            found.push(name.to_owned());
        }
    }
    found
}

#[tokio::test]
async fn password_is_in_no_file_response_or_log() {
    let logs = CapturedLogs::start();
    let server = TestServer::start().await;
    let jwt = server.init_admin().await;

    let (status, created) = create(&server, &jwt, team_registry()).await;
    assert_eq!(status, StatusCode::OK);
    let listed = server
        .get("/api/registries")
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let update = json!({"Name": "team", "URL": "registry.example.com:5000/team", "Username": "alice", "Password": PASSWORD});
    let updated = server
        .put("/api/registries/1")
        .bearer_auth(&jwt)
        .json(&update)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    for text in [&created, &listed, &updated] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
    let log = logs.text();
    assert!(log.contains("registry saved"), "{log}");
    assert!(log.contains("created"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    let leaks = database_files_contain(server.data_path(), PASSWORD.as_bytes());
    assert!(leaks.is_empty(), "the password is in {leaks:?}");
    let key_mode = {
        use std::os::unix::fs::PermissionsExt;
        let path = server.data_path().join("credential.key");
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(key_mode, 0o600);
}

/// Opens the state of `config` as a start would, and returns the error's full text.
async fn start_error(config: &ServerConfig) -> String {
    let result = open_state(
        config,
        Metrics::new().unwrap(),
        std::sync::Arc::new(FakeStatusSource::default()),
        std::sync::Arc::new(RegistryDirectory::new()),
    )
    .await;
    let Err(error) = result else {
        panic!("the server started");
    };
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn start_with_other_key_fails() {
    let server = TestServer::start().await;
    let jwt = server.init_admin().await;
    create(&server, &jwt, team_registry()).await;
    let data_dir = server.data_path().to_owned();
    let TestServer {
        server: running,
        data_dir: temp_dir,
        ..
    } = server;
    running.stop().await.unwrap();

    let mut config = ServerConfig::new(&data_dir);
    config.credential_key = Some(KeyBytes::generate().unwrap());
    let message = start_error(&config).await;
    assert!(message.contains("IMGSTAT_CREDENTIAL_KEY"), "{message}");
    assert!(message.contains("is not the key that sealed"), "{message}");

    let key_path = data_dir.join("credential.key");
    let original = std::fs::read(&key_path).unwrap();
    std::fs::write(&key_path, [9u8; 32]).unwrap();
    let message = start_error(&ServerConfig::new(&data_dir)).await;
    assert!(
        message.contains(&key_path.display().to_string()),
        "{message}"
    );
    assert!(message.contains("is not the key that sealed"), "{message}");

    std::fs::remove_file(&key_path).unwrap();
    let message = start_error(&ServerConfig::new(&data_dir)).await;
    assert!(message.contains("is missing"), "{message}");
    assert!(
        !key_path.exists(),
        "a new key file replaced the missing one"
    );

    std::fs::write(&key_path, &original).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let server = TestServer::start_with(ServerConfig::new(&data_dir), temp_dir).await;
    let jwt = server
        .login(crate::common::ADMIN_NAME, crate::common::ADMIN_PASSWORD)
        .await;
    let listed = server
        .get("/api/registries")
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
}

#[tokio::test]
async fn binary_reports_wrong_key_at_start() {
    let server = TestServer::start().await;
    let jwt = server.init_admin().await;
    create(&server, &jwt, team_registry()).await;
    let data_dir = server.data_path().to_owned();
    let TestServer {
        server: running,
        data_dir: _temp_dir,
        ..
    } = server;
    running.stop().await.unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_imgstat"))
        .arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .env(
            "IMGSTAT_CREDENTIAL_KEY",
            KeyBytes::generate().unwrap().to_base64(),
        )
        .env_remove("RUST_LOG")
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("IMGSTAT_CREDENTIAL_KEY"), "{stderr}");
    assert!(stderr.contains("is not the key that sealed"), "{stderr}");
}

#[tokio::test]
async fn rotation_replaces_key_file() {
    let server = TestServer::start().await;
    let jwt = server.init_admin().await;
    create(&server, &jwt, team_registry()).await;
    let ops = json!({"Name": "ops", "URL": "registry.example.com:5000/ops", "Username": "bob", "Password": "bob-password"});
    create(&server, &jwt, ops).await;
    let anonymous = json!({"Name": "public", "URL": "docker.io"});
    create(&server, &jwt, anonymous).await;
    let data_dir = server.data_path().to_owned();
    let key_path = data_dir.join("credential.key");
    let old_key = std::fs::read(&key_path).unwrap();

    let args = RotateArgs {
        data_dir: Some(data_dir.clone()),
        credential_key: None,
        new_credential_key: None,
    };
    let refused = rotate_credential_key(args.clone()).await.unwrap_err();
    assert!(
        refused.to_string().contains("a server is running"),
        "{refused}"
    );

    let TestServer {
        server: running,
        data_dir: temp_dir,
        ..
    } = server;
    running.stop().await.unwrap();
    let rotation = rotate_credential_key(args).await.unwrap();

    assert_eq!(rotation.resealed, 2);
    assert_eq!(rotation.new_key, NewKeyLocation::File(key_path.clone()));
    assert_ne!(std::fs::read(&key_path).unwrap(), old_key);
    assert!(!data_dir.join("credential.key.new").exists());
    let server = TestServer::start_with(ServerConfig::new(&data_dir), temp_dir).await;
    let jwt = server
        .login(crate::common::ADMIN_NAME, crate::common::ADMIN_PASSWORD)
        .await;
    let listed: Vec<Value> = server
        .get("/api/registries")
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
}

#[tokio::test]
async fn rotation_of_environment_key() {
    let temp_dir = tempfile::tempdir().unwrap();
    let old_key = KeyBytes::generate().unwrap();
    let mut config = ServerConfig::new(temp_dir.path());
    config.credential_key = Some(old_key.clone());
    let server = TestServer::start_with(config, temp_dir).await;
    let jwt = server.init_admin().await;
    create(&server, &jwt, team_registry()).await;
    let data_dir = server.data_path().to_owned();
    let TestServer {
        server: running,
        data_dir: temp_dir,
        ..
    } = server;
    running.stop().await.unwrap();

    let without_new = RotateArgs {
        data_dir: Some(data_dir.clone()),
        credential_key: Some(old_key.clone()),
        new_credential_key: None,
    };
    let error = rotate_credential_key(without_new).await.unwrap_err();
    assert!(
        error.to_string().contains("IMGSTAT_NEW_CREDENTIAL_KEY"),
        "{error}"
    );

    let new_key = KeyBytes::generate().unwrap();
    let rotation = rotate_credential_key(RotateArgs {
        data_dir: Some(data_dir.clone()),
        credential_key: Some(old_key.clone()),
        new_credential_key: Some(new_key.clone()),
    })
    .await
    .unwrap();
    assert_eq!(rotation.resealed, 1);
    assert_eq!(rotation.new_key, NewKeyLocation::Environment);
    assert!(!data_dir.join("credential.key").exists());

    let mut with_old = ServerConfig::new(&data_dir);
    with_old.credential_key = Some(old_key);
    let message = start_error(&with_old).await;
    assert!(message.contains("is not the key that sealed"), "{message}");

    let mut with_new = ServerConfig::new(&data_dir);
    with_new.credential_key = Some(new_key);
    let server = TestServer::start_with(with_new, temp_dir).await;
    server
        .login(crate::common::ADMIN_NAME, crate::common::ADMIN_PASSWORD)
        .await;
}

#[tokio::test]
async fn binary_rotates_key() {
    let server = TestServer::start().await;
    let jwt = server.init_admin().await;
    create(&server, &jwt, team_registry()).await;
    let data_dir = server.data_path().to_owned();
    let TestServer {
        server: running,
        data_dir: _temp_dir,
        ..
    } = server;
    running.stop().await.unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_imgstat"))
        .arg("rotate-credential-key")
        .arg("--data-dir")
        .arg(&data_dir)
        .env_remove("IMGSTAT_CREDENTIAL_KEY")
        .env_remove("IMGSTAT_NEW_CREDENTIAL_KEY")
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("re-sealed 1 registry passwords"),
        "{stdout}"
    );
    assert!(stdout.contains("credential.key"), "{stdout}");
}
