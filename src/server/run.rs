//! Starting and stopping the server: data directory, store, keys, listener, signals.

use std::fs::DirBuilder;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::auth::jwt::JwtKeys;
use super::config::{ConfigError, ServeArgs, ServerConfig};
use super::credential_key::{self, CredentialKeyError};
use super::image_status::ImageStatusSource;
use super::key_file::{self, KeyFileError};
use super::metrics::Metrics;
use super::registry_directory::{RegistryDirectory, ReloadError};
use super::status_source::EngineStatusSource;
use super::store::{Store, StoreError};
use super::{AppState, app};
use crate::registry::RegistryClient;
use crate::status::{CacheConfig, Checker, StatusService};

/// File in the data directory that contains the generated JWT signing key.
pub const JWT_KEY_FILE: &str = "jwt-signing.key";

/// File in the data directory that servers lock shared and a key rotation exclusively.
pub const LOCK_FILE: &str = "imgstat.lock";

/// Length of a generated JWT signing key, in bytes: the block size of SHA-256, the
/// longest HMAC-SHA-256 key that is used without hashing it first.
const JWT_KEY_LEN: usize = 64;

/// Upper bound on waiting for open requests at shutdown; requests still open then are
/// dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Failure to start or run the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("failed to create the data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to open the store")]
    Store(#[from] StoreError),

    #[error("failed to load the JWT signing key")]
    SigningKey(#[from] KeyFileError),

    #[error(transparent)]
    CredentialKey(#[from] CredentialKeyError),

    #[error("failed to load the stored registries")]
    Registries(#[from] ReloadError),

    #[error("failed to lock the data directory {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "a credential key rotation is running on the data directory {path}; start the server \
         when it has finished"
    )]
    RotationRunning { path: PathBuf },

    #[error("the JWT signing key is unusable")]
    Jwt(#[from] jsonwebtoken::errors::Error),

    #[error("failed to create the metrics registry")]
    Metrics(#[from] prometheus::Error),

    #[error("failed to listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },

    #[error("failed to set up the registry HTTP client")]
    HttpClient(#[source] reqwest::Error),

    #[error("the HTTP server failed")]
    Serve(#[source] io::Error),
}

/// Runs `imgstat serve` with the options from the command line, until SIGINT or SIGTERM.
pub async fn run_command(args: ServeArgs) -> Result<(), ServeError> {
    let config = ServerConfig::try_from(args)?;
    let state = open_engine_state(&config).await?;
    serve(config, state).await
}

/// Opens the store and keys like [`open_state`], with the status source that checks
/// environments' engines against their registries.
pub async fn open_engine_state(config: &ServerConfig) -> Result<AppState, ServeError> {
    let metrics = Metrics::new()?;
    let registries = Arc::new(RegistryDirectory::new());
    let source = engine_status_source(config, &metrics, &registries)?;
    open_state(config, metrics, source, registries).await
}

/// The status source that checks stored environments against their registries, with the
/// caches and limits of `config`, its counters registered in `metrics`. The registry client
/// takes credentials and options from `registries`, and drops a host's tokens and options
/// whenever its stored entries change.
pub fn engine_status_source(
    config: &ServerConfig,
    metrics: &Metrics,
    registries: &Arc<RegistryDirectory>,
) -> Result<Arc<dyn ImageStatusSource>, ServeError> {
    let registry = RegistryClient::new(config.registry.clone(), registries.clone())
        .map_err(ServeError::HttpClient)?
        .with_options(registries.clone());
    let registry = Arc::new(registry);
    let client = Arc::downgrade(&registry);
    registries.on_change(move |host| {
        if let Some(client) = client.upgrade() {
            client.reset_registry(host);
        }
    });

    let cache = CacheConfig {
        digest_ttl: config.status.status_ttl,
        error_ttl: config.status.error_ttl,
        ..CacheConfig::default()
    };
    let checker = Arc::new(Checker::new(registry, cache));
    let service = Arc::new(StatusService::new(checker, config.status));
    let source = EngineStatusSource::new(service, &config.data_dir, metrics.registry())?;
    Ok(Arc::new(source))
}

/// Opens the store and the keys in `config.data_dir`, creating what is missing, listens on
/// `config.listen`, and serves until SIGINT or SIGTERM.
pub async fn run(
    config: ServerConfig,
    metrics: Metrics,
    image_status: Arc<dyn ImageStatusSource>,
    registries: Arc<RegistryDirectory>,
) -> Result<(), ServeError> {
    let state = open_state(&config, metrics, image_status, registries).await?;
    serve(config, state).await
}

/// Listens on `config.listen` and serves `state` until SIGINT or SIGTERM.
async fn serve(config: ServerConfig, state: AppState) -> Result<(), ServeError> {
    let store_version = state.store.schema_version().await?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            address: config.listen,
            source,
        })?;
    let mut server = start(listener, state).map_err(ServeError::Serve)?;
    tracing::info!(
        address = %server.local_addr(),
        data_dir = %config.data_dir.display(),
        store_version,
        "server started"
    );

    tokio::select! {
        () = shutdown_signal() => {}
        result = server.finished() => return result.map_err(ServeError::Serve),
    }
    tracing::info!("shutdown requested, finishing open requests");
    server.stop().await.map_err(ServeError::Serve)?;
    tracing::info!("server stopped");
    Ok(())
}

/// Opens the store and the keys for `config`, creating the data directory (mode 0700), the
/// database and the key files when they are missing, and loads the stored registries into
/// `registries`.
pub async fn open_state(
    config: &ServerConfig,
    metrics: Metrics,
    image_status: Arc<dyn ImageStatusSource>,
    registries: Arc<RegistryDirectory>,
) -> Result<AppState, ServeError> {
    create_data_dir(&config.data_dir)?;
    let lock = lock_data_dir(&config.data_dir)?;
    let store = Store::open(&config.data_dir).await?;
    let credential_key =
        credential_key::load(&config.data_dir, config.credential_key.as_ref(), &store).await?;
    registries.reload(&store, &credential_key).await?;

    let secret = match &config.jwt_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => key_file::load_or_create(&config.data_dir.join(JWT_KEY_FILE), JWT_KEY_LEN)?,
    };
    let jwt = JwtKeys::new(&secret, config.jwt_lifetime)?;

    let mut state = AppState::new(
        store,
        jwt,
        credential_key,
        image_status,
        registries,
        metrics,
    );
    state.data_dir_lock = Some(Arc::new(lock));
    Ok(state)
}

/// Takes a shared lock on the data directory's lock file: servers share it, and a key
/// rotation needs it alone.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, ServeError> {
    let path = data_dir.join(LOCK_FILE);
    let lock_error = |source| ServeError::Lock {
        path: path.clone(),
        source,
    };
    let file = open_lock_file(&path).map_err(lock_error)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::RotationRunning {
            path: data_dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(lock_error(source)),
    }
}

/// Opens (creating it with mode 0600 if missing) the lock file of a data directory.
pub(crate) fn open_lock_file(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

fn create_data_dir(path: &Path) -> Result<(), ServeError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| ServeError::DataDir {
            path: path.to_owned(),
            source,
        })
}

/// A server serving in a background task.
pub struct RunningServer {
    local_addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
    store: Store,
}

/// Starts serving `state` on `listener` in a background task. Bind the listener to port 0
/// to let the system pick a free port, and read it from [`RunningServer::local_addr`].
pub fn start(listener: TcpListener, state: AppState) -> io::Result<RunningServer> {
    let local_addr = listener.local_addr()?;
    let store = state.store.clone();
    let (shutdown, shutdown_requested) = oneshot::channel::<()>();

    let serve = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
        // A dropped sender also means shutdown.
        let _ = shutdown_requested.await;
    });
    let task = tokio::spawn(async move { serve.await });

    Ok(RunningServer {
        local_addr,
        shutdown,
        task,
        store,
    })
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the base URL, such as `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Waits until the server task ends on its own, which happens only when it fails.
    async fn finished(&mut self) -> io::Result<()> {
        (&mut self.task).await.map_err(io::Error::other)?
    }

    /// Stops accepting connections, waits up to 10 seconds for open requests, then closes
    /// the database.
    pub async fn stop(mut self) -> io::Result<()> {
        let _ = self.shutdown.send(());

        let result = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(joined) => joined.map_err(io::Error::other)?,
            Err(_) => {
                tracing::warn!(
                    grace_secs = SHUTDOWN_GRACE.as_secs(),
                    "requests still open after the shutdown grace period, dropping them"
                );
                self.task.abort();
                Ok(())
            }
        };

        self.store.close().await;
        result
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "failed to listen for SIGINT"
            );
            std::future::pending::<()>().await;
        }
    };

    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "failed to listen for SIGTERM"
                );
                std::future::pending::<()>().await;
            }
        }
    };

    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
