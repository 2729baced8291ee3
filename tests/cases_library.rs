//! Cases that span more than one check, or need a configuration the command line does
//! not offer, run through `RegistryClient` and `Checker` against the machine's Docker
//! engine and `docker-registry` on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use imgstat::credentials::NoCredentials;
use imgstat::engine::{Engine, EngineAddress};
use imgstat::registry::{OutboundPolicy, RegistryClient, RegistryConfig, TagKey};
use imgstat::rules::Status;
use imgstat::status::{CacheConfig, Checker};
use imgstat_testkit::{
    Endless, EndlessServer, Fault, IndexFormat, Proxy, Registry, RequestKind, TestContainer,
    TestImage, TestIndex,
};

async fn engine() -> Engine {
    Engine::connect(&EngineAddress::from_env(None))
        .await
        .expect("the Docker engine answers")
}

fn checker(config: RegistryConfig) -> Checker {
    let client = RegistryClient::new(config, Arc::new(NoCredentials)).expect("HTTP client");
    Checker::new(Arc::new(client), CacheConfig::default())
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_pauses_until_retry_after() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let image = TestImage::build_and_push(&proxy.host(), "library/limited", "1", None);
    let newer = TestImage::build_and_push(&proxy.host(), "library/limited", "newer", None);
    let container = TestContainer::create(image.reference(), "limited");
    let engine = engine().await;
    let checker = checker(RegistryConfig::default());
    proxy.add_fault(
        Fault::status(429)
            .method(Method::HEAD)
            .kind(RequestKind::Manifest)
            .retry_after(2)
            .times(1),
    );
    proxy.reset_counters();

    let report = checker.check_one(&engine, container.id(), false).await;
    // The pause began when the 429 arrived, before this instant.
    let limited_at = Instant::now();
    assert_eq!(report.status, Status::Error, "{report:?}");
    assert!(report.message.contains("rate limiting"), "{report:?}");

    // Neither a forced check nor a cached one sends a request before the pause ends.
    for force in [true, false] {
        let report = checker.check_one(&engine, container.id(), force).await;
        assert_eq!(report.status, Status::Error, "force {force}: {report:?}");
    }
    assert_eq!(proxy.count(Method::HEAD, RequestKind::Manifest), 1);

    tokio::time::sleep_until((limited_at + Duration::from_millis(2100)).into()).await;
    let report = checker.check_one(&engine, container.id(), false).await;
    assert_eq!(report.status, Status::Updated, "{report:?}");
    assert_eq!(proxy.count(Method::HEAD, RequestKind::Manifest), 2);

    image.tag_in_registry(image.repository(), newer.digest(), "1");
    let report = checker.check_one(&engine, container.id(), true).await;
    assert_eq!(report.status, Status::Outdated, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_ping_retried_after_pause() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let image = TestImage::build_and_push(&proxy.host(), "library/ping", "1", None);
    let container = TestContainer::create(image.reference(), "ping");
    let engine = engine().await;
    let checker = checker(RegistryConfig::default());
    proxy.add_fault(
        Fault::status(429)
            .kind(RequestKind::Ping)
            .retry_after(1)
            .times(1),
    );

    let report = checker.check_one(&engine, container.id(), false).await;
    let limited_at = Instant::now();
    assert_eq!(report.status, Status::Error, "{report:?}");
    assert!(report.message.contains("rate limiting"), "{report:?}");

    tokio::time::sleep_until((limited_at + Duration::from_millis(1100)).into()).await;
    let report = checker.check_one(&engine, container.id(), false).await;
    assert_eq!(report.status, Status::Updated, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fetched_indexes_kept_between_checks() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let mut index = TestIndex::push_to(
        &proxy.host(),
        "library/kept",
        "1",
        &["linux/amd64", "linux/arm64/v8"],
        IndexFormat::Oci,
        None,
    );
    index.pull();
    let containers: Vec<TestContainer> = (0..3)
        .map(|_| TestContainer::create(&index.reference(), "kept"))
        .collect();
    let engine = engine().await;
    let checker = checker(RegistryConfig::default());
    index.push_new_content(&["linux/arm64/v8"]);
    proxy.reset_counters();

    for container in &containers {
        let report = checker.check_one(&engine, container.id(), false).await;
        assert_eq!(report.status, Status::Updated, "{report:?}");
    }
    assert_eq!(proxy.count(Method::HEAD, RequestKind::Manifest), 1);
    assert_eq!(proxy.count(Method::GET, RequestKind::Manifest), 2);

    // Forced checks ask for the tag again, but the indexes are kept by digest.
    for container in &containers {
        let report = checker.check_one(&engine, container.id(), true).await;
        assert_eq!(report.status, Status::Updated, "{report:?}");
    }
    assert_eq!(proxy.count(Method::HEAD, RequestKind::Manifest), 4);
    assert_eq!(proxy.count(Method::GET, RequestKind::Manifest), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_outside_allow_list_refused() {
    let registry = Registry::start();
    let origin = Proxy::in_front_of(&registry);
    let image = TestImage::build_and_push(&origin.host(), "library/redirected", "1", None);
    let elsewhere = Proxy::in_front_of(&registry);
    let container = TestContainer::create(image.reference(), "redirected");
    let engine = engine().await;
    let config = RegistryConfig {
        outbound: OutboundPolicy::allowing([origin.host().parse().unwrap()]),
        ..RegistryConfig::default()
    };
    let checker = checker(config);

    origin.add_fault(Fault::redirect(307, elsewhere.url()).kind(RequestKind::Manifest));
    let report = checker.check_one(&engine, container.id(), false).await;
    assert_eq!(report.status, Status::Error, "{report:?}");
    assert!(report.message.contains("not allowed"), "{report:?}");
    assert_eq!(elsewhere.stats().total(), 0);

    origin.clear_faults();
    let report = checker.check_one(&engine, container.id(), true).await;
    assert_eq!(report.status, Status::Updated, "{report:?}");
}

/// Waits until `server` writes no endless response, and returns whether that happened
/// within five seconds. It sleeps without blocking, so that the client's connection tasks
/// on this runtime can close their connections.
async fn responses_abandoned(server: &EndlessServer) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.responses_in_progress() > 0 {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_responses_fail_within_bounds() {
    let healthy = Registry::start();
    let image = TestImage::build(&healthy, "team/healthy", "1");
    let healthy_key = TagKey {
        registry: healthy.host().to_owned(),
        repository: "team/healthy".to_owned(),
        tag: "1".to_owned(),
    };
    // Size bounds end the fast responses long before the generous timeout, and the
    // timeout ends the slow ones, which never outgrow a size bound.
    let generous = Duration::from_secs(60);
    let short = Duration::from_secs(1);
    let slow = Duration::from_millis(200);
    let cases = [
        (Endless::HeaderFields, generous, "message head is too large"),
        (Endless::HeaderValue, generous, "message head is too large"),
        (
            Endless::Body,
            generous,
            "response body larger than 4194304 bytes",
        ),
        (
            Endless::SlowHeaderFields(slow),
            short,
            "did not answer within 1s",
        ),
        (Endless::SlowBody(slow), short, "did not answer within 1s"),
    ];

    for (endless, timeout, expected) in cases {
        let server = EndlessServer::start(endless);
        let config = RegistryConfig {
            request_timeout: timeout,
            ..RegistryConfig::default()
        };
        let client = RegistryClient::new(config, Arc::new(NoCredentials)).expect("HTTP client");
        let key = TagKey {
            registry: server.host(),
            repository: "team/app".to_owned(),
            tag: "1".to_owned(),
        };

        let started = Instant::now();
        let error = client.head_digest(&key).await.unwrap_err();
        let elapsed = started.elapsed();
        let message = error.chain();
        assert!(message.contains(expected), "{endless:?}: {message}");
        assert!(
            elapsed < timeout.min(Duration::from_secs(20)) + Duration::from_secs(5),
            "{endless:?}: failed after {elapsed:?}"
        );
        let requests = server.requests();
        assert!(
            requests
                .iter()
                .any(|r| r.contains("/v2/team/app/manifests/1")),
            "{endless:?}: {requests:?}"
        );
        assert!(
            responses_abandoned(&server).await,
            "{endless:?}: the client kept reading the endless response"
        );

        let digest = client.head_digest(&healthy_key).await;
        assert_eq!(
            digest.map(|d| d.digest).ok().as_deref(),
            Some(image.digest()),
            "{endless:?}"
        );
    }
}
