//! The image status source of a real server: environments' engines and their registries,
//! through the status service's caches.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use prometheus::{IntCounterVec, Opts};

use super::containers::{ListedContainer, list_containers};
use super::image_status::{
    CheckDetail, ImageStatusSource, StatusFailure, StatusReply, StatusRequest,
};
use super::store::{Environment, TlsMaterial};
use crate::engine::EngineAddress;
use crate::rules::Status;
use crate::status::{Source, StatusKey, StatusService};

/// The message the API sends for `error`: the cause goes to the server log only, since it
/// can name registries and hosts.
pub const GENERIC_ERROR: &str = "unable to determine image status";

/// Directory under the data directory that contains environments' TLS files.
const ENGINE_TLS_DIR: &str = "engine-tls";

/// Checks containers of stored environments through a [`StatusService`].
pub struct EngineStatusSource {
    service: Arc<StatusService>,
    data_dir: PathBuf,
    checks: IntCounterVec,
    status_cache: IntCounterVec,
}

impl EngineStatusSource {
    /// Creates the source and registers its counters in `registry`.
    pub fn new(
        service: Arc<StatusService>,
        data_dir: &Path,
        registry: &prometheus::Registry,
    ) -> Result<Self, prometheus::Error> {
        let checks = IntCounterVec::new(
            Opts::new("imgstat_checks_total", "Image status answers by status"),
            &["status"],
        )?;
        let status_cache = IntCounterVec::new(
            Opts::new(
                "imgstat_status_cache_total",
                "Status requests answered from the status cache (hit), by a check (miss), or \
                 with processing while the check goes on (pending)",
            ),
            &["result"],
        )?;
        registry.register(Box::new(checks.clone()))?;
        registry.register(Box::new(status_cache.clone()))?;
        registry.register(Box::new(super::metrics::CheckerCollector::new(Arc::clone(
            &service,
        ))))?;
        Ok(Self {
            service,
            data_dir: data_dir.to_owned(),
            checks,
            status_cache,
        })
    }

    async fn status(&self, request: StatusRequest<'_>) -> Result<StatusReply, StatusFailure> {
        let environment = request.environment;
        let address = self.engine_address(environment)?;
        let key = StatusKey {
            environment: environment.id,
            node: request.node_name.map(str::to_owned),
            container: request.container_id.to_owned(),
        };

        let (report, source) = self.service.status(key, &address, request.force).await;
        let cache_result = match source {
            Source::Cache => "hit",
            Source::Computed => "miss",
            Source::Pending => "pending",
        };
        self.status_cache.with_label_values(&[cache_result]).inc();
        self.checks
            .with_label_values(&[report.status.as_str()])
            .inc();

        // The cause of an `error` was logged where it was caught, with the environment,
        // container, reference and registry.
        let message = match report.status {
            Status::Error => Some(GENERIC_ERROR.to_owned()),
            Status::Skipped | Status::Processing => Some(report.message.clone()),
            _ => None,
        };
        Ok(StatusReply {
            status: report.status,
            message,
            detail: CheckDetail {
                reference: report.reference.clone(),
                checked_at: report.checked_at,
                local_digests: report.local_digests.clone(),
                remote_digest: report.remote_digest.clone(),
            },
        })
    }

    async fn containers(
        &self,
        environment: &Environment,
    ) -> Result<Vec<ListedContainer>, StatusFailure> {
        let address = self.engine_address(environment)?;
        let engine = self.service.engine(environment.id, &address).await?;
        Ok(list_containers(&engine).await?)
    }

    /// The engine address of an environment, with its TLS material written to files the
    /// engine client can read (mode 0600).
    fn engine_address(&self, environment: &Environment) -> Result<EngineAddress, StatusFailure> {
        let tls = match &environment.tls {
            None => None,
            Some(material) => Some(self.write_tls_files(environment.id, material)?),
        };
        Ok(EngineAddress {
            url: environment.url.clone(),
            tls,
        })
    }

    fn write_tls_files(&self, id: i64, material: &TlsMaterial) -> Result<PathBuf, StatusFailure> {
        let (Some(cert), Some(key)) = (&material.cert, &material.key) else {
            // NOTE: bollard connects over TLS only with a client certificate; a TLS engine
            // without one stays unsupported until the engine client can do without.
            return Err(format!(
                "environment {id} uses TLS without a client certificate, which imgstat cannot connect with"
            )
            .into());
        };
        let dir = self.data_dir.join(ENGINE_TLS_DIR).join(id.to_string());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        write_private(
            &dir.join("ca.pem"),
            material.ca_cert.as_deref().unwrap_or(""),
        )?;
        write_private(&dir.join("cert.pem"), cert)?;
        write_private(&dir.join("key.pem"), key)?;
        Ok(dir)
    }
}

/// Writes `contents` to `path` with mode 0600, unless the file already contains them.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if fs::read_to_string(path).is_ok_and(|current| current == contents) {
        return Ok(());
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

impl ImageStatusSource for EngineStatusSource {
    fn image_status<'a>(
        &'a self,
        request: StatusRequest<'a>,
    ) -> BoxFuture<'a, Result<StatusReply, StatusFailure>> {
        Box::pin(self.status(request))
    }

    fn list_containers<'a>(
        &'a self,
        environment: &'a Environment,
    ) -> BoxFuture<'a, Result<Vec<ListedContainer>, StatusFailure>> {
        Box::pin(self.containers(environment))
    }
}
