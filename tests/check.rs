//! `imgstat check` against the machine's Docker engine and real registries on loopback.

use std::collections::HashMap;
use std::process::Output;

use imgstat_testkit::{
    Credentials, DockerConfigDir, Proxy, Registry, RequestKind, TestContainer, TestImage,
    TokenPolicy,
};
use serde_json::Value;

/// Runs the `imgstat` binary with `args`, reading credentials from `config` only.
fn imgstat(config: &DockerConfigDir, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_imgstat"))
        .args(args)
        .env("DOCKER_CONFIG", config.path())
        .env(
            "RUST_LOG",
            std::env::var("IMGSTAT_TEST_LOG").unwrap_or_default(),
        )
        .output()
        .expect("the imgstat binary runs")
}

/// Runs `imgstat check --json` on the named containers and returns each report by name.
fn check(config: &DockerConfigDir, containers: &[&TestContainer]) -> HashMap<String, Value> {
    let mut args = vec!["check", "--json"];
    args.extend(containers.iter().map(|c| c.name()));
    let output = imgstat(config, &args);
    // Shown by the test harness when the test fails.
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "imgstat check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    reports
        .into_iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r))
        .collect()
}

fn status_of<'a>(reports: &'a HashMap<String, Value>, container: &TestContainer) -> &'a str {
    reports[container.name()]["status"].as_str().unwrap()
}

fn message_of<'a>(reports: &'a HashMap<String, Value>, container: &TestContainer) -> &'a str {
    reports[container.name()]["message"].as_str().unwrap()
}

#[test]
fn moved_tag_turns_updated_into_outdated() {
    let registry = Registry::start();
    let mut image = TestImage::build(&registry, "team/web", "1.0");
    let container = TestContainer::run(image.reference(), "web");
    let config = DockerConfigDir::new();

    let reports = check(&config, &[&container]);
    assert_eq!(status_of(&reports, &container), "updated", "{reports:?}");
    assert_eq!(reports[container.name()]["container"], container.id());
    assert_eq!(reports[container.name()]["remote_digest"], image.digest());
    assert_eq!(
        reports[container.name()]["local_digests"][0],
        image.digest()
    );

    let old_digest = image.digest().to_owned();
    image.push_new_content();
    let reports = check(&config, &[&container]);
    assert_eq!(status_of(&reports, &container), "outdated", "{reports:?}");
    assert_eq!(
        reports[container.name()]["local_digests"][0],
        old_digest.as_str()
    );
    assert_eq!(reports[container.name()]["remote_digest"], image.digest());

    let output = imgstat(&config, &["check", "--exit-code", container.name()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("outdated"), "{table}");
}

#[test]
fn exit_code_is_zero_without_outdated() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "team/api", "2");
    let container = TestContainer::run(image.reference(), "api");
    let config = DockerConfigDir::new();

    let output = imgstat(&config, &["check", "--exit-code", container.name()]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn never_pushed_image_is_skipped() {
    let image = TestImage::build_local("imgstat-local");
    let container = TestContainer::create(image.reference(), "local");
    let config = DockerConfigDir::new();

    let reports = check(&config, &[&container]);
    assert_eq!(status_of(&reports, &container), "skipped");
    assert!(
        message_of(&reports, &container).contains("built locally or never pushed"),
        "{reports:?}"
    );

    let output = imgstat(&config, &["check", container.name()]);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("built locally or never pushed"), "{table}");
}

#[test]
fn digest_pinned_reference_is_skipped() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "team/pinned", "1");
    let container = TestContainer::create(&image.digest_reference(), "pinned");
    let config = DockerConfigDir::new();

    let reports = check(&config, &[&container]);
    assert_eq!(status_of(&reports, &container), "skipped", "{reports:?}");
    assert!(message_of(&reports, &container).contains("pinned by digest"));
}

#[test]
fn tag_and_digest_reference_follows_tag() {
    let registry = Registry::start();
    let mut image = TestImage::build(&registry, "team/both", "1");
    let both = format!("{}@{}", image.reference(), image.digest());
    let container = TestContainer::create(&both, "both");
    let config = DockerConfigDir::new();

    let reports = check(&config, &[&container]);
    assert_eq!(status_of(&reports, &container), "updated", "{reports:?}");

    image.push_new_content();
    let reports = check(&config, &[&container]);
    assert_eq!(status_of(&reports, &container), "outdated", "{reports:?}");
}

#[test]
fn missing_container_is_skipped() {
    let config = DockerConfigDir::new();
    let name = imgstat_testkit::unique_name("absent");
    let output = imgstat(&config, &["check", "--json", &name]);
    assert!(output.status.success(), "{output:?}");
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reports[0]["status"], "skipped");
    assert!(reports[0]["message"].as_str().unwrap().contains(&name));
}

#[test]
fn htpasswd_registry_needs_credentials() {
    let user = Credentials::random("reader");
    let registry = Registry::with_htpasswd(std::slice::from_ref(&user));
    let image = TestImage::build(&registry, "private/app", "1");
    let container = TestContainer::create(image.reference(), "basic");

    let with = DockerConfigDir::with_auth(registry.host(), &user);
    let reports = check(&with, &[&container]);
    assert_eq!(status_of(&reports, &container), "updated", "{reports:?}");

    let without = DockerConfigDir::new();
    let reports = check(&without, &[&container]);
    assert_eq!(status_of(&reports, &container), "error", "{reports:?}");
    assert!(
        message_of(&reports, &container).contains("unauthenticated"),
        "{reports:?}"
    );

    let wrong = DockerConfigDir::with_auth(registry.host(), &Credentials::random("reader"));
    let reports = check(&wrong, &[&container]);
    assert_eq!(status_of(&reports, &container), "error", "{reports:?}");
    assert!(
        !message_of(&reports, &container).contains(&user.password),
        "the password leaked into the message"
    );
}

#[test]
fn token_registry_needs_credentials() {
    let user = Credentials::random("puller");
    let policy = TokenPolicy::new()
        .user(&user)
        .pull(&user.username, "private/*");
    let registry = Registry::with_token_auth(policy);
    let image = TestImage::build(&registry, "private/app", "1");
    let container = TestContainer::create(image.reference(), "token");

    let with = DockerConfigDir::with_auth(registry.host(), &user);
    let reports = check(&with, &[&container]);
    assert_eq!(status_of(&reports, &container), "updated", "{reports:?}");

    let without = DockerConfigDir::new();
    let reports = check(&without, &[&container]);
    assert_eq!(status_of(&reports, &container), "error", "{reports:?}");
}

#[test]
fn stopped_registry_affects_only_its_containers() {
    let up = Registry::start();
    let down = Registry::start();
    let healthy = TestImage::build(&up, "team/up", "1");
    let orphaned = TestImage::build(&down, "team/down", "1");
    let on_up = TestContainer::create(healthy.reference(), "on-up");
    let on_down = TestContainer::create(orphaned.reference(), "on-down");
    let down_host = down.host().to_owned();
    drop(down);

    let config = DockerConfigDir::new();
    let reports = check(&config, &[&on_up, &on_down]);
    assert_eq!(status_of(&reports, &on_up), "updated", "{reports:?}");
    assert_eq!(status_of(&reports, &on_down), "error", "{reports:?}");
    assert!(
        message_of(&reports, &on_down).contains(&down_host),
        "{reports:?}"
    );
}

#[test]
fn one_manifest_request_per_distinct_tag() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let images: Vec<TestImage> = (0..4)
        .map(|i| TestImage::build_and_push(&proxy.host(), &format!("fleet/app{i}"), "1", None))
        .collect();
    let containers: Vec<TestContainer> = (0..20)
        .map(|i| TestContainer::create(images[i % 4].reference(), "fleet"))
        .collect();
    proxy.reset_counters();

    let config = DockerConfigDir::new();
    let refs: Vec<&TestContainer> = containers.iter().collect();
    let reports = check(&config, &refs);
    for container in &containers {
        assert_eq!(status_of(&reports, container), "updated", "{reports:?}");
    }
    assert_eq!(proxy.stats().count_kind(RequestKind::Manifest), 4);
    assert_eq!(proxy.count(http::Method::HEAD, RequestKind::Manifest), 4);
    assert_eq!(proxy.stats().count_kind(RequestKind::Ping), 1);
}

#[test]
fn default_lists_running_containers_only() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "team/listed", "1");
    let running = TestContainer::run(image.reference(), "running");
    let stopped = TestContainer::create(image.reference(), "stopped");
    let config = DockerConfigDir::new();

    let output = imgstat(&config, &["check", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let names: Vec<String> = serde_json::from_slice::<Vec<Value>>(&output.stdout)
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.iter().any(|n| n == running.name()), "{names:?}");
    assert!(!names.iter().any(|n| n == stopped.name()), "{names:?}");

    let output = imgstat(&config, &["check", "--json", "--all"]);
    let names: Vec<String> = serde_json::from_slice::<Vec<Value>>(&output.stdout)
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.iter().any(|n| n == stopped.name()), "{names:?}");
}

#[test]
fn unreachable_engine_exits_2_with_advice() {
    let config = DockerConfigDir::new();
    let output = imgstat(
        &config,
        &["check", "--host", "unix:///nonexistent/docker.sock"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unix:///nonexistent/docker.sock"),
        "{stderr}"
    );
    assert!(stderr.contains("DOCKER_HOST"), "{stderr}");
}

#[test]
fn invalid_engine_address_exits_2() {
    let config = DockerConfigDir::new();
    let output = imgstat(&config, &["check", "--host", "docker.sock"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"docker.sock\""), "{stderr}");
}

#[test]
fn one_token_request_carries_many_scopes() {
    let user = Credentials::random("fleet");
    let policy = TokenPolicy::new()
        .user(&user)
        .pull(&user.username, "fleet/*");
    let registry = Registry::with_token_auth(policy);
    let images: Vec<TestImage> = (0..3)
        .map(|i| TestImage::build(&registry, &format!("fleet/svc{i}"), "1"))
        .collect();
    let containers: Vec<TestContainer> = images
        .iter()
        .map(|image| TestContainer::create(image.reference(), "scoped"))
        .collect();
    let token_server = registry
        .token_server()
        .expect("a token registry has a token server");
    token_server.reset_counters();

    let config = DockerConfigDir::with_auth(registry.host(), &user);
    let refs: Vec<&TestContainer> = containers.iter().collect();
    let reports = check(&config, &refs);
    for container in &containers {
        assert_eq!(status_of(&reports, container), "updated", "{reports:?}");
    }

    let requests = token_server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let mut scopes = requests[0].scopes.clone();
    scopes.sort();
    assert_eq!(
        scopes,
        vec![
            "repository:fleet/svc0:pull",
            "repository:fleet/svc1:pull",
            "repository:fleet/svc2:pull"
        ]
    );
    assert_eq!(requests[0].account.as_deref(), Some(user.username.as_str()));
}

#[test]
fn anonymous_token_registry_is_checked() {
    let policy = TokenPolicy::new().anonymous_pull("public/*");
    let registry = Registry::with_token_auth(policy);
    let image = TestImage::build(&registry, "public/app", "1");
    let container = TestContainer::create(image.reference(), "anonymous");
    let token_server = registry
        .token_server()
        .expect("a token registry has a token server");
    token_server.reset_counters();

    let reports = check(&DockerConfigDir::new(), &[&container]);
    assert_eq!(status_of(&reports, &container), "updated", "{reports:?}");
    let requests = token_server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].account, None);
}

#[test]
fn credential_helper_supplies_credentials() {
    let user = Credentials::random("helper");
    let registry = Registry::with_htpasswd(std::slice::from_ref(&user));
    let image = TestImage::build(&registry, "private/helped", "1");
    let container = TestContainer::create(image.reference(), "helped");

    // A credential helper on PATH that knows this one registry, as docker-credential-pass
    // or docker-credential-secretservice would.
    let helpers = tempfile::tempdir().unwrap();
    let script = helpers.path().join("docker-credential-imgstattest");
    let answer = serde_json::json!({
        "ServerURL": registry.host(),
        "Username": user.username,
        "Secret": user.password,
    });
    let body = format!(
        "#!/bin/sh\nread server\nif [ \"$server\" = \"{}\" ]; then echo '{answer}'; \
         else echo 'credentials not found in native keychain'; exit 1; fi\n",
        registry.host()
    );
    write_executable(&script, &body);

    let config = DockerConfigDir::new();
    std::fs::write(config.config_path(), r#"{"credsStore":"imgstattest"}"#).unwrap();
    let path = format!(
        "{}:{}",
        helpers.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_imgstat"))
        .args(["check", "--json", container.name()])
        .env("DOCKER_CONFIG", config.path())
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reports[0]["status"], "updated", "{reports:?}");
}

/// Writes an executable script from a child process, so that no thread of this test
/// process holds it open for writing when it runs ("text file busy").
fn write_executable(path: &std::path::Path, body: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "writing {} failed",
        path.display()
    );
}

#[test]
fn listing_follows_config_image_after_tag_moved() {
    let registry = Registry::start();
    let mut image = TestImage::build(&registry, "team/listed-moved", "1");
    let container = TestContainer::run(image.reference(), "listed-moved");
    // The engine's tag now names the new image, so the listing shows the old image's ID.
    image.push_new_content();
    let config = DockerConfigDir::new();

    let output = imgstat(&config, &["check", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let report = reports
        .iter()
        .find(|r| r["name"] == container.name())
        .unwrap_or_else(|| panic!("{} not listed: {reports:?}", container.name()));
    assert_eq!(report["status"], "outdated", "{report}");
    assert_eq!(report["image"], image.reference(), "{report}");
}

#[test]
fn invalid_container_name_is_usage_error() {
    let config = DockerConfigDir::new();
    for name in ["", "/web", "web/../db", "a b"] {
        let output = imgstat(&config, &["check", name]);
        assert_eq!(output.status.code(), Some(2), "{name:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("expected a container name or ID"),
            "{stderr}"
        );
    }
}
