//! Users and their roles.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Store, StoreError, duplicate_or_query};

/// Permission level of a user. Admins manage users and environments and reach every
/// environment. Standard users reach the environments granted to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

/// A user without the password hash, as handlers and extractors use it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(sqlx::FromRow)]
struct UserWithHash {
    id: i64,
    username: String,
    role: Role,
    password_hash: String,
}

impl Store {
    /// Creates the first admin, or returns `None` without writing when an admin exists.
    ///
    /// The check and the insert are one statement, so two concurrent calls create one admin.
    pub async fn create_first_admin(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        sqlx::query_as(
            "INSERT INTO users (username, password_hash, role) \
             SELECT ?1, ?2, 'admin' \
             WHERE NOT EXISTS (SELECT 1 FROM users WHERE role = 'admin') \
             RETURNING id, username, role",
        )
        .bind(username)
        .bind(password_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| duplicate_or_query(error, "user", username))
    }

    /// Creates a user; fails with [`StoreError::Duplicate`] when the username is taken.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<User, StoreError> {
        sqlx::query_as(
            "INSERT INTO users (username, password_hash, role) VALUES (?1, ?2, ?3) \
             RETURNING id, username, role",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| duplicate_or_query(error, "user", username))
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>, StoreError> {
        let user = sqlx::query_as("SELECT id, username, role FROM users WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(user)
    }

    /// Returns the user with this username and their Argon2id password hash.
    pub async fn user_with_password_hash(
        &self,
        username: &str,
    ) -> Result<Option<(User, String)>, StoreError> {
        let row: Option<UserWithHash> = sqlx::query_as(
            "SELECT id, username, role, password_hash FROM users WHERE username = ?1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;

        Ok(row.map(|row| {
            let user = User {
                id: row.id,
                username: row.username,
                role: row.role,
            };
            (user, row.password_hash)
        }))
    }
}
