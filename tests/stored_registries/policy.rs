//! The server's outbound policy and response bounds. A token realm left out of the
//! allow-list never receives the stored credentials, and registry responses that never
//! end fail within their bounds while the server keeps serving requests.

use std::time::{Duration, Instant};

use imgstat::registry::{OutboundPolicy, RegistryConfig};
use imgstat_testkit::{
    Credentials, Endless, EndlessServer, Fault, Proxy, Registry, RequestKind, TestContainer,
    TestImage, TokenPolicy,
};

use crate::common::{CapturedLogs, GENERIC_ERROR, Server, registry_entry};

fn allowing(entries: &[&str]) -> RegistryConfig {
    let entries = entries.iter().map(|entry| entry.parse().unwrap());
    RegistryConfig {
        outbound: OutboundPolicy::allowing(entries),
        ..RegistryConfig::default()
    }
}

#[tokio::test]
async fn token_realm_outside_allow_list_gets_no_credentials() {
    let logs = CapturedLogs::start();
    let alice = Credentials::random("alice");
    let policy = TokenPolicy::new()
        .user(&alice)
        .pull(&alice.username, "team/*");
    let registry = Registry::with_token_auth(policy);
    let token_server = registry.token_server().unwrap();
    let realm_host = token_server.addr().to_string();
    let image = TestImage::build(&registry, "team/app", "1");
    let container = TestContainer::create(image.reference(), "realm");
    let entry = registry_entry("token", registry.host(), &alice.username, &alice.password);
    token_server.reset_counters();

    let admitting = Server::start_with(allowing(&[registry.host(), &realm_host])).await;
    admitting.create_registry(entry.clone()).await;
    let admitted = admitting.forced_status(container.id()).await;
    assert_eq!(admitted["Status"], "updated", "{admitted}");
    assert!(token_server.request_count() > 0);

    token_server.reset_counters();
    let refusing = Server::start_with(allowing(&[registry.host()])).await;
    refusing.create_registry(entry).await;
    let refused = refusing.forced_status(container.id()).await;
    assert_eq!(refused["Status"], "error", "{refused}");
    assert_eq!(refused["Message"], GENERIC_ERROR);
    assert_eq!(
        token_server.request_count(),
        0,
        "{:?}",
        token_server.requests()
    );

    let log = logs.text();
    let cause = format!("{realm_host} is not allowed by the outbound policy");
    assert!(log.contains(&cause), "{log}");
    assert!(!log.contains(&alice.password), "{log}");
}

/// Waits until `server` writes no endless response, and returns whether that happened
/// within five seconds. It sleeps without blocking, so that the registry client's
/// connection tasks on this runtime can close their connections.
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

#[tokio::test]
async fn endless_responses_leave_server_working() {
    let logs = CapturedLogs::start();
    let registry = Registry::start();
    let origin = Proxy::in_front_of(&registry);
    let slow = EndlessServer::start(Endless::SlowHeaderFields(Duration::from_millis(200)));
    let endless = EndlessServer::start(Endless::Body);
    let slow_image = TestImage::build_and_push(&origin.host(), "team/slow", "1", None);
    let endless_image = TestImage::build_and_push(&origin.host(), "team/endless", "1", None);
    let healthy_image = TestImage::build(&registry, "team/healthy", "1");
    let slow_container = TestContainer::create(slow_image.reference(), "slow");
    let endless_container = TestContainer::create(endless_image.reference(), "endless");
    let healthy_container = TestContainer::create(healthy_image.reference(), "healthy");
    // The registry sends manifest requests on to a storage host that misbehaves.
    origin.add_fault(
        Fault::redirect(307, slow.url())
            .kind(RequestKind::Manifest)
            .path_contains("team/slow"),
    );
    origin.add_fault(
        Fault::redirect(307, endless.url())
            .kind(RequestKind::Manifest)
            .path_contains("team/endless"),
    );
    // One request in flight per registry, so that a request slot kept by a failed
    // request would hold up every later request to the same registry.
    let timeout = Duration::from_secs(2);
    let server = Server::start_with(RegistryConfig {
        request_timeout: timeout,
        max_in_flight: 1,
        ..RegistryConfig::default()
    })
    .await;

    let started = Instant::now();
    let timed_out = server.forced_status(slow_container.id()).await;
    let elapsed = started.elapsed();
    assert_eq!(timed_out["Status"], "error", "{timed_out}");
    assert!(elapsed >= timeout, "failed after {elapsed:?}");
    assert!(elapsed < timeout + Duration::from_secs(5), "{elapsed:?}");
    assert!(!slow.requests().is_empty());
    assert!(responses_abandoned(&slow).await, "slow headers still sent");

    let started = Instant::now();
    let too_large = server.forced_status(endless_container.id()).await;
    let elapsed = started.elapsed();
    assert_eq!(too_large["Status"], "error", "{too_large}");
    assert!(elapsed < timeout, "{elapsed:?}");
    assert!(!endless.requests().is_empty());
    assert!(
        responses_abandoned(&endless).await,
        "endless body still sent"
    );

    let log = logs.text();
    assert!(log.contains("did not answer within 2s"), "{log}");
    assert!(log.contains("response body larger than"), "{log}");

    let healthy = server.forced_status(healthy_container.id()).await;
    assert_eq!(healthy["Status"], "updated", "{healthy}");
    origin.clear_faults();
    for container in [&slow_container, &endless_container] {
        let recovered = server.forced_status(container.id()).await;
        assert_eq!(recovered["Status"], "updated", "{recovered}");
    }
}
