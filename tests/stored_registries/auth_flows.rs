//! The auth flows as real registries run them: Basic (htpasswd), Bearer with the
//! realm on its own port, anonymous tokens, and a token refreshed once after a 401.

use std::time::Duration;

use imgstat_testkit::{Credentials, Registry, TestContainer, TestImage, TokenPolicy};

use crate::common::{CapturedLogs, GENERIC_ERROR, Server, registry_entry};

#[tokio::test]
async fn htpasswd_credentials_apply_without_restart() {
    let logs = CapturedLogs::start();
    let alice = Credentials::random("alice");
    let registry = Registry::with_htpasswd([&alice]);
    let image = TestImage::build(&registry, "team/app", "1");
    let container = TestContainer::create(image.reference(), "htpasswd");
    let server = Server::start().await;

    let anonymous = server.forced_status(container.id()).await;
    assert_eq!(anonymous["Status"], "error", "{anonymous}");

    let entry = registry_entry(
        "htpasswd",
        registry.host(),
        &alice.username,
        &alice.password,
    );
    let id = server.create_registry(entry).await;
    let stored = server.forced_status(container.id()).await;
    assert_eq!(stored["Status"], "updated", "{stored}");

    let wrong_password = "wrong-password-for-htpasswd";
    let wrong = registry_entry("htpasswd", registry.host(), &alice.username, wrong_password);
    server.update_registry(id, wrong).await;
    let rejected = server.forced_status(container.id()).await;
    assert_eq!(rejected["Status"], "error", "{rejected}");
    assert_eq!(rejected["Message"], GENERIC_ERROR);

    server.delete_registry(id).await;
    let deleted = server.forced_status(container.id()).await;
    assert_eq!(deleted["Status"], "error", "{deleted}");

    let log = logs.text();
    let cause = format!(
        "registry {} rejected the request for team/app",
        registry.host()
    );
    assert!(log.contains(&cause), "{log}");
    assert!(!log.contains(&alice.password), "{log}");
    assert!(!log.contains(wrong_password), "{log}");
}

#[tokio::test]
async fn token_realm_on_own_port() {
    let logs = CapturedLogs::start();
    let alice = Credentials::random("alice");
    let policy = TokenPolicy::new()
        .user(&alice)
        .pull(&alice.username, "team/*");
    let registry = Registry::with_token_auth(policy);
    let token_server = registry.token_server().unwrap();
    assert_ne!(token_server.addr().to_string(), registry.host());
    let image = TestImage::build(&registry, "team/app", "1");
    let container = TestContainer::create(image.reference(), "token");
    let server = Server::start().await;
    let entry = registry_entry("token", registry.host(), &alice.username, &alice.password);
    let id = server.create_registry(entry).await;
    token_server.reset_counters();

    let stored = server.forced_status(container.id()).await;
    assert_eq!(stored["Status"], "updated", "{stored}");
    let requests = token_server.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.account.as_deref(), Some(alice.username.as_str()));
        assert_eq!(request.scopes, ["repository:team/app:pull"]);
    }

    let wrong_password = "wrong-password-for-token";
    let wrong = registry_entry("token", registry.host(), &alice.username, wrong_password);
    server.update_registry(id, wrong).await;
    token_server.reset_counters();
    let rejected = server.forced_status(container.id()).await;
    assert_eq!(rejected["Status"], "error", "{rejected}");
    assert_eq!(rejected["Message"], GENERIC_ERROR);
    assert!(
        token_server.requests().iter().all(|r| r.status == 401),
        "{:?}",
        token_server.requests()
    );

    let log = logs.text();
    assert!(
        log.contains("the token server rejected the credentials"),
        "{log}"
    );
    assert!(!log.contains(&alice.password), "{log}");
    assert!(!log.contains(wrong_password), "{log}");
}

#[tokio::test]
async fn anonymous_token_where_no_entry_matches() {
    let alice = Credentials::random("alice");
    let policy = TokenPolicy::new()
        .user(&alice)
        .pull(&alice.username, "team/*")
        .anonymous_pull("public/*");
    let registry = Registry::with_token_auth(policy);
    let token_server = registry.token_server().unwrap();
    let public = TestImage::build(&registry, "public/app", "1");
    let container = TestContainer::create(public.reference(), "anonymous");
    let server = Server::start().await;
    let team_url = format!("{}/team", registry.host());
    server
        .create_registry(registry_entry(
            "team",
            &team_url,
            &alice.username,
            &alice.password,
        ))
        .await;
    token_server.reset_counters();

    let status = server.forced_status(container.id()).await;

    assert_eq!(status["Status"], "updated", "{status}");
    let requests = token_server.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.account, None, "{request:?}");
        assert_eq!(request.scopes, ["repository:public/app:pull"]);
    }
}

#[tokio::test]
async fn expired_token_is_refreshed_once() {
    let alice = Credentials::random("alice");
    let policy = TokenPolicy::new()
        .user(&alice)
        .pull(&alice.username, "team/*");
    let registry = Registry::with_token_auth(policy);
    let token_server = registry.token_server().unwrap();
    let image = TestImage::build(&registry, "team/app", "1");
    let container = TestContainer::create(image.reference(), "refresh");
    let server = Server::start().await;
    let entry = registry_entry("token", registry.host(), &alice.username, &alice.password);
    server.create_registry(entry).await;

    // Tokens signed ten minutes in the past have expired for the registry, while the
    // token response still gives them 300 seconds.
    token_server.set_clock_behind(Duration::from_secs(600));
    token_server.reset_counters();
    let expired = server.forced_status(container.id()).await;
    assert_eq!(expired["Status"], "error", "{expired}");
    let requests = token_server.requests();
    assert_eq!(
        requests.len(),
        2,
        "one token, then one refresh after the 401: {requests:?}"
    );
    assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");

    // The expired token is still cached: the next check meets a 401, refreshes once and
    // gets a token the registry accepts.
    token_server.set_clock_behind(Duration::ZERO);
    token_server.reset_counters();
    let refreshed = server.forced_status(container.id()).await;
    assert_eq!(refreshed["Status"], "updated", "{refreshed}");
    assert_eq!(token_server.request_count(), 1);
}

#[tokio::test]
async fn short_lived_tokens_are_requested_again() {
    let alice = Credentials::random("alice");
    let policy = TokenPolicy::new()
        .user(&alice)
        .pull(&alice.username, "team/*")
        .expires_in(Duration::from_secs(2));
    let registry = Registry::with_token_auth(policy);
    let token_server = registry.token_server().unwrap();
    let image = TestImage::build(&registry, "team/app", "1");
    let container = TestContainer::create(image.reference(), "short");
    let server = Server::start().await;
    let entry = registry_entry("token", registry.host(), &alice.username, &alice.password);
    server.create_registry(entry).await;
    token_server.reset_counters();

    let first = server.forced_status(container.id()).await;
    assert_eq!(first["Status"], "updated", "{first}");
    let after_first = token_server.request_count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = server.forced_status(container.id()).await;

    assert_eq!(second["Status"], "updated", "{second}");
    assert_eq!(token_server.request_count(), after_first + 1);
    assert!(
        token_server
            .requests()
            .iter()
            .all(|r| r.account.as_deref() == Some(alice.username.as_str())),
        "{:?}",
        token_server.requests()
    );
}
