//! Environments (container engines) and the grants that let standard users reach them.

use std::fmt;

use super::{Store, StoreError, duplicate_or_query};

/// A container engine reached through the Docker Engine API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    pub id: i64,
    pub name: String,
    /// `unix:///path/to/socket` or `tcp://host:port`, checked when the environment was created.
    pub url: String,
    /// Present when a `tcp://` engine is reached over TLS.
    pub tls: Option<TlsMaterial>,
}

/// PEM text for a TLS connection to an engine.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsMaterial {
    /// CA certificates that sign the engine's certificate; `None` means the system roots.
    pub ca_cert: Option<String>,
    /// Client certificate, always set together with `key`.
    pub cert: Option<String>,
    /// Private key of the client certificate.
    pub key: Option<String>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca_cert", &self.ca_cert.as_ref().map(|_| "<pem>"))
            .field("cert", &self.cert.as_ref().map(|_| "<pem>"))
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The fields of an environment before the store gives it an id.
#[derive(Clone, Debug)]
pub struct NewEnvironment {
    pub name: String,
    pub url: String,
    pub tls: Option<TlsMaterial>,
}

#[derive(sqlx::FromRow)]
struct EnvironmentRow {
    id: i64,
    name: String,
    url: String,
    tls: bool,
    tls_ca_cert: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

impl From<EnvironmentRow> for Environment {
    fn from(row: EnvironmentRow) -> Self {
        let tls = row.tls.then_some(TlsMaterial {
            ca_cert: row.tls_ca_cert,
            cert: row.tls_cert,
            key: row.tls_key,
        });
        Self {
            id: row.id,
            name: row.name,
            url: row.url,
            tls,
        }
    }
}

const ENVIRONMENT_COLUMNS: &str = "environments.id, environments.name, environments.url, \
     environments.tls, environments.tls_ca_cert, environments.tls_cert, environments.tls_key";

impl Store {
    /// Creates an environment; fails with [`StoreError::Duplicate`] when the name is taken.
    pub async fn create_environment(
        &self,
        new: &NewEnvironment,
    ) -> Result<Environment, StoreError> {
        let tls = new.tls.clone().unwrap_or_default();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO environments (name, url, tls, tls_ca_cert, tls_cert, tls_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )
        .bind(&new.name)
        .bind(&new.url)
        .bind(new.tls.is_some())
        .bind(tls.ca_cert)
        .bind(tls.cert)
        .bind(tls.key)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| duplicate_or_query(error, "environment", &new.name))?;

        Ok(Environment {
            id,
            name: new.name.clone(),
            url: new.url.clone(),
            tls: new.tls.clone(),
        })
    }

    pub async fn environment(&self, id: i64) -> Result<Option<Environment>, StoreError> {
        let row: Option<EnvironmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Environment::from))
    }

    /// Returns every environment, ordered by id.
    pub async fn environments(&self) -> Result<Vec<Environment>, StoreError> {
        let rows: Vec<EnvironmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Environment::from).collect())
    }

    /// Returns the environments granted to `user_id`, ordered by id.
    pub async fn environments_granted_to(
        &self,
        user_id: i64,
    ) -> Result<Vec<Environment>, StoreError> {
        let rows: Vec<EnvironmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments \
             JOIN environment_access ON environment_access.environment_id = environments.id \
             WHERE environment_access.user_id = ?1 ORDER BY environments.id"
        )))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Environment::from).collect())
    }

    /// Deletes an environment and its grants; returns `false` when no such environment exists.
    pub async fn delete_environment(&self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM environments WHERE id = ?1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Replaces the set of users granted `environment_id` with `user_ids`.
    ///
    /// Nothing changes when the environment or one of the users does not exist: the error
    /// names the first missing one.
    pub async fn set_environment_access(
        &self,
        environment_id: i64,
        user_ids: &[i64],
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;

        let environment_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM environments WHERE id = ?1)")
                .bind(environment_id)
                .fetch_one(&mut *transaction)
                .await?;
        if !environment_exists {
            return Err(StoreError::NotFound {
                entity: "environment",
                id: environment_id,
            });
        }

        sqlx::query("DELETE FROM environment_access WHERE environment_id = ?1")
            .bind(environment_id)
            .execute(&mut *transaction)
            .await?;

        for &user_id in user_ids {
            let user_exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)")
                    .bind(user_id)
                    .fetch_one(&mut *transaction)
                    .await?;
            if !user_exists {
                return Err(StoreError::NotFound {
                    entity: "user",
                    id: user_id,
                });
            }

            sqlx::query(
                "INSERT OR IGNORE INTO environment_access (environment_id, user_id) \
                 VALUES (?1, ?2)",
            )
            .bind(environment_id)
            .bind(user_id)
            .execute(&mut *transaction)
            .await?;
        }

        transaction.commit().await?;
        Ok(())
    }

    /// Tells whether `user_id` has a grant for `environment_id`. Admins need none, so
    /// callers check the role first.
    pub async fn has_environment_access(
        &self,
        environment_id: i64,
        user_id: i64,
    ) -> Result<bool, StoreError> {
        let granted = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM environment_access \
             WHERE environment_id = ?1 AND user_id = ?2)",
        )
        .bind(environment_id)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(granted)
    }
}
