//! A container's image status, from engine facts and registry responses through the rules,
//! with the caches that make many containers of one tag cost one registry request.

mod service;

pub use service::{ServiceConfig, Source, StatusKey, StatusService};

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde::Serialize;

use crate::engine::{ContainerFacts, Engine, EngineError};
use crate::reference::looks_like_image_id;
use crate::registry::{RegistryClient, RegistryError, TagKey};
use crate::rules::{
    self, Comparison, ImageFacts, Manifest, Manifests, Plan, RemoteDigest, Status, Target, Verdict,
};

/// Engine inspections in flight at once for one check.
const ENGINE_CONCURRENCY: usize = 16;

/// The outcome of checking one container.
#[derive(Clone, Debug, Serialize)]
pub struct ContainerReport {
    /// Full container ID; the name or ID asked for when the container was not found.
    pub container: String,
    pub name: String,
    /// The reference the container was created from, as the engine recorded it.
    pub image: String,
    pub status: Status,
    /// The reason for the status; for `error`, the cause.
    pub message: String,
    /// The manifest digests the engine recorded for the checked repository.
    pub local_digests: Vec<String>,
    /// The registry's digest for the tag, when the registry returned one.
    pub remote_digest: Option<String>,
    /// The normalised reference that was checked.
    pub reference: Option<String>,
    /// The registry that was asked.
    pub registry: Option<String>,
    /// When the status was decided; `None` for a check still running. The remote digest
    /// behind it can be older by up to the remote digest cache's time-to-live.
    #[serde(skip)]
    pub checked_at: Option<SystemTime>,
}

impl ContainerReport {
    fn decided(container: &ContainerFacts, verdict: Verdict) -> Self {
        Self {
            container: container.id.clone(),
            name: container.name.clone(),
            image: container.config_image.clone(),
            status: verdict.status,
            message: verdict.reason,
            local_digests: Vec::new(),
            remote_digest: None,
            reference: None,
            registry: None,
            checked_at: Some(SystemTime::now()),
        }
    }
}

/// Time-to-live of cached registry responses.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// How long a tag's remote digest is kept.
    pub digest_ttl: Duration,
    /// How long a registry failure is kept, so that a registry that is down is not asked
    /// again at once.
    pub error_ttl: Duration,
    /// Tags kept at most.
    pub max_tags: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            digest_ttl: Duration::from_secs(300),
            error_ttl: Duration::from_secs(30),
            max_tags: 100_000,
        }
    }
}

/// A container after planning: decided without the registry, or targets to check.
enum Planned<'a> {
    Done(ContainerReport),
    Check {
        container: &'a ContainerFacts,
        image: &'a ImageFacts,
        targets: Vec<Target>,
    },
}

type DigestAnswer = Result<RemoteDigest, RegistryError>;

/// Expires successful answers after the digest TTL and failures after the error TTL.
struct AnswerExpiry(CacheConfig);

impl moka::Expiry<TagKey, DigestAnswer> for AnswerExpiry {
    fn expire_after_create(
        &self,
        _key: &TagKey,
        value: &DigestAnswer,
        _now: Instant,
    ) -> Option<Duration> {
        Some(match value {
            Ok(_) => self.0.digest_ttl,
            // The registry may be asked again once its pause ends, not only after the
            // error time-to-live.
            Err(RegistryError::RateLimited {
                retry_after: Some(pause),
                ..
            }) => (*pause).min(self.0.error_ttl),
            Err(_) => self.0.error_ttl,
        })
    }
}

/// How often a tag's remote digest came from the cache, for metrics.
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub digest_hits: std::sync::atomic::AtomicU64,
    pub digest_misses: std::sync::atomic::AtomicU64,
}

/// Checks containers against their registries, sharing registry answers between them.
pub struct Checker {
    registry: Arc<RegistryClient>,
    counters: CacheCounters,
    digests: moka::future::Cache<TagKey, DigestAnswer>,
    /// Manifests by (registry, digest): content-addressed, so kept until evicted by size.
    manifests: moka::future::Cache<(String, String), Manifest>,
}

impl Checker {
    pub fn new(registry: Arc<RegistryClient>, cache: CacheConfig) -> Self {
        Self {
            registry,
            counters: CacheCounters::default(),
            digests: moka::future::Cache::builder()
                .max_capacity(cache.max_tags)
                .expire_after(AnswerExpiry(cache))
                .build(),
            manifests: moka::future::Cache::builder().max_capacity(10_000).build(),
        }
    }

    pub fn registry(&self) -> &RegistryClient {
        &self.registry
    }

    /// Remote digest cache hits and misses since the checker was created.
    pub fn counters(&self) -> &CacheCounters {
        &self.counters
    }

    /// Checks containers by name or ID, in the order given. `on_done` is called once per
    /// container as its check ends.
    pub async fn check_named(
        &self,
        engine: &Engine,
        names: &[String],
        on_done: &(dyn Fn() + Sync),
    ) -> Vec<ContainerReport> {
        let resolved = futures::stream::iter(names)
            .map(|name| inspect_named(engine, name))
            .buffered(ENGINE_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        self.check_resolved(engine, resolved, on_done).await
    }

    /// Checks containers as the engine listed them, in the order given.
    ///
    /// A listing shows the image ID in place of `Config.Image` once the tag has moved to
    /// another local image, so only containers listed with an image ID are inspected.
    pub async fn check_listed(
        &self,
        engine: &Engine,
        listed: Vec<ContainerFacts>,
        on_done: &(dyn Fn() + Sync),
    ) -> Vec<ContainerReport> {
        let resolved = futures::stream::iter(listed)
            .map(|container| async move {
                let named = !container.config_image.is_empty()
                    && !looks_like_image_id(&container.config_image);
                if named {
                    return Ok(container);
                }
                match engine.inspect_container(&container.id).await {
                    Ok(Some(inspected)) => Ok(inspected),
                    // Removed since the listing: its listed facts still name its image.
                    Ok(None) => Ok(container),
                    Err(error) => Err(engine_failure(&container, &error)),
                }
            })
            .buffered(ENGINE_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        self.check_resolved(engine, resolved, on_done).await
    }

    /// Checks the containers of `resolved` and keeps the reports already decided, in the
    /// order given.
    async fn check_resolved(
        &self,
        engine: &Engine,
        resolved: Vec<Result<ContainerFacts, ContainerReport>>,
        on_done: &(dyn Fn() + Sync),
    ) -> Vec<ContainerReport> {
        let total = resolved.len();
        let mut found = Vec::new();
        let mut reports: HashMap<usize, ContainerReport> = HashMap::new();
        for (position, result) in resolved.into_iter().enumerate() {
            match result {
                Ok(container) => found.push((position, container)),
                Err(report) => {
                    reports.insert(position, report);
                    on_done();
                }
            }
        }

        let (positions, containers): (Vec<usize>, Vec<ContainerFacts>) = found.into_iter().unzip();
        let checked = self.check_containers(engine, &containers, on_done).await;
        for (position, report) in positions.into_iter().zip(checked) {
            reports.insert(position, report);
        }
        (0..total).filter_map(|i| reports.remove(&i)).collect()
    }

    /// Checks inspected containers, in the order given.
    async fn check_containers(
        &self,
        engine: &Engine,
        containers: &[ContainerFacts],
        on_done: &(dyn Fn() + Sync),
    ) -> Vec<ContainerReport> {
        let images = self.inspect_images(engine, containers).await;

        let planned: Vec<Planned> = containers
            .iter()
            .map(|container| match images.get(&container.image_id) {
                Some(Ok(image)) => match rules::plan(&container.config_image, image) {
                    Plan::Check(targets) => Planned::Check {
                        container,
                        image,
                        targets,
                    },
                    Plan::Decided(verdict) => {
                        Planned::Done(ContainerReport::decided(container, verdict))
                    }
                },
                Some(Err(error)) => Planned::Done(engine_failure(container, error)),
                None => Planned::Done(ContainerReport::decided(
                    container,
                    Verdict::new(
                        Status::Error,
                        "the engine reported no image for the container",
                    ),
                )),
            })
            .collect();

        let keys: BTreeSet<TagKey> = planned
            .iter()
            .flat_map(|planned| match planned {
                Planned::Check { targets, .. } => targets.as_slice(),
                Planned::Done(_) => &[],
            })
            .filter_map(|target| TagKey::of(&target.reference))
            .collect();
        let mut uncached = Vec::new();
        for key in keys {
            if !self.digests.contains_key(&key) {
                uncached.push(key);
            }
        }
        self.registry.prepare(&uncached).await;

        let checks = planned.into_iter().map(|planned| async move {
            let report = match planned {
                Planned::Done(report) => report,
                Planned::Check {
                    container,
                    image,
                    targets,
                } => self.check_targets(container, image, &targets, false).await,
            };
            on_done();
            report
        });
        futures::future::join_all(checks).await
    }

    /// Checks one container by ID or name. `force` asks the registry again instead of
    /// using cached answers, and caches the fresh ones.
    pub async fn check_one(
        &self,
        engine: &Engine,
        id_or_name: &str,
        force: bool,
    ) -> ContainerReport {
        let container = match inspect_named(engine, id_or_name).await {
            Ok(container) => container,
            Err(report) => return report,
        };
        let image = match engine.inspect_image(&container.image_id).await {
            Ok(image) => image,
            Err(error) => return engine_failure(&container, &error),
        };
        match rules::plan(&container.config_image, &image) {
            Plan::Decided(verdict) => ContainerReport::decided(&container, verdict),
            Plan::Check(targets) => {
                self.check_targets(&container, &image, &targets, force)
                    .await
            }
        }
    }

    async fn inspect_images(
        &self,
        engine: &Engine,
        containers: &[ContainerFacts],
    ) -> HashMap<String, Result<ImageFacts, EngineError>> {
        let ids: BTreeSet<&str> = containers.iter().map(|c| c.image_id.as_str()).collect();
        futures::stream::iter(ids)
            .map(|id| async move { (id.to_owned(), engine.inspect_image(id).await) })
            .buffer_unordered(ENGINE_CONCURRENCY)
            .collect()
            .await
    }

    /// Compares every target of a container and combines their statuses.
    async fn check_targets(
        &self,
        container: &ContainerFacts,
        image: &ImageFacts,
        targets: &[Target],
        force: bool,
    ) -> ContainerReport {
        let mut reports = Vec::with_capacity(targets.len());
        for target in targets {
            reports.push(self.check_target(container, image, target, force).await);
        }
        let status = rules::aggregate(reports.iter().map(|r| r.status));
        let position = reports.iter().position(|r| r.status == status).unwrap_or(0);
        reports.swap_remove(position)
    }

    async fn check_target(
        &self,
        container: &ContainerFacts,
        image: &ImageFacts,
        target: &Target,
        force: bool,
    ) -> ContainerReport {
        let mut report = ContainerReport {
            container: container.id.clone(),
            name: container.name.clone(),
            image: container.config_image.clone(),
            status: Status::Error,
            message: String::new(),
            local_digests: target.local_digests.clone(),
            remote_digest: None,
            reference: Some(target.reference.to_string()),
            registry: Some(target.reference.registry().to_owned()),
            checked_at: Some(SystemTime::now()),
        };
        let Some(key) = TagKey::of(&target.reference) else {
            report.status = Status::Skipped;
            report.message = format!("{} has no tag to follow", target.reference);
            return report;
        };

        let verdict = match self.remote_digest(&key, force).await {
            Ok(remote) => {
                report.remote_digest = Some(remote.digest.clone());
                self.compare(&key, target, image, &remote).await
            }
            Err(error) => Err(error),
        };
        match verdict {
            Ok(verdict) => {
                report.status = verdict.status;
                report.message = verdict.reason;
            }
            Err(error) => {
                tracing::warn!(
                    container_id = %container.id,
                    reference = %target.reference,
                    registry = %error.registry(),
                    error = %error.chain(),
                    "registry check failed"
                );
                report.status = Status::Error;
                report.message = error.chain();
            }
        }
        report
    }

    /// The tag's remote digest: one registry request per tag however many callers ask at
    /// once, and none while a cached answer is fresh, unless `force`.
    async fn remote_digest(&self, key: &TagKey, force: bool) -> DigestAnswer {
        if force {
            self.digests.invalidate(key).await;
            self.registry.retry_unreachable(&key.registry).await;
        }
        let lookup = async {
            let answer = self.registry.tag_digest(key).await?;
            if let Some(manifest) = answer.manifest {
                let cache_key = (key.registry.clone(), answer.remote.digest.clone());
                self.manifests.insert(cache_key, manifest).await;
            }
            Ok(answer.remote)
        };
        let entry = self.digests.entry_by_ref(key).or_insert_with(lookup).await;
        let counter = if entry.is_fresh() {
            &self.counters.digest_misses
        } else {
            &self.counters.digest_hits
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        entry.into_value()
    }

    /// Runs the comparison rules, fetching the manifests they ask for (each at most once).
    async fn compare(
        &self,
        key: &TagKey,
        target: &Target,
        image: &ImageFacts,
        remote: &RemoteDigest,
    ) -> Result<Verdict, RegistryError> {
        let mut known = Manifests::new();
        // Each round fetches what the rules asked for; the rules ask for the remote index
        // first and for local manifests second, so two rounds decide.
        for _ in 0..3 {
            match rules::compare(target, &image.platform, remote, &known) {
                Comparison::Decided(verdict) => return Ok(verdict),
                Comparison::Fetch(digests) => {
                    for digest in digests {
                        let manifest = match self.manifest(key, &digest).await {
                            Ok(manifest) => manifest,
                            // A local digest the registry no longer has cannot be the
                            // remote one, nor show that only other platforms changed.
                            Err(RegistryError::NotFound { .. }) if digest != remote.digest => {
                                Manifest::Single
                            }
                            Err(error) => return Err(error),
                        };
                        known.insert(digest, manifest);
                    }
                }
            }
        }
        Ok(Verdict::new(
            Status::Error,
            "the comparison did not settle after fetching the manifests it asked for",
        ))
    }

    /// A manifest by digest, fetched at most once per registry (content-addressed).
    async fn manifest(&self, key: &TagKey, digest: &str) -> Result<Manifest, RegistryError> {
        let cache_key = (key.registry.clone(), digest.to_owned());
        let fetch = self
            .registry
            .fetch_manifest(&key.registry, &key.repository, digest);
        self.manifests
            .try_get_with(cache_key, fetch)
            .await
            .map_err(|shared| (*shared).clone())
    }
}

/// Inspects a container by the name or ID a user gave. A missing container is `skipped`
/// and an engine failure `error`, each reported under that name.
async fn inspect_named(engine: &Engine, name: &str) -> Result<ContainerFacts, ContainerReport> {
    let unknown = || ContainerFacts {
        id: name.to_owned(),
        name: name.to_owned(),
        ..ContainerFacts::default()
    };
    match engine.inspect_container(name).await {
        Ok(Some(container)) => Ok(container),
        Ok(None) => {
            let reason = format!("no container {name} on the engine");
            let verdict = Verdict::new(Status::Skipped, reason);
            Err(ContainerReport::decided(&unknown(), verdict))
        }
        Err(error) => Err(engine_failure(&unknown(), &error)),
    }
}

fn engine_failure(container: &ContainerFacts, error: &EngineError) -> ContainerReport {
    let message = crate::error_chain(error);
    tracing::warn!(container_id = %container.id, error = %message, "engine check failed");
    ContainerReport::decided(container, Verdict::new(Status::Error, message))
}
