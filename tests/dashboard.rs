//! The dashboard in a real browser: Debian's Chromium, headless and offline, driven through
//! chromedriver against a server with the real status source, the machine's Docker engine
//! and a registry on loopback.
//!
//! Set `IMGSTAT_DASHBOARD_SCREENSHOT=docs/dashboard.png` to refresh the README's
//! screenshot; without it the screenshot goes to Cargo's temporary directory.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use imgstat::server::config::ServerConfig;
use imgstat::server::{RunningServer, open_engine_state, start};
use imgstat_testkit::{ChromeDriver, Proxy, Registry, TestContainer, TestImage};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;

const ADMIN_PASSWORD: &str = "admin-password-1";
const VIEWER_PASSWORD: &str = "viewer-password-1";

/// Upper bound on waiting for the page. A status check on loopback takes well under a
/// second, so the rest is room for a busy machine.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Held by each test for its whole run. One Chromium at a time keeps the tests from
/// slowing each other down on a small machine, and keeps the second test's container
/// out of the first test's search, which matches every container of this process.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server with the real status source and an admin, on a loopback port.
struct Server {
    server: RunningServer,
    client: reqwest::Client,
    admin_jwt: String,
    _data_dir: TempDir,
}

impl Server {
    /// Starts a server whose status requests return `processing` after `wait_bound`.
    async fn start(wait_bound: Duration) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::new(data_dir.path());
        config.status.wait_bound = wait_bound;
        let state = open_engine_state(&config).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = start(listener, state).unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();

        let mut server = Self {
            server,
            client,
            admin_jwt: String::new(),
            _data_dir: data_dir,
        };
        let admin = json!({"Username": "admin", "Password": ADMIN_PASSWORD});
        server.post("/api/users/admin/init", &admin).await;
        let login = server.post("/api/auth", &admin).await;
        server.admin_jwt = login["jwt"].as_str().unwrap().to_owned();
        server
    }

    fn url(&self) -> String {
        self.server.url()
    }

    /// Sends a JSON request as the admin once logged in; panics unless it succeeds.
    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.url()))
            .json(body);
        if !self.admin_jwt.is_empty() {
            request = request.bearer_auth(&self.admin_jwt);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn post(&self, path: &str, body: &Value) -> Value {
        self.send(reqwest::Method::POST, path, body).await
    }

    async fn create_environment(&self, name: &str, url: &str) -> i64 {
        let environment = self
            .post("/api/endpoints", &json!({"Name": name, "URL": url}))
            .await;
        environment["Id"].as_i64().unwrap()
    }

    async fn create_viewer(&self, granted_environment: i64) {
        let user = self
            .post(
                "/api/users",
                &json!({"Username": "viewer", "Password": VIEWER_PASSWORD, "Role": "user"}),
            )
            .await;
        let path = format!("/api/endpoints/{granted_environment}/access");
        self.send(
            reqwest::Method::PUT,
            &path,
            &json!({"UserIds": [user["Id"]]}),
        )
        .await;
    }
}

/// A browser session on a fresh headless Chromium.
struct Browser {
    client: Client,
    _driver: ChromeDriver,
}

impl Browser {
    async fn start(width: u32, height: u32) -> Self {
        let driver = ChromeDriver::start();
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(driver.capabilities(width, height))
            .connect(driver.url())
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "failed to start Chromium through chromedriver: {error}\n{}",
                    driver.log()
                )
            });
        Self {
            client,
            _driver: driver,
        }
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no element {css}: {error}"))
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn log_in(&self, username: &str, password: &str) {
        let field = self.find("#username").await;
        field.clear().await.unwrap();
        field.send_keys(username).await.unwrap();
        let field = self.find("#password").await;
        field.clear().await.unwrap();
        field.send_keys(password).await.unwrap();
        self.click("#login-submit").await;
    }

    /// Waits until `script` returns true in the page, running it every 100 ms.
    async fn wait_until(&self, description: &str, script: &str) {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let value = self.client.execute(script, Vec::new()).await.unwrap();
            if value == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {description}; page text:\n{}",
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the badge of the container row named `name` shows `status`.
    async fn wait_for_status(&self, name: &str, status: &str) {
        let script = format!(
            "const badge = document.querySelector('{}');\
             return badge !== null && badge.dataset.status === '{status}';",
            badge_css(name)
        );
        self.wait_until(&format!("{name} to be {status}"), &script)
            .await;
    }

    async fn status_of(&self, name: &str) -> String {
        self.find(&badge_css(name))
            .await
            .attr("data-status")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Returns the statuses of the rows shown, in page order.
    async fn shown_statuses(&self) -> Vec<String> {
        let value = self
            .client
            .execute(
                "return Array.from(document.querySelectorAll('tbody.container'))\
                 .filter((row) => !row.hidden)\
                 .map((row) => row.querySelector('[data-status]').dataset.status);",
                Vec::new(),
            )
            .await
            .unwrap();
        serde_json::from_value(value).unwrap()
    }

    /// Waits until the summary counts `count` rows of `filter`. The summary is drawn after
    /// the rows, so it may lag a badge briefly.
    async fn wait_for_chip_count(&self, filter: &str, count: &str) {
        let script = format!(
            "return document.querySelector('[data-filter=\"{filter}\"] .chip-count')\
             .textContent === '{count}';"
        );
        self.wait_until(&format!("the {filter} count to be {count}"), &script)
            .await;
    }

    async fn session_token(&self) -> Value {
        self.client
            .execute("return sessionStorage.getItem('imgstat.jwt');", Vec::new())
            .await
            .unwrap()
    }
}

fn row_css(name: &str) -> String {
    format!("tbody[data-container-name=\"{name}\"]")
}

fn badge_css(name: &str) -> String {
    format!("{} .status-cell [data-status]", row_css(name))
}

/// Returns where the screenshot goes: `IMGSTAT_DASHBOARD_SCREENSHOT`, relative to the
/// repository, or Cargo's temporary directory for integration tests.
fn screenshot_path() -> PathBuf {
    match std::env::var_os("IMGSTAT_DASHBOARD_SCREENSHOT") {
        Some(path) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path),
        None => temporary_path("dashboard.png"),
    }
}

fn temporary_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_shows_statuses_and_rechecks() {
    let _browser_turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = Server::start(Duration::from_millis(500)).await;
    server
        .create_environment("local", "unix:///var/run/docker.sock")
        .await;

    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let mut web = TestImage::build_and_push(&proxy.host(), "shop/web", "2.4", None);
    let mut api = TestImage::build_and_push(&proxy.host(), "shop/api", "1.9", None);
    let mut worker = TestImage::build_and_push(&proxy.host(), "shop/worker", "3", None);
    let builder = TestImage::build_local("dashboard-builder");
    let gone_registry = Registry::start();
    let orphan = TestImage::build(&gone_registry, "shop/legacy", "0.9");

    let on_web = TestContainer::run(web.reference(), "shop-web");
    let on_api = TestContainer::run(api.reference(), "shop-api");
    let on_worker = TestContainer::create(worker.reference(), "shop-worker");
    let on_builder = TestContainer::create(builder.reference(), "shop-builder");
    let on_orphan = TestContainer::create(orphan.reference(), "shop-legacy");
    let api_old_digest = api.digest().to_owned();
    let api_new_digest = api.push_new_content().to_owned();
    drop(gone_registry);

    let browser = Browser::start(1200, 900).await;
    // The engine is shared with other tests: show only this process's containers.
    let search = format!("-{}-", std::process::id());
    browser
        .client
        .goto(&format!("{}/?search={search}", server.url()))
        .await
        .unwrap();

    browser.log_in("admin", "wrong-password").await;
    browser
        .wait_until(
            "the bad login message",
            "return document.getElementById('login-message').textContent \
             === 'Wrong username or password.';",
        )
        .await;
    // A slow registry makes the first responses `processing`, and the page requests those
    // statuses again by itself until the checks are done.
    proxy.set_latency(Duration::from_millis(1000));
    browser.log_in("admin", ADMIN_PASSWORD).await;
    browser.wait_for_status(on_api.name(), "processing").await;
    browser
        .wait_until(
            "a processing row to be counted",
            "return document.querySelector('[data-filter=\"processing\"] .chip-count')\
             .textContent !== '0';",
        )
        .await;

    let started = Instant::now();
    let expected = [
        (on_web.name(), "updated"),
        (on_api.name(), "outdated"),
        (on_worker.name(), "updated"),
        (on_builder.name(), "skipped"),
        (on_orphan.name(), "error"),
    ];
    for (name, status) in expected {
        browser.wait_for_status(name, status).await;
    }
    eprintln!("statuses shown {:?} after processing", started.elapsed());
    proxy.set_latency(Duration::ZERO);

    for (filter, count) in [
        ("all", "5"),
        ("outdated", "1"),
        ("updated", "2"),
        ("skipped", "1"),
        ("error", "1"),
        ("processing", "0"),
        ("preparing", "0"),
    ] {
        browser.wait_for_chip_count(filter, count).await;
    }
    let environment = browser.text("section.environment h2").await;
    assert_eq!(environment, "local");
    let image = browser
        .text(&format!("{} .image-cell", row_css(on_api.name())))
        .await;
    assert_eq!(image, api.reference());

    // Details: the checked reference and, for an admin, both digests.
    browser
        .click(&format!("{} .details-toggle", row_css(on_api.name())))
        .await;
    let detail = browser
        .text(&format!("{} .detail-row", row_css(on_api.name())))
        .await;
    assert!(detail.contains(api.reference()), "{detail}");
    assert!(detail.contains(&api_old_digest), "{detail}");
    assert!(detail.contains(&api_new_digest), "{detail}");
    assert!(detail.contains("Checked at"), "{detail}");
    let tooltip = browser
        .find(&badge_css(on_api.name()))
        .await
        .attr("title")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(tooltip.contains(api.reference()), "{tooltip}");

    let screenshot = browser.client.screenshot().await.unwrap();
    let path = screenshot_path();
    std::fs::write(&path, screenshot).unwrap();
    eprintln!("screenshot written to {}", path.display());

    // At phone width each row becomes a card, and nothing scrolls sideways.
    browser.client.set_window_size(390, 844).await.unwrap();
    let overflow = browser
        .client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        overflow,
        json!(0),
        "the page scrolls sideways at phone width"
    );
    let phone = browser.client.screenshot().await.unwrap();
    std::fs::write(temporary_path("dashboard-phone.png"), phone).unwrap();
    browser.client.set_window_size(1200, 900).await.unwrap();

    // Sorting by status puts what needs attention first.
    browser
        .find("#sort")
        .await
        .select_by_value("status")
        .await
        .unwrap();
    assert_eq!(
        browser.shown_statuses().await,
        ["outdated", "error", "updated", "updated", "skipped"]
    );

    // Filtering by status shows only those rows.
    browser.click("[data-filter=\"updated\"]").await;
    assert_eq!(browser.shown_statuses().await, ["updated", "updated"]);
    browser.click("[data-filter=\"updated\"]").await;
    assert_eq!(browser.shown_statuses().await.len(), 5);

    // The details of an error name no registry: the server log has the cause.
    browser
        .click(&format!("{} .details-toggle", row_css(on_orphan.name())))
        .await;
    let detail = browser
        .text(&format!("{} .detail-row", row_css(on_orphan.name())))
        .await;
    assert!(
        detail.contains("unable to determine image status"),
        "{detail}"
    );
    assert!(!detail.contains(orphan.reference()), "{detail}");

    // A re-check of one row shows a spinner while the registry responds slowly, then the
    // new status.
    web.push_new_content();
    proxy.set_latency(Duration::from_millis(1500));
    let recheck = format!("{} button.recheck", row_css(on_web.name()));
    browser.click(&recheck).await;
    browser
        .wait_until(
            "the re-check spinner",
            &format!(
                "const button = document.querySelector('{recheck}');\
                 return button.disabled && button.querySelector('.spinner') !== null;"
            ),
        )
        .await;
    assert_eq!(
        browser.status_of(on_web.name()).await,
        "updated",
        "the old status stays while the re-check runs"
    );
    browser.wait_for_status(on_web.name(), "outdated").await;
    let button = browser.find(&recheck).await;
    assert_eq!(button.text().await.unwrap(), "Re-check");
    assert_eq!(
        button.prop("disabled").await.unwrap().as_deref(),
        Some("false")
    );
    proxy.set_latency(Duration::ZERO);

    // A re-check of the environment, started from the keyboard, finds the moved tag of
    // the worker.
    worker.push_new_content();
    browser
        .find("section.environment button.recheck-all")
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    browser.wait_for_status(on_worker.name(), "outdated").await;
    browser.wait_for_chip_count("outdated", "3").await;

    browser.click("#logout").await;
    browser.find("#login-form").await;
    assert_eq!(browser.session_token().await, Value::Null);
    let login_message = browser.text("#login-message").await;
    assert_eq!(login_message, "You are logged out.");

    browser.client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_never_sees_environment_without_access() {
    let _browser_turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = Server::start(Duration::from_secs(3)).await;
    let secret_environment = server
        .create_environment("production", "unix:///var/run/docker.sock")
        .await;
    let granted = server
        .create_environment("staging", "unix:///nonexistent/imgstat-staging.sock")
        .await;
    server.create_viewer(granted).await;
    let image = TestImage::build_local("dashboard-secret");
    let secret = TestContainer::create(image.reference(), "secret-db");

    let browser = Browser::start(1000, 700).await;
    browser.client.goto(&server.url()).await.unwrap();
    browser.log_in("viewer", VIEWER_PASSWORD).await;

    browser
        .wait_until(
            "the failure of the staging engine",
            "const message = document.querySelector('section.environment .environment-message');\
             return message !== null && message.textContent.includes('did not answer');",
        )
        .await;
    let sections = browser
        .client
        .find_all(Locator::Css("section.environment"))
        .await
        .unwrap();
    assert_eq!(sections.len(), 1);
    assert_eq!(
        sections[0].attr("data-environment-name").await.unwrap(),
        Some("staging".to_owned())
    );
    let page = browser.client.source().await.unwrap();
    assert!(!page.contains("production"), "{page}");
    assert!(!page.contains(secret.name()), "{page}");
    browser.wait_for_chip_count("all", "0").await;

    // The viewer's token cannot list the other environment either.
    let token = browser.session_token().await;
    let response = server
        .client
        .get(format!(
            "{}/api/docker/{secret_environment}/containers",
            server.url()
        ))
        .bearer_auth(token.as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);

    // An invalid token sends the user back to the login form with what to do.
    browser
        .client
        .execute(
            "sessionStorage.setItem('imgstat.jwt', 'not-a-token');",
            Vec::new(),
        )
        .await
        .unwrap();
    browser.client.refresh().await.unwrap();
    browser
        .wait_until(
            "the session message",
            "return document.getElementById('login-message').textContent \
             === 'Your session has ended. Log in again to continue.';",
        )
        .await;

    // A stopped server is reported as unreachable, not as a raw error.
    browser.log_in("viewer", VIEWER_PASSWORD).await;
    browser.find("section.environment").await;
    server.server.stop().await.unwrap();
    browser.click("#reload").await;
    browser
        .wait_until(
            "the unreachable notice",
            "const notice = document.getElementById('notice');\
             return !notice.hidden && notice.textContent.includes('cannot be reached');",
        )
        .await;

    browser.client.close().await.unwrap();
}
