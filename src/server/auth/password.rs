//! Argon2id password hashing, run on the blocking thread pool because one hash takes
//! tens of milliseconds of CPU time.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Failure to compute a password hash.
#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("failed to hash the password")]
    Hash(#[source] argon2::password_hash::Error),

    #[error("the password hashing task stopped before it finished")]
    Task(#[source] tokio::task::JoinError),
}

/// Hash of a password nobody knows, verified against when a login names no user, so that
/// the response time does not tell whether a username exists.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(b"imgstat: no such user")
        .ok()
        .map(|hash| hash.to_string())
});

/// Hashes `password` with Argon2id and the crate's default cost, with a random salt.
///
/// Returns the PHC string (`$argon2id$v=19$...`), which carries the parameters and the salt.
pub async fn hash_password(password: String) -> Result<String, PasswordHashError> {
    let hash = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(PasswordHashError::Task)?
    .map_err(PasswordHashError::Hash)?;
    Ok(hash)
}

/// Tells whether `password` matches `hash`. With no hash (unknown user) it still spends the
/// time of one verification and returns `false`.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    let result = tokio::task::spawn_blocking(move || {
        let known_user = hash.is_some();
        let Some(hash) = hash.or_else(|| DUMMY_HASH.clone()) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        known_user && matches
    })
    .await;

    result.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_same_password() {
        let hash = hash_password("correct horse".to_owned()).await.unwrap();

        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".to_owned(), Some(hash)).await);
    }

    #[tokio::test]
    async fn hash_rejects_other_password() {
        let hash = hash_password("correct horse".to_owned()).await.unwrap();

        assert!(!verify_password("battery staple".to_owned(), Some(hash)).await);
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        assert!(!verify_password("imgstat: no such user".to_owned(), None).await);
    }
}
