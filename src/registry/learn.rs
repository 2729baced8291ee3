//! What the client learns of a registry before asking for manifests: the scheme and auth
//! challenge from one `GET /v2/`, and bearer tokens, many repositories to a request.

use std::time::Instant;

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use url::Url;

use super::auth::{Challenge, Token, TokenAnswer, parse_challenge, pull_scope};
use super::exchange::{Answer, Outbound, RequestKind, error_detail, status_error};
use super::{RegistryClient, RegistryError, RegistryState};
use crate::credentials::Credential;

/// A registry's base URL and its auth challenge.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub base: Url,
    pub challenge: Challenge,
}

impl Endpoint {
    pub(crate) fn url(&self, path: &str, registry: &RegistryState) -> Result<Url, RegistryError> {
        self.base.join(path).map_err(|e| RegistryError::Malformed {
            registry: registry.name.clone(),
            detail: format!("invalid request path {path:?}: {e}"),
        })
    }
}

impl RegistryClient {
    /// The registry's endpoint, learned by one `GET /v2/` shared by all concurrent callers.
    /// A success is kept for the life of the client, a failure for `unreachable_ttl`. A
    /// 429 is not kept, because the registry's pause rejects requests until its
    /// `Retry-After` anyway.
    pub(crate) async fn endpoint(
        &self,
        registry: &RegistryState,
    ) -> Result<Endpoint, RegistryError> {
        let mut slot = registry.endpoint.lock().await;
        if let Some((result, learned_at)) = &*slot
            && (result.is_ok() || learned_at.elapsed() < self.config.unreachable_ttl)
        {
            return result.clone();
        }

        let result = self.ping(registry).await;
        match &result {
            Ok(endpoint) => tracing::debug!(
                registry = %registry.name,
                base = %endpoint.base,
                challenge = ?endpoint.challenge,
                "learned registry endpoint"
            ),
            Err(error) => {
                tracing::debug!(registry = %registry.name, error = %error.chain(), "registry ping failed")
            }
        }
        *slot = match &result {
            Err(RegistryError::RateLimited { .. }) => None,
            _ => Some((result.clone(), Instant::now())),
        };
        result
    }

    /// Sends `GET /v2/`: over HTTPS, and for insecure registries over plain HTTP when HTTPS
    /// cannot connect, as Docker does.
    async fn ping(&self, registry: &RegistryState) -> Result<Endpoint, RegistryError> {
        let schemes: &[&str] = if registry.insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut last_error = None;
        for scheme in schemes {
            let base = Url::parse(&format!("{scheme}://{}/", registry.host)).map_err(|e| {
                RegistryError::Malformed {
                    registry: registry.name.clone(),
                    detail: format!("invalid registry host {:?}: {e}", registry.host),
                }
            })?;
            let outbound = Outbound {
                method: Method::GET,
                url: base.join("/v2/").expect("/v2/ is a valid path"),
                headers: HeaderMap::new(),
                authorization: None,
                form: None,
                kind: RequestKind::Ping,
            };
            match self.exchange(registry, outbound).await {
                Ok(answer) => {
                    return challenge_of(registry, &answer)
                        .map(|c| Endpoint { base, challenge: c });
                }
                Err(error @ RegistryError::Unreachable { .. }) => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.expect("at least one scheme is tried"))
    }

    /// The `Authorization` header for a request to `repository` under `challenge`.
    /// `fresh` skips the token cache, after a registry rejected a cached token.
    pub(crate) async fn authorization(
        &self,
        registry: &RegistryState,
        challenge: &Challenge,
        repository: &str,
        fresh: bool,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        match challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => {
                let credential = self.credential(registry, repository).await?;
                Ok(match credential {
                    Some(Credential::Basic { username, password }) => {
                        Some(basic_header(&username, password.expose()))
                    }
                    _ => None,
                })
            }
            Challenge::Bearer { realm, service } => {
                if fresh {
                    registry.tokens.invalidate(repository).await;
                }
                let token = registry
                    .tokens
                    .try_get_with(repository.to_owned(), async {
                        let repositories = [repository];
                        let credential = self.credential(registry, repository).await?;
                        self.request_token(
                            registry,
                            realm,
                            service.as_deref(),
                            &repositories,
                            credential.as_ref(),
                        )
                        .await
                    })
                    .await
                    .map_err(|shared| (*shared).clone())?;
                Ok(Some(bearer_header(&token)))
            }
        }
    }

    /// Gets tokens for every repository without one, grouping repositories that share a
    /// credential and asking for up to `scopes_per_token` scopes in one request.
    pub(crate) async fn prefetch_tokens(
        &self,
        registry: &RegistryState,
        realm: &str,
        service: Option<&str>,
        repositories: &[&str],
    ) {
        let mut groups: Vec<(Option<Credential>, Vec<&str>)> = Vec::new();
        for &repository in repositories {
            if registry.tokens.contains_key(repository) {
                continue;
            }
            let Ok(credential) = self.credential(registry, repository).await else {
                continue;
            };
            match groups.iter_mut().find(|(c, _)| *c == credential) {
                Some((_, members)) => members.push(repository),
                None => groups.push((credential, vec![repository])),
            }
        }

        let batches = groups.iter().flat_map(|(credential, members)| {
            members
                .chunks(self.config.scopes_per_token.max(1))
                .map(move |chunk| (credential, chunk))
        });
        let requests = batches.map(|(credential, chunk)| async move {
            match self
                .request_token(registry, realm, service, chunk, credential.as_ref())
                .await
            {
                Ok(token) => {
                    for repository in chunk {
                        registry
                            .tokens
                            .insert((*repository).to_owned(), token.clone())
                            .await;
                    }
                }
                Err(error) => tracing::debug!(
                    registry = %registry.name,
                    repositories = chunk.len(),
                    error = %error.chain(),
                    "batched token request failed; each repository will ask on its own"
                ),
            }
        });
        futures::future::join_all(requests).await;
    }

    async fn credential(
        &self,
        registry: &RegistryState,
        repository: &str,
    ) -> Result<Option<Credential>, RegistryError> {
        self.credentials
            .lookup(&registry.name, repository)
            .await
            .map_err(|source| RegistryError::Credentials {
                registry: registry.name.clone(),
                source: source.into(),
            })
    }

    /// Asks the token realm for a token that may pull every repository of `repositories`.
    async fn request_token(
        &self,
        registry: &RegistryState,
        realm: &str,
        service: Option<&str>,
        repositories: &[&str],
        credential: Option<&Credential>,
    ) -> Result<Token, RegistryError> {
        let wrap = |source: RegistryError| RegistryError::Token {
            registry: registry.name.clone(),
            realm: realm.to_owned(),
            source: Box::new(source),
        };
        let mut url = Url::parse(realm).map_err(|e| RegistryError::Malformed {
            registry: registry.name.clone(),
            detail: format!("invalid token realm {realm:?}: {e}"),
        })?;
        if url.scheme() != "https" && !(url.scheme() == "http" && registry.insecure) {
            return Err(RegistryError::Refused {
                registry: registry.name.clone(),
                detail: format!(
                    "token realm {realm} is not HTTPS and the registry is not insecure"
                ),
            });
        }

        let scopes: Vec<String> = repositories.iter().map(|r| pull_scope(r)).collect();
        let (method, authorization, form) = match credential {
            Some(Credential::IdentityToken(token)) => {
                let mut form = vec![
                    ("grant_type".to_owned(), "refresh_token".to_owned()),
                    ("refresh_token".to_owned(), token.expose().to_owned()),
                    ("client_id".to_owned(), "imgstat".to_owned()),
                    ("scope".to_owned(), scopes.join(" ")),
                ];
                if let Some(service) = service {
                    form.push(("service".to_owned(), service.to_owned()));
                }
                (Method::POST, None, Some(form))
            }
            basic_or_anonymous => {
                let mut query = url.query_pairs_mut();
                if let Some(service) = service {
                    query.append_pair("service", service);
                }
                for scope in &scopes {
                    query.append_pair("scope", scope);
                }
                drop(query);
                let authorization = match basic_or_anonymous {
                    Some(Credential::Basic { username, password }) => {
                        Some(basic_header(username, password.expose()))
                    }
                    _ => None,
                };
                (Method::GET, authorization, None)
            }
        };

        let outbound = Outbound {
            method: method.clone(),
            url,
            headers: HeaderMap::new(),
            authorization,
            form,
            kind: RequestKind::Token,
        };
        let answer = self.exchange(registry, outbound).await.map_err(wrap)?;
        let repository = repositories.join(", ");
        match answer.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let detail = match error_detail(&answer.body) {
                    detail if detail.is_empty() => {
                        "the token server rejected the credentials".to_owned()
                    }
                    detail => format!("the token server rejected the credentials: {detail}"),
                };
                return Err(RegistryError::Unauthorized {
                    registry: registry.name.clone(),
                    repository,
                    detail,
                });
            }
            _ => {
                let path = realm.split('?').next().unwrap_or(realm);
                return Err(wrap(status_error(
                    registry,
                    &method,
                    path,
                    &repository,
                    "token",
                    &answer,
                )));
            }
        }

        let parsed: TokenAnswer = serde_json::from_slice(&answer.body).map_err(|e| {
            wrap(RegistryError::Malformed {
                registry: registry.name.clone(),
                detail: format!("invalid token answer: {e}"),
            })
        })?;
        parsed.into_token(Instant::now()).ok_or_else(|| {
            wrap(RegistryError::Malformed {
                registry: registry.name.clone(),
                detail: "token answer without a token".to_owned(),
            })
        })
    }
}

/// The challenge of a `/v2/` answer: none on 200, the `WWW-Authenticate` one on 401.
fn challenge_of(registry: &RegistryState, answer: &Answer) -> Result<Challenge, RegistryError> {
    match answer.status {
        StatusCode::OK => Ok(Challenge::None),
        StatusCode::UNAUTHORIZED => answer
            .headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| RegistryError::Malformed {
                registry: registry.name.clone(),
                detail: "401 from /v2/ without a Basic or Bearer challenge".to_owned(),
            }),
        _ => Err(status_error(registry, &Method::GET, "/v2/", "", "", answer)),
    }
}

fn basic_header(username: &str, password: &str) -> HeaderValue {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

fn bearer_header(token: &Token) -> HeaderValue {
    // A token with characters a header cannot carry is sent as nothing, and the registry's
    // 401 reports the problem.
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.value.expose()))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    value.set_sensitive(true);
    value
}
