//! The registry client: remote digests of tags by `HEAD`, manifests by digest, and what it
//! learns of each registry (scheme, auth challenge, tokens, rate-limit pauses) for the life
//! of the process.
//!
//! oci-client's `Client` asks for a token per image and has no per-registry bound, batched
//! scopes or redirect control, so this module drives `reqwest` itself and takes from
//! oci-client the reference grammar, media types and manifest types.

mod auth;
mod error;
mod exchange;
mod learn;
mod options;
mod policy;
mod stats;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use crate::credentials::CredentialSource;
use crate::reference::{ImageRef, api_host, canonical_registry};
use crate::rules::{Manifest, RemoteDigest, is_index_media_type};

pub use auth::{Challenge, parse_challenge};
pub use error::RegistryError;
use exchange::{Outbound, RequestKind, status_error};
use learn::Endpoint;
pub use options::{CaCertError, RegistryOptions, RegistryOptionsSource};
pub use policy::{AllowEntry, InvalidAllowEntry, OutboundPolicy};
pub use stats::RegistryStats;

/// Every manifest media type imgstat understands, sent in `Accept` on every manifest
/// request. Distribution 2.8 converts to schema 1 when `Accept` is missing.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
];

/// Limits and choices of the registry client.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Requests in flight at once to one registry.
    pub max_in_flight: usize,
    /// Time for one request once sent, body included.
    pub request_timeout: Duration,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Largest response body read.
    pub max_body_bytes: usize,
    /// Header fields accepted in one HTTP/1 response; a response with more fails.
    pub max_response_headers: usize,
    /// Redirects followed for one request.
    pub max_redirects: usize,
    /// Repository scopes asked for in one token request.
    pub scopes_per_token: usize,
    /// How long a failure to reach a registry's `/v2/` is remembered before it is tried again.
    pub unreachable_ttl: Duration,
    /// Registries (`host[:port]`) that may be reached over plain HTTP or unverified TLS,
    /// besides loopback ones. Redirect targets follow the same rule.
    pub insecure_registries: Vec<String>,
    /// Hosts and addresses requests may reach, checked on every URL, redirect targets and
    /// token realms included, and on every address a host name resolves to.
    pub outbound: OutboundPolicy,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_body_bytes: 4 * 1024 * 1024,
            max_response_headers: 100,
            max_redirects: 5,
            scopes_per_token: 32,
            unreachable_ttl: Duration::from_secs(10),
            insecure_registries: Vec::new(),
            outbound: OutboundPolicy::default(),
        }
    }
}

/// A tag on a registry: the unit of remote digest lookups and of their cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagKey {
    /// Registry as in normalised references (`docker.io`, `host:port`).
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl TagKey {
    /// Returns the tag a reference follows, or `None` for a reference pinned by digest alone.
    pub fn of(reference: &ImageRef) -> Option<Self> {
        Some(Self {
            registry: reference.registry().to_owned(),
            repository: reference.repository().to_owned(),
            tag: reference.tag()?.to_owned(),
        })
    }
}

impl std::fmt::Display for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// The client's state of one registry.
pub(crate) struct RegistryState {
    /// Normalised name, as in references and credentials.
    pub name: String,
    /// Host and port of the API.
    pub host: String,
    /// Plain HTTP and unverified TLS allowed (loopback, listed as insecure, or insecure in
    /// its [`RegistryOptions`]).
    pub insecure: bool,
    /// The HTTP client for this registry: a shared one, or one that trusts its CA
    /// certificates.
    pub http: reqwest::Client,
    // The bound, the rate-limit pause and the counters outlive a reset of the registry.
    pub permits: Arc<Semaphore>,
    pub paused_until: Arc<Mutex<Option<Instant>>>,
    pub endpoint: tokio::sync::Mutex<Option<(Result<Endpoint, RegistryError>, Instant)>>,
    pub tokens: moka::future::Cache<String, auth::Token>,
    pub stats: Arc<stats::Counters>,
}

/// A registry client shared by every check of a process.
pub struct RegistryClient {
    config: RegistryConfig,
    credentials: Arc<dyn CredentialSource>,
    options: Option<Arc<dyn RegistryOptionsSource>>,
    verified: reqwest::Client,
    unverified: reqwest::Client,
    registries: Mutex<HashMap<String, Arc<RegistryState>>>,
}

impl RegistryClient {
    pub fn new(
        config: RegistryConfig,
        credentials: Arc<dyn CredentialSource>,
    ) -> Result<Self, reqwest::Error> {
        let builder = || options::client_builder(&config);
        Ok(Self {
            verified: builder().build()?,
            unverified: builder().tls_danger_accept_invalid_certs(true).build()?,
            config,
            credentials,
            options: None,
            registries: Mutex::new(HashMap::new()),
        })
    }

    /// Looks up each registry's [`RegistryOptions`] in `source` before the first request
    /// to it.
    #[must_use]
    pub fn with_options(mut self, source: Arc<dyn RegistryOptionsSource>) -> Self {
        self.options = Some(source);
        self
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn registry(&self, name: &str) -> Arc<RegistryState> {
        let name = canonical_registry(name);
        let mut registries = self.registries.lock().expect("registry map lock poisoned");
        if let Some(state) = registries.get(name) {
            return Arc::clone(state);
        }
        let state = Arc::new(self.new_state(name, None));
        registries.insert(name.to_owned(), Arc::clone(&state));
        state
    }

    /// Forgets a remembered failure to reach `registry`'s `/v2/`, so that the next request
    /// tries again at once. A learned endpoint, tokens and a rate-limit pause stay.
    pub async fn retry_unreachable(&self, registry: &str) {
        let state = self.registry(registry);
        let mut endpoint = state.endpoint.lock().await;
        if matches!(&*endpoint, Some((Err(_), _))) {
            *endpoint = None;
        }
    }

    /// Forgets what the client learned of `registry` (scheme, challenge, tokens) and
    /// reads its options again, so that changed credentials or options apply to the next
    /// request. Requests in flight finish with what they started with.
    pub fn reset_registry(&self, registry: &str) {
        let name = canonical_registry(registry);
        let mut registries = self.registries.lock().expect("registry map lock poisoned");
        if let Some(previous) = registries.remove(name) {
            let state = self.new_state(name, Some(&previous));
            registries.insert(name.to_owned(), Arc::new(state));
            tracing::debug!(registry = %name, "registry state reset");
        }
    }

    /// Creates the state of a registry; `previous` hands over the bound, the rate-limit
    /// pause and the counters of the state it replaces.
    fn new_state(&self, name: &str, previous: Option<&RegistryState>) -> RegistryState {
        let host = api_host(name).to_owned();
        let options = self
            .options
            .as_ref()
            .map(|source| source.options(name))
            .unwrap_or_default();
        let insecure = self.is_insecure_host(&host)
            || options.insecure
            || self.config.insecure_registries.iter().any(|r| r == name);
        let http = self.http_client(name, insecure, options.ca_certs_pem.as_deref());
        RegistryState {
            insecure,
            http,
            name: name.to_owned(),
            host,
            permits: previous.map_or_else(
                || Arc::new(Semaphore::new(self.config.max_in_flight.max(1))),
                |p| Arc::clone(&p.permits),
            ),
            paused_until: previous.map_or_else(Default::default, |p| Arc::clone(&p.paused_until)),
            endpoint: tokio::sync::Mutex::new(None),
            tokens: moka::future::Cache::builder()
                .max_capacity(10_000)
                .expire_after(auth::TokenExpiry)
                .build(),
            stats: previous.map_or_else(Default::default, |p| Arc::clone(&p.stats)),
        }
    }

    /// Chooses the client for a registry: the shared verified or unverified one, or, with
    /// CA certificates, one of its own. Invalid certificates are logged and leave the
    /// registry on the shared client, so its TLS failures show in each request's error.
    fn http_client(
        &self,
        name: &str,
        insecure: bool,
        ca_certs_pem: Option<&str>,
    ) -> reqwest::Client {
        let shared = self.shared_client(insecure);
        let Some(pem) = ca_certs_pem else {
            return shared.clone();
        };
        let builder = options::client_builder(&self.config);
        match options::client_with_ca_certs(builder, name, pem, insecure) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(
                    registry = %name,
                    error = &error as &dyn std::error::Error,
                    "ignoring the registry's CA certificates"
                );
                shared.clone()
            }
        }
    }

    /// Returns the shared client for a host without TLS settings of its own.
    fn shared_client(&self, insecure: bool) -> &reqwest::Client {
        if insecure {
            &self.unverified
        } else {
            &self.verified
        }
    }

    /// Whether `host` (`host[:port]` as written in a reference or URL) may be reached over
    /// plain HTTP or unverified TLS: a loopback host, or one in `insecure_registries`.
    fn is_insecure_host(&self, host: &str) -> bool {
        is_loopback_host(host) || self.config.insecure_registries.iter().any(|r| r == host)
    }

    /// Request counters of every registry this client has talked to.
    pub fn stats(&self) -> Vec<RegistryStats> {
        let registries = self.registries.lock().expect("registry map lock poisoned");
        let mut all: Vec<RegistryStats> = registries
            .values()
            .map(|r| r.stats.snapshot(&r.name))
            .collect();
        all.sort_by(|a, b| a.registry.cmp(&b.registry));
        all
    }

    /// Learns each registry's scheme and challenge and gets tokens for all repositories of
    /// `keys`, many repositories to a token request, so that the `HEAD`s that follow go out
    /// with the right credentials. Failures are left for the `HEAD`s to report.
    pub async fn prepare(&self, keys: &[TagKey]) {
        let mut by_registry: HashMap<&str, Vec<&str>> = HashMap::new();
        for key in keys {
            let repositories = by_registry
                .entry(canonical_registry(&key.registry))
                .or_default();
            if !repositories.contains(&key.repository.as_str()) {
                repositories.push(&key.repository);
            }
        }
        let work = by_registry
            .into_iter()
            .map(|(name, repositories)| async move {
                let registry = self.registry(name);
                let Ok(endpoint) = self.endpoint(&registry).await else {
                    return;
                };
                if let Challenge::Bearer { realm, service } = &endpoint.challenge {
                    self.prefetch_tokens(&registry, realm, service.as_deref(), &repositories)
                        .await;
                }
            });
        futures::future::join_all(work).await;
    }

    /// The registry's current manifest digest for a tag, by `HEAD`, falling back to `GET`
    /// where `HEAD` gives no digest.
    pub async fn head_digest(&self, key: &TagKey) -> Result<RemoteDigest, RegistryError> {
        self.tag_digest(key).await.map(|answer| answer.remote)
    }

    /// Gets the registry's current manifest digest for a tag by `HEAD`, falling back to
    /// `GET` where `HEAD` gives no digest. A `GET` also returns the manifest, so that it
    /// need not be fetched again by digest.
    pub async fn tag_digest(&self, key: &TagKey) -> Result<TagAnswer, RegistryError> {
        let registry = self.registry(&key.registry);
        let path = format!("/v2/{}/manifests/{}", key.repository, key.tag);

        let answer = self
            .authorized(&registry, &key.repository, Method::HEAD, &path)
            .await?;
        match answer.status {
            StatusCode::OK => {
                if let Some(remote) = digest_from_headers(&answer.headers) {
                    return Ok(TagAnswer {
                        remote,
                        manifest: None,
                    });
                }
                tracing::debug!(registry = %registry.name, tag = %key, "HEAD without Docker-Content-Digest; sending GET");
            }
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                tracing::debug!(registry = %registry.name, tag = %key, "HEAD not supported; sending GET");
            }
            _ => {
                return Err(status_error(
                    &registry,
                    &Method::HEAD,
                    &path,
                    &key.repository,
                    &key.tag,
                    &answer,
                ));
            }
        }

        let answer = self
            .authorized(&registry, &key.repository, Method::GET, &path)
            .await?;
        if answer.status != StatusCode::OK {
            return Err(status_error(
                &registry,
                &Method::GET,
                &path,
                &key.repository,
                &key.tag,
                &answer,
            ));
        }
        // The digest of the bytes received, as the registry computed it for a `HEAD`.
        // Parsing and serialising the manifest again would change them.
        let computed = sha256_digest(&answer.body);
        let remote = digest_from_headers(&answer.headers).unwrap_or_else(|| RemoteDigest {
            digest: computed.clone(),
            media_type: media_type(&answer.headers, &answer.body),
        });
        let manifest = (remote.digest == computed)
            .then(|| parse_manifest(&registry, &key.repository, &remote.digest, &answer))
            .transpose()?;
        Ok(TagAnswer { remote, manifest })
    }

    /// Fetches a manifest by digest and checks that its bytes have that digest.
    pub async fn fetch_manifest(
        &self,
        registry_name: &str,
        repository: &str,
        digest: &str,
    ) -> Result<Manifest, RegistryError> {
        let registry = self.registry(registry_name);
        let path = format!("/v2/{repository}/manifests/{digest}");
        let answer = self
            .authorized(&registry, repository, Method::GET, &path)
            .await?;
        if answer.status != StatusCode::OK {
            return Err(status_error(
                &registry,
                &Method::GET,
                &path,
                repository,
                digest,
                &answer,
            ));
        }

        if digest.starts_with("sha256:") && sha256_digest(&answer.body) != digest {
            return Err(RegistryError::Malformed {
                registry: registry.name.clone(),
                detail: format!("manifest {repository}@{digest} does not match its digest"),
            });
        }
        parse_manifest(&registry, repository, digest, &answer)
    }

    /// Sends a manifest request with the registry's credentials. A 401 is answered once:
    /// with a fresh token when the registry asks for a bearer token, else with Basic
    /// credentials when it asks for them.
    async fn authorized(
        &self,
        registry: &RegistryState,
        repository: &str,
        method: Method,
        path: &str,
    ) -> Result<exchange::Answer, RegistryError> {
        let endpoint = self.endpoint(registry).await?;
        let url = endpoint.url(path, registry)?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS));

        let authorization = self
            .authorization(registry, &endpoint.challenge, repository, false)
            .await?;
        let outbound = Outbound {
            method: method.clone(),
            url: url.clone(),
            headers: headers.clone(),
            authorization,
            form: None,
            kind: RequestKind::Manifest,
        };
        let answer = self.exchange(registry, outbound).await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }

        let challenge = answer
            .headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .unwrap_or(endpoint.challenge.clone());
        if challenge == Challenge::None {
            return Ok(answer);
        }
        registry.tokens.invalidate(repository).await;
        let authorization = self
            .authorization(registry, &challenge, repository, true)
            .await?;
        if authorization.is_none() {
            return Ok(answer);
        }
        let retry = Outbound {
            method,
            url,
            headers,
            authorization,
            form: None,
            kind: RequestKind::Manifest,
        };
        self.exchange(registry, retry).await
    }
}

/// A tag's digest, and its manifest when a `GET` was needed to learn the digest and the
/// bytes received have that digest.
#[derive(Clone, Debug)]
pub struct TagAnswer {
    pub remote: RemoteDigest,
    pub manifest: Option<Manifest>,
}

/// Reads a manifest received for `repository@digest`: an index with its entries, or any
/// other manifest as [`Manifest::Single`].
fn parse_manifest(
    registry: &RegistryState,
    repository: &str,
    digest: &str,
    answer: &exchange::Answer,
) -> Result<Manifest, RegistryError> {
    let is_index = media_type(&answer.headers, &answer.body)
        .is_some_and(|media_type| is_index_media_type(&media_type));
    if !is_index {
        return Ok(Manifest::Single);
    }
    serde_json::from_slice(&answer.body)
        .map(Manifest::Index)
        .map_err(|e| RegistryError::Malformed {
            registry: registry.name.clone(),
            detail: format!("invalid index {repository}@{digest}: {e}"),
        })
}

/// The `Accept` header of manifest requests.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

fn digest_from_headers(headers: &HeaderMap) -> Option<RemoteDigest> {
    let digest = headers.get("docker-content-digest")?.to_str().ok()?.trim();
    if !is_valid_digest(digest) {
        return None;
    }
    Some(RemoteDigest {
        digest: digest.to_owned(),
        media_type: content_type(headers),
    })
}

/// Returns the `Content-Type` without parameters, or `None` when it is missing or empty.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or(value).trim();
    (!essence.is_empty()).then(|| essence.to_owned())
}

fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == expected_len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn sha256_digest(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// Returns the media type of a manifest: its `Content-Type`, else its `mediaType` field.
fn media_type(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let from_header = content_type(headers).filter(|v| v.starts_with("application/vnd."));
    from_header.or_else(|| {
        #[derive(serde::Deserialize)]
        struct MediaTypeField {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
        }
        serde_json::from_slice::<MediaTypeField>(body)
            .ok()?
            .media_type
    })
}

/// Whether a registry host names a loopback address (`localhost`, 127.0.0.0/8, `::1`),
/// which Docker reaches over plain HTTP.
pub fn is_loopback_host(host: &str) -> bool {
    let without_port = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    if without_port.eq_ignore_ascii_case("localhost") {
        return true;
    }
    without_port
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        let cases = [
            ("localhost", true),
            ("localhost:5000", true),
            ("127.0.0.1:5000", true),
            ("127.3.4.5", true),
            ("[::1]:5000", true),
            ("registry-1.docker.io", false),
            ("10.0.0.1:5000", false),
            ("localhost.example.com", false),
        ];
        for (host, expected) in cases {
            assert_eq!(is_loopback_host(host), expected, "{host}");
        }
    }

    /// Options whose `insecure` flag a test flips, counting the lookups.
    #[derive(Default)]
    struct SwitchedOptions {
        insecure: std::sync::atomic::AtomicBool,
        lookups: std::sync::atomic::AtomicUsize,
    }

    impl RegistryOptionsSource for SwitchedOptions {
        fn options(&self, _registry: &str) -> RegistryOptions {
            use std::sync::atomic::Ordering;
            self.lookups.fetch_add(1, Ordering::SeqCst);
            RegistryOptions {
                insecure: self.insecure.load(Ordering::SeqCst),
                ca_certs_pem: None,
            }
        }
    }

    #[test]
    fn options_apply_until_reset() {
        use std::sync::atomic::Ordering;
        let options = Arc::new(SwitchedOptions::default());
        let client = RegistryClient::new(
            RegistryConfig::default(),
            Arc::new(crate::credentials::NoCredentials),
        )
        .unwrap()
        .with_options(options.clone());

        let first = client.registry("registry.example.com");
        assert!(!first.insecure);
        first.stats.count(RequestKind::Ping, &Method::GET);

        options.insecure.store(true, Ordering::SeqCst);
        assert!(!client.registry("registry.example.com").insecure);
        assert_eq!(options.lookups.load(Ordering::SeqCst), 1);

        client.reset_registry("registry.example.com");
        let reset = client.registry("registry.example.com");
        assert!(reset.insecure);
        assert_eq!(options.lookups.load(Ordering::SeqCst), 2);
        assert_eq!(
            reset.stats.snapshot("r").pings,
            1,
            "counters survive a reset"
        );
        assert!(Arc::ptr_eq(&first.permits, &reset.permits));
    }

    #[test]
    fn reset_of_unknown_registry_creates_nothing() {
        let client = RegistryClient::new(
            RegistryConfig::default(),
            Arc::new(crate::credentials::NoCredentials),
        )
        .unwrap();

        client.reset_registry("registry.example.com");

        assert!(client.stats().is_empty());
    }

    #[test]
    fn digests_are_validated() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(is_valid_digest(&good));
        assert!(!is_valid_digest("sha256:abc"));
        assert!(!is_valid_digest(&format!("md5:{}", "a".repeat(64))));
        assert!(!is_valid_digest(&format!("sha256:{}", "A".repeat(64))));
    }

    #[test]
    fn accept_lists_every_media_type() {
        for media_type in MANIFEST_MEDIA_TYPES {
            assert!(ACCEPT_MANIFESTS.contains(media_type), "{media_type}");
        }
    }

    #[test]
    fn media_type_from_header_or_body() {
        let mut headers = HeaderMap::new();
        let body = br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#;
        assert_eq!(
            media_type(&headers, body).as_deref(),
            Some("application/vnd.oci.image.index.v1+json")
        );
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.docker.distribution.manifest.v2+json"),
        );
        assert_eq!(
            media_type(&headers, body).as_deref(),
            Some("application/vnd.docker.distribution.manifest.v2+json")
        );
    }
}
