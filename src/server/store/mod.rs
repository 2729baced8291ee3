//! The service's SQLite store: users, API keys, environments, access grants and registries.
//! Queries are checked at run time, since the build has no database to check them against.

mod api_keys;
mod environments;
mod registries;
mod users;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use environments::{Environment, NewEnvironment, TlsMaterial};
pub use registries::{
    PasswordUpdate, RegistryFields, RegistryRecord, SealedPassword, password_associated_data,
};
pub use users::{Role, User};

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "imgstat.db";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Failure of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same unique value exists, for example a second user with one username.
    #[error("{entity} {value:?} already exists")]
    Duplicate { entity: &'static str, value: String },

    /// A row that the operation refers to does not exist.
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: i64 },

    /// An update would keep a password given for another host or username.
    #[error(
        "registry {id}: a new Password is required when the host of the URL or the Username \
         changes"
    )]
    PasswordRequired { id: i64 },

    /// A stored row that the code cannot read, such as a registry URL that no longer parses.
    #[error("stored {entity} {id} is invalid: {problem}")]
    Corrupt {
        entity: &'static str,
        id: i64,
        problem: String,
    },

    #[error("failed to seal or open {}", sealed_item(*registry_id))]
    Seal {
        /// The registry whose password failed; `None` for the key check value.
        registry_id: Option<i64>,
        #[source]
        source: crate::server::credential_key::SealError,
    },

    #[error("failed to open the database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },

    #[error("failed to migrate the database schema")]
    Migrate(#[from] MigrateError),

    #[error("database query failed")]
    Query(#[from] sqlx::Error),
}

/// Handle to the database; cheap to clone, all clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating it if missing) the database in `data_dir` and applies pending migrations.
    ///
    /// The journal is WAL with `synchronous=FULL`, so a transaction that returned is on disk
    /// even when the process or the machine stops right after.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(DATABASE_FILE);
        create_owner_only(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source: source.into(),
        })?;

        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));

        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open { path, source })?;

        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Opens a private in-memory database, for tests of code that needs a store.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);

        // Every connection to ":memory:" is a separate database, so the pool keeps exactly one.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;

        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Returns the version of the newest migration applied to the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    /// Runs a trivial query, so a health check notices a database that stopped responding.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Waits for the connections in use to return, then closes them all.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn sealed_item(registry_id: Option<i64>) -> String {
    match registry_id {
        Some(id) => format!("the password of registry {id}"),
        None => "the credential key check value".to_owned(),
    }
}

/// Creates an empty database file readable by its owner only, unless it exists. SQLite
/// gives the `-wal` and `-shm` files it creates next to it the same mode.
fn create_owner_only(path: &Path) -> std::io::Result<()> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Maps a unique-constraint violation to [`StoreError::Duplicate`] and any other error to
/// [`StoreError::Query`].
fn duplicate_or_query(error: sqlx::Error, entity: &'static str, value: &str) -> StoreError {
    let is_unique_violation = error
        .as_database_error()
        .is_some_and(|database_error| database_error.is_unique_violation());

    if is_unique_violation {
        StoreError::Duplicate {
            entity,
            value: value.to_owned(),
        }
    } else {
        StoreError::Query(error)
    }
}
