//! A user name and password pair for a registry or a token server.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A registry user's name and password. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Creates credentials for a user named after `prefix` with a random password.
    pub fn random(prefix: &str) -> Self {
        let password: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(24)
            .collect();
        Self::new(crate::unique_name(prefix), password)
    }

    /// Returns base64 of `username:password`, the value of a Basic `Authorization`
    /// header and of the `auth` field in a Docker `config.json`.
    pub fn basic(&self) -> String {
        STANDARD.encode(format!("{}:{}", self.username, self.password))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}
