//! One HTTP exchange with a registry: the per-registry bound, the rate-limit pause,
//! redirects under the outbound policy, time and size limits, and the mapping of error
//! statuses.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::policy::RefusedAddresses;
use super::{RegistryClient, RegistryError, RegistryState};

/// A request to a registry or its token realm.
pub(crate) struct Outbound {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    /// Sent to the origin of `url` only, never to another host after a redirect.
    pub authorization: Option<HeaderValue>,
    /// A form body, for token requests with an identity token.
    pub form: Option<Vec<(String, String)>>,
    pub kind: RequestKind,
}

/// What a request is for, as counted in [`RegistryStats`](super::RegistryStats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Ping,
    Manifest,
    Token,
}

/// A registry's answer with its body read in full (within the size limit).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How long to pause a registry that answered 429 without a usable `Retry-After`.
const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(30);

impl RegistryClient {
    /// Sends `outbound` within the registry's bound and follows redirects. Only a 429 is
    /// turned into an error here; every other status is the caller's to interpret.
    pub(crate) async fn exchange(
        &self,
        registry: &RegistryState,
        outbound: Outbound,
    ) -> Result<Answer, RegistryError> {
        if let Some(wait) = registry.rate_limit_remaining() {
            return Err(RegistryError::RateLimited {
                registry: registry.name.clone(),
                retry_after: Some(wait),
            });
        }

        // Waiting for a permit is not limited by the request timeout: the clock starts
        // when the request is sent.
        let _permit = registry
            .permits
            .acquire()
            .await
            .expect("registry semaphores are never closed");
        // A 429 may have come while this request waited for its permit.
        if let Some(wait) = registry.rate_limit_remaining() {
            return Err(RegistryError::RateLimited {
                registry: registry.name.clone(),
                retry_after: Some(wait),
            });
        }
        let _in_flight = registry.stats.enter();
        registry.stats.count(outbound.kind, &outbound.method);

        let timeout = self.config.request_timeout;
        let answer = tokio::time::timeout(timeout, self.follow(registry, outbound))
            .await
            .map_err(|_| RegistryError::Timeout {
                registry: registry.name.clone(),
                timeout,
            })??;

        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let pause = retry_after(&answer.headers).unwrap_or(DEFAULT_RATE_LIMIT_PAUSE);
            registry.pause_until(Instant::now() + pause);
            tracing::warn!(registry = %registry.name, pause_secs = pause.as_secs(), "registry rate limit reached");
            return Err(RegistryError::RateLimited {
                registry: registry.name.clone(),
                retry_after: Some(pause),
            });
        }
        Ok(answer)
    }

    async fn follow(
        &self,
        registry: &RegistryState,
        outbound: Outbound,
    ) -> Result<Answer, RegistryError> {
        let origin = outbound.url.origin();
        let mut url = outbound.url.clone();
        let mut redirects = 0;
        loop {
            let same_origin = url.origin() == origin;
            // A redirect target on another host is insecure only by its own right, and
            // gets none of the registry's own TLS settings.
            let insecure = if same_origin {
                registry.insecure
            } else {
                self.is_insecure_host(&host_and_port(&url))
            };
            self.check_outbound(registry, &url, insecure)?;
            let client = if same_origin {
                &registry.http
            } else {
                self.shared_client(insecure)
            };
            let mut request = client
                .request(outbound.method.clone(), url.clone())
                .headers(outbound.headers.clone());
            if same_origin && let Some(value) = &outbound.authorization {
                request = request.header(AUTHORIZATION, value.clone());
            }
            if let Some(form) = &outbound.form {
                request = request.form(form);
            }

            let response = request
                .send()
                .await
                .map_err(|e| transport_error(registry, e))?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(LOCATION)
            {
                redirects += 1;
                if redirects > self.config.max_redirects {
                    return Err(RegistryError::Malformed {
                        registry: registry.name.clone(),
                        detail: format!(
                            "more than {} redirects from {}",
                            self.config.max_redirects,
                            outbound.url.path()
                        ),
                    });
                }
                url = redirect_target(registry, &url, location)?;
                continue;
            }

            let headers = response.headers().clone();
            let body = self.read_body(registry, response).await?;
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
    }

    /// Rejects a URL the outbound policy refuses, and plain HTTP to a host that is
    /// neither loopback nor marked insecure.
    fn check_outbound(
        &self,
        registry: &RegistryState,
        url: &Url,
        insecure: bool,
    ) -> Result<(), RegistryError> {
        let refused = |detail: String| RegistryError::Refused {
            registry: registry.name.clone(),
            detail: format!("{}: {detail}", without_query(url)),
        };
        self.config.outbound.check_url(url).map_err(refused)?;
        if url.scheme() == "http" && !insecure {
            return Err(refused(format!(
                "plain HTTP to {} is not allowed: only loopback registries and those marked \
                 insecure may be reached without TLS",
                host_and_port(url)
            )));
        }
        Ok(())
    }

    async fn read_body(
        &self,
        registry: &RegistryState,
        mut response: reqwest::Response,
    ) -> Result<Bytes, RegistryError> {
        let limit = self.config.max_body_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(registry, e))?
        {
            if body.len() + chunk.len() > limit {
                return Err(RegistryError::Malformed {
                    registry: registry.name.clone(),
                    detail: format!("response body larger than {limit} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.into())
    }
}

/// Maps a failed send or read to [`RegistryError::Unreachable`], to
/// [`RegistryError::Refused`] when the policy's resolver refused every address, or to
/// [`RegistryError::Malformed`] when the response head broke HTTP or a size bound.
fn transport_error(registry: &RegistryState, error: reqwest::Error) -> RegistryError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<RefusedAddresses>() {
            return RegistryError::Refused {
                registry: registry.name.clone(),
                detail: refused.to_string(),
            };
        }
        if let Some(http) = current.downcast_ref::<hyper::Error>()
            && http.is_parse()
        {
            return RegistryError::Malformed {
                registry: registry.name.clone(),
                detail: format!("response head rejected: {http}"),
            };
        }
        cause = current.source();
    }
    RegistryError::Unreachable {
        registry: registry.name.clone(),
        source: error.without_url().into(),
    }
}

/// Returns `host[:port]` of a URL, as written in it and in image references.
fn host_and_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Returns the URL for messages, without its query and fragment, which may carry signed
/// credentials.
fn without_query(url: &Url) -> String {
    let mut redacted = url.clone();
    redacted.set_query(None);
    redacted.set_fragment(None);
    redacted.to_string()
}

fn redirect_target(
    registry: &RegistryState,
    current: &Url,
    location: &HeaderValue,
) -> Result<Url, RegistryError> {
    let malformed = |detail: String| RegistryError::Malformed {
        registry: registry.name.clone(),
        detail,
    };
    let location = location
        .to_str()
        .map_err(|_| malformed("redirect with a non-text Location header".to_owned()))?;
    let target = current
        .join(location)
        .map_err(|e| malformed(format!("redirect to invalid location {location:?}: {e}")))?;
    match target.scheme() {
        "http" | "https" => Ok(target),
        other => Err(malformed(format!(
            "redirect to unsupported scheme {other:?}"
        ))),
    }
}

/// The pause a `Retry-After` header asks for: seconds, or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The `errors` array registries put in error bodies.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The error codes and messages of a registry error body, e.g. `MANIFEST_UNKNOWN: manifest
/// unknown`; empty when the body has none.
pub(crate) fn error_detail(body: &[u8]) -> String {
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return String::new();
    };
    parsed
        .errors
        .iter()
        .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
            (false, false) => format!("{}: {}", e.code, e.message),
            (false, true) => e.code.clone(),
            _ => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Maps an unexpected status of a request for `repository` at `reference` to an error.
pub(crate) fn status_error(
    registry: &RegistryState,
    method: &Method,
    path: &str,
    repository: &str,
    reference: &str,
    answer: &Answer,
) -> RegistryError {
    let detail = error_detail(&answer.body);
    let registry = registry.name.clone();
    let repository = repository.to_owned();
    match answer.status {
        StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
            registry,
            repository,
            detail,
        },
        StatusCode::FORBIDDEN => RegistryError::Forbidden {
            registry,
            repository,
            detail,
        },
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            registry,
            repository,
            reference: reference.to_owned(),
            detail,
        },
        status => RegistryError::Status {
            registry,
            method: method.to_string(),
            path: path.to_owned(),
            status: status.as_u16(),
            detail,
        },
    }
}

impl RegistryState {
    fn rate_limit_remaining(&self) -> Option<Duration> {
        let until = (*self.paused_until.lock().expect("pause lock poisoned"))?;
        until.checked_duration_since(Instant::now())
    }

    fn pause_until(&self, until: Instant) {
        let mut paused = self.paused_until.lock().expect("pause lock poisoned");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));

        let later = SystemTime::now() + Duration::from_secs(120);
        let date = httpdate::fmt_http_date(later);
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );

        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn redirect_targets_checked_before_sending() {
        let client = RegistryClient::new(
            super::super::RegistryConfig::default(),
            std::sync::Arc::new(crate::credentials::NoCredentials),
        )
        .unwrap();
        let registry = client.registry("registry.example.com");
        let check = |target: &str, insecure: bool| {
            let url = Url::parse(target).unwrap();
            client
                .check_outbound(&registry, &url, insecure)
                .map_err(|e| e.to_string())
        };

        assert_eq!(
            check("https://cdn.example.com/blob?sig=secret", false),
            Ok(())
        );
        let plain = check("http://cdn.example.com/blob?sig=secret", false).unwrap_err();
        assert!(plain.contains("plain HTTP to cdn.example.com"), "{plain}");
        assert!(!plain.contains("secret"), "{plain}");
        let metadata = check("http://169.254.169.254/latest/meta-data/", true).unwrap_err();
        assert!(metadata.contains("link-local"), "{metadata}");
    }

    #[test]
    fn error_detail_lists_codes() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_detail(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(error_detail(b"<html>"), "");
        assert_eq!(error_detail(br#"{"errors":[{"code":"DENIED"}]}"#), "DENIED");
    }
}
