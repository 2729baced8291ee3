//! Registry credentials. Placeholder with the agreed interface; the Docker config reader
//! replaces it.

use futures::future::BoxFuture;

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Basic { username: String, password: Secret },
    IdentityToken(Secret),
}

#[derive(Debug, thiserror::Error)]
#[error("credentials unavailable")]
pub struct CredentialError;

pub trait CredentialSource: Send + Sync {
    fn lookup<'a>(
        &'a self,
        registry: &'a str,
        repository: &'a str,
    ) -> BoxFuture<'a, Result<Option<Credential>, CredentialError>>;
}

pub struct NoCredentials;

impl CredentialSource for NoCredentials {
    fn lookup<'a>(
        &'a self,
        _registry: &'a str,
        _repository: &'a str,
    ) -> BoxFuture<'a, Result<Option<Credential>, CredentialError>> {
        Box::pin(async { Ok(None) })
    }
}

pub struct DockerConfig;
impl DockerConfig {
    pub fn load() -> Result<Self, CredentialError> {
        Ok(Self)
    }
}
impl CredentialSource for DockerConfig {
    fn lookup<'a>(
        &'a self,
        _registry: &'a str,
        _repository: &'a str,
    ) -> BoxFuture<'a, Result<Option<Credential>, CredentialError>> {
        Box::pin(async { Ok(None) })
    }
}
