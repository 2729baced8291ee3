//! Each registry auth mode accepts a push and returns the pushed digest for a HEAD
//! through the proxy.

mod common;

use std::net::TcpStream;

use common::{DOCKER_V2_MANIFEST, basic, bearer, client, head_manifest, header, token};
use imgstat_testkit::{Credentials, Proxy, Registry, TestImage, TokenPolicy};

#[tokio::test]
async fn open_registry_head_returns_pushed_digest() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "team/web", "1.0");
    let proxy = Proxy::in_front_of(&registry);

    let response = head_manifest(&client(), &proxy.url(), "team/web", "1.0", None).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "Docker-Content-Digest"),
        Some(image.digest())
    );
    assert_eq!(header(&response, "Content-Type"), Some(DOCKER_V2_MANIFEST));
    assert!(header(&response, "Content-Length").is_some_and(|length| length != "0"));
    assert!(registry.push_credentials().is_none());
}

#[tokio::test]
async fn head_without_accept_gets_schema1() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "team/web", "1.0");

    let url = registry.manifest_url("team/web", "1.0");
    let response = client().head(&url).send().await.expect("HEAD manifest");

    assert_eq!(response.status(), 200);
    let content_type = header(&response, "Content-Type").unwrap_or_default();
    assert!(content_type.contains("v1+prettyjws"), "{content_type}");
    assert_ne!(
        header(&response, "Docker-Content-Digest"),
        Some(image.digest())
    );
}

#[tokio::test]
async fn htpasswd_registry_needs_basic_auth() {
    let alice = Credentials::new("alice", "alice-password");
    let registry = Registry::with_htpasswd([&alice]);
    let image = TestImage::build(&registry, "team/web", "1.0");
    let proxy = Proxy::in_front_of(&registry);
    let client = client();

    let anonymous = head_manifest(&client, &proxy.url(), "team/web", "1.0", None).await;
    let authorized = head_manifest(
        &client,
        &proxy.url(),
        "team/web",
        "1.0",
        Some(&basic(&alice)),
    )
    .await;

    assert_eq!(anonymous.status(), 401);
    let challenge = header(&anonymous, "WWW-Authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    assert_eq!(authorized.status(), 200);
    assert_eq!(
        header(&authorized, "Docker-Content-Digest"),
        Some(image.digest())
    );
}

#[tokio::test]
async fn htpasswd_registry_rejects_wrong_password() {
    let registry = Registry::with_htpasswd([&Credentials::new("alice", "alice-password")]);
    let _image = TestImage::build(&registry, "team/web", "1.0");
    let wrong = Credentials::new("alice", "wrong");

    let response = head_manifest(
        &client(),
        &registry.url(),
        "team/web",
        "1.0",
        Some(&basic(&wrong)),
    )
    .await;

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn htpasswd_registry_with_several_users() {
    let alice = Credentials::new("alice", "a-password");
    let bob = Credentials::new("bob", "b-password");
    let registry = Registry::with_htpasswd([&alice, &bob]);
    let image = TestImage::build(&registry, "team/web", "1.0");
    let client = client();

    for user in [&alice, &bob] {
        let response = head_manifest(
            &client,
            &registry.url(),
            "team/web",
            "1.0",
            Some(&basic(user)),
        )
        .await;
        assert_eq!(response.status(), 200, "{}", user.username);
        assert_eq!(
            header(&response, "Docker-Content-Digest"),
            Some(image.digest())
        );
    }
}

#[tokio::test]
async fn token_registry_head_with_bearer_token() {
    let alice = Credentials::new("alice", "alice-password");
    let policy = TokenPolicy::new().user(&alice).pull("alice", "team/*");
    let registry = Registry::with_token_auth(policy);
    let image = TestImage::build(&registry, "team/web", "1.0");
    let proxy = Proxy::in_front_of(&registry);
    let token_server = registry
        .token_server()
        .expect("token auth has a token server");
    let client = client();

    let challenged = head_manifest(&client, &proxy.url(), "team/web", "1.0", None).await;
    let challenge = header(&challenged, "WWW-Authenticate")
        .unwrap_or_default()
        .to_owned();
    let token = token(
        &client,
        &token_server.realm(),
        &["repository:team/web:pull"],
        Some(&alice),
    )
    .await;
    let authorized = head_manifest(
        &client,
        &proxy.url(),
        "team/web",
        "1.0",
        Some(&bearer(&token)),
    )
    .await;

    assert_eq!(challenged.status(), 401);
    assert!(
        challenge.contains(&format!("realm=\"{}\"", token_server.realm())),
        "{challenge}"
    );
    assert!(
        challenge.contains("service=\"imgstat-testkit-registry\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:team/web:pull\""),
        "{challenge}"
    );
    assert_ne!(token_server.addr().port(), proxy.addr().port());
    assert_eq!(authorized.status(), 200);
    assert_eq!(
        header(&authorized, "Docker-Content-Digest"),
        Some(image.digest())
    );
}

#[tokio::test]
async fn token_without_pull_is_rejected_by_registry() {
    let alice = Credentials::new("alice", "alice-password");
    let policy = TokenPolicy::new().user(&alice).pull("alice", "team/api");
    let registry = Registry::with_token_auth(policy);
    let _image = TestImage::build(&registry, "team/web", "1.0");
    let realm = registry.token_server().expect("token server").realm();
    let client = client();

    let token = token(&client, &realm, &["repository:team/web:pull"], Some(&alice)).await;
    let response = head_manifest(
        &client,
        &registry.url(),
        "team/web",
        "1.0",
        Some(&bearer(&token)),
    )
    .await;

    assert_eq!(response.status(), 401);
    let challenge = header(&response, "WWW-Authenticate").unwrap_or_default();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
}

#[tokio::test]
async fn token_realm_can_point_at_proxy() {
    let token_server = imgstat_testkit::TokenServer::start(TokenPolicy::new());
    let token_proxy = Proxy::start(token_server.addr().to_string());
    let realm = format!("{}/token", token_proxy.url());
    let registry = Registry::builder()
        .token_server(token_server)
        .token_realm(&realm)
        .start();

    let _image = TestImage::build(&registry, "team/web", "1.0");

    let token_requests =
        token_proxy.count(reqwest::Method::GET, imgstat_testkit::RequestKind::Token);
    assert!(
        token_requests >= 1,
        "docker push fetched {token_requests} tokens through the proxy"
    );
    let served = registry
        .token_server()
        .expect("token server")
        .request_count();
    assert_eq!(served as u64, token_requests);
}

#[test]
fn registry_drop_stops_process_and_removes_dir() {
    let registry = Registry::start();
    let host = registry.host().to_owned();
    let dir = registry.dir().to_owned();
    assert!(registry.log().contains("listening on"));

    drop(registry);

    assert!(
        TcpStream::connect(&host).is_err(),
        "{host} still accepts connections"
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn registries_get_distinct_ports() {
    let registries: Vec<Registry> = (0..3).map(|_| Registry::start()).collect();

    let mut hosts: Vec<&str> = registries.iter().map(Registry::host).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts.len(), 3);
}

#[tokio::test]
async fn tls_registry_serves_https_only() {
    let registry = Registry::builder().tls().start();
    let image = TestImage::build(&registry, "team/web", "1.0");

    // skopeo reaches the registry over HTTPS without verifying its certificate.
    let inspected = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{}/team/web:1.0", registry.host()))
        .output()
        .expect("failed to run skopeo inspect");
    let plain = client()
        .get(format!("http://{}/v2/", registry.host()))
        .send()
        .await
        .expect("GET /v2/ over plain HTTP");

    assert!(registry.is_tls());
    assert!(registry.url().starts_with("https://"));
    assert!(inspected.status.success(), "{inspected:?}");
    assert_eq!(
        String::from_utf8_lossy(&inspected.stdout).trim(),
        image.digest()
    );
    assert_eq!(plain.status(), 400);
}
