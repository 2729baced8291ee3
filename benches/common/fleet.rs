//! Sets up a fleet on the local Docker engine: a registry behind a counting proxy, one
//! pushed image per repository, more tags made with the registry API and on the engine,
//! and created (not started) containers spread over the tags. The fleet and server
//! benchmarks both include this file.

use std::collections::HashMap;
use std::process::Command;
use std::thread;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, TagImageOptionsBuilder};
use futures::{StreamExt, TryStreamExt};
use imgstat_testkit::{
    Credentials, DockerConfigDir, MANIFEST_ACCEPT, OWNER_LABEL, Proxy, Registry, TestImage,
    TokenPolicy, TokenServer, unique_name,
};
use serde_json::Value;
use tokio::runtime::Runtime;

/// Repositories the tags of a fleet are spread over.
pub const REPOSITORIES: usize = 10;

/// Containers created from each tag.
pub const CONTAINERS_PER_TAG: usize = 4;

/// Engine requests in flight at once while tagging images and creating containers.
const ENGINE_CONCURRENCY: usize = 8;

/// Registry API requests in flight at once while adding tags.
const REGISTRY_CONCURRENCY: usize = 16;

/// Images pushed at once with the docker CLI.
const PUSH_CONCURRENCY: usize = 5;

/// Authentication that imgstat needs at the fleet's registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    /// Token auth, with a user that may pull every repository. The token server's realm is
    /// behind a proxy of its own, which gets the same latency as the registry's.
    Token,
    /// Token auth as for [`Auth::Token`], where anonymous token requests may pull every
    /// repository, so a client needs no credentials but still sends tokens.
    AnonymousToken,
}

impl Auth {
    /// Returns `none` or `token`, for tables.
    pub fn label(self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Token => "token",
            Auth::AnonymousToken => "anonymous token",
        }
    }

    /// Returns `no auth` or `token auth`, for sentences.
    pub fn describe(self) -> &'static str {
        match self {
            Auth::None => "no auth",
            Auth::Token => "token auth",
            Auth::AnonymousToken => "token auth with anonymous pull",
        }
    }
}

/// One tag of the fleet and the containers created from it, as names and as IDs in the
/// same order.
struct FleetTag {
    containers: Vec<String>,
    container_ids: Vec<String>,
}

/// Everything one fleet created, removed on `Drop`.
///
/// Fields drop in declaration order: the containers before the images they use, the
/// proxies before the registry behind them.
pub struct Fleet {
    containers: ContainerGuard,
    _images: Vec<TestImage>,
    pub auth: Auth,
    /// `DOCKER_CONFIG` for imgstat, with the reader's credentials under token auth.
    pub docker_config: DockerConfigDir,
    pub proxy: Proxy,
    pub realm_proxy: Option<Proxy>,
    _registry: Registry,
    /// Tags ordered by tag number, then repository, so that the first `n` tags spread
    /// evenly over the repositories.
    tags: Vec<FleetTag>,
}

impl Fleet {
    /// Builds a fleet of `tag_count` distinct tags (a multiple of [`REPOSITORIES`]) with
    /// [`CONTAINERS_PER_TAG`] containers each, running the engine and registry requests
    /// on `runtime`. Panics when a step fails.
    pub fn build(runtime: &Runtime, docker: &Docker, auth: Auth, tag_count: usize) -> Fleet {
        assert!(
            tag_count.is_multiple_of(REPOSITORIES) && tag_count > 0,
            "tag count {tag_count} is not a positive multiple of {REPOSITORIES}"
        );
        let tags_per_repository = tag_count / REPOSITORIES;
        let upstream = Upstream::start(auth);
        let proxy = Proxy::in_front_of(&upstream.registry);
        let host = proxy.host();
        let docker_config = match &upstream.reader {
            Some(reader) => DockerConfigDir::with_auth(&host, reader),
            None => DockerConfigDir::new(),
        };

        let prefix = unique_name("fleet");
        let repositories: Vec<String> = (0..REPOSITORIES)
            .map(|index| format!("{prefix}/app{index}"))
            .collect();
        let images = push_images(&upstream.registry, &host, &repositories);

        let tag_names: Vec<String> = (1..tags_per_repository).map(tag_name).collect();
        runtime.block_on(add_registry_tags(
            &upstream.registry,
            &repositories,
            &tag_names,
        ));
        runtime.block_on(add_engine_tags(
            docker,
            &host,
            &repositories,
            &images,
            &tag_names,
        ));

        let mut references = Vec::with_capacity(tag_count);
        for tag_number in 0..tags_per_repository {
            for repository in &repositories {
                references.push(format!("{host}/{repository}:{}", tag_name(tag_number)));
            }
        }
        let mut containers = ContainerGuard::default();
        let names = runtime.block_on(create_containers(
            docker,
            &references,
            CONTAINERS_PER_TAG,
            &mut containers,
        ));
        let tags = names
            .into_iter()
            .map(|created| {
                let (containers, container_ids) = created.into_iter().unzip();
                FleetTag {
                    containers,
                    container_ids,
                }
            })
            .collect();

        Fleet {
            containers,
            _images: images,
            auth,
            docker_config,
            proxy,
            realm_proxy: upstream.realm_proxy,
            _registry: upstream.registry,
            tags,
        }
    }

    /// Returns the names of the containers of the first `tag_count` tags.
    pub fn container_names(&self, tag_count: usize) -> Vec<String> {
        assert!(
            tag_count <= self.tags.len(),
            "the fleet has {} tags, not {tag_count}",
            self.tags.len()
        );
        self.tags[..tag_count]
            .iter()
            .flat_map(|tag| tag.containers.iter().cloned())
            .collect()
    }

    /// Returns the full IDs of the containers of the first `tag_count` tags.
    pub fn container_ids(&self, tag_count: usize) -> Vec<String> {
        assert!(
            tag_count <= self.tags.len(),
            "the fleet has {} tags, not {tag_count}",
            self.tags.len()
        );
        self.tags[..tag_count]
            .iter()
            .flat_map(|tag| tag.container_ids.iter().cloned())
            .collect()
    }

    /// Returns the number of containers this fleet created.
    pub fn container_count(&self) -> usize {
        self.containers.ids.len()
    }

    /// Sets the delay both proxies add to every request.
    pub fn set_latency(&self, latency: Duration) {
        self.proxy.set_latency(latency);
        if let Some(realm_proxy) = &self.realm_proxy {
            realm_proxy.set_latency(latency);
        }
    }

    /// Zeroes the counters of both proxies.
    pub fn reset_counters(&self) {
        self.proxy.reset_counters();
        if let Some(realm_proxy) = &self.realm_proxy {
            realm_proxy.reset_counters();
        }
    }
}

/// The registry with its token server and realm proxy, and the user imgstat reads as.
struct Upstream {
    registry: Registry,
    realm_proxy: Option<Proxy>,
    /// A user that may pull every repository, under token auth.
    reader: Option<Credentials>,
}

impl Upstream {
    fn start(auth: Auth) -> Self {
        match auth {
            Auth::None => Self {
                registry: Registry::start(),
                realm_proxy: None,
                reader: None,
            },
            Auth::Token => {
                let reader = Credentials::random("reader");
                let policy = TokenPolicy::new().user(&reader).pull(&reader.username, "*");
                Self::with_token_server(policy, Some(reader))
            }
            Auth::AnonymousToken => {
                Self::with_token_server(TokenPolicy::new().anonymous_pull("*"), None)
            }
        }
    }

    /// Starts a token server for `policy` with a proxy in front of its realm, and a
    /// registry that sends clients to that proxy.
    fn with_token_server(policy: TokenPolicy, reader: Option<Credentials>) -> Self {
        let token_server = TokenServer::start(policy);
        let realm_proxy = Proxy::start(token_server.addr().to_string());
        let registry = Registry::builder()
            .token_server(token_server)
            .token_realm(format!("{}/token", realm_proxy.url()))
            .start();
        Self {
            registry,
            realm_proxy: Some(realm_proxy),
            reader,
        }
    }
}

fn tag_name(number: usize) -> String {
    format!("t{number}")
}

/// Imports and pushes one image per repository as `HOST/REPOSITORY:t0` through the
/// proxy, so the engine records repository digests that name the proxy's host.
fn push_images(registry: &Registry, host: &str, repositories: &[String]) -> Vec<TestImage> {
    let credentials = registry.push_credentials();
    let mut images = Vec::with_capacity(repositories.len());
    for batch in repositories.chunks(PUSH_CONCURRENCY) {
        let results: Vec<thread::Result<TestImage>> = thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|repository| {
                    scope.spawn(move || {
                        TestImage::build_and_push(host, repository, &tag_name(0), credentials)
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join()).collect()
        });
        // Keeping the images of the other threads first means `Drop` removes them when
        // one push failed.
        let mut failure = None;
        for result in results {
            match result {
                Ok(image) => images.push(image),
                Err(panic) => failure = Some(panic),
            }
        }
        if let Some(panic) = failure {
            drop(images);
            std::panic::resume_unwind(panic);
        }
    }
    images
}

/// Puts the manifest of tag `t0` under each of `tags` in every repository, with the
/// registry API (`PUT /v2/NAME/manifests/TAG`), straight to the registry.
async fn add_registry_tags(registry: &Registry, repositories: &[String], tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("failed to build an HTTP client");
    let authorization = push_authorization(&client, registry, repositories).await;
    let authorization = authorization.as_deref();

    let mut manifests = HashMap::new();
    for repository in repositories {
        let manifest = get_manifest(&client, registry, repository, authorization).await;
        manifests.insert(repository.as_str(), manifest);
    }
    let puts = repositories.iter().flat_map(|repository| {
        tags.iter()
            .map(move |tag| (repository.as_str(), tag.as_str()))
    });
    futures::stream::iter(puts)
        .map(|(repository, tag)| {
            let (content_type, body) = &manifests[repository];
            let url = registry.manifest_url(repository, tag);
            let mut request = client
                .put(&url)
                .header("Content-Type", content_type)
                .body(body.clone());
            if let Some(value) = authorization {
                request = request.header("Authorization", value);
            }
            async move {
                let response = request
                    .send()
                    .await
                    .unwrap_or_else(|error| panic!("PUT {url} failed: {error}"));
                let status = response.status();
                assert!(status.is_success(), "PUT {url} returned {status}");
            }
        })
        .buffer_unordered(REGISTRY_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// Returns `Bearer TOKEN` with push rights on every repository when the registry uses
/// token auth, from the token server directly, and `None` without auth.
async fn push_authorization(
    client: &reqwest::Client,
    registry: &Registry,
    repositories: &[String],
) -> Option<String> {
    let server = registry.token_server()?;
    let pusher = registry
        .push_credentials()
        .expect("a registry with token auth has a pushing user");
    let mut query = vec![("service".to_owned(), server.service().to_owned())];
    for repository in repositories {
        query.push((
            "scope".to_owned(),
            format!("repository:{repository}:pull,push"),
        ));
    }
    let response = client
        .get(server.realm())
        .query(&query)
        .basic_auth(&pusher.username, Some(&pusher.password))
        .send()
        .await
        .unwrap_or_else(|error| panic!("token request to {} failed: {error}", server.realm()));
    let status = response.status();
    assert!(status.is_success(), "token request returned {status}");
    let body: Value = response.json().await.expect("token response is JSON");
    let token = body["token"].as_str().expect("token response has a token");
    Some(format!("Bearer {token}"))
}

/// Returns the content type and bytes of the manifest of tag `t0`.
async fn get_manifest(
    client: &reqwest::Client,
    registry: &Registry,
    repository: &str,
    authorization: Option<&str>,
) -> (String, bytes::Bytes) {
    let url = registry.manifest_url(repository, &tag_name(0));
    let mut request = client.get(&url).header("Accept", MANIFEST_ACCEPT);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url} failed: {error}"));
    let status = response.status();
    assert!(status.is_success(), "GET {url} returned {status}");
    let content_type = response
        .headers()
        .get("Content-Type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("GET {url} returned no Content-Type"))
        .to_owned();
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|error| panic!("reading GET {url} failed: {error}"));
    (content_type, body)
}

/// Tags each repository's image on the engine as `HOST/REPOSITORY:TAG` for every tag of
/// `tags`. The image's `Drop` removes these tags with it.
async fn add_engine_tags(
    docker: &Docker,
    host: &str,
    repositories: &[String],
    images: &[TestImage],
    tags: &[String],
) {
    let jobs = repositories
        .iter()
        .zip(images)
        .flat_map(|(repository, image)| tags.iter().map(move |tag| (repository, image.id(), tag)));
    futures::stream::iter(jobs)
        .map(|(repository, image_id, tag)| async move {
            let options = TagImageOptionsBuilder::new()
                .repo(&format!("{host}/{repository}"))
                .tag(tag)
                .build();
            docker
                .tag_image(image_id, Some(options))
                .await
                .map_err(|error| format!("tagging {host}/{repository}:{tag} failed: {error}"))
        })
        .buffer_unordered(ENGINE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .unwrap_or_else(|message| panic!("{message}"));
}

/// Creates `per_reference` containers (`--network none`, not started) from each of
/// `references` and returns their names and IDs, grouped as `references` is.
async fn create_containers(
    docker: &Docker,
    references: &[String],
    per_reference: usize,
    guard: &mut ContainerGuard,
) -> Vec<Vec<(String, String)>> {
    // The test kit's owner label with this pid lets the kit's `sweep_leftovers` remove the
    // containers if this process is killed before `Drop` runs.
    let label_value = std::process::id().to_string();
    let jobs = references
        .iter()
        .enumerate()
        .flat_map(|(index, reference)| (0..per_reference).map(move |_| (index, reference)));
    let created: Vec<(usize, String, Result<String, String>)> = futures::stream::iter(jobs)
        .map(|(index, reference)| {
            let name = unique_name("fleet");
            let body = ContainerCreateBody {
                image: Some(reference.clone()),
                labels: Some(HashMap::from([(
                    OWNER_LABEL.to_owned(),
                    label_value.clone(),
                )])),
                host_config: Some(HostConfig {
                    network_mode: Some("none".to_owned()),
                    ..HostConfig::default()
                }),
                ..ContainerCreateBody::default()
            };
            async move {
                let options = CreateContainerOptionsBuilder::new().name(&name).build();
                let result = docker
                    .create_container(Some(options), body)
                    .await
                    .map(|response| response.id)
                    .map_err(|error| format!("creating {name} from {reference} failed: {error}"));
                (index, name, result)
            }
        })
        .buffer_unordered(ENGINE_CONCURRENCY)
        .collect()
        .await;

    let mut names = vec![Vec::with_capacity(per_reference); references.len()];
    let mut failure = None;
    for (index, name, result) in created {
        match result {
            Ok(id) => {
                guard.ids.push(id.clone());
                names[index].push((name, id));
            }
            Err(message) => failure = Some(message),
        }
    }
    if let Some(message) = failure {
        panic!("{message}");
    }
    names
}

/// Container IDs that `Drop` removes with `docker rm --force`, also on panic.
#[derive(Default)]
struct ContainerGuard {
    ids: Vec<String>,
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        for chunk in self.ids.chunks(100) {
            let output = Command::new("docker")
                .args(["rm", "--force", "--volumes"])
                .args(chunk)
                .output();
            match output {
                Ok(output) if output.status.success() => {}
                Ok(output) => eprintln!(
                    "fleet: removing containers failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
                Err(error) => eprintln!("fleet: running docker rm failed: {error}"),
            }
        }
    }
}
