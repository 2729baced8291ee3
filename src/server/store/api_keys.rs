//! API keys: only the SHA-256 of each key is stored, so the database never contains a usable key.

use super::{Store, StoreError, User};

impl Store {
    /// Stores the hash of a new key for `user_id` and returns the key's id.
    pub async fn create_api_key(
        &self,
        user_id: i64,
        key_hash: &str,
        description: &str,
    ) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(
            "INSERT INTO api_keys (user_id, key_hash, description) VALUES (?1, ?2, ?3) \
             RETURNING id",
        )
        .bind(user_id)
        .bind(key_hash)
        .bind(description)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Returns the user who owns the key with this hash.
    pub async fn user_by_api_key_hash(&self, key_hash: &str) -> Result<Option<User>, StoreError> {
        let user = sqlx::query_as(
            "SELECT users.id, users.username, users.role \
             FROM api_keys JOIN users ON users.id = api_keys.user_id \
             WHERE api_keys.key_hash = ?1",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(user)
    }
}
