//! The proxy forwards to a real registry, counts by method and kind, keeps
//! connections alive, delays requests and returns injected fault responses.

mod common;

use std::time::{Duration, Instant};

use common::{client, head_manifest, header};
use imgstat_testkit::{Fault, Proxy, Registry, RequestKind, TestImage};
use reqwest::Method;

#[tokio::test]
async fn proxy_counts_by_method_and_kind() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "team/web", "1.0");
    let proxy = Proxy::in_front_of(&registry);
    let client = client();
    let url = proxy.url();

    client
        .get(format!("{url}/v2/"))
        .send()
        .await
        .expect("GET /v2/");
    head_manifest(&client, &url, "team/web", "1.0", None).await;
    head_manifest(&client, &url, "team/web", "1.0", None).await;
    let manifest_url = format!("{url}/v2/team/web/manifests/{}", image.digest());
    client
        .get(&manifest_url)
        .header("Accept", imgstat_testkit::MANIFEST_ACCEPT)
        .send()
        .await
        .expect("GET manifest");
    client
        .get(format!("{url}/v2/_catalog"))
        .send()
        .await
        .expect("GET catalog");

    let stats = proxy.stats();
    assert_eq!(stats.count(&Method::GET, RequestKind::Ping), 1);
    assert_eq!(stats.count(&Method::HEAD, RequestKind::Manifest), 2);
    assert_eq!(stats.count(&Method::GET, RequestKind::Manifest), 1);
    assert_eq!(stats.count_kind(RequestKind::Manifest), 3);
    assert_eq!(stats.count(&Method::GET, RequestKind::Other), 1);
    assert_eq!(stats.count_kind(RequestKind::Blob), 0);
    assert_eq!(stats.total(), 5);
}

#[tokio::test]
async fn proxy_keeps_connections_alive() {
    let registry = Registry::start();
    let _image = TestImage::build(&registry, "team/web", "1.0");
    let proxy = Proxy::in_front_of(&registry);
    let client = client();

    for _ in 0..5 {
        let response = head_manifest(&client, &proxy.url(), "team/web", "1.0", None).await;
        assert_eq!(response.status(), 200);
    }

    assert_eq!(proxy.stats().connections, 1);
}

#[tokio::test]
async fn proxy_records_request_headers_and_status() {
    let registry = Registry::start();
    let _image = TestImage::build(&registry, "team/web", "1.0");
    let proxy = Proxy::in_front_of(&registry);

    head_manifest(&client(), &proxy.url(), "team/web", "1.0", None).await;
    head_manifest(&client(), &proxy.url(), "team/web", "missing", None).await;

    let requests = proxy.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, Method::HEAD);
    assert_eq!(requests[0].path, "/v2/team/web/manifests/1.0");
    assert_eq!(requests[0].status, 200);
    let accept = requests[0]
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok());
    assert_eq!(accept, Some(imgstat_testkit::MANIFEST_ACCEPT));
    assert_eq!(requests[1].status, 404);
}

#[tokio::test]
async fn proxy_delays_each_request() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let client = client();
    proxy.set_latency(Duration::from_millis(300));

    let started = Instant::now();
    client
        .get(format!("{}/v2/", proxy.url()))
        .send()
        .await
        .expect("GET /v2/");
    let delayed = started.elapsed();

    proxy.set_latency(Duration::ZERO);
    let started = Instant::now();
    client
        .get(format!("{}/v2/", proxy.url()))
        .send()
        .await
        .expect("GET /v2/");
    let undelayed = started.elapsed();

    assert!(delayed >= Duration::from_millis(300), "{delayed:?}");
    assert!(undelayed < Duration::from_millis(300), "{undelayed:?}");
}

#[tokio::test]
async fn proxy_measures_max_in_flight() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let client = client();
    let url = format!("{}/v2/", proxy.url());
    proxy.set_latency(Duration::from_millis(300));

    let requests = (0..4).map(|_| client.get(&url).send());
    let responses = futures::future::join_all(requests).await;

    assert!(
        responses
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.status() == 200))
    );
    assert_eq!(proxy.stats().max_in_flight, 4);
    assert_eq!(proxy.stats().connections, 4);
}

#[tokio::test]
async fn proxy_sequential_requests_have_one_in_flight() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let client = client();

    for _ in 0..3 {
        client
            .get(format!("{}/v2/", proxy.url()))
            .send()
            .await
            .expect("GET /v2/");
    }

    assert_eq!(proxy.stats().max_in_flight, 1);
}

#[tokio::test]
async fn fault_applies_then_expires() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "team/web", "1.0");
    let proxy = Proxy::in_front_of(&registry);
    let client = client();
    let fault = Fault::status(429)
        .method(Method::HEAD)
        .kind(RequestKind::Manifest)
        .retry_after(2)
        .times(1);
    proxy.add_fault(fault);

    let ping = client
        .get(format!("{}/v2/", proxy.url()))
        .send()
        .await
        .expect("GET /v2/");
    let limited = head_manifest(&client, &proxy.url(), "team/web", "1.0", None).await;
    let passed = head_manifest(&client, &proxy.url(), "team/web", "1.0", None).await;

    assert_eq!(ping.status(), 200);
    assert_eq!(limited.status(), 429);
    assert_eq!(header(&limited, "Retry-After"), Some("2"));
    assert_eq!(passed.status(), 200);
    assert_eq!(
        header(&passed, "Docker-Content-Digest"),
        Some(image.digest())
    );
    assert_eq!(proxy.count(Method::HEAD, RequestKind::Manifest), 2);
    let forwarded = registry
        .log()
        .matches("\"HEAD /v2/team/web/manifests/1.0 ")
        .count();
    assert_eq!(
        forwarded, 1,
        "the registry saw {forwarded} HEAD requests, not only the second one"
    );
}

#[tokio::test]
async fn fault_by_path_until_cleared() {
    let registry = Registry::start();
    let _image = TestImage::build(&registry, "team/web", "1.0");
    let proxy = Proxy::in_front_of(&registry);
    let client = client();
    proxy.add_fault(Fault::status(500).path_contains("team/web").body("broken"));

    let first = head_manifest(&client, &proxy.url(), "team/web", "1.0", None).await;
    let second = client
        .get(format!("{}/v2/team/web/manifests/1.0", proxy.url()))
        .send()
        .await
        .expect("GET manifest");
    let second_status = second.status();
    let second_body = second.text().await.expect("body");
    proxy.clear_faults();
    let cleared = head_manifest(&client, &proxy.url(), "team/web", "1.0", None).await;

    assert_eq!(first.status(), 500);
    assert_eq!(second_status, 500);
    assert_eq!(second_body, "broken");
    assert_eq!(cleared.status(), 200);
}

#[tokio::test]
async fn reset_zeroes_counters_but_keeps_faults() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let client = client();
    proxy.add_fault(Fault::status(503).kind(RequestKind::Other));
    client
        .get(format!("{}/v2/", proxy.url()))
        .send()
        .await
        .expect("GET /v2/");

    proxy.reset_counters();
    let after_reset = client
        .get(format!("{}/other", proxy.url()))
        .send()
        .await
        .expect("GET");

    assert_eq!(after_reset.status(), 503);
    let stats = proxy.stats();
    assert_eq!(stats.total(), 1);
    assert_eq!(stats.count(&Method::GET, RequestKind::Ping), 0);
    assert_eq!(proxy.requests().len(), 1);
}

#[tokio::test]
async fn unreachable_upstream_gives_502() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    drop(registry);

    let response = client()
        .get(format!("{}/v2/", proxy.url()))
        .send()
        .await
        .expect("GET /v2/");

    assert_eq!(response.status(), 502);
    assert_eq!(proxy.requests()[0].status, 502);
}

#[test]
fn docker_push_through_proxy() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);

    let image = TestImage::build_and_push(&proxy.host(), "team/web", "1.0", None);

    assert!(image.digest().starts_with("sha256:"));
    let stats = proxy.stats();
    assert!(
        stats.count(&Method::PUT, RequestKind::Manifest) == 1,
        "{stats:?}"
    );
    assert!(
        stats.count(&Method::PUT, RequestKind::Blob) >= 1,
        "{stats:?}"
    );
    assert!(
        stats.count(&Method::POST, RequestKind::Blob) >= 1,
        "{stats:?}"
    );
}

#[test]
fn proxy_stops_on_drop() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let addr = proxy.addr();

    drop(proxy);

    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn redirect_rule_keeps_path_and_query() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let target = Proxy::in_front_of(&registry);
    proxy.add_fault(Fault::redirect(307, target.url()).kind(RequestKind::Manifest));
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");

    let response = no_redirects
        .get(format!("{}/v2/team/web/manifests/1.0?x=1", proxy.url()))
        .send()
        .await
        .expect("GET manifest");

    assert_eq!(response.status(), 307);
    let expected = format!("{}/v2/team/web/manifests/1.0?x=1", target.url());
    assert_eq!(header(&response, "Location"), Some(expected.as_str()));
    assert_eq!(target.stats().total(), 0);
}

#[tokio::test]
async fn drop_header_rule_forwards_without_header() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "team/web", "1.0");
    let proxy = Proxy::in_front_of(&registry);
    proxy.add_fault(Fault::drop_response_header("Docker-Content-Digest").method(Method::HEAD));

    let stripped = head_manifest(&client(), &proxy.url(), "team/web", "1.0", None).await;
    let manifest_url = format!("{}/v2/team/web/manifests/1.0", proxy.url());
    let fetched = client()
        .get(&manifest_url)
        .header("Accept", imgstat_testkit::MANIFEST_ACCEPT)
        .send()
        .await
        .expect("GET manifest");

    assert_eq!(stripped.status(), 200);
    assert_eq!(header(&stripped, "Docker-Content-Digest"), None);
    assert!(header(&stripped, "Content-Type").is_some());
    assert_eq!(
        header(&fetched, "Docker-Content-Digest"),
        Some(image.digest())
    );
}
