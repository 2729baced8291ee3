//! `imgstat serve` through HTTP, with the real status source: the machine's Docker engine
//! and real registries on loopback.

use std::time::Duration;

use http::Method;
use imgstat::server::config::ServerConfig;
use imgstat::server::{RunningServer, open_engine_state, start};
use imgstat_testkit::{Fault, Proxy, Registry, RequestKind, TestContainer, TestImage};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;

const ADMIN_PASSWORD: &str = "admin-password-1";

/// A server with the real status source, an admin, and the local engine as environment 1.
struct Server {
    server: RunningServer,
    client: reqwest::Client,
    jwt: String,
    api_key: String,
    environment: i64,
    _data_dir: TempDir,
}

impl Server {
    async fn start(wait_bound: Duration) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(data_dir.path());
        config.status.wait_bound = wait_bound;
        let state = open_engine_state(&config).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = start(listener, state).unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = server.url();

        let admin = json!({"Username": "admin", "Password": ADMIN_PASSWORD});
        let created: Value = client
            .post(format!("{base}/api/users/admin/init"))
            .json(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let answer: Value = client
            .post(format!("{base}/api/auth"))
            .json(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwt = answer["jwt"].as_str().unwrap().to_owned();
        let key: Value = client
            .post(format!("{base}/api/users/{}/tokens", created["Id"]))
            .bearer_auth(&jwt)
            .json(&json!({"Description": "tests"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let environment: Value = client
            .post(format!("{base}/api/endpoints"))
            .bearer_auth(&jwt)
            .json(&json!({"Name": "local", "URL": "unix:///var/run/docker.sock"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self {
            server,
            client,
            jwt,
            api_key: key["RawAPIKey"].as_str().unwrap().to_owned(),
            environment: environment["Id"].as_i64().unwrap(),
            _data_dir: data_dir,
        }
    }

    /// Asks for a container's status with the API key; returns the HTTP status and body.
    async fn status(&self, container: &str, force: bool) -> (StatusCode, Value) {
        self.status_in(self.environment, container, force).await
    }

    /// Asks for a container's status in environment `environment`.
    async fn status_in(
        &self,
        environment: i64,
        container: &str,
        force: bool,
    ) -> (StatusCode, Value) {
        let url = format!(
            "{}/api/docker/{environment}/containers/{container}/image_status?force={force}",
            self.server.url(),
        );
        let response = self
            .client
            .get(url)
            .header("X-API-Key", &self.api_key)
            // Far longer than any check here; a request that hangs fails the test.
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Adds an environment and returns its id.
    async fn add_environment(&self, name: &str, url: &str) -> i64 {
        let environment: Value = self
            .client
            .post(format!("{}/api/endpoints", self.server.url()))
            .bearer_auth(&self.jwt)
            .json(&json!({"Name": name, "URL": url}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        environment["Id"].as_i64().unwrap()
    }

    async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.server.url()))
            .bearer_auth(&self.jwt)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn manifest_requests(proxy: &Proxy) -> u64 {
    proxy.stats().count_kind(RequestKind::Manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_is_200_for_each_outcome() {
    let server = Server::start(Duration::from_secs(10)).await;
    let registry = Registry::start();
    let current = TestImage::build(&registry, "team/current", "1");
    let mut moved = TestImage::build(&registry, "team/moved", "1");
    let local = TestImage::build_local("imgstat-serve-local");
    let on_current = TestContainer::create(current.reference(), "current");
    let on_moved = TestContainer::create(moved.reference(), "moved");
    let on_local = TestContainer::create(local.reference(), "local");
    moved.push_new_content();

    let gone = Registry::start();
    let orphan = TestImage::build(&gone, "team/gone", "1");
    let on_gone = TestContainer::create(orphan.reference(), "gone");
    drop(gone);

    let cases = [
        (on_current.id(), "updated"),
        (on_moved.id(), "outdated"),
        (on_local.id(), "skipped"),
        (on_gone.id(), "error"),
    ];
    for (container, expected) in cases {
        let (code, body) = server.status(container, false).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["Status"], expected, "{container}: {body}");
    }

    let (_, body) = server.status(on_gone.id(), false).await;
    assert_eq!(body["Message"], "unable to determine image status");
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");

    let (code, body) = server.status("no-such-container-anywhere", false).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["Status"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_status_until_forced() {
    let server = Server::start(Duration::from_secs(10)).await;
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let mut image = TestImage::build_and_push(&proxy.host(), "team/cached", "1", None);
    let container = TestContainer::create(image.reference(), "cached");
    proxy.reset_counters();

    let (_, body) = server.status(container.id(), false).await;
    assert_eq!(body["Status"], "updated");
    assert_eq!(manifest_requests(&proxy), 1);

    let (_, body) = server.status(container.id(), false).await;
    assert_eq!(body["Status"], "updated");
    assert_eq!(
        manifest_requests(&proxy),
        1,
        "a cached status asked the registry"
    );

    image.push_new_content();
    proxy.reset_counters();
    let (_, body) = server.status(container.id(), false).await;
    assert_eq!(
        body["Status"], "updated",
        "the cached status should still be served"
    );
    assert_eq!(manifest_requests(&proxy), 0);

    let (_, body) = server.status(container.id(), true).await;
    assert_eq!(body["Status"], "outdated");
    assert_eq!(manifest_requests(&proxy), 1);
    assert_eq!(proxy.count(Method::HEAD, RequestKind::Manifest), 1);

    let (_, body) = server.status(container.id(), false).await;
    assert_eq!(body["Status"], "outdated", "force stores the fresh result");
    assert_eq!(manifest_requests(&proxy), 1);

    let metrics = server.metrics().await;
    assert!(
        metrics.contains("imgstat_status_cache_total{result=\"hit\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("imgstat_checks_total{status=\"outdated\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("imgstat_registry_requests_total{kind=\"manifest\",method=\"HEAD\""),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_one_check() {
    let server = Server::start(Duration::from_secs(10)).await;
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let image = TestImage::build_and_push(&proxy.host(), "team/crowd", "1", None);
    let container = TestContainer::create(image.reference(), "crowd");
    proxy.reset_counters();
    // Slow answers keep the first check running while the other requests arrive.
    proxy.set_latency(Duration::from_millis(200));

    let requests = (0..100).map(|_| server.status(container.id(), false));
    let answers = futures::future::join_all(requests).await;
    for (code, body) in &answers {
        assert_eq!(*code, StatusCode::OK);
        assert_eq!(body["Status"], "updated", "{body}");
    }
    assert_eq!(manifest_requests(&proxy), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_registry_answers_processing_first() {
    let server = Server::start(Duration::from_millis(300)).await;
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let image = TestImage::build_and_push(&proxy.host(), "team/slow", "1", None);
    let container = TestContainer::create(image.reference(), "slow");
    proxy.set_latency(Duration::from_millis(700));

    let (code, body) = server.status(container.id(), false).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["Status"], "processing", "{body}");

    // The check goes on in the background: ping and HEAD take two slow round trips.
    let mut last = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, body) = server.status(container.id(), false).await;
        if body["Status"] != "processing" {
            last = body;
            break;
        }
    }
    assert_eq!(last["Status"], "updated", "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_engine_delays_only_its_checks() {
    let server = Server::start(Duration::from_millis(500)).await;
    // An engine that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("tcp://{}", silent.local_addr().unwrap());
    let accepted = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(4).flatten() {
            held.push(stream);
        }
        held
    });
    let silent_environment = server.add_environment("silent", &silent_url).await;

    let (code, body) = server
        .status_in(silent_environment, "anything", false)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["Status"], "processing", "{body}");

    // The local engine answers while the silent one is still being waited for.
    let (code, body) = server.status("no-such-container-here", true).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["Status"], "skipped", "{body}");
    let (_, body) = server.status("no-such-container-either", false).await;
    assert_eq!(body["Status"], "skipped", "{body}");

    // The silent engine's check ends in `error` once its connection times out.
    let mut last = Value::Null;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, body) = server
            .status_in(silent_environment, "anything", false)
            .await;
        if body["Status"] != "processing" {
            last = body;
            break;
        }
    }
    assert_eq!(last["Status"], "error", "{last}");
    drop(accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_retries_registry_that_failed() {
    let server = Server::start(Duration::from_secs(10)).await;
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let image = TestImage::build_and_push(&proxy.host(), "team/flaky", "1", None);
    let container = TestContainer::create(image.reference(), "flaky");
    proxy.reset_counters();
    proxy.add_fault(Fault::status(503).kind(RequestKind::Ping).times(1));

    let (_, body) = server.status(container.id(), false).await;
    assert_eq!(body["Status"], "error", "{body}");

    // The registry answers again: a forced check asks it at once instead of repeating
    // the remembered failure.
    let (_, body) = server.status(container.id(), true).await;
    assert_eq!(body["Status"], "updated", "{body}");
    assert_eq!(proxy.stats().count_kind(RequestKind::Ping), 2);
}

#[test]
fn invalid_secrets_are_not_echoed() {
    let data_dir = tempfile::tempdir().unwrap();
    let cases = [
        ("IMGSTAT_JWT_SECRET", "short-but-secret", "--jwt-secret"),
        (
            "IMGSTAT_CREDENTIAL_KEY",
            "Z29pqOPc/61fh00B6He/!1bJ+xR52m3ZdC4StypDtn0=",
            "--credential-key",
        ),
    ];
    for (variable, value, option) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_imgstat"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .env(variable, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{variable}: {stderr}");
        assert!(stderr.contains(option), "{variable}: {stderr}");
        assert!(stderr.contains(variable), "{variable}: {stderr}");
        assert!(!stderr.contains(value), "{variable} was echoed: {stderr}");
    }
}
