//! A throwaway Docker client configuration directory, so credentials never go to the
//! user's `~/.docker`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use tempfile::TempDir;

use crate::Credentials;
use crate::command::{docker, run_with_input};
use crate::names::temp_dir;

/// A temporary directory with a `config.json`, for `docker --config DIR` or for
/// `DOCKER_CONFIG=DIR` in a child process. Removed on `Drop`.
pub struct DockerConfigDir {
    dir: TempDir,
    auths: BTreeMap<String, String>,
}

impl DockerConfigDir {
    /// Creates a directory whose `config.json` has no credentials.
    pub fn new() -> Self {
        let config = Self {
            dir: temp_dir("docker-config"),
            auths: BTreeMap::new(),
        };
        config.write();
        config
    }

    /// Creates a directory whose `config.json` has credentials for one registry host.
    pub fn with_auth(host: &str, credentials: &Credentials) -> Self {
        let mut config = Self::new();
        config.add_auth(host, credentials);
        config
    }

    /// Adds or replaces the `auths` entry for `host` (`127.0.0.1:PORT`) and rewrites
    /// `config.json`. The entry has only the base64 `auth` field, as `docker login`
    /// writes it without a credential store.
    pub fn add_auth(&mut self, host: &str, credentials: &Credentials) {
        self.auths.insert(host.to_owned(), credentials.basic());
        self.write();
    }

    /// Runs `docker --config DIR login HOST`, which checks the credentials against
    /// the registry and stores them in this directory. Panics when the login fails.
    pub fn login(&self, host: &str, credentials: &Credentials) {
        run_with_input(
            docker().arg("--config").arg(self.path()).args([
                "login",
                "--username",
                &credentials.username,
                "--password-stdin",
                host,
            ]),
            credentials.password.as_bytes(),
        );
    }

    /// Returns the directory, the value for `DOCKER_CONFIG`.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.json")
    }

    fn write(&self) {
        let auths: serde_json::Map<String, serde_json::Value> = self
            .auths
            .iter()
            .map(|(host, auth)| (host.clone(), json!({ "auth": auth })))
            .collect();
        let config = json!({ "auths": auths });
        let text = serde_json::to_string_pretty(&config).expect("JSON values serialize");
        std::fs::write(self.config_path(), text).unwrap_or_else(|error| {
            panic!("failed to write {}: {error}", self.config_path().display())
        });
    }
}

/// Shows the directory and the hosts, never the credentials.
impl std::fmt::Debug for DockerConfigDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfigDir")
            .field("path", &self.path())
            .field("hosts", &self.auths.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for DockerConfigDir {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_base64_auth_per_host() {
        let mut config = DockerConfigDir::with_auth("127.0.0.1:5000", &Credentials::new("u", "p"));
        config.add_auth("127.0.0.1:6000", &Credentials::new("v", "q"));

        let text = std::fs::read_to_string(config.config_path()).expect("config.json exists");
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed["auths"]["127.0.0.1:5000"]["auth"], "dTpw");
        assert_eq!(parsed["auths"]["127.0.0.1:6000"]["auth"], "djpx");
    }

    #[test]
    fn config_dir_removed_on_drop() {
        let config = DockerConfigDir::new();
        let path = config.path().to_owned();
        assert!(path.join("config.json").exists());

        drop(config);

        assert!(!path.exists());
    }
}
