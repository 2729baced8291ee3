//! A Docker token server (the `realm` of a registry with token auth) that signs RS256
//! JWTs for distribution 2.8 and records every request it serves.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use serde_json::json;
use tempfile::TempDir;

use crate::Credentials;
use crate::names::temp_dir;
use crate::server::ServerThread;
use crate::signing::SigningKey;
use crate::token_policy::{RepoPattern, Scope, TokenPolicy};

/// The `service` the registry names in its challenge and the `aud` of every token.
pub(crate) const SERVICE: &str = "imgstat-testkit-registry";
/// The `iss` of every token, which the registry's `issuer` setting must equal.
pub(crate) const ISSUER: &str = "imgstat-testkit-token-server";

/// One request the token server served, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The authenticated user, `None` for an anonymous request or one with bad credentials.
    pub account: Option<String>,
    /// Every requested scope as sent, such as `repository:team/web:pull`.
    pub scopes: Vec<String>,
    /// The scopes put into the token, each cut down to the allowed actions.
    pub granted: Vec<String>,
    /// HTTP status of the response: 200, or 401 for bad credentials.
    pub status: u16,
}

struct TokenState {
    policy: Mutex<TokenPolicy>,
    requests: Mutex<Vec<TokenRequest>>,
    key: SigningKey,
}

/// A token server on its own loopback port; stopped and its key files removed on `Drop`.
///
/// It serves `GET /token` with optional Basic auth and any number of `scope`
/// parameters, and `POST /token` with an OAuth2 password grant form. Bad credentials
/// get 401. Scopes the user may not use are left out of the token, as Docker Hub does.
pub struct TokenServer {
    state: Arc<TokenState>,
    server: ServerThread,
    _dir: TempDir,
}

impl TokenServer {
    /// Generates a signing key and starts serving `policy`.
    pub fn start(policy: TokenPolicy) -> Self {
        let dir = temp_dir("token");
        let state = Arc::new(TokenState {
            policy: Mutex::new(policy),
            requests: Mutex::new(Vec::new()),
            key: SigningKey::generate(dir.path()),
        });

        let router = Router::new()
            .route("/token", get(get_token).post(post_token))
            .with_state(Arc::clone(&state));
        let server = ServerThread::spawn("imgstat-token-server", move |listener| async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("imgstat-testkit: token server stopped: {error}");
            }
        });

        Self {
            state,
            server,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Returns the token endpoint, `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr())
    }

    pub fn service(&self) -> &'static str {
        SERVICE
    }

    pub fn issuer(&self) -> &'static str {
        ISSUER
    }

    /// Returns the PEM certificate of the signing key, for the registry's `rootcertbundle`.
    pub fn cert_path(&self) -> &Path {
        &self.state.key.cert_path
    }

    /// Returns the key id (`kid`) every token carries, in libtrust form.
    pub fn key_id(&self) -> &str {
        &self.state.key.key_id
    }

    /// Returns the number of token requests served since start or the last reset.
    pub fn request_count(&self) -> usize {
        lock(&self.state.requests).len()
    }

    /// Returns the token requests served since start or the last reset.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.state.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn reset_counters(&self) {
        lock(&self.state.requests).clear();
    }

    /// Adds a user, or changes a known user's password.
    pub fn add_user(&self, credentials: &Credentials) {
        lock(&self.state.policy).add_user(credentials);
    }

    /// Lets a known user pull the matching repositories from now on.
    pub fn grant_pull(&self, username: &str, pattern: impl Into<RepoPattern>) {
        lock(&self.state.policy).grant_pull(username, pattern.into());
    }

    /// Lets a known user push and pull the matching repositories from now on.
    pub fn grant_push(&self, username: &str, pattern: impl Into<RepoPattern>) {
        lock(&self.state.policy).grant_push(username, pattern.into());
    }

    /// Signs later tokens as if the server's clock were `behind` in the past, while the
    /// response keeps `expires_in`. A clock some minutes behind, more than the leeway
    /// the registry grants for clock skew, makes the registry reject the tokens as expired
    /// while a client counts them valid.
    pub fn set_clock_behind(&self, behind: Duration) {
        lock(&self.state.policy).clock_behind = behind;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn get_token(
    State(state): State<Arc<TokenState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let scopes = query_values(query.as_deref().unwrap_or(""), "scope");
    let credentials = basic_credentials(&headers);
    issue(&state, credentials, scopes)
}

async fn post_token(State(state): State<Arc<TokenState>>, body: String) -> Response {
    let scopes = query_values(&body, "scope");
    let username = query_values(&body, "username").into_iter().next();
    let password = query_values(&body, "password").into_iter().next();
    let credentials = username.map(|username| (username, password.unwrap_or_default()));
    issue(&state, credentials, scopes)
}

/// Returns every value of `key` in a URL-encoded string. A value may list several
/// scopes separated by spaces, as the OAuth2 `scope` parameter does.
fn query_values(encoded: &str, key: &str) -> Vec<String> {
    form_urlencoded::parse(encoded.as_bytes())
        .filter(|(name, _)| name == key)
        .flat_map(|(_, value)| {
            value
                .split(' ')
                .filter(|part| !part.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Returns the user name and password of a Basic `Authorization` header, if any.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

fn issue(
    state: &TokenState,
    credentials: Option<(String, String)>,
    scopes: Vec<String>,
) -> Response {
    let policy = lock(&state.policy).clone();

    let account = match credentials {
        Some((username, password)) if policy.authenticate(&username, &password) => Some(username),
        Some(_) => {
            record(state, None, scopes, Vec::new(), StatusCode::UNAUTHORIZED);
            let body = json!({"details": "incorrect username or password"});
            return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        }
        None => None,
    };

    let granted: Vec<Scope> = scopes
        .iter()
        .filter_map(|scope| Scope::parse(scope))
        .filter_map(|scope| policy.grant(account.as_deref(), &scope))
        .collect();
    let token = match sign(
        state,
        account.as_deref(),
        &granted,
        policy.expires_in.as_secs(),
        policy.clock_behind,
    ) {
        Ok(token) => token,
        Err(error) => {
            eprintln!("imgstat-testkit: failed to sign a token: {error}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };

    let granted_text = granted.iter().map(Scope::to_string).collect();
    record(state, account, scopes, granted_text, StatusCode::OK);
    let body = json!({
        "token": token,
        "access_token": token,
        "expires_in": policy.expires_in.as_secs(),
        "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    axum::Json(body).into_response()
}

fn record(
    state: &TokenState,
    account: Option<String>,
    scopes: Vec<String>,
    granted: Vec<String>,
    status: StatusCode,
) {
    lock(&state.requests).push(TokenRequest {
        account,
        scopes,
        granted,
        status: status.as_u16(),
    });
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<Access<'a>>,
}

#[derive(Serialize)]
struct Access<'a> {
    #[serde(rename = "type")]
    resource_type: &'a str,
    name: &'a str,
    actions: &'a [String],
}

fn sign(
    state: &TokenState,
    account: Option<&str>,
    granted: &[Scope],
    lifetime_secs: u64,
    clock_behind: Duration,
) -> jsonwebtoken::errors::Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
        .saturating_sub(clock_behind.as_secs());
    let claims = Claims {
        iss: ISSUER,
        sub: account.unwrap_or(""),
        aud: SERVICE,
        exp: now + lifetime_secs,
        // Back-dated so that a registry clock a little behind still accepts the token.
        nbf: now.saturating_sub(10),
        iat: now,
        jti: format!("{:032x}", fastrand::u128(..)),
        access: granted
            .iter()
            .map(|scope| Access {
                resource_type: &scope.resource_type,
                name: &scope.name,
                actions: &scope.actions,
            })
            .collect(),
    };

    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(state.key.key_id.clone());
    header.typ = Some("JWT".to_owned());
    jsonwebtoken::encode(&header, &claims, &state.key.encoding_key)
}
