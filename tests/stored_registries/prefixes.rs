//! Two entries for one host with different path prefixes: each repository gets the
//! credentials of the longest matching prefix, as the registry side records them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use imgstat_testkit::{
    Credentials, Proxy, Registry, RequestKind, TestContainer, TestImage, TokenPolicy,
};

use crate::common::{Server, registry_entry};

#[tokio::test]
async fn token_requests_use_prefix_credentials() {
    let alice = Credentials::random("alice");
    let bob = Credentials::random("bob");
    let policy = TokenPolicy::new()
        .user(&alice)
        .user(&bob)
        .pull(&alice.username, "team-a/*")
        .pull(&bob.username, "team-b/*");
    let registry = Registry::with_token_auth(policy);
    let token_server = registry.token_server().unwrap();
    let image_a = TestImage::build(&registry, "team-a/app", "1");
    let image_b = TestImage::build(&registry, "team-b/app", "1");
    let on_a = TestContainer::create(image_a.reference(), "prefix-a");
    let on_b = TestContainer::create(image_b.reference(), "prefix-b");
    let server = Server::start().await;
    let url_a = format!("{}/team-a", registry.host());
    let url_b = format!("https://{}/team-b/", registry.host());
    server
        .create_registry(registry_entry(
            "a",
            &url_a,
            &alice.username,
            &alice.password,
        ))
        .await;
    server
        .create_registry(registry_entry("b", &url_b, &bob.username, &bob.password))
        .await;
    token_server.reset_counters();

    for container in [&on_a, &on_b] {
        let status = server.forced_status(container.id()).await;
        assert_eq!(status["Status"], "updated", "{status}");
    }

    let requests = token_server.requests();
    let account_of = |repository: &str| {
        let scope = format!("repository:{repository}:pull");
        let accounts: Vec<Option<String>> = requests
            .iter()
            .filter(|r| r.scopes.contains(&scope))
            .map(|r| r.account.clone())
            .collect();
        accounts
    };
    assert_eq!(account_of("team-a/app"), [Some(alice.username.clone())]);
    assert_eq!(account_of("team-b/app"), [Some(bob.username.clone())]);
}

#[tokio::test]
async fn basic_auth_uses_prefix_credentials() {
    let alice = Credentials::random("alice");
    let bob = Credentials::random("bob");
    let registry = Registry::with_htpasswd([&alice, &bob]);
    let proxy = Proxy::in_front_of(&registry);
    let pusher = registry.push_credentials();
    let image_a = TestImage::build_and_push(&proxy.host(), "ops/app", "1", pusher);
    let image_b = TestImage::build_and_push(&proxy.host(), "ops/app-b/web", "1", pusher);
    let image_c = TestImage::build_and_push(&proxy.host(), "opsx/app", "1", pusher);
    let on_a = TestContainer::create(image_a.reference(), "basic-a");
    let on_b = TestContainer::create(image_b.reference(), "basic-b");
    let on_c = TestContainer::create(image_c.reference(), "basic-c");
    let server = Server::start().await;
    let ops = format!("{}/ops", proxy.host());
    let ops_b = format!("{}/ops/app-b", proxy.host());
    server
        .create_registry(registry_entry(
            "ops",
            &ops,
            &alice.username,
            &alice.password,
        ))
        .await;
    server
        .create_registry(registry_entry(
            "ops-b",
            &ops_b,
            &bob.username,
            &bob.password,
        ))
        .await;
    proxy.reset_counters();

    for container in [&on_a, &on_b] {
        let status = server.forced_status(container.id()).await;
        assert_eq!(status["Status"], "updated", "{status}");
    }
    // `ops` does not cover `opsx/app`, so no credential goes along and the registry
    // rejects the request.
    let uncovered = server.forced_status(on_c.id()).await;
    assert_eq!(uncovered["Status"], "error", "{uncovered}");

    let basic = |credentials: &Credentials| {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", credentials.username, credentials.password))
        )
    };
    let authorizations = |repository: &str| {
        let prefix = format!("/v2/{repository}/manifests/");
        let values: Vec<Option<String>> = proxy
            .requests()
            .iter()
            .filter(|r| r.kind == RequestKind::Manifest && r.path.starts_with(&prefix))
            .map(|r| {
                r.headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned())
            })
            .collect();
        values
    };
    let sent_a = authorizations("ops/app");
    let sent_b = authorizations("ops/app-b/web");
    let sent_c = authorizations("opsx/app");
    assert!(!sent_a.is_empty());
    assert!(!sent_b.is_empty());
    assert!(!sent_c.is_empty());
    assert!(
        sent_a
            .iter()
            .all(|v| v.as_deref() == Some(basic(&alice).as_str())),
        "{sent_a:?}"
    );
    assert!(
        sent_b
            .iter()
            .all(|v| v.as_deref() == Some(basic(&bob).as_str())),
        "{sent_b:?}"
    );
    assert!(sent_c.iter().all(Option::is_none), "{sent_c:?}");
}
