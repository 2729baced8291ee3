//! Creating, listing and deleting environments, and access grants.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, USER_PASSWORD, message_of};

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

#[tokio::test]
async fn create_returns_environment() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;

    let response = server
        .post("/api/endpoints")
        .bearer_auth(&admin_jwt)
        .json(&json!({"Name": "local", "URL": "unix:///var/run/docker.sock"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body["Id"].as_i64().is_some());
    assert_eq!(body["Name"], "local");
    assert_eq!(body["URL"], "unix:///var/run/docker.sock");
    assert_eq!(body["TLS"], false);
}

#[tokio::test]
async fn create_with_tls_never_returns_key() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;

    let response = server
        .post("/api/endpoints")
        .bearer_auth(&admin_jwt)
        .json(&json!({
            "Name": "remote",
            "URL": "tcp://127.0.0.1:2376",
            "TLSCACert": CA_PEM,
            "TLSCert": CA_PEM,
            "TLSKey": KEY_PEM,
        }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["TLS"], true);
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

#[tokio::test]
async fn create_with_invalid_url_names_it() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;

    for url in [
        "http://127.0.0.1:2375",
        "unix://relative.sock",
        "tcp://127.0.0.1",
    ] {
        let response = server
            .post("/api/endpoints")
            .bearer_auth(&admin_jwt)
            .json(&json!({"Name": "bad", "URL": url}))
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        let message = message_of(response).await;
        assert!(message.contains(url), "{url}: {message}");
    }
}

#[tokio::test]
async fn create_rejects_inconsistent_tls() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let cases = [
        json!({"Name": "a", "URL": "unix:///var/run/docker.sock", "TLS": true}),
        json!({"Name": "b", "URL": "tcp://127.0.0.1:2376", "TLSCert": CA_PEM}),
        json!({"Name": "c", "URL": "tcp://127.0.0.1:2376", "TLSCACert": "not pem"}),
    ];

    for body in cases {
        let response = server
            .post("/api/endpoints")
            .bearer_auth(&admin_jwt)
            .json(&body)
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
}

#[tokio::test]
async fn create_with_taken_name_is_conflict() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    server.create_environment(&admin_jwt, "local").await;

    let response = server
        .post("/api/endpoints")
        .bearer_auth(&admin_jwt)
        .json(&json!({"Name": "local", "URL": "unix:///run/podman/podman.sock"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn create_by_standard_user_is_forbidden() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    server.create_user(&admin_jwt, "alice").await;
    let alice_jwt = server.login("alice", USER_PASSWORD).await;

    let response = server
        .post("/api/endpoints")
        .bearer_auth(&alice_jwt)
        .json(&json!({"Name": "local", "URL": "unix:///var/run/docker.sock"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn user_lists_only_granted_environments() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let alice_id = server.create_user(&admin_jwt, "alice").await;
    let bob_id = server.create_user(&admin_jwt, "bob").await;
    let first = server.create_environment(&admin_jwt, "first").await;
    let second = server.create_environment(&admin_jwt, "second").await;
    let third = server.create_environment(&admin_jwt, "third").await;
    server.grant(&admin_jwt, first, &[alice_id]).await;
    server.grant(&admin_jwt, third, &[alice_id, bob_id]).await;
    let alice_jwt = server.login("alice", USER_PASSWORD).await;
    let bob_jwt = server.login("bob", USER_PASSWORD).await;

    assert_eq!(
        server.listed_environment_ids(&admin_jwt).await,
        [first, second, third]
    );
    assert_eq!(
        server.listed_environment_ids(&alice_jwt).await,
        [first, third]
    );
    assert_eq!(server.listed_environment_ids(&bob_jwt).await, [third]);
}

#[tokio::test]
async fn access_replaces_previous_grants() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let alice_id = server.create_user(&admin_jwt, "alice").await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    server.grant(&admin_jwt, environment_id, &[alice_id]).await;
    let alice_jwt = server.login("alice", USER_PASSWORD).await;

    server.grant(&admin_jwt, environment_id, &[]).await;

    assert!(server.listed_environment_ids(&alice_jwt).await.is_empty());
}

#[tokio::test]
async fn access_for_unknown_environment_is_not_found() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let alice_id = server.create_user(&admin_jwt, "alice").await;

    let response = server
        .put("/api/endpoints/999/access")
        .bearer_auth(&admin_jwt)
        .json(&json!({"UserIds": [alice_id]}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn access_for_unknown_user_is_bad_request() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let alice_id = server.create_user(&admin_jwt, "alice").await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    server.grant(&admin_jwt, environment_id, &[alice_id]).await;
    let alice_jwt = server.login("alice", USER_PASSWORD).await;

    let response = server
        .put(&format!("/api/endpoints/{environment_id}/access"))
        .bearer_auth(&admin_jwt)
        .json(&json!({"UserIds": [999]}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(message_of(response).await.contains("999"));
    // The failed request left the earlier grant in place.
    assert_eq!(
        server.listed_environment_ids(&alice_jwt).await,
        [environment_id]
    );
}

#[tokio::test]
async fn access_by_standard_user_is_forbidden() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let alice_id = server.create_user(&admin_jwt, "alice").await;
    let environment_id = server.create_environment(&admin_jwt, "local").await;
    let alice_jwt = server.login("alice", USER_PASSWORD).await;

    let response = server
        .put(&format!("/api/endpoints/{environment_id}/access"))
        .bearer_auth(&alice_jwt)
        .json(&json!({"UserIds": [alice_id]}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn delete_removes_environment() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let kept = server.create_environment(&admin_jwt, "kept").await;
    let deleted = server.create_environment(&admin_jwt, "deleted").await;

    let response = server
        .delete(&format!("/api/endpoints/{deleted}"))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.listed_environment_ids(&admin_jwt).await, [kept]);

    let again = server
        .delete(&format!("/api/endpoints/{deleted}"))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_with_invalid_id_is_bad_request() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;

    let response = server
        .delete("/api/endpoints/local")
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deleted_id_is_not_reused() {
    let server = TestServer::start().await;
    let admin_jwt = server.init_admin().await;
    let deleted = server.create_environment(&admin_jwt, "first").await;
    server
        .delete(&format!("/api/endpoints/{deleted}"))
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();

    let created = server.create_environment(&admin_jwt, "second").await;

    assert!(created > deleted);
}
