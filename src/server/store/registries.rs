//! Registries with their credentials and connection options. Passwords are sealed with the
//! credential key before they reach the database, bound to their row, host and username.

use std::fmt;

use sqlx::{Sqlite, Transaction};

use super::{Store, StoreError, duplicate_or_query};
use crate::credentials::{RegistryLocation, Secret};
use crate::server::credential_key::{CredentialKey, SealError};

/// A stored registry with its password still sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRecord {
    pub id: i64,
    pub name: String,
    pub location: RegistryLocation,
    /// Set together with `password`.
    pub username: Option<String>,
    pub password: Option<SealedPassword>,
    pub insecure: bool,
    pub ca_cert: Option<String>,
}

/// A password as stored: nonce, ciphertext and tag. `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedPassword(Vec<u8>);

impl SealedPassword {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SealedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedPassword({} bytes)", self.0.len())
    }
}

impl RegistryRecord {
    /// Decrypts the password; `None` for a registry without credentials.
    pub fn open_password(&self, key: &CredentialKey) -> Result<Option<Secret>, SealError> {
        let (Some(username), Some(sealed)) = (&self.username, &self.password) else {
            return Ok(None);
        };
        let associated_data = password_associated_data(self.id, self.location.host(), username);
        let plaintext = key.open(sealed.as_bytes(), &associated_data)?;
        let password = String::from_utf8(plaintext).map_err(|_| SealError::Open {
            origin: key.origin().clone(),
        })?;
        Ok(Some(Secret::new(password)))
    }
}

/// The fields of a registry as the API sets them.
#[derive(Clone, Debug)]
pub struct RegistryFields {
    pub name: String,
    pub location: RegistryLocation,
    pub username: Option<String>,
    pub insecure: bool,
    pub ca_cert: Option<String>,
}

/// The change an update makes to the stored password.
#[derive(Clone, Debug)]
pub enum PasswordUpdate {
    /// Keep the stored password. Only possible while the host and the username stay.
    Keep,
    /// Store this password; needs a username.
    Set(Secret),
    /// Remove the credentials; needs no username.
    Remove,
}

#[derive(sqlx::FromRow)]
struct RegistryRow {
    id: i64,
    name: String,
    host: String,
    path_prefix: String,
    username: Option<String>,
    password_sealed: Option<Vec<u8>>,
    insecure: bool,
    ca_cert: Option<String>,
}

impl TryFrom<RegistryRow> for RegistryRecord {
    type Error = StoreError;

    fn try_from(row: RegistryRow) -> Result<Self, StoreError> {
        let text = if row.path_prefix.is_empty() {
            row.host
        } else {
            format!("{}/{}", row.host, row.path_prefix)
        };
        let location = RegistryLocation::parse(&text)
            .map_err(|error| StoreError::Corrupt {
                entity: "registry",
                id: row.id,
                problem: error.to_string(),
            })?
            .location;
        Ok(Self {
            id: row.id,
            name: row.name,
            location,
            username: row.username,
            password: row.password_sealed.map(SealedPassword),
            insecure: row.insecure,
            ca_cert: row.ca_cert,
        })
    }
}

const REGISTRY_COLUMNS: &str =
    "id, name, host, path_prefix, username, password_sealed, insecure, ca_cert";

/// Returns the associated data that binds a sealed password to its row, host and username,
/// so that a ciphertext copied to another row, or a row moved to another host, does not open.
pub fn password_associated_data(id: i64, host: &str, username: &str) -> Vec<u8> {
    format!("imgstat registry password v1\0{id}\0{host}\0{username}").into_bytes()
}

impl Store {
    /// Creates a registry, sealing `password` with `key`. Fails with
    /// [`StoreError::Duplicate`] when the name, or the host and path prefix, are taken.
    pub async fn create_registry(
        &self,
        fields: &RegistryFields,
        password: Option<&Secret>,
        key: &CredentialKey,
    ) -> Result<RegistryRecord, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO registries (name, host, path_prefix, insecure, ca_cert) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )
        .bind(&fields.name)
        .bind(fields.location.host())
        .bind(fields.location.path_prefix())
        .bind(fields.insecure)
        .bind(&fields.ca_cert)
        .fetch_one(&mut *transaction)
        .await
        .map_err(|error| registry_duplicate(error, fields))?;

        let sealed = match (&fields.username, password) {
            (Some(username), Some(password)) => {
                let sealed = seal_password(key, id, fields.location.host(), username, password)?;
                set_credentials(&mut transaction, id, Some(username), Some(&sealed)).await?;
                Some(sealed)
            }
            _ => None,
        };
        transaction.commit().await?;

        Ok(RegistryRecord {
            id,
            name: fields.name.clone(),
            location: fields.location.clone(),
            username: sealed.as_ref().and(fields.username.clone()),
            password: sealed,
            insecure: fields.insecure,
            ca_cert: fields.ca_cert.clone(),
        })
    }

    pub async fn registry(&self, id: i64) -> Result<Option<RegistryRecord>, StoreError> {
        let row: Option<RegistryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {REGISTRY_COLUMNS} FROM registries WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(RegistryRecord::try_from).transpose()
    }

    /// Returns every registry, ordered by id.
    pub async fn registries(&self) -> Result<Vec<RegistryRecord>, StoreError> {
        let rows: Vec<RegistryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {REGISTRY_COLUMNS} FROM registries ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(RegistryRecord::try_from).collect()
    }

    /// Replaces a registry's fields and applies `password` to the stored password. Returns
    /// `None` when no such registry exists.
    ///
    /// [`PasswordUpdate::Keep`] fails with [`StoreError::PasswordRequired`] when the host or
    /// the username changes, because the stored password was given for the old ones.
    pub async fn update_registry(
        &self,
        id: i64,
        fields: &RegistryFields,
        password: PasswordUpdate,
        key: &CredentialKey,
    ) -> Result<Option<RegistryRecord>, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let current: Option<RegistryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {REGISTRY_COLUMNS} FROM registries WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(current) = current else {
            return Ok(None);
        };

        let sealed = match (password, &fields.username) {
            (PasswordUpdate::Remove, _) | (_, None) => None,
            (PasswordUpdate::Set(password), Some(username)) => Some(seal_password(
                key,
                id,
                fields.location.host(),
                username,
                &password,
            )?),
            (PasswordUpdate::Keep, Some(username)) => {
                let same_target = current.host == fields.location.host()
                    && current.username.as_deref() == Some(username.as_str());
                match current.password_sealed {
                    Some(sealed) if same_target => Some(SealedPassword(sealed)),
                    _ => return Err(StoreError::PasswordRequired { id }),
                }
            }
        };
        let username = sealed.as_ref().and(fields.username.as_deref());

        sqlx::query(
            "UPDATE registries SET name = ?2, host = ?3, path_prefix = ?4, insecure = ?5, \
             ca_cert = ?6, username = NULL, password_sealed = NULL WHERE id = ?1",
        )
        .bind(id)
        .bind(&fields.name)
        .bind(fields.location.host())
        .bind(fields.location.path_prefix())
        .bind(fields.insecure)
        .bind(&fields.ca_cert)
        .execute(&mut *transaction)
        .await
        .map_err(|error| registry_duplicate(error, fields))?;
        set_credentials(&mut transaction, id, username, sealed.as_ref()).await?;
        transaction.commit().await?;

        Ok(Some(RegistryRecord {
            id,
            name: fields.name.clone(),
            location: fields.location.clone(),
            username: username.map(str::to_owned),
            password: sealed,
            insecure: fields.insecure,
            ca_cert: fields.ca_cert.clone(),
        }))
    }

    /// Deletes a registry; returns `false` when no such registry exists.
    pub async fn delete_registry(&self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM registries WHERE id = ?1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Returns the stored key check value, `None` before the first start stored one.
    pub async fn credential_key_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed = sqlx::query_scalar("SELECT sealed FROM credential_key_check WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(sealed)
    }

    /// Stores `sealed` as the key check value unless one exists, and returns the one stored.
    pub async fn insert_credential_key_check(&self, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query("INSERT OR IGNORE INTO credential_key_check (id, sealed) VALUES (1, ?1)")
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        let stored = sqlx::query_scalar("SELECT sealed FROM credential_key_check WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(stored)
    }

    /// Re-seals every stored password and the key check value from `old` to `new` in one
    /// transaction, and returns the number of passwords. Nothing changes when a password
    /// does not open with `old`.
    pub async fn reseal_credentials(
        &self,
        old: &CredentialKey,
        new: &CredentialKey,
    ) -> Result<usize, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let rows: Vec<RegistryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {REGISTRY_COLUMNS} FROM registries WHERE password_sealed IS NOT NULL"
        )))
        .fetch_all(&mut *transaction)
        .await?;

        let mut count = 0;
        for row in rows {
            let record = RegistryRecord::try_from(row)?;
            let id = record.id;
            let seal_error = |source| StoreError::Seal {
                registry_id: Some(id),
                source,
            };
            let Some(password) = record.open_password(old).map_err(seal_error)? else {
                continue;
            };
            let username = record.username.as_deref().unwrap_or_default();
            let sealed = seal_password(new, id, record.location.host(), username, &password)?;
            sqlx::query("UPDATE registries SET password_sealed = ?2 WHERE id = ?1")
                .bind(id)
                .bind(sealed.as_bytes())
                .execute(&mut *transaction)
                .await?;
            count += 1;
        }

        let check = new.seal_check_value().map_err(|source| StoreError::Seal {
            registry_id: None,
            source,
        })?;
        sqlx::query("INSERT OR REPLACE INTO credential_key_check (id, sealed) VALUES (1, ?1)")
            .bind(check)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(count)
    }
}

fn seal_password(
    key: &CredentialKey,
    id: i64,
    host: &str,
    username: &str,
    password: &Secret,
) -> Result<SealedPassword, StoreError> {
    let associated_data = password_associated_data(id, host, username);
    key.seal(password.expose().as_bytes(), &associated_data)
        .map(SealedPassword)
        .map_err(|source| StoreError::Seal {
            registry_id: Some(id),
            source,
        })
}

async fn set_credentials(
    transaction: &mut Transaction<'_, Sqlite>,
    id: i64,
    username: Option<&str>,
    sealed: Option<&SealedPassword>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE registries SET username = ?2, password_sealed = ?3 WHERE id = ?1")
        .bind(id)
        .bind(username)
        .bind(sealed.map(SealedPassword::as_bytes))
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

/// Names the taken value of a unique-constraint violation: the name, else the location.
fn registry_duplicate(error: sqlx::Error, fields: &RegistryFields) -> StoreError {
    let message = error
        .as_database_error()
        .map(|database_error| database_error.message().to_owned())
        .unwrap_or_default();
    if message.contains("registries.name") {
        duplicate_or_query(error, "registry", &fields.name)
    } else {
        duplicate_or_query(error, "registry for", &fields.location.to_string())
    }
}
