//! The server's view of image status: a status cache per (environment, node, container),
//! one computation per container however many requests ask at once, and a wait bound
//! after which a request answers `processing` while the check goes on in the background.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::{Checker, ContainerReport};
use crate::engine::{Engine, EngineAddress, EngineError};
use crate::rules::Status;

/// Time limits of the status service.
#[derive(Clone, Copy, Debug)]
pub struct ServiceConfig {
    /// How long a container's status is served from the cache.
    pub status_ttl: Duration,
    /// How long an `error` status is served from the cache.
    pub error_ttl: Duration,
    /// How long a request without `force` waits before it answers `processing`.
    pub wait_bound: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            status_ttl: Duration::from_secs(300),
            error_ttl: Duration::from_secs(30),
            wait_bound: Duration::from_secs(3),
        }
    }
}

/// The cache key of a container's status.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatusKey {
    pub environment: i64,
    pub node: Option<String>,
    pub container: String,
}

/// The origin of a status, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Served from the status cache.
    Cache,
    /// Computed for this request, or joined a computation already running.
    Computed,
    /// Not ready within the wait bound; `processing` was returned.
    Pending,
}

type SharedCheck = Shared<BoxFuture<'static, Arc<ContainerReport>>>;

struct StatusExpiry(ServiceConfig);

impl moka::Expiry<StatusKey, Arc<ContainerReport>> for StatusExpiry {
    fn expire_after_create(
        &self,
        _key: &StatusKey,
        report: &Arc<ContainerReport>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(match report.status {
            Status::Error => self.0.error_ttl,
            _ => self.0.status_ttl,
        })
    }
}

/// Image status for many environments, shared by every request of a server.
pub struct StatusService {
    checker: Arc<Checker>,
    config: ServiceConfig,
    statuses: moka::future::Cache<StatusKey, Arc<ContainerReport>>,
    /// Checks in progress, each with a generation number, so that a finished check does
    /// not remove a newer forced check of the same container.
    running: Arc<Mutex<HashMap<StatusKey, (u64, SharedCheck)>>>,
    generation: std::sync::atomic::AtomicU64,
    engines: Arc<EnginePool>,
}

impl StatusService {
    pub fn new(checker: Arc<Checker>, config: ServiceConfig) -> Self {
        Self {
            checker,
            config,
            statuses: moka::future::Cache::builder()
                .max_capacity(100_000)
                .expire_after(StatusExpiry(config))
                .build(),
            running: Arc::new(Mutex::new(HashMap::new())),
            generation: std::sync::atomic::AtomicU64::new(0),
            engines: Arc::new(EnginePool::default()),
        }
    }

    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    /// The status of a container. Without `force` a cached status is returned at once,
    /// and a check that outlasts the wait bound returns `processing` while it goes on.
    /// With `force` the container is checked again against the registry, the request
    /// waits for the result, and the result replaces the cached one.
    pub async fn status(
        &self,
        key: StatusKey,
        address: &EngineAddress,
        force: bool,
    ) -> (Arc<ContainerReport>, Source) {
        if !force && let Some(report) = self.statuses.get(&key).await {
            return (report, Source::Cache);
        }

        let check = self.start_or_join(key.clone(), address.clone(), force);
        if force {
            return (check.await, Source::Computed);
        }
        match tokio::time::timeout(self.config.wait_bound, check).await {
            Ok(report) => (report, Source::Computed),
            Err(_) => (Arc::new(processing(&key)), Source::Pending),
        }
    }

    /// Joins the running check of `key`, or starts one. A forced check always starts
    /// afresh, and later requests join it.
    ///
    /// Connecting to the engine is part of the check, so that the wait bound covers an
    /// engine that does not answer.
    fn start_or_join(&self, key: StatusKey, address: EngineAddress, force: bool) -> SharedCheck {
        let mut running = self.running.lock().expect("running checks lock poisoned");
        if !force && let Some((_, check)) = running.get(&key) {
            return check.clone();
        }
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

        let checker = Arc::clone(&self.checker);
        let engines = Arc::clone(&self.engines);
        let statuses = self.statuses.clone();
        let running_map = Arc::clone(&self.running);
        let task_key = key.clone();
        let span = tracing::info_span!(
            "image_status",
            environment_id = key.environment,
            node = key.node.as_deref().unwrap_or(""),
        );
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let report = match engines.connect(task_key.environment, &address).await {
                    Ok(engine) => checker.check_one(&engine, &task_key.container, force).await,
                    Err(error) => engine_failure(&task_key, &error),
                };
                let report = Arc::new(report);
                statuses.insert(task_key.clone(), Arc::clone(&report)).await;
                let mut running = running_map.lock().expect("running checks lock poisoned");
                if running
                    .get(&task_key)
                    .is_some_and(|(g, _)| *g == generation)
                {
                    running.remove(&task_key);
                }
                report
            },
            span,
        ));

        let failed_key = key.clone();
        let check = async move {
            match task.await {
                Ok(report) => report,
                Err(join_error) => {
                    tracing::error!(
                        environment_id = failed_key.environment,
                        container_id = %failed_key.container,
                        error = %join_error,
                        "status check task failed"
                    );
                    Arc::new(failed(&failed_key, "the status check stopped unexpectedly"))
                }
            }
        }
        .boxed()
        .shared();
        running.insert(key, (generation, check.clone()));
        check
    }

    /// Returns a connection to the environment's engine, made once and kept while its
    /// address stays the same.
    pub async fn engine(
        &self,
        environment: i64,
        address: &EngineAddress,
    ) -> Result<Engine, EngineError> {
        self.engines.connect(environment, address).await
    }
}

/// The connection of one environment and the address it was made to; connecting holds the
/// lock, so concurrent checks of one environment connect once.
type EngineSlot = tokio::sync::Mutex<Option<(EngineAddress, Engine)>>;

/// One engine connection per environment. Connections to different environments are made
/// independently, so that an engine that does not answer delays only its own checks.
#[derive(Default)]
struct EnginePool {
    environments: Mutex<HashMap<i64, Arc<EngineSlot>>>,
}

impl EnginePool {
    async fn connect(
        &self,
        environment: i64,
        address: &EngineAddress,
    ) -> Result<Engine, EngineError> {
        let slot = {
            let mut environments = self.environments.lock().expect("engine pool lock poisoned");
            Arc::clone(environments.entry(environment).or_default())
        };
        let mut slot = slot.lock().await;
        if let Some((known, engine)) = &*slot
            && known == address
        {
            return Ok(engine.clone());
        }
        let engine = Engine::connect(address).await?;
        *slot = Some((address.clone(), engine.clone()));
        Ok(engine)
    }
}

/// The `error` report of a check whose engine could not be reached; the cause is logged
/// here, with the environment and container.
fn engine_failure(key: &StatusKey, error: &EngineError) -> ContainerReport {
    let message = crate::error_chain(error);
    tracing::warn!(
        environment_id = key.environment,
        container_id = %key.container,
        error = %message,
        "engine connection failed"
    );
    failed(key, &message)
}

fn processing(key: &StatusKey) -> ContainerReport {
    report(
        key,
        Status::Processing,
        "the check is still running; ask again shortly",
    )
}

fn failed(key: &StatusKey, message: &str) -> ContainerReport {
    report(key, Status::Error, message)
}

fn report(key: &StatusKey, status: Status, message: &str) -> ContainerReport {
    ContainerReport {
        container: key.container.clone(),
        name: String::new(),
        image: String::new(),
        status,
        message: message.to_owned(),
        local_digests: Vec::new(),
        remote_digest: None,
        reference: None,
        registry: None,
        checked_at: (status != Status::Processing).then(SystemTime::now),
    }
}
