//! Multi-platform indexes push with the digests they were built with, move one
//! platform at a time, and pull onto the engine with the index digest recorded.

mod common;

use common::{client, docker_inspect, head_manifest, header};
use imgstat_testkit::{Credentials, IndexFormat, Registry, TestContainer, TestIndex};

const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64/v8"];

#[tokio::test]
async fn oci_index_head_returns_index_digest() {
    let registry = Registry::start();
    let index = TestIndex::push(&registry, "team/multi", "1.0", &PLATFORMS, IndexFormat::Oci);

    let response = head_manifest(&client(), &registry.url(), "team/multi", "1.0", None).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "Docker-Content-Digest"),
        Some(index.digest())
    );
    assert_eq!(
        header(&response, "Content-Type"),
        Some(IndexFormat::Oci.index_media_type())
    );
}

#[tokio::test]
async fn docker_manifest_list_head_returns_list_digest() {
    let registry = Registry::start();
    let index = TestIndex::push(
        &registry,
        "team/multi",
        "1.0",
        &PLATFORMS,
        IndexFormat::Docker,
    );

    let response = head_manifest(&client(), &registry.url(), "team/multi", "1.0", None).await;

    assert_eq!(
        header(&response, "Docker-Content-Digest"),
        Some(index.digest())
    );
    assert_eq!(
        header(&response, "Content-Type"),
        Some(IndexFormat::Docker.index_media_type())
    );
}

#[tokio::test]
async fn platform_manifests_are_served_by_digest() {
    let registry = Registry::start();
    let index = TestIndex::push(&registry, "team/multi", "1.0", &PLATFORMS, IndexFormat::Oci);
    let client = client();

    for platform in PLATFORMS {
        let digest = index.platform_digest(platform);
        let response = head_manifest(&client, &registry.url(), "team/multi", digest, None).await;
        assert_eq!(response.status(), 200, "{platform}");
        assert_eq!(
            header(&response, "Docker-Content-Digest"),
            Some(digest),
            "{platform}"
        );
    }
}

#[test]
fn new_content_moves_only_given_platform() {
    let registry = Registry::start();
    let mut index = TestIndex::push(&registry, "team/multi", "1.0", &PLATFORMS, IndexFormat::Oci);
    let old_index = index.digest().to_owned();
    let old_amd64 = index.platform_digest("linux/amd64").to_owned();
    let old_arm64 = index.platform_digest("linux/arm64/v8").to_owned();

    index.push_new_content(&["linux/arm64/v8"]);

    assert_ne!(index.digest(), old_index);
    assert_eq!(index.platform_digest("linux/amd64"), old_amd64);
    assert_ne!(index.platform_digest("linux/arm64/v8"), old_arm64);
}

#[test]
fn pulled_index_records_index_digest() {
    let registry = Registry::start();
    let mut index = TestIndex::push(&registry, "team/multi", "1.0", &PLATFORMS, IndexFormat::Oci);

    let id = index.pull();
    let container = TestContainer::run(&index.reference(), "multi");

    let repo_digests = docker_inspect(&id, "{{json .RepoDigests}}").unwrap_or_default();
    let architecture = docker_inspect(&id, "{{.Architecture}}");
    let running = docker_inspect(container.id(), "{{.State.Running}}");
    assert!(repo_digests.contains(index.digest()), "{repo_digests}");
    assert_eq!(architecture.as_deref(), Some("amd64"));
    assert_eq!(running.as_deref(), Some("true"));
}

#[test]
fn pulled_images_removed_on_drop() {
    let registry = Registry::start();
    let mut index = TestIndex::push(
        &registry,
        "team/multi",
        "1.0",
        &PLATFORMS,
        IndexFormat::Docker,
    );
    let first = index.pull();
    index.push_new_content(&["linux/amd64"]);
    let second = index.pull();

    drop(index);

    assert_ne!(first, second);
    assert_eq!(
        docker_inspect(&first, "{{.Id}}"),
        None,
        "image {first} still exists"
    );
    assert_eq!(
        docker_inspect(&second, "{{.Id}}"),
        None,
        "image {second} still exists"
    );
}

#[tokio::test]
async fn index_push_to_token_registry() {
    let alice = Credentials::new("alice", "alice-password");
    let policy = imgstat_testkit::TokenPolicy::new()
        .user(&alice)
        .pull("alice", "team/*");
    let registry = Registry::with_token_auth(policy);
    let mut index = TestIndex::push(&registry, "team/multi", "1.0", &PLATFORMS, IndexFormat::Oci);

    let id = index.pull();

    assert!(id.starts_with("sha256:"));
    let token_server = registry.token_server().expect("token server");
    assert!(
        token_server
            .requests()
            .iter()
            .any(|request| request.granted.iter().any(|scope| scope.contains("push")))
    );
}

#[tokio::test]
async fn attested_index_lists_attestations_first() {
    let registry = Registry::start();
    let mut index = TestIndex::push_attested(&registry, "team/attested", "1.0", &PLATFORMS);
    let old_index = index.digest().to_owned();
    let old_attestation = index.attestation_digest("linux/amd64").to_owned();
    let old_image = index.platform_digest("linux/amd64").to_owned();

    let url = registry.manifest_url("team/attested", "1.0");
    let listed: serde_json::Value = client()
        .get(&url)
        .header("Accept", imgstat_testkit::MANIFEST_ACCEPT)
        .send()
        .await
        .expect("GET index")
        .json()
        .await
        .expect("the index is JSON");
    index.push_new_attestations();

    let entries = listed["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0]["platform"]["os"], "unknown");
    assert_eq!(
        entries[0]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(entries[2]["platform"]["architecture"], "amd64");
    assert_ne!(index.digest(), old_index);
    assert_ne!(index.attestation_digest("linux/amd64"), old_attestation);
    assert_eq!(index.platform_digest("linux/amd64"), old_image);
}
