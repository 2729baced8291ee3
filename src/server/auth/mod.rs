//! Authentication of API requests by JWT (`Authorization: Bearer`) or API key (`X-API-Key`),
//! and the extractors that hand handlers the authenticated user.

pub mod api_key;
pub mod jwt;
pub mod password;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use super::store::User;

/// The user a request authenticated as; rejects the request with 401 otherwise.
#[derive(Clone, Debug)]
pub struct AuthUser(pub User);

/// An authenticated admin; rejects the request with 401 when not authenticated and 403
/// when the user is not an admin.
#[derive(Clone, Debug)]
pub struct AdminUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state).await.map(Self)
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = authenticate(parts, state).await?;
        if !user.is_admin() {
            return Err(ApiError::Forbidden(
                "this operation requires an admin".to_owned(),
            ));
        }
        Ok(Self(user))
    }
}

/// Finds the user behind the request's API key or bearer token. An API key is checked
/// first when a request carries both.
///
/// The credential itself never reaches a log line: failures log only their kind.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<User, ApiError> {
    if let Some(value) = parts.headers.get(api_key::HEADER) {
        let raw_key = value.to_str().map_err(|_| ApiError::Unauthorized)?;
        let user = state
            .store
            .user_by_api_key_hash(&api_key::hash(raw_key))
            .await?;
        return user.ok_or_else(|| {
            tracing::debug!("unknown API key");
            ApiError::Unauthorized
        });
    }

    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Err(ApiError::Unauthorized);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized)?;

    let user_id = state.jwt.verify(token).map_err(|error| {
        tracing::debug!(reason = ?error.kind(), "JWT rejected");
        ApiError::Unauthorized
    })?;

    // A token outlives a deleted user, so the user is looked up on every request.
    let user = state.store.user(user_id).await?;
    user.ok_or_else(|| {
        tracing::debug!(user_id, "JWT names a user that no longer exists");
        ApiError::Unauthorized
    })
}

/// Returns the token of an `Authorization: Bearer <token>` value. The scheme matches in
/// any case, since RFC 7235 section 2.1 makes authentication schemes case-insensitive.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_token_parses_scheme_case_insensitively() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("abc", None),
        ];
        for (value, expected) in cases {
            assert_eq!(bearer_token(value), expected, "{value:?}");
        }
    }
}
