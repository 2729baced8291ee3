//! Images are unique and pushed, tags move on a new push, containers run, and every
//! object is removed on `Drop`, also when a test panics.

mod common;

use std::process::Command;

use common::{client, docker_inspect, head_manifest, header};
use imgstat_testkit::{
    Credentials, DockerConfigDir, Registry, TestContainer, TestImage, sweep_leftovers, unique_name,
};

#[test]
fn container_runs_and_is_removed_on_drop() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "team/web", "1.0");
    let container = TestContainer::run(image.reference(), "web");
    let id = container.id().to_owned();

    let running = docker_inspect(&id, "{{.State.Running}}");
    let network = docker_inspect(&id, "{{.HostConfig.NetworkMode}}");
    let config_image = docker_inspect(&id, "{{.Config.Image}}");
    let image_id = docker_inspect(&id, "{{.Image}}");
    drop(container);

    assert_eq!(running.as_deref(), Some("true"));
    assert_eq!(network.as_deref(), Some("none"));
    assert_eq!(config_image.as_deref(), Some(image.reference()));
    assert_eq!(image_id.as_deref(), Some(image.id()));
    assert_eq!(
        docker_inspect(&id, "{{.Id}}"),
        None,
        "container {id} still exists"
    );
}

#[test]
fn created_container_is_not_running() {
    let image = TestImage::build_local("imgstat-created");
    let container = TestContainer::create(image.reference(), "created");

    assert_eq!(
        docker_inspect(container.id(), "{{.State.Status}}").as_deref(),
        Some("created")
    );
    assert!(container.name().starts_with("created-"));
}

#[test]
fn stopped_container_has_exited() {
    let image = TestImage::build_local("imgstat-stopped");
    let container = TestContainer::run(image.reference(), "stopped");

    container.stop();

    assert_eq!(
        docker_inspect(container.id(), "{{.State.Status}}").as_deref(),
        Some("exited")
    );
}

#[test]
fn container_removed_when_test_panics() {
    let image = TestImage::build_local("imgstat-panic");
    let reference = image.reference().to_owned();

    let result = std::thread::spawn(move || {
        let container = TestContainer::run(&reference, "panics");
        panic!("test body failed with container {}", container.id());
    })
    .join();

    let message = result.expect_err("the thread panicked");
    let message = message
        .downcast_ref::<String>()
        .expect("panic message is a String");
    let id = message
        .rsplit(' ')
        .next()
        .expect("message ends with the id");
    assert_eq!(
        docker_inspect(id, "{{.Id}}"),
        None,
        "container {id} still exists"
    );
}

#[test]
fn pushed_image_has_repo_digest() {
    let registry = Registry::start();
    let image = TestImage::build(&registry, "team/web", "1.0");

    let repo_digests = docker_inspect(image.id(), "{{json .RepoDigests}}").unwrap_or_default();

    assert!(
        repo_digests.contains(&image.digest_reference()),
        "{repo_digests}"
    );
    assert_eq!(
        image.digest_reference(),
        format!("{}/team/web@{}", registry.host(), image.digest())
    );
}

#[test]
fn images_are_unique() {
    let registry = Registry::start();
    let first = TestImage::build(&registry, "team/web", "1.0");
    let second = TestImage::build(&registry, "team/web", "2.0");

    assert_ne!(first.id(), second.id());
    assert_ne!(first.digest(), second.digest());
}

#[tokio::test]
async fn new_content_moves_tag() {
    let registry = Registry::start();
    let mut image = TestImage::build(&registry, "team/web", "1.0");
    let old_digest = image.digest().to_owned();
    let old_id = image.id().to_owned();
    let old_container = TestContainer::create(image.reference(), "old");

    let new_digest = image.push_new_content().to_owned();

    assert_ne!(new_digest, old_digest);
    assert_ne!(image.id(), old_id);
    assert_eq!(image.ids(), [old_id.clone(), image.id().to_owned()]);
    let response = head_manifest(&client(), &registry.url(), "team/web", "1.0", None).await;
    assert_eq!(
        header(&response, "Docker-Content-Digest"),
        Some(new_digest.as_str())
    );
    let old_repo_digests = docker_inspect(&old_id, "{{json .RepoDigests}}").unwrap_or_default();
    assert!(old_repo_digests.contains(&old_digest), "{old_repo_digests}");
    let old_container_image = docker_inspect(old_container.id(), "{{.Image}}");
    assert_eq!(old_container_image.as_deref(), Some(old_id.as_str()));
}

#[test]
fn local_image_has_no_repo_digest() {
    let image = TestImage::build_local("imgstat-local");

    let repo_digests = docker_inspect(image.id(), "{{json .RepoDigests}}");
    let repo_tags = docker_inspect(image.id(), "{{json .RepoTags}}").unwrap_or_default();

    assert_eq!(repo_digests.as_deref(), Some("[]"));
    assert!(repo_tags.contains(image.reference()), "{repo_tags}");
}

#[test]
#[should_panic(expected = "never pushed")]
fn local_image_digest_panics() {
    let image = TestImage::build_local("imgstat-local");

    image.digest();
}

#[test]
fn images_removed_on_drop() {
    let registry = Registry::start();
    let mut image = TestImage::build(&registry, "team/web", "1.0");
    image.push_new_content();
    let ids = image.ids().to_vec();

    drop(image);

    for id in ids {
        assert_eq!(
            docker_inspect(&id, "{{.Id}}"),
            None,
            "image {id} still exists"
        );
    }
}

#[test]
fn docker_config_dir_works_for_child_process() {
    let alice = Credentials::new("alice", "alice-password");
    let registry = Registry::with_htpasswd([&alice]);
    let image = TestImage::build(&registry, "team/web", "1.0");
    let config = DockerConfigDir::with_auth(registry.host(), &alice);
    let empty = DockerConfigDir::new();

    let pull = |config: &DockerConfigDir| {
        Command::new("docker")
            .env("DOCKER_CONFIG", config.path())
            .args(["pull", "--quiet", &image.digest_reference()])
            .output()
            .expect("failed to run docker pull")
    };
    let without_auth = pull(&empty);
    let with_auth = pull(&config);

    assert!(!without_auth.status.success());
    assert!(
        with_auth.status.success(),
        "{}",
        String::from_utf8_lossy(&with_auth.stderr)
    );
}

#[test]
fn sweep_removes_objects_of_dead_processes() {
    let image = TestImage::build_local("imgstat-sweep");
    // Above the kernel's maximum pid (2^22), so no process has it.
    let dead_pid = 4_000_000_000u32;
    let name = unique_name("sweep-leftover");
    let created = Command::new("docker")
        .args(["create", "--network", "none", "--name", &name])
        .arg("--label")
        .arg(format!("imgstat-testkit.pid={dead_pid}"))
        .arg(image.reference())
        .output()
        .expect("failed to run docker create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let live = TestContainer::create(image.reference(), "sweep-live");

    let removed = sweep_leftovers();

    assert!(removed >= 1, "removed {removed}");
    assert_eq!(
        docker_inspect(&name, "{{.Id}}"),
        None,
        "leftover {name} still exists"
    );
    assert!(
        docker_inspect(live.id(), "{{.Id}}").is_some(),
        "the live container was removed"
    );
}

#[test]
fn unique_names_differ() {
    let first = unique_name("web");
    let second = unique_name("web");

    assert_ne!(first, second);
    assert!(first.starts_with(&format!("web-{}-", std::process::id())));
    assert_eq!(first, first.to_lowercase());
}
