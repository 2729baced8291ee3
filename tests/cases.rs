//! Real-world images and registries that update checkers get wrong, each checked with
//! `imgstat check` against the machine's Docker engine and `docker-registry` on
//! loopback. docs/cases.md lists the cases and the test that covers each.

mod common;

use common::{check, digest_of, docker, repo_digests};
use http::Method;
use imgstat_testkit::{
    Credentials, DockerConfigDir, Fault, IndexFormat, Podman, Proxy, Registry, RequestKind,
    TestContainer, TestImage, TestIndex,
};

const AMD64: &str = "linux/amd64";
const ARM64: &str = "linux/arm64/v8";
const ARM_V7: &str = "linux/arm/v7";

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The error body distribution sends for a manifest it will not serve.
const MANIFEST_UNKNOWN: &str =
    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;

#[test]
fn repushed_manifest_matches_any_repo_digest() {
    let registry = Registry::start();
    let mut image = TestImage::build(&registry, "cases/repushed", "1");
    let repository = image.repository().to_owned();
    let pushed = image.digest().to_owned();
    let repushed = image.push_reserialised(&repository, "1");
    let reference = image.reference().to_owned();
    image.pull(&reference);

    let recorded: Vec<String> = repo_digests(image.id())
        .iter()
        .map(|entry| digest_of(entry).to_owned())
        .collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(recorded.contains(&pushed), "{recorded:?}");
    assert!(recorded.contains(&repushed), "{recorded:?}");
    // Docker sorts RepoDigests. The tag points at the entry listed last, so a checker
    // that compares only the first entry gets it wrong.
    image.tag_in_registry(&repository, &recorded[1], "1");

    let container = TestContainer::create(image.reference(), "repushed");
    let config = DockerConfigDir::new();
    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "updated", "{reports:?}");
    assert_eq!(
        reports.remote_digest(container.name()),
        Some(recorded[1].as_str())
    );
    assert_eq!(reports.local_digests(container.name()).len(), 2);
}

#[test]
fn second_repository_digests_ignored() {
    let registry = Registry::start();
    let mut image = TestImage::build(&registry, "cases/b-app", "1");
    let app_digest = image.digest().to_owned();
    // `a-mirror` sorts before `b-app`, so its digest is the engine's first RepoDigest.
    let mirror = "cases/a-mirror";
    let mirror_digest = image.push_reserialised(mirror, "1");
    let mirror_reference = format!("{}/{mirror}:1", registry.host());
    image.pull(&mirror_reference);
    let recorded = repo_digests(image.id());
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(recorded[0].contains(mirror), "{recorded:?}");

    let next = TestImage::build(&registry, "cases/b-app", "next");
    let app = TestContainer::create(image.reference(), "app");
    let mirrored = TestContainer::create(&mirror_reference, "mirrored");
    let by_id = TestContainer::create(image.id(), "by-id");
    let names = [app.name(), mirrored.name(), by_id.name()];
    let config = DockerConfigDir::new();

    let reports = check(&config, &[], &names);
    for name in names {
        assert_eq!(reports.status(name), "updated", "{reports:?}");
    }
    assert_eq!(reports.local_digests(app.name()), vec![app_digest.clone()]);
    assert_eq!(
        reports.local_digests(mirrored.name()),
        vec![mirror_digest.clone()]
    );

    // `b-app:1` moves in the registry only, so the image keeps both tags on the engine.
    image.tag_in_registry(image.repository(), next.digest(), "1");
    let reports = check(&config, &[], &names);
    assert_eq!(reports.status(app.name()), "outdated", "{reports:?}");
    assert_eq!(reports.local_digests(app.name()), vec![app_digest]);
    assert_eq!(reports.status(mirrored.name()), "updated", "{reports:?}");
    // Checked by both of its tags, and one of them moved.
    assert_eq!(reports.status(by_id.name()), "outdated", "{reports:?}");
}

#[test]
fn index_other_platform_change_is_updated() {
    let registry = Registry::start();
    for format in [IndexFormat::Oci, IndexFormat::Docker] {
        let mut index = TestIndex::push(&registry, "cases/multi", "1", &[AMD64, ARM64], format);
        index.pull();
        let container = TestContainer::create(&index.reference(), "multi");
        let config = DockerConfigDir::new();

        let reports = check(&config, &[], &[container.name()]);
        assert_eq!(
            reports.status(container.name()),
            "updated",
            "{format:?}: {reports:?}"
        );

        index.push_new_content(&[ARM64]);
        let reports = check(&config, &[], &[container.name()]);
        assert_eq!(
            reports.status(container.name()),
            "updated",
            "{format:?}: {reports:?}"
        );
        assert_eq!(
            reports.remote_digest(container.name()),
            Some(index.digest())
        );
        assert!(
            reports
                .message(container.name())
                .contains("only platforms other than"),
            "{format:?}: {reports:?}"
        );
    }
}

#[test]
fn index_own_platform_change_is_outdated() {
    let registry = Registry::start();
    for format in [IndexFormat::Oci, IndexFormat::Docker] {
        let mut index = TestIndex::push(&registry, "cases/multi", "1", &[AMD64, ARM64], format);
        index.pull();
        let container = TestContainer::create(&index.reference(), "multi");
        let config = DockerConfigDir::new();

        index.push_new_content(&[AMD64]);
        let reports = check(&config, &[], &[container.name()]);
        assert_eq!(
            reports.status(container.name()),
            "outdated",
            "{format:?}: {reports:?}"
        );
    }
}

#[test]
fn foreign_platform_image_uses_own_entry() {
    let registry = Registry::start();
    for (platform, architecture) in [(ARM64, "arm64"), (ARM_V7, "arm")] {
        let mut index = TestIndex::push(
            &registry,
            "cases/foreign",
            "1",
            &[AMD64, ARM64, ARM_V7],
            IndexFormat::Oci,
        );
        let id = index.pull_platform(platform);
        assert_eq!(
            docker(&["image", "inspect", "--format", "{{.Architecture}}", &id]),
            architecture
        );
        let container = TestContainer::create(&index.reference(), "foreign");
        let config = DockerConfigDir::new();

        let reports = check(&config, &[], &[container.name()]);
        assert_eq!(
            reports.status(container.name()),
            "updated",
            "{platform}: {reports:?}"
        );

        // The host's platform changed, the image's own did not.
        index.push_new_content(&[AMD64]);
        let reports = check(&config, &[], &[container.name()]);
        assert_eq!(
            reports.status(container.name()),
            "updated",
            "{platform}: {reports:?}"
        );

        index.push_new_content(&[platform]);
        let reports = check(&config, &[], &[container.name()]);
        assert_eq!(
            reports.status(container.name()),
            "outdated",
            "{platform}: {reports:?}"
        );
    }
}

#[test]
fn container_from_image_id_never_compares_id() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "cases/by-id", "1");
    let next = TestImage::build(&registry, "cases/by-id", "next");
    let container = TestContainer::create(image.id(), "by-id");
    let config = DockerConfigDir::new();

    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "updated", "{reports:?}");
    let local = reports.local_digests(container.name());
    assert_eq!(local, vec![image.digest().to_owned()]);
    assert!(!local.iter().any(|d| d == image.id()), "{local:?}");

    // The tag moves in the registry only, so the image keeps its tag on the engine.
    image.tag_in_registry(image.repository(), next.digest(), "1");
    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "outdated", "{reports:?}");
}

#[test]
fn attestation_entries_never_chosen() {
    let registry = Registry::start();
    let mut index = TestIndex::push_attested(&registry, "cases/attested", "1", &[AMD64, ARM64]);
    index.pull();
    let container = TestContainer::create(&index.reference(), "attested");
    let config = DockerConfigDir::new();

    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "updated", "{reports:?}");

    // A rebuild with new provenance: every attestation entry changed, no image did.
    let old_attestation = index.attestation_digest(AMD64).to_owned();
    index.push_new_attestations();
    assert_ne!(index.attestation_digest(AMD64), old_attestation);
    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "updated", "{reports:?}");
    assert_eq!(
        reports.remote_digest(container.name()),
        Some(index.digest())
    );

    index.push_new_content(&[AMD64]);
    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "outdated", "{reports:?}");
}

#[test]
fn every_media_type_resolves_under_strict_accept() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let host = proxy.host();

    let docker_manifest = TestImage::build_and_push(&host, "cases/docker-v2", "1", None);
    let mut oci_manifest = TestImage::build_and_push(&host, "cases/oci", "1", None);
    oci_manifest.convert_to_oci();
    let mut oci_index = TestIndex::push_to(
        &host,
        "cases/oci-index",
        "1",
        &[AMD64, ARM64],
        IndexFormat::Oci,
        None,
    );
    oci_index.pull();
    let mut docker_list = TestIndex::push_to(
        &host,
        "cases/docker-list",
        "1",
        &[AMD64, ARM64],
        IndexFormat::Docker,
        None,
    );
    docker_list.pull();

    let containers = [
        (
            TestContainer::create(docker_manifest.reference(), "docker-v2"),
            docker_manifest.digest().to_owned(),
        ),
        (
            TestContainer::create(oci_manifest.reference(), "oci"),
            oci_manifest.digest().to_owned(),
        ),
        (
            TestContainer::create(&oci_index.reference(), "oci-index"),
            oci_index.digest().to_owned(),
        ),
        (
            TestContainer::create(&docker_list.reference(), "docker-list"),
            docker_list.digest().to_owned(),
        ),
    ];
    // A registry that serves no manifest to a client that does not name every type.
    for media_type in [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST] {
        proxy.add_fault(
            Fault::status(404)
                .kind(RequestKind::Manifest)
                .accept_lacks(media_type)
                .body(MANIFEST_UNKNOWN),
        );
    }
    proxy.reset_counters();

    let names: Vec<&str> = containers.iter().map(|(c, _)| c.name()).collect();
    let reports = check(&DockerConfigDir::new(), &[], &names);
    for (container, digest) in &containers {
        let name = container.name();
        assert_eq!(reports.status(name), "updated", "{name}: {reports:?}");
        assert_eq!(reports.remote_digest(name), Some(digest.as_str()), "{name}");
    }
    let statuses: Vec<u16> = proxy.requests().iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(proxy.count(Method::HEAD, RequestKind::Manifest), 4);
    assert_eq!(proxy.count(Method::GET, RequestKind::Manifest), 0);
}

#[test]
fn head_405_falls_back_to_get() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let mut image = TestImage::build_and_push(&proxy.host(), "cases/no-head", "1", None);
    let container = TestContainer::create(image.reference(), "no-head");
    proxy.add_fault(
        Fault::status(405)
            .method(Method::HEAD)
            .kind(RequestKind::Manifest),
    );
    let config = DockerConfigDir::new();

    proxy.reset_counters();
    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "updated", "{reports:?}");
    assert_eq!(proxy.count(Method::HEAD, RequestKind::Manifest), 1);
    assert_eq!(proxy.count(Method::GET, RequestKind::Manifest), 1);

    image.push_new_content();
    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "outdated", "{reports:?}");
}

#[test]
fn head_without_digest_falls_back_to_get() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let mut image = TestImage::build_and_push(&proxy.host(), "cases/headless", "1", None);
    let container = TestContainer::create(image.reference(), "headless");
    proxy.add_fault(Fault::drop_response_header("Docker-Content-Digest").method(Method::HEAD));
    let config = DockerConfigDir::new();

    proxy.reset_counters();
    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "updated", "{reports:?}");
    assert_eq!(proxy.count(Method::GET, RequestKind::Manifest), 1);

    image.push_new_content();
    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "outdated", "{reports:?}");
    assert_eq!(
        reports.remote_digest(container.name()),
        Some(image.digest())
    );
}

#[test]
fn digest_computed_from_received_bytes() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let host = proxy.host();
    let mut image = TestImage::build_and_push(&host, "cases/digestless", "1", None);
    let mut index = TestIndex::push_to(
        &host,
        "cases/digestless-index",
        "1",
        &[AMD64, ARM64],
        IndexFormat::Oci,
        None,
    );
    index.pull();
    let single = TestContainer::create(image.reference(), "digestless");
    let multi = TestContainer::create(&index.reference(), "digestless-index");
    let names = [single.name(), multi.name()];
    // Neither HEAD nor GET carries the digest: only the bytes tell it.
    for method in [Method::HEAD, Method::GET] {
        proxy.add_fault(
            Fault::drop_response_header("Docker-Content-Digest")
                .method(method)
                .kind(RequestKind::Manifest),
        );
    }
    let config = DockerConfigDir::new();

    let reports = check(&config, &[], &names);
    assert_eq!(reports.status(single.name()), "updated", "{reports:?}");
    assert_eq!(reports.remote_digest(single.name()), Some(image.digest()));
    assert_eq!(reports.status(multi.name()), "updated", "{reports:?}");
    assert_eq!(reports.remote_digest(multi.name()), Some(index.digest()));

    image.push_new_content();
    index.push_new_content(&[ARM64]);
    proxy.reset_counters();
    let reports = check(&config, &[], &names);
    assert_eq!(reports.status(single.name()), "outdated", "{reports:?}");
    assert_eq!(reports.remote_digest(single.name()), Some(image.digest()));
    assert_eq!(reports.status(multi.name()), "updated", "{reports:?}");
    assert_eq!(reports.remote_digest(multi.name()), Some(index.digest()));
    // One GET per tag, and one for the index the engine pulled: the new index came
    // with the GET of its tag and is not fetched again.
    assert_eq!(proxy.count(Method::GET, RequestKind::Manifest), 3);
}

#[test]
fn plain_http_registry_among_https_ones() {
    let secure = Registry::builder().tls().start();
    let other_secure = Registry::builder().tls().start();
    let plain = Registry::start();
    assert!(secure.url().starts_with("https://"));
    assert!(plain.url().starts_with("http://"));

    let on_secure = TestImage::build(&secure, "cases/tls", "1");
    let on_other_secure = TestImage::build(&other_secure, "cases/tls", "1");
    let mut on_plain = TestImage::build(&plain, "cases/plain", "1");
    let secure_container = TestContainer::create(on_secure.reference(), "tls");
    let other_container = TestContainer::create(on_other_secure.reference(), "tls-other");
    let plain_container = TestContainer::create(on_plain.reference(), "plain");
    let names = [
        secure_container.name(),
        other_container.name(),
        plain_container.name(),
    ];
    let config = DockerConfigDir::new();

    let reports = check(&config, &[], &names);
    for name in names {
        assert_eq!(reports.status(name), "updated", "{reports:?}");
    }

    on_plain.push_new_content();
    let reports = check(&config, &[], &names);
    assert_eq!(reports.status(plain_container.name()), "outdated");
    assert_eq!(reports.status(secure_container.name()), "updated");
    assert_eq!(reports.status(other_container.name()), "updated");

    drop(plain);
    let reports = check(&config, &[], &names);
    assert_eq!(reports.status(plain_container.name()), "error");
    assert_eq!(reports.status(secure_container.name()), "updated");
    assert_eq!(reports.status(other_container.name()), "updated");
}

#[test]
fn unchanged_fleet_sends_only_heads() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let host = proxy.host();
    let images: Vec<TestImage> = (0..2)
        .map(|i| TestImage::build_and_push(&host, &format!("cases/quiet{i}"), "1", None))
        .collect();
    let mut index = TestIndex::push_to(
        &host,
        "cases/quiet-index",
        "1",
        &[AMD64, ARM64],
        IndexFormat::Oci,
        None,
    );
    index.pull();
    let index_reference = index.reference();
    let references: Vec<&str> = images
        .iter()
        .map(TestImage::reference)
        .chain([index_reference.as_str()])
        .collect();
    let containers: Vec<TestContainer> = (0..9)
        .map(|i| TestContainer::create(references[i % 3], "quiet"))
        .collect();
    let names: Vec<&str> = containers.iter().map(TestContainer::name).collect();
    let config = DockerConfigDir::new();

    proxy.reset_counters();
    let reports = check(&config, &[], &names);
    for name in &names {
        assert_eq!(reports.status(name), "updated", "{reports:?}");
    }
    assert_eq!(proxy.count(Method::HEAD, RequestKind::Manifest), 3);
    assert_eq!(proxy.count(Method::GET, RequestKind::Manifest), 0);

    // Only the other platform changed: the new index and the pulled one are each
    // fetched once for the three containers that share them.
    index.push_new_content(&[ARM64]);
    proxy.reset_counters();
    let reports = check(&config, &[], &names);
    for name in &names {
        assert_eq!(reports.status(name), "updated", "{reports:?}");
    }
    assert_eq!(proxy.count(Method::HEAD, RequestKind::Manifest), 3);
    assert_eq!(proxy.count(Method::GET, RequestKind::Manifest), 2);
}

#[test]
fn podman_index_and_platform_digests() {
    let podman = Podman::start();
    let registry = Registry::start();
    for format in [IndexFormat::Oci, IndexFormat::Docker] {
        let mut index = TestIndex::push(&registry, "cases/podman", "1", &[AMD64, ARM64], format);
        let id = podman.pull(&index.reference());
        let recorded = podman.inspect_image(&id, "{{json .RepoDigests}}");
        assert!(recorded.contains(index.digest()), "{recorded}");
        assert!(
            recorded.contains(index.platform_digest(AMD64)),
            "{recorded}"
        );
        let name = podman.create(&index.reference(), "podman");
        let config = DockerConfigDir::new();
        let options = ["--host", &podman.url()];

        let reports = check(&config, &options, &[&name]);
        assert_eq!(reports.status(&name), "updated", "{format:?}: {reports:?}");

        index.push_new_content(&[ARM64]);
        let reports = check(&config, &options, &[&name]);
        assert_eq!(reports.status(&name), "updated", "{format:?}: {reports:?}");

        index.push_new_content(&[AMD64]);
        let reports = check(&config, &options, &[&name]);
        assert_eq!(reports.status(&name), "outdated", "{format:?}: {reports:?}");
    }
}

#[test]
fn redirect_to_other_host_drops_authorization() {
    let user = Credentials::random("reader");
    let registry = Registry::with_htpasswd(std::slice::from_ref(&user));
    let origin = Proxy::in_front_of(&registry);
    let image = TestImage::build_and_push(
        &origin.host(),
        "cases/redirected",
        "1",
        registry.push_credentials(),
    );
    let storage = Registry::start();
    image.mirror_to(storage.host());
    let cdn = Proxy::in_front_of(&storage);
    let container = TestContainer::create(image.reference(), "redirected");
    let config = DockerConfigDir::with_auth(&origin.host(), &user);

    origin.add_fault(Fault::redirect(307, cdn.url()).kind(RequestKind::Manifest));
    origin.reset_counters();
    let reports = check(&config, &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "updated", "{reports:?}");
    assert_eq!(
        reports.remote_digest(container.name()),
        Some(image.digest())
    );
    let sent_to_origin: Vec<_> = origin
        .requests()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Manifest)
        .collect();
    assert!(!sent_to_origin.is_empty());
    assert!(
        sent_to_origin
            .iter()
            .all(|r| r.headers.contains_key("authorization")),
        "{sent_to_origin:?}"
    );
    let sent_to_cdn = cdn.requests();
    assert_eq!(cdn.count(Method::HEAD, RequestKind::Manifest), 1);
    assert!(
        sent_to_cdn
            .iter()
            .all(|r| !r.headers.contains_key("authorization")),
        "{sent_to_cdn:?}"
    );
}

#[test]
fn redirect_loop_is_bounded() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let image = TestImage::build_and_push(&proxy.host(), "cases/looping", "1", None);
    let container = TestContainer::create(image.reference(), "looping");
    proxy.add_fault(Fault::redirect(307, proxy.url()).kind(RequestKind::Manifest));
    proxy.reset_counters();

    let reports = check(&DockerConfigDir::new(), &[], &[container.name()]);
    assert_eq!(reports.status(container.name()), "error", "{reports:?}");
    assert!(
        reports.message(container.name()).contains("redirects"),
        "{reports:?}"
    );
    // The first request and the default bound of five redirects.
    assert_eq!(proxy.stats().count_kind(RequestKind::Manifest), 6);
}

#[test]
fn rate_limit_holds_queued_requests() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let images: Vec<TestImage> = (0..4)
        .map(|i| TestImage::build_and_push(&proxy.host(), &format!("cases/limited{i}"), "1", None))
        .collect();
    let containers: Vec<TestContainer> = images
        .iter()
        .map(|image| TestContainer::create(image.reference(), "limited"))
        .collect();
    let names: Vec<&str> = containers.iter().map(TestContainer::name).collect();
    proxy.add_fault(
        Fault::status(429)
            .method(Method::HEAD)
            .kind(RequestKind::Manifest)
            .retry_after(60),
    );
    proxy.reset_counters();

    let reports = check(&DockerConfigDir::new(), &["--max-in-flight", "1"], &names);
    for name in &names {
        assert_eq!(reports.status(name), "error", "{reports:?}");
        assert!(
            reports.message(name).contains("rate limiting"),
            "{reports:?}"
        );
    }
    // Requests waiting for the one slot when the 429 came are not sent.
    assert_eq!(
        proxy.count(Method::HEAD, RequestKind::Manifest),
        1,
        "{:#?}",
        proxy.requests()
    );
}
