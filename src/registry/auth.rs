//! Registry authentication: parsing `WWW-Authenticate` challenges and the token answer of
//! the Docker token protocol.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::credentials::Secret;

/// How a registry wants to be authenticated, learned from its `/v2/` endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `/v2/` answered 200: no authentication.
    None,
    /// HTTP Basic authentication on every request.
    Basic,
    /// Bearer tokens from `realm`, requested per repository scope.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value. Bearer wins over Basic when both are offered;
/// `None` when neither scheme is present.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut basic = false;
    for (scheme, params) in split_challenges(header) {
        if scheme.eq_ignore_ascii_case("bearer") {
            let realm = params.get("realm")?.clone();
            return Some(Challenge::Bearer {
                realm,
                service: params.get("service").cloned(),
            });
        }
        if scheme.eq_ignore_ascii_case("basic") {
            basic = true;
        }
    }
    basic.then_some(Challenge::Basic)
}

/// Splits a header into its challenges: a scheme followed by `key=value` parameters, with
/// values quoted or not. Several challenges may share one header, separated by commas.
fn split_challenges(header: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut challenges: Vec<(String, HashMap<String, String>)> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        let token_end = rest.find([' ', ',', '=']).unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = rest[token_end..].trim_start();

        if let Some(value_part) = after.strip_prefix('=') {
            let (value, remaining) = read_value(value_part.trim_start());
            if let Some((_, params)) = challenges.last_mut() {
                params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining.trim_start().trim_start_matches(',').trim_start();
        } else {
            if !token.is_empty() {
                challenges.push((token.to_owned(), HashMap::new()));
            }
            rest = after.trim_start_matches(',').trim_start();
        }
    }
    challenges
}

/// Reads a quoted string (with backslash escapes) or a plain token; returns it and the rest.
fn read_value(input: &str) -> (String, &str) {
    let Some(quoted) = input.strip_prefix('"') else {
        let end = input.find(',').unwrap_or(input.len());
        return (input[..end].trim().to_owned(), &input[end..]);
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            '"' => return (value, &quoted[i + 1..]),
            other => value.push(other),
        }
    }
    (value, "")
}

/// The body of a token endpoint's answer. Docker Hub sends `token`, OAuth servers
/// `access_token`; either is accepted.
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// A bearer token and when to stop using it.
#[derive(Clone, Debug)]
pub struct Token {
    pub value: Secret,
    pub expires_at: Instant,
}

/// Tokens without `expires_in` live 60 seconds, as the token protocol specifies.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// A token is dropped this long before it expires, so that it does not expire in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

impl TokenAnswer {
    /// The token, or `None` when the answer carries neither `token` nor `access_token`.
    pub(crate) fn into_token(self, received_at: Instant) -> Option<Token> {
        let value = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let lifetime = self
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        let usable = lifetime.saturating_sub(EXPIRY_MARGIN.min(lifetime / 2));
        Some(Token {
            value: Secret::new(value),
            expires_at: received_at + usable,
        })
    }
}

/// Expires each cached token at its own `expires_at`.
pub(crate) struct TokenExpiry;

impl moka::Expiry<String, Token> for TokenExpiry {
    fn expire_after_create(&self, _key: &String, token: &Token, now: Instant) -> Option<Duration> {
        Some(token.expires_at.saturating_duration_since(now))
    }
}

/// The `scope` parameter that asks to pull `repository`.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_like_registries_send_them() {
        let cases = [
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#,
                Some(Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                }),
            ),
            (
                r#"Bearer realm="http://127.0.0.1:1/t",service="svc",scope="repository:a/b:pull,push""#,
                Some(Challenge::Bearer {
                    realm: "http://127.0.0.1:1/t".into(),
                    service: Some("svc".into()),
                }),
            ),
            (
                r#"bearer realm=https://ghcr.io/token, service=ghcr.io"#,
                Some(Challenge::Bearer {
                    realm: "https://ghcr.io/token".into(),
                    service: Some("ghcr.io".into()),
                }),
            ),
            (r#"Basic realm="Registry Realm""#, Some(Challenge::Basic)),
            (
                r#"Basic realm="x", Bearer realm="https://a/t""#,
                Some(Challenge::Bearer {
                    realm: "https://a/t".into(),
                    service: None,
                }),
            ),
            (
                r#"Bearer realm="https://a/t?x=\"q\"""#,
                Some(Challenge::Bearer {
                    realm: r#"https://a/t?x="q""#.into(),
                    service: None,
                }),
            ),
            ("Negotiate", None),
            ("", None),
            (r#"Bearer service="no-realm""#, None),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_challenge(header), expected, "{header}");
        }
    }

    #[test]
    fn token_answer_accepts_both_fields() {
        let now = Instant::now();
        let docker: TokenAnswer =
            serde_json::from_str(r#"{"token":"abc","expires_in":300}"#).unwrap();
        let token = docker.into_token(now).unwrap();
        assert_eq!(token.value.expose(), "abc");
        assert_eq!(token.expires_at, now + Duration::from_secs(295));

        let oauth: TokenAnswer = serde_json::from_str(r#"{"access_token":"xyz"}"#).unwrap();
        let token = oauth.into_token(now).unwrap();
        assert_eq!(token.value.expose(), "xyz");
        assert_eq!(token.expires_at, now + Duration::from_secs(55));

        let empty: TokenAnswer = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(empty.into_token(now).is_none());
    }
}
