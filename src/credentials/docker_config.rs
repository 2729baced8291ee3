//! Credentials from Docker's client config file (`config.json`), looked up in the docker
//! CLI's order: the `credHelpers` entry for the registry, else `credsStore`, else `auths`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::helper::Helper;
use super::{Credential, CredentialError, CredentialSource, Secret};
use crate::reference::{DOCKER_HUB, canonical_registry};

/// The server address under which the docker CLI stores Docker Hub credentials, both as an
/// `auths` key and as the input to credential helpers.
const DOCKER_HUB_SERVER_ADDRESS: &str = "https://index.docker.io/v1/";

type HelperResult = Result<Option<Credential>, CredentialError>;

/// A credential helper name and the server URL it was asked about.
type HelperQuery = (String, String);

/// Docker's client config, loaded once, with the results of the credential helper runs so far.
///
/// Each credential helper runs at most once per registry for the life of this value, so
/// share one `DockerConfig` (for example in an `Arc`) across lookups. Failures are cached
/// too, because a helper that failed once would most likely fail again.
///
/// The repository passed to [`CredentialSource::lookup`] is ignored, because Docker stores
/// credentials per registry host.
#[derive(Debug)]
pub struct DockerConfig {
    path: PathBuf,
    /// Credentials from `auths`, by registry host. `None` marks an entry without credentials.
    auths: HashMap<String, Option<Credential>>,
    /// Helper names from `credHelpers`, by registry host. An empty name selects `auths`.
    cred_helpers: HashMap<String, String>,
    creds_store: Option<String>,
    helper_dir: Option<PathBuf>,
    helper_timeout: Duration,
    helper_results: Mutex<HashMap<HelperQuery, Arc<OnceCell<HelperResult>>>>,
}

/// The store that holds the credentials for one registry.
enum Store<'a> {
    Helper(&'a str),
    Auths,
}

impl DockerConfig {
    /// Time a credential helper may take before it is killed. Helpers that unlock a keychain
    /// may wait for a prompt, which `imgstat` cannot answer.
    pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(10);

    /// Loads the config file that the docker CLI reads: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`. A missing file gives a config without credentials.
    ///
    /// Reads the file with blocking I/O, so call it at startup or from `spawn_blocking`.
    pub fn load() -> Result<Self, CredentialError> {
        Self::from_path(Self::default_path()?)
    }

    /// Returns the path [`DockerConfig::load`] reads.
    pub fn default_path() -> Result<PathBuf, CredentialError> {
        config_path(std::env::var_os("DOCKER_CONFIG"), std::env::home_dir())
    }

    /// Loads the config file at `path`. A missing file gives a config without credentials.
    /// An unreadable file, invalid JSON, a field of the wrong type, an `auth` value that is
    /// not base64 of `USERNAME:PASSWORD` or a helper name that contains a path separator is
    /// an error that names the path.
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Self, CredentialError> {
        let path = path.into();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(CredentialError::ReadConfig {
                    path,
                    source: Arc::new(source),
                });
            }
        };
        Self::from_json(path, &text)
    }

    /// Searches credential helper programs in `dir` instead of `PATH`.
    #[must_use]
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.helper_dir = Some(dir.into());
        self
    }

    /// Sets the time a credential helper may take, [`Self::DEFAULT_HELPER_TIMEOUT`] unless
    /// set.
    #[must_use]
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = timeout;
        self
    }

    /// Returns the path this config was loaded from. The file may not exist.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Parses the text of a config file. Empty text, as from a missing file, is an empty
    /// config, as the docker CLI reads it.
    fn from_json(path: PathBuf, text: &str) -> Result<Self, CredentialError> {
        let mut config = Self {
            path,
            auths: HashMap::new(),
            cred_helpers: HashMap::new(),
            creds_store: None,
            helper_dir: None,
            helper_timeout: Self::DEFAULT_HELPER_TIMEOUT,
            helper_results: Mutex::new(HashMap::new()),
        };
        if text.trim().is_empty() {
            return Ok(config);
        }

        // Parsing into `Value` first keeps secrets out of error messages: serde_json's syntax
        // errors carry a position, while its type errors would quote the value.
        let document: Value =
            serde_json::from_str(text).map_err(|source| CredentialError::ParseConfig {
                path: config.path.clone(),
                source: Arc::new(source),
            })?;
        let parser = Parser { path: &config.path };
        let Value::Object(document) = document else {
            return Err(parser.invalid("the document".to_owned(), "is not a JSON object"));
        };

        config.auths = parser.auths(&document)?;
        config.cred_helpers = parser.cred_helpers(&document)?;
        config.creds_store = parser.creds_store(&document)?;
        Ok(config)
    }

    fn store_for(&self, host: &str) -> Store<'_> {
        if let Some(helper) = self.cred_helpers.get(host) {
            // The docker CLI reads an empty `credHelpers` entry as "use the file".
            if helper.is_empty() {
                return Store::Auths;
            }
            return Store::Helper(helper);
        }
        match &self.creds_store {
            Some(store) => Store::Helper(store),
            None => Store::Auths,
        }
    }

    /// Returns the helper's result for `server_url`, running the helper on the first request
    /// only. Concurrent first requests share one run.
    async fn helper_result(&self, helper: &str, server_url: &str, registry: &str) -> HelperResult {
        let cell = {
            let mut results = self
                .helper_results
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let key = (helper.to_owned(), server_url.to_owned());
            Arc::clone(results.entry(key).or_default())
        };

        let run = Helper {
            name: helper,
            dir: self.helper_dir.as_deref(),
            timeout: self.helper_timeout,
        };
        cell.get_or_init(|| run.get(server_url, registry))
            .await
            .clone()
    }
}

impl CredentialSource for DockerConfig {
    fn lookup<'a>(
        &'a self,
        registry: &'a str,
        _repository: &'a str,
    ) -> BoxFuture<'a, Result<Option<Credential>, CredentialError>> {
        Box::pin(async move {
            let host = registry_host(registry);
            match self.store_for(&host) {
                Store::Auths => Ok(self.auths.get(&host).cloned().flatten()),
                Store::Helper(helper) => {
                    let server_url = if host == DOCKER_HUB {
                        DOCKER_HUB_SERVER_ADDRESS
                    } else {
                        registry
                    };
                    self.helper_result(helper, server_url, &host).await
                }
            }
        })
    }
}

/// Reduces a Docker config key or a registry name to the registry host it names: the
/// scheme and path are dropped, letters are lowercased and Docker Hub's aliases become
/// `docker.io`. `https://index.docker.io/v1/` gives `docker.io`, and
/// `http://127.0.0.1:5000/v2/` gives `127.0.0.1:5000`.
pub fn registry_host(key: &str) -> String {
    let lowercase = key.to_ascii_lowercase();
    let without_scheme = lowercase
        .strip_prefix("https://")
        .or_else(|| lowercase.strip_prefix("http://"))
        .unwrap_or(&lowercase);
    let host = without_scheme.split('/').next().unwrap_or_default();
    canonical_registry(host).to_owned()
}

/// Resolves the config file path the way the docker CLI does. An empty `DOCKER_CONFIG`
/// counts as unset.
fn config_path(
    docker_config: Option<OsString>,
    home: Option<PathBuf>,
) -> Result<PathBuf, CredentialError> {
    if let Some(dir) = docker_config.filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir).join("config.json"));
    }
    match home.filter(|home| !home.as_os_str().is_empty()) {
        Some(home) => Ok(home.join(".docker").join("config.json")),
        None => Err(CredentialError::NoConfigDirectory),
    }
}

/// A value found under several keys that name the same registry host, such as
/// `https://index.docker.io/v1/` and `docker.io`.
struct Candidate<T> {
    /// The docker CLI tries the key equal to its own server address first. The other keys
    /// are tried in lexicographic order here, so that the choice does not depend on
    /// the order of the keys in the map.
    rank: (bool, String),
    value: T,
}

/// Keeps, for each host, the value whose key ranks first.
fn insert_ranked<T>(
    candidates: &mut HashMap<String, Candidate<T>>,
    key: &str,
    host: String,
    value: T,
) {
    let rank = (key != server_address(&host), key.to_owned());
    let replace = candidates
        .get(&host)
        .is_none_or(|existing| rank < existing.rank);
    if replace {
        candidates.insert(host, Candidate { rank, value });
    }
}

/// Returns the key under which the docker CLI stores a host's credentials.
fn server_address(host: &str) -> &str {
    if host == DOCKER_HUB {
        DOCKER_HUB_SERVER_ADDRESS
    } else {
        host
    }
}

/// Reads the credential fields of a config document, naming the path in every error.
struct Parser<'a> {
    path: &'a Path,
}

impl Parser<'_> {
    fn invalid(&self, field: String, problem: &'static str) -> CredentialError {
        CredentialError::InvalidConfig {
            path: self.path.to_owned(),
            field,
            problem,
        }
    }

    fn auths(
        &self,
        document: &Map<String, Value>,
    ) -> Result<HashMap<String, Option<Credential>>, CredentialError> {
        let Some(entries) = self.object(document, "auths", "auths")? else {
            return Ok(HashMap::new());
        };

        let mut candidates = HashMap::new();
        for (key, entry) in entries {
            let field = format!("auths[{key:?}]");
            let Value::Object(entry) = entry else {
                return Err(self.invalid(field, "is not a JSON object"));
            };
            let credential = self.auth_entry(entry, &field)?;
            insert_ranked(&mut candidates, key, registry_host(key), credential);
        }
        Ok(into_values(candidates))
    }

    /// Reads one `auths` entry. An `identitytoken` takes precedence over a username and
    /// password, and an `auth` value takes precedence over `username` and `password`.
    fn auth_entry(
        &self,
        entry: &Map<String, Value>,
        field: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let auth = self.string(entry, "auth", field)?;
        let mut username = self.string(entry, "username", field)?;
        let mut password = self.string(entry, "password", field)?;
        let identity_token = self.string(entry, "identitytoken", field)?;

        if !identity_token.is_empty() {
            return Ok(Some(Credential::IdentityToken(Secret(identity_token))));
        }
        if !auth.is_empty() {
            (username, password) = decode_auth(&auth).ok_or_else(|| {
                self.invalid(
                    format!("{field}.auth"),
                    "is not base64 of UTF-8 text USERNAME:PASSWORD",
                )
            })?;
        }
        if username.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credential::Basic {
            username,
            password: Secret(password),
        }))
    }

    fn cred_helpers(
        &self,
        document: &Map<String, Value>,
    ) -> Result<HashMap<String, String>, CredentialError> {
        let Some(entries) = self.object(document, "credHelpers", "credHelpers")? else {
            return Ok(HashMap::new());
        };

        let mut candidates = HashMap::new();
        for (key, helper) in entries {
            let field = format!("credHelpers[{key:?}]");
            let Value::String(helper) = helper else {
                return Err(self.invalid(field, "is not a string"));
            };
            self.check_helper_name(helper, field)?;
            insert_ranked(&mut candidates, key, registry_host(key), helper.clone());
        }
        Ok(into_values(candidates))
    }

    fn creds_store(
        &self,
        document: &Map<String, Value>,
    ) -> Result<Option<String>, CredentialError> {
        let store = self.string(document, "credsStore", "")?;
        if store.is_empty() {
            return Ok(None);
        }
        self.check_helper_name(&store, "credsStore".to_owned())?;
        Ok(Some(store))
    }

    /// Rejects a helper name that would make `docker-credential-<name>` a path into
    /// another directory.
    fn check_helper_name(&self, helper: &str, field: String) -> Result<(), CredentialError> {
        if helper.contains('/') || helper.contains('\\') {
            return Err(self.invalid(
                field,
                "contains a path separator, but must name a program docker-credential-NAME",
            ));
        }
        Ok(())
    }

    /// Reads an optional object field. `field` is its full path, for messages.
    fn object<'v>(
        &self,
        parent: &'v Map<String, Value>,
        name: &str,
        field: &str,
    ) -> Result<Option<&'v Map<String, Value>>, CredentialError> {
        match parent.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(object)) => Ok(Some(object)),
            Some(_) => Err(self.invalid(field.to_owned(), "is not a JSON object")),
        }
    }

    /// Reads an optional string field, with a missing field read as empty. `parent_field` is
    /// the path of `parent`, for messages, and empty for the document itself.
    fn string(
        &self,
        parent: &Map<String, Value>,
        name: &str,
        parent_field: &str,
    ) -> Result<String, CredentialError> {
        match parent.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(value)) => Ok(value.clone()),
            Some(_) => {
                let field = if parent_field.is_empty() {
                    name.to_owned()
                } else {
                    format!("{parent_field}.{name}")
                };
                Err(self.invalid(field, "is not a string"))
            }
        }
    }
}

fn into_values<T>(candidates: HashMap<String, Candidate<T>>) -> HashMap<String, T> {
    candidates
        .into_iter()
        .map(|(host, candidate)| (host, candidate.value))
        .collect()
}

/// Decodes an `auth` value, base64 of `USERNAME:PASSWORD`, as the docker CLI does: the
/// password may contain `:`, NUL bytes at either end of it are dropped, and the username
/// must not be empty.
fn decode_auth(auth: &str) -> Option<(String, String)> {
    let decoded = BASE64.decode(auth).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    if username.is_empty() {
        return None;
    }
    Some((username.to_owned(), password.trim_matches('\0').to_owned()))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;
    use tempfile::TempDir;

    use super::*;
    use crate::credentials::test_scripts::{ScriptDir, TEST_HELPER};

    /// Writes `document` as `config.json` in a new temp dir and loads it.
    fn load(document: &Value) -> (TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, document.to_string()).unwrap();
        let config = DockerConfig::from_path(&path).unwrap();
        (dir, config)
    }

    fn load_error(text: &str) -> (PathBuf, CredentialError) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        let error = DockerConfig::from_path(&path).unwrap_err();
        (path, error)
    }

    fn basic(username: &str, password: &str) -> Credential {
        Credential::Basic {
            username: username.to_owned(),
            password: Secret::new(password),
        }
    }

    fn auth(user_password: &str) -> String {
        BASE64.encode(user_password)
    }

    #[tokio::test]
    async fn auths_keys_match_by_host_and_port() {
        // (auths key, registry looked up, found)
        let cases = [
            ("ghcr.io", "ghcr.io", true),
            ("https://ghcr.io", "ghcr.io", true),
            ("https://ghcr.io/v2/", "ghcr.io", true),
            ("http://GHCR.io/v1/", "ghcr.io", true),
            ("ghcr.io/v1/", "ghcr.io", true),
            ("127.0.0.1:5000", "127.0.0.1:5000", true),
            ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000", true),
            (
                "https://registry.example.com/v1/",
                "registry.example.com",
                true,
            ),
            ("[::1]:5000", "[::1]:5000", true),
            ("127.0.0.1", "127.0.0.1:5000", false),
            ("127.0.0.1:5000", "127.0.0.1", false),
            ("ghcr.io", "docker.io", false),
            (
                "registry.example.com.evil.test",
                "registry.example.com",
                false,
            ),
        ];
        for (key, registry, found) in cases {
            let document = json!({ "auths": { key: { "auth": auth("alice:pw") } } });
            let (_dir, config) = load(&document);
            let credential = config.lookup(registry, "team/app").await.unwrap();
            let expected = found.then(|| basic("alice", "pw"));
            assert_eq!(credential, expected, "key {key:?}, registry {registry:?}");
        }
    }

    #[test]
    fn config_debug_hides_secrets() {
        let document = json!({ "auths": {
            "ghcr.io": { "auth": auth("alice:s3cr3t-password") },
            "quay.io": { "identitytoken": "s3cr3t-token" },
        }});
        let (_dir, config) = load(&document);
        let debug = format!("{config:?}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(!debug.contains(&auth("alice:s3cr3t-password")), "{debug}");
    }

    #[tokio::test]
    async fn docker_hub_aliases_are_one_host() {
        let keys = [
            "https://index.docker.io/v1/",
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "https://registry-1.docker.io/v2/",
        ];
        let registries = ["docker.io", "index.docker.io", "registry-1.docker.io"];
        for key in keys {
            let document = json!({ "auths": { key: { "auth": auth("hub:pw") } } });
            let (_dir, config) = load(&document);
            for registry in registries {
                let credential = config.lookup(registry, "library/nginx").await.unwrap();
                assert_eq!(
                    credential,
                    Some(basic("hub", "pw")),
                    "key {key:?}, registry {registry:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn auths_entry_forms() {
        // (entry, expected credential)
        let cases = [
            (
                json!({ "auth": auth("alice:pw") }),
                Some(basic("alice", "pw")),
            ),
            (
                json!({ "auth": auth("alice:p:w:") }),
                Some(basic("alice", "p:w:")),
            ),
            (json!({ "auth": auth("alice:") }), Some(basic("alice", ""))),
            (
                json!({ "auth": auth("alice:pw\0\0") }),
                Some(basic("alice", "pw")),
            ),
            (
                json!({ "username": "bob", "password": "pw" }),
                Some(basic("bob", "pw")),
            ),
            (
                json!({ "auth": auth("alice:pw"), "username": "bob", "password": "other" }),
                Some(basic("alice", "pw")),
            ),
            (
                json!({ "auth": auth("alice:pw"), "identitytoken": "refresh" }),
                Some(Credential::IdentityToken(Secret::new("refresh"))),
            ),
            (
                json!({ "identitytoken": "refresh" }),
                Some(Credential::IdentityToken(Secret::new("refresh"))),
            ),
            (json!({ "auth": "", "email": "a@example.com" }), None),
            (json!({}), None),
            (json!({ "password": "orphan" }), None),
            (json!({ "auth": null, "username": null }), None),
        ];
        for (entry, expected) in cases {
            let document = json!({ "auths": { "ghcr.io": entry } });
            let (_dir, config) = load(&document);
            let credential = config.lookup("ghcr.io", "owner/app").await.unwrap();
            assert_eq!(credential, expected, "entry {entry}");
        }
    }

    #[tokio::test]
    async fn auths_prefers_docker_cli_key() {
        let document = json!({ "auths": {
            "docker.io": { "auth": auth("short:pw") },
            "https://index.docker.io/v1/": { "auth": auth("canonical:pw") },
            "index.docker.io": { "auth": auth("alias:pw") },
            "https://ghcr.io": { "auth": auth("scheme:pw") },
            "ghcr.io": { "auth": auth("bare:pw") },
        }});
        let (_dir, config) = load(&document);
        let hub = config.lookup("docker.io", "library/nginx").await.unwrap();
        let ghcr = config.lookup("ghcr.io", "owner/app").await.unwrap();
        assert_eq!(hub, Some(basic("canonical", "pw")));
        assert_eq!(ghcr, Some(basic("bare", "pw")));
    }

    #[test]
    fn invalid_auth_names_field_not_value() {
        let cases = [
            BASE64.encode("s3cr3t-no-colon"),
            BASE64.encode(":s3cr3t"),
            "s3cr3t!!not-base64".to_owned(),
            BASE64.encode([0xff, 0xfe, b':', b's']),
        ];
        for value in cases {
            let document = json!({ "auths": { "ghcr.io": { "auth": value } } });
            let (path, error) = load_error(&document.to_string());
            let message = error.to_string();
            assert!(
                matches!(&error, CredentialError::InvalidConfig { field, .. } if field == "auths[\"ghcr.io\"].auth"),
                "{error:?}"
            );
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(!message.contains("s3cr3t"), "{message}");
            assert!(!message.contains(&value), "{message}");
        }
    }

    #[test]
    fn wrong_types_name_the_field() {
        // (document, field named in the error)
        let cases = [
            (json!(["s3cr3t"]), "the document"),
            (json!({ "auths": ["s3cr3t"] }), "auths"),
            (
                json!({ "auths": { "ghcr.io": "s3cr3t" } }),
                "auths[\"ghcr.io\"]",
            ),
            (
                json!({ "auths": { "ghcr.io": { "password": ["s3cr3t"] } } }),
                "auths[\"ghcr.io\"].password",
            ),
            (
                json!({ "auths": { "ghcr.io": { "username": 7 } } }),
                "auths[\"ghcr.io\"].username",
            ),
            (json!({ "credHelpers": "s3cr3t" }), "credHelpers"),
            (
                json!({ "credHelpers": { "ghcr.io": 7 } }),
                "credHelpers[\"ghcr.io\"]",
            ),
            (
                json!({ "credHelpers": { "ghcr.io": "../bin/x" } }),
                "credHelpers[\"ghcr.io\"]",
            ),
            (json!({ "credsStore": 7 }), "credsStore"),
            (json!({ "credsStore": "/usr/bin/x" }), "credsStore"),
        ];
        for (document, expected) in cases {
            let (path, error) = load_error(&document.to_string());
            let CredentialError::InvalidConfig {
                field,
                path: error_path,
                ..
            } = &error
            else {
                panic!("{document}: {error:?}");
            };
            assert_eq!(field, expected, "{document}");
            assert_eq!(error_path, &path, "{document}");
            assert!(!error.to_string().contains("s3cr3t"), "{error}");
        }
    }

    #[test]
    fn invalid_json_names_path() {
        let (path, error) = load_error("{\"auths\": {\"ghcr.io\": {\"auth\": \"s3cr3t\"");
        let message = error.to_string();
        assert!(
            matches!(error, CredentialError::ParseConfig { .. }),
            "{error:?}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("invalid JSON"), "{message}");

        let cause = std::error::Error::source(&error)
            .expect("source")
            .to_string();
        assert!(cause.contains("line 1"), "{cause}");
        assert!(!cause.contains("s3cr3t"), "{cause}");
    }

    #[tokio::test]
    async fn missing_file_has_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("config.json");
        let config = DockerConfig::from_path(&path).unwrap();
        assert_eq!(config.path(), path);
        let credential = config.lookup("docker.io", "library/nginx").await.unwrap();
        assert_eq!(credential, None);
    }

    #[tokio::test]
    async fn empty_file_has_no_credentials() {
        for text in [
            "",
            "  \n",
            "{}",
            "{\"auths\": null}",
            "{\"psFormat\": \"table\"}",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("config.json");
            std::fs::write(&path, text).unwrap();
            let config = DockerConfig::from_path(&path).unwrap();
            let credential = config.lookup("ghcr.io", "owner/app").await.unwrap();
            assert_eq!(credential, None, "{text:?}");
        }
    }

    #[test]
    fn unreadable_file_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::create_dir(&path).unwrap();
        let error = DockerConfig::from_path(&path).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, CredentialError::ReadConfig { .. }),
            "{error:?}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn config_path_follows_docker_cli() {
        let home = Some(PathBuf::from("/home/alice"));
        // (DOCKER_CONFIG, home, expected path)
        let cases = [
            (
                Some("/etc/docker-client"),
                home.clone(),
                Some("/etc/docker-client/config.json"),
            ),
            (
                Some(""),
                home.clone(),
                Some("/home/alice/.docker/config.json"),
            ),
            (None, home.clone(), Some("/home/alice/.docker/config.json")),
            (
                Some("/etc/docker-client"),
                None,
                Some("/etc/docker-client/config.json"),
            ),
            (None, None, None),
            (None, Some(PathBuf::new()), None),
        ];
        for (docker_config, home, expected) in cases {
            let found = config_path(docker_config.map(OsString::from), home.clone());
            match expected {
                Some(expected) => assert_eq!(
                    found.unwrap(),
                    PathBuf::from(expected),
                    "DOCKER_CONFIG {docker_config:?}, home {home:?}"
                ),
                None => assert!(
                    matches!(found, Err(CredentialError::NoConfigDirectory)),
                    "DOCKER_CONFIG {docker_config:?}, home {home:?}: {found:?}"
                ),
            }
        }
    }

    #[test]
    fn registry_host_forms() {
        let cases = [
            ("https://index.docker.io/v1/", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
            ("registry.example.com/v1/", "registry.example.com"),
            ("Registry.Example.com", "registry.example.com"),
            ("localhost:5000", "localhost:5000"),
        ];
        for (key, expected) in cases {
            assert_eq!(registry_host(key), expected, "{key}");
        }
    }

    #[tokio::test]
    async fn cred_helpers_select_helper_per_registry() {
        let scripts = ScriptDir::with_test_helper();
        let document = json!({
            "auths": {
                "ghcr.io": { "auth": auth("file:pw") },
                "127.0.0.1:5000": { "auth": auth("file:pw") },
            },
            "credHelpers": {
                "127.0.0.1:5000": TEST_HELPER,
                "https://index.docker.io/v1/": TEST_HELPER,
            },
        });
        let (_dir, config) = load(&document);
        let config = config.with_helper_dir(scripts.path());

        let local = config.lookup("127.0.0.1:5000", "app").await.unwrap();
        let hub = config.lookup("docker.io", "library/nginx").await.unwrap();
        let ghcr = config.lookup("ghcr.io", "owner/app").await.unwrap();
        assert_eq!(
            local,
            Some(Credential::IdentityToken(Secret::new("refresh-token")))
        );
        assert_eq!(hub, Some(basic("hubuser", "hubsecret")));
        assert_eq!(ghcr, Some(basic("file", "pw")));
    }

    #[tokio::test]
    async fn creds_store_replaces_auths() {
        let scripts = ScriptDir::with_test_helper();
        let document = json!({
            "auths": { "ghcr.io": { "auth": auth("file:pw") } },
            "credsStore": TEST_HELPER,
        });
        let (_dir, config) = load(&document);
        let config = config.with_helper_dir(scripts.path());

        let hub = config
            .lookup("index.docker.io", "library/nginx")
            .await
            .unwrap();
        let local = config.lookup("127.0.0.1:5000", "app").await.unwrap();
        // The docker CLI does not fall back to `auths` when the store has nothing.
        let ghcr = config.lookup("ghcr.io", "owner/app").await.unwrap();
        assert_eq!(hub, Some(basic("hubuser", "hubsecret")));
        assert_eq!(
            local,
            Some(Credential::IdentityToken(Secret::new("refresh-token")))
        );
        assert_eq!(ghcr, None);
    }

    #[tokio::test]
    async fn cred_helpers_override_creds_store() {
        let scripts = ScriptDir::with_test_helper();
        let document = json!({
            "auths": { "quay.io": { "auth": auth("file:pw") } },
            "credsStore": "absent",
            "credHelpers": { "127.0.0.1:5000": TEST_HELPER, "quay.io": "" },
        });
        let (_dir, config) = load(&document);
        let config = config.with_helper_dir(scripts.path());

        let local = config.lookup("127.0.0.1:5000", "app").await.unwrap();
        let quay = config.lookup("quay.io", "owner/app").await.unwrap();
        let ghcr = config.lookup("ghcr.io", "owner/app").await.unwrap_err();
        assert_eq!(
            local,
            Some(Credential::IdentityToken(Secret::new("refresh-token")))
        );
        assert_eq!(quay, Some(basic("file", "pw")));
        assert!(
            matches!(&ghcr, CredentialError::HelperNotFound { helper, registry, .. } if helper == "absent" && registry == "ghcr.io"),
            "{ghcr:?}"
        );
    }

    #[tokio::test]
    async fn helper_runs_once_per_registry() {
        let scripts = ScriptDir::with_test_helper();
        let document = json!({ "credsStore": TEST_HELPER });
        let (_dir, config) = load(&document);
        let config = config.with_helper_dir(scripts.path());

        let (first, second) = futures::join!(
            config.lookup("docker.io", "library/nginx"),
            config.lookup("docker.io", "library/redis"),
        );
        let alias = config.lookup("index.docker.io", "library/nginx").await;
        assert_eq!(first.unwrap(), Some(basic("hubuser", "hubsecret")));
        assert_eq!(second.unwrap(), Some(basic("hubuser", "hubsecret")));
        assert_eq!(alias.unwrap(), Some(basic("hubuser", "hubsecret")));
        assert_eq!(scripts.test_helper_calls(), 1);

        for _ in 0..2 {
            let missing = config.lookup("ghcr.io", "owner/app").await.unwrap();
            assert_eq!(missing, None);
        }
        assert_eq!(scripts.test_helper_calls(), 2);
    }

    #[tokio::test]
    async fn helper_timeout_is_cached() {
        let scripts = ScriptDir::new();
        scripts.write_helper("slow", "exec sleep 30");
        let document = json!({ "credsStore": "slow" });
        let (_dir, config) = load(&document);
        let timeout = Duration::from_millis(200);
        let config = config
            .with_helper_dir(scripts.path())
            .with_helper_timeout(timeout);

        let first = config.lookup("ghcr.io", "owner/app").await.unwrap_err();
        assert!(
            matches!(&first, CredentialError::HelperTimeout { timeout: t, .. } if *t == timeout),
            "{first:?}"
        );

        let started = Instant::now();
        let second = config.lookup("ghcr.io", "owner/app").await.unwrap_err();
        assert!(
            matches!(second, CredentialError::HelperTimeout { .. }),
            "{second:?}"
        );
        assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
    }
}
