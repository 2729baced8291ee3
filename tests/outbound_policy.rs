//! The outbound policy of `imgstat check` (`--registry-allow`), against the machine's
//! Docker engine and `docker-registry` on loopback. Each test leaves a loopback port or
//! address out of the allow-list, so a refused request would have gone to a server the
//! test runs itself and which counts what it receives. No test sends anything to a
//! link-local or metadata address.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{check, check_with_env, imgstat};
use imgstat_testkit::{
    DockerConfigDir, Fault, Proxy, Registry, RequestKind, TestContainer, TestImage, TokenPolicy,
};

/// A loopback address other than 127.0.0.1. Linux routes all of 127.0.0.0/8 to the
/// loopback interface, so a server can listen on it without any setup.
const OTHER_LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[test]
fn redirect_outside_allow_list_not_followed() {
    let registry = Registry::start();
    let origin = Proxy::in_front_of(&registry);
    // Another port in front of the same registry, so that following the redirect would
    // succeed.
    let elsewhere = Proxy::in_front_of(&registry);
    let image = TestImage::build_and_push(&origin.host(), "team/redirected", "1", None);
    let container = TestContainer::create(image.reference(), "redirected");
    let config = DockerConfigDir::new();
    origin.add_fault(Fault::redirect(307, elsewhere.url()).kind(RequestKind::Manifest));

    let both = format!("{},{}", origin.host(), elsewhere.host());
    let followed = check(&config, &["--registry-allow", &both], &[container.name()]);
    assert_eq!(followed.status(container.name()), "updated", "{followed:?}");
    assert!(elsewhere.stats().count_kind(RequestKind::Manifest) > 0);

    elsewhere.reset_counters();
    let origin_only = origin.host();
    let refused = check(
        &config,
        &["--registry-allow", &origin_only],
        &[container.name()],
    );
    assert_eq!(refused.status(container.name()), "error", "{refused:?}");
    let message = refused.message(container.name());
    let target = format!("{} is not allowed by the outbound policy", elsewhere.host());
    assert!(message.contains(&target), "{message}");
    assert_eq!(elsewhere.stats().total(), 0, "{:?}", elsewhere.requests());
}

#[test]
fn token_realm_outside_allow_list_not_asked() {
    let policy = TokenPolicy::new().anonymous_pull("public/*");
    let registry = Registry::with_token_auth(policy);
    let token_server = registry
        .token_server()
        .expect("a token registry has a token server");
    let image = TestImage::build(&registry, "public/app", "1");
    let container = TestContainer::create(image.reference(), "realm");
    let config = DockerConfigDir::new();
    token_server.reset_counters();

    // The allow-list from the environment, with the realm's host and port.
    let both = format!("{}, {}", registry.host(), token_server.addr());
    let env = [("IMGSTAT_REGISTRY_ALLOW", both.as_str())];
    let admitted = check_with_env(&config, &env, &[], &[container.name()]);
    assert_eq!(admitted.status(container.name()), "updated", "{admitted:?}");
    assert!(token_server.request_count() > 0);

    token_server.reset_counters();
    let registry_only = [("IMGSTAT_REGISTRY_ALLOW", registry.host())];
    let refused = check_with_env(&config, &registry_only, &[], &[container.name()]);
    assert_eq!(refused.status(container.name()), "error", "{refused:?}");
    let message = refused.message(container.name());
    let realm = format!(
        "{} is not allowed by the outbound policy",
        token_server.addr()
    );
    assert!(message.contains(&realm), "{message}");
    assert_eq!(
        token_server.request_count(),
        0,
        "{:?}",
        token_server.requests()
    );
}

#[test]
fn network_entry_refuses_other_loopback_address() {
    let registry = Registry::start();
    let origin = Proxy::in_front_of(&registry);
    let other = Proxy::start_on(OTHER_LOOPBACK, registry.host());
    let image = TestImage::build_and_push(&origin.host(), "team/literal", "1", None);
    let container = TestContainer::create(image.reference(), "literal");
    let config = DockerConfigDir::new();
    origin.add_fault(Fault::redirect(307, other.url()).kind(RequestKind::Manifest));

    let followed = check(
        &config,
        &["--registry-allow", "127.0.0.0/8"],
        &[container.name()],
    );
    assert_eq!(followed.status(container.name()), "updated", "{followed:?}");
    assert!(other.stats().count_kind(RequestKind::Manifest) > 0);

    other.reset_counters();
    let refused = check(
        &config,
        &["--registry-allow", "127.0.0.1/32"],
        &[container.name()],
    );
    assert_eq!(refused.status(container.name()), "error", "{refused:?}");
    let message = refused.message(container.name());
    let target = format!("{} is not allowed by the outbound policy", other.host());
    assert!(message.contains(&target), "{message}");
    assert_eq!(other.stats().total(), 0, "{:?}", other.requests());
}

#[test]
fn network_entry_checks_resolved_addresses() {
    let registry = Registry::start();
    let origin = Proxy::in_front_of(&registry);
    let target = Proxy::in_front_of(&registry);
    let image = TestImage::build_and_push(&origin.host(), "team/named", "1", None);
    let container = TestContainer::create(image.reference(), "named");
    let config = DockerConfigDir::new();
    // `localhost` resolves to 127.0.0.1 through /etc/hosts, so only the resolver's check
    // of the address can tell whether a network entry admits it.
    let by_name = format!("http://localhost:{}", target.addr().port());
    origin.add_fault(Fault::redirect(307, by_name).kind(RequestKind::Manifest));

    let admitting = format!("{},127.0.0.1/32", origin.host());
    let followed = check(
        &config,
        &["--registry-allow", &admitting],
        &[container.name()],
    );
    assert_eq!(followed.status(container.name()), "updated", "{followed:?}");
    assert!(target.stats().count_kind(RequestKind::Manifest) > 0);

    target.reset_counters();
    let elsewhere = format!("{},{OTHER_LOOPBACK}/32", origin.host());
    let refused = check(
        &config,
        &["--registry-allow", &elsewhere],
        &[container.name()],
    );
    assert_eq!(refused.status(container.name()), "error", "{refused:?}");
    let message = refused.message(container.name());
    assert!(
        message.contains("localhost resolves only to addresses the outbound policy refuses"),
        "{message}"
    );
    assert_eq!(target.stats().total(), 0, "{:?}", target.requests());
}

#[test]
fn invalid_allow_entry_is_usage_error() {
    let config = DockerConfigDir::new();

    let output = imgstat(
        &config,
        &["check", "--registry-allow", "https://registry.example.com"],
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("'https://registry.example.com'"),
        "{stderr}"
    );
    assert!(stderr.contains("without the scheme"), "{stderr}");

    // A server that accepted the list would run until killed.
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_imgstat"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(config.path())
        .env("IMGSTAT_REGISTRY_ALLOW", "registry.example.com,10.0.0.0/33")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the imgstat binary runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while serve.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            serve.kill().unwrap();
            panic!("imgstat serve accepted an invalid --registry-allow and kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = serve.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("'10.0.0.0/33'"), "{stderr}");
    assert!(stderr.contains("prefix length"), "{stderr}");
}
